//! One subject space across protocols: what an MQTT client publishes reaches NATS
//! subscribers and the reverse, with headers, content type, correlation and reply
//! subjects mapped per DESIGN.md.

mod common;

use bytes::Bytes;
use common::*;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as Q5;

#[tokio::test]
async fn mqtt_publish_reaches_nats_with_headers() {
    let (broker, addr) = start().await;
    let n = nats_client(&broker).await;
    let mut exact = n.subscribe("plant.line1").await.unwrap();
    let mut wild = n.subscribe("plant.*").await.unwrap();
    let mut rest = n.subscribe("plant.>").await.unwrap();
    n.flush().await.unwrap();
    let (m, _) = v5(addr, |_| {}, "x-mqtt-pub").await;
    let props = p5::PublishProperties {
        user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into())],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    m.client
        .publish_with_properties("plant/line1", Q5::AtLeastOnce, false, "21.5", props)
        .await
        .unwrap();
    for sub in [&mut exact, &mut wild, &mut rest] {
        let msg = nats_next(sub).await;
        assert_eq!(msg.subject.as_str(), "plant.line1");
        assert_eq!(msg.payload, "21.5");
        let h = msg.headers.expect("headers");
        let ks: Vec<&str> = h.get_all("k").map(|v| v.as_str()).collect();
        assert_eq!(ks, ["v1", "v2"]);
        assert_eq!(
            h.get("Content-Type").map(|v| v.as_str()),
            Some("text/plain")
        );
    }
}

#[tokio::test]
async fn nats_publish_reaches_mqtt_with_user_properties() {
    let (broker, addr) = start().await;
    let (mut m, _) = v5(addr, |_| {}, "x-mqtt-sub").await;
    m.subscribe("plant/+", Q5::AtMostOnce).await;
    let (mut m4, _) = v4(addr, |_| {}, "x-mqtt4-sub").await;
    m4.subscribe("plant/#", rumqttc::QoS::AtMostOnce).await;
    let n = nats_client(&broker).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("site", "north");
    headers.insert("Content-Type", "application/json");
    n.publish_with_headers("plant.line2", headers, "{}".into())
        .await
        .unwrap();
    n.flush().await.unwrap();
    let p = m.publish().await;
    assert_eq!(&p.topic[..], b"plant/line2");
    assert_eq!(&p.payload[..], b"{}");
    let props = p.properties.expect("properties");
    assert_eq!(
        props.user_properties,
        vec![("site".to_string(), "north".to_string())]
    );
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    let p = m4.publish().await;
    assert_eq!(p.topic, "plant/line2");
}

#[tokio::test]
async fn mqtt_request_answered_by_a_nats_responder() {
    let (broker, addr) = start().await;
    let n = nats_client(&broker).await;
    let mut service = n.subscribe("svc.temp").await.unwrap();
    n.flush().await.unwrap();
    let (mut requester, _) = v5(addr, |_| {}, "x-req").await;
    requester.subscribe("replies/x-req", Q5::AtLeastOnce).await;
    let props = p5::PublishProperties {
        response_topic: Some("replies/x-req".into()),
        correlation_data: Some(Bytes::from_static(b"corr-42")),
        ..Default::default()
    };
    requester
        .client
        .publish_with_properties("svc/temp", Q5::AtLeastOnce, false, "?", props)
        .await
        .unwrap();
    let req = nats_next(&mut service).await;
    // The MQTT Response Topic is the NATS reply subject; correlation data a header.
    assert_eq!(req.reply.as_deref(), Some("replies.x-req"));
    let corr = req
        .headers
        .as_ref()
        .and_then(|h| h.get("Correlation-Id"))
        .map(|v| v.as_str().to_owned());
    assert_eq!(corr.as_deref(), Some("corr-42"));
    // The responder answers the NATS way, echoing the correlation header.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Correlation-Id", "corr-42");
    n.publish_with_headers(req.reply.unwrap(), headers, "21C".into())
        .await
        .unwrap();
    n.flush().await.unwrap();
    let answer = requester.publish().await;
    assert_eq!(&answer.payload[..], b"21C");
    assert_eq!(
        answer.properties.and_then(|p| p.correlation_data),
        Some(Bytes::from_static(b"corr-42"))
    );
}

#[tokio::test]
async fn nats_request_answered_by_an_mqtt_responder() {
    let (broker, addr) = start().await;
    let (mut responder, _) = v5(addr, |_| {}, "x-responder").await;
    responder.subscribe("svc/mqtt", Q5::AtMostOnce).await;
    let n = nats_client(&broker).await;
    let request = tokio::spawn(async move { n.request("svc.mqtt", "question".into()).await });
    let req = responder.publish().await;
    assert_eq!(&req.payload[..], b"question");
    // The NATS reply subject arrives as the MQTT Response Topic.
    let reply_topic = req
        .properties
        .and_then(|p| p.response_topic)
        .expect("response topic");
    responder
        .client
        .publish(reply_topic, Q5::AtMostOnce, false, "answer")
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, request)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer.payload, "answer");
}

/// An AMQP channel on `broker` with an exclusive queue bound to amq.topic.
async fn amqp_queue_on_amq_topic(
    broker: &dwbroker::Broker,
    pattern: &str,
) -> (lapin::Connection, lapin::Channel, lapin::Consumer) {
    use lapin::options::*;
    use lapin::types::FieldTable;
    let (conn, ch) = amqp_channel(broker).await;
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
    ch.queue_bind(
        q.name().clone(),
        "amq.topic".into(),
        pattern.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (conn, ch, consumer)
}

#[tokio::test]
async fn mqtt_and_nats_publishes_reach_an_amqp_queue_bound_to_amq_topic() {
    let (broker, addr) = start().await;
    let (_c, _ch, mut consumer) = amqp_queue_on_amq_topic(&broker, "sensors.*.temp").await;
    let (m, _) = v5(addr, |_| {}, "x-mqtt-to-amqp").await;
    let props = p5::PublishProperties {
        user_properties: vec![("unit".into(), "C".into())],
        content_type: Some("text/plain".into()),
        correlation_data: Some(Bytes::from_static(b"corr-1")),
        ..Default::default()
    };
    m.client
        .publish_with_properties(
            "sensors/kitchen/temp",
            Q5::AtLeastOnce,
            false,
            "21.5",
            props,
        )
        .await
        .unwrap();
    let d = amqp_next(&mut consumer).await;
    assert_eq!(d.data, b"21.5");
    assert_eq!(d.exchange.as_str(), "amq.topic");
    assert_eq!(d.routing_key.as_str(), "sensors.kitchen.temp");
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|s| s.as_str()),
        Some("corr-1")
    );
    let headers = d.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("unit"),
        Some(&lapin::types::AMQPValue::LongString("C".into()))
    );
    let n = nats_client(&broker).await;
    n.publish("sensors.hall.temp", "19".into()).await.unwrap();
    n.flush().await.unwrap();
    let d = amqp_next(&mut consumer).await;
    assert_eq!(
        (d.data.as_slice(), d.routing_key.as_str()),
        (&b"19"[..], "sensors.hall.temp")
    );
}

#[tokio::test]
async fn amqp_publish_to_amq_topic_reaches_mqtt_and_nats() {
    use lapin::options::BasicPublishOptions;
    use lapin::types::{AMQPValue, FieldTable};
    let (broker, addr) = start().await;
    let (mut m, _) = v5(addr, |_| {}, "x-amqp-to-mqtt").await;
    m.subscribe("alerts/+", Q5::AtMostOnce).await;
    let n = nats_client(&broker).await;
    let mut sub = n.subscribe("alerts.>").await.unwrap();
    n.flush().await.unwrap();
    let (_conn, ch) = amqp_channel(&broker).await;
    let mut headers = FieldTable::default();
    headers.insert("site".into(), AMQPValue::LongString("north".into()));
    headers.insert("level".into(), AMQPValue::LongInt(3));
    let props = lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_headers(headers);
    ch.basic_publish(
        "amq.topic".into(),
        "alerts.kitchen".into(),
        BasicPublishOptions::default(),
        b"{\"fire\":true}",
        props,
    )
    .await
    .unwrap();
    let p = m.publish().await;
    assert_eq!(&p.topic[..], b"alerts/kitchen");
    assert_eq!(&p.payload[..], b"{\"fire\":true}");
    let props = p.properties.expect("MQTT 5 properties");
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    // Wire order is kept; lapin's FieldTable is a sorted map, so it sent level first.
    // The integer header arrives as text.
    assert_eq!(
        props.user_properties,
        vec![
            ("level".into(), "3".into()),
            ("site".into(), "north".into())
        ]
    );
    let msg = nats_next(&mut sub).await;
    assert_eq!(msg.subject.as_str(), "alerts.kitchen");
    let h = msg.headers.expect("headers");
    assert_eq!(h.get("site").map(|v| v.as_str()), Some("north"));
    assert_eq!(
        h.get("Content-Type").map(|v| v.as_str()),
        Some("application/json")
    );
}

// --- AMQP <-> MQTT / NATS through amq.topic (tests/interop/test_amqp.py §22) -----------

/// A unique first topic level, so that tests cannot see each other's messages.
fn uniq() -> String {
    format!("u{}", rand_suffix())
}

async fn amqp_publish(ch: &lapin::Channel, key: &str, body: &[u8], props: lapin::BasicProperties) {
    ch.basic_publish(
        "amq.topic".into(),
        key.into(),
        lapin::options::BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap();
}

fn amqp_str(v: &Option<lapin::types::ShortString>) -> Option<&str> {
    v.as_ref().map(|s| s.as_str())
}

#[tokio::test]
async fn mqtt_publish_reaches_amqp_binding_with_dotted_routing_key() {
    let (broker, addr) = start().await;
    let u = uniq();
    let (_c, _ch, mut consumer) =
        amqp_queue_on_amq_topic(&broker, &format!("{u}.sensors.*.temp")).await;
    let (m, _) = v4(addr, |_| {}, &format!("{u}-pub")).await;
    for (topic, body) in [
        ("sensors/x/temp", "21.5"),
        ("sensors/x/hum", "40"),
        ("sensors/y/temp", "end"),
    ] {
        m.client
            .publish(
                format!("{u}/{topic}"),
                rumqttc::QoS::AtLeastOnce,
                false,
                body,
            )
            .await
            .unwrap();
    }
    let d = amqp_next(&mut consumer).await;
    assert_eq!(
        (
            d.data.as_slice(),
            d.exchange.as_str(),
            d.routing_key.as_str()
        ),
        (
            &b"21.5"[..],
            "amq.topic",
            format!("{u}.sensors.x.temp").as_str()
        )
    );
    // The humidity reading does not match: the next one is the sentinel.
    let d = amqp_next(&mut consumer).await;
    assert_eq!(
        (d.data.as_slice(), d.routing_key.as_str()),
        (&b"end"[..], format!("{u}.sensors.y.temp").as_str())
    );
}

#[tokio::test]
async fn amqp_publish_to_amq_topic_reaches_an_mqtt_wildcard_subscriber() {
    let (broker, addr) = start().await;
    let u = uniq();
    let (mut sub, _) = v4(addr, |_| {}, &format!("{u}-sub")).await;
    let ack = sub
        .subscribe(&format!("{u}/a/+"), rumqttc::QoS::AtLeastOnce)
        .await;
    assert_eq!(
        ack.return_codes,
        [rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    let (_c, ch) = amqp_channel(&broker).await;
    let none = lapin::BasicProperties::default;
    amqp_publish(&ch, &format!("{u}.a.b"), b"hello mqtt", none()).await;
    amqp_publish(&ch, &format!("{u}.b.b"), b"not for a/+", none()).await;
    amqp_publish(&ch, &format!("{u}.a.b.c"), b"too deep", none()).await;
    amqp_publish(&ch, &format!("{u}.a.end"), b"end", none()).await;
    let p = sub.publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        (format!("{u}/a/b").as_str(), &b"hello mqtt"[..])
    );
    let p = sub.publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        (format!("{u}/a/end").as_str(), &b"end"[..])
    );
}

#[tokio::test]
async fn amqp_publish_reaches_a_nats_full_wildcard_with_headers() {
    use lapin::types::{AMQPValue, FieldTable};
    let (broker, _) = start().await;
    let u = uniq();
    let n = nats_client(&broker).await;
    let mut sub = n.subscribe(format!("{u}.a.>")).await.unwrap();
    n.flush().await.unwrap();
    let (_c, ch) = amqp_channel(&broker).await;
    let mut headers = FieldTable::default();
    headers.insert("k".into(), AMQPValue::LongString("v".into()));
    amqp_publish(
        &ch,
        &format!("{u}.a.b.c"),
        b"to nats",
        lapin::BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_correlation_id("c1".into())
            .with_message_id("m1".into())
            .with_headers(headers),
    )
    .await;
    amqp_publish(
        &ch,
        &format!("{u}.b"),
        b"not under a",
        lapin::BasicProperties::default(),
    )
    .await;
    amqp_publish(
        &ch,
        &format!("{u}.a.end"),
        b"end",
        lapin::BasicProperties::default(),
    )
    .await;
    let msg = nats_next(&mut sub).await;
    assert_eq!(msg.subject.as_str(), format!("{u}.a.b.c"));
    assert_eq!(msg.payload, "to nats");
    let h = msg.headers.expect("headers");
    assert_eq!(
        h.get("Content-Type").map(|v| v.as_str()),
        Some("text/plain")
    );
    assert_eq!(h.get("Correlation-Id").map(|v| v.as_str()), Some("c1"));
    assert_eq!(h.get("Nats-Msg-Id").map(|v| v.as_str()), Some("m1"));
    assert_eq!(h.get("k").map(|v| v.as_str()), Some("v"));
    let msg = nats_next(&mut sub).await;
    assert_eq!(
        (msg.subject.as_str(), &msg.payload[..]),
        (format!("{u}.a.end").as_str(), &b"end"[..])
    );
}

#[tokio::test]
async fn nats_publish_reaches_an_amqp_hash_binding_with_properties() {
    let (broker, _) = start().await;
    let u = uniq();
    let (_c, _ch, mut consumer) = amqp_queue_on_amq_topic(&broker, &format!("{u}.n.#")).await;
    let n = nats_client(&broker).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "text/plain");
    headers.insert("Nats-Msg-Id", "m2");
    headers.insert("k", "v");
    n.publish_with_reply_and_headers(
        format!("{u}.n.x.y"),
        format!("{u}.inbox"),
        headers,
        "from nats".into(),
    )
    .await
    .unwrap();
    n.publish(format!("{u}.other"), "no".into()).await.unwrap();
    n.publish(format!("{u}.n"), "end".into()).await.unwrap();
    n.flush().await.unwrap();
    let d = amqp_next(&mut consumer).await;
    assert_eq!(
        (
            d.data.as_slice(),
            d.exchange.as_str(),
            d.routing_key.as_str()
        ),
        (
            &b"from nats"[..],
            "amq.topic",
            format!("{u}.n.x.y").as_str()
        )
    );
    assert_eq!(amqp_str(d.properties.content_type()), Some("text/plain"));
    assert_eq!(amqp_str(d.properties.message_id()), Some("m2"));
    let headers = d.properties.headers().clone().expect("headers");
    assert_eq!(
        headers.inner().get("k"),
        Some(&lapin::types::AMQPValue::LongString("v".into()))
    );
    let reply_to = amqp_str(d.properties.reply_to()).expect("reply_to");
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "{reply_to}");
    // `#` matches zero words: the sentinel on "{u}.n" arrives; "{u}.other" never does.
    let d = amqp_next(&mut consumer).await;
    assert_eq!(
        (d.data.as_slice(), d.routing_key.as_str()),
        (&b"end"[..], format!("{u}.n").as_str())
    );
}

#[tokio::test]
async fn amqp_properties_become_mqtt5_properties() {
    use lapin::types::{AMQPValue, FieldTable};
    let (broker, addr) = start().await;
    let u = uniq();
    let (mut sub, _) = v5(addr, |_| {}, &format!("{u}-sub")).await;
    sub.subscribe(&format!("{u}/p"), Q5::AtLeastOnce).await;
    let (_c, ch) = amqp_channel(&broker).await;
    let mut headers = FieldTable::default();
    headers.insert("k".into(), AMQPValue::LongString("v".into()));
    headers.insert("n".into(), AMQPValue::LongInt(5));
    amqp_publish(
        &ch,
        &format!("{u}.p"),
        b"{}",
        lapin::BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id("corr-7".into())
            .with_reply_to(format!("{u}.replies").as_str().into())
            .with_headers(headers)
            .with_expiration("60000".into())
            .with_priority(3)
            .with_message_id("mid-1".into())
            .with_timestamp(1_700_000_000),
    )
    .await;
    let p = sub.publish().await;
    assert_eq!(&p.payload[..], b"{}");
    let props = p.properties.expect("MQTT 5 properties");
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert_eq!(props.correlation_data, Some(Bytes::from_static(b"corr-7")));
    assert!(props.response_topic.is_some(), "reply_to not carried");
    let ups: std::collections::HashMap<_, _> = props.user_properties.iter().cloned().collect();
    assert_eq!(ups.get("k").map(String::as_str), Some("v"), "{ups:?}");
    assert_eq!(ups.get("n").map(String::as_str), Some("5"), "{ups:?}");
    let expiry = props.message_expiry_interval.expect("message expiry");
    assert!((55..=60).contains(&expiry), "{expiry}");
    // MQTT has no priority, message id or timestamp: dropped, not made user properties.
    for k in ups.keys() {
        let k = k.to_lowercase();
        assert!(
            !["priority", "message-id", "message_id", "timestamp"].contains(&k.as_str()),
            "{ups:?}"
        );
    }
}

#[tokio::test]
async fn mqtt5_properties_become_amqp_properties() {
    let (broker, addr) = start().await;
    let u = uniq();
    let (_c, _ch, mut consumer) = amqp_queue_on_amq_topic(&broker, &format!("{u}.p")).await;
    let (m, _) = v5(addr, |_| {}, &format!("{u}-pub")).await;
    let props = p5::PublishProperties {
        content_type: Some("application/json".into()),
        correlation_data: Some(Bytes::from_static(b"corr-8")),
        response_topic: Some(format!("{u}/replies")),
        user_properties: vec![("k".into(), "v".into())],
        message_expiry_interval: Some(60),
        ..Default::default()
    };
    m.client
        .publish_with_properties(format!("{u}/p"), Q5::AtLeastOnce, false, "{}", props)
        .await
        .unwrap();
    let d = amqp_next(&mut consumer).await;
    assert_eq!(d.data, b"{}");
    let p = &d.properties;
    assert_eq!(amqp_str(p.content_type()), Some("application/json"));
    assert_eq!(amqp_str(p.correlation_id()), Some("corr-8"));
    let reply_to = amqp_str(p.reply_to()).expect("reply_to");
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "{reply_to}");
    assert_eq!(
        p.headers().as_ref().and_then(|h| h.inner().get("k")),
        Some(&lapin::types::AMQPValue::LongString("v".into()))
    );
    let expiration: u32 = amqp_str(p.expiration())
        .expect("expiration")
        .parse()
        .unwrap();
    assert!((55_000..=60_000).contains(&expiration), "{expiration}");
    assert_eq!(
        (p.priority(), p.message_id(), p.timestamp()),
        (&None, &None, &None),
        "never invented"
    );
}

#[tokio::test]
async fn mqtt_request_answered_by_an_amqp_responder_via_reply_to() {
    use lapin::options::BasicPublishOptions;
    let (broker, addr) = start().await;
    let u = uniq();
    let (_c, ch, mut consumer) = amqp_queue_on_amq_topic(&broker, &format!("{u}.req")).await;
    let (mut requester, _) = v5(addr, |_| {}, &format!("{u}-req")).await;
    requester
        .subscribe(&format!("{u}/replies"), Q5::AtLeastOnce)
        .await;
    let props = p5::PublishProperties {
        response_topic: Some(format!("{u}/replies")),
        correlation_data: Some(Bytes::from_static(b"c9")),
        ..Default::default()
    };
    requester
        .client
        .publish_with_properties(format!("{u}/req"), Q5::AtLeastOnce, false, "ping", props)
        .await
        .unwrap();
    let req = amqp_next(&mut consumer).await;
    assert_eq!(req.data, b"ping");
    let reply_to = req.properties.reply_to().clone().expect("reply_to");
    ch.basic_publish(
        "".into(),
        reply_to,
        BasicPublishOptions::default(),
        b"pong",
        lapin::BasicProperties::default()
            .with_correlation_id(req.properties.correlation_id().clone().unwrap()),
    )
    .await
    .unwrap();
    let answer = requester.publish().await;
    assert_eq!(
        (&answer.topic[..], &answer.payload[..]),
        (format!("{u}/replies").as_bytes(), &b"pong"[..])
    );
    assert_eq!(
        answer.properties.and_then(|p| p.correlation_data),
        Some(Bytes::from_static(b"c9"))
    );
}

// --- STOMP <-> AMQP / MQTT / NATS ------------------------------------------------------

use common::stomp_raw::{send_frame, StompRaw};
use dwbroker_codecs::stomp::{Command as StompCommand, Frame as StompFrame};

async fn stomp(broker: &dwbroker::Broker) -> StompRaw {
    StompRaw::connected(broker.stomp_addr().expect("stomp listener")).await
}

fn stomp_body(m: &StompFrame) -> &str {
    std::str::from_utf8(&m.body).unwrap()
}

#[tokio::test]
async fn stomp_queue_and_amqp_queue_are_the_same_queue_with_properties() {
    use lapin::options::*;
    use lapin::types::{AMQPValue, FieldTable};
    let (broker, _) = start().await;
    let u = uniq();
    let (to_amqp, to_stomp) = (format!("{u}-to-amqp"), format!("{u}-to-stomp"));
    let (_c, ch) = amqp_channel(&broker).await;
    ch.queue_declare(
        to_amqp.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            to_amqp.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    // STOMP -> AMQP.
    let mut s = stomp(&broker).await;
    s.send_frame(
        &send_frame(&format!("/queue/{to_amqp}"), b"{\"n\":1}")
            .with("content-type", "application/json")
            .with("correlation-id", "corr-s")
            .with("amqp-message-id", "mid-s")
            .with("priority", "4")
            .with("k", "v"),
    )
    .await;
    let d = amqp_next(&mut consumer).await;
    assert_eq!(d.data, b"{\"n\":1}");
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", to_amqp.as_str())
    );
    let p = &d.properties;
    assert_eq!(amqp_str(p.content_type()), Some("application/json"));
    assert_eq!(amqp_str(p.correlation_id()), Some("corr-s"));
    assert_eq!(amqp_str(p.message_id()), Some("mid-s"));
    assert_eq!(p.priority(), &Some(4));
    let h = p.headers().clone().expect("headers");
    assert_eq!(
        h.inner().get("k"),
        Some(&AMQPValue::LongString("v".into())),
        "{h:?}"
    );
    // AMQP -> STOMP: the STOMP subscription declares the queue, AMQP publishes to it
    // through the default exchange.
    s.subscribe("s", &format!("/queue/{to_stomp}"), "auto")
        .await;
    let mut headers = FieldTable::default();
    headers.insert("k".into(), AMQPValue::LongString("v".into()));
    headers.insert("n".into(), AMQPValue::LongInt(5));
    ch.basic_publish(
        "".into(),
        to_stomp.as_str().into(),
        BasicPublishOptions::default(),
        b"from amqp",
        lapin::BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_correlation_id("corr-a".into())
            .with_message_id("mid-a".into())
            .with_headers(headers),
    )
    .await
    .unwrap();
    let m = s.message().await;
    assert_eq!(stomp_body(&m), "from amqp");
    assert_eq!(
        m.header("destination"),
        Some(format!("/queue/{to_stomp}").as_str())
    );
    assert_eq!(m.header("content-type"), Some("text/plain"));
    assert_eq!(m.header("correlation-id"), Some("corr-a"));
    assert_eq!(m.header("amqp-message-id"), Some("mid-a"));
    assert_eq!(m.header("k"), Some("v"), "{m:?}");
    assert_eq!(m.header("n"), Some("5"), "{m:?}");
}

#[tokio::test]
async fn stomp_topic_send_reaches_mqtt_nats_and_amqp() {
    let (broker, addr) = start().await;
    let u = uniq();
    let (mut m, _) = v5(addr, |_| {}, &format!("{u}-sub")).await;
    m.subscribe(&format!("{u}/a/b"), Q5::AtMostOnce).await;
    let n = nats_client(&broker).await;
    let mut sub = n.subscribe(format!("{u}.a.b")).await.unwrap();
    n.flush().await.unwrap();
    let (_c, _ch, mut consumer) = amqp_queue_on_amq_topic(&broker, &format!("{u}.a.*")).await;
    let mut s = stomp(&broker).await;
    s.send_frame(
        &send_frame(&format!("/topic/{u}.a.b"), b"from stomp")
            .with("content-type", "text/plain")
            .with("correlation-id", "c-st")
            .with("k", "v"),
    )
    .await;
    let p = m.publish().await;
    assert_eq!(
        (&p.topic[..], &p.payload[..]),
        (format!("{u}/a/b").as_bytes(), &b"from stomp"[..])
    );
    let props = p.properties.expect("MQTT 5 properties");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.correlation_data, Some(Bytes::from_static(b"c-st")));
    assert_eq!(
        props.user_properties,
        vec![("k".to_string(), "v".to_string())]
    );
    let msg = nats_next(&mut sub).await;
    assert_eq!(
        (msg.subject.as_str(), &msg.payload[..]),
        (format!("{u}.a.b").as_str(), &b"from stomp"[..])
    );
    let h = msg.headers.expect("headers");
    assert_eq!(h.get("k").map(|v| v.as_str()), Some("v"));
    assert_eq!(
        h.get("Content-Type").map(|v| v.as_str()),
        Some("text/plain")
    );
    let d = amqp_next(&mut consumer).await;
    assert_eq!(
        (
            d.data.as_slice(),
            d.exchange.as_str(),
            d.routing_key.as_str()
        ),
        (&b"from stomp"[..], "amq.topic", format!("{u}.a.b").as_str())
    );
    assert_eq!(amqp_str(d.properties.correlation_id()), Some("c-st"));
}

#[tokio::test]
async fn mqtt_and_nats_publishes_reach_a_stomp_topic_subscriber() {
    let (broker, addr) = start().await;
    let u = uniq();
    let mut s = stomp(&broker).await;
    s.subscribe("t", &format!("/topic/{u}.x.y"), "auto").await;
    let (m, _) = v5(addr, |_| {}, &format!("{u}-pub")).await;
    let props = p5::PublishProperties {
        content_type: Some("application/json".into()),
        correlation_data: Some(Bytes::from_static(b"c-mq")),
        user_properties: vec![("site".into(), "north".into())],
        ..Default::default()
    };
    m.client
        .publish_with_properties(format!("{u}/x/y"), Q5::AtLeastOnce, false, "{}", props)
        .await
        .unwrap();
    let msg = s.message().await;
    assert_eq!(stomp_body(&msg), "{}");
    assert_eq!(msg.header("subscription"), Some("t"));
    assert_eq!(
        msg.header("destination"),
        Some(format!("/topic/{u}.x.y").as_str())
    );
    assert_eq!(msg.header("content-type"), Some("application/json"));
    assert_eq!(msg.header("correlation-id"), Some("c-mq"));
    assert_eq!(msg.header("site"), Some("north"), "{msg:?}");
    let n = nats_client(&broker).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("k", "v");
    n.publish_with_headers(format!("{u}.x.y"), headers, "from nats".into())
        .await
        .unwrap();
    n.publish(format!("{u}.x.z"), "not for x.y".into())
        .await
        .unwrap();
    n.publish(format!("{u}.x.y"), "end".into()).await.unwrap();
    n.flush().await.unwrap();
    let msg = s.message().await;
    assert_eq!(
        (msg.header("destination"), stomp_body(&msg)),
        (Some(format!("/topic/{u}.x.y").as_str()), "from nats")
    );
    assert_eq!(msg.header("k"), Some("v"), "{msg:?}");
    assert_eq!(stomp_body(&s.message().await), "end");
}

#[tokio::test]
async fn nats_request_answered_by_a_stomp_responder() {
    let (broker, _) = start().await;
    let u = uniq();
    let mut responder = stomp(&broker).await;
    responder
        .subscribe("svc", &format!("/topic/{u}.svc"), "auto")
        .await;
    let n = nats_client(&broker).await;
    let request = tokio::spawn({
        let subject = format!("{u}.svc");
        async move { n.request(subject, "question".into()).await }
    });
    let req = responder.message().await;
    assert_eq!(stomp_body(&req), "question");
    // The NATS reply subject is shown as a topic destination.
    let reply_to = req.header("reply-to").expect("reply-to").to_owned();
    assert!(reply_to.starts_with("/topic/"), "{reply_to}");
    responder
        .send_frame(&send_frame(&reply_to, b"answer"))
        .await;
    let answer = tokio::time::timeout(WAIT, request)
        .await
        .expect("the NATS request is answered in time")
        .unwrap()
        .expect("a reply");
    assert_eq!(answer.payload, "answer");
}

#[tokio::test]
async fn stomp_request_with_a_temp_queue_answered_by_a_nats_responder() {
    let (broker, _) = start().await;
    let u = uniq();
    let n = nats_client(&broker).await;
    let mut service = n.subscribe(format!("{u}.svc")).await.unwrap();
    n.flush().await.unwrap();
    let mut requester = stomp(&broker).await;
    requester
        .send_frame(
            &send_frame(&format!("/topic/{u}.svc"), b"ping")
                .with("reply-to", "/temp-queue/r")
                .with("correlation-id", "c-7"),
        )
        .await;
    let req = nats_next(&mut service).await;
    assert_eq!(req.payload, "ping");
    let reply = req.reply.clone().expect("a reply subject");
    assert!(reply.starts_with("amq.gen-"), "{reply}");
    let corr = req
        .headers
        .as_ref()
        .and_then(|h| h.get("Correlation-Id"))
        .map(|v| v.as_str().to_owned());
    assert_eq!(corr.as_deref(), Some("c-7"));
    n.publish(reply, "pong".into()).await.unwrap();
    n.flush().await.unwrap();
    let m = requester.message().await;
    assert_eq!(
        (m.header("subscription"), stomp_body(&m)),
        (Some("/temp-queue/r"), "pong")
    );
}

#[tokio::test]
async fn amqp_request_answered_by_a_stomp_responder_via_reply_to() {
    use lapin::options::*;
    use lapin::types::FieldTable;
    let (broker, _) = start().await;
    let u = uniq();
    let mut responder = stomp(&broker).await;
    responder
        .subscribe("svc", &format!("/queue/{u}-svc"), "client-individual")
        .await;
    let (_c, ch) = amqp_channel(&broker).await;
    let replies = ch
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
    let mut consumer = ch
        .basic_consume(
            replies.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        format!("{u}-svc").as_str().into(),
        BasicPublishOptions::default(),
        b"ask",
        lapin::BasicProperties::default()
            .with_reply_to(replies.name().clone())
            .with_correlation_id("c-amqp".into()),
    )
    .await
    .unwrap();
    let req = responder.message().await;
    assert_eq!(stomp_body(&req), "ask");
    // A server-named queue is shown as a reply queue.
    let reply_to = req.header("reply-to").expect("reply-to").to_owned();
    assert_eq!(
        reply_to,
        format!("/reply-queue/{}", replies.name().as_str())
    );
    responder
        .send_frame(
            &send_frame(&reply_to, b"told")
                .with("correlation-id", req.header("correlation-id").unwrap()),
        )
        .await;
    responder
        .send_with_receipt(
            StompFrame::new(StompCommand::Ack).with("id", req.header("ack").unwrap()),
        )
        .await;
    let d = amqp_next(&mut consumer).await;
    assert_eq!(d.data, b"told");
    assert_eq!(amqp_str(d.properties.correlation_id()), Some("c-amqp"));
}

/// Subscribes a STOMP client to `/queue/<u>-doomed`, deletes that queue over AMQP and
/// returns the client and the ERROR it got.
async fn stomp_subscription_cancelled_by_amqp(
    broker: &dwbroker::Broker,
) -> (StompRaw, StompFrame, String) {
    use lapin::options::*;
    let q = format!("{}-doomed", uniq());
    let mut s = stomp(broker).await;
    s.subscribe("doomed", &format!("/queue/{q}"), "auto").await;
    let (_c, ch) = amqp_channel(broker).await;
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let e = s.next().await;
    assert_eq!(e.command, StompCommand::Error, "{e:?}");
    (s, e, q)
}

#[tokio::test]
async fn amqp_deleting_a_stomp_subscriber_s_queue_cancels_the_subscription() {
    let (broker, _) = start().await;
    let (mut s, e, q) = stomp_subscription_cancelled_by_amqp(&broker).await;
    // An ERROR naming the subscription; the connection stays open (RabbitMQ).
    assert_eq!(e.header("message"), Some("Server cancelled subscription"));
    assert_eq!(e.header("subscription"), Some("doomed"));
    assert!(stomp_body(&e).contains(&q), "{e:?}");
    s.send_with_receipt(StompFrame::new(StompCommand::Begin).with("transaction", "t"))
        .await;
    // The subscription is gone: its id can be used again.
    s.subscribe("doomed", &format!("/queue/{q}"), "auto").await;
    s.send_to(&format!("/queue/{q}"), b"back").await;
    assert_eq!(stomp_body(&s.message().await), "back");
}

#[tokio::test]
async fn server_cancelled_subscription_error_has_the_usual_error_headers() {
    let (broker, _) = start().await;
    let (_s, e, _) = stomp_subscription_cancelled_by_amqp(&broker).await;
    assert_eq!(e.header("content-type"), Some("text/plain"), "{e:?}");
    assert_eq!(
        e.header("content-length"),
        Some(e.body.len().to_string().as_str()),
        "{e:?}"
    );
    assert_eq!(e.header("version"), Some("1.0,1.1,1.2"), "{e:?}");
}

#[tokio::test]
async fn mqtt_request_answered_by_a_stomp_responder() {
    let (broker, addr) = start().await;
    let u = uniq();
    let mut responder = stomp(&broker).await;
    responder
        .subscribe("svc", &format!("/topic/{u}.svc"), "auto")
        .await;
    let (mut requester, _) = v5(addr, |_| {}, &format!("{u}-req")).await;
    requester
        .subscribe(&format!("{u}/replies"), Q5::AtLeastOnce)
        .await;
    let props = p5::PublishProperties {
        response_topic: Some(format!("{u}/replies")),
        correlation_data: Some(Bytes::from_static(b"c-m")),
        ..Default::default()
    };
    requester
        .client
        .publish_with_properties(format!("{u}/svc"), Q5::AtLeastOnce, false, "?", props)
        .await
        .unwrap();
    let req = responder.message().await;
    // The response topic is a subject: shown as a topic destination.
    assert_eq!(
        req.header("reply-to"),
        Some(format!("/topic/{u}.replies").as_str())
    );
    assert_eq!(req.header("correlation-id"), Some("c-m"));
    responder
        .send_frame(
            &send_frame(req.header("reply-to").unwrap(), b"!")
                .with("correlation-id", req.header("correlation-id").unwrap()),
        )
        .await;
    let answer = requester.publish().await;
    assert_eq!(
        (&answer.topic[..], &answer.payload[..]),
        (format!("{u}/replies").as_bytes(), &b"!"[..])
    );
    assert_eq!(
        answer.properties.and_then(|p| p.correlation_data),
        Some(Bytes::from_static(b"c-m"))
    );
}

#[tokio::test]
async fn stomp_temp_queue_request_answered_by_mqtt_and_amqp_responders() {
    use lapin::options::BasicPublishOptions;
    let (broker, addr) = start().await;
    let u = uniq();
    let (mut mqtt, _) = v5(addr, |_| {}, &format!("{u}-mqtt")).await;
    mqtt.subscribe(&format!("{u}/svc"), Q5::AtMostOnce).await;
    let (_c, ch, mut amqp) = amqp_queue_on_amq_topic(&broker, &format!("{u}.svc")).await;
    let mut requester = stomp(&broker).await;
    requester
        .send_frame(
            &send_frame(&format!("/topic/{u}.svc"), b"who?").with("reply-to", "/temp-queue/r"),
        )
        .await;
    // MQTT answers on the response topic.
    let req = mqtt.publish().await;
    let topic = req
        .properties
        .and_then(|p| p.response_topic)
        .expect("a response topic");
    mqtt.client
        .publish(topic, Q5::AtMostOnce, false, "mqtt")
        .await
        .unwrap();
    // AMQP answers through the default exchange to the reply_to queue.
    let d = amqp_next(&mut amqp).await;
    let reply_to = d.properties.reply_to().clone().expect("reply_to");
    assert!(reply_to.as_str().starts_with("amq.gen-"), "{reply_to:?}");
    ch.basic_publish(
        "".into(),
        reply_to,
        BasicPublishOptions::default(),
        b"amqp",
        lapin::BasicProperties::default(),
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let m = requester.message().await;
        assert_eq!(m.header("subscription"), Some("/temp-queue/r"), "{m:?}");
        answers.push(stomp_body(&m).to_owned());
    }
    answers.sort();
    assert_eq!(answers, ["amqp", "mqtt"]);
}
