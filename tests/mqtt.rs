//! The MQTT broker driven by rumqttc (3.1.1 and 5.0 clients) and, where a client
//! library hides what must be checked (DUP flags, packet ids, keep alive), by a raw
//! client on our codec. Every broker runs in process on port 0.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use dwbroker::router::{Message, Subject};
use dwbroker_codecs::mqtt::{
    Ack, Packet, Properties, ProtocolVersion, Publish, QoS as WireQoS, ReasonCode, RetainHandling,
    Subscribe, SubscriptionOptions, Will,
};
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS;

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn v311_qos_0_1_2_delivered_at_min_of_publish_and_subscription() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v4(addr, |_| {}, "q-sub").await;
    sub.subscribe("q/one", QoS::AtLeastOnce).await;
    let (publisher, _) = v4(addr, |_| {}, "q-pub").await;
    for (qos, expect) in [
        (QoS::AtMostOnce, QoS::AtMostOnce),
        (QoS::AtLeastOnce, QoS::AtLeastOnce),
        (QoS::ExactlyOnce, QoS::AtLeastOnce),
    ] {
        publisher
            .client
            .publish("q/one", qos, false, vec![qos as u8; 3])
            .await
            .unwrap();
        let p = sub.publish().await;
        assert_eq!(p.topic, "q/one");
        assert_eq!(&p.payload[..], &[qos as u8; 3]);
        assert_eq!(p.qos, expect);
        assert!(!p.retain);
    }
}

#[tokio::test]
async fn qos2_is_delivered_exactly_once() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v4(addr, |_| {}, "x-sub").await;
    sub.subscribe("x/#", QoS::ExactlyOnce).await;
    let (publisher, _) = v4(addr, |_| {}, "x-pub").await;
    for i in 0..20u8 {
        publisher
            .client
            .publish("x/y", QoS::ExactlyOnce, false, vec![i])
            .await
            .unwrap();
    }
    for i in 0..20u8 {
        let p = sub.publish().await;
        assert_eq!(p.qos, QoS::ExactlyOnce);
        assert_eq!(&p.payload[..], &[i]);
    }
    sub.no_publish(SHORT).await;
}

#[tokio::test]
async fn qos2_resent_publish_before_pubrel_is_routed_once() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v4(addr, |_| {}, "dup2-sub").await;
    sub.subscribe("dup2", QoS::AtLeastOnce).await;
    let (mut raw, _) = Raw::connected(addr, connect(ProtocolVersion::V311, "dup2-pub")).await;
    let publish = Publish {
        dup: false,
        qos: WireQoS::ExactlyOnce,
        retain: false,
        topic: "dup2".into(),
        packet_id: 9,
        properties: Properties::default(),
        payload: Bytes::from_static(b"once"),
    };
    raw.send_packet(Packet::Publish(publish.clone())).await;
    assert!(matches!(raw.recv().await, Some(Packet::PubRec(a)) if a.packet_id == 9));
    raw.send_packet(Packet::Publish(Publish {
        dup: true,
        ..publish
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::PubRec(a)) if a.packet_id == 9));
    raw.send_packet(Packet::PubRel(ack(9))).await;
    assert!(matches!(raw.recv().await, Some(Packet::PubComp(a)) if a.packet_id == 9));
    assert_eq!(&sub.publish().await.payload[..], b"once");
    sub.no_publish(SHORT).await;
}

#[tokio::test]
async fn wildcards_and_dollar_topics() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v4(addr, |_| {}, "w-sub").await;
    sub.subscribe("w/+/c", QoS::AtMostOnce).await;
    sub.subscribe("a/#", QoS::AtMostOnce).await;
    sub.subscribe("#", QoS::AtMostOnce).await;
    let (publisher, _) = v4(addr, |_| {}, "w-pub").await;
    // "#" also matches, but each message arrives once.
    for topic in ["w/b/c", "a", "a/b/c", "other"] {
        publisher
            .client
            .publish(topic, QoS::AtMostOnce, false, topic)
            .await
            .unwrap();
        let p = sub.publish().await;
        assert_eq!(p.topic, topic);
    }
    // [MQTT-4.7.2-1] Filters starting with a wildcard do not match $-topics.
    publisher
        .client
        .publish("$SYS/x", QoS::AtMostOnce, false, "no")
        .await
        .unwrap();
    sub.no_publish(SHORT).await;
    let (mut dollar, _) = v4(addr, |_| {}, "w-dollar").await;
    dollar.subscribe("$SYS/#", QoS::AtMostOnce).await;
    publisher
        .client
        .publish("$SYS/x", QoS::AtMostOnce, false, "yes")
        .await
        .unwrap();
    assert_eq!(&dollar.publish().await.payload[..], b"yes");
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_highest_qos() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v4(addr, |_| {}, "o-sub").await;
    sub.subscribe("o/#", QoS::ExactlyOnce).await;
    sub.subscribe("o/+", QoS::AtLeastOnce).await;
    let (publisher, _) = v4(addr, |_| {}, "o-pub").await;
    publisher
        .client
        .publish("o/a", QoS::ExactlyOnce, false, "x")
        .await
        .unwrap();
    // [MQTT-3.3.5-1] one copy, at the highest granted QoS.
    assert_eq!(sub.publish().await.qos, QoS::ExactlyOnce);
    sub.no_publish(SHORT).await;
}

#[tokio::test]
async fn new_subscribe_to_same_filter_replaces_it() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v4(addr, |_| {}, "r-sub").await;
    sub.subscribe("r/a", QoS::AtLeastOnce).await;
    sub.subscribe("r/a", QoS::AtMostOnce).await;
    let (publisher, _) = v4(addr, |_| {}, "r-pub").await;
    publisher
        .client
        .publish("r/a", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(sub.publish().await.qos, QoS::AtMostOnce);
    sub.no_publish(SHORT).await;
}

#[tokio::test]
async fn invalid_filters_are_refused_one_by_one() {
    // rumqttc refuses to send invalid filters, so this speaks raw MQTT.
    let (_b, addr) = start().await;
    for (version, refused) in [(ProtocolVersion::V311, 0x80), (ProtocolVersion::V5, 0x8F)] {
        let (mut raw, _) =
            Raw::connected(addr, connect(version, &format!("filters-{version:?}"))).await;
        raw.send_packet(Packet::Subscribe(Subscribe {
            packet_id: 3,
            properties: Properties::default(),
            filters: vec![
                ("f/ok".into(), opts(WireQoS::AtLeastOnce)),
                ("f/#/bad".into(), opts(WireQoS::AtLeastOnce)),
                ("f/b+".into(), opts(WireQoS::AtMostOnce)),
                ("$share/g/f/+".into(), opts(WireQoS::ExactlyOnce)),
                ("".into(), opts(WireQoS::AtMostOnce)),
            ],
        }))
        .await;
        match raw.recv().await {
            Some(Packet::SubAck(a)) => {
                let codes: Vec<u8> = a.codes.iter().map(|c| c.0).collect();
                assert_eq!(codes, vec![1, refused, refused, 2, refused], "{version:?}");
            }
            other => panic!("{other:?}"),
        }
        // The valid filter works.
        let (publisher, _) = v4(addr, |_| {}, &format!("filters-pub-{version:?}")).await;
        publisher
            .client
            .publish("f/ok", QoS::AtLeastOnce, false, "x")
            .await
            .unwrap();
        assert!(matches!(raw.recv().await, Some(Packet::Publish(p)) if p.topic == "f/ok"));
    }
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v4(addr, |_| {}, "u-sub").await;
    sub.subscribe("u/a", QoS::AtMostOnce).await;
    sub.client.unsubscribe("u/a").await.unwrap();
    sub.next_incoming(|p| matches!(p, rumqttc::Packet::UnsubAck(_)).then_some(()))
        .await;
    let (publisher, _) = v4(addr, |_| {}, "u-pub").await;
    publisher
        .client
        .publish("u/a", QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    sub.no_publish(SHORT).await;
}

#[tokio::test]
async fn retained_messages_set_delivered_and_cleared() {
    let (_b, addr) = start().await;
    let (publisher, _) = v4(addr, |_| {}, "ret-pub").await;
    publisher
        .client
        .publish("ret/a", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    let (mut early, _) = v4(addr, |_| {}, "ret-early").await;
    // Wait until the publish has surely been routed.
    let (mut probe, _) = v4(addr, |_| {}, "ret-probe").await;
    probe.subscribe("ret/#", QoS::AtLeastOnce).await;
    let p = probe.publish().await;
    assert!(
        p.retain,
        "a retained message sent on subscribe has retain set"
    );
    assert_eq!(&p.payload[..], b"kept");

    early.subscribe("ret/+", QoS::AtMostOnce).await;
    let p = early.publish().await;
    assert_eq!(p.qos, QoS::AtMostOnce);
    assert!(p.retain);
    // A live subscriber receives new retained publishes without the retain flag.
    publisher
        .client
        .publish("ret/a", QoS::AtMostOnce, true, "new")
        .await
        .unwrap();
    let p = early.publish().await;
    assert!(!p.retain);
    assert_eq!(&p.payload[..], b"new");
    // An empty retained payload clears it.
    publisher
        .client
        .publish("ret/a", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    assert_eq!(&early.publish().await.payload[..], b"");
    let (mut late, _) = v4(addr, |_| {}, "ret-late").await;
    late.subscribe("ret/#", QoS::AtLeastOnce).await;
    late.no_publish(SHORT).await;
}

#[tokio::test]
async fn v5_retain_handling_and_retain_as_published() {
    let (_b, addr) = start().await;
    let (publisher, _) = v5(addr, |_| {}, "rh-pub").await;
    publisher
        .client
        .publish("rh/a", Q5::AtLeastOnce, true, "r")
        .await
        .unwrap();
    let (mut probe, _) = v5(addr, |_| {}, "rh-probe").await;
    probe.subscribe("rh/a", Q5::AtLeastOnce).await;
    assert!(probe.publish().await.retain);

    let (mut c, _) = v5(addr, |_| {}, "rh-c").await;
    let mut f = p5::Filter::new("rh/a", Q5::AtLeastOnce);
    f.retain_forward_rule = p5::RetainForwardRule::Never;
    f.preserve_retain = true;
    c.client.subscribe_many([f]).await.unwrap();
    c.next_incoming(|p| matches!(p, p5::Packet::SubAck(_)).then_some(()))
        .await;
    c.no_publish(SHORT).await;
    // retain-as-published keeps the flag on live delivery.
    publisher
        .client
        .publish("rh/a", Q5::AtLeastOnce, true, "again")
        .await
        .unwrap();
    let p = c.publish().await;
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"again");

    // Retain handling 1: only on a new subscription.
    let (mut d, _) = v5(addr, |_| {}, "rh-d").await;
    let mut f = p5::Filter::new("rh/a", Q5::AtLeastOnce);
    f.retain_forward_rule = p5::RetainForwardRule::OnNewSubscribe;
    d.client.subscribe_many([f.clone()]).await.unwrap();
    assert_eq!(&d.publish().await.payload[..], b"again");
    d.client.subscribe_many([f]).await.unwrap();
    d.no_publish(SHORT).await;
}

#[tokio::test]
async fn will_published_on_abrupt_disconnect_not_on_disconnect() {
    let (_b, addr) = start().await;
    let (mut watcher, _) = v4(addr, |_| {}, "will-watch").await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;

    let will = |topic: &str| {
        Some(Will {
            topic: topic.into(),
            payload: Bytes::from_static(b"gone"),
            qos: WireQoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        })
    };
    let mut c = connect(ProtocolVersion::V311, "will-abrupt");
    c.will = will("will/abrupt");
    let (raw, _) = Raw::connected(addr, c).await;
    drop(raw);
    let p = watcher.publish().await;
    assert_eq!(p.topic, "will/abrupt");
    assert_eq!(&p.payload[..], b"gone");

    let mut c = connect(ProtocolVersion::V311, "will-clean");
    c.will = will("will/clean");
    let (mut raw, _) = Raw::connected(addr, c).await;
    raw.send_packet(Packet::Disconnect(dwbroker_codecs::mqtt::Disconnect {
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }))
    .await;
    raw.expect_closed().await;
    watcher.no_publish(SHORT).await;

    // MQTT 5: DISCONNECT 0x04 asks for the will.
    let mut c = connect(ProtocolVersion::V5, "will-04");
    c.will = will("will/v5");
    let (mut raw, _) = Raw::connected(addr, c).await;
    raw.send_packet(Packet::Disconnect(dwbroker_codecs::mqtt::Disconnect {
        code: ReasonCode::DISCONNECT_WITH_WILL,
        properties: Properties::default(),
    }))
    .await;
    raw.expect_closed().await;
    assert_eq!(watcher.publish().await.topic, "will/v5");
}

/// A DISCONNECT that reached the broker before a takeover of the same client id is a
/// normal end even when the takeover is noticed first: no will (CI saw one, once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_then_takeover_publishes_no_will() {
    let (_b, addr) = start().await;
    let (mut watcher, _) = v4(addr, |_| {}, "tw-watch").await;
    watcher.subscribe("tw/#", QoS::AtLeastOnce).await;
    for (round, version) in [ProtocolVersion::V311, ProtocolVersion::V5]
        .into_iter()
        .cycle()
        .take(200)
        .enumerate()
    {
        let mut c = connect(version, "tw-leaving");
        c.will = Some(Will {
            topic: format!("tw/will/{round}"),
            payload: Bytes::from_static(b"gone"),
            qos: WireQoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        });
        let (mut raw, _) = Raw::connected(addr, c).await;
        raw.send_packet(Packet::Disconnect(dwbroker_codecs::mqtt::Disconnect {
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }))
        .await;
        // The socket stays open: the new connection races the broker's read of it.
        let (again, _) = Raw::connected(addr, connect(version, "tw-leaving")).await;
        drop((raw, again));
    }
    watcher.no_publish(SHORT).await;
}

#[tokio::test]
async fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let (_b, addr) = start().await;
    let (mut watcher, _) = v4(addr, |_| {}, "ka-watch").await;
    watcher.subscribe("ka/will", QoS::AtMostOnce).await;
    let mut c = connect(ProtocolVersion::V5, "ka-raw");
    c.keep_alive = 1;
    c.will = Some(Will {
        topic: "ka/will".into(),
        payload: Bytes::from_static(b"timeout"),
        qos: WireQoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
    });
    let (mut raw, _) = Raw::connected(addr, c).await;
    let started = std::time::Instant::now();
    raw.expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT.0)
        .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}"
    );
    assert_eq!(&watcher.publish().await.payload[..], b"timeout");
}

#[tokio::test]
async fn persistent_session_queues_qos1_and_qos2_while_offline() {
    let (_b, addr) = start().await;
    let opts = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let (mut c, ack) = v4(addr, opts, "persist-v4").await;
    assert!(!ack.session_present);
    c.subscribe("persist/#", QoS::ExactlyOnce).await;
    c.client.disconnect().await.unwrap();
    drop(c);

    let (publisher, _) = v4(addr, |_| {}, "persist-pub").await;
    publisher
        .client
        .publish("persist/1", QoS::AtLeastOnce, false, "one")
        .await
        .unwrap();
    publisher
        .client
        .publish("persist/2", QoS::ExactlyOnce, false, "two")
        .await
        .unwrap();
    publisher
        .client
        .publish("persist/0", QoS::AtMostOnce, false, "zero")
        .await
        .unwrap();
    // Let the publishes be routed before the subscriber comes back.
    let (mut probe, _) = v4(addr, |_| {}, "persist-probe").await;
    probe.subscribe("persist/0", QoS::AtMostOnce).await;
    publisher
        .client
        .publish("persist/0", QoS::AtMostOnce, false, "sync")
        .await
        .unwrap();
    probe.publish().await;

    let (mut c, ack) = v4(addr, opts, "persist-v4").await;
    assert!(ack.session_present);
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = c.publish().await;
        got.push((p.topic.clone(), p.qos));
    }
    assert_eq!(
        got,
        vec![
            ("persist/1".to_string(), QoS::AtLeastOnce),
            ("persist/2".to_string(), QoS::ExactlyOnce),
            ("persist/0".to_string(), QoS::AtMostOnce),
            ("persist/0".to_string(), QoS::AtMostOnce),
        ]
    );
    // A clean session starts without it.
    let (_c, ack) = v4(addr, |_| {}, "persist-v4").await;
    assert!(!ack.session_present);
}

#[tokio::test]
async fn offline_queue_is_bounded_and_keeps_the_oldest() {
    let (_b, addr) = start_with(|c| c.limits.max_queued_messages = 5).await;
    let opts = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let (mut c, _) = v4(addr, opts, "bound-v4").await;
    c.subscribe("bound", QoS::AtLeastOnce).await;
    c.client.disconnect().await.unwrap();
    drop(c);
    let (mut publisher, _) = v4(addr, |_| {}, "bound-pub").await;
    publisher.subscribe("bound", QoS::AtLeastOnce).await;
    for i in 0..10u8 {
        publisher
            .client
            .publish("bound", QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
        publisher.publish().await;
    }
    let (mut c, ack) = v4(addr, opts, "bound-v4").await;
    assert!(ack.session_present);
    for i in 0..5u8 {
        assert_eq!(&c.publish().await.payload[..], &[i]);
    }
    c.no_publish(SHORT).await;
}

#[tokio::test]
async fn unacknowledged_messages_are_resent_with_dup_on_resume() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "resend");
    conn.clean_start = false;
    conn.properties.session_expiry_interval = Some(60);
    let (mut raw, _) = Raw::connected(addr, conn.clone()).await;
    raw.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("resend/#".into(), opts(WireQoS::ExactlyOnce))],
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let (publisher, _) = v4(addr, |_| {}, "resend-pub").await;
    publisher
        .client
        .publish("resend/1", QoS::AtLeastOnce, false, "a")
        .await
        .unwrap();
    publisher
        .client
        .publish("resend/2", QoS::ExactlyOnce, false, "b")
        .await
        .unwrap();
    let (first, second) = match (raw.recv().await, raw.recv().await) {
        (Some(Packet::Publish(a)), Some(Packet::Publish(b))) => (a, b),
        other => panic!("{other:?}"),
    };
    assert!(!first.dup && !second.dup);
    // Acknowledge the QoS 2 message halfway (PUBREC), the QoS 1 not at all.
    raw.send_packet(Packet::PubRec(ack(second.packet_id))).await;
    assert!(matches!(raw.recv().await, Some(Packet::PubRel(a)) if a.packet_id == second.packet_id));
    drop(raw);

    let (mut raw, ack_packet) = Raw::connected(addr, conn).await;
    assert!(matches!(ack_packet, Packet::ConnAck(a) if a.session_present));
    // [MQTT-4.4.0-1] The unacknowledged PUBLISH (DUP, same packet id) and the
    // PUBREL are both resent.
    let mut resent = [raw.recv().await, raw.recv().await];
    resent.sort_by_key(|p| matches!(p, Some(Packet::PubRel(_))));
    match &resent[0] {
        Some(Packet::Publish(p)) => {
            assert!(p.dup);
            assert_eq!(p.packet_id, first.packet_id);
            assert_eq!(&p.payload[..], b"a");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&resent[1], Some(Packet::PubRel(a)) if a.packet_id == second.packet_id));
    raw.send_packet(Packet::PubAck(ack(first.packet_id))).await;
    raw.send_packet(Packet::PubComp(ack(second.packet_id)))
        .await;
}

#[tokio::test]
async fn v5_session_takeover_disconnects_the_old_connection_with_8e() {
    let (_b, addr) = start().await;
    let (mut old, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "takeover")).await;
    let (_new, _) = v5(addr, |_| {}, "takeover").await;
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER.0)
        .await;
}

#[tokio::test]
async fn takeover_keeps_a_persistent_session() {
    let (_b, addr) = start().await;
    let opts = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let (mut first, _) = v4(addr, opts, "take-keep").await;
    first.subscribe("take/keep", QoS::AtLeastOnce).await;
    let (mut second, ack) = v4(addr, opts, "take-keep").await;
    assert!(ack.session_present);
    let (publisher, _) = v4(addr, |_| {}, "take-pub").await;
    publisher
        .client
        .publish("take/keep", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(&second.publish().await.payload[..], b"x");
    drop(first);
}

#[tokio::test]
async fn client_identifiers() {
    let (_b, addr) = start().await;
    // MQTT 5: an empty client id gets an assigned one.
    let (_c, ack) = v5(addr, |_| {}, "").await;
    let props = ack.properties.expect("CONNACK properties");
    assert!(props
        .assigned_client_identifier
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(props.max_packet_size, Some(16 * 1024 * 1024));
    assert!(props.receive_max.is_some());
    // 3.1.1: empty id with clean session 0 is refused with return code 0x02.
    let mut c = connect(ProtocolVersion::V311, "");
    c.clean_start = false;
    let mut raw = Raw::open(addr, ProtocolVersion::V311).await;
    raw.send_packet(Packet::Connect(c)).await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
        other => panic!("{other:?}"),
    }
    raw.expect_closed().await;
    // ...and accepted with clean session 1.
    let mut raw = Raw::open(addr, ProtocolVersion::V311).await;
    raw.send_packet(Packet::Connect(connect(ProtocolVersion::V311, "")))
        .await;
    assert!(matches!(raw.recv().await, Some(Packet::ConnAck(a)) if a.code == ReasonCode::SUCCESS));
}

#[tokio::test]
async fn v5_properties_pass_through() {
    let (_b, addr) = start().await;
    let (mut sub, _) = v5(addr, |_| {}, "props-sub").await;
    sub.subscribe("props/a", Q5::AtLeastOnce).await;
    let (publisher, _) = v5(addr, |_| {}, "props-pub").await;
    let props = p5::PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("props/reply".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![
            ("k".into(), "1".into()),
            ("k".into(), "2".into()),
            ("a".into(), "b".into()),
        ],
        message_expiry_interval: Some(100),
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties("props/a", Q5::AtLeastOnce, false, "{}", props.clone())
        .await
        .unwrap();
    let p = sub.publish().await;
    let got = p.properties.expect("properties");
    assert_eq!(got.user_properties, props.user_properties);
    assert_eq!(got.content_type, props.content_type);
    assert_eq!(got.response_topic, props.response_topic);
    assert_eq!(got.correlation_data, props.correlation_data);
    assert_eq!(got.payload_format_indicator, Some(1));
    assert!(got
        .message_expiry_interval
        .is_some_and(|s| (99..=100).contains(&s)));
}

#[tokio::test]
async fn shared_subscription_gives_each_message_to_one_member() {
    let (_b, addr) = start().await;
    let (mut a, _) = v5(addr, |_| {}, "share-a").await;
    let (mut b, _) = v5(addr, |_| {}, "share-b").await;
    a.subscribe("$share/g/share/t", Q5::AtLeastOnce).await;
    b.subscribe("$share/g/share/t", Q5::AtLeastOnce).await;
    let (mut plain, _) = v5(addr, |_| {}, "share-plain").await;
    plain.subscribe("share/t", Q5::AtLeastOnce).await;
    let (publisher, _) = v5(addr, |_| {}, "share-pub").await;
    for i in 0..10u8 {
        publisher
            .client
            .publish("share/t", Q5::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(plain.publish().await.payload[0]);
    }
    assert_eq!(seen, (0..10).collect::<Vec<u8>>());
    let mut shared = Vec::new();
    for _ in 0..5 {
        shared.push(a.publish().await.payload[0]);
        shared.push(b.publish().await.payload[0]);
    }
    shared.sort_unstable();
    assert_eq!(shared, (0..10).collect::<Vec<u8>>());
    a.no_publish(SHORT).await;
    b.no_publish(SHORT).await;
}

#[tokio::test]
async fn in_process_bus_and_mqtt_see_each_other() {
    let (broker, addr) = start().await;
    let mut bus = broker.subscribe("bus.>").unwrap();
    let (mut c, _) = v4(addr, |_| {}, "bus-mqtt").await;
    c.subscribe("bus/from/+", QoS::AtLeastOnce).await;
    c.client
        .publish("bus/x.y/z", QoS::AtLeastOnce, false, "to-bus")
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, bus.recv())
        .await
        .unwrap()
        .unwrap();
    // '/' becomes '.', and a '.' inside a level becomes '/'.
    assert_eq!(got.subject.as_str(), "bus.x/y.z");
    assert_eq!(&got.payload[..], b"to-bus");
    broker.publish(Message {
        subject: Subject::new("bus.from.warehouse").unwrap(),
        payload: Bytes::from_static(b"from-bus"),
        ..Message::default()
    });
    let p = c.publish().await;
    assert_eq!(p.topic, "bus/from/warehouse");
    assert_eq!(&p.payload[..], b"from-bus");
}

#[tokio::test]
async fn v5_client_maximum_packet_size_is_respected() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "maxpkt");
    conn.properties.maximum_packet_size = Some(64);
    let (mut raw, _) = Raw::connected(addr, conn).await;
    raw.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("maxpkt".into(), opts(WireQoS::AtLeastOnce))],
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let (publisher, _) = v4(addr, |_| {}, "maxpkt-pub").await;
    publisher
        .client
        .publish("maxpkt", QoS::AtLeastOnce, false, vec![b'x'; 100])
        .await
        .unwrap();
    publisher
        .client
        .publish("maxpkt", QoS::AtLeastOnce, false, "small")
        .await
        .unwrap();
    match raw.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"small"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn v5_receive_maximum_limits_unacknowledged_messages() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "recvmax");
    conn.properties.receive_maximum = Some(2);
    let (mut raw, _) = Raw::connected(addr, conn).await;
    raw.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("recvmax".into(), opts(WireQoS::AtLeastOnce))],
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let (publisher, _) = v4(addr, |_| {}, "recvmax-pub").await;
    for i in 0..4u8 {
        publisher
            .client
            .publish("recvmax", QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        match raw.recv().await {
            Some(Packet::Publish(p)) => ids.push(p.packet_id),
            other => panic!("{other:?}"),
        }
    }
    // The third waits for an acknowledgement.
    let third = tokio::time::timeout(SHORT, raw.recv()).await;
    assert!(
        third.is_err(),
        "a third unacknowledged message was sent: {third:?}"
    );
    raw.send_packet(Packet::PubAck(ack(ids[0]))).await;
    assert!(matches!(raw.recv().await, Some(Packet::Publish(p)) if p.payload[0] == 2));
}

#[tokio::test]
async fn v5_session_expiry_is_honoured() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "expiring");
    conn.clean_start = false;
    conn.properties.session_expiry_interval = Some(1);
    let (raw, ack) = Raw::connected(addr, conn.clone()).await;
    assert!(matches!(ack, Packet::ConnAck(a) if !a.session_present));
    drop(raw);
    let (raw, ack) = Raw::connected(addr, conn.clone()).await;
    assert!(matches!(ack, Packet::ConnAck(a) if a.session_present));
    drop(raw);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let (_raw, ack) = Raw::connected(addr, conn).await;
    assert!(matches!(ack, Packet::ConnAck(a) if !a.session_present));
}

#[tokio::test]
async fn v5_will_delay_waits_and_a_quick_reconnect_cancels_it() {
    let (_b, addr) = start().await;
    let (mut watcher, _) = v4(addr, |_| {}, "wd-watch").await;
    watcher.subscribe("wd/#", QoS::AtLeastOnce).await;
    let delayed = |id: &str| {
        let mut c = connect(ProtocolVersion::V5, id);
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(30);
        c.will = Some(Will {
            topic: format!("wd/{id}"),
            payload: Bytes::from_static(b"late"),
            qos: WireQoS::AtLeastOnce,
            retain: false,
            properties: Properties {
                will_delay_interval: Some(1),
                ..Properties::default()
            },
        });
        c
    };
    let (raw, _) = Raw::connected(addr, delayed("wd-a")).await;
    drop(raw);
    watcher.no_publish(Duration::from_millis(500)).await;
    assert_eq!(watcher.publish().await.topic, "wd/wd-a");

    let (raw, _) = Raw::connected(addr, delayed("wd-b")).await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_back, _) = Raw::connected(addr, delayed("wd-b")).await;
    watcher.no_publish(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn max_connections_closes_the_extra_socket() {
    let (_b, addr) = start_with(|c| c.limits.max_connections = 2).await;
    let (_one, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "mc-1")).await;
    let (_two, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "mc-2")).await;
    let mut third = Raw::open(addr, ProtocolVersion::V5).await;
    third.expect_closed().await;
}

#[tokio::test]
async fn resume_resends_within_the_new_receive_maximum() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "resume-window");
    conn.clean_start = false;
    conn.properties.session_expiry_interval = Some(60);
    let (mut raw, _) = Raw::connected(addr, conn.clone()).await;
    raw.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("rw".into(), opts(WireQoS::AtLeastOnce))],
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let (publisher, _) = v4(addr, |_| {}, "resume-window-pub").await;
    for i in 0..4u8 {
        publisher
            .client
            .publish("rw", QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    for _ in 0..4 {
        assert!(matches!(raw.recv().await, Some(Packet::Publish(_))));
    }
    drop(raw);
    // Back with Receive Maximum 2: two resent, the others after acknowledgements.
    conn.properties.receive_maximum = Some(2);
    let (mut raw, _) = Raw::connected(addr, conn).await;
    let mut resent = Vec::new();
    for _ in 0..2 {
        match raw.recv().await {
            Some(Packet::Publish(p)) => {
                assert!(p.dup);
                resent.push(p);
            }
            other => panic!("{other:?}"),
        }
    }
    let third = tokio::time::timeout(SHORT, raw.recv()).await;
    assert!(third.is_err(), "beyond Receive Maximum: {third:?}");
    raw.send_packet(Packet::PubAck(ack(resent[0].packet_id)))
        .await;
    match raw.recv().await {
        Some(Packet::Publish(p)) => {
            assert!(p.dup);
            assert_eq!(p.payload[0], 2);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn subscription_and_session_quotas() {
    let (_b, addr) = start_with(|c| {
        c.limits.max_subscriptions_per_session = 2;
        c.limits.max_sessions = 2;
    })
    .await;
    let (mut raw, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "quota-1")).await;
    raw.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![
            ("q/a".into(), opts(WireQoS::AtMostOnce)),
            ("q/b".into(), opts(WireQoS::AtMostOnce)),
            ("q/c".into(), opts(WireQoS::AtMostOnce)),
            ("q/a".into(), opts(WireQoS::AtLeastOnce)),
        ],
    }))
    .await;
    match raw.recv().await {
        Some(Packet::SubAck(a)) => {
            assert_eq!(
                a.codes,
                [
                    ReasonCode(0),
                    ReasonCode(0),
                    ReasonCode::QUOTA_EXCEEDED,
                    ReasonCode(1)
                ]
            )
        }
        other => panic!("{other:?}"),
    }
    let (_two, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "quota-2")).await;
    let mut third = Raw::open(addr, ProtocolVersion::V5).await;
    third
        .send_packet(Packet::Connect(connect(ProtocolVersion::V5, "quota-3")))
        .await;
    match third.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("{other:?}"),
    }
    third.expect_closed().await;
    // A known client id still gets in (taking its session over).
    let (_again, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "quota-2")).await;
}

#[tokio::test]
async fn repeated_pubrec_is_answered_with_pubrel_again() {
    let (_b, addr) = start().await;
    let (mut raw, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "pubrec-twice")).await;
    raw.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("pr".into(), opts(WireQoS::ExactlyOnce))],
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let (publisher, _) = v4(addr, |_| {}, "pubrec-pub").await;
    publisher
        .client
        .publish("pr", QoS::ExactlyOnce, false, "x")
        .await
        .unwrap();
    let Some(Packet::Publish(p)) = raw.recv().await else {
        panic!()
    };
    for _ in 0..2 {
        raw.send_packet(Packet::PubRec(ack(p.packet_id))).await;
        match raw.recv().await {
            Some(Packet::PubRel(a)) => {
                assert_eq!((a.packet_id, a.code), (p.packet_id, ReasonCode::SUCCESS))
            }
            other => panic!("{other:?}"),
        }
    }
    raw.send_packet(Packet::PubComp(ack(p.packet_id))).await;
}

#[tokio::test]
async fn v5_topic_aliases_both_ways() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "alias-sub");
    conn.properties.topic_alias_maximum = Some(1);
    let (mut sub, connack) = Raw::connected(addr, conn).await;
    let Packet::ConnAck(connack) = connack else {
        panic!()
    };
    assert_eq!(connack.properties.topic_alias_maximum, Some(64));
    sub.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("alias/#".into(), opts(WireQoS::AtMostOnce))],
    }))
    .await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));

    // The publisher sets alias 7 on its first PUBLISH, then uses it alone.
    let (mut publisher, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "alias-pub")).await;
    let publish = |topic: &str, payload: &'static [u8]| {
        Packet::Publish(Publish {
            dup: false,
            qos: WireQoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: 0,
            properties: Properties {
                topic_alias: Some(7),
                ..Properties::default()
            },
            payload: Bytes::from_static(payload),
        })
    };
    publisher.send_packet(publish("alias/a", b"1")).await;
    publisher.send_packet(publish("", b"2")).await;
    let mut other = publish("alias/b", b"3");
    if let Packet::Publish(p) = &mut other {
        p.properties.topic_alias = None;
    }
    publisher.send_packet(other).await;

    // The subscriber allowed one alias: the first topic gets it, then is sent
    // by alias alone; the other topic goes in full.
    let mut got = Vec::new();
    for _ in 0..3 {
        match sub.recv().await {
            Some(Packet::Publish(p)) => got.push((p.topic, p.properties.topic_alias, p.payload)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            ("alias/a".to_string(), Some(1), Bytes::from_static(b"1")),
            (String::new(), Some(1), Bytes::from_static(b"2")),
            ("alias/b".to_string(), None, Bytes::from_static(b"3")),
        ]
    );
}

#[tokio::test]
async fn v5_request_response_information() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "rri");
    conn.properties.request_response_information = Some(1);
    let (_raw, connack) = Raw::connected(addr, conn).await;
    let Packet::ConnAck(connack) = connack else {
        panic!()
    };
    assert_eq!(
        connack.properties.response_information.as_deref(),
        Some("reply/rri/")
    );
    let (_raw, connack) = Raw::connected(addr, connect(ProtocolVersion::V5, "no-rri")).await;
    let Packet::ConnAck(connack) = connack else {
        panic!()
    };
    assert_eq!(connack.properties.response_information, None);
}

#[tokio::test]
async fn a_leaving_shared_member_hands_its_unacknowledged_messages_over() {
    let (_b, addr) = start().await;
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("$share/g/handover".into(), opts(WireQoS::AtLeastOnce))],
    });
    let (mut leaving, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "handover-a")).await;
    leaving.send_packet(subscribe.clone()).await;
    assert!(matches!(leaving.recv().await, Some(Packet::SubAck(_))));
    let (mut staying, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "handover-b")).await;
    staying.send_packet(subscribe).await;
    assert!(matches!(staying.recv().await, Some(Packet::SubAck(_))));
    let (publisher, _) = v4(addr, |_| {}, "handover-pub").await;
    for i in 0..4u8 {
        publisher
            .client
            .publish("handover", QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let (mut left_with, mut kept) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let Some(Packet::Publish(p)) = leaving.recv().await else {
            panic!()
        };
        left_with.push(p.payload[0]);
        let Some(Packet::Publish(p)) = staying.recv().await else {
            panic!()
        };
        staying.send_packet(Packet::PubAck(ack(p.packet_id))).await;
        kept.push(p.payload[0]);
    }
    // The leaving member acknowledged nothing; its session ends with it, and the
    // other member gets what it had.
    drop(leaving);
    let mut handed = Vec::new();
    for _ in 0..2 {
        let Some(Packet::Publish(p)) = staying.recv().await else {
            panic!()
        };
        handed.push(p.payload[0]);
    }
    left_with.sort_unstable();
    handed.sort_unstable();
    assert_eq!(handed, left_with);
    let mut all = [left_with, kept].concat();
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3]);
}

#[tokio::test]
async fn v5_message_expiry_while_queued_and_retained() {
    let (_b, addr) = start().await;
    let persistent = |o: &mut rumqttc::v5::MqttOptions| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(60));
    };
    let (mut c, _) = v5(addr, persistent, "expiry-sub").await;
    c.subscribe("expiry/#", Q5::AtLeastOnce).await;
    c.client.disconnect().await.unwrap();
    drop(c);
    let (publisher, _) = v5(addr, |_| {}, "expiry-pub").await;
    let expiring = |secs| p5::PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties("expiry/short", Q5::AtLeastOnce, false, "short", expiring(1))
        .await
        .unwrap();
    publisher
        .client
        .publish_with_properties("expiry/long", Q5::AtLeastOnce, false, "long", expiring(60))
        .await
        .unwrap();
    publisher
        .client
        .publish_with_properties(
            "expiry/retained",
            Q5::AtLeastOnce,
            true,
            "kept",
            expiring(1),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Queued while offline: the expired one is not delivered, the other carries
    // its remaining lifetime.
    let (mut c, _) = v5(addr, persistent, "expiry-sub").await;
    let p = c.publish().await;
    assert_eq!(&p.payload[..], b"long");
    let left = p
        .properties
        .and_then(|p| p.message_expiry_interval)
        .unwrap();
    assert!((57..=59).contains(&left), "{left}");
    c.no_publish(SHORT).await;
    // An expired retained message is not sent either.
    let (mut late, _) = v5(addr, |_| {}, "expiry-late").await;
    late.subscribe("expiry/retained", Q5::AtLeastOnce).await;
    late.no_publish(SHORT).await;
}

#[tokio::test]
async fn v5_subscription_identifiers_and_no_local() {
    let (_b, addr) = start().await;
    let (mut c, _) = v5(addr, |_| {}, "subid").await;
    for (filter, id) in [("subid/+", 2), ("subid/#", 3)] {
        let props = p5::SubscribeProperties {
            id: Some(id),
            user_properties: Vec::new(),
        };
        c.client
            .subscribe_with_properties(filter, Q5::AtMostOnce, props)
            .await
            .unwrap();
        c.next_incoming(|p| matches!(p, p5::Packet::SubAck(_)).then_some(()))
            .await;
    }
    let (mut own, _) = v5(addr, |_| {}, "nolocal").await;
    let mut f = p5::Filter::new("subid/x", Q5::AtMostOnce);
    f.nolocal = true;
    own.client.subscribe_many([f]).await.unwrap();
    own.next_incoming(|p| matches!(p, p5::Packet::SubAck(_)).then_some(()))
        .await;
    // Its own publish does not come back to the no-local subscriber.
    own.client
        .publish("subid/x", Q5::AtMostOnce, false, "mine")
        .await
        .unwrap();
    let p = c.publish().await;
    assert_eq!(&p.payload[..], b"mine");
    // One PUBLISH carries both subscription identifiers.
    let mut ids = p.properties.unwrap().subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, [2, 3]);
    own.no_publish(SHORT).await;
    c.client
        .publish("subid/x", Q5::AtMostOnce, false, "theirs")
        .await
        .unwrap();
    assert_eq!(&own.publish().await.payload[..], b"theirs");
}

#[tokio::test]
async fn v5_server_keep_alive_is_imposed_when_configured() {
    let (_b, addr) = start_with(|c| c.limits.max_keep_alive = 10).await;
    for asked in [60, 0] {
        let mut conn = connect(ProtocolVersion::V5, &format!("ska-{asked}"));
        conn.keep_alive = asked;
        let (_raw, connack) = Raw::connected(addr, conn).await;
        let Packet::ConnAck(connack) = connack else {
            panic!()
        };
        assert_eq!(
            connack.properties.server_keep_alive,
            Some(10),
            "asked {asked}"
        );
    }
    let mut conn = connect(ProtocolVersion::V5, "ska-5");
    conn.keep_alive = 5;
    let (_raw, connack) = Raw::connected(addr, conn).await;
    let Packet::ConnAck(connack) = connack else {
        panic!()
    };
    assert_eq!(connack.properties.server_keep_alive, None);
}

#[tokio::test]
async fn v5_session_expiry_changed_on_disconnect() {
    let (_b, addr) = start().await;
    let mut conn = connect(ProtocolVersion::V5, "sei-change");
    conn.clean_start = false;
    conn.properties.session_expiry_interval = Some(60);
    let disconnect = |expiry| {
        Packet::Disconnect(dwbroker_codecs::mqtt::Disconnect {
            code: ReasonCode::SUCCESS,
            properties: Properties {
                session_expiry_interval: Some(expiry),
                ..Properties::default()
            },
        })
    };
    // 60 -> 30 on DISCONNECT: still kept.
    let (mut raw, _) = Raw::connected(addr, conn.clone()).await;
    raw.send_packet(disconnect(30)).await;
    raw.expect_closed().await;
    let (mut raw, ack) = Raw::connected(addr, conn.clone()).await;
    assert!(matches!(ack, Packet::ConnAck(a) if a.session_present));
    // -> 0 on DISCONNECT: the session ends with the connection.
    raw.send_packet(disconnect(0)).await;
    raw.expect_closed().await;
    let (_raw, ack) = Raw::connected(addr, conn).await;
    assert!(matches!(ack, Packet::ConnAck(a) if !a.session_present));
}

#[tokio::test]
async fn shared_members_keep_their_own_qos_and_get_no_retained_messages() {
    let (_b, addr) = start().await;
    let (publisher, _) = v5(addr, |_| {}, "shq-pub").await;
    publisher
        .client
        .publish("shq/t", Q5::ExactlyOnce, true, "retained")
        .await
        .unwrap();
    let (mut probe, _) = v5(addr, |_| {}, "shq-probe").await;
    probe.subscribe("shq/t", Q5::AtMostOnce).await;
    assert!(probe.publish().await.retain);
    // MQTT 5 §4.8.2: retained messages are not sent for a shared subscription.
    let (mut low, _) = v5(addr, |_| {}, "shq-low").await;
    let (mut high, _) = v5(addr, |_| {}, "shq-high").await;
    low.subscribe("$share/q/shq/t", Q5::AtMostOnce).await;
    high.subscribe("$share/q/shq/t", Q5::ExactlyOnce).await;
    low.no_publish(SHORT).await;
    high.no_publish(SHORT).await;
    for _ in 0..2 {
        publisher
            .client
            .publish("shq/t", Q5::ExactlyOnce, false, "m")
            .await
            .unwrap();
    }
    assert_eq!(low.publish().await.qos, Q5::AtMostOnce);
    assert_eq!(high.publish().await.qos, Q5::ExactlyOnce);
}

#[tokio::test]
async fn graceful_shutdown_tells_v5_clients_8b() {
    let (broker, addr) = start().await;
    let (mut raw, _) = Raw::connected(addr, connect(ProtocolVersion::V5, "shutdown")).await;
    broker.shutdown().await;
    raw.expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN.0)
        .await;
}

fn ack(packet_id: u16) -> Ack {
    Ack {
        packet_id,
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }
}

fn opts(qos: WireQoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: RetainHandling::SendAtSubscribe,
    }
}
