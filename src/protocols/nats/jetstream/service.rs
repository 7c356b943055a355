//! The JetStream service's state: what the front keeps per consumer beyond the
//! router's positions (pull requests waiting, the push subject, activity for
//! ephemeral consumers' inactive threshold), and the delivery of stream messages
//! to pull requests and push subjects, with nats-server's status messages.
//!
//! Owns: which client a delivery goes to and when (pull request order, batch and
//! max_bytes, expiry with `408 Request Timeout`, `no_wait`'s `404 No Messages`,
//! push only while someone listens, idle heartbeats, flow control), the ack subject every
//! delivery carries, and the ack protocol read back from it.
//! Refuses: what a consumer delivers next and what an ack settles (the router's
//! consumer state machine), sockets (everything goes out through the router,
//! so a NATS, MQTT or AMQP client on the reply subject gets it alike).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use super::json::ConsumerJson;
use super::{ACK_PREFIX, API_PREFIX, FC_PREFIX};
use crate::protocols::acks::Deferred;
use crate::protocols::nats::translate::{STATUS_EXTENSION, SUBJECT_EXTENSION};
use crate::router::streams::consumer::{AckKind, Delivered};
use crate::router::streams::Stream;
use crate::router::{Delivery, Message, Now, Router, Subject, Ticket};

/// Messages one push consumer is given per round, so that one busy consumer does
/// not hold up requests and the others.
const PUSH_BUDGET: usize = 256;
/// How often a push consumer without a listener (or a stream with a max_age) is
/// looked at again when nothing else wakes the service.
const IDLE_RECHECK: Duration = Duration::from_millis(250);

/// One pull request waiting for messages (`CONSUMER.MSG.NEXT`).
#[derive(Debug)]
pub(crate) struct Pull {
    /// Where its messages and statuses go.
    pub(crate) reply: Subject,
    /// Messages still wanted.
    pub(crate) batch: u64,
    /// Payload bytes still wanted.
    pub(crate) max_bytes: Option<u64>,
    pub(crate) expires: Option<Instant>,
    pub(crate) no_wait: bool,
    pub(crate) heartbeat: Option<Duration>,
    next_heartbeat: Option<Instant>,
    delivered: bool,
}

/// A pull request's body as clients send it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PullJson {
    pub(crate) batch: i64,
    pub(crate) expires: i64,
    pub(crate) no_wait: bool,
    pub(crate) max_bytes: i64,
    pub(crate) idle_heartbeat: i64,
}

impl Pull {
    pub(crate) fn new(reply: Subject, body: &PullJson, now: Instant) -> Pull {
        let ns = |n: i64| Duration::from_nanos(u64::try_from(n).unwrap_or(0));
        let heartbeat = (body.idle_heartbeat > 0).then(|| ns(body.idle_heartbeat));
        Pull {
            reply,
            batch: u64::try_from(body.batch).unwrap_or(0).max(1),
            max_bytes: u64::try_from(body.max_bytes).ok().filter(|&b| b > 0),
            expires: (body.expires > 0).then(|| now + ns(body.expires)),
            no_wait: body.no_wait,
            heartbeat,
            next_heartbeat: heartbeat.map(|h| now + h),
            delivered: false,
        }
    }
}

/// What the front keeps for one consumer.
#[derive(Debug)]
pub(crate) struct Front {
    pub(crate) json: ConsumerJson,
    /// A push consumer's subject.
    pub(crate) deliver: Option<Subject>,
    pub(crate) waiting: VecDeque<Pull>,
    /// Last time a client showed interest (for the inactive threshold).
    last_active: Instant,
    /// Last time a push consumer sent anything (for idle heartbeats).
    last_sent: Instant,
    /// A push consumer with flow control waits for the client to answer this
    /// flow control request before it delivers more.
    stalled: Option<Subject>,
    flow_requests: u64,
}

impl Front {
    pub(crate) fn new(json: ConsumerJson, now: Instant) -> Front {
        Front {
            deliver: json
                .deliver_subject
                .as_deref()
                .and_then(|s| Subject::new(s).ok()),
            json,
            waiting: VecDeque::new(),
            last_active: now,
            last_sent: now,
            stalled: None,
            flow_requests: 0,
        }
    }

    fn inactive_threshold(&self) -> Option<Duration> {
        u64::try_from(self.json.inactive_threshold)
            .ok()
            .filter(|&n| n > 0)
            .map(Duration::from_nanos)
    }
}

/// (stream, consumer).
pub(crate) type Key = (Arc<str>, String);

/// The JetStream service.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) router: Arc<Router>,
    pub(crate) fronts: HashMap<Key, Front>,
    pub(crate) api_total: u64,
    pub(crate) api_errors: u64,
    /// API replies and ack confirmations waiting for the storage of what their
    /// request changed: the client is told only what is stored.
    replies: Deferred<(Subject, Bytes)>,
}

impl Service {
    /// The service over `router`'s streams, with the consumers it already has
    /// (recovered from storage).
    pub(crate) fn new(router: Arc<Router>, now: Instant) -> Service {
        let mut fronts = HashMap::new();
        for stream in router
            .streams()
            .into_iter()
            .filter(|s| super::api::owned(s))
        {
            for c in stream.consumers() {
                let json = ConsumerJson::of(&c.config);
                fronts.insert(
                    (stream.name().clone(), c.config.name.clone()),
                    Front::new(json, now),
                );
            }
        }
        Service {
            router,
            fronts,
            api_total: 0,
            api_errors: 0,
            replies: Deferred::default(),
        }
    }

    /// Handles one message the service's subscriptions received.
    pub(crate) fn handle(&mut self, msg: &Message, now: Now) {
        let subject = msg.subject.as_str();
        if let Some(rest) = subject.strip_prefix(ACK_PREFIX) {
            self.on_ack(rest, msg, now);
        } else if subject.starts_with(FC_PREFIX) {
            // A flow control answer: the consumer that asked may go on.
            for front in self.fronts.values_mut() {
                if front.stalled.as_ref() == Some(&msg.subject) {
                    front.stalled = None;
                }
            }
        } else if let Some(rest) = subject.strip_prefix(API_PREFIX) {
            self.on_request(rest, msg, now);
        }
    }

    /// Sends `payload` to `to` (an API reply, an empty ack confirmation) once
    /// every change made so far is stored.
    pub(crate) fn reply(&mut self, to: &Subject, payload: Bytes, now: Now) {
        let ready = self
            .replies
            .defer(self.router.storage_barrier(), (to.clone(), payload));
        if let Some(reply) = ready {
            self.send_reply(reply, now);
        }
    }

    fn send_reply(&self, (subject, payload): (Subject, Bytes), now: Now) {
        let m = Message {
            subject,
            payload,
            ..Message::default()
        };
        self.router.publish(m, now);
    }

    /// The storage ticket the first waiting reply waits for.
    pub(crate) fn replies_head(&self) -> Option<Ticket> {
        self.replies.head()
    }

    /// Sends the replies whose changes are now stored; a reply whose storage
    /// failed is not sent (the client's request times out: nothing is promised).
    pub(crate) fn release_replies(&mut self, now: Now) {
        for (reply, stored) in self.replies.ready() {
            match stored {
                Ok(()) => self.send_reply(reply, now),
                Err(e) => {
                    tracing::warn!(error = %e.0, "jetstream: a change was not stored; its reply is not sent")
                }
            }
        }
    }

    /// Sends a status message (`404 No Messages`, ...) with `headers` to `to`.
    pub(crate) fn status(
        &self,
        to: &Subject,
        status: &str,
        headers: Vec<(String, String)>,
        now: Now,
    ) {
        let mut m = Message {
            subject: to.clone(),
            headers,
            ..Message::default()
        };
        m.extensions
            .set(STATUS_EXTENSION, Bytes::copy_from_slice(status.as_bytes()));
        self.router.publish(m, now);
    }

    fn deliver_to(&self, stream: &str, consumer: &str, to: &Subject, d: &Delivered, now: Now) {
        let mut m = Message::clone(&d.message);
        let ack = format!(
            "{ACK_PREFIX}{stream}.{consumer}.{}.{}.{}.{}.{}",
            d.deliveries, d.stream_seq, d.consumer_seq, d.time_ns, d.pending
        );
        m.extensions.set(
            SUBJECT_EXTENSION,
            Bytes::copy_from_slice(d.message.subject.as_str().as_bytes()),
        );
        m.subject = to.clone();
        m.reply_to = Subject::new(&ack).ok();
        m.retain = false;
        m.qos = Delivery::AtMostOnce;
        m.origin = 0;
        m.expires_at = None;
        self.router.publish(m, now);
    }

    /// The ack protocol on `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
    /// (or the form with domain and account hash, and a trailing token).
    fn on_ack(&mut self, rest: &str, msg: &Message, now: Now) {
        let tokens: Vec<&str> = rest.split('.').collect();
        let (stream, consumer, sseq) = match tokens.len() {
            7 => (tokens[0], tokens[1], tokens[3]),
            9 | 10 => (tokens[2], tokens[3], tokens[5]),
            _ => return,
        };
        let Ok(sseq) = sseq.parse::<u64>() else {
            return;
        };
        let body = std::str::from_utf8(&msg.payload).unwrap_or("").trim();
        let (word, arg) = body
            .split_once(|c: char| c.is_whitespace())
            .map_or((body, ""), |(w, a)| (w, a.trim()));
        let kind = match word {
            "" | "+ACK" | "+NXT" => AckKind::Ack,
            "-NAK" => AckKind::Nak(nak_delay(arg)),
            "+WPI" => AckKind::Progress,
            "+TERM" => AckKind::Term,
            _ => return,
        };
        let Some(s) = self.router.stream(stream) else {
            return;
        };
        s.answer(consumer, sseq, kind, now.at);
        let key: Key = (s.name().clone(), consumer.to_owned());
        if let Some(front) = self.fronts.get_mut(&key) {
            front.last_active = now.at;
        }
        let Some(reply) = &msg.reply_to else {
            return;
        };
        if word == "+NXT" {
            let body = parse_pull(arg.as_bytes()).unwrap_or_default();
            if let Some(front) = self.fronts.get_mut(&key) {
                if front.deliver.is_none() {
                    front
                        .waiting
                        .push_back(Pull::new(reply.clone(), &body, now.at));
                }
            }
        } else {
            self.reply(reply, Bytes::new(), now);
        }
    }

    /// Expires, redelivers and delivers what is due; returns when to come back.
    pub(crate) fn run(&mut self, now: Now) -> Instant {
        let mut next = now.at + Duration::from_secs(1);
        for stream in self.router.streams() {
            if let Some(ms) = stream.expire_messages(now) {
                let wait = ms.saturating_sub(now.unix_ms).max(1);
                next = next.min(now.at + Duration::from_millis(wait));
            }
            if let Some(at) = stream.expire_deliveries(now.at) {
                next = next.min(at);
            }
        }
        let keys: Vec<Key> = self.fronts.keys().cloned().collect();
        for key in keys {
            let Some(stream) = self.router.stream(&key.0) else {
                self.fronts.remove(&key);
                continue;
            };
            if !stream.has_consumer(&key.1) {
                self.fronts.remove(&key);
                continue;
            }
            let due = self.serve_consumer(&stream, &key, now);
            next = next.min(due);
        }
        next
    }

    /// Serves one consumer's clients; returns when it needs the service next.
    fn serve_consumer(&mut self, stream: &Arc<Stream>, key: &Key, now: Now) -> Instant {
        let Some(mut front) = self.fronts.remove(key) else {
            return now.at + IDLE_RECHECK;
        };
        let mut next = now.at + Duration::from_secs(1);
        match front.deliver.clone() {
            Some(to) => next = next.min(self.push(stream, key, &mut front, &to, now)),
            None => next = next.min(self.pull(stream, key, &mut front, now)),
        }
        if let Some(threshold) = front.inactive_threshold() {
            let idle_since = front.last_active;
            if now.at.duration_since(idle_since) >= threshold {
                tracing::debug!(stream = %key.0, consumer = %key.1, "jetstream: inactive consumer deleted");
                let _ = stream.delete_consumer(&key.1);
                self.router.wake_streams();
                return next;
            }
            next = next.min(idle_since + threshold);
        }
        self.fronts.insert(key.clone(), front);
        next
    }

    fn push(
        &mut self,
        stream: &Arc<Stream>,
        key: &Key,
        front: &mut Front,
        to: &Subject,
        now: Now,
    ) -> Instant {
        if !self.router.has_interest(to) {
            return now.at + IDLE_RECHECK;
        }
        front.last_active = now.at;
        let delivered = if front.stalled.is_some() {
            Vec::new()
        } else {
            stream.deliver(&key.1, PUSH_BUDGET, None, now.at)
        };
        for d in &delivered {
            self.deliver_to(&key.0, &key.1, to, d, now);
        }
        if !delivered.is_empty() {
            front.last_sent = now.at;
            if front.json.flow_control {
                // nats-server's flow control: after a batch, a request the
                // client answers once it has taken the messages before it.
                front.flow_requests += 1;
                let reply = format!("{FC_PREFIX}{}.{}.{}", key.0, key.1, front.flow_requests);
                let reply = Subject::new(&reply).ok();
                let mut m = Message {
                    subject: to.clone(),
                    reply_to: reply.clone(),
                    ..Message::default()
                };
                m.extensions.set(
                    STATUS_EXTENSION,
                    Bytes::from_static(b"100 FlowControl Request"),
                );
                self.router.publish(m, now);
                front.stalled = reply;
                return now.at + IDLE_RECHECK;
            }
        }
        if delivered.len() == PUSH_BUDGET {
            return now.at;
        }
        match heartbeat(&front.json) {
            Some(every) => {
                if now.at.duration_since(front.last_sent) >= every {
                    let info = stream.consumer_info(&key.1);
                    let mut headers = Vec::new();
                    if let Some(info) = info {
                        headers.push((
                            "Nats-Last-Consumer".to_owned(),
                            info.state.delivered.consumer_seq.to_string(),
                        ));
                        headers.push((
                            "Nats-Last-Stream".to_owned(),
                            info.state.delivered.stream_seq.to_string(),
                        ));
                    }
                    // A stalled consumer's heartbeat repeats the flow control
                    // request, in case the client missed it.
                    if let Some(fc) = &front.stalled {
                        headers.push(("Nats-Consumer-Stalled".to_owned(), fc.as_str().to_owned()));
                    }
                    self.status(to, "100 Idle Heartbeat", headers, now);
                    front.last_sent = now.at;
                }
                front.last_sent + every
            }
            None => now.at + Duration::from_secs(1),
        }
    }

    fn pull(&mut self, stream: &Arc<Stream>, key: &Key, front: &mut Front, now: Now) -> Instant {
        let mut next = now.at + Duration::from_secs(1);
        if !front.waiting.is_empty() {
            front.last_active = now.at;
        }
        // Requests that expired before anything arrived for them.
        front.waiting.retain(|p| {
            if p.expires.is_some_and(|at| at <= now.at) {
                self.status(&p.reply, "408 Request Timeout", pending_headers(p), now);
                false
            } else {
                true
            }
        });
        while let Some(p) = front.waiting.front_mut() {
            if !stream.has_work(&key.1) {
                break;
            }
            let max = usize::try_from(p.batch).unwrap_or(usize::MAX);
            let delivered = stream.deliver(&key.1, max, p.max_bytes, now.at);
            if delivered.is_empty() {
                break;
            }
            for d in &delivered {
                self.deliver_to(&key.0, &key.1, &p.reply, d, now);
                let size = d.message.payload.len() as u64;
                p.max_bytes = p.max_bytes.map(|b| b.saturating_sub(size));
            }
            p.batch -= delivered.len() as u64;
            p.delivered = true;
            if p.batch == 0 || p.max_bytes == Some(0) {
                front.waiting.pop_front();
            }
        }
        // nats-server answers a no_wait request at once: what there was, then 408;
        // or 404 when there was nothing (unless it also set expires: then it waits).
        front.waiting.retain(|p| {
            if !p.no_wait {
                return true;
            }
            if p.delivered {
                self.status(&p.reply, "408 Request Timeout", pending_headers(p), now);
                false
            } else if p.expires.is_none() {
                self.status(&p.reply, "404 No Messages", Vec::new(), now);
                false
            } else {
                true
            }
        });
        for p in front.waiting.iter_mut() {
            if let Some(at) = p.expires {
                next = next.min(at);
            }
            if let (Some(every), Some(at)) = (p.heartbeat, p.next_heartbeat) {
                if at <= now.at {
                    self.status(&p.reply, "100 Idle Heartbeat", Vec::new(), now);
                    p.next_heartbeat = Some(now.at + every);
                }
                next = next.min(p.next_heartbeat.unwrap_or(next));
            }
        }
        next
    }
}

fn heartbeat(json: &ConsumerJson) -> Option<Duration> {
    u64::try_from(json.idle_heartbeat)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_nanos)
}

fn pending_headers(p: &Pull) -> Vec<(String, String)> {
    vec![
        ("Nats-Pending-Messages".to_owned(), p.batch.to_string()),
        (
            "Nats-Pending-Bytes".to_owned(),
            p.max_bytes.unwrap_or(0).to_string(),
        ),
    ]
}

/// `-NAK`'s optional delay: `{"delay": <ns>}`.
fn nak_delay(arg: &str) -> Option<Duration> {
    #[derive(Deserialize)]
    struct Nak {
        delay: i64,
    }
    let nak: Nak = serde_json::from_str(arg).ok()?;
    u64::try_from(nak.delay)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_nanos)
}

/// A pull request body: empty (one message), a bare batch size, or JSON.
pub(crate) fn parse_pull(body: &[u8]) -> Option<PullJson> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() {
        return Some(PullJson {
            batch: 1,
            ..PullJson::default()
        });
    }
    if let Ok(batch) = text.parse::<i64>() {
        return Some(PullJson {
            batch,
            ..PullJson::default()
        });
    }
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_bodies() {
        assert_eq!(parse_pull(b"").unwrap().batch, 1);
        assert_eq!(parse_pull(b" 7 ").unwrap().batch, 7);
        let p = parse_pull(br#"{"batch":5,"expires":1000,"no_wait":true}"#).unwrap();
        assert!(p.no_wait && p.batch == 5 && p.expires == 1000);
        assert!(parse_pull(b"{").is_none());
        assert!(parse_pull(br#"{"batch":"x"}"#).is_none());
    }

    #[test]
    fn nak_delays() {
        assert_eq!(nak_delay(""), None);
        assert_eq!(
            nak_delay(r#"{"delay": 2000000000}"#),
            Some(Duration::from_secs(2))
        );
        assert_eq!(nak_delay("{bad"), None);
    }
}
