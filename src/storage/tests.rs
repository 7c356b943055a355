use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::router::{
    deaths, BindArgs, ConsumerSpec, Credit, Delivery, Dest, ExchangeKind, ExchangeSpec, Message,
    Now, OutboxLimits, Outlet, OutletItem, QueueArgs, QueueSpec, RetainedLimits, Router, Subject,
    DEFAULT_VHOST_LIMITS,
};

fn router(storage: &Storage) -> Router {
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
    .with_journal(storage.journal().clone())
}

/// Opens `dir`, applies what it holds to a new router.
fn open(dir: &Path, fsync: Fsync) -> (Storage, Router) {
    let (storage, recovered) = Storage::open(dir, fsync).expect("opens");
    let r = router(&storage);
    recovered.apply(&r, Now::current());
    (storage, r)
}

fn durable() -> QueueSpec {
    QueueSpec {
        durable: true,
        ..QueueSpec::default()
    }
}

fn msg(payload: &'static str, qos: Delivery) -> Message {
    Message {
        subject: Subject::new("s").unwrap(),
        payload: payload.into(),
        qos,
        ..Message::default()
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(10), f)
                .await
                .expect("in time")
        })
}

fn payloads(r: &Router, queue: &str) -> Vec<String> {
    let q = r.queue(queue, 0).expect("queue exists");
    let now = Now::current();
    std::iter::from_fn(|| r.get(&q, now))
        .map(|(e, _)| {
            let p = String::from_utf8(e.message.payload.to_vec()).unwrap();
            r.ack(&q, e, now);
            p
        })
        .collect()
}

#[test]
fn persistent_messages_of_durable_queues_survive_in_order_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let now = Now::current();
    {
        let (storage, r) = open(dir.path(), Fsync::Always);
        r.declare_queue("d", durable(), false, 1, now).unwrap();
        r.declare_queue("t", QueueSpec::default(), false, 1, now)
            .unwrap();
        let mut ticket = crate::router::Ticket::default();
        for (p, qos) in [
            ("1", Delivery::AtLeastOnce),
            ("transient", Delivery::AtMostOnce),
            ("2", Delivery::AtLeastOnce),
            ("3", Delivery::ExactlyOnce),
        ] {
            for q in ["d", "t"] {
                let routed = r.publish_to_exchange("", q, msg(p, qos), now).unwrap();
                if q == "t" || qos == Delivery::AtMostOnce {
                    assert!(routed.ticket.is_empty(), "{q} {p}");
                } else {
                    assert!(!routed.ticket.is_empty());
                }
                ticket.merge(routed.ticket);
            }
        }
        block_on(ticket.wait()).unwrap();
        drop(storage);
    }
    let (_storage, r) = open(dir.path(), Fsync::Always);
    assert!(r.has_queue("d"));
    assert!(!r.has_queue("t"), "a transient queue is never stored");
    assert_eq!(payloads(&r, "d"), ["1", "2", "3"]);
}

#[test]
fn acked_messages_are_gone_and_unacked_ones_come_back_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let now = Now::current();
    {
        let (storage, r) = open(dir.path(), Fsync::Always);
        let q = r.declare_queue("q", durable(), false, 1, now).unwrap();
        for p in ["a", "b", "c", "d"] {
            r.publish_to_exchange("", "q", msg(p, Delivery::AtLeastOnce), now)
                .unwrap();
        }
        let (a, _) = r.get(&q, now).unwrap();
        let (b, _) = r.get(&q, now).unwrap();
        r.ack(&q, a, now);
        // b is delivered and never settled; c and d were never delivered.
        let _unsettled = b;
        storage.close();
    }
    let (storage, r) = open(dir.path(), Fsync::Always);
    let q = r.queue("q", 0).unwrap();
    let got: Vec<(String, bool)> = std::iter::from_fn(|| r.get(&q, now))
        .map(|(e, _)| {
            (
                String::from_utf8(e.message.payload.to_vec()).unwrap(),
                e.redelivered,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("b".into(), true), ("c".into(), false), ("d".into(), false)]
    );
    drop(storage);
}

#[test]
fn declarations_bindings_and_retained_messages_survive_and_deletions_too() {
    let dir = tempfile::tempdir().unwrap();
    let now = Now::current();
    let x = |durable| ExchangeSpec {
        kind: ExchangeKind::Topic,
        durable,
        auto_delete: false,
        internal: false,
        alternate_exchange: None,
    };
    {
        let (storage, r) = open(dir.path(), Fsync::Batch);
        r.declare_exchange("dx", x(true), false).unwrap();
        r.declare_exchange("tx", x(false), false).unwrap();
        r.declare_exchange("gone", x(true), false).unwrap();
        r.delete_exchange("gone", false).unwrap();
        let args = QueueArgs {
            max_length: Some(5),
            dead_letter_exchange: Some("dx".into()),
            ..QueueArgs::default()
        };
        let spec = QueueSpec {
            args: args.clone(),
            ..durable()
        };
        r.declare_queue("q", spec, false, 1, now).unwrap();
        r.declare_queue("deleted", durable(), false, 1, now)
            .unwrap();
        r.publish_to_exchange("", "deleted", msg("x", Delivery::AtLeastOnce), now)
            .unwrap();
        r.delete_queue("deleted", 1, false, false).unwrap();
        let none = BindArgs::new();
        r.bind("dx", Dest::Queue("q".into()), "a.*", none.clone())
            .unwrap();
        r.bind("tx", Dest::Queue("q".into()), "b", none.clone())
            .unwrap();
        r.bind(
            "amq.topic",
            Dest::Queue("q".into()),
            "sensors.#",
            none.clone(),
        )
        .unwrap();
        r.bind("dx", Dest::Queue("q".into()), "unbound", none.clone())
            .unwrap();
        r.unbind("dx", Dest::Queue("q".into()), "unbound", &none)
            .unwrap();
        let retained = |subject: &str, payload: &'static str| Message {
            subject: Subject::new(subject).unwrap(),
            retain: true,
            ..msg(payload, Delivery::AtMostOnce)
        };
        r.publish(retained("r.one", "1"), now);
        r.publish(retained("r.two", "2"), now);
        r.publish(retained("r.two", ""), now);
        let routed = r.publish(retained("r.three", "3"), now);
        block_on(routed.ticket.wait()).unwrap();
        drop(storage);
    }
    let (_storage, r) = open(dir.path(), Fsync::Batch);
    assert_eq!(r.exchange("dx").unwrap(), x(true));
    assert!(r.exchange("tx").is_none());
    assert!(r.exchange("gone").is_none());
    assert!(!r.has_queue("deleted"));
    let q = r.queue("q", 0).unwrap();
    assert_eq!(q.spec().args.max_length, Some(5));
    // Bindings: through dx, and from the subject space through amq.topic.
    r.publish_to_exchange("dx", "a.b", msg("via dx", Delivery::AtMostOnce), now)
        .unwrap();
    r.publish_to_exchange("dx", "unbound", msg("no", Delivery::AtMostOnce), now)
        .unwrap();
    r.publish(
        Message {
            subject: Subject::new("sensors.kitchen").unwrap(),
            ..msg("via subject", Delivery::AtMostOnce)
        },
        now,
    );
    assert_eq!(payloads(&r, "q"), ["via dx", "via subject"]);
    let all = crate::router::Filter::nats("r.>").unwrap();
    let mut kept: Vec<String> = r
        .retained(&all, now)
        .iter()
        .map(|m| m.subject.as_str().to_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["r.one", "r.three"]);
}

#[test]
fn dead_letters_and_requeues_keep_their_history_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = Now::current();
    {
        let (storage, r) = open(dir.path(), Fsync::Never);
        r.declare_queue("dlq", durable(), false, 1, now).unwrap();
        let spec = QueueSpec {
            args: QueueArgs {
                dead_letter_exchange: Some(String::new()),
                dead_letter_routing_key: Some("dlq".into()),
                ..QueueArgs::default()
            },
            ..durable()
        };
        let q = r.declare_queue("q", spec, false, 1, now).unwrap();
        r.publish_to_exchange("", "q", msg("m", Delivery::AtLeastOnce), now)
            .unwrap();
        let (e, _) = r.get(&q, now).unwrap();
        r.reject(&q, e, now);
        storage.close();
    }
    let (_storage, r) = open(dir.path(), Fsync::Never);
    assert_eq!(r.queue("q", 0).unwrap().message_count(), 0);
    let dlq = r.queue("dlq", 0).unwrap();
    let (e, _) = r.get(&dlq, now).unwrap();
    let history = deaths::deaths(&e.message);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].queue, "q");
}

#[test]
fn consumers_see_recovered_messages_and_sequence_numbers_continue() {
    let dir = tempfile::tempdir().unwrap();
    let now = Now::current();
    {
        let (storage, r) = open(dir.path(), Fsync::Always);
        r.declare_queue("q", durable(), false, 1, now).unwrap();
        for p in ["1", "2"] {
            r.publish_to_exchange("", "q", msg(p, Delivery::AtLeastOnce), now)
                .unwrap();
        }
        storage.close();
    }
    {
        let (storage, r) = open(dir.path(), Fsync::Always);
        r.publish_to_exchange("", "q", msg("3", Delivery::AtLeastOnce), now)
            .unwrap();
        let q = r.queue("q", 0).unwrap();
        let outlet = Arc::new(Outlet::new(10));
        let spec = ConsumerSpec {
            id: r.next_consumer_id(),
            no_ack: false,
            exclusive: false,
            credit: Arc::new(Credit::new(0)),
            channel_credit: Arc::new(Credit::new(0)),
            outlet: outlet.clone(),
            priority: 0,
        };
        r.consume(&q, spec, now).unwrap();
        let mut items = Vec::new();
        outlet.drain(&mut items);
        let mut got = Vec::new();
        for item in items {
            if let OutletItem::Deliver { queue, entry, .. } = item {
                got.push(String::from_utf8(entry.message.payload.to_vec()).unwrap());
                if got.len() == 1 {
                    r.ack(&queue, entry, now);
                }
            }
        }
        assert_eq!(got, ["1", "2", "3"]);
        storage.close();
    }
    // Restarted twice: the two unacked messages, in order, marked redelivered.
    let (_storage, r) = open(dir.path(), Fsync::Always);
    let q = r.queue("q", 0).unwrap();
    let got: Vec<(String, bool)> = std::iter::from_fn(|| r.get(&q, now))
        .map(|(e, _)| {
            (
                String::from_utf8(e.message.payload.to_vec()).unwrap(),
                e.redelivered,
            )
        })
        .collect();
    assert_eq!(got, [("2".into(), true), ("3".into(), true)]);
}

#[test]
fn a_corrupt_value_is_a_clear_error_naming_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, r) = open(dir.path(), Fsync::Always);
        r.declare_queue("q", durable(), false, 1, Now::current())
            .unwrap();
        storage.close();
    }
    {
        let db = Database::builder(dir.path()).open().unwrap();
        let queues = db
            .keyspace("queues", KeyspaceCreateOptions::default)
            .unwrap();
        queues.insert("q", [0xffu8, 0xff, 0xff]).unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
    }
    let err = Storage::open(dir.path(), Fsync::Always)
        .unwrap_err()
        .to_string();
    assert!(err.contains("keyspace 'queues'"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

/// A failed write (a full disk, a failed fsync): every durable publish from then on
/// gets its protocol's negative acknowledgement; the broker keeps serving reads and
/// non-durable traffic.
#[tokio::test]
async fn a_failed_write_refuses_durable_publishes_and_the_broker_keeps_serving() {
    use crate::config::{Config, DataDir, Listen};
    use lapin::options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
        QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    use lapin::BasicProperties;

    let mut config = Config::default();
    let any = Listen::parse("127.0.0.1:0").unwrap();
    config.listeners.mqtt = any;
    config.listeners.amqp = any;
    config.listeners.stomp = any;
    config.listeners.nats = Listen::Off;
    config.listeners.kafka_rest = Listen::Off;
    config.listeners.mqtt_ws = Listen::Off;
    config.listeners.stomp_ws = Listen::Off;
    config.listeners.http = Listen::Off;
    config.listeners.nats_monitor = Listen::Off;
    config.data_dir = DataDir::Temporary;
    let broker = crate::Broker::start(config).await.unwrap();
    let uri = format!("amqp://guest:guest@{}/%2f", broker.amqp_addr().unwrap());
    let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("q".into(), durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "q".into(),
        "amq.topic".into(),
        "stored.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let publish = |props: BasicProperties| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b"m",
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap()
            .is_ack()
        }
    };
    let persistent = BasicProperties::default().with_delivery_mode(2);
    assert!(publish(persistent.clone()).await, "stored: acked");

    broker.ctx.storage().unwrap().fail_next_write();
    assert!(!publish(persistent.clone()).await, "not stored: nacked");
    assert!(
        !publish(persistent).await,
        "and every durable publish after it"
    );
    assert!(
        publish(BasicProperties::default()).await,
        "transient: acked"
    );
    // Reads go on.
    let got = ch
        .basic_get("q".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(got.is_some());

    // MQTT 5: PUBACK 0x80 for a message that must be stored; success otherwise.
    let mqtt = broker.mqtt_addr().unwrap();
    let mut o = rumqttc::v5::MqttOptions::new("v5-publisher", "127.0.0.1", mqtt.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut ev) = rumqttc::v5::AsyncClient::new(o, 10);
    let mut reasons = Vec::new();
    client
        .publish(
            "stored/x",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "m",
        )
        .await
        .unwrap();
    client
        .publish(
            "elsewhere",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "m",
        )
        .await
        .unwrap();
    while reasons.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(5), ev.poll())
            .await
            .unwrap()
            .unwrap();
        if let rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(a)) = e {
            reasons.push(a.reason);
        }
    }
    use rumqttc::v5::mqttbytes::v5::PubAckReason;
    assert_eq!(
        reasons,
        [
            PubAckReason::UnspecifiedError,
            PubAckReason::NoMatchingSubscribers
        ]
    );

    // MQTT 3.1.1 has no negative acknowledgement: the connection is closed.
    let mut o = rumqttc::MqttOptions::new("v4-publisher", "127.0.0.1", mqtt.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut ev) = rumqttc::AsyncClient::new(o, 10);
    client
        .publish("stored/y", rumqttc::QoS::AtLeastOnce, false, "m")
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ev.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return false,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await
    .unwrap();
    assert!(ended, "no PUBACK: disconnected instead");

    // STOMP: ERROR with the SEND's receipt-id.
    use dwbroker_codecs::stomp::{Command, Frame, Received, StompCodec, StompLimits, Version};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::Decoder;
    let mut s = tokio::net::TcpStream::connect(broker.stomp_addr().unwrap())
        .await
        .unwrap();
    let mut out = bytes::BytesMut::new();
    Frame::new(Command::Connect)
        .with("accept-version", "1.2")
        .encode(Version::V1_2, &mut out);
    Frame::new(Command::Send)
        .with("destination", "/queue/q")
        .with("persistent", "true")
        .with("receipt", "r1")
        .encode(Version::V1_2, &mut out);
    s.write_all(&out).await.unwrap();
    let mut codec = StompCodec::new(StompLimits {
        max_header_line: 1 << 16,
        max_headers: 100,
        max_body: 1 << 20,
    });
    let mut buf = bytes::BytesMut::new();
    let mut frames = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while frames.len() < 2 {
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                if let Received::Frame(f) = r {
                    frames.push(f);
                }
            }
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                break;
            }
        }
    });
    read.await.unwrap();
    assert_eq!(frames[0].command, Command::Connected);
    assert_eq!(frames[1].command, Command::Error);
    assert_eq!(frames[1].header("receipt-id"), Some("r1"));

    broker.shutdown().await;
}

#[test]
fn a_reclaim_is_due_once_more_was_deleted_than_is_stored() {
    let r = Reclaim::default();
    let put = |n: usize| {
        (0..n as u64)
            .map(|i| {
                (
                    (Space::Messages, i.to_be_bytes().to_vec()),
                    Op::PutNew(Vec::new()),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let delete = |n: usize| {
        (0..n as u64)
            .map(|i| {
                (
                    (Space::SessionMessages, i.to_be_bytes().to_vec()),
                    Op::Delete,
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    r.count(&put(5000));
    r.count(&delete(2000));
    assert!(!r.due(), "3000 still stored, 2000 deleted");
    r.count(&delete(2000));
    assert!(r.due(), "1000 stored, 4000 deleted");
    assert!(!r.due(), "counting starts again");
    r.count(&delete(500));
    assert!(!r.due(), "too few to bother");
}
