//! Hand-written AMQP 0-9-1 byte vectors (decoded and re-encoded byte for byte), and malformed
//! input (each the right error and reply code, never a panic).
//!
//! `cargo test -p dwbroker-codecs --test amqp_vectors -- --ignored write_fuzz_seeds` rewrites
//! the fuzz seeds in `fuzz/seeds/decode_amqp/` from these vectors.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::amqp::*;
use tokio_util::codec::Decoder;

/// Concatenates byte strings.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `len32 ++ bytes`: a table, array or long string.
fn len32(body: &[u8]) -> Vec<u8> {
    cat(&[&(body.len() as u32).to_be_bytes(), body])
}

/// A frame around `payload`.
fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    cat(&[
        &[kind],
        &channel.to_be_bytes(),
        &(payload.len() as u32).to_be_bytes(),
        payload,
        &[0xCE],
    ])
}

fn decode_one(bytes: &[u8]) -> Result<Option<Frame>, AmqpError> {
    let mut buf = BytesMut::from(bytes);
    let out = AmqpCodec::new(131_072).decode(&mut buf);
    if let Ok(Some(_)) = out {
        assert!(buf.is_empty(), "a whole frame left bytes behind");
    }
    out
}

fn decode_ok(bytes: &[u8]) -> Frame {
    decode_one(bytes).expect("decodes").expect("whole frame")
}

fn encoded(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    f.encode(&mut out);
    out.to_vec()
}

fn s(v: &str) -> FieldValue {
    FieldValue::LongString(Bytes::copy_from_slice(v.as_bytes()))
}

fn connection_start_bytes() -> Vec<u8> {
    // RabbitMQ 3.10's server-properties, abridged: a nested capabilities table then strings.
    let caps = cat(&[
        b"\x12publisher_confirmst\x01",
        b"\x1aexchange_exchange_bindingst\x01",
        b"\x0abasic.nackt\x01",
        b"\x16consumer_cancel_notifyt\x01",
    ]);
    let props = cat(&[
        b"\x0ccapabilitiesF",
        &len32(&caps),
        b"\x07productS",
        &len32(b"RabbitMQ"),
        b"\x07versionS",
        &len32(b"3.10.8"),
        b"\x08platformS",
        &len32(b"Erlang/OTP 25.2.3"),
    ]);
    let payload = cat(&[
        b"\x00\x0a\x00\x0a",
        b"\x00\x09",
        &len32(&props),
        &len32(b"AMQPLAIN PLAIN"),
        &len32(b"en_US"),
    ]);
    frame(1, 0, &payload)
}

fn connection_start_value() -> Frame {
    let mut caps = FieldTable::default();
    for k in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
    ] {
        caps.insert(k, FieldValue::Bool(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities", FieldValue::Table(caps));
    props.insert("product", s("RabbitMQ"));
    props.insert("version", s("3.10.8"));
    props.insert("platform", s("Erlang/OTP 25.2.3"));
    Frame::Method {
        channel: 0,
        method: Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: props,
            mechanisms: Bytes::from_static(b"AMQPLAIN PLAIN"),
            locales: Bytes::from_static(b"en_US"),
        }),
    }
}

fn publish_bytes() -> Vec<u8> {
    frame(
        1,
        1,
        b"\x00\x3c\x00\x28\x00\x00\x0aamq.direct\x07orders.\x01",
    )
}

fn publish_value() -> Frame {
    Frame::Method {
        channel: 1,
        method: Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: "amq.direct".into(),
            routing_key: "orders.".into(),
            mandatory: true,
            immediate: false,
        }),
    }
}

fn header_bytes() -> Vec<u8> {
    // content-type, headers, delivery-mode, correlation-id, timestamp: flags 0xB440.
    let headers = cat(&[b"\x05retryI\x00\x00\x00\x03"]);
    let props = cat(&[
        b"\xB4\x40",
        b"\x10application/json",
        &len32(&headers),
        b"\x02",
        b"\x04abc1",
        b"\x00\x00\x00\x00\x65\x00\x00\x00",
    ]);
    frame(
        2,
        1,
        &cat(&[b"\x00\x3c\x00\x00", &5u64.to_be_bytes(), &props]),
    )
}

fn header_value() -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("retry", FieldValue::I32(3));
    BasicProperties {
        content_type: Some("application/json".into()),
        headers: Some(headers),
        delivery_mode: Some(2),
        correlation_id: Some("abc1".into()),
        timestamp: Some(0x6500_0000),
        ..BasicProperties::default()
    }
}

/// A table with every type tag RabbitMQ accepts (`L` is tested separately: it decodes to `l`).
fn every_tag_table_bytes() -> Vec<u8> {
    let inner = cat(&[b"\x01kb\xff"]);
    let array = cat(&[b"s\xff\xfe", b"S", &len32(b"x"), b"V"]);
    cat(&[
        b"\x01tt\x01",
        b"\x01bb\xfe",
        b"\x01BB\xfe",
        b"\x01ss\xff\xfe",
        b"\x01uu\xff\xfe",
        b"\x01II\xff\xff\xff\xfe",
        b"\x01ii\xff\xff\xff\xfe",
        b"\x01ll\xff\xff\xff\xff\xff\xff\xff\xfe",
        b"\x01ff\x3f\xc0\x00\x00",
        b"\x01dd\x3f\xf8\x00\x00\x00\x00\x00\x00",
        b"\x01DD\x02\xff\xff\xff\xfe",
        b"\x01SS",
        &len32(b"hi"),
        b"\x01xx",
        &len32(b"\x00\xff"),
        b"\x01AA",
        &len32(&array),
        b"\x01TT\x00\x00\x00\x00\x00\x00\x00\x2a",
        b"\x01FF",
        &len32(&inner),
        b"\x01VV",
    ])
}

fn every_tag_table_value() -> FieldTable {
    let mut inner = FieldTable::default();
    inner.insert("k", FieldValue::I8(-1));
    let entries = vec![
        ("t", FieldValue::Bool(true)),
        ("b", FieldValue::I8(-2)),
        ("B", FieldValue::U8(254)),
        ("s", FieldValue::I16(-2)),
        ("u", FieldValue::U16(65534)),
        ("I", FieldValue::I32(-2)),
        ("i", FieldValue::U32(0xFFFF_FFFE)),
        ("l", FieldValue::I64(-2)),
        ("f", FieldValue::F32(1.5)),
        ("d", FieldValue::F64(1.5)),
        (
            "D",
            FieldValue::Decimal {
                scale: 2,
                value: -2,
            },
        ),
        ("S", s("hi")),
        ("x", FieldValue::Bytes(Bytes::from_static(b"\x00\xff"))),
        (
            "A",
            FieldValue::Array(vec![FieldValue::I16(-2), s("x"), FieldValue::Void]),
        ),
        ("T", FieldValue::Timestamp(42)),
        ("F", FieldValue::Table(inner)),
        ("V", FieldValue::Void),
    ];
    FieldTable(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// queue.declare carrying the every-tag table as `arguments`.
fn declare_bytes() -> Vec<u8> {
    frame(
        1,
        2,
        &cat(&[
            b"\x00\x32\x00\x0a\x00\x00\x05tasks\x02",
            &len32(&every_tag_table_bytes()),
        ]),
    )
}

fn declare_value() -> Frame {
    Frame::Method {
        channel: 2,
        method: Method::QueueDeclare(QueueDeclare {
            queue: "tasks".into(),
            durable: true,
            arguments: every_tag_table_value(),
            ..QueueDeclare::default()
        }),
    }
}

/// The vectors that round-trip byte for byte, with their names (also the fuzz seeds).
fn vectors() -> Vec<(&'static str, Vec<u8>, Frame)> {
    vec![
        (
            "heartbeat",
            b"\x08\x00\x00\x00\x00\x00\x00\xCE".to_vec(),
            Frame::Heartbeat { channel: 0 },
        ),
        (
            "connection_start",
            connection_start_bytes(),
            connection_start_value(),
        ),
        ("basic_publish", publish_bytes(), publish_value()),
        (
            "content_header",
            header_bytes(),
            Frame::Header {
                channel: 1,
                header: ContentHeader {
                    class_id: 60,
                    body_size: 5,
                    properties: header_value(),
                    raw_properties: Bytes::copy_from_slice(
                        &header_bytes()[19..header_bytes().len() - 1],
                    ),
                },
            },
        ),
        (
            "body",
            frame(3, 1, b"hello"),
            Frame::Body {
                channel: 1,
                payload: Bytes::from_static(b"hello"),
            },
        ),
        ("queue_declare_every_tag", declare_bytes(), declare_value()),
    ]
}

#[test]
fn vectors_decode_and_reencode_byte_for_byte() {
    for (name, bytes, value) in vectors() {
        let got = decode_ok(&bytes);
        assert_eq!(got, value, "{name}");
        assert_eq!(encoded(&got), bytes, "{name} re-encodes differently");
    }
}

#[test]
fn connection_start_accessors() {
    let Frame::Method { method, .. } = decode_ok(&connection_start_bytes()) else {
        panic!("not a method")
    };
    assert_eq!(method.name(), "connection.start");
    assert_eq!((method.class_id(), method.method_id()), (10, 10));
    assert!(!method.has_content());
    let Method::ConnectionStart(start) = method else {
        panic!()
    };
    let Some(FieldValue::Table(caps)) = start.server_properties.get("capabilities") else {
        panic!("no capabilities")
    };
    assert_eq!(
        caps.get("basic.nack").and_then(FieldValue::as_bool),
        Some(true)
    );
    assert_eq!(
        start
            .server_properties
            .get("product")
            .and_then(FieldValue::as_str),
        Some("RabbitMQ")
    );
}

#[test]
fn raw_properties_are_resent_verbatim() {
    let bytes = header_bytes();
    let Frame::Header { channel, header } = decode_ok(&bytes) else {
        panic!()
    };
    let mut out = BytesMut::new();
    encode_content_header_raw(
        channel,
        header.class_id,
        header.body_size,
        &header.raw_properties,
        &mut out,
    );
    assert_eq!(&out[..], &bytes[..]);
    let mut out = BytesMut::new();
    encode_content_header(channel, 60, 5, &header.properties, &mut out);
    assert_eq!(&out[..], &bytes[..]);
    assert_eq!(
        BasicProperties::decode(&header.raw_properties).unwrap(),
        header_value()
    );
}

#[test]
fn capital_l_decodes_as_signed_64() {
    let table = cat(&[b"\x01LL\xff\xff\xff\xff\xff\xff\xff\xff"]);
    let args = cat(&[b"\x00\x00\x01q\x00", &len32(&table)]);
    let m = Method::decode(50, 10, &args).unwrap();
    let Method::QueueDeclare(d) = m else { panic!() };
    assert_eq!(d.arguments.get("L"), Some(&FieldValue::I64(-1)));
}

#[test]
fn methods_from_trailing_bytes_and_protocol_header() {
    assert!(check_protocol_header(&PROTOCOL_HEADER));
    assert!(!check_protocol_header(b"AMQP\x01\x01\x00\x09"));
    assert_eq!(FRAME_END, 0xCE);
    assert_eq!(FRAME_MIN_SIZE, 4096);
}

fn err_of(bytes: &[u8]) -> AmqpError {
    match decode_one(bytes) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn malformed_input() {
    // Unknown frame type: detected on the first byte.
    let e = err_of(b"\x04");
    assert!(matches!(e, AmqpError::UnknownFrameType(4)));
    assert_eq!(e.reply_code(), ReplyCode::FrameError);
    // Bad frame end.
    let mut bad = frame(3, 1, b"abc");
    *bad.last_mut().unwrap() = 0xCD;
    let e = err_of(&bad);
    assert!(matches!(e, AmqpError::BadFrameEnd(0xCD)));
    assert_eq!(e.reply_code().code(), 501);
    // Too large: only the 7-byte header of a 16 MiB frame is fed.
    let mut buf = BytesMut::from(&b"\x03\x00\x01\x01\x00\x00\x00"[..]);
    let e = AmqpCodec::new(FRAME_MIN_SIZE).decode(&mut buf).unwrap_err();
    assert!(matches!(
        e,
        AmqpError::FrameTooLarge {
            size: 0x0100_0000,
            max: 4096
        }
    ));
    assert_eq!(e.reply_code(), ReplyCode::FrameError);
    assert!(e.reply_code().is_hard());
    // Truncated method args: basic.publish without its bits octet.
    let e = err_of(&frame(1, 1, b"\x00\x3c\x00\x28\x00\x00\x00\x00"));
    assert!(
        matches!(
            e,
            AmqpError::Syntax {
                class_id: 60,
                method_id: 40,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.reply_code(), ReplyCode::SyntaxError);
    assert_eq!(e.class_method(), (60, 40));
    // A content header with a byte after its last property (found by the differential
    // fuzz target: amq-protocol and RabbitMQ refuse it).
    let e = err_of(&frame(
        2,
        1,
        b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x00\x01a\x00",
    ));
    assert!(matches!(e, AmqpError::Syntax { .. }), "{e:?}");
    assert_eq!(e.reply_code(), ReplyCode::SyntaxError);
    // A method with bytes after its last argument (basic.publish with two bytes more):
    // also found by the differential fuzz target.
    let e = err_of(&frame(
        1,
        1,
        b"\x00\x3c\x00\x28\x00\x00\x00\x00\x00\x71\x2e",
    ));
    assert!(
        matches!(
            e,
            AmqpError::Syntax {
                class_id: 60,
                method_id: 40,
                ..
            }
        ),
        "{e:?}"
    );
    // Method frame shorter than class + method ids.
    let e = err_of(&frame(1, 1, b"\x00\x3c"));
    assert!(matches!(
        e,
        AmqpError::Syntax {
            class_id: 0,
            method_id: 0,
            ..
        }
    ));
    // Table length beyond the frame.
    let e = err_of(&frame(
        1,
        1,
        b"\x00\x32\x00\x0a\x00\x00\x01q\x00\x00\x00\x10\x00",
    ));
    assert!(
        matches!(
            e,
            AmqpError::Syntax {
                class_id: 50,
                method_id: 10,
                ..
            }
        ),
        "{e:?}"
    );
    // Bad type tag.
    let table = b"\x01kZ\x00";
    let e = err_of(&frame(
        1,
        1,
        &cat(&[b"\x00\x32\x00\x0a\x00\x00\x01q\x00", &len32(table)]),
    ));
    assert!(matches!(
        e,
        AmqpError::Syntax {
            reason: "unknown field value type",
            ..
        }
    ));
    // The spec's `U` (signed 16) and short-string `s` are not RabbitMQ's: `U` is unknown.
    let table = b"\x01kU\x00\x01";
    let e = err_of(&frame(
        1,
        1,
        &cat(&[b"\x00\x32\x00\x0a\x00\x00\x01q\x00", &len32(table)]),
    ));
    assert_eq!(e.reply_code(), ReplyCode::SyntaxError);
    // Deep nesting: 100 nested arrays.
    let mut v: Vec<u8> = b"V".to_vec();
    for _ in 0..100 {
        v = cat(&[b"A", &len32(&v)]);
    }
    let table = cat(&[b"\x01k", &v]);
    let e = err_of(&frame(
        1,
        1,
        &cat(&[b"\x00\x32\x00\x0a\x00\x00\x01q\x00", &len32(&table)]),
    ));
    assert!(
        matches!(e, AmqpError::Syntax { reason, .. } if reason.contains("deeper")),
        "{e:?}"
    );
    // Invalid UTF-8 short string.
    let e = err_of(&frame(1, 1, b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00"));
    assert!(matches!(
        e,
        AmqpError::Syntax {
            reason: "short string is not UTF-8",
            ..
        }
    ));
    // Unknown method.
    let e = err_of(&frame(1, 1, b"\x00\x3c\x00\x29"));
    assert!(matches!(
        e,
        AmqpError::UnknownMethod {
            class_id: 60,
            method_id: 41
        }
    ));
    assert_eq!(e.reply_code(), ReplyCode::NotImplemented);
    // Content header: continuation bit, truncated property, short header.
    let e = err_of(&frame(
        2,
        1,
        &cat(&[b"\x00\x3c\x00\x00", &[0; 8], b"\x00\x01"]),
    ));
    assert!(matches!(
        e,
        AmqpError::Syntax {
            context: "content header",
            ..
        }
    ));
    let e = err_of(&frame(
        2,
        1,
        &cat(&[b"\x00\x3c\x00\x00", &[0; 8], b"\x80\x00\x05ab"]),
    ));
    assert!(matches!(
        e,
        AmqpError::Syntax {
            context: "content header",
            ..
        }
    ));
    let e = err_of(&frame(2, 1, b"\x00\x3c\x00\x00"));
    assert_eq!(e.reply_code(), ReplyCode::SyntaxError);
}

#[test]
fn long_shortstr_is_truncated_on_a_char_boundary() {
    let name = "é".repeat(200); // 400 bytes
    let m = Method::QueueDelete(QueueDelete {
        queue: name.clone(),
        ..Default::default()
    });
    let mut out = BytesMut::new();
    encode_method(1, &m, &mut out);
    let Frame::Method {
        method: Method::QueueDelete(d),
        ..
    } = decode_ok(&out)
    else {
        panic!()
    };
    assert_eq!(d.queue.len(), 254);
    assert!(name.starts_with(&d.queue));
}

#[test]
#[ignore = "writes fuzz seeds; run explicitly"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_amqp");
    std::fs::create_dir_all(&dir).unwrap();
    let mut all = Vec::new();
    let write = |name: &str, stream: &[u8]| {
        // Byte 0: split offset for the fuzz target; byte 1: mode (0 = default frame_max).
        let seed = cat(&[&[(stream.len() / 2).min(255) as u8, 0], stream]);
        std::fs::write(dir.join(name), seed).unwrap();
    };
    for (name, bytes, _) in vectors() {
        write(name, &bytes);
        all.extend_from_slice(&bytes);
    }
    let methods: Vec<(&str, Method)> = vec![
        (
            "basic_deliver",
            Method::BasicDeliver(BasicDeliver {
                consumer_tag: "ctag-1".into(),
                delivery_tag: 9,
                redelivered: true,
                exchange: "ex".into(),
                routing_key: "rk".into(),
            }),
        ),
        (
            "basic_consume",
            Method::BasicConsume(BasicConsume {
                queue: "q".into(),
                consumer_tag: "".into(),
                no_ack: true,
                ..Default::default()
            }),
        ),
        (
            "basic_qos",
            Method::BasicQos(BasicQos {
                prefetch_size: 0,
                prefetch_count: 10,
                global: false,
            }),
        ),
        (
            "basic_nack",
            Method::BasicNack(BasicNack {
                delivery_tag: 3,
                multiple: true,
                requeue: false,
            }),
        ),
        (
            "connection_tune",
            Method::ConnectionTune(ConnectionTune {
                channel_max: 2047,
                frame_max: 131_072,
                heartbeat: 60,
            }),
        ),
        (
            "connection_close",
            Method::ConnectionClose(ConnectionClose {
                reply_code: 406,
                reply_text: "PRECONDITION_FAILED - x".into(),
                class_id: 60,
                method_id: 40,
            }),
        ),
        ("channel_open", Method::ChannelOpen(ChannelOpen::default())),
        (
            "exchange_bind",
            Method::ExchangeBind(ExchangeBind {
                destination: "d".into(),
                source: "s".into(),
                routing_key: "#".into(),
                ..Default::default()
            }),
        ),
    ];
    for (name, m) in methods {
        let mut out = BytesMut::new();
        encode_method(1, &m, &mut out);
        write(name, &out);
        all.extend_from_slice(&out);
    }
    write("stream_all", &all);
}

/// Fuzz finding: with no limit (frame_max 0) a 2 GiB announced size made the decoder reserve
/// 2 GiB before any of it arrived. The reservation is now capped.
#[test]
fn unlimited_codec_does_not_reserve_the_announced_size() {
    let mut buf = BytesMut::from(&b"\x03\x00\x01\x89\x00\x00\x00"[..]);
    let mut codec = AmqpCodec::new(0);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(buf.len(), 7);
    assert!(buf.capacity() < 4 << 20, "reserved {}", buf.capacity());
    assert_eq!(codec.max_frame_size(), 0);
    codec.set_max_frame_size(FRAME_MIN_SIZE);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(AmqpError::FrameTooLarge { .. })
    ));
}
