//! Property tests: typed values (methods of every field type, properties, field tables of
//! bounded depth, frames) survive encode → decode; and for EVERY method in the table, arbitrary
//! argument bytes that decode re-encode to bytes that decode to the same method (decoding never
//! panics on them either).

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::amqp::*;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn shortstr() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z.#*_-]{0,20}",
        "\\PC{0,40}".prop_map(|s: String| {
            // Keep within 255 bytes on a char boundary (encoding would truncate).
            let mut end = s.len().min(255);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        }),
    ]
}

fn longstr() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        (-1e30f32..1e30f32).prop_map(FieldValue::F32),
        (-1e300f64..1e300f64).prop_map(FieldValue::F64),
        (any::<u8>(), any::<i32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        longstr().prop_map(FieldValue::LongString),
        longstr().prop_map(FieldValue::Bytes),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            prop::collection::vec((shortstr(), inner), 0..6)
                .prop_map(|v| FieldValue::Table(FieldTable(v))),
        ]
    })
}

fn table() -> impl Strategy<Value = FieldTable> {
    prop::collection::vec((shortstr(), value()), 0..6).prop_map(FieldTable)
}

prop_compose! {
    fn properties()(
        a in proptest::option::of(shortstr()), b in proptest::option::of(shortstr()),
        headers in proptest::option::of(table()), dm in proptest::option::of(any::<u8>()),
        pr in proptest::option::of(any::<u8>()), c in proptest::option::of(shortstr()),
        d in proptest::option::of(shortstr()), e in proptest::option::of(shortstr()),
        f in proptest::option::of(shortstr()), ts in proptest::option::of(any::<u64>()),
        g in proptest::option::of(shortstr()), h in proptest::option::of(shortstr()),
        i in proptest::option::of(shortstr()), j in proptest::option::of(shortstr()),
    ) -> BasicProperties {
        BasicProperties {
            content_type: a, content_encoding: b, headers, delivery_mode: dm, priority: pr,
            correlation_id: c, reply_to: d, expiration: e, message_id: f, timestamp: ts,
            kind: g, user_id: h, app_id: i, cluster_id: j,
        }
    }
}

/// Methods covering every wire type, bit runs of every length from 1 to 5, and the methods
/// the broker uses most.
fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        (any::<u8>(), any::<u8>(), table(), longstr(), longstr()).prop_map(|(a, b, t, m, l)| {
            ConnectionStart {
                version_major: a,
                version_minor: b,
                server_properties: t,
                mechanisms: m,
                locales: l,
            }
            .into()
        }),
        (table(), shortstr(), longstr(), shortstr()).prop_map(|(t, m, r, l)| {
            ConnectionStartOk {
                client_properties: t,
                mechanism: m,
                response: r,
                locale: l,
            }
            .into()
        }),
        (any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(c, f, h)| {
            ConnectionTune {
                channel_max: c,
                frame_max: f,
                heartbeat: h,
            }
            .into()
        }),
        (shortstr(), shortstr(), any::<bool>()).prop_map(|(v, c, i)| {
            ConnectionOpen {
                virtual_host: v,
                capabilities: c,
                insist: i,
            }
            .into()
        }),
        (any::<u16>(), shortstr(), any::<u16>(), any::<u16>()).prop_map(|(a, b, c, d)| {
            ConnectionClose {
                reply_code: a,
                reply_text: b,
                class_id: c,
                method_id: d,
            }
            .into()
        }),
        longstr().prop_map(|c| ChannelOpenOk { channel_id: c }.into()),
        (shortstr(), any::<[bool; 5]>()).prop_map(|(r, b)| {
            AccessRequest {
                realm: r,
                exclusive: b[0],
                passive: b[1],
                active: b[2],
                write: b[3],
                read: b[4],
            }
            .into()
        }),
        (
            any::<u16>(),
            shortstr(),
            shortstr(),
            any::<[bool; 5]>(),
            table()
        )
            .prop_map(|(t, e, k, b, a)| {
                ExchangeDeclare {
                    ticket: t,
                    exchange: e,
                    kind: k,
                    passive: b[0],
                    durable: b[1],
                    auto_delete: b[2],
                    internal: b[3],
                    nowait: b[4],
                    arguments: a,
                }
                .into()
            }),
        (shortstr(), shortstr(), shortstr(), any::<bool>(), table()).prop_map(|(d, s, r, n, a)| {
            ExchangeUnbind {
                ticket: 0,
                destination: d,
                source: s,
                routing_key: r,
                nowait: n,
                arguments: a,
            }
            .into()
        }),
        (shortstr(), any::<[bool; 5]>(), table()).prop_map(|(q, b, a)| {
            QueueDeclare {
                ticket: 0,
                queue: q,
                passive: b[0],
                durable: b[1],
                exclusive: b[2],
                auto_delete: b[3],
                nowait: b[4],
                arguments: a,
            }
            .into()
        }),
        (shortstr(), any::<u32>(), any::<u32>()).prop_map(|(q, m, c)| {
            QueueDeclareOk {
                queue: q,
                message_count: m,
                consumer_count: c,
            }
            .into()
        }),
        (shortstr(), any::<[bool; 3]>()).prop_map(|(q, b)| {
            QueueDelete {
                ticket: 0,
                queue: q,
                if_unused: b[0],
                if_empty: b[1],
                nowait: b[2],
            }
            .into()
        }),
        (any::<u32>(), any::<u16>(), any::<bool>()).prop_map(|(s, c, g)| {
            BasicQos {
                prefetch_size: s,
                prefetch_count: c,
                global: g,
            }
            .into()
        }),
        (shortstr(), shortstr(), any::<[bool; 4]>(), table()).prop_map(|(q, c, b, a)| {
            BasicConsume {
                ticket: 0,
                queue: q,
                consumer_tag: c,
                no_local: b[0],
                no_ack: b[1],
                exclusive: b[2],
                nowait: b[3],
                arguments: a,
            }
            .into()
        }),
        (shortstr(), shortstr(), any::<[bool; 2]>()).prop_map(|(e, r, b)| {
            BasicPublish {
                ticket: 0,
                exchange: e,
                routing_key: r,
                mandatory: b[0],
                immediate: b[1],
            }
            .into()
        }),
        (
            shortstr(),
            any::<u64>(),
            any::<bool>(),
            shortstr(),
            shortstr()
        )
            .prop_map(|(c, d, r, e, k)| {
                BasicDeliver {
                    consumer_tag: c,
                    delivery_tag: d,
                    redelivered: r,
                    exchange: e,
                    routing_key: k,
                }
                .into()
            }),
        (
            any::<u64>(),
            any::<bool>(),
            shortstr(),
            shortstr(),
            any::<u32>()
        )
            .prop_map(|(d, r, e, k, m)| {
                BasicGetOk {
                    delivery_tag: d,
                    redelivered: r,
                    exchange: e,
                    routing_key: k,
                    message_count: m,
                }
                .into()
            }),
        (any::<u64>(), any::<[bool; 2]>()).prop_map(|(d, b)| {
            BasicNack {
                delivery_tag: d,
                multiple: b[0],
                requeue: b[1],
            }
            .into()
        }),
        (longstr(), shortstr()).prop_map(|(s, r)| ConnectionUpdateSecret {
            new_secret: s,
            reason: r
        }
        .into()),
        any::<bool>().prop_map(|n| ConfirmSelect { nowait: n }.into()),
        Just(TxCommitOk {}.into()),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u16>(), method()).prop_map(|(channel, method)| Frame::Method { channel, method }),
        (any::<u16>(), any::<u16>(), any::<u64>(), properties()).prop_map(
            |(channel, class_id, body_size, properties)| {
                let mut raw = BytesMut::new();
                properties.encode(&mut raw);
                Frame::Header {
                    channel,
                    header: ContentHeader {
                        class_id,
                        body_size,
                        properties,
                        raw_properties: raw.freeze(),
                    },
                }
            }
        ),
        (any::<u16>(), longstr()).prop_map(|(channel, payload)| Frame::Body { channel, payload }),
        any::<u16>().prop_map(|channel| Frame::Heartbeat { channel }),
    ]
}

fn decode_frame(bytes: &mut BytesMut) -> Frame {
    AmqpCodec::new(0)
        .decode(bytes)
        .expect("decodes")
        .expect("whole frame")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn methods_round_trip(m in method()) {
        let mut args = BytesMut::new();
        m.encode_args(&mut args);
        prop_assert_eq!(Method::decode(m.class_id(), m.method_id(), &args).unwrap(), m);
    }

    #[test]
    fn properties_round_trip(p in properties()) {
        let mut raw = BytesMut::new();
        p.encode(&mut raw);
        prop_assert_eq!(BasicProperties::decode(&raw).unwrap(), p);
    }

    #[test]
    fn frames_round_trip(f in frame()) {
        let mut out = BytesMut::new();
        f.encode(&mut out);
        prop_assert_eq!(decode_frame(&mut out), f);
        prop_assert!(out.is_empty());
    }

    #[test]
    fn tables_round_trip_as_headers(t in table()) {
        let p = BasicProperties { headers: Some(t), ..Default::default() };
        let mut raw = BytesMut::new();
        p.encode(&mut raw);
        prop_assert_eq!(BasicProperties::decode(&raw).unwrap(), p);
    }

    /// Every method in the table: arbitrary argument bytes either fail cleanly or decode to a
    /// method whose encoding decodes to the same method (unused bits of a bit octet and
    /// trailing bytes are the only things that may not survive).
    #[test]
    fn every_method_reencodes_what_it_decodes(
        which in 0..Method::ALL.len(),
        args in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let (c, m, name) = Method::ALL[which];
        if let Ok(decoded) = Method::decode(c, m, &args) {
            prop_assert_eq!(decoded.name(), name);
            let mut out = BytesMut::new();
            decoded.encode_args(&mut out);
            prop_assert!(out.len() <= args.len());
            prop_assert_eq!(Method::decode(c, m, &out).unwrap(), decoded);
        }
    }
}

#[test]
fn every_method_round_trips_its_default() {
    // All-zero arguments of the one length a method takes (empty strings and tables) decode
    // to its Default; and the Default re-encodes and decodes to itself.
    for &(c, m, name) in Method::ALL {
        let decoded = (0..64)
            .find_map(|n| Method::decode(c, m, &vec![0u8; n]).ok())
            .unwrap_or_else(|| panic!("no all-zero arguments decode as {name}"));
        assert_eq!(
            (decoded.class_id(), decoded.method_id(), decoded.name()),
            (c, m, name)
        );
        let mut out = BytesMut::new();
        encode_method(5, &decoded, &mut out);
        assert_eq!(
            decode_frame(&mut out),
            Frame::Method {
                channel: 5,
                method: decoded
            }
        );
    }
}
