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
    let uri = format!("amqp://guest:guest@{}/%2f", broker.amqp_addr().unwrap());
    let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
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

async fn amqp_next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    use futures_util::StreamExt;
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("an AMQP delivery in time")
        .unwrap()
        .unwrap()
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
    let uri = format!("amqp://guest:guest@{}/%2f", broker.amqp_addr().unwrap());
    let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
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
