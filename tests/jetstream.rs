//! JetStream driven by async-nats's `jetstream` module, against the real NATS
//! listener started in process on port 0: streams, publish acks, pull and push
//! consumers, message get/delete, purge, errors, and other protocols' publishes
//! captured by a stream.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;

async fn js(broker: &dwbroker::Broker) -> jetstream::Context {
    jetstream::new(nats_client(broker).await)
}

fn file_stream(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

#[tokio::test]
async fn streams_publish_acks_pull_consumers_and_messages() {
    let (broker, _) = start().await;
    let js = js(&broker).await;
    let account = js.query_account().await.expect("account info");
    assert_eq!(account.streams, 0);

    let mut s = js
        .create_stream(file_stream("ORDERS", &["orders.>"]))
        .await
        .expect("stream created");
    assert_eq!(s.cached_info().config.max_messages, -1);
    // The same config again is no error; another one under the name is.
    js.create_stream(file_stream("ORDERS", &["orders.>"]))
        .await
        .expect("identical create is idempotent");
    let clash = js.create_stream(file_stream("ORDERS", &["other"])).await;
    assert!(clash.is_err(), "a different config under the same name");
    let overlap = js
        .create_stream(file_stream("OTHER", &["orders.new"]))
        .await;
    assert!(overlap.is_err(), "overlapping subjects");

    for i in 1..=5u64 {
        let ack = js
            .publish(format!("orders.{i}"), format!("order {i}").into())
            .await
            .unwrap()
            .await
            .expect("publish ack");
        assert_eq!((ack.stream.as_str(), ack.sequence), ("ORDERS", i));
        assert!(!ack.duplicate);
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "order-5");
    let first = js
        .publish_with_headers("orders.5", headers.clone(), "again".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let dup = js
        .publish_with_headers("orders.5", headers, "again".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.sequence, 6);
    assert!(dup.duplicate && dup.sequence == 6);

    let mut looked_up = js.get_stream("ORDERS").await.expect("found by name");
    let info = looked_up.info().await.unwrap();
    assert_eq!(info.state.messages, 6);
    assert_eq!(
        (info.state.first_sequence, info.state.last_sequence),
        (1, 6)
    );
    let m = s.get_raw_message(3).await.expect("message 3");
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("orders.3", &b"order 3"[..])
    );
    let last = s
        .get_last_raw_message_by_subject("orders.5")
        .await
        .expect("last on orders.5");
    assert_eq!(last.sequence, 6);
    assert!(s.delete_message(3).await.unwrap());
    assert!(s.get_raw_message(3).await.is_err(), "deleted");

    let c: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("worker".into()),
            ..Default::default()
        })
        .await
        .expect("consumer created");
    let got = js_fetch(&c, 10).await;
    let seqs: Vec<u64> = got
        .iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect();
    assert_eq!(seqs, [1, 2, 4, 5, 6]);
    assert_eq!(got[0].subject.as_str(), "orders.1");
    for m in &got {
        m.ack().await.unwrap();
    }
    // Acks are processed in order with the info request that follows them.
    js.client().flush().await.unwrap();
    let mut c: consumer::PullConsumer = s.get_consumer("worker").await.expect("found");
    let ci = c.info().await.unwrap();
    assert_eq!(ci.ack_floor.stream_sequence, 6);
    assert_eq!(ci.num_ack_pending, 0);
    assert_eq!(ci.num_pending, 0);
    assert!(js_fetch(&c, 5).await.is_empty(), "nothing left");

    let purged = s.purge().await.unwrap();
    assert_eq!(purged.purged, 5);
    assert_eq!(s.info().await.unwrap().state.messages, 0);
    js.delete_stream("ORDERS").await.unwrap();
    let gone = js.get_stream("ORDERS").await.expect_err("deleted");
    assert!(gone.to_string().contains("stream not found"), "{gone}");
    js.get_stream("JOBS_NONE").await.expect_err("never created");
}

#[tokio::test]
async fn redelivery_on_nak_and_conditional_publishes() {
    let (broker, _) = start().await;
    let js = js(&broker).await;
    let s = js
        .create_stream(stream::Config {
            name: "JOBS".into(),
            subjects: vec!["jobs.*".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("jobs.a", "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let wrong = js
        .send_publish(
            "jobs.a",
            jetstream::message::PublishMessage::build()
                .payload("two".into())
                .expected_last_sequence(7),
        )
        .await
        .unwrap()
        .await;
    let err = wrong.expect_err("wrong last sequence");
    assert!(err.to_string().contains("wrong last sequence: 1"), "{err}");

    let c: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("w".into()),
            ack_wait: Duration::from_secs(10),
            ..Default::default()
        })
        .await
        .unwrap();
    let got = js_fetch(&c, 1).await;
    assert_eq!(got.len(), 1);
    got[0]
        .ack_with(jetstream::AckKind::Nak(None))
        .await
        .unwrap();
    let again = js_fetch(&c, 1).await;
    assert_eq!(again.len(), 1, "NAKed message comes back");
    let info = again[0].info().unwrap();
    assert_eq!((info.stream_sequence, info.delivered), (1, 2));
    again[0].double_ack().await.expect("ack confirmed");
}

#[tokio::test]
async fn push_consumers_deliver_to_their_subject() {
    let (broker, _) = start().await;
    let js = js(&broker).await;
    let s = js
        .create_stream(file_stream("EVENTS", &["events.>"]))
        .await
        .unwrap();
    for i in 0..3 {
        js.publish(format!("events.{i}"), "e".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let c: consumer::PushConsumer = s
        .create_consumer(consumer::push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: "deliver.events".into(),
            filter_subject: "events.>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = c.messages().await.unwrap();
    for i in 0..3 {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("pushed in time")
            .unwrap()
            .unwrap();
        assert_eq!(m.subject.as_str(), format!("events.{i}"));
        m.ack().await.unwrap();
    }
}

#[tokio::test]
async fn mqtt_amqp_and_nats_publishes_are_replayed_from_one_stream() {
    let (broker, mqtt) = start().await;
    let js = js(&broker).await;
    let s = js
        .create_stream(file_stream("SENSORS", &["sensors.>"]))
        .await
        .unwrap();
    // MQTT QoS 1: PUBACKed once the append is stored.
    let (mut v5, _) = v5(mqtt, |_| {}, "sensor-1").await;
    v5.client
        .publish(
            "sensors/t1",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            Bytes::from_static(b"21.5"),
        )
        .await
        .unwrap();
    v5.next_incoming(|p| match p {
        rumqttc::v5::mqttbytes::v5::Packet::PubAck(a) => Some(a.clone()),
        _ => None,
    })
    .await;
    // AMQP through amq.topic.
    let (_conn, ch) = amqp_channel(&broker).await;
    ch.basic_publish(
        "amq.topic".into(),
        "sensors.t2".into(),
        lapin::options::BasicPublishOptions::default(),
        b"22.0",
        lapin::BasicProperties::default().with_content_type("text/plain".into()),
    )
    .await
    .unwrap();
    js.publish("sensors.t3", "23.1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let c: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < 3 && tokio::time::Instant::now() < deadline {
        got.extend(js_fetch(&c, 3).await);
    }
    let seen: Vec<(String, Bytes)> = got
        .iter()
        .map(|m| (m.subject.to_string(), m.payload.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("sensors.t1".to_string(), Bytes::from_static(b"21.5")),
            ("sensors.t2".to_string(), Bytes::from_static(b"22.0")),
            ("sensors.t3".to_string(), Bytes::from_static(b"23.1")),
        ]
    );
    let ct = got[1]
        .headers
        .as_ref()
        .and_then(|h| h.get("Content-Type"))
        .map(|v| v.to_string());
    assert_eq!(
        ct.as_deref(),
        Some("text/plain"),
        "AMQP content type as a header"
    );
}

#[tokio::test]
async fn bad_requests_get_the_error_json_and_the_connection_stays() {
    let (broker, _) = start().await;
    let c = nats_client(&broker).await;
    for (subject, body, code) in [
        ("$JS.API.STREAM.CREATE.X", &b"{bad"[..], 10025),
        (
            "$JS.API.STREAM.CREATE.X",
            br#"{"name":"X","max_msgs":"a"}"#,
            10025,
        ),
        ("$JS.API.STREAM.CREATE.X", br#"{"name":"Y"}"#, 10056),
        ("$JS.API.STREAM.INFO.NOPE", b"", 10059),
        ("$JS.API.CONSUMER.CREATE.NOPE.C", br#"{"config":{}}"#, 10059),
        ("$JS.API.CONSUMER.INFO.NOPE.C", b"", 10059),
        ("$JS.API.STREAM.MSG.GET.NOPE", br#"{"seq":1}"#, 10059),
    ] {
        let reply = tokio::time::timeout(WAIT, c.request(subject, Bytes::from(body)))
            .await
            .expect("answered in time")
            .expect("answered");
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(v["error"]["err_code"], code, "{subject}: {v}");
    }
    assert_eq!(
        c.connection_state(),
        async_nats::connection::State::Connected
    );
}
