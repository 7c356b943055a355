//! AMQP 0-9-1 with lapin against the real listener (the pika suite in
//! tests/interop/test_amqp.py covers the full behaviour list; these prove a Rust
//! client works too).

mod common;

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};
use tokio::time::timeout;

use common::{amqp_channel, amqp_connect, amqp_next, WAIT};

async fn queue(ch: &Channel, args: FieldTable) -> ShortString {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
    q.name().clone()
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap();
}

async fn consume(ch: &Channel, q: &ShortString, no_ack: bool) -> Consumer {
    ch.basic_consume(
        q.clone(),
        "".into(),
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

#[tokio::test]
async fn publish_consume_ack_round_trip_with_properties() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    let mut consumer = consume(&ch, &q, false).await;
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("c-1".into())
        .with_headers(args(&[("n", AMQPValue::LongInt(-5))]));
    publish(&ch, "", q.as_str(), b"hello", props).await;
    let d = amqp_next(&mut consumer).await;
    assert_eq!(d.data, b"hello");
    assert_eq!(d.routing_key.as_str(), q.as_str());
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        d.properties.headers().as_ref().unwrap().inner().get("n"),
        Some(&AMQPValue::LongInt(-5))
    );
    d.acker.ack(BasicAckOptions::default()).await.unwrap();
    // Acked: nothing left to get.
    let got = ch
        .basic_get(q.clone(), BasicGetOptions::default())
        .await
        .unwrap();
    assert!(got.is_none());
}

#[tokio::test]
async fn prefetch_holds_the_next_message_until_ack_and_nack_requeues() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q, false).await;
    publish(&ch, "", q.as_str(), b"1", BasicProperties::default()).await;
    publish(&ch, "", q.as_str(), b"2", BasicProperties::default()).await;
    let first = amqp_next(&mut consumer).await;
    assert_eq!(first.data, b"1");
    assert!(
        timeout(std::time::Duration::from_millis(300), consumer.next())
            .await
            .is_err()
    );
    first
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let again = amqp_next(&mut consumer).await;
    assert_eq!(again.data, b"1");
    assert!(again.redelivered);
    again.acker.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(amqp_next(&mut consumer).await.data, b"2");
}

#[tokio::test]
async fn confirms_ack_nack_on_reject_publish_and_return_unroutable() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = queue(
        &ch,
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ]),
    )
    .await;
    let confirm = |body: &'static [u8], key: String, mandatory: bool| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "".into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory,
                    ..Default::default()
                },
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap()
        }
    };
    assert!(confirm(b"a", q.to_string(), false).await.is_ack());
    assert!(confirm(b"b", q.to_string(), false).await.is_nack());
    let returned = confirm(b"c", "no-such-queue".into(), true).await;
    assert!(returned.is_ack());
    let message = returned.take_message().expect("basic.return");
    assert_eq!(message.reply_code, 312);
    assert_eq!(message.data, b"c");
}

#[tokio::test]
async fn topic_exchange_and_dead_lettering_with_x_death() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    ch.exchange_declare(
        "lapin-topic".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let dlq = queue(&ch, FieldTable::default()).await;
    let q = queue(
        &ch,
        args(&[
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(dlq.as_str().into()),
            ),
        ]),
    )
    .await;
    ch.queue_bind(
        q.clone(),
        "lapin-topic".into(),
        "orders.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(
        &ch,
        "lapin-topic",
        "orders.eu.new",
        b"o1",
        BasicProperties::default(),
    )
    .await;
    publish(
        &ch,
        "lapin-topic",
        "invoices.eu",
        b"skip",
        BasicProperties::default(),
    )
    .await;
    let mut consumer = consume(&ch, &q, false).await;
    let d = amqp_next(&mut consumer).await;
    assert_eq!(
        (d.data.as_slice(), d.routing_key.as_str()),
        (&b"o1"[..], "orders.eu.new")
    );
    d.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let mut dead = consume(&ch, &dlq, true).await;
    let d = amqp_next(&mut dead).await;
    assert_eq!(d.data, b"o1");
    let headers = d.properties.headers().clone().unwrap();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("no x-death: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("x-death is empty");
    };
    assert_eq!(
        death.inner().get("reason"),
        Some(&AMQPValue::LongString("rejected".into()))
    );
    assert_eq!(
        death.inner().get("queue"),
        Some(&AMQPValue::LongString(q.as_str().into()))
    );
}

#[tokio::test]
async fn direct_reply_to_rpc() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let (_c2, server) = amqp_channel(&broker).await;
    let requests = queue(&server, FieldTable::default()).await;
    let mut replies = consume(&ch, &"amq.rabbitmq.reply-to".into(), true).await;
    publish(
        &ch,
        "",
        requests.as_str(),
        b"ping",
        BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
    )
    .await;
    let mut incoming = consume(&server, &requests, true).await;
    let req = amqp_next(&mut incoming).await;
    let reply_to = req.properties.reply_to().clone().unwrap();
    assert!(
        reply_to.as_str().starts_with("amq.rabbitmq.reply-to."),
        "{reply_to}"
    );
    publish(
        &server,
        "",
        reply_to.as_str(),
        b"pong",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(amqp_next(&mut replies).await.data, b"pong");
}

#[tokio::test]
async fn a_message_spanning_many_frames_round_trips() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    publish(&ch, "", q.as_str(), &body, BasicProperties::default()).await;
    let mut consumer = consume(&ch, &q, true).await;
    assert_eq!(amqp_next(&mut consumer).await.data, body);
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_closes_only_the_channel() {
    let (broker, _) = common::start().await;
    let conn = amqp_connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            "no-such-queue".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("404") || format!("{err}").contains("NOT_FOUND"),
        "{err:?}"
    );
    let ch2 = conn.create_channel().await.unwrap();
    let q = queue(&ch2, FieldTable::default()).await;
    publish(&ch2, "", q.as_str(), b"after", BasicProperties::default()).await;
    let got = ch2
        .basic_get(q, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("message");
    assert_eq!(got.delivery.data, b"after");
}

// ---------------------------------------------------------------------------------------
// The rest of the behaviour list, each with RabbitMQ's outcome (tests/interop/test_amqp.py).

/// A unique name for exchanges and named queues.
fn uid(prefix: &str) -> String {
    format!("{prefix}-{}", common::rand_suffix())
}

/// basic.get with no-ack, bounded by [`WAIT`].
async fn get(ch: &Channel, q: &str) -> Option<lapin::message::BasicGetMessage> {
    timeout(
        WAIT,
        ch.basic_get(q.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get answered in time")
    .unwrap()
}

/// Every message left in `q`, in order, by basic.get.
async fn get_all(ch: &Channel, q: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, q).await {
        out.push(m.delivery.data);
        assert!(out.len() < 1000, "queue {q} never empties");
    }
    out
}

/// The reply code and text of a channel or connection error.
fn amqp_error(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP error, got {other:?}"),
    }
}

/// Asserts a channel/connection error with `code` whose text contains `text`.
fn assert_error<T: std::fmt::Debug>(r: lapin::Result<T>, code: u16, text: &str) {
    let err = r.expect_err("the broker refuses");
    let (got, msg) = amqp_error(&err);
    assert_eq!(got, code, "{msg}");
    assert!(msg.contains(text), "{msg:?} lacks {text:?}");
}

/// A declared exchange that is deleted when its last binding goes.
async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind, arguments: FieldTable) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        arguments,
    )
    .await
    .unwrap();
}

async fn bind(ch: &Channel, q: &str, x: &str, key: &str, arguments: FieldTable) {
    ch.queue_bind(
        q.into(),
        x.into(),
        key.into(),
        QueueBindOptions::default(),
        arguments,
    )
    .await
    .unwrap();
}

/// A channel in confirm mode, so that a publish has been enqueued once it returns.
async fn confirmed(broker: &dwbroker::Broker) -> (Connection, Channel) {
    let (c, ch) = amqp_channel(broker).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (c, ch)
}

async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    let confirmation = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .unwrap();
    let c = timeout(WAIT, confirmation)
        .await
        .expect("confirm in time")
        .unwrap();
    assert!(c.is_ack(), "{c:?}");
}

#[tokio::test]
async fn connect_negotiates_the_servers_tune_offer() {
    let (broker, _) = common::start().await;
    let conn = amqp_connect(&broker).await;
    let cfg = conn.configuration();
    assert_eq!(
        (cfg.frame_max(), cfg.channel_max(), cfg.heartbeat()),
        (131_072, 2047, 60)
    );
    assert!(conn.status().connected());
    timeout(WAIT, conn.close(200, "bye".into()))
        .await
        .unwrap()
        .unwrap();
    // close() returning Ok means close-ok arrived; lapin updates status()
    // asynchronously, so it is not asserted here.
}

#[tokio::test]
async fn default_exchange_publish_and_basic_get_counts_down() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    assert!(get(&ch, q.as_str()).await.is_none(), "get-empty first");
    for i in 0..3 {
        publish_confirmed(
            &ch,
            "",
            q.as_str(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    for (i, left) in [(0, 2), (1, 1), (2, 0)] {
        let m = get(&ch, q.as_str()).await.expect("a message");
        assert_eq!(m.delivery.data, format!("m{i}").into_bytes());
        assert_eq!(
            (
                m.delivery.exchange.as_str(),
                m.delivery.routing_key.as_str(),
                m.delivery.redelivered,
                m.message_count
            ),
            ("", q.as_str(), false, left)
        );
    }
    assert!(get(&ch, q.as_str()).await.is_none());
}

#[tokio::test]
async fn server_named_queue_is_amq_gen() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(q.name().as_str().starts_with("amq.gen-"), "{}", q.name());
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    let q2 = queue(&ch, FieldTable::default()).await;
    assert_ne!(q.name(), &q2, "server names are unique");
}

#[tokio::test]
async fn prefetch_one_holds_the_second_message_until_the_first_is_acked() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q, false).await;
    publish(&ch, "", q.as_str(), b"1", BasicProperties::default()).await;
    publish(&ch, "", q.as_str(), b"2", BasicProperties::default()).await;
    let first = amqp_next(&mut consumer).await;
    assert_eq!(first.data, b"1");
    assert!(
        timeout(std::time::Duration::from_millis(300), consumer.next())
            .await
            .is_err(),
        "the second message came before the ack"
    );
    first.acker.ack(BasicAckOptions::default()).await.unwrap();
    let second = amqp_next(&mut consumer).await;
    assert_eq!(
        (second.data.as_slice(), second.redelivered),
        (&b"2"[..], false)
    );
    assert_ne!(second.delivery_tag, first.delivery_tag);
}

#[tokio::test]
async fn nack_multiple_without_requeue_empties_the_queue() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    for i in 0..3u8 {
        publish(&ch, "", q.as_str(), &[b'0' + i], BasicProperties::default()).await;
    }
    let mut consumer = consume(&ch, &q, false).await;
    let mut last = None;
    for i in 0..3u8 {
        let d = amqp_next(&mut consumer).await;
        assert_eq!(d.data, [b'0' + i]);
        last = Some(d);
    }
    last.unwrap()
        .acker
        .nack(BasicNackOptions {
            multiple: true,
            requeue: false,
        })
        .await
        .unwrap();
    assert!(
        timeout(std::time::Duration::from_millis(300), consumer.next())
            .await
            .is_err(),
        "a discarded message came back"
    );
    assert!(get(&ch, q.as_str()).await.is_none());
}

#[tokio::test]
async fn topic_exchange_star_and_hash() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    // (binding, matching keys, non-matching keys): test_amqp.py's TOPIC_CASES.
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("a.*.c", &["a.b.c", "a..c"], &["a.c", "a.b.b.c", "a.b.c.d"]),
        ("#.c", &["c", "a.c", "a.b.c"], &["a.c.d", "ac"]),
        ("a.#.c", &["a.c", "a.b.c", "a.b.b.c"], &["a.b", "b.a.c"]),
        ("a.#", &["a", "a.b", "a.b.c"], &["b.a", "ab"]),
        ("#", &["a", "a.b.c", ""], &[]),
        ("*", &["a"], &["a.b", ""]),
        ("a.b", &["a.b"], &["a.b.c", "a", "A.b"]),
        ("*.#", &["a", "a.b.c"], &[]),
    ];
    for (binding, good, bad) in cases {
        let x = uid("topic");
        exchange(&ch, &x, ExchangeKind::Topic, FieldTable::default()).await;
        let q = queue(&ch, FieldTable::default()).await;
        bind(&ch, q.as_str(), &x, binding, FieldTable::default()).await;
        for k in good.iter().chain(bad.iter()) {
            publish_confirmed(
                &ch,
                &x,
                k,
                format!("key={k}").as_bytes(),
                BasicProperties::default(),
            )
            .await;
        }
        let want: Vec<Vec<u8>> = good
            .iter()
            .map(|k| format!("key={k}").into_bytes())
            .collect();
        assert_eq!(get_all(&ch, q.as_str()).await, want, "binding {binding:?}");
    }
}

#[tokio::test]
async fn fanout_reaches_every_bound_queue_with_the_original_key() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let x = uid("fanout");
    exchange(&ch, &x, ExchangeKind::Fanout, FieldTable::default()).await;
    let mut qs = Vec::new();
    for _ in 0..3 {
        let q = queue(&ch, FieldTable::default()).await;
        bind(&ch, q.as_str(), &x, "ignored", FieldTable::default()).await;
        qs.push(q);
    }
    publish_confirmed(&ch, &x, "any.key", b"all", BasicProperties::default()).await;
    for q in &qs {
        let m = get(&ch, q.as_str()).await.expect("fanout copy");
        assert_eq!(
            (m.delivery.data.as_slice(), m.delivery.routing_key.as_str()),
            (&b"all"[..], "any.key")
        );
        assert!(get(&ch, q.as_str()).await.is_none());
    }
}

#[tokio::test]
async fn direct_exchange_routes_on_the_exact_key() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let x = uid("direct");
    exchange(&ch, &x, ExchangeKind::Direct, FieldTable::default()).await;
    let qa = queue(&ch, FieldTable::default()).await;
    let qb = queue(&ch, FieldTable::default()).await;
    bind(&ch, qa.as_str(), &x, "a", FieldTable::default()).await;
    bind(&ch, qb.as_str(), &x, "b", FieldTable::default()).await;
    bind(&ch, qb.as_str(), &x, "a", FieldTable::default()).await;
    for k in ["a", "b", "A", "a.b", ""] {
        let body = if k.is_empty() { "empty" } else { k };
        publish_confirmed(&ch, &x, k, body.as_bytes(), BasicProperties::default()).await;
    }
    assert_eq!(get_all(&ch, qa.as_str()).await, [b"a".to_vec()]);
    assert_eq!(
        get_all(&ch, qb.as_str()).await,
        [b"a".to_vec(), b"b".to_vec()]
    );
}

async fn headers_case(x_match: &str, cases: &[(&str, Option<FieldTable>)]) -> Vec<Vec<u8>> {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let x = uid("headers");
    exchange(&ch, &x, ExchangeKind::Headers, FieldTable::default()).await;
    let q = queue(&ch, FieldTable::default()).await;
    bind(
        &ch,
        q.as_str(),
        &x,
        "",
        args(&[
            ("x-match", AMQPValue::LongString(x_match.into())),
            ("a", AMQPValue::LongString("1".into())),
            ("b", AMQPValue::LongInt(2)),
        ]),
    )
    .await;
    for (name, headers) in cases {
        let mut props = BasicProperties::default();
        if let Some(h) = headers {
            props = props.with_headers(h.clone());
        }
        publish_confirmed(&ch, &x, "", name.as_bytes(), props).await;
    }
    get_all(&ch, q.as_str()).await
}

#[tokio::test]
async fn headers_exchange_x_match_all() {
    let s = |v: &str| AMQPValue::LongString(v.into());
    let got = headers_case(
        "all",
        &[
            (
                "both",
                Some(args(&[("a", s("1")), ("b", AMQPValue::LongInt(2))])),
            ),
            (
                "both+extra",
                Some(args(&[
                    ("a", s("1")),
                    ("b", AMQPValue::LongInt(2)),
                    ("c", s("z")),
                ])),
            ),
            ("only-a", Some(args(&[("a", s("1"))]))),
            (
                "wrong-b",
                Some(args(&[("a", s("1")), ("b", AMQPValue::LongInt(3))])),
            ),
            ("none", None),
        ],
    )
    .await;
    assert_eq!(got, [b"both".to_vec(), b"both+extra".to_vec()]);
}

#[tokio::test]
async fn headers_exchange_x_match_any() {
    let s = |v: &str| AMQPValue::LongString(v.into());
    let got = headers_case(
        "any",
        &[
            (
                "both",
                Some(args(&[("a", s("1")), ("b", AMQPValue::LongInt(2))])),
            ),
            ("only-a", Some(args(&[("a", s("1"))]))),
            ("only-b", Some(args(&[("b", AMQPValue::LongInt(2))]))),
            (
                "wrong",
                Some(args(&[("a", s("2")), ("b", AMQPValue::LongInt(3))])),
            ),
            ("none", None),
        ],
    )
    .await;
    assert_eq!(
        got,
        [b"both".to_vec(), b"only-a".to_vec(), b"only-b".to_vec()]
    );
}

#[tokio::test]
async fn exchange_to_exchange_binding_and_unbinding() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let src = uid("e2e-src");
    let dst = uid("e2e-dst");
    exchange(&ch, &src, ExchangeKind::Topic, FieldTable::default()).await;
    exchange(&ch, &dst, ExchangeKind::Direct, FieldTable::default()).await;
    let q = queue(&ch, FieldTable::default()).await;
    bind(&ch, q.as_str(), &dst, "a.b", FieldTable::default()).await;
    ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish_confirmed(&ch, &src, "a.b", b"through", BasicProperties::default()).await;
    publish_confirmed(&ch, &src, "x.y", b"not-bound", BasicProperties::default()).await;
    let m = get(&ch, q.as_str()).await.expect("routed through");
    assert_eq!(
        (
            m.delivery.data.as_slice(),
            m.delivery.exchange.as_str(),
            m.delivery.routing_key.as_str()
        ),
        (&b"through"[..], src.as_str(), "a.b")
    );
    assert!(get(&ch, q.as_str()).await.is_none());
    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish_confirmed(
        &ch,
        &src,
        "a.b",
        b"after-unbind",
        BasicProperties::default(),
    )
    .await;
    publish_confirmed(&ch, &dst, "a.b", b"sentinel", BasicProperties::default()).await;
    assert_eq!(get_all(&ch, q.as_str()).await, [b"sentinel".to_vec()]);
}

#[tokio::test]
async fn alternate_exchange_catches_unroutable_without_a_return() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let ae = uid("ae");
    let x = uid("with-ae");
    exchange(&ch, &ae, ExchangeKind::Fanout, FieldTable::default()).await;
    exchange(
        &ch,
        &x,
        ExchangeKind::Direct,
        args(&[(
            "alternate-exchange",
            AMQPValue::LongString(ae.as_str().into()),
        )]),
    )
    .await;
    let qa = queue(&ch, FieldTable::default()).await;
    let qx = queue(&ch, FieldTable::default()).await;
    bind(&ch, qa.as_str(), &ae, "", FieldTable::default()).await;
    bind(&ch, qx.as_str(), &x, "routed", FieldTable::default()).await;
    let confirmation = ch
        .basic_publish(
            x.as_str().into(),
            "unroutable".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"to-ae",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let c = timeout(WAIT, confirmation).await.unwrap().unwrap();
    assert!(c.is_ack());
    assert!(
        c.take_message().is_none(),
        "routed via the AE: no basic.return"
    );
    publish_confirmed(&ch, &x, "routed", b"direct", BasicProperties::default()).await;
    let m = get(&ch, qa.as_str()).await.expect("in the AE's queue");
    assert_eq!(
        (
            m.delivery.data.as_slice(),
            m.delivery.exchange.as_str(),
            m.delivery.routing_key.as_str()
        ),
        (&b"to-ae"[..], x.as_str(), "unroutable")
    );
    assert_eq!(get_all(&ch, qx.as_str()).await, [b"direct".to_vec()]);
    assert!(get(&ch, qa.as_str()).await.is_none());
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_with_no_route() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let key = uid("nobody");
    let confirmation = ch
        .basic_publish(
            "amq.direct".into(),
            key.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default().with_content_type("text/plain".into()),
        )
        .await
        .unwrap();
    let c = timeout(WAIT, confirmation).await.unwrap().unwrap();
    assert!(c.is_ack(), "basic.return then basic.ack");
    let r = c.take_message().expect("basic.return");
    assert_eq!(
        (
            r.reply_code,
            r.reply_text.as_str(),
            r.exchange.as_str(),
            r.routing_key.as_str(),
            r.data.as_slice()
        ),
        (312, "NO_ROUTE", "amq.direct", key.as_str(), &b"lost"[..])
    );
    assert_eq!(
        r.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    // Not mandatory: dropped silently, still acked.
    publish_confirmed(
        &ch,
        "amq.direct",
        &key,
        b"dropped",
        BasicProperties::default(),
    )
    .await;
}

#[tokio::test]
async fn queue_message_ttl_expires_messages() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let q = queue(&ch, args(&[("x-message-ttl", AMQPValue::LongInt(200))])).await;
    publish_confirmed(
        &ch,
        "",
        q.as_str(),
        b"short-lived",
        BasicProperties::default(),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        get(&ch, q.as_str()).await.is_none(),
        "expired message delivered"
    );
    publish_confirmed(&ch, "", q.as_str(), b"fresh", BasicProperties::default()).await;
    assert_eq!(get_all(&ch, q.as_str()).await, [b"fresh".to_vec()]);
}

#[tokio::test]
async fn per_message_expiration() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    let exp = |ms: &str| BasicProperties::default().with_expiration(ms.into());
    publish_confirmed(&ch, "", q.as_str(), b"short", exp("200")).await;
    publish_confirmed(&ch, "", q.as_str(), b"long", exp("60000")).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let m = get(&ch, q.as_str()).await.expect("the long-lived message");
    assert_eq!(m.delivery.data, b"long");
    assert_eq!(
        m.delivery
            .properties
            .expiration()
            .as_ref()
            .map(|s| s.as_str()),
        Some("60000")
    );
    assert!(get(&ch, q.as_str()).await.is_none());
}

#[tokio::test]
async fn expired_message_is_dead_lettered_with_reason_expired() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let dlx = uid("dlx");
    exchange(&ch, &dlx, ExchangeKind::Direct, FieldTable::default()).await;
    let dlq = queue(&ch, FieldTable::default()).await;
    bind(&ch, dlq.as_str(), &dlx, "dead", FieldTable::default()).await;
    let q = queue(
        &ch,
        args(&[
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(dlx.as_str().into()),
            ),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString("dead".into()),
            ),
        ]),
    )
    .await;
    publish_confirmed(
        &ch,
        "",
        q.as_str(),
        b"expires",
        BasicProperties::default().with_expiration("100".into()),
    )
    .await;
    let mut dead = consume(&ch, &dlq, true).await;
    let d = amqp_next(&mut dead).await;
    assert_eq!(
        (
            d.data.as_slice(),
            d.exchange.as_str(),
            d.routing_key.as_str()
        ),
        (&b"expires"[..], dlx.as_str(), "dead")
    );
    assert!(d.properties.expiration().is_none(), "expiration kept");
    let headers = d.properties.headers().clone().unwrap();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("no x-death: {headers:?}");
    };
    assert_eq!(deaths.as_slice().len(), 1);
    let AMQPValue::FieldTable(death) = &deaths.as_slice()[0] else {
        panic!("x-death entry is not a table");
    };
    let s = |v: &str| Some(AMQPValue::LongString(v.into()));
    let death = death.inner();
    assert_eq!(death.get("reason").cloned(), s("expired"));
    assert_eq!(death.get("queue").cloned(), s(q.as_str()));
    assert_eq!(death.get("exchange").cloned(), s(""));
    assert_eq!(death.get("original-expiration").cloned(), s("100"));
    assert_eq!(
        headers.inner().get("x-first-death-reason").cloned(),
        s("expired")
    );
}

#[tokio::test]
async fn reject_without_requeue_dead_letters_with_x_death() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let dlx = uid("dlx");
    exchange(&ch, &dlx, ExchangeKind::Direct, FieldTable::default()).await;
    let dlq = queue(&ch, FieldTable::default()).await;
    bind(&ch, dlq.as_str(), &dlx, "dead", FieldTable::default()).await;
    let q = queue(
        &ch,
        args(&[
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(dlx.as_str().into()),
            ),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString("dead".into()),
            ),
        ]),
    )
    .await;
    publish(
        &ch,
        "",
        q.as_str(),
        b"bad",
        BasicProperties::default().with_message_id("m1".into()),
    )
    .await;
    let mut consumer = consume(&ch, &q, false).await;
    let d = amqp_next(&mut consumer).await;
    d.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let mut dead = consume(&ch, &dlq, true).await;
    let d = amqp_next(&mut dead).await;
    assert_eq!(
        (
            d.data.as_slice(),
            d.exchange.as_str(),
            d.routing_key.as_str(),
            d.properties.message_id().as_ref().map(|s| s.as_str())
        ),
        (&b"bad"[..], dlx.as_str(), "dead", Some("m1"))
    );
    let headers = d.properties.headers().clone().unwrap();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("no x-death: {headers:?}");
    };
    let [AMQPValue::FieldTable(death)] = deaths.as_slice() else {
        panic!("one x-death entry expected: {deaths:?}");
    };
    let death = death.inner();
    let s = |v: &str| Some(AMQPValue::LongString(v.into()));
    assert_eq!(death.get("reason").cloned(), s("rejected"));
    assert_eq!(death.get("queue").cloned(), s(q.as_str()));
    assert_eq!(death.get("exchange").cloned(), s(""));
    assert!(
        matches!(death.get("count"), Some(AMQPValue::LongLongInt(1))),
        "count {:?}",
        death.get("count")
    );
    assert!(matches!(death.get("time"), Some(AMQPValue::Timestamp(_))));
    assert!(death.get("original-expiration").is_none());
    assert_eq!(
        headers.inner().get("x-first-death-reason").cloned(),
        s("rejected")
    );
    assert_eq!(
        headers.inner().get("x-first-death-queue").cloned(),
        s(q.as_str())
    );
}

#[tokio::test]
async fn max_length_drops_the_head() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let q = queue(&ch, args(&[("x-max-length", AMQPValue::LongInt(2))])).await;
    for i in 0..5u8 {
        publish_confirmed(&ch, "", q.as_str(), &[b'0' + i], BasicProperties::default()).await;
    }
    let ok = ch
        .queue_declare(
            q.clone(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(ok.message_count(), 2);
    assert_eq!(
        get_all(&ch, q.as_str()).await,
        [b"3".to_vec(), b"4".to_vec()]
    );
}

#[tokio::test]
async fn reject_publish_overflow_nacks_and_keeps_the_queue() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let q = queue(
        &ch,
        args(&[
            ("x-max-length", AMQPValue::LongInt(2)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ]),
    )
    .await;
    let send = |body: &'static [u8]| {
        let ch = ch.clone();
        let q = q.clone();
        async move {
            let c = ch
                .basic_publish(
                    "".into(),
                    q,
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default(),
                )
                .await
                .unwrap();
            timeout(WAIT, c).await.unwrap().unwrap()
        }
    };
    assert!(send(b"1").await.is_ack());
    assert!(send(b"2").await.is_ack());
    assert!(send(b"3").await.is_nack());
    assert_eq!(
        get_all(&ch, q.as_str()).await,
        [b"1".to_vec(), b"2".to_vec()]
    );
    assert!(send(b"4").await.is_ack(), "room again");
}

#[tokio::test]
async fn priority_queue_delivers_highest_first() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let q = queue(&ch, args(&[("x-max-priority", AMQPValue::LongInt(10))])).await;
    for p in [1u8, 9, 5] {
        publish_confirmed(
            &ch,
            "",
            q.as_str(),
            format!("p{p}").as_bytes(),
            BasicProperties::default().with_priority(p),
        )
        .await;
    }
    publish_confirmed(&ch, "", q.as_str(), b"none", BasicProperties::default()).await;
    publish_confirmed(
        &ch,
        "",
        q.as_str(),
        b"p200",
        BasicProperties::default().with_priority(200),
    )
    .await;
    assert_eq!(
        get_all(&ch, q.as_str()).await,
        [
            b"p200".to_vec(),
            b"p9".to_vec(),
            b"p5".to_vec(),
            b"p1".to_vec(),
            b"none".to_vec()
        ]
    );
}

#[tokio::test]
async fn exclusive_queue_is_locked_for_another_connection() {
    let (broker, _) = common::start().await;
    let (_owner, och) = amqp_channel(&broker).await;
    let q = uid("excl");
    och.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let other = amqp_connect(&broker).await;
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_error(r, 405, "RESOURCE_LOCKED");
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_error(r, 405, "RESOURCE_LOCKED");
    // The owner is unaffected.
    publish(&och, "", &q, b"x", BasicProperties::default()).await;
    assert_eq!(get_all(&och, &q).await, [b"x".to_vec()]);
}

#[tokio::test]
async fn passive_declare_missing_is_404_naming_the_queue() {
    let (broker, _) = common::start().await;
    let conn = amqp_connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    let name = uid("missing");
    let r = ch
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_error(r, 404, &name);
    // The connection still works on a new channel.
    let ch = conn.create_channel().await.unwrap();
    let q = queue(&ch, FieldTable::default()).await;
    publish(&ch, "", q.as_str(), b"after", BasicProperties::default()).await;
    assert_eq!(get_all(&ch, q.as_str()).await, [b"after".to_vec()]);
}

#[tokio::test]
async fn redeclare_with_other_arguments_is_406() {
    let (broker, _) = common::start().await;
    let conn = amqp_connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    let q = uid("redeclare");
    let declare = |ch: Channel, len: i32| {
        let q = q.clone();
        async move {
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                args(&[("x-max-length", AMQPValue::LongInt(len))]),
            )
            .await
        }
    };
    declare(ch.clone(), 10).await.unwrap();
    declare(ch.clone(), 10)
        .await
        .expect("an identical redeclare is fine");
    assert_error(
        declare(ch.clone(), 20).await,
        406,
        "inequivalent arg 'x-max-length'",
    );
    let ch = conn.create_channel().await.unwrap();
    publish(&ch, "", &q, b"still there", BasicProperties::default()).await;
    assert_eq!(get_all(&ch, &q).await, [b"still there".to_vec()]);
}

#[tokio::test]
async fn tx_rollback_discards_and_commit_publishes() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    ch.tx_select().await.unwrap();
    publish(
        &ch,
        "",
        q.as_str(),
        b"rolled-back",
        BasicProperties::default(),
    )
    .await;
    assert!(
        get(&ch, q.as_str()).await.is_none(),
        "visible before commit"
    );
    ch.tx_rollback().await.unwrap();
    publish(
        &ch,
        "",
        q.as_str(),
        b"committed",
        BasicProperties::default(),
    )
    .await;
    ch.tx_commit().await.unwrap();
    assert_eq!(get_all(&ch, q.as_str()).await, [b"committed".to_vec()]);
    ch.tx_commit().await.expect("an empty commit is fine");
}

#[tokio::test]
async fn confirm_after_tx_is_406() {
    let (broker, _) = common::start().await;
    let conn = amqp_connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    assert_error(
        ch.confirm_select(ConfirmSelectOptions::default()).await,
        406,
        "cannot switch from tx to confirm mode",
    );
    let ch = conn.create_channel().await.unwrap();
    let q = queue(&ch, FieldTable::default()).await;
    publish(&ch, "", q.as_str(), b"ok", BasicProperties::default()).await;
    assert_eq!(get_all(&ch, q.as_str()).await, [b"ok".to_vec()]);
}

#[tokio::test]
async fn direct_reply_to_round_trip_keeps_correlation_id() {
    let (broker, _) = common::start().await;
    let (_c, requester) = amqp_channel(&broker).await;
    let (_c2, responder) = amqp_channel(&broker).await;
    let rq = queue(&responder, FieldTable::default()).await;
    let mut replies = consume(&requester, &"amq.rabbitmq.reply-to".into(), true).await;
    publish(
        &requester,
        "",
        rq.as_str(),
        b"ping",
        BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_correlation_id("c1".into()),
    )
    .await;
    let mut incoming = consume(&responder, &rq, true).await;
    let req = amqp_next(&mut incoming).await;
    assert_eq!(req.data, b"ping");
    let reply_to = req.properties.reply_to().clone().expect("reply_to");
    assert!(
        reply_to.as_str().starts_with("amq.rabbitmq.reply-to."),
        "{reply_to}"
    );
    publish(
        &responder,
        "",
        reply_to.as_str(),
        b"pong",
        BasicProperties::default()
            .with_correlation_id(req.properties.correlation_id().clone().unwrap()),
    )
    .await;
    let rep = amqp_next(&mut replies).await;
    assert_eq!(
        (
            rep.data.as_slice(),
            rep.properties.correlation_id().as_ref().map(|s| s.as_str())
        ),
        (&b"pong"[..], Some("c1"))
    );
}

#[tokio::test]
async fn direct_reply_to_without_a_consumer_is_406() {
    let (broker, _) = common::start().await;
    let conn = amqp_connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let r = async {
        ch.basic_publish(
            "".into(),
            "x".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
        )
        .await?
        .await
    };
    let r = timeout(WAIT, r).await.expect("refused in time");
    assert_error(r, 406, "fast reply consumer does not exist");
}

#[tokio::test]
async fn one_mib_message_spans_frames_both_ways() {
    let (broker, _) = common::start().await;
    let (_c, ch) = confirmed(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 256) as u8).collect();
    publish_confirmed(
        &ch,
        "",
        q.as_str(),
        &body,
        BasicProperties::default().with_message_id("big".into()),
    )
    .await;
    let m = get(&ch, q.as_str()).await.expect("the big message");
    assert_eq!(m.delivery.data.len(), body.len());
    assert!(m.delivery.data == body);
    assert_eq!(
        m.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("big")
    );
    publish_confirmed(&ch, "", q.as_str(), &body, BasicProperties::default()).await;
    let mut consumer = consume(&ch, &q, true).await;
    assert!(amqp_next(&mut consumer).await.data == body);
}

#[tokio::test]
async fn queue_delete_cancels_its_consumers() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = uid("doomed");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "", &q, b"first", BasicProperties::default()).await;
    let mut consumer = consume(&ch, &q.as_str().into(), true).await;
    assert_eq!(amqp_next(&mut consumer).await.data, b"first");
    let (_c2, deleter) = amqp_channel(&broker).await;
    deleter
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let end = timeout(WAIT, consumer.next())
        .await
        .expect("the consumer ends in time");
    assert!(end.is_none(), "expected the stream to end, got {end:?}");
    // The channel stays open.
    assert!(ch.status().connected());
    let q2 = queue(&ch, FieldTable::default()).await;
    publish(&ch, "", q2.as_str(), b"ok", BasicProperties::default()).await;
    assert_eq!(get_all(&ch, q2.as_str()).await, [b"ok".to_vec()]);
}

#[tokio::test]
async fn round_robin_between_two_consumers() {
    let (broker, _) = common::start().await;
    let (_c, ch) = amqp_channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    let mut a = consume(&ch, &q, true).await;
    let mut b = consume(&ch, &q, true).await;
    for i in 0..6u8 {
        publish(&ch, "", q.as_str(), &[b'0' + i], BasicProperties::default()).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(amqp_next(&mut a).await.data);
        got.push(amqp_next(&mut b).await.data);
    }
    got.sort();
    let want: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'0' + i]).collect();
    assert_eq!(got, want);
}

/// RabbitMQ's shortcut: an empty queue name means the channel's most recently
/// declared queue (and in queue.bind an empty routing key then means its name).
#[tokio::test]
async fn an_empty_queue_name_means_the_last_declared_queue() {
    let (b, _) = common::start().await;
    let (_c, ch) = amqp_channel(&b).await;
    // Before any declare: 404 on the channel.
    let err = ch
        .basic_get("".into(), BasicGetOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
    let (_c, ch) = amqp_channel(&b).await;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.queue_bind(
        "".into(),
        "amq.direct".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(
        &ch,
        "amq.direct",
        q.name().as_str(),
        b"by shortcut",
        BasicProperties::default(),
    )
    .await;
    ch.basic_qos(0, BasicQosOptions::default()).await.unwrap();
    let got = ch
        .basic_get("".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message");
    assert_eq!(got.delivery.data, b"by shortcut");
}

/// basic.recover without requeueing is RabbitMQ's 540 NOT_IMPLEMENTED.
#[tokio::test]
async fn basic_recover_without_requeue_is_not_implemented() {
    let (b, _) = common::start().await;
    let (c, ch) = amqp_channel(&b).await;
    let err = ch
        .basic_recover(BasicRecoverOptions { requeue: false })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOT_IMPLEMENTED"), "{err}");
    assert!(!c.status().connected());
}

/// channel.flow(active=false) stops deliveries to that channel's consumers, acked
/// and no-ack alike, until active=true; other channels go on.
#[tokio::test]
async fn channel_flow_pauses_and_resumes_deliveries_to_that_channel() {
    let (b, _) = common::start().await;
    let (c, ch) = amqp_channel(&b).await;
    let other = c.create_channel().await.unwrap();
    let q = queue(&ch, FieldTable::default()).await;
    let q2 = queue(&other, FieldTable::default()).await;
    let mut acked = consume(&ch, &q, false).await;
    let mut elsewhere = consume(&other, &q2, true).await;
    assert!(!ch
        .channel_flow(ChannelFlowOptions { active: false })
        .await
        .unwrap());
    for i in 0..3u8 {
        publish(&other, "", q.as_str(), &[i], BasicProperties::default()).await;
    }
    publish(&other, "", q2.as_str(), b"on", BasicProperties::default()).await;
    assert_eq!(amqp_next(&mut elsewhere).await.data, b"on");
    assert!(
        timeout(std::time::Duration::from_millis(300), acked.next())
            .await
            .is_err(),
        "a delivery while flow is off"
    );
    assert!(ch
        .channel_flow(ChannelFlowOptions { active: true })
        .await
        .unwrap());
    for i in 0..3u8 {
        let d = amqp_next(&mut acked).await;
        assert_eq!(d.data, [i]);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    // No-ack consumers pause as well.
    let q3 = queue(&ch, FieldTable::default()).await;
    let mut no_ack = consume(&ch, &q3, true).await;
    ch.channel_flow(ChannelFlowOptions { active: false })
        .await
        .unwrap();
    publish(&other, "", q3.as_str(), b"held", BasicProperties::default()).await;
    assert!(
        timeout(std::time::Duration::from_millis(300), no_ack.next())
            .await
            .is_err()
    );
    ch.channel_flow(ChannelFlowOptions { active: true })
        .await
        .unwrap();
    assert_eq!(amqp_next(&mut no_ack).await.data, b"held");
}

/// x-message-ttl 0: a message goes to a consumer that can take it at once
/// (RabbitMQ), and is dropped when none can.
#[tokio::test]
async fn a_zero_message_ttl_reaches_a_waiting_consumer_and_nobody_else() {
    let (b, _) = common::start().await;
    let (_c, ch) = amqp_channel(&b).await;
    let q = queue(&ch, args(&[("x-message-ttl", AMQPValue::LongInt(0))])).await;
    publish(&ch, "", q.as_str(), b"nobody", BasicProperties::default()).await;
    let mut consumer = consume(&ch, &q, false).await;
    publish(&ch, "", q.as_str(), b"waited", BasicProperties::default()).await;
    let d = amqp_next(&mut consumer).await;
    assert_eq!(d.data, b"waited");
    d.ack(BasicAckOptions::default()).await.unwrap();
    assert!(
        timeout(std::time::Duration::from_millis(200), consumer.next())
            .await
            .is_err(),
        "the message published before the consumer came was dropped"
    );
}

/// x-single-active-consumer: the earliest consumer gets everything; when it goes,
/// the next one takes over, its unacked messages included.
#[tokio::test]
async fn a_single_active_consumer_queue_feeds_one_consumer_at_a_time() {
    let (b, _) = common::start().await;
    let (c, ch) = amqp_channel(&b).await;
    let ch2 = c.create_channel().await.unwrap();
    let q = queue(
        &ch,
        args(&[("x-single-active-consumer", AMQPValue::Boolean(true))]),
    )
    .await;
    let mut first = consume(&ch, &q, false).await;
    let mut second = consume(&ch2, &q, false).await;
    for i in 0..4u8 {
        publish(&ch, "", q.as_str(), &[i], BasicProperties::default()).await;
    }
    for i in 0..3u8 {
        let d = amqp_next(&mut first).await;
        assert_eq!(d.data, [i]);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    // The fourth stays unacked with the first consumer, which then goes.
    assert_eq!(amqp_next(&mut first).await.data, [3]);
    assert!(
        timeout(std::time::Duration::from_millis(200), second.next())
            .await
            .is_err(),
        "the second consumer is not active yet"
    );
    ch.basic_cancel(first.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let d = amqp_next(&mut second).await;
    assert_eq!((d.data.as_slice(), d.redelivered), (&[3u8][..], true));
    d.ack(BasicAckOptions::default()).await.unwrap();
    publish(&ch, "", q.as_str(), b"next", BasicProperties::default()).await;
    assert_eq!(amqp_next(&mut second).await.data, b"next");
}

/// x-queue-type quorum and stream are durable queues that must not be exclusive or
/// auto-delete; the type is part of the queue's equivalence; others are refused.
#[tokio::test]
async fn queue_types_are_checked_as_rabbitmq_checks_them() {
    let (b, _) = common::start().await;
    let (c, ch) = amqp_channel(&b).await;
    let typed = |t: &str| args(&[("x-queue-type", AMQPValue::LongString(t.into()))]);
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let name = uid("quorum");
    ch.queue_declare(name.as_str().into(), durable, typed("quorum"))
        .await
        .unwrap();
    ch.queue_declare(name.as_str().into(), durable, typed("quorum"))
        .await
        .unwrap();
    assert_error(
        ch.queue_declare(name.as_str().into(), durable, FieldTable::default())
            .await,
        406,
        "inequivalent arg 'x-queue-type'",
    );
    for (t, options, why) in [
        (
            "quorum",
            QueueDeclareOptions::default(),
            "invalid property 'non-durable'",
        ),
        (
            "stream",
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                ..Default::default()
            },
            "invalid property 'exclusive'",
        ),
        (
            "quorum",
            QueueDeclareOptions {
                durable: true,
                auto_delete: true,
                ..Default::default()
            },
            "invalid property 'auto-delete'",
        ),
        ("lazy", durable, "invalid arg 'x-queue-type'"),
    ] {
        let ch = c.create_channel().await.unwrap();
        assert_error(
            ch.queue_declare(uid("typed").as_str().into(), options, typed(t))
                .await,
            406,
            why,
        );
    }
}
