//! The NATS connection state machine: CONNECT options, subscriptions by sid, what
//! each client op does, and what the server writes back.
//!
//! No I/O: everything to send is encoded into `out`, which the shell writes. The
//! `-ERR` texts are nats-server's own (server/client.go, parser.go), since clients
//! match on them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::nats::{encode_msg, ClientOp, Headers, ServerOp};
use foldhash::fast::RandomState as FastHash;
use serde::Deserialize;

use super::{jetstream, translate};
use crate::access::{Grant, Guard, Kind};
use crate::connections::Counts;
use crate::protocols::acks::Deferred;
use crate::router::streams::Appended;
use crate::router::{
    ConnId, Delivery, Filter, LastSubject, Message, Now, Router, Session, SubOptions, Subject,
    Ticket,
};

/// Encoded output gathered before the shell writes it: one write per wake-up,
/// without letting a burst of large messages pile up in memory first.
const BATCH_BYTES: usize = 1024 * 1024;

/// Why a connection ends.
#[derive(Debug)]
pub(crate) enum Exit {
    /// The client broke the protocol: `-ERR '<text>'`, then close.
    Err(&'static str),
    /// The socket failed or the client closed it.
    Network(String),
    /// Its queue of messages to send passed the limit. Closed without -ERR, as
    /// current nats-server does.
    SlowConsumer,
    /// The broker is stopping.
    Shutdown,
}

/// The CONNECT options dwbroker acts on; the others (auth, tls, name, lang,
/// version) are accepted and, where useful, logged.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct ConnectOptions {
    verbose: bool,
    pedantic: bool,
    echo: bool,
    headers: bool,
    no_responders: bool,
    protocol: u32,
    pub(crate) name: Option<String>,
    pub(crate) lang: Option<String>,
    pub(crate) version: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            verbose: false,
            pedantic: false,
            // A connection receives its own messages unless it says otherwise.
            echo: true,
            headers: false,
            no_responders: false,
            protocol: 0,
            name: None,
            lang: None,
            version: None,
        }
    }
}

/// One client subscription (sid).
#[derive(Debug)]
struct Sub {
    /// The router subscription it shares with other sids of the same subject.
    key: u32,
    /// Auto-unsubscribe after this many deliveries (UNSUB <sid> <max>).
    max: Option<u64>,
    delivered: u64,
}

/// One router subscription: the router keeps one per (filter, queue group) and
/// session, while NATS lets a connection subscribe to a subject under several sids,
/// each receiving its own copy.
#[derive(Debug)]
struct RouterSub {
    filter: Filter,
    group: Option<String>,
    sids: Vec<String>,
    /// A queue group's next sid: the connection's members take turns, as separate
    /// subscriptions do in nats-server.
    turn: usize,
}

/// A connected NATS client.
#[derive(Debug)]
pub(crate) struct Connection {
    conn_id: ConnId,
    pub(crate) opts: ConnectOptions,
    session: Arc<Session>,
    router: Arc<Router>,
    /// Both looked up for every delivery: foldhash, not SipHash (a connection's
    /// own keys, bounded by max_subscriptions).
    subs: HashMap<String, Sub, FastHash>,
    router_subs: HashMap<u32, RouterSub, FastHash>,
    last_subject: LastSubject,
    keys: HashMap<(Filter, Option<String>), u32>,
    next_key: u32,
    max_subscriptions: usize,
    /// Bytes of encoded output beyond which the client is a slow consumer.
    max_pending: usize,
    pings_out: u32,
    max_pings_out: u32,
    /// JetStream publish acks waiting for the storage that covers their append.
    pub_acks: Deferred<(Subject, Appended)>,
    /// Encoded output, written by the shell.
    pub(crate) out: BytesMut,
    /// The client has published (only publishers are held back under memory
    /// pressure).
    pub(crate) publisher: bool,
    /// CONNECT was accepted; before it, no other op is.
    connected: bool,
    /// What the shell's authentication of the coming CONNECT granted.
    authorized: Option<Grant>,
    /// What the client's user may do (nothing before CONNECT).
    guard: Guard,
    /// Messages and payload bytes in and out, for the operator's view.
    pub(crate) counts: Counts,
}

impl Connection {
    /// A connection that is to be sent `info` (`None`: it was sent before a TLS
    /// upgrade) and awaits CONNECT.
    pub(crate) fn new(
        conn_id: ConnId,
        session: Arc<Session>,
        router: Arc<Router>,
        max_subscriptions: usize,
        max_pending: usize,
        max_pings_out: u32,
        info: Option<Bytes>,
    ) -> Connection {
        session.set_connection(conn_id);
        let mut conn = Connection {
            conn_id,
            opts: ConnectOptions::default(),
            session,
            router,
            subs: HashMap::default(),
            router_subs: HashMap::default(),
            last_subject: LastSubject::default(),
            keys: HashMap::new(),
            next_key: 0,
            max_subscriptions,
            max_pending,
            pings_out: 0,
            max_pings_out,
            pub_acks: Deferred::default(),
            out: BytesMut::new(),
            publisher: false,
            connected: false,
            authorized: None,
            guard: Guard::new(Grant::nothing()),
            counts: Counts::default(),
        };
        if let Some(info) = info {
            conn.send(&ServerOp::Info(info));
        }
        conn
    }

    /// The router subscriber of this connection.
    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    fn send(&mut self, op: &ServerOp) {
        op.encode(&mut self.out);
    }

    /// `+OK` after an accepted op, for verbose clients.
    fn ok(&mut self) {
        if self.opts.verbose {
            self.send(&ServerOp::Ok);
        }
    }

    /// Lets the next CONNECT in with `grant` (the shell has authenticated it).
    pub(crate) fn authorize(&mut self, grant: Grant) {
        self.authorized = Some(grant);
    }

    /// What the client's user may do.
    pub(crate) fn grant(&self) -> &Grant {
        self.guard.grant()
    }

    /// Applies the user's permissions after a reload (`None`: the user is gone):
    /// subscriptions no longer allowed are removed with a permissions violation
    /// each, and partly allowed ones leave out what is now denied, as nats-server
    /// does on a configuration reload.
    pub(crate) fn reauthorize(&mut self, grant: Option<Grant>) -> Result<(), Exit> {
        let grant = grant.ok_or(Exit::Err("Authorization Violation"))?;
        self.guard = Guard::new(grant);
        let mut keys: Vec<u32> = self.router_subs.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let Some(rs) = self.router_subs.get(&key) else {
                continue;
            };
            let Some(withheld) = self.guard.grant().may_subscribe(&rs.filter).withheld() else {
                let subject = rs.filter.syntax();
                for sid in rs.sids.clone() {
                    self.violation("Subscription to", &subject);
                    self.remove_sub(&sid);
                }
                continue;
            };
            self.router.subscribe(
                self.session.id(),
                rs.filter.clone(),
                self.sub_options(key, rs.group.clone(), withheld),
            );
        }
        Ok(())
    }

    fn sub_options(
        &self,
        key: u32,
        group: Option<String>,
        withheld: Option<Arc<[Filter]>>,
    ) -> SubOptions {
        SubOptions {
            qos: Delivery::AtMostOnce,
            no_local: !self.opts.echo,
            retain_as_published: false,
            subscription_id: Some(key),
            share_group: group,
            withheld,
        }
    }

    /// Whether CONNECT was accepted.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Its subscriptions (sids).
    pub(crate) fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Handles one op from the client.
    pub(crate) fn handle(&mut self, op: ClientOp, now: Now) -> Result<(), Exit> {
        // nats-server's answer when authorization is set up; it is where the
        // access-control checks go, so it applies to every client.
        if !self.connected && !matches!(op, ClientOp::Connect(_)) {
            return Err(Exit::Err("Authorization Violation"));
        }
        match op {
            ClientOp::Connect(json) => self.on_connect(&json),
            ClientOp::Pub {
                subject,
                reply_to,
                payload,
            } => {
                self.on_publish(&subject, reply_to.as_deref(), None, payload, now);
                Ok(())
            }
            ClientOp::HPub {
                subject,
                reply_to,
                headers,
                payload,
            } => {
                self.on_publish(&subject, reply_to.as_deref(), Some(headers), payload, now);
                Ok(())
            }
            ClientOp::Sub {
                subject,
                queue_group,
                sid,
            } => {
                self.on_subscribe(&subject, queue_group, sid);
                Ok(())
            }
            ClientOp::Unsub { sid, max_msgs } => {
                // Messages the router queued for the sid before the UNSUB was read
                // are the client's: nats-server has written them already.
                self.pump_with(now, usize::MAX, usize::MAX)?;
                self.on_unsubscribe(&sid, max_msgs);
                Ok(())
            }
            ClientOp::Ping => {
                self.send(&ServerOp::Pong);
                Ok(())
            }
            ClientOp::Pong => {
                self.pings_out = 0;
                Ok(())
            }
        }
    }

    fn on_connect(&mut self, json: &[u8]) -> Result<(), Exit> {
        // An object only: serde would also read a struct from a JSON array.
        let bad = || Exit::Err("Unknown Protocol Operation");
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(bad());
        }
        let opts: ConnectOptions = serde_json::from_slice(json).map_err(|_| bad())?;
        if opts.protocol > 1 {
            return Err(Exit::Err("invalid client protocol"));
        }
        if opts.no_responders && !opts.headers {
            return Err(Exit::Err("no responders requires headers support"));
        }
        if !self.connected {
            let grant = self
                .authorized
                .take()
                .ok_or(Exit::Err("Authorization Violation"))?;
            self.guard = Guard::new(grant);
        }
        tracing::info!(
            conn = self.conn_id,
            name = opts.name.as_deref().unwrap_or(""),
            lang = opts.lang.as_deref().unwrap_or(""),
            version = opts.version.as_deref().unwrap_or(""),
            "nats: client connected"
        );
        self.opts = opts;
        self.connected = true;
        self.ok();
        Ok(())
    }

    fn on_publish(
        &mut self,
        subject: &str,
        reply_to: Option<&str>,
        headers: Option<Headers>,
        payload: Bytes,
        now: Now,
    ) {
        self.publisher = true;
        self.counts.received(payload.len());
        // nats-server checks publish subjects only in pedantic mode; the error keeps
        // the connection open.
        if self.opts.pedantic && !valid_publish_subject(subject) {
            self.send(&ServerOp::Err("Invalid Publish Subject".into()));
            return;
        }
        let Some(message) = translate::message_from_pub(
            &mut self.last_subject,
            subject,
            reply_to,
            headers,
            payload,
            self.conn_id,
        ) else {
            tracing::debug!(
                subject,
                "nats: publish to a subject the router cannot hold dropped"
            );
            self.ok();
            return;
        };
        if !self.guard.may_publish(&message.subject, now.unix_ms) || !self.may_use_stream(subject) {
            self.violation("Publish to", subject);
            return;
        }
        let reply = message.reply_to.clone();
        let routed = self.router.publish(message, now);
        match (reply, routed.appended.into_iter().next()) {
            // A stream captured it: the publisher's request is answered with the
            // stream's ack, once the append is stored.
            (Some(reply), Some(appended)) => {
                if let Some(ack) = self.pub_acks.defer(routed.ticket, (reply, appended)) {
                    self.send_pub_ack(ack, &Ok(()), now);
                }
            }
            (Some(reply), None)
                if routed.matched == 0 && self.opts.no_responders && self.opts.headers =>
            {
                self.no_responders(&reply);
            }
            _ => {}
        }
        self.ok();
    }

    /// nats-server's answer to a publish or subscription the user may not make
    /// (`what`: "Publish to" or "Subscription to"); the connection stays open.
    fn violation(&mut self, what: &str, subject: &str) {
        tracing::info!(conn = self.conn_id, subject, what, "nats: not authorized");
        self.send(&ServerOp::Err(format!(
            "Permissions Violation for {what} \"{subject}\""
        )));
    }

    /// Whether the user may do what a JetStream API request on `subject` does to
    /// its stream.
    fn may_use_stream(&self, subject: &str) -> bool {
        let grant = self.guard.grant();
        if grant.unrestricted() {
            return true;
        }
        match jetstream::stream_use(subject) {
            None => true,
            Some(jetstream::StreamUse::Configure(stream)) => {
                grant.may_configure(Kind::Stream, stream)
            }
            Some(jetstream::StreamUse::Read(stream)) => grant.may_consume(Kind::Stream, stream),
        }
    }

    fn send_pub_ack(
        &self,
        (reply, appended): (Subject, Appended),
        stored: &Result<(), crate::router::StoreFailure>,
        now: Now,
    ) {
        let ack = Message {
            subject: reply,
            payload: jetstream::pub_ack(&appended, stored),
            ..Message::default()
        };
        self.router.publish(ack, now);
    }

    /// The storage ticket the first waiting publish ack waits for.
    pub(crate) fn pub_acks_head(&self) -> Option<Ticket> {
        self.pub_acks.head()
    }

    /// Sends the publish acks whose appends are now stored.
    pub(crate) fn release_pub_acks(&mut self, now: Now) {
        for (ack, stored) in self.pub_acks.ready() {
            self.send_pub_ack(ack, &stored, now);
        }
    }

    /// A request nobody can answer: the requester's own reply subscription gets an
    /// empty message with status 503, so that its request fails at once.
    fn no_responders(&mut self, reply: &Subject) {
        let sid = self
            .router_subs
            .values()
            .find(|rs| rs.filter.matches(reply))
            .and_then(|rs| rs.sids.first().cloned());
        if let Some(sid) = sid {
            let finished = count_delivery(&mut self.subs, &sid);
            self.send(&ServerOp::HMsg {
                subject: reply.as_str().to_owned(),
                sid: sid.clone(),
                reply_to: None,
                headers: Headers {
                    status: Some(503),
                    description: None,
                    entries: Vec::new(),
                },
                payload: Bytes::new(),
            });
            if finished {
                self.remove_sub(&sid);
            }
        }
    }

    fn on_subscribe(&mut self, subject: &str, group: Option<String>, sid: String) {
        let Ok(filter) = Filter::nats(subject) else {
            self.send(&ServerOp::Err("Invalid Subject".into()));
            return;
        };
        let Some(withheld) = self.guard.grant().may_subscribe(&filter).withheld() else {
            self.violation("Subscription to", subject);
            return;
        };
        if self.subs.contains_key(&sid) {
            self.remove_sub(&sid);
        } else if self.subs.len() >= self.max_subscriptions {
            self.send(&ServerOp::Err("maximum subscriptions exceeded".into()));
            return;
        }
        let key = match self.keys.get(&(filter.clone(), group.clone())) {
            Some(&key) => key,
            None => {
                // Keys wrap after 2^32 subscriptions; never reuse one still in use.
                while self.router_subs.contains_key(&self.next_key) {
                    self.next_key = self.next_key.wrapping_add(1);
                }
                let key = self.next_key;
                self.next_key = self.next_key.wrapping_add(1);
                self.router.subscribe(
                    self.session.id(),
                    filter.clone(),
                    self.sub_options(key, group.clone(), withheld),
                );
                self.keys.insert((filter.clone(), group.clone()), key);
                self.router_subs.insert(
                    key,
                    RouterSub {
                        filter,
                        group,
                        sids: Vec::new(),
                        turn: 0,
                    },
                );
                key
            }
        };
        if let Some(rs) = self.router_subs.get_mut(&key) {
            rs.sids.push(sid.clone());
        }
        self.subs.insert(
            sid,
            Sub {
                key,
                max: None,
                delivered: 0,
            },
        );
        self.ok();
    }

    fn on_unsubscribe(&mut self, sid: &str, max: Option<u64>) {
        // An unknown sid is ignored, as nats-server does.
        if let Some(sub) = self.subs.get_mut(sid) {
            match max {
                // UNSUB <sid> <max> counts all deliveries on the sid so far.
                Some(max) if sub.delivered < max => sub.max = Some(max),
                _ => self.remove_sub(sid),
            }
        }
        self.ok();
    }

    fn remove_sub(&mut self, sid: &str) {
        let Some(sub) = self.subs.remove(sid) else {
            return;
        };
        let Some(rs) = self.router_subs.get_mut(&sub.key) else {
            return;
        };
        rs.sids.retain(|s| s != sid);
        if rs.sids.is_empty() {
            if let Some(rs) = self.router_subs.remove(&sub.key) {
                self.router
                    .unsubscribe(self.session.id(), &rs.filter, rs.group.as_deref());
                self.keys.remove(&(rs.filter, rs.group));
            }
        }
    }

    /// Encodes up to `budget` queued messages as MSG/HMSG; returns true if it
    /// stopped on the budget. A session that had to drop messages (its queue was
    /// full) ends the connection as a slow consumer.
    pub(crate) fn pump(&mut self, now: Now, budget: usize) -> Result<bool, Exit> {
        self.pump_with(now, budget, BATCH_BYTES)
    }

    /// [`Connection::pump`] with `batch` bytes of output at most (the pending
    /// limit still applies).
    fn pump_with(&mut self, now: Now, budget: usize, batch: usize) -> Result<bool, Exit> {
        for _ in 0..budget {
            if self.out.len() >= batch {
                return self.check_slow().map(|()| true);
            }
            let Some(dispatch) = self.session.pop() else {
                return self.check_slow().map(|()| false);
            };
            if dispatch.message.is_expired(now.unix_ms) {
                continue;
            }
            let message = &dispatch.message;
            let headers = if self.opts.headers {
                translate::headers_of(message)
            } else {
                None
            };
            if let Some(reply) = &message.reply_to {
                self.guard.expect_response(reply, now.unix_ms);
            }
            let reply_to = message.reply_to.as_ref().map(Subject::as_str);
            let mut finished = Vec::new();
            for key in &dispatch.subscription_ids {
                let Some(rs) = self.router_subs.get_mut(key) else {
                    continue;
                };
                // A queue group delivers to one member: here one of the
                // connection's sids in the group, in turn.
                let (skip, take) = match rs.group {
                    Some(_) if !rs.sids.is_empty() => {
                        rs.turn = (rs.turn + 1) % rs.sids.len();
                        (rs.turn, 1)
                    }
                    _ => (0, rs.sids.len()),
                };
                for sid in rs.sids.iter().skip(skip).take(take) {
                    encode_msg(
                        &mut self.out,
                        translate::subject_of(message),
                        sid,
                        reply_to,
                        headers.as_ref(),
                        &message.payload,
                    );
                    // One message fans out to every sid of the subject: bound the
                    // copies by the pending limit as nats-server does per delivery.
                    if self.out.len() > self.max_pending {
                        return Err(Exit::SlowConsumer);
                    }
                    self.counts.delivered(message.payload.len());
                    if count_delivery(&mut self.subs, sid) {
                        finished.push(sid.clone());
                    }
                }
            }
            for sid in finished {
                self.remove_sub(&sid);
            }
        }
        self.check_slow().map(|()| true)
    }

    fn check_slow(&self) -> Result<(), Exit> {
        if self.session.take_drop_stats().messages > 0 {
            return Err(Exit::SlowConsumer);
        }
        Ok(())
    }

    /// The keep-alive tick: PING the client, or close it if it has not answered
    /// the last ones.
    pub(crate) fn ping(&mut self) -> Result<(), Exit> {
        if self.pings_out >= self.max_pings_out {
            return Err(Exit::Err("Stale Connection"));
        }
        self.pings_out += 1;
        self.send(&ServerOp::Ping);
        Ok(())
    }

    /// Ends the connection's subscriptions.
    pub(crate) fn close(self) {
        self.router.close_session(self.session.id());
    }
}

/// Counts one delivery on `sid`; true if that reached its auto-unsubscribe maximum.
fn count_delivery(subs: &mut HashMap<String, Sub, FastHash>, sid: &str) -> bool {
    let Some(sub) = subs.get_mut(sid) else {
        return false;
    };
    sub.delivered += 1;
    sub.max.is_some_and(|max| sub.delivered >= max)
}

/// A subject a message may be published to: tokens non-empty, no wildcards, no
/// whitespace.
pub(crate) fn valid_publish_subject(subject: &str) -> bool {
    !subject.is_empty()
        && !subject.chars().any(char::is_whitespace)
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_subject_rules() {
        assert!(valid_publish_subject("a.b.c"));
        assert!(valid_publish_subject("a*.b"));
        for bad in ["", "a..b", "a.", ".a", "a.*", "a.>", "a b"] {
            assert!(!valid_publish_subject(bad), "{bad:?}");
        }
    }

    #[test]
    fn connect_options_default_to_echo_and_ignore_unknown_fields() {
        let o: ConnectOptions =
            serde_json::from_slice(br#"{"verbose":true,"lang":"python3","auth_token":"x"}"#)
                .unwrap();
        assert!(o.verbose && o.echo && !o.headers);
        assert_eq!(o.lang.as_deref(), Some("python3"));
    }
}
