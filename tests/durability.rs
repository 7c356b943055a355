//! Restarts with real clients against the real binary: every row of the
//! durability table (DESIGN.md) is declared or published, the broker is killed
//! with SIGKILL, started again on the same data dir, and what must have survived
//! is checked, as well as what must not.

mod common;

use std::time::Duration;

use dwbroker_codecs::stomp::{Command, Frame};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rumqttc::v5::mqttbytes::QoS as Q5;

use common::process::{amqp_uri, data_dir, journal_file, Process};
use common::stomp_raw::StompRaw;
use common::WAIT;

async fn amqp(p: &Process) -> (Connection, Channel) {
    let c = tokio::time::timeout(
        WAIT,
        Connection::connect(&amqp_uri(p.amqp), ConnectionProperties::default()),
    )
    .await
    .expect("AMQP connects in time")
    .expect("AMQP connects");
    let ch = c.create_channel().await.unwrap();
    (c, ch)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Publishes `body` to `exchange`/`key` and waits for its confirm (the channel
/// is in confirm mode); returns whether it was acked.
async fn confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> bool {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap()
    .is_ack()
}

/// Every message of `queue` (basic.get, no-ack): (body, redelivered).
async fn drain(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push((
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            m.delivery.redelivered,
        ));
    }
    out
}

fn bodies(got: &[(String, bool)]) -> Vec<&str> {
    got.iter().map(|(b, _)| b.as_str()).collect()
}

#[tokio::test]
async fn amqp_durable_declarations_and_persistent_messages_survive_kill_9() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        let (_c, ch) = amqp(&p).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let durable_x = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        ch.exchange_declare(
            "dx".into(),
            ExchangeKind::Topic,
            durable_x,
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            "tx".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(100));
        ch.queue_declare("q".into(), durable(), args).await.unwrap();
        ch.queue_declare(
            "transient".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let auto_delete = QueueDeclareOptions {
            auto_delete: true,
            ..durable()
        };
        ch.queue_declare("ad".into(), auto_delete, FieldTable::default())
            .await
            .unwrap();
        ch.queue_bind(
            "q".into(),
            "dx".into(),
            "a.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            "q".into(),
            "amq.topic".into(),
            "sensors.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        for (i, props) in [persistent(), BasicProperties::default(), persistent()]
            .into_iter()
            .enumerate()
        {
            assert!(confirmed(&ch, "", "q", format!("direct {i}").as_bytes(), props).await);
        }
        assert!(confirmed(&ch, "dx", "a.b", b"through dx", persistent()).await);
        assert!(confirmed(&ch, "", "transient", b"gone", persistent()).await);
    }
    p.kill();

    let p = Process::start(dir.path());
    let (c, ch) = amqp(&p).await;
    // The durable exchange and queue are there, with their arguments.
    let passive_x = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        "dx".into(),
        ExchangeKind::Topic,
        passive_x,
        FieldTable::default(),
    )
    .await
    .expect("the durable exchange survived");
    let mut other = FieldTable::default();
    other.insert("x-max-length".into(), AMQPValue::LongInt(5));
    let ch2 = c.create_channel().await.unwrap();
    let err = ch2
        .queue_declare("q".into(), durable(), other)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");
    // Persistent messages, in order; the transient one is gone.
    assert_eq!(
        bodies(&drain(&ch, "q").await),
        ["direct 0", "direct 2", "through dx"]
    );
    // Bindings: through the durable exchange, and from the subject space.
    ch.basic_publish(
        "dx".into(),
        "a.c".into(),
        BasicPublishOptions::default(),
        b"again",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    // A synchronous method on the same channel: its answer means the publish
    // before it was routed (frames of one channel are handled in order).
    ch.basic_qos(0, BasicQosOptions::default()).await.unwrap();
    let (mut m, _) = common::v4(p.mqtt, |_| {}, "binding-check").await;
    m.client
        .publish("sensors/kitchen", rumqttc::QoS::AtLeastOnce, false, "21.5")
        .await
        .unwrap();
    m.next_incoming(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    assert_eq!(bodies(&drain(&ch, "q").await), ["again", "21.5"]);
    // Transient and auto-delete queues and non-durable exchanges are never
    // written (each refusal closes its channel: a fresh one per check).
    let passive_q = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    for q in ["transient", "ad"] {
        let ch = c.create_channel().await.unwrap();
        let err = ch
            .queue_declare(q.into(), passive_q, FieldTable::default())
            .await;
        assert!(err.unwrap_err().to_string().contains("NOT_FOUND"), "{q}");
    }
    let ch = c.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "tx".into(),
            ExchangeKind::Fanout,
            passive_x,
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn unacked_messages_come_back_redelivered_in_order_and_acked_ones_never() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        let (_c, ch) = amqp(&p).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("work".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        for i in 0..6 {
            assert!(confirmed(&ch, "", "work", format!("m{i}").as_bytes(), persistent()).await);
        }
        ch.basic_qos(3, Default::default()).await.unwrap();
        let mut consumer = ch
            .basic_consume(
                "work".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let first = common::amqp_next(&mut consumer).await;
        let second = common::amqp_next(&mut consumer).await;
        let _third = common::amqp_next(&mut consumer).await;
        // m0 and m1 acked, which lets m3 and m4 in (prefetch 3): m2..m4
        // delivered and never acked, m5 never delivered.
        first.ack(BasicAckOptions::default()).await.unwrap();
        second.ack(BasicAckOptions::default()).await.unwrap();
        for _ in 0..2 {
            common::amqp_next(&mut consumer).await;
        }
        // The acks are processed (m3 and m4 came); an ack is not itself waited on
        // by storage, so give its record a moment to be committed before the kill
        // (killed sooner, m0 and m1 would come back too: at least once).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    p.kill();
    let p = Process::start(dir.path());
    {
        let (_c, ch) = amqp(&p).await;
        let got = drain(&ch, "work").await;
        assert_eq!(
            got,
            [
                ("m2".into(), true),
                ("m3".into(), true),
                ("m4".into(), true),
                ("m5".into(), false)
            ]
        );
    }
    // Restarted twice: what was consumed (no-ack) is gone for good, once its removal
    // is committed (as for the acks above, a consume is not waited on by storage).
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.kill();
    let p = Process::start(dir.path());
    let (_c, ch) = amqp(&p).await;
    assert!(drain(&ch, "work").await.is_empty());
}

#[tokio::test]
async fn expired_messages_are_dead_lettered_at_recovery() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        let (_c, ch) = amqp(&p).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("dead".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString("dead".into()),
        );
        ch.queue_declare("ttl".into(), durable(), args)
            .await
            .unwrap();
        let short = persistent().with_expiration("300".into());
        assert!(confirmed(&ch, "", "ttl", b"short-lived", short).await);
        assert!(confirmed(&ch, "", "ttl", b"long-lived", persistent()).await);
    }
    p.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = Process::start(dir.path());
    let (_c, ch) = amqp(&p).await;
    assert_eq!(bodies(&drain(&ch, "ttl").await), ["long-lived"]);
    assert_eq!(bodies(&drain(&ch, "dead").await), ["short-lived"]);
}

#[tokio::test]
async fn stomp_persistent_sends_with_receipts_survive_and_others_do_not() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        let mut s = StompRaw::connected(p.stomp).await;
        let send = |body: &str, persistent: bool| {
            let f = Frame::new(Command::Send).with("destination", "/queue/jobs");
            let mut f = if persistent {
                f.with("persistent", "true")
            } else {
                f
            };
            f.body = body.to_owned().into();
            f
        };
        s.send_with_receipt(send("kept 1", true)).await;
        s.send_with_receipt(send("lost", false)).await;
        s.send_with_receipt(send("kept 2", true)).await;
        // A transaction's SENDs are stored together; its COMMIT's receipt waits.
        s.send_with_receipt(Frame::new(Command::Begin).with("transaction", "t"))
            .await;
        for body in ["tx 1", "tx 2"] {
            s.send_frame(&send(body, true).with("transaction", "t"))
                .await;
        }
        s.send_with_receipt(Frame::new(Command::Commit).with("transaction", "t"))
            .await;
    }
    p.kill();
    let p = Process::start(dir.path());
    let mut s = StompRaw::connected(p.stomp).await;
    s.subscribe("0", "/queue/jobs", "auto").await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = s.message().await;
        assert_eq!(m.header("persistent"), Some("true"));
        got.push(String::from_utf8(m.body.to_vec()).unwrap());
    }
    assert_eq!(got, ["kept 1", "kept 2", "tx 1", "tx 2"]);
    s.send_with_receipt(Frame::new(Command::Send).with("destination", "/queue/jobs"))
        .await;
    assert_eq!(
        s.message().await.body.len(),
        0,
        "the sentinel: nothing else was there"
    );
}

/// An MQTT 5 client whose session outlives it by `expiry` seconds.
async fn session_v5(
    addr: std::net::SocketAddr,
    id: &str,
    clean_start: bool,
    expiry: u32,
) -> (common::V5, rumqttc::v5::mqttbytes::v5::ConnAck) {
    common::v5(
        addr,
        |o| {
            o.set_clean_start(clean_start);
            o.set_connect_properties(rumqttc::v5::mqttbytes::v5::ConnectProperties {
                session_expiry_interval: Some(expiry),
                ..Default::default()
            });
        },
        id,
    )
    .await
}

#[tokio::test]
async fn mqtt_retained_messages_and_persistent_sessions_survive_kill_9_twice() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        // An MQTT 5 session with an expiry and a 3.1.1 persistent session
        // subscribe and leave.
        let (mut s5, ack) = session_v5(p.mqtt, "keeper-5", true, 3600).await;
        assert!(!ack.session_present);
        s5.subscribe("jobs/#", Q5::ExactlyOnce).await;
        s5.client.disconnect().await.unwrap();
        let (mut s4, _) = common::v4(
            p.mqtt,
            |o| {
                o.set_clean_session(false);
            },
            "keeper-4",
        )
        .await;
        s4.subscribe("jobs/#", rumqttc::QoS::AtLeastOnce).await;
        s4.client.disconnect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A publisher: QoS 1 and 2 for the sessions, a retained message, QoS 0
        // (never stored for an offline session).
        let (mut pb, _) = common::v4(p.mqtt, |_| {}, "publisher").await;
        for (topic, qos) in [
            ("jobs/1", rumqttc::QoS::AtLeastOnce),
            ("jobs/2", rumqttc::QoS::ExactlyOnce),
            ("jobs/0", rumqttc::QoS::AtMostOnce),
        ] {
            pb.client.publish(topic, qos, false, topic).await.unwrap();
        }
        pb.client
            .publish("status/door", rumqttc::QoS::AtLeastOnce, true, "open")
            .await
            .unwrap();
        // Acknowledged: stored (two PUBACKs and a PUBREC, in publish order).
        let mut acks = Vec::new();
        while acks.len() < 3 {
            acks.push(
                pb.next_incoming(|p| match p {
                    rumqttc::Packet::PubAck(_) => Some("puback"),
                    rumqttc::Packet::PubRec(_) => Some("pubrec"),
                    _ => None,
                })
                .await,
            );
        }
        assert_eq!(acks, ["puback", "pubrec", "puback"]);
    }
    p.kill();
    let p = Process::start(dir.path());
    {
        let (mut s5, ack) = session_v5(p.mqtt, "keeper-5", false, 3600).await;
        assert!(ack.session_present, "the MQTT 5 session survived");
        let mut got = Vec::new();
        for _ in 0..2 {
            let m = s5.publish().await;
            got.push((String::from_utf8(m.topic.to_vec()).unwrap(), m.qos as u8));
        }
        got.sort();
        assert_eq!(got, [("jobs/1".into(), 1), ("jobs/2".into(), 2)]);
        // Its subscription survived too: a new message arrives without subscribing.
        let (pb, _) = common::v4(p.mqtt, |_| {}, "publisher-2").await;
        pb.client
            .publish("jobs/3", rumqttc::QoS::AtLeastOnce, false, "after")
            .await
            .unwrap();
        let m = s5.publish().await;
        assert_eq!(&m.topic[..], b"jobs/3");
        s5.no_publish(Duration::from_millis(300)).await;
        s5.client.disconnect().await.unwrap();
        // The retained message, to a new subscriber.
        let (mut fresh, _) = common::v4(p.mqtt, |_| {}, "fresh").await;
        fresh.subscribe("status/#", rumqttc::QoS::AtLeastOnce).await;
        let r = fresh.publish().await;
        assert!(r.retain);
        assert_eq!(&r.payload[..], b"open");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Killed again before the 3.1.1 client came back: its messages are still there.
    p.kill();
    let p = Process::start(dir.path());
    let (mut s4, ack) = common::v4(
        p.mqtt,
        |o| {
            o.set_clean_session(false);
        },
        "keeper-4",
    )
    .await;
    assert!(
        ack.session_present,
        "the 3.1.1 session survived two restarts"
    );
    let mut topics = Vec::new();
    for _ in 0..3 {
        topics.push(s4.publish().await.topic);
    }
    topics.sort();
    assert_eq!(topics, ["jobs/1", "jobs/2", "jobs/3"]);
    // The MQTT 5 client took its messages before the second kill: nothing again.
    let (mut s5, ack) = session_v5(p.mqtt, "keeper-5", false, 3600).await;
    assert!(ack.session_present);
    s5.no_publish(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_clean_start_or_an_expired_session_is_gone_after_a_restart() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        let (mut a, _) = session_v5(p.mqtt, "ended", true, 3600).await;
        a.subscribe("x/#", Q5::AtLeastOnce).await;
        a.client.disconnect().await.unwrap();
        // Clean start ends the stored session for good.
        let (b, ack) = session_v5(p.mqtt, "ended", true, 0).await;
        assert!(!ack.session_present);
        b.client.disconnect().await.unwrap();
        // A session that expires one second after its client leaves.
        let (mut c, _) = session_v5(p.mqtt, "short", true, 1).await;
        c.subscribe("x/#", Q5::AtLeastOnce).await;
        c.client.disconnect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    p.kill();
    let p = Process::start(dir.path());
    for id in ["ended", "short"] {
        let (_c, ack) = common::v5(
            p.mqtt,
            |o| {
                o.set_clean_start(false);
            },
            id,
        )
        .await;
        assert!(!ack.session_present, "{id}");
    }
}

#[tokio::test]
async fn a_torn_journal_tail_is_dropped_and_the_rest_recovered() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        let (_c, ch) = amqp(&p).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("q".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        for i in 0..10 {
            assert!(confirmed(&ch, "", "q", format!("m{i}").as_bytes(), persistent()).await);
        }
    }
    p.kill();
    // A write cut short: garbage right after the last complete batch.
    let journal = journal_file(dir.path()).expect("a journal file");
    let mut bytes = std::fs::read(&journal).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    bytes[end..end + 64].copy_from_slice(&[0xA5; 64]);
    std::fs::write(&journal, &bytes).unwrap();
    let p = Process::start(dir.path());
    let (_c, ch) = amqp(&p).await;
    let got = drain(&ch, "q").await;
    assert_eq!(got.len(), 10);
    assert_eq!(got[9].0, "m9");
}

#[tokio::test]
async fn a_corrupt_data_dir_is_a_clear_startup_error() {
    let dir = data_dir();
    let p = Process::start(dir.path());
    {
        let (_c, ch) = amqp(&p).await;
        ch.queue_declare("q".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.kill();
    // Another program's directory is not a data dir.
    std::fs::write(dir.path().join("version"), b"not a version").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dwbroker"))
        .args([
            "--mqtt",
            "127.0.0.1:0",
            "--amqp",
            "off",
            "--stomp",
            "off",
            "--nats",
            "off",
        ])
        .args([
            "--kafka-rest",
            "off",
            "--mqtt-ws",
            "off",
            "--stomp-ws",
            "off",
            "--http",
            "off",
            "--nats-monitor",
            "off",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn with_data_dir_none_nothing_survives() {
    let p = Process::in_memory();
    {
        let (_c, ch) = amqp(&p).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("q".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        assert!(confirmed(&ch, "", "q", b"m", persistent()).await);
    }
    p.kill();
    let p = Process::in_memory();
    let (_c, ch) = amqp(&p).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    assert!(ch
        .queue_declare("q".into(), passive, FieldTable::default())
        .await
        .is_err());
}

async fn jetstream(p: &Process) -> async_nats::jetstream::Context {
    let c = tokio::time::timeout(WAIT, async_nats::connect(format!("nats://{}", p.nats)))
        .await
        .expect("NATS connects in time")
        .expect("NATS connects");
    async_nats::jetstream::new(c)
}

#[tokio::test]
async fn file_streams_keep_every_puback_and_consumer_positions_across_kill_9() {
    use async_nats::jetstream::{consumer, stream};
    let dir = data_dir();
    let p = Process::start(dir.path());
    let mut acked = Vec::new();
    {
        let js = jetstream(&p).await;
        let s = js
            .create_stream(stream::Config {
                name: "DUR".into(),
                subjects: vec!["dur.>".into()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
        // A memory stream next to it: gone after the restart.
        js.create_stream(stream::Config {
            name: "MEM".into(),
            subjects: vec!["mem".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
        for i in 1..=10u64 {
            let ack = js
                .publish(format!("dur.{i}"), format!("m{i}").into())
                .await
                .unwrap()
                .await
                .unwrap();
            acked.push((ack.sequence, format!("m{i}")));
        }
        let c: consumer::PullConsumer = s
            .create_consumer(consumer::pull::Config {
                durable_name: Some("keeper".into()),
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .unwrap();
        let got = common::js_fetch(&c, 4).await;
        assert_eq!(got.len(), 4);
        // 1 and 2 acknowledged (and confirmed), 3 and 4 left pending.
        got[0].double_ack().await.unwrap();
        got[1].double_ack().await.unwrap();
        // Publishes in flight when the broker dies: the acknowledged ones must
        // all be there afterwards.
        let mut waiting = Vec::new();
        for i in 11..=400u64 {
            let body = format!("m{i}");
            match js.publish(format!("dur.{i}"), body.clone().into()).await {
                Ok(ack) => waiting.push((ack, body)),
                Err(_) => break,
            }
        }
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            p.kill();
        });
        // Each answer comes (an ack) or fails (the connection is gone), all at
        // once: async-nats bounds each by its request timeout.
        let answers = futures_util::future::join_all(
            waiting
                .into_iter()
                .map(|(ack, body)| async move { (ack.await, body) }),
        )
        .await;
        for (ack, body) in answers {
            if let Ok(ack) = ack {
                acked.push((ack.sequence, body));
            }
        }
        killer.await.unwrap();
    }
    assert!(acked.len() >= 10);
    eprintln!("{} publishes PubAck'd before the kill", acked.len());
    let p = Process::start(dir.path());
    let js = jetstream(&p).await;
    let mut s = js
        .get_stream("DUR")
        .await
        .expect("the file stream survived");
    let info = s.info().await.unwrap();
    assert!(info.state.messages >= acked.len() as u64, "{info:?}");
    for (seq, body) in &acked {
        let m = s.get_raw_message(*seq).await.expect("a PubAck'd message");
        assert_eq!(&m.payload[..], body.as_bytes(), "seq {seq}");
    }
    assert!(
        js.get_stream("MEM").await.is_err(),
        "memory streams do not survive"
    );
    let mut c: consumer::PullConsumer = s.get_consumer("keeper").await.expect("durable consumer");
    let ci = c.info().await.unwrap();
    assert_eq!(ci.ack_floor.stream_sequence, 2, "{ci:?}");
    assert_eq!(ci.delivered.stream_sequence, 4, "{ci:?}");
    assert_eq!(ci.num_ack_pending, 2, "3 and 4 still pending");
    // Reading on starts after the last delivery; the pending ones wait for their ack wait.
    let next = common::js_fetch(&c, 1).await;
    assert_eq!(next[0].info().unwrap().stream_sequence, 5);
}
