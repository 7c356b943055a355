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
