//! The service driven directly (no sockets): API replies, pull request
//! statuses, and arbitrary requests that must never panic.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::service::Service;
use crate::protocols::nats::translate::{STATUS_EXTENSION, SUBJECT_EXTENSION};
use crate::router::{
    Filter, Message, Now, OutboxLimits, RetainedLimits, Router, Session, SubOptions, Subject,
    DEFAULT_VHOST_LIMITS,
};

struct Harness {
    router: Arc<Router>,
    service: Service,
    client: Arc<Session>,
    now: Now,
}

impl Harness {
    fn new() -> Harness {
        let limits = OutboxLimits {
            max_messages: 10_000,
            max_bytes: 1 << 24,
        };
        let retained = RetainedLimits {
            max_messages: 10,
            max_bytes: 1 << 20,
        };
        let router = Arc::new(Router::new(limits, retained, DEFAULT_VHOST_LIMITS));
        let client = router.open_session();
        router.subscribe(
            client.id(),
            Filter::nats("_R.>").unwrap(),
            SubOptions::default(),
        );
        let now = Now::current();
        Harness {
            service: Service::new(router.clone(), now.at),
            router,
            client,
            now,
        }
    }

    /// Sends a request to `$JS.API.<api>` with reply subject `_R.<reply>`, then
    /// lets the service deliver.
    fn send(&mut self, api: &str, body: &[u8], reply: &str) {
        let msg = Message {
            subject: Subject::new(&format!("$JS.API.{api}")).unwrap(),
            reply_to: Some(Subject::new(&format!("_R.{reply}")).unwrap()),
            payload: Bytes::copy_from_slice(body),
            ..Message::default()
        };
        self.service.handle(&msg, self.now);
        self.service.run(self.now);
    }

    fn request(&mut self, api: &str, body: &str) -> Value {
        self.send(api, body.as_bytes(), "api");
        let reply = self.replies().pop().expect("a reply");
        serde_json::from_slice(&reply.payload).expect("JSON")
    }

    fn replies(&self) -> Vec<Arc<Message>> {
        std::iter::from_fn(|| self.client.pop().map(|d| d.message)).collect()
    }

    fn publish(&self, subject: &str, payload: &'static [u8]) {
        let msg = Message {
            subject: Subject::new(subject).unwrap(),
            payload: Bytes::from_static(payload),
            ..Message::default()
        };
        self.router.publish(msg, self.now);
    }

    fn later(&mut self, by: Duration) {
        self.now = Now {
            at: self.now.at + by,
            unix_ms: self.now.unix_ms + by.as_millis() as u64,
        };
        self.service.run(self.now);
    }
}

fn status(m: &Message) -> Option<String> {
    m.extensions
        .get(STATUS_EXTENSION)
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

#[test]
fn replies_carry_the_type_and_errors_their_codes() {
    let mut h = Harness::new();
    let created = h.request("STREAM.CREATE.S", r#"{"name":"S","subjects":["s.>"]}"#);
    assert_eq!(
        created["type"],
        "io.nats.jetstream.api.v1.stream_create_response"
    );
    assert_eq!(created["did_create"], true);
    assert_eq!(created["config"]["max_msgs"], -1);
    assert_eq!(created["state"]["first_ts"], "0001-01-01T00:00:00Z");
    let again = h.request("STREAM.CREATE.S", r#"{"name":"S","subjects":["s.>"]}"#);
    assert_eq!(again["did_create"], false);
    let missing = h.request("STREAM.INFO.T", "");
    assert_eq!(missing["error"]["err_code"], 10059);
    assert_eq!(missing["error"]["code"], 404);
    let names = h.request("STREAM.NAMES", r#"{"subject":"s.x"}"#);
    assert_eq!(names["streams"], serde_json::json!(["S"]));
    let unknown = h.request("NOT.AN.API", "");
    assert_eq!(unknown["error"]["err_code"], 10003);
    let info = h.request("INFO", "");
    assert_eq!(info["streams"], 1);
}

#[test]
fn pull_requests_get_messages_then_nats_servers_statuses() {
    let mut h = Harness::new();
    h.request("STREAM.CREATE.S", r#"{"name":"S","subjects":["s.>"]}"#);
    let c = h.request(
        "CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"durable_name":"C"}}"#,
    );
    assert_eq!(c["name"], "C");
    // Nothing there, no_wait: 404 at once.
    h.send(
        "CONSUMER.MSG.NEXT.S.C",
        br#"{"batch":2,"no_wait":true}"#,
        "p1",
    );
    let got = h.replies();
    assert_eq!(status(&got[0]).as_deref(), Some("404 No Messages"));
    // One of two there, no_wait: the message, then 408 with what is still wanted.
    h.publish("s.a", b"one");
    h.send(
        "CONSUMER.MSG.NEXT.S.C",
        br#"{"batch":2,"no_wait":true}"#,
        "p2",
    );
    let got = h.replies();
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].payload[..], b"one");
    assert_eq!(got[0].subject.as_str(), "_R.p2");
    assert_eq!(
        got[0].extensions.get(SUBJECT_EXTENSION).map(|s| &s[..]),
        Some(&b"s.a"[..])
    );
    let ack = got[0].reply_to.as_ref().unwrap().as_str().to_owned();
    assert!(ack.starts_with("$JS.ACK.S.C.1.1.1."), "{ack}");
    assert_eq!(status(&got[1]).as_deref(), Some("408 Request Timeout"));
    assert!(got[1]
        .headers
        .contains(&("Nats-Pending-Messages".into(), "1".into())));
    // A waiting request is served by a later publish, and expires with 408.
    h.send(
        "CONSUMER.MSG.NEXT.S.C",
        br#"{"batch":2,"expires":1000000000}"#,
        "p3",
    );
    assert!(h.replies().is_empty());
    h.publish("s.b", b"two");
    h.service.run(h.now);
    let got = h.replies();
    assert_eq!(&got[0].payload[..], b"two");
    h.later(Duration::from_secs(2));
    let got = h.replies();
    assert_eq!(status(&got[0]).as_deref(), Some("408 Request Timeout"));
    // A NAK redelivers with the delivery count in the ack subject.
    let nak = Message {
        subject: Subject::new(&ack).unwrap(),
        payload: Bytes::from_static(b"-NAK"),
        ..Message::default()
    };
    h.service.handle(&nak, h.now);
    h.send("CONSUMER.MSG.NEXT.S.C", br#"{"batch":1}"#, "p4");
    let got = h.replies();
    assert_eq!(&got[0].payload[..], b"one");
    let again = got[0].reply_to.as_ref().unwrap().as_str();
    assert!(again.starts_with("$JS.ACK.S.C.2.1."), "{again}");
    // A request for a consumer that does not exist: no responders.
    h.send("CONSUMER.MSG.NEXT.S.NOPE", b"", "p5");
    assert_eq!(status(&h.replies()[0]).as_deref(), Some("503"));
}

#[test]
fn ephemeral_consumers_go_after_their_inactive_threshold() {
    let mut h = Harness::new();
    h.request("STREAM.CREATE.S", r#"{"name":"S"}"#);
    let c = h.request(
        "CONSUMER.CREATE.S",
        r#"{"stream_name":"S","config":{"inactive_threshold":1000000000}}"#,
    );
    let name = c["name"].as_str().unwrap().to_owned();
    assert_eq!(name.len(), 8);
    h.later(Duration::from_millis(500));
    assert!(h.router.stream("S").unwrap().consumer_info(&name).is_some());
    h.later(Duration::from_millis(600));
    assert!(h.router.stream("S").unwrap().consumer_info(&name).is_none());
}

const APIS: &[&str] = &[
    "INFO",
    "STREAM.CREATE.S",
    "STREAM.UPDATE.S",
    "STREAM.INFO.S",
    "STREAM.DELETE.S",
    "STREAM.PURGE.S",
    "STREAM.NAMES",
    "STREAM.LIST",
    "STREAM.MSG.GET.S",
    "STREAM.MSG.DELETE.S",
    "CONSUMER.CREATE.S",
    "CONSUMER.CREATE.S.C",
    "CONSUMER.CREATE.S.C.s.x",
    "CONSUMER.DURABLE.CREATE.S.C",
    "CONSUMER.INFO.S.C",
    "CONSUMER.DELETE.S.C",
    "CONSUMER.NAMES.S",
    "CONSUMER.LIST.S",
    "CONSUMER.MSG.NEXT.S.C",
];

const KEYS: &[&str] = &[
    "name",
    "subjects",
    "retention",
    "max_msgs",
    "max_bytes",
    "max_age",
    "max_msg_size",
    "discard",
    "storage",
    "duplicate_window",
    "sealed",
    "deny_delete",
    "deny_purge",
    "stream_name",
    "config",
    "durable_name",
    "deliver_policy",
    "opt_start_seq",
    "opt_start_time",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "backoff",
    "filter_subject",
    "filter_subjects",
    "max_waiting",
    "max_ack_pending",
    "deliver_subject",
    "deliver_group",
    "idle_heartbeat",
    "flow_control",
    "inactive_threshold",
    "batch",
    "expires",
    "no_wait",
    "seq",
    "last_by_subj",
    "next_by_subj",
    "keep",
    "filter",
    "offset",
    "subject",
    "action",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just("S"),
            Just("C"),
            Just("s.>"),
            Just("*"),
            Just(""),
            Just("a b"),
            Just("all"),
            Just("new"),
            Just("by_start_sequence"),
            Just("by_start_time"),
            Just("last_per_subject"),
            Just("explicit"),
            Just("none"),
            Just("workqueue"),
            Just("interest"),
            Just("memory"),
            Just("2026-12-06T16:48:35Z"),
            Just("create"),
            Just("update"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a client sends, the service answers every API request with a
    /// reply and never panics, and publishes and acks in between do not either.
    #[test]
    fn arbitrary_requests_are_answered_and_never_panic(
        steps in prop::collection::vec((prop::sample::select(APIS), body()), 1..24)
    ) {
        let mut h = Harness::new();
        for (i, (api, body)) in steps.iter().enumerate() {
            h.send(api, body, &format!("r{i}"));
            if !api.starts_with("CONSUMER.MSG.NEXT") {
                let replies = h.replies();
                prop_assert!(
                    replies.iter().any(|m| m.subject.as_str() == format!("_R.r{i}")),
                    "no reply to {} {:?}", api, String::from_utf8_lossy(body)
                );
            }
            h.publish("s.x", b"m");
            h.later(Duration::from_millis(700));
            for m in h.replies() {
                if let Some(ack) = &m.reply_to {
                    let ack = Message {
                        subject: ack.clone(),
                        payload: Bytes::from_static(b"-NAK {\"delay\": 1}"),
                        ..Message::default()
                    };
                    h.service.handle(&ack, h.now);
                }
            }
        }
    }
}

#[test]
fn api_subjects_name_the_stream_they_configure_or_read() {
    use super::{stream_use, StreamUse};
    assert_eq!(
        stream_use("$JS.API.STREAM.CREATE.ORDERS"),
        Some(StreamUse::Configure("ORDERS"))
    );
    assert_eq!(
        stream_use("$JS.API.CONSUMER.CREATE.ORDERS.c1.orders.>"),
        Some(StreamUse::Configure("ORDERS"))
    );
    assert_eq!(
        stream_use("$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.c1"),
        Some(StreamUse::Configure("ORDERS"))
    );
    assert_eq!(
        stream_use("$JS.API.CONSUMER.MSG.NEXT.ORDERS.c1"),
        Some(StreamUse::Read("ORDERS"))
    );
    assert_eq!(
        stream_use("$JS.API.STREAM.MSG.GET.ORDERS"),
        Some(StreamUse::Read("ORDERS"))
    );
    assert_eq!(stream_use("$JS.API.STREAM.INFO.ORDERS"), None);
    assert_eq!(stream_use("$JS.API.INFO"), None);
    assert_eq!(stream_use("orders.new"), None);
}
