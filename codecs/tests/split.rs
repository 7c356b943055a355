//! Every vector is decoded whole, split in two at every offset, and fed one byte at a time; all
//! three must yield the same packets (or the same error), and a call that returns `Ok(None)`
//! must leave the buffer exactly as it was.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::mqtt::{
    Ack, Auth, Codec, ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, Publish,
    QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will,
};
use tokio_util::codec::Decoder;

/// Feeds `bytes` to a fresh codec in the chunks given by `cuts` (offsets into `bytes`), and
/// returns every packet decoded, then the error if decoding stopped on one.
fn feed(
    codec_factory: &dyn Fn() -> Codec,
    bytes: &[u8],
    cuts: &[usize],
) -> (Vec<Packet>, Option<String>) {
    let mut codec = codec_factory();
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut fed = 0;
    let ends = cuts.iter().copied().chain(std::iter::once(bytes.len()));
    for end in ends {
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        loop {
            let before = buf.clone();
            match codec.decode(&mut buf) {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => {
                    assert_eq!(buf, before, "an incomplete buffer was advanced");
                    break;
                }
                Err(e) => return (packets, Some(format!("{e:?}"))),
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    (packets, None)
}

/// Asserts `bytes` decodes to `expected` however it is split. `codec_factory` makes a fresh
/// codec for each run, so stateful codecs (the server learning its version) are covered.
fn assert_decodes_split(codec_factory: &dyn Fn() -> Codec, bytes: &[u8], expected: &[Packet]) {
    let (whole, err) = feed(codec_factory, bytes, &[]);
    assert_eq!(err, None, "decoding the whole buffer failed");
    assert_eq!(whole, expected, "whole buffer");
    for cut in 0..=bytes.len() {
        let (packets, err) = feed(codec_factory, bytes, &[cut]);
        assert_eq!(err, None, "split at {cut}");
        assert_eq!(packets, expected, "split at {cut}");
    }
    let every: Vec<usize> = (1..bytes.len()).collect();
    let (packets, err) = feed(codec_factory, bytes, &every);
    assert_eq!(err, None, "byte at a time");
    assert_eq!(packets, expected, "byte at a time");
}

/// Asserts `bytes` yields the packets of its valid prefix and then the same error however it is
/// split (an error may surface before the whole bad packet arrived, never a different one).
fn assert_fails_split(codec_factory: &dyn Fn() -> Codec, bytes: &[u8]) -> String {
    let (whole_packets, whole_err) = feed(codec_factory, bytes, &[]);
    let whole_err = whole_err.expect("the whole buffer must fail");
    for cut in 0..=bytes.len() {
        let (packets, err) = feed(codec_factory, bytes, &[cut]);
        assert_eq!(packets, whole_packets, "split at {cut}");
        assert_eq!(err.as_ref(), Some(&whole_err), "split at {cut}");
    }
    let every: Vec<usize> = (1..bytes.len()).collect();
    let (packets, err) = feed(codec_factory, bytes, &every);
    assert_eq!(packets, whole_packets);
    assert_eq!(err.as_ref(), Some(&whole_err));
    whole_err
}

fn encode_all(packets: &[Packet], version: ProtocolVersion) -> Vec<u8> {
    let mut dst = BytesMut::new();
    for p in packets {
        p.encode(version, &mut dst).expect("encodes");
    }
    dst.to_vec()
}

fn publish(qos: QoS, packet_id: u16, payload: Bytes) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: "sensors/t1".into(),
        packet_id,
        properties: Properties::default(),
        payload,
    }
}

fn connect(version: ProtocolVersion) -> Connect {
    let v5 = version == ProtocolVersion::V5;
    Connect {
        version,
        clean_start: true,
        keep_alive: 30,
        properties: if v5 {
            Properties {
                session_expiry_interval: Some(60),
                user_properties: vec![("app".into(), "split".into())],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
        client_id: "split-client".into(),
        will: Some(Will {
            topic: "last/will".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: if v5 {
                Properties {
                    will_delay_interval: Some(3),
                    ..Properties::default()
                }
            } else {
                Properties::default()
            },
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"secret")),
    }
}

/// A whole client session: CONNECT (which teaches the server codec its version), then the
/// packets a client sends.
fn client_session(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version == ProtocolVersion::V5;
    let mut big = publish(QoS::AtLeastOnce, 2, Bytes::from(vec![0xA5; 300]));
    if v5 {
        big.properties.content_type = Some("application/octet-stream".into());
    }
    let mut packets = vec![
        Packet::Connect(connect(version)),
        Packet::Publish(publish(QoS::AtMostOnce, 0, Bytes::from_static(b"21.5"))),
        Packet::Publish(big),
        Packet::Publish(publish(QoS::ExactlyOnce, 3, Bytes::new())),
        Packet::PubRel(Ack::new(3)),
        Packet::PubAck(Ack::new(9)),
        Packet::Subscribe(Subscribe {
            packet_id: 4,
            properties: Properties::default(),
            filters: vec![
                (
                    "sensors/+".into(),
                    SubscriptionOptions::new(QoS::ExactlyOnce),
                ),
                ("#".into(), SubscriptionOptions::new(QoS::AtMostOnce)),
            ],
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 5,
            properties: Properties::default(),
            filters: vec!["#".into()],
        }),
        Packet::PingReq,
    ];
    if v5 {
        packets.push(Packet::Subscribe(Subscribe {
            packet_id: 6,
            properties: Properties {
                subscription_identifiers: vec![300],
                ..Properties::default()
            },
            filters: vec![(
                "a/b".into(),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                },
            )],
        }));
        packets.push(Packet::PubRec(Ack {
            packet_id: 7,
            code: ReasonCode::QUOTA_EXCEEDED,
            properties: Properties::default(),
        }));
        packets.push(Packet::Auth(Auth {
            code: ReasonCode::RE_AUTHENTICATE,
            properties: Properties {
                authentication_method: Some("SCRAM-SHA-256".into()),
                ..Properties::default()
            },
        }));
        packets.push(Packet::Disconnect(Disconnect::new(
            ReasonCode::DISCONNECT_WITH_WILL,
        )));
    } else {
        packets.push(Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)));
    }
    packets
}

fn server_session(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version == ProtocolVersion::V5;
    let mut delivered = publish(QoS::AtLeastOnce, 11, Bytes::from_static(b"hi"));
    if v5 {
        delivered.properties.subscription_identifiers = vec![1, 268_435_455];
    }
    vec![
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: ReasonCode::SUCCESS,
            properties: if v5 {
                Properties {
                    receive_maximum: Some(100),
                    topic_alias_maximum: Some(10),
                    ..Properties::default()
                }
            } else {
                Properties::default()
            },
        }),
        Packet::Publish(delivered),
        Packet::PubComp(Ack::new(11)),
        Packet::SubAck(SubAck {
            packet_id: 4,
            properties: Properties::default(),
            codes: vec![ReasonCode::GRANTED_QOS_2, ReasonCode(0x80)],
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 5,
            properties: Properties::default(),
            codes: if v5 {
                vec![ReasonCode::NO_SUBSCRIPTION_EXISTED]
            } else {
                Vec::new()
            },
        }),
        Packet::PingResp,
    ]
}

#[test]
fn client_sessions_split_everywhere() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let packets = client_session(version);
        let bytes = encode_all(&packets, version);
        assert_decodes_split(&|| Codec::server(1 << 20), &bytes, &packets);
    }
}

#[test]
fn server_sessions_split_everywhere() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let packets = server_session(version);
        let bytes = encode_all(&packets, version);
        assert_decodes_split(&|| Codec::client(version, 1 << 20), &bytes, &packets);
    }
}

#[test]
fn three_byte_remaining_length_splits() {
    // 16,384 bytes and up need a three-byte Remaining Length.
    let packets = vec![Packet::Publish(publish(
        QoS::AtMostOnce,
        0,
        Bytes::from(vec![7; 16_400]),
    ))];
    let bytes = encode_all(&packets, ProtocolVersion::V311);
    // Remaining Length 12 + 16,400 = 16,412 = 0x9C 0x80 0x01.
    assert_eq!(&bytes[1..4], [0x9C, 0x80, 0x01]);
    let factory = || {
        let mut c = Codec::server(1 << 20);
        c.set_version(ProtocolVersion::V311);
        c
    };
    assert_decodes_split(&factory, &bytes, &packets);
}

#[test]
fn spec_vectors_split_everywhere() {
    // MQTT 3.1.1 CONNECT "MQTT" level 4, clean session, keep alive 60, client id "c1", then
    // PUBLISH QoS 0 "a/b" "hello" and DISCONNECT.
    let bytes = [
        0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, b'c',
        b'1', 0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o', 0xE0, 0x00,
    ];
    let expected = vec![
        Packet::Connect(Connect {
            version: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::default(),
            client_id: "c1".into(),
            will: None,
            username: None,
            password: None,
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "a/b".into(),
            packet_id: 0,
            properties: Properties::default(),
            payload: Bytes::from_static(b"hello"),
        }),
        Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)),
    ];
    assert_decodes_split(&|| Codec::server(1024), &bytes, &expected);
}

#[test]
fn errors_are_the_same_however_the_input_is_split() {
    let v5_server = || {
        let mut c = Codec::server(1024);
        c.set_version(ProtocolVersion::V5);
        c
    };
    // PINGREQ, then a PUBLISH with QoS 3 [MQTT-3.3.1-4].
    let e = assert_fails_split(&v5_server, &[0xC0, 0x00, 0x36, 0x03, 0x00, 0x01, b'a']);
    assert!(e.contains("3.3.1-4"), "{e}");
    // A non-minimal Remaining Length [MQTT-1.5.5-1].
    let e = assert_fails_split(&v5_server, &[0xC0, 0x00, 0x30, 0x80, 0x80, 0x00]);
    assert!(e.contains("MalformedRemainingLength"), "{e}");
    // A topic with a wildcard [MQTT-3.3.2-2].
    let e = assert_fails_split(
        &v5_server,
        &[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'#', 0x00],
    );
    assert!(e.contains("TopicNameInvalid"), "{e}");
    // Too large: rejected from the header alone.
    let e = assert_fails_split(&v5_server, &[0x30, 0xFF, 0x7F]);
    assert!(e.contains("PacketTooLarge"), "{e}");
    // First packet not CONNECT [MQTT-3.1.0-1].
    let e = assert_fails_split(
        &|| Codec::server(1024),
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
    );
    assert!(e.contains("ExpectedConnect"), "{e}");
}

#[test]
fn partial_packet_reserves_what_is_missing() {
    let mut codec = Codec::server(1 << 20);
    codec.set_version(ProtocolVersion::V311);
    let mut buf = BytesMut::with_capacity(4);
    // PUBLISH announcing 1,000 bytes.
    buf.extend_from_slice(&[0x30, 0xE8, 0x07, 0x00]);
    assert!(codec.decode(&mut buf).expect("no error").is_none());
    assert!(buf.capacity() >= 1_003, "capacity {}", buf.capacity());
    assert_eq!(&buf[..], [0x30, 0xE8, 0x07, 0x00]);
}
