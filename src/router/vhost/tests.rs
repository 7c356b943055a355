use std::sync::Arc;
use std::time::Duration;

use super::exchanges::{Dest, ExchangeKind, ExchangeSpec};
use super::*;
use crate::router::deaths::{self, DeathReason};
use crate::router::queues::{
    ConsumerId, ConsumerSpec, Credit, Entry, Outlet, OutletItem, Overflow, QueueArgs, QueueSpec,
    QueueStats,
};
use crate::router::{Filter, Message, Now, OutboxLimits, RetainedLimits, SubOptions, Subject};

fn router() -> Router {
    Router::new(
        OutboxLimits {
            max_messages: 100,
            max_bytes: 1 << 20,
        },
        RetainedLimits {
            max_messages: 100,
            max_bytes: 1 << 20,
        },
        DEFAULT_VHOST_LIMITS,
    )
}

fn t0() -> Now {
    Now {
        at: std::time::Instant::now(),
        unix_ms: 1_700_000_000_000,
    }
}

fn later(now: Now, ms: u64) -> Now {
    Now {
        at: now.at + Duration::from_millis(ms),
        unix_ms: now.unix_ms + ms,
    }
}

fn msg(payload: &'static str) -> Message {
    Message {
        payload: payload.into(),
        ..Message::default()
    }
}

fn declare(r: &Router, name: &str, args: QueueArgs, now: Now) -> Arc<Queue> {
    let spec = QueueSpec {
        args,
        ..QueueSpec::default()
    };
    r.declare_queue(name, spec, false, 1, now).unwrap()
}

fn exchange(r: &Router, name: &str, kind: ExchangeKind) {
    let spec = ExchangeSpec {
        kind,
        durable: false,
        auto_delete: false,
        internal: false,
        alternate_exchange: None,
    };
    r.declare_exchange(name, spec, false).unwrap();
}

fn get_all(r: &Router, q: &Arc<Queue>, now: Now) -> Vec<Entry> {
    std::iter::from_fn(|| r.get(q, now).map(|(e, _)| e)).collect()
}

fn payloads(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.message.payload.to_vec()).unwrap())
        .collect()
}

fn consumer(r: &Router, outlet: &Arc<Outlet>, credit: u32, channel: &Arc<Credit>) -> ConsumerSpec {
    ConsumerSpec {
        id: r.next_consumer_id(),
        no_ack: false,
        exclusive: false,
        credit: Arc::new(Credit::new(credit)),
        channel_credit: channel.clone(),
        outlet: outlet.clone(),
        priority: 0,
    }
}

fn delivered(outlet: &Outlet) -> Vec<(ConsumerId, Entry)> {
    let mut items = Vec::new();
    outlet.drain(&mut items);
    items
        .into_iter()
        .filter_map(|i| match i {
            OutletItem::Deliver {
                consumer, entry, ..
            } => Some((consumer, entry)),
            OutletItem::Cancelled { .. } => None,
        })
        .collect()
}

#[test]
fn cancel_consumer_takes_back_what_its_outlet_holds_and_leaves_the_rest() {
    let r = router();
    let now = t0();
    let q = declare(&r, "q", QueueArgs::default(), now);
    let other = declare(&r, "other", QueueArgs::default(), now);
    let outlet = Arc::new(Outlet::new(100));
    let channel = Arc::new(Credit::new(0));
    let c = consumer(&r, &outlet, 0, &channel);
    let id = c.id;
    r.consume(&q, c, now).unwrap();
    r.consume(&other, consumer(&r, &outlet, 0, &channel), now)
        .unwrap();
    for p in ["a", "b", "c"] {
        r.publish_to_exchange("", "q", msg(p), now).unwrap();
    }
    r.publish_to_exchange("", "other", msg("kept"), now)
        .unwrap();
    assert_eq!(outlet.len(), 4);
    assert_eq!(r.cancel_consumer(&q, id, &outlet, now), 3);
    // Back in the queue, in order, redelivered; the other consumer's delivery stays.
    let back = get_all(&r, &q, now);
    assert_eq!(payloads(&back), ["a", "b", "c"]);
    assert!(back.iter().all(|e| e.redelivered));
    let left = delivered(&outlet);
    assert_eq!(
        payloads(&left.into_iter().map(|(_, e)| e).collect::<Vec<_>>()),
        ["kept"]
    );
}

#[test]
fn declare_redeclare_and_exclusive_lock() {
    let r = router();
    let now = t0();
    let q = declare(&r, "q", QueueArgs::default(), now);
    assert_eq!(q.name(), "q");
    // Same declaration: the same queue.
    assert!(Arc::ptr_eq(
        &q,
        &declare(&r, "q", QueueArgs::default(), now)
    ));
    let ttl = QueueArgs {
        message_ttl: Some(Duration::from_secs(1)),
        ..QueueArgs::default()
    };
    let err = r
        .declare_queue(
            "q",
            QueueSpec {
                args: ttl,
                ..QueueSpec::default()
            },
            false,
            1,
            now,
        )
        .unwrap_err();
    assert!(
        matches!(&err, VhostError::Inequivalent { arg, .. } if arg == "x-message-ttl"),
        "{err}"
    );
    let durable = QueueSpec {
        durable: true,
        ..QueueSpec::default()
    };
    let err = r.declare_queue("q", durable, false, 1, now).unwrap_err();
    assert!(matches!(&err, VhostError::Inequivalent { arg, .. } if arg == "durable"));
    // Passive.
    assert!(r
        .declare_queue("q", QueueSpec::default(), true, 2, now)
        .is_ok());
    assert!(matches!(
        r.declare_queue("nope", QueueSpec::default(), true, 1, now),
        Err(VhostError::NotFound { kind: "queue", .. })
    ));
    // Exclusive: locked for other connections, even passively.
    let excl = QueueSpec {
        exclusive_owner: Some(7),
        ..QueueSpec::default()
    };
    r.declare_queue("x", excl.clone(), false, 7, now).unwrap();
    assert_eq!(
        r.declare_queue("x", QueueSpec::default(), true, 8, now)
            .unwrap_err(),
        VhostError::Locked("x".into())
    );
    assert_eq!(r.queue("x", 8).unwrap_err(), VhostError::Locked("x".into()));
    assert!(r.queue("x", 7).is_ok());
    // Server-named.
    let gen = r
        .declare_queue("", QueueSpec::default(), false, 1, now)
        .unwrap();
    assert!(
        gen.name().starts_with("amq.gen-") && gen.name().len() == 30,
        "{}",
        gen.name()
    );
    // Reserved names.
    assert!(matches!(
        r.declare_queue("amq.q", QueueSpec::default(), false, 1, now),
        Err(VhostError::AccessRefused(_))
    ));
    let spec = ExchangeSpec {
        kind: ExchangeKind::Direct,
        durable: false,
        auto_delete: false,
        internal: false,
        alternate_exchange: None,
    };
    assert!(matches!(
        r.declare_exchange("amq.foo", spec.clone(), false),
        Err(VhostError::AccessRefused(_))
    ));
    r.declare_exchange("e", spec.clone(), false).unwrap();
    let fanout = ExchangeSpec {
        kind: ExchangeKind::Fanout,
        ..spec
    };
    assert!(matches!(
        r.declare_exchange("e", fanout, false),
        Err(VhostError::InUse { .. } | VhostError::Inequivalent { .. })
    ));
    assert!(matches!(
        r.delete_exchange("amq.direct", false),
        Err(VhostError::AccessRefused(_))
    ));
    assert!(r.delete_exchange("absent", false).is_ok());
    assert_eq!(r.delete_queue("absent", 1, false, false), Ok(0));
    assert_eq!(r.queue_count(), 3);
}

#[test]
fn direct_fanout_headers_routing() {
    let r = router();
    let now = t0();
    let a = declare(&r, "a", QueueArgs::default(), now);
    let b = declare(&r, "b", QueueArgs::default(), now);
    // Default exchange.
    let routed = r.publish_to_exchange("", "a", msg("1"), now).unwrap();
    assert_eq!((routed.matched, routed.queued), (1, 1));
    assert_eq!(
        r.publish_to_exchange("", "zz", msg("1"), now)
            .unwrap()
            .matched,
        0
    );
    assert!(matches!(
        r.publish_to_exchange("missing", "a", msg("1"), now),
        Err(VhostError::NotFound {
            kind: "exchange",
            ..
        })
    ));
    r.bind("amq.direct", Dest::Queue("a".into()), "k", vec![])
        .unwrap();
    r.bind("amq.direct", Dest::Queue("a".into()), "k", vec![])
        .unwrap();
    r.bind("amq.direct", Dest::Queue("b".into()), "k", vec![])
        .unwrap();
    assert_eq!(
        r.publish_to_exchange("amq.direct", "k", msg("2"), now)
            .unwrap()
            .queued,
        2
    );
    assert_eq!(
        r.publish_to_exchange("amq.direct", "j", msg("2"), now)
            .unwrap()
            .queued,
        0
    );
    r.bind("amq.fanout", Dest::Queue("b".into()), "", vec![])
        .unwrap();
    assert_eq!(
        r.publish_to_exchange("amq.fanout", "whatever", msg("3"), now)
            .unwrap()
            .queued,
        1
    );
    r.bind(
        "amq.headers",
        Dest::Queue("a".into()),
        "",
        vec![
            ("x-match".into(), Some("any".into())),
            ("h".into(), Some("1".into())),
        ],
    )
    .unwrap();
    let with = |v: &str| Message {
        headers: vec![("h".into(), v.into())],
        ..msg("4")
    };
    assert_eq!(
        r.publish_to_exchange("amq.headers", "", with("1"), now)
            .unwrap()
            .queued,
        1
    );
    assert_eq!(
        r.publish_to_exchange("amq.headers", "", with("2"), now)
            .unwrap()
            .queued,
        0
    );
    assert_eq!(payloads(&get_all(&r, &a, now)), ["1", "2", "4"]);
    let got = get_all(&r, &b, now);
    assert_eq!(payloads(&got), ["2", "3"]);
    assert_eq!(&*got[0].exchange, "amq.direct");
    assert_eq!(&*got[0].routing_key, "k");
    // Unbind.
    r.unbind("amq.direct", Dest::Queue("b".into()), "k", &vec![])
        .unwrap();
    assert_eq!(
        r.publish_to_exchange("amq.direct", "k", msg("5"), now)
            .unwrap()
            .queued,
        1
    );
    // Deleting a queue removes its bindings.
    r.delete_queue("a", 1, false, false).unwrap();
    assert_eq!(
        r.publish_to_exchange("amq.direct", "k", msg("6"), now)
            .unwrap()
            .matched,
        0
    );
    assert!(matches!(
        r.bind("", Dest::Queue("b".into()), "x", vec![]),
        Err(VhostError::AccessRefused(_))
    ));
}

#[test]
fn topic_routing_e2e_cycle_and_alternate() {
    let r = router();
    let now = t0();
    let q = declare(&r, "q", QueueArgs::default(), now);
    let empty = declare(&r, "empty", QueueArgs::default(), now);
    exchange(&r, "t", ExchangeKind::Topic);
    r.bind("t", Dest::Queue("q".into()), "a.*.c", vec![])
        .unwrap();
    r.bind("t", Dest::Queue("q".into()), "a.#", vec![]).unwrap();
    r.bind("t", Dest::Queue("empty".into()), "#", vec![])
        .unwrap();
    let routed = r.publish_to_exchange("t", "a.b.c", msg("1"), now).unwrap();
    assert_eq!(routed.queued, 2, "q once, empty once");
    r.publish_to_exchange("t", "", msg("2"), now).unwrap();
    assert_eq!(q.message_count(), 1);
    assert_eq!(empty.message_count(), 2);
    // Exchange-to-exchange with a cycle.
    exchange(&r, "f1", ExchangeKind::Fanout);
    exchange(&r, "f2", ExchangeKind::Fanout);
    r.bind("f1", Dest::Exchange("f2".into()), "", vec![])
        .unwrap();
    r.bind("f2", Dest::Exchange("f1".into()), "", vec![])
        .unwrap();
    r.bind("f2", Dest::Exchange("t".into()), "", vec![])
        .unwrap();
    let routed = r.publish_to_exchange("f1", "a.x", msg("3"), now).unwrap();
    assert_eq!(routed.queued, 2);
    let got = get_all(&r, &q, now);
    assert_eq!(payloads(&got), ["1", "3"]);
    assert_eq!(&*got[1].exchange, "f1");
    // Alternate exchange for unroutable messages.
    let spec = ExchangeSpec {
        kind: ExchangeKind::Direct,
        durable: false,
        auto_delete: false,
        internal: false,
        alternate_exchange: Some("amq.fanout".into()),
    };
    r.declare_exchange("d", spec.clone(), false).unwrap();
    r.bind("amq.fanout", Dest::Queue("q".into()), "", vec![])
        .unwrap();
    assert_eq!(
        r.publish_to_exchange("d", "nothing", msg("4"), now)
            .unwrap()
            .queued,
        1
    );
    assert_eq!(q.message_count(), 1);
    // An exchange reached through a binding that routes nowhere uses its own
    // alternate exchange; the one published to routed somewhere, so not its own.
    exchange(&r, "outer", ExchangeKind::Fanout);
    let inner = ExchangeSpec {
        alternate_exchange: Some("inner-ae".into()),
        ..spec.clone()
    };
    r.declare_exchange("inner", inner, false).unwrap();
    exchange(&r, "inner-ae", ExchangeKind::Fanout);
    let caught = declare(&r, "caught", QueueArgs::default(), now);
    r.bind("outer", Dest::Exchange("inner".into()), "", vec![])
        .unwrap();
    r.bind("inner-ae", Dest::Queue("caught".into()), "", vec![])
        .unwrap();
    let routed = r
        .publish_to_exchange("outer", "nobody", msg("5"), now)
        .unwrap();
    assert_eq!(routed.queued, 1);
    assert_eq!(payloads(&get_all(&r, &caught, now)), ["5"]);
    // An alternate exchange cycle ends.
    let looped = |ae: &str| ExchangeSpec {
        alternate_exchange: Some(ae.into()),
        ..spec.clone()
    };
    r.declare_exchange("ae1", looped("ae2"), false).unwrap();
    r.declare_exchange("ae2", looped("ae1"), false).unwrap();
    let routed = r
        .publish_to_exchange("ae1", "nobody", msg("6"), now)
        .unwrap();
    assert_eq!(routed.matched, 0);
    // Deleting an exchange removes bindings to it.
    r.delete_exchange("t", false).unwrap();
    assert_eq!(
        r.publish_to_exchange("f1", "a.x", msg("5"), now)
            .unwrap()
            .matched,
        0
    );
    assert!(matches!(
        r.delete_exchange("f1", true),
        Err(VhostError::InUse { .. })
    ));
}

#[test]
fn amq_topic_shares_the_subject_space() {
    let r = router();
    let now = t0();
    let q = declare(&r, "q", QueueArgs::default(), now);
    let all = declare(&r, "all", QueueArgs::default(), now);
    r.bind(
        "amq.topic",
        Dest::Queue("q".into()),
        "sensors.*.temp",
        vec![],
    )
    .unwrap();
    r.bind("amq.topic", Dest::Queue("q".into()), "sensors.#", vec![])
        .unwrap();
    r.bind("amq.topic", Dest::Queue("all".into()), "#", vec![])
        .unwrap();
    // An MQTT-style publish reaches the queue once.
    let m = Message {
        subject: Subject::from_mqtt_topic("sensors/kitchen/temp").unwrap(),
        ..msg("21.5")
    };
    let routed = r.publish(m, now);
    assert_eq!((routed.matched, routed.queued), (2, 2));
    let got = get_all(&r, &q, now);
    assert_eq!(got.len(), 1);
    assert_eq!(&*got[0].exchange, "amq.topic");
    assert_eq!(&*got[0].routing_key, "sensors.kitchen.temp");
    // An AMQP publish to amq.topic reaches subject-space subscribers.
    let s = r.open_session();
    r.subscribe(
        s.id(),
        Filter::mqtt("sensors/#").unwrap(),
        SubOptions::default(),
    );
    let routed = r
        .publish_to_exchange("amq.topic", "sensors.x", msg("p"), now)
        .unwrap();
    assert_eq!(routed.queued, 3);
    assert_eq!(s.pop().unwrap().message.subject.as_str(), "sensors.x");
    assert_eq!(q.message_count(), 1);
    // The empty key: only `#` bindings.
    r.publish_to_exchange("amq.topic", "", msg("e"), now)
        .unwrap();
    assert_eq!(all.message_count(), 3);
    // Direct reply-to into the subject space.
    let reply = r.open_session();
    r.subscribe(
        reply.id(),
        Filter::nats("_INBOX.abc").unwrap(),
        SubOptions::default(),
    );
    let routed = r
        .publish_to_exchange("", "amq.rabbitmq.reply-to._INBOX.abc", msg("r"), now)
        .unwrap();
    // The session, and the queue bound to amq.topic with `#`.
    assert_eq!(routed.queued, 2);
    assert_eq!(reply.len(), 1);
    // Unbinding removes it from the trie.
    r.unbind("amq.topic", Dest::Queue("all".into()), "#", &vec![])
        .unwrap();
    r.unbind("amq.topic", Dest::Queue("q".into()), "sensors.#", &vec![])
        .unwrap();
    r.unbind(
        "amq.topic",
        Dest::Queue("q".into()),
        "sensors.*.temp",
        &vec![],
    )
    .unwrap();
    r.unsubscribe(s.id(), &Filter::mqtt("sensors/#").unwrap(), None);
    r.unsubscribe(reply.id(), &Filter::nats("_INBOX.abc").unwrap(), None);
    assert!(r.read().trie.is_empty());
}

#[test]
fn consume_with_prefetch_round_robin() {
    let r = router();
    let now = t0();
    let q = declare(&r, "q", QueueArgs::default(), now);
    let outlet = Arc::new(Outlet::new(100));
    let channel = Arc::new(Credit::new(0));
    let c1 = consumer(&r, &outlet, 2, &channel);
    let c2 = consumer(&r, &outlet, 2, &channel);
    let (id1, id2) = (c1.id, c2.id);
    let credit1 = c1.credit.clone();
    r.consume(&q, c1, now).unwrap();
    r.consume(&q, c2, now).unwrap();
    for p in ["1", "2", "3", "4", "5", "6"] {
        r.publish_to_exchange("", "q", msg(p), now).unwrap();
    }
    let got = delivered(&outlet);
    let ids: Vec<ConsumerId> = got.iter().map(|(c, _)| *c).collect();
    assert_eq!(ids, [id1, id2, id1, id2]);
    assert_eq!(q.message_count(), 2);
    // Acking one of c1's frees one credit.
    credit1.release(1);
    r.kick(&q, now);
    let got = delivered(&outlet);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, id1);
    assert_eq!(payloads(&[got[0].1.clone()]), ["5"]);
    // Channel credit caps both.
    let q2 = declare(&r, "q2", QueueArgs::default(), now);
    let ch = Arc::new(Credit::new(1));
    r.consume(&q2, consumer(&r, &outlet, 0, &ch), now).unwrap();
    r.consume(&q2, consumer(&r, &outlet, 0, &ch), now).unwrap();
    r.publish_to_exchange("", "q2", msg("a"), now).unwrap();
    r.publish_to_exchange("", "q2", msg("b"), now).unwrap();
    assert_eq!(delivered(&outlet).len(), 1);
    // A full outlet is skipped until kicked.
    let small = Arc::new(Outlet::new(1));
    let q3 = declare(&r, "q3", QueueArgs::default(), now);
    r.consume(&q3, consumer(&r, &small, 0, &Arc::new(Credit::new(0))), now)
        .unwrap();
    r.publish_to_exchange("", "q3", msg("a"), now).unwrap();
    r.publish_to_exchange("", "q3", msg("b"), now).unwrap();
    assert_eq!(delivered(&small).len(), 1);
    r.kick(&q3, now);
    assert_eq!(delivered(&small).len(), 1);
    // Exclusive consumers.
    let ex = ConsumerSpec {
        exclusive: true,
        ..consumer(&r, &outlet, 0, &channel)
    };
    assert_eq!(
        r.consume(&q, ex, now),
        Err(VhostError::ExclusiveConsumer("q".into()))
    );
}

#[test]
fn every_delivery_is_unacked_until_settled() {
    let r = router();
    let now = t0();
    let dlq = declare(&r, "dlq", QueueArgs::default(), now);
    let args = QueueArgs {
        dead_letter_exchange: Some(String::new()),
        dead_letter_routing_key: Some("dlq".into()),
        ..QueueArgs::default()
    };
    let q = declare(&r, "q", args, now);
    let outlet = Arc::new(Outlet::new(100));
    r.consume(&q, consumer(&r, &outlet, 0, &Arc::new(Credit::new(0))), now)
        .unwrap();
    for p in ["1", "2", "3", "4"] {
        r.publish_to_exchange("", "q", msg(p), now).unwrap();
    }
    let stats = q.stats();
    assert_eq!((stats.ready, stats.unacked, stats.consumers), (0, 4, 1));
    let mut got = delivered(&outlet).into_iter().map(|(_, e)| e);
    r.ack(&q, got.next().unwrap(), now);
    r.reject(&q, got.next().unwrap(), now);
    assert_eq!(q.stats().unacked, 2);
    assert_eq!(dlq.stats().ready, 1);
    let rest: Vec<Entry> = got.collect();
    r.return_unsettled(rest.into_iter().map(|e| (q.clone(), e)), &outlet, now);
    // Requeued entries go straight back to the consumer: unacked again.
    assert_eq!(q.stats().unacked, 2);
    for (_, e) in delivered(&outlet) {
        assert!(e.redelivered);
        r.ack(&q, e, now);
    }
    assert_eq!(
        q.stats(),
        QueueStats {
            consumers: 1,
            ..QueueStats::default()
        }
    );
    // basic.get hands out an unacked entry too.
    r.publish_to_exchange("", "dlq", msg("5"), now).unwrap();
    let (e, left) = r.get(&dlq, now).unwrap();
    assert_eq!((left, dlq.stats().unacked), (1, 1));
    r.requeue(&dlq, vec![e], now);
    assert_eq!((dlq.stats().ready, dlq.stats().unacked), (2, 0));
}

#[test]
fn requeue_keeps_order_and_marks_redelivered() {
    let r = router();
    let now = t0();
    let q = declare(&r, "q", QueueArgs::default(), now);
    for p in ["1", "2", "3", "4"] {
        r.publish_to_exchange("", "q", msg(p), now).unwrap();
    }
    let (e1, left) = r.get(&q, now).unwrap();
    assert_eq!(left, 3);
    let (e2, _) = r.get(&q, now).unwrap();
    let (e3, _) = r.get(&q, now).unwrap();
    assert!(!e1.redelivered);
    r.requeue(&q, vec![e3, e1, e2], now);
    let got = get_all(&r, &q, now);
    assert_eq!(payloads(&got), ["1", "2", "3", "4"]);
    assert_eq!(
        got.iter().map(|e| e.redelivered).collect::<Vec<_>>(),
        [true, true, true, false]
    );
    // Taken and not settled: still held, until acked.
    assert!(r.memory().held() > 0);
    r.ack_all(got.into_iter().map(|e| (q.clone(), e)), now);
    assert_eq!(r.memory().held(), 0);
}

#[test]
fn ttl_expiry_dead_letters_with_a_death_record() {
    let r = router();
    let now = t0();
    let dlq = declare(&r, "dlq", QueueArgs::default(), now);
    let args = QueueArgs {
        message_ttl: Some(Duration::from_millis(100)),
        dead_letter_exchange: Some(String::new()),
        dead_letter_routing_key: Some("dlq".into()),
        ..QueueArgs::default()
    };
    let q = declare(&r, "q", args, now);
    r.publish_to_exchange("", "q", msg("old"), now).unwrap();
    assert!(r.memory().held() > 0);
    r.vhost_housekeeping(later(now, 50));
    assert_eq!((q.message_count(), dlq.message_count()), (1, 0));
    let t = later(now, 100);
    r.vhost_housekeeping(t);
    assert_eq!((q.message_count(), dlq.message_count()), (0, 1));
    let (e, _) = r.get(&dlq, t).unwrap();
    let d = &deaths::deaths(&e.message)[0];
    assert_eq!(d.queue, "q");
    assert_eq!(d.reason, DeathReason::Expired);
    assert_eq!(d.exchange, "");
    assert_eq!(d.routing_keys, ["q"]);
    assert_eq!(d.count, 1);
    assert_eq!(d.time_ms, t.unix_ms);
    assert_eq!(&*e.routing_key, "dlq");
    r.ack(&dlq, e, t);
    // Rejected (no requeue) dead-letters too.
    r.publish_to_exchange("", "q", msg("rej"), t).unwrap();
    let (e, _) = r.get(&q, t).unwrap();
    r.reject(&q, e, t);
    let (e, _) = r.get(&dlq, t).unwrap();
    assert_eq!(deaths::deaths(&e.message)[0].reason, DeathReason::Rejected);
    r.ack(&dlq, e, t);
    assert_eq!(r.memory().held(), 0);
}

#[test]
fn max_length_drop_head_and_reject_publish() {
    let r = router();
    let now = t0();
    let args = QueueArgs {
        max_length: Some(2),
        ..QueueArgs::default()
    };
    let q = declare(&r, "q", args, now);
    for p in ["1", "2", "3"] {
        assert_eq!(
            r.publish_to_exchange("", "q", msg(p), now).unwrap().queued,
            1
        );
    }
    assert_eq!(payloads(&get_all(&r, &q, now)), ["2", "3"]);
    let args = QueueArgs {
        max_length: Some(2),
        overflow: Overflow::RejectPublish,
        ..QueueArgs::default()
    };
    let q = declare(&r, "rp", args, now);
    let counts: Vec<(usize, usize)> = ["1", "2", "3"]
        .iter()
        .map(|p| {
            let routed = r.publish_to_exchange("", "rp", msg(p), now).unwrap();
            (routed.queued, routed.rejected)
        })
        .collect();
    assert_eq!(counts, [(1, 0), (1, 0), (0, 1)]);
    assert_eq!(payloads(&get_all(&r, &q, now)), ["1", "2"]);
    // A single message over max-length-bytes is dropped.
    let args = QueueArgs {
        max_length_bytes: Some(3),
        ..QueueArgs::default()
    };
    let q = declare(&r, "mb", args, now);
    r.publish_to_exchange("", "mb", msg("toolong"), now)
        .unwrap();
    r.publish_to_exchange("", "mb", msg("ok"), now).unwrap();
    assert_eq!(payloads(&get_all(&r, &q, now)), ["ok"]);
}

#[test]
fn priority_order() {
    let r = router();
    let now = t0();
    let args = QueueArgs {
        max_priority: Some(9),
        ..QueueArgs::default()
    };
    let q = declare(&r, "q", args, now);
    for (p, prio) in [("1", 1), ("9", 9), ("5", 5), ("max", 200)] {
        let m = Message {
            priority: Some(prio),
            ..msg(p)
        };
        r.publish_to_exchange("", "q", m, now).unwrap();
    }
    assert_eq!(payloads(&get_all(&r, &q, now)), ["9", "max", "5", "1"]);
}

#[test]
fn self_dead_letter_cycle_terminates() {
    let r = router();
    let now = t0();
    let args = QueueArgs {
        max_length: Some(1),
        dead_letter_exchange: Some(String::new()),
        ..QueueArgs::default()
    };
    let q = declare(&r, "a", args, now);
    for p in ["1", "2", "3"] {
        r.publish_to_exchange("", "a", msg(p), now).unwrap();
    }
    assert_eq!(q.message_count(), 1);
    // A rejected message may re-enter its own queue (it has a Rejected death).
    let (e, _) = r.get(&q, now).unwrap();
    r.reject(&q, e, now);
    let (e, _) = r.get(&q, now).unwrap();
    assert_eq!(deaths::deaths(&e.message)[0].reason, DeathReason::Rejected);
}

#[test]
fn expiry_cycle_after_a_reject_terminates() {
    // q1 dead-letters into q2, which expires at once into itself: after the
    // client's reject the automatic q2 -> q2 cycle must still be cut.
    let r = router();
    let now = t0();
    let dl_to = |rk: &str, ttl: Option<Duration>| QueueArgs {
        dead_letter_exchange: Some(String::new()),
        dead_letter_routing_key: Some(rk.into()),
        message_ttl: ttl,
        ..QueueArgs::default()
    };
    let q1 = declare(&r, "q1", dl_to("q2", None), now);
    let q2 = declare(&r, "q2", dl_to("q2", Some(Duration::ZERO)), now);
    r.publish_to_exchange("", "q1", msg("m"), now).unwrap();
    let (e, _) = r.get(&q1, now).unwrap();
    r.reject(&q1, e, now);
    r.vhost_housekeeping(now);
    assert_eq!(q2.message_count(), 0);
}

#[test]
fn auto_delete_on_last_cancel_and_exclusive_on_close() {
    let r = router();
    let now = t0();
    let spec = QueueSpec {
        auto_delete: true,
        ..QueueSpec::default()
    };
    let q = r.declare_queue("ad", spec, false, 1, now).unwrap();
    r.bind("amq.direct", Dest::Queue("ad".into()), "k", vec![])
        .unwrap();
    let outlet = Arc::new(Outlet::new(10));
    let ch = Arc::new(Credit::new(0));
    let c1 = consumer(&r, &outlet, 0, &ch);
    let c2 = consumer(&r, &outlet, 0, &ch);
    let (id1, id2) = (c1.id, c2.id);
    r.consume(&q, c1, now).unwrap();
    r.consume(&q, c2, now).unwrap();
    r.cancel(&q, id1, now);
    assert_eq!(r.queue_count(), 1);
    r.cancel(&q, id2, now);
    assert_eq!(r.queue_count(), 0);
    assert_eq!(
        r.publish_to_exchange("amq.direct", "k", msg("x"), now)
            .unwrap()
            .matched,
        0
    );
    // Exclusive queue deleted on its connection's close; its consumer cancelled.
    let spec = QueueSpec {
        exclusive_owner: Some(5),
        ..QueueSpec::default()
    };
    let x = r.declare_queue("x", spec, false, 5, now).unwrap();
    r.consume(&x, consumer(&r, &outlet, 0, &ch), now).unwrap();
    r.connection_closed(6, now);
    assert_eq!(r.queue_count(), 1);
    r.connection_closed(5, now);
    assert_eq!(r.queue_count(), 0);
    let mut items = Vec::new();
    outlet.drain(&mut items);
    assert!(matches!(items.as_slice(), [OutletItem::Cancelled { .. }]));
    // x-expires.
    let args = QueueArgs {
        expires: Some(Duration::from_secs(1)),
        ..QueueArgs::default()
    };
    declare(&r, "lease", args, now);
    r.vhost_housekeeping(later(now, 999));
    assert_eq!(r.queue_count(), 1);
    r.vhost_housekeeping(later(now, 1000));
    assert_eq!(r.queue_count(), 0);
}
