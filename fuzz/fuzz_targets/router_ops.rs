//! Random sequences of router operations checked against a reference model: sessions
//! open and close, subscribe and unsubscribe (MQTT filters over three words), publish
//! (retained or not) into the subject space or to amq.direct / amq.fanout / amq.topic,
//! queues declared, bound, unbound, deleted, read with basic.get and acked or
//! requeued, retained lookups.
//!
//! Invariants: each session receives exactly the publications the model says, once
//! each, in order, with qos = min(message, highest granted); each queue hands out what
//! the model says in FIFO order (requeued entries first, marked redelivered); the
//! retained lookup equals the model's; and once everything is drained, acked, deleted
//! and closed, the memory ledger holds 0 bytes.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use arbitrary::Arbitrary;
use dwbroker::router::{
    Delivery, Dest, Entry, Filter, Message, Now, OutboxLimits, Queue, QueueSpec, RetainedLimits,
    Router, Session, SubOptions, Subject, DEFAULT_VHOST_LIMITS,
};
use libfuzzer_sys::fuzz_target;

const SESSIONS: usize = 4;
const QUEUES: usize = 3;
const EXCHANGES: [&str; 3] = ["amq.direct", "amq.fanout", "amq.topic"];
const WORDS: [&str; 3] = ["a", "b", "c"];

/// A topic of one to three words.
#[derive(Arbitrary, Debug, Clone)]
struct Topic(u8, u8, u8, u8);

impl Topic {
    fn words(&self) -> Vec<&'static str> {
        let n = 1 + usize::from(self.0 % 3);
        [self.1, self.2, self.3][..n]
            .iter()
            .map(|w| WORDS[usize::from(w % 3)])
            .collect()
    }
}

/// A filter: one to three levels of a word or a single-level wildcard, and maybe a
/// trailing multi-level wildcard.
#[derive(Arbitrary, Debug, Clone)]
struct Pattern(u8, u8, u8, u8, bool);

impl Pattern {
    /// Levels: `Some(word)` or `None` for the single-level wildcard.
    fn levels(&self) -> (Vec<Option<&'static str>>, bool) {
        let n = 1 + usize::from(self.0 % 3);
        let levels = [self.1, self.2, self.3][..n]
            .iter()
            .map(|w| WORDS.get(usize::from(w % 4)).copied())
            .collect();
        (levels, self.4)
    }

    fn render(&self, sep: &str, one: &str, rest: &str) -> String {
        let (levels, tail) = self.levels();
        let mut parts: Vec<&str> = levels.iter().map(|l| l.unwrap_or(one)).collect();
        if tail {
            parts.push(rest);
        }
        parts.join(sep)
    }

    fn matches(&self, topic: &[&str]) -> bool {
        let (levels, tail) = self.levels();
        if topic.len() < levels.len() || (!tail && topic.len() != levels.len()) {
            return false;
        }
        levels
            .iter()
            .zip(topic)
            .all(|(l, w)| l.is_none_or(|l| l == *w))
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open,
    Close(u8),
    Subscribe(u8, Pattern, u8),
    Unsubscribe(u8, Pattern),
    Publish {
        topic: Topic,
        qos: u8,
        retain: bool,
        empty: bool,
    },
    Drain(u8),
    Declare(u8),
    Delete(u8),
    Bind {
        queue: u8,
        exchange: u8,
        key: Pattern,
    },
    Unbind {
        queue: u8,
        exchange: u8,
        key: Pattern,
    },
    PublishTo {
        exchange: u8,
        topic: Topic,
    },
    Get(u8),
    Ack(u8),
    Requeue(u8),
    Retained(Pattern),
}

fn qos(n: u8) -> Delivery {
    match n % 3 {
        0 => Delivery::AtMostOnce,
        1 => Delivery::AtLeastOnce,
        _ => Delivery::ExactlyOnce,
    }
}

struct ModelSession {
    session: Arc<Session>,
    /// Filter text -> (pattern, granted qos).
    subs: BTreeMap<String, (Pattern, Delivery)>,
    /// Expected dispatches: (payload, qos).
    expected: VecDeque<(String, Delivery)>,
}

#[derive(Default)]
struct ModelQueue {
    queue: Option<Arc<Queue>>,
    /// (exchange index, binding key text) -> pattern.
    bindings: BTreeMap<(usize, String), Pattern>,
    /// Ready payloads, with whether they were requeued.
    ready: VecDeque<(String, bool)>,
}

struct Model {
    router: Router,
    now: Now,
    sessions: Vec<Option<ModelSession>>,
    queues: Vec<ModelQueue>,
    /// Delivered, unsettled entries: (queue index, entry).
    unacked: Vec<(usize, Arc<Queue>, Entry)>,
    retained: BTreeMap<String, String>,
    next_payload: u64,
}

impl Model {
    fn new() -> Model {
        let roomy = OutboxLimits {
            max_messages: 100_000,
            max_bytes: 1 << 30,
        };
        let retained = RetainedLimits {
            max_messages: 100_000,
            max_bytes: 1 << 30,
        };
        Model {
            router: Router::new(roomy, retained, DEFAULT_VHOST_LIMITS),
            now: Now::current(),
            sessions: (0..SESSIONS).map(|_| None).collect(),
            queues: (0..QUEUES).map(|_| ModelQueue::default()).collect(),
            unacked: Vec::new(),
            retained: BTreeMap::new(),
            next_payload: 0,
        }
    }

    fn payload(&mut self) -> String {
        self.next_payload += 1;
        format!("m{}", self.next_payload)
    }

    /// A subject-space publication reaching sessions and amq.topic-bound queues.
    fn expect_subject(&mut self, words: &[&str], payload: &str, q: Delivery) {
        for s in self.sessions.iter_mut().flatten() {
            let granted = s
                .subs
                .values()
                .filter(|(p, _)| p.matches(words))
                .map(|(_, g)| *g)
                .max();
            if let Some(g) = granted {
                s.expected.push_back((payload.to_owned(), q.min(g)));
            }
        }
        self.expect_queues(2, words, payload);
    }

    /// Each queue with a binding of exchange `ex` that matches gets it once.
    fn expect_queues(&mut self, ex: usize, words: &[&str], payload: &str) {
        let key = words.join(".");
        for mq in self.queues.iter_mut().filter(|q| q.queue.is_some()) {
            let hit = mq.bindings.iter().any(|((e, k), p)| {
                *e == ex
                    && match ex {
                        0 => *k == key,
                        1 => true,
                        _ => p.matches(words),
                    }
            });
            if hit {
                mq.ready.push_back((payload.to_owned(), false));
            }
        }
    }

    fn drain(&mut self, i: usize) {
        let Some(s) = self.sessions[i].as_mut() else {
            return;
        };
        while let Some(d) = s.session.pop() {
            let (payload, q) = s
                .expected
                .pop_front()
                .unwrap_or_else(|| panic!("session {i} got {:?} unexpected", d.message.payload));
            assert_eq!(
                d.message.payload,
                payload.as_bytes(),
                "session {i}: wrong message"
            );
            assert_eq!(d.qos, q, "session {i}: wrong qos for {payload}");
            assert!(!d.retain, "retain flag without retain-as-published");
        }
        assert!(s.expected.is_empty(), "session {i} missed {:?}", s.expected);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Open => {
                if let Some(slot) = self.sessions.iter_mut().find(|s| s.is_none()) {
                    *slot = Some(ModelSession {
                        session: self.router.open_session(),
                        subs: BTreeMap::new(),
                        expected: VecDeque::new(),
                    });
                }
            }
            Op::Close(i) => {
                let i = usize::from(i) % SESSIONS;
                if let Some(s) = self.sessions[i].take() {
                    self.router.close_session(s.session.id());
                }
            }
            Op::Subscribe(i, p, g) => {
                let i = usize::from(i) % SESSIONS;
                let Some(s) = self.sessions[i].as_mut() else {
                    return;
                };
                let text = p.render("/", "+", "#");
                let filter = Filter::mqtt(&text).expect("generated filters are valid");
                let opts = SubOptions {
                    qos: qos(g),
                    ..SubOptions::default()
                };
                let replaced = self.router.subscribe(s.session.id(), filter, opts);
                let before = s.subs.insert(text, (p, qos(g)));
                assert_eq!(replaced, before.is_some(), "subscribe's replaced flag");
            }
            Op::Unsubscribe(i, p) => {
                let i = usize::from(i) % SESSIONS;
                let Some(s) = self.sessions[i].as_mut() else {
                    return;
                };
                let text = p.render("/", "+", "#");
                let filter = Filter::mqtt(&text).expect("generated filters are valid");
                let had = self.router.unsubscribe(s.session.id(), &filter, None);
                assert_eq!(had, s.subs.remove(&text).is_some(), "unsubscribe's result");
            }
            Op::Publish {
                topic,
                qos: q,
                retain,
                empty,
            } => {
                let words = topic.words();
                let text = words.join("/");
                let payload = if empty && retain {
                    String::new()
                } else {
                    self.payload()
                };
                let msg = Message {
                    subject: Subject::from_mqtt_topic(&text).expect("generated topics are valid"),
                    payload: payload.clone().into(),
                    qos: qos(q),
                    retain,
                    ..Message::default()
                };
                self.router.publish(msg, self.now);
                if retain {
                    if payload.is_empty() {
                        self.retained.remove(&text);
                    } else {
                        self.retained.insert(text.clone(), payload.clone());
                    }
                }
                self.expect_subject(&words, &payload, qos(q));
            }
            Op::Drain(i) => self.drain(usize::from(i) % SESSIONS),
            Op::Declare(i) => {
                let i = usize::from(i) % QUEUES;
                let q = self
                    .router
                    .declare_queue(&format!("q{i}"), QueueSpec::default(), false, 1, self.now)
                    .expect("declare");
                if let Some(old) = &self.queues[i].queue {
                    assert!(Arc::ptr_eq(old, &q), "redeclare returned another queue");
                }
                self.queues[i].queue = Some(q);
            }
            Op::Delete(i) => {
                let i = usize::from(i) % QUEUES;
                let r = self.router.delete_queue(&format!("q{i}"), 1, false, false);
                // Idempotent, as RabbitMQ's: a missing queue is deleted with 0 messages.
                let mq = &mut self.queues[i];
                assert_eq!(
                    r.ok(),
                    Some(mq.ready.len()),
                    "delete of q{i}: message count"
                );
                *mq = ModelQueue::default();
            }
            Op::Bind { queue, .. } | Op::Unbind { queue, .. }
                if self.queues[usize::from(queue) % QUEUES].queue.is_none() => {}
            Op::Bind {
                queue,
                exchange,
                key,
            } => self.binding(true, queue, exchange, key),
            Op::Unbind {
                queue,
                exchange,
                key,
            } => self.binding(false, queue, exchange, key),
            Op::PublishTo { exchange, topic } => {
                let e = usize::from(exchange) % 3;
                let words = topic.words();
                let key = words.join(".");
                let payload = self.payload();
                let msg = Message {
                    subject: Subject::new("x").expect("valid"),
                    payload: payload.clone().into(),
                    ..Message::default()
                };
                self.router
                    .publish_to_exchange(EXCHANGES[e], &key, msg, self.now)
                    .expect("publish to a built-in exchange");
                if e == 2 {
                    self.expect_subject(&words, &payload, Delivery::AtMostOnce);
                } else {
                    self.expect_queues(e, &words, &payload);
                }
            }
            Op::Get(i) => {
                let i = usize::from(i) % QUEUES;
                let Some(q) = self.queues[i].queue.clone() else {
                    return;
                };
                let got = self.router.get(&q, self.now);
                let want = self.queues[i].ready.pop_front();
                match (got, want) {
                    (None, None) => {}
                    (Some((entry, left)), Some((payload, redelivered))) => {
                        assert_eq!(
                            entry.message.payload,
                            payload.as_bytes(),
                            "q{i}: FIFO order"
                        );
                        assert_eq!(entry.redelivered, redelivered, "q{i}: redelivered flag");
                        assert_eq!(left, self.queues[i].ready.len(), "q{i}: ready count");
                        self.unacked.push((i, q, entry));
                    }
                    (got, want) => {
                        panic!("q{i}: got {:?}, model {want:?}", got.map(|g| g.0.message))
                    }
                }
            }
            Op::Ack(_) | Op::Requeue(_) if self.unacked.is_empty() => {}
            Op::Ack(n) => {
                let (_, q, entry) = self.unacked.remove(usize::from(n) % self.unacked.len());
                self.router.ack(&q, entry, self.now);
            }
            Op::Requeue(n) => {
                let (i, q, entry) = self.unacked.remove(usize::from(n) % self.unacked.len());
                let payload = String::from_utf8_lossy(&entry.message.payload).into_owned();
                let live = self.queues[i]
                    .queue
                    .as_ref()
                    .is_some_and(|l| Arc::ptr_eq(l, &q));
                self.router.requeue(&q, vec![entry], self.now);
                if live {
                    self.queues[i].ready.push_front((payload, true));
                }
            }
            Op::Retained(p) => {
                let filter = Filter::mqtt(&p.render("/", "+", "#")).expect("valid");
                let got: BTreeSet<(String, String)> = self
                    .router
                    .retained(&filter, self.now)
                    .iter()
                    .map(|m| {
                        (
                            m.subject.to_mqtt_topic(),
                            String::from_utf8_lossy(&m.payload).into_owned(),
                        )
                    })
                    .collect();
                let want: BTreeSet<(String, String)> = self
                    .retained
                    .iter()
                    .filter(|(t, _)| p.matches(&t.split('/').collect::<Vec<_>>()))
                    .map(|(t, m)| (t.clone(), m.clone()))
                    .collect();
                assert_eq!(got, want, "retained lookup");
            }
        }
    }

    /// Binds (or unbinds) queue `queue` to exchange `exchange` with `key`.
    fn binding(&mut self, bind: bool, queue: u8, exchange: u8, key: Pattern) {
        let (i, e) = (usize::from(queue) % QUEUES, usize::from(exchange) % 3);
        let text = binding_key(e, &key);
        let dest = Dest::Queue(format!("q{i}"));
        if bind {
            self.router
                .bind(EXCHANGES[e], dest, &text, Vec::new())
                .expect("bind");
            self.queues[i].bindings.insert((e, text), key);
        } else {
            self.router
                .unbind(EXCHANGES[e], dest, &text, &Vec::new())
                .expect("unbind");
            self.queues[i].bindings.remove(&(e, text));
        }
    }

    /// Drains, settles, deletes and closes everything; the ledger must be empty.
    fn finish(mut self) {
        for i in 0..SESSIONS {
            self.drain(i);
        }
        for (_, q, entry) in std::mem::take(&mut self.unacked) {
            self.router.ack(&q, entry, self.now);
        }
        for i in 0..QUEUES {
            let _ = self.router.delete_queue(&format!("q{i}"), 1, false, false);
        }
        for s in self.sessions.iter_mut().filter_map(Option::take) {
            self.router.close_session(s.session.id());
        }
        assert_eq!(
            self.router.memory().held(),
            0,
            "bytes left in the memory ledger"
        );
    }
}

/// The binding key text: a word list for amq.direct, anything for amq.fanout, an AMQP
/// topic pattern for amq.topic.
fn binding_key(exchange: usize, key: &Pattern) -> String {
    match exchange {
        2 => key.render(".", "*", "#"),
        _ => key
            .levels()
            .0
            .iter()
            .map(|l| l.unwrap_or("a"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut model = Model::new();
    for op in ops.into_iter().take(512) {
        model.apply(op);
    }
    model.finish();
});
