//! Property tests: for every packet type and both versions, `decode(encode(p)) == p` and
//! `encoded_len` is exactly what `encode` wrote. Plus: arbitrary and mutated input never
//! panics and never consumes a partial packet.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::mqtt::{
    Ack, Auth, Codec, ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, Publish,
    QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will,
};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

// ===== strategies =====

/// Any string without U+0000 (control characters and non-BMP included).
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,6}"
}

/// A Topic Name: no wildcards, not empty.
fn topic_name() -> impl Strategy<Value = String> {
    "[^\u{0}+#]{1,8}"
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(ProtocolVersion::V311), Just(ProtocolVersion::V5)]
}

fn reason() -> impl Strategy<Value = ReasonCode> {
    any::<u8>().prop_map(ReasonCode)
}

/// Where a property list sits; `restrict` keeps only what the spec allows there. This restates
/// the table in `property.rs` independently, so a mistake in one shows up against the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

fn bool_byte() -> impl Strategy<Value = Option<u8>> {
    of(0u8..=1)
}

/// Every property, each randomly present with a valid value.
fn all_properties() -> impl Strategy<Value = Properties> {
    let a = (
        bool_byte(),
        of(any::<u32>()),
        of(text()),
        of(text()),
        of(binary()),
        vec(1u32..=268_435_455, 0..3),
        of(any::<u32>()),
        of(text()),
        of(any::<u16>()),
    );
    let b = (
        of(text()),
        of(binary()),
        bool_byte(),
        of(any::<u32>()),
        bool_byte(),
        of(text()),
        of(text()),
        of(text()),
        of(1u16..),
    );
    let c = (
        of(any::<u16>()),
        of(any::<u16>()),
        bool_byte(),
        bool_byte(),
        vec((text(), text()), 0..3),
        of(1u32..),
        bool_byte(),
        bool_byte(),
        bool_byte(),
    );
    (a, b, c).prop_map(|(a, b, c)| Properties {
        payload_format_indicator: a.0,
        message_expiry_interval: a.1,
        content_type: a.2,
        response_topic: a.3,
        correlation_data: a.4,
        subscription_identifiers: a.5,
        session_expiry_interval: a.6,
        assigned_client_identifier: a.7,
        server_keep_alive: a.8,
        authentication_method: b.0,
        authentication_data: b.1,
        request_problem_information: b.2,
        will_delay_interval: b.3,
        request_response_information: b.4,
        response_information: b.5,
        server_reference: b.6,
        reason_string: b.7,
        receive_maximum: b.8,
        topic_alias_maximum: c.0,
        topic_alias: c.1,
        maximum_qos: c.2,
        retain_available: c.3,
        user_properties: c.4,
        maximum_packet_size: c.5,
        wildcard_subscription_available: c.6,
        subscription_identifier_available: c.7,
        shared_subscription_available: c.8,
    })
}

/// Keeps only the properties MQTT 5 §2.2.2.2 allows in `place`.
fn restrict(p: Properties, place: Place) -> Properties {
    use Place::*;
    let mut out = Properties {
        user_properties: p.user_properties,
        ..Properties::default()
    };
    if matches!(place, Publish | Will) {
        out.payload_format_indicator = p.payload_format_indicator;
        out.message_expiry_interval = p.message_expiry_interval;
        out.content_type = p.content_type;
        out.response_topic = p.response_topic;
        out.correlation_data = p.correlation_data;
    }
    match place {
        Publish => out.subscription_identifiers = p.subscription_identifiers,
        Subscribe => {
            out.subscription_identifiers = p.subscription_identifiers.into_iter().take(1).collect()
        }
        _ => {}
    }
    if matches!(place, Connect | ConnAck | Disconnect) {
        out.session_expiry_interval = p.session_expiry_interval;
    }
    if matches!(place, Connect | ConnAck | Auth) {
        out.authentication_method = p.authentication_method;
        out.authentication_data = p.authentication_data;
    }
    if matches!(place, Connect | ConnAck) {
        out.receive_maximum = p.receive_maximum;
        out.topic_alias_maximum = p.topic_alias_maximum;
        out.maximum_packet_size = p.maximum_packet_size;
    }
    if place == Connect {
        out.request_problem_information = p.request_problem_information;
        out.request_response_information = p.request_response_information;
    }
    if place == Will {
        out.will_delay_interval = p.will_delay_interval;
    }
    if place == ConnAck {
        out.assigned_client_identifier = p.assigned_client_identifier;
        out.server_keep_alive = p.server_keep_alive;
        out.response_information = p.response_information;
        out.maximum_qos = p.maximum_qos;
        out.retain_available = p.retain_available;
        out.wildcard_subscription_available = p.wildcard_subscription_available;
        out.subscription_identifier_available = p.subscription_identifier_available;
        out.shared_subscription_available = p.shared_subscription_available;
    }
    if matches!(place, ConnAck | Disconnect) {
        out.server_reference = p.server_reference;
    }
    if !matches!(place, Connect | Will | Publish | Subscribe | Unsubscribe) {
        out.reason_string = p.reason_string;
    }
    if place == Publish {
        out.topic_alias = p.topic_alias;
    }
    out
}

fn props(place: Place, version: ProtocolVersion) -> BoxedStrategy<Properties> {
    match version {
        ProtocolVersion::V311 => Just(Properties::default()).boxed(),
        ProtocolVersion::V5 => all_properties()
            .prop_map(move |p| restrict(p, place))
            .boxed(),
    }
}

fn will(version: ProtocolVersion) -> impl Strategy<Value = Will> {
    (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        props(Place::Will, version),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect() -> impl Strategy<Value = Connect> {
    version().prop_flat_map(|version| {
        (
            any::<bool>(),
            any::<u16>(),
            props(Place::Connect, version),
            text(),
            of(will(version)),
            of(text()),
            of(binary()),
        )
            .prop_map(
                move |(
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                )| {
                    // 3.1.1 [MQTT-3.1.2-22]: no password without a user name.
                    let password = if version == ProtocolVersion::V311 && username.is_none() {
                        None
                    } else {
                        password
                    };
                    Connect {
                        version,
                        clean_start,
                        keep_alive,
                        properties,
                        client_id,
                        will,
                        username,
                        password,
                    }
                },
            )
    })
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = ConnAck> {
    let code = match version {
        // The v5 codes that 3.1.1 return codes map back to.
        ProtocolVersion::V311 => prop::sample::select(vec![0u8, 0x84, 0x85, 0x88, 0x86, 0x87])
            .prop_map(ReasonCode)
            .boxed(),
        ProtocolVersion::V5 => reason().boxed(),
    };
    (any::<bool>(), code, props(Place::ConnAck, version)).prop_map(
        |(session_present, code, properties)| ConnAck {
            session_present,
            code,
            properties,
        },
    )
}

/// `from_server`: a server may send Subscription Identifiers, a client may not [MQTT-3.3.4-6].
fn publish(version: ProtocolVersion, from_server: bool) -> impl Strategy<Value = Publish> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        "[^\u{0}+#]{0,8}",
        1u16..,
        props(Place::Publish, version),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(
            move |(qos, dup, retain, topic, id, mut properties, payload)| {
                if !from_server {
                    properties.subscription_identifiers.clear();
                }
                let at_most_once = qos == QoS::AtMostOnce;
                Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic,
                    packet_id: if at_most_once { 0 } else { id },
                    properties,
                    payload: Bytes::from(payload),
                }
            },
        )
}

fn ack(version: ProtocolVersion, place: Place) -> impl Strategy<Value = Ack> {
    let code = match version {
        ProtocolVersion::V311 => Just(ReasonCode::SUCCESS).boxed(),
        ProtocolVersion::V5 => reason().boxed(),
    };
    (any::<u16>(), code, props(place, version)).prop_map(|(packet_id, code, properties)| Ack {
        packet_id,
        code,
        properties,
    })
}

fn options(version: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    match version {
        ProtocolVersion::V311 => qos().prop_map(SubscriptionOptions::new).boxed(),
        ProtocolVersion::V5 => (
            qos(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(RetainHandling::SendAtSubscribe),
                Just(RetainHandling::SendIfNew),
                Just(RetainHandling::DoNotSend)
            ],
        )
            .prop_map(
                |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                },
            )
            .boxed(),
    }
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Subscribe> {
    (
        1u16..,
        props(Place::Subscribe, version),
        vec((text(), options(version)), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| Subscribe {
            packet_id,
            properties,
            filters,
        })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = SubAck> {
    let code = match version {
        ProtocolVersion::V311 => prop::sample::select(vec![0u8, 1, 2, 0x80])
            .prop_map(ReasonCode)
            .boxed(),
        ProtocolVersion::V5 => reason().boxed(),
    };
    (any::<u16>(), props(Place::SubAck, version), vec(code, 0..4)).prop_map(
        |(packet_id, properties, codes)| SubAck {
            packet_id,
            properties,
            codes,
        },
    )
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Unsubscribe> {
    (
        1u16..,
        props(Place::Unsubscribe, version),
        vec(text(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| Unsubscribe {
            packet_id,
            properties,
            filters,
        })
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = UnsubAck> {
    let codes = match version {
        ProtocolVersion::V311 => Just(Vec::new()).boxed(),
        ProtocolVersion::V5 => vec(reason(), 0..4).boxed(),
    };
    (any::<u16>(), props(Place::UnsubAck, version), codes).prop_map(
        |(packet_id, properties, codes)| UnsubAck {
            packet_id,
            properties,
            codes,
        },
    )
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Disconnect> {
    let code = match version {
        ProtocolVersion::V311 => Just(ReasonCode::SUCCESS).boxed(),
        ProtocolVersion::V5 => reason().boxed(),
    };
    (code, props(Place::Disconnect, version))
        .prop_map(|(code, properties)| Disconnect { code, properties })
}

fn auth() -> impl Strategy<Value = Auth> {
    (reason(), props(Place::Auth, ProtocolVersion::V5))
        .prop_map(|(code, properties)| Auth { code, properties })
}

/// Packets a client sends, with the version to encode them in.
fn client_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| {
        let mut options = vec![
            publish(v, false).prop_map(Packet::Publish).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubAck).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubRec).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubRel).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubComp).boxed(),
            subscribe(v).prop_map(Packet::Subscribe).boxed(),
            unsubscribe(v).prop_map(Packet::Unsubscribe).boxed(),
            Just(Packet::PingReq).boxed(),
            disconnect(v).prop_map(Packet::Disconnect).boxed(),
        ];
        if v == ProtocolVersion::V5 {
            options.push(auth().prop_map(Packet::Auth).boxed());
        }
        (Just(v), prop::strategy::Union::new(options))
    })
}

/// Packets a server sends, with the version to encode them in.
fn server_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| {
        let mut options = vec![
            connack(v).prop_map(Packet::ConnAck).boxed(),
            publish(v, true).prop_map(Packet::Publish).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubAck).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubRec).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubRel).boxed(),
            ack(v, Place::Ack).prop_map(Packet::PubComp).boxed(),
            suback(v).prop_map(Packet::SubAck).boxed(),
            unsuback(v).prop_map(Packet::UnsubAck).boxed(),
            Just(Packet::PingResp).boxed(),
            disconnect(v).prop_map(Packet::Disconnect).boxed(),
        ];
        if v == ProtocolVersion::V5 {
            options.push(auth().prop_map(Packet::Auth).boxed());
        }
        (Just(v), prop::strategy::Union::new(options))
    })
}

// ===== properties =====

fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut dst = BytesMut::new();
    packet
        .encode(version, &mut dst)
        .expect("a valid packet encodes");
    assert_eq!(dst.len(), packet.encoded_len(version), "encoded_len");
    dst
}

fn decode_one(mut codec: Codec, mut bytes: BytesMut) -> Packet {
    let packet = codec
        .decode(&mut bytes)
        .expect("decodes")
        .expect("whole packet");
    assert!(bytes.is_empty(), "{} bytes left", bytes.len());
    packet
}

fn server(version: ProtocolVersion) -> Codec {
    let mut codec = Codec::server(u32::MAX);
    codec.set_version(version);
    codec
}

proptest! {
    #[test]
    fn connect_roundtrips(c in connect()) {
        let p = Packet::Connect(c);
        // CONNECT ignores the version it is asked to encode in; a fresh server learns it.
        let bytes = encode(&p, ProtocolVersion::V5);
        let mut codec = Codec::server(u32::MAX);
        let mut buf = bytes.clone();
        let back = codec.decode(&mut buf).expect("decodes").expect("whole");
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&back, &p);
        let Packet::Connect(c) = &p else { unreachable!() };
        prop_assert_eq!(codec.version(), Some(c.version));
        prop_assert_eq!(encode(&p, ProtocolVersion::V311), bytes);
    }

    #[test]
    fn client_packets_roundtrip((v, p) in client_packet()) {
        let bytes = encode(&p, v);
        prop_assert_eq!(decode_one(server(v), bytes), p);
    }

    #[test]
    fn server_packets_roundtrip((v, p) in server_packet()) {
        let bytes = encode(&p, v);
        prop_assert_eq!(decode_one(Codec::client(v, u32::MAX), bytes), p);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..64), v in version()) {
        for mut codec in [Codec::server(1024), server(v), Codec::client(v, 1024)] {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }

    #[test]
    fn mutated_packets_never_panic_nor_consume_partial_input(
        (v, p) in client_packet(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&p, v).to_vec();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let cut = cut.index(bytes.len() + 1);
        let mut codec = server(v);
        let mut buf = BytesMut::from(&bytes[..cut]);
        loop {
            let before = buf.clone();
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    prop_assert_eq!(&buf, &before);
                    break;
                }
                Err(_) => break,
            }
        }
    }
}
