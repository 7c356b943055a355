//! Bad input gets the protocol's own answer and disturbs nobody else: raw bytes on a
//! TCP socket, the exact answer checked, then a fresh client must still be served.
//! Test names carry the spec statement they check.

mod common;

use bytes::Bytes;
use common::*;
use dwbroker_codecs::mqtt::{
    Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;

async fn v5_client(addr: std::net::SocketAddr) -> Raw {
    Raw::connected(addr, connect(V5, &format!("bad-{}", rand_suffix())))
        .await
        .0
}

async fn v311_client(addr: std::net::SocketAddr) -> Raw {
    Raw::connected(addr, connect(V311, &format!("bad-{}", rand_suffix())))
        .await
        .0
}

#[tokio::test]
async fn mqtt_3_1_0_1_first_packet_not_connect_is_closed_silently() {
    let (_b, addr) = start().await;
    let mut raw = Raw::open(addr, V5).await;
    raw.send(&[0xC0, 0x00]).await; // PINGREQ
    raw.expect_closed().await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_1_0_2_second_connect_is_a_protocol_error() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send_packet(Packet::Connect(connect(V5, "again"))).await;
    raw.expect_disconnect(0x82).await;
    let mut raw = v311_client(addr).await;
    raw.send_packet(Packet::Connect(connect(V311, "again")))
        .await;
    raw.expect_closed().await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_1_2_2_unsupported_protocol_level() {
    let (_b, addr) = start().await;
    // MQTT 3.1 ("MQIsdp", level 3): 3.1.1-form CONNACK, return code 0x01.
    let mut raw = Raw::open(addr, V311).await;
    raw.send(b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01a")
        .await;
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut raw.stream, &mut got)
        .await
        .unwrap();
    assert_eq!(got, [0x20, 0x02, 0x00, 0x01]);
    // Level 6: MQTT 5-form CONNACK 0x84.
    let mut raw = Raw::open(addr, V5).await;
    raw.send(b"\x10\x0e\x00\x04MQTT\x06\x02\x00\x3c\x00\x00\x01a")
        .await;
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut raw.stream, &mut got)
        .await
        .unwrap();
    assert_eq!(got, [0x20, 0x03, 0x00, 0x84, 0x00]);
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_3_1_4_publish_qos_3_is_malformed() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x36, 0x06, 0x00, 0x01, b'a', 0x00, 0x01, 0x00])
        .await;
    raw.expect_disconnect(0x81).await;
    let mut raw = v311_client(addr).await;
    raw.send(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]).await;
    raw.expect_closed().await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_3_2_2_wildcard_in_topic_name() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x30, 0x05, 0x00, 0x02, b'a', b'+', 0x00]).await;
    raw.expect_disconnect(0x90).await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x30, 0x05, 0x00, 0x02, b'a', b'#', 0x00]).await;
    raw.expect_disconnect(0x90).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_1_5_4_1_invalid_utf8_topic_is_malformed() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00]).await;
    raw.expect_disconnect(0x81).await;
    // [MQTT-1.5.4-2] U+0000 in a string.
    let mut raw = v5_client(addr).await;
    raw.send(&[0x30, 0x05, 0x00, 0x02, b'a', 0x00, 0x00]).await;
    raw.expect_disconnect(0x81).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_3_2_1_empty_topic_without_alias_is_a_protocol_error() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x30, 0x03, 0x00, 0x00, 0x00]).await;
    raw.expect_disconnect(0x82).await;
    let mut raw = v311_client(addr).await;
    raw.send(&[0x30, 0x02, 0x00, 0x00]).await;
    raw.expect_closed().await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_2_2_1_3_qos1_with_packet_id_0_is_a_protocol_error() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x00, 0x00])
        .await;
    raw.expect_disconnect(0x82).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_1_5_5_1_remaining_length_of_five_bytes_is_malformed() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
    raw.expect_disconnect(0x81).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn packet_above_maximum_size_gets_0x95_before_its_body_arrives() {
    let (_b, addr) = start_with(|c| c.limits.max_message_size = 1024).await;
    let mut raw = v5_client(addr).await;
    // Remaining length 2000 announced; the body never comes.
    raw.send(&[0x30, 0xD0, 0x0F]).await;
    raw.expect_disconnect(0x95).await;
    let mut raw = v311_client(addr).await;
    raw.send(&[0x30, 0xD0, 0x0F]).await;
    raw.expect_closed().await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_8_1_1_subscribe_with_wrong_header_flags_is_malformed() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x00])
        .await;
    raw.expect_disconnect(0x81).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_8_3_2_subscribe_without_filters_is_a_protocol_error() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send(&[0x82, 0x03, 0x00, 0x01, 0x00]).await;
    raw.expect_disconnect(0x82).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn server_packets_from_a_client_are_a_protocol_error() {
    let (_b, addr) = start().await;
    for bytes in [
        &[0x20u8, 0x03, 0x00, 0x00, 0x00][..],
        &[0xD0, 0x00],
        &[0x90, 0x04, 0x00, 0x01, 0x00, 0x00],
    ] {
        let mut raw = v5_client(addr).await;
        raw.send(bytes).await;
        raw.expect_disconnect(0x82).await;
    }
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_3_4_6_subscription_identifier_in_client_publish() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    // Properties: 0x0B subscription identifier 1.
    raw.send(&[0x30, 0x07, 0x00, 0x01, b'a', 0x02, 0x0B, 0x01, b'x'])
        .await;
    raw.expect_disconnect(0x82).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_3_2_8_and_9_topic_alias_zero_or_above_maximum_gets_0x94() {
    let (_b, addr) = start().await;
    for alias in [0u16, 65] {
        let mut raw = v5_client(addr).await;
        raw.send_packet(Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "a".into(),
            packet_id: 0,
            properties: Properties {
                topic_alias: Some(alias),
                ..Properties::default()
            },
            payload: Bytes::new(),
        }))
        .await;
        raw.expect_disconnect(0x94).await;
    }
    // An alias never set on this connection.
    let mut raw = v5_client(addr).await;
    raw.send_packet(Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: String::new(),
        packet_id: 0,
        properties: Properties {
            topic_alias: Some(3),
            ..Properties::default()
        },
        payload: Bytes::new(),
    }))
    .await;
    raw.expect_disconnect(0x82).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_14_2_2_session_expiry_from_zero_on_disconnect() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send_packet(Packet::Disconnect(Disconnect {
        code: ReasonCode::SUCCESS,
        properties: Properties {
            session_expiry_interval: Some(30),
            ..Properties::default()
        },
    }))
    .await;
    raw.expect_disconnect(0x82).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn payload_not_utf8_as_announced_gets_0x99() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    raw.send_packet(Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "a".into(),
        packet_id: 3,
        properties: Properties {
            payload_format_indicator: Some(1),
            ..Properties::default()
        },
        payload: Bytes::from_static(&[0xFF, 0xFE]),
    }))
    .await;
    match raw.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.code, ReasonCode::PAYLOAD_FORMAT_INVALID),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn authentication_method_without_configured_auth_gets_0x8c() {
    let (_b, addr) = start().await;
    let mut c = connect(V5, "auth");
    c.properties.authentication_method = Some("SCRAM-SHA-1".into());
    let mut raw = Raw::open(addr, V5).await;
    raw.send_packet(Packet::Connect(c)).await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ReasonCode::BAD_AUTHENTICATION_METHOD),
        other => panic!("{other:?}"),
    }
    raw.expect_closed().await;
}

#[tokio::test]
async fn garbage_and_truncated_input_never_disturbs_others() {
    let (_b, addr) = start().await;
    let (mut watcher, _) = v4(addr, |_| {}, "garbage-watch").await;
    watcher.subscribe("g", rumqttc::QoS::AtMostOnce).await;
    let mut seed = 0x2545F4914F6CDD1Du64;
    for round in 0..50 {
        let mut raw = if round % 2 == 0 {
            v5_client(addr).await
        } else {
            Raw::open(addr, V5).await
        };
        let len = 1 + (seed % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        raw.send(&bytes).await;
        drop(raw);
    }
    let (publisher, _) = v4(addr, |_| {}, "garbage-pub").await;
    publisher
        .client
        .publish("g", rumqttc::QoS::AtMostOnce, false, "alive")
        .await
        .unwrap();
    assert_eq!(&watcher.publish().await.payload[..], b"alive");
}

#[tokio::test]
async fn topics_and_filters_deeper_than_128_levels_are_refused() {
    let (_b, addr) = start().await;
    let mut raw = v5_client(addr).await;
    let deep = vec!["x"; 129].join("/");
    raw.send_packet(Packet::Subscribe(dwbroker_codecs::mqtt::Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![
            ("/".repeat(65_000), sub_opts(QoS::AtMostOnce)),
            (deep.clone(), sub_opts(QoS::AtMostOnce)),
            ("ok/+".into(), sub_opts(QoS::AtMostOnce)),
        ],
    }))
    .await;
    match raw.recv().await {
        Some(Packet::SubAck(a)) => {
            let codes: Vec<u8> = a.codes.iter().map(|c| c.0).collect();
            assert_eq!(codes, [0x8F, 0x8F, 0x00]);
        }
        other => panic!("{other:?}"),
    }
    raw.send_packet(Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: deep,
        packet_id: 0,
        properties: Properties::default(),
        payload: Bytes::new(),
    }))
    .await;
    raw.expect_disconnect(0x90).await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn connect_above_the_pre_connect_limit_is_closed() {
    let (_b, addr) = start().await;
    let mut raw = Raw::open(addr, V5).await;
    // A CONNECT announcing 100,000 bytes: above 64 KiB, refused on the header.
    raw.send(&[0x10, 0xA0, 0x8D, 0x06]).await;
    raw.expect_closed().await;
    assert_broker_serves(addr).await;
}

#[tokio::test]
async fn mqtt_3_8_3_4_no_local_on_shared_subscription_applies_no_filter() {
    let (_b, addr) = start().await;
    let mut conn = connect(V5, "nolocal-share");
    conn.clean_start = false;
    conn.properties.session_expiry_interval = Some(60);
    let (mut raw, _) = Raw::connected(addr, conn.clone()).await;
    let mut no_local = sub_opts(QoS::AtLeastOnce);
    no_local.no_local = true;
    raw.send_packet(Packet::Subscribe(dwbroker_codecs::mqtt::Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![
            ("nl/a".into(), sub_opts(QoS::AtLeastOnce)),
            ("$share/g/nl/b".into(), no_local),
        ],
    }))
    .await;
    raw.expect_disconnect(0x82).await;
    // The session exists, but neither filter was applied.
    let (mut raw, _) = Raw::connected(addr, conn).await;
    let (publisher, _) = v4(addr, |_| {}, "nolocal-pub").await;
    publisher
        .client
        .publish("nl/a", rumqttc::QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_millis(300), raw.recv()).await;
    assert!(got.is_err(), "{got:?}");
}

fn sub_opts(qos: QoS) -> dwbroker_codecs::mqtt::SubscriptionOptions {
    dwbroker_codecs::mqtt::SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: dwbroker_codecs::mqtt::RetainHandling::SendAtSubscribe,
    }
}

#[tokio::test]
async fn receive_maximum_exceeded_gets_0x93() {
    let (_b, addr) = start_with(|c| c.limits.max_inflight = 2).await;
    let mut raw = v5_client(addr).await;
    for packet_id in 1..=3u16 {
        raw.send_packet(Packet::Publish(Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: "rm".into(),
            packet_id,
            properties: Properties::default(),
            payload: Bytes::from_static(b"x"),
        }))
        .await;
    }
    for _ in 0..2 {
        assert!(matches!(raw.recv().await, Some(Packet::PubRec(_))));
    }
    raw.expect_disconnect(0x93).await;
    assert_broker_serves(addr).await;
}
