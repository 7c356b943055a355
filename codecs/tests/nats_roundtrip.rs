//! Property tests: `decode(encode(op)) == op` in both directions, `encoded_len` is exactly what
//! `encode` wrote, and arbitrary input never panics nor consumes a partial operation.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::nats::{ClientCodec, ClientOp, Headers, Limits, ServerCodec, ServerOp};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Subjects, sids, queue groups: no whitespace, never empty.
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.*>$-]{1,12}"
}

fn payload() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

/// Raw JSON-ish text: anything but CR/LF, not starting with whitespace.
fn json() -> impl Strategy<Value = Bytes> {
    "(\\{[^\r\n]{0,20})?".prop_map(|s| Bytes::from(s.into_bytes()))
}

fn headers() -> impl Strategy<Value = Headers> {
    let status = of((any::<u16>(), of("[A-Za-z][A-Za-z ]{0,10}[A-Za-z]")));
    let entries = vec(("[A-Za-z0-9-]{1,10}", "([!-~][ -~]{0,10})?"), 0..4);
    (status, entries).prop_map(|(status, entries)| Headers {
        status: status.as_ref().map(|(s, _)| *s),
        description: status.and_then(|(_, d)| d),
        entries,
    })
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        json().prop_map(ClientOp::Connect),
        (token(), of(token()), payload()).prop_map(|(subject, reply_to, payload)| ClientOp::Pub {
            subject,
            reply_to,
            payload
        }),
        (token(), of(token()), headers(), payload()).prop_map(
            |(subject, reply_to, headers, payload)| ClientOp::HPub {
                subject,
                reply_to,
                headers,
                payload
            }
        ),
        (token(), of(token()), token()).prop_map(|(subject, queue_group, sid)| ClientOp::Sub {
            subject,
            queue_group,
            sid
        }),
        (token(), of(any::<u64>())).prop_map(|(sid, max_msgs)| ClientOp::Unsub { sid, max_msgs }),
        Just(ClientOp::Ping),
        Just(ClientOp::Pong),
    ]
}

fn server_op() -> impl Strategy<Value = ServerOp> {
    prop_oneof![
        json().prop_map(ServerOp::Info),
        (token(), token(), of(token()), payload()).prop_map(|(subject, sid, reply_to, payload)| {
            ServerOp::Msg {
                subject,
                sid,
                reply_to,
                payload,
            }
        }),
        (token(), token(), of(token()), headers(), payload()).prop_map(
            |(subject, sid, reply_to, headers, payload)| ServerOp::HMsg {
                subject,
                sid,
                reply_to,
                headers,
                payload
            }
        ),
        Just(ServerOp::Ping),
        Just(ServerOp::Pong),
        Just(ServerOp::Ok),
        "[^\r\n]{0,20}".prop_map(ServerOp::Err),
    ]
}

/// Decodes all of `buf` with `codec`, asserting nothing is left.
fn decode_all<D: Decoder>(codec: &mut D, buf: &mut BytesMut) -> Vec<D::Item>
where
    D::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    while let Some(op) = codec.decode(buf).unwrap() {
        out.push(op);
    }
    assert!(buf.is_empty());
    out
}

proptest! {
    #[test]
    fn client_ops_round_trip(ops in vec(client_op(), 1..6)) {
        let mut buf = BytesMut::new();
        for op in &ops {
            let before = buf.len();
            op.encode(&mut buf);
            prop_assert_eq!(buf.len() - before, op.encoded_len());
        }
        let decoded = decode_all(&mut ServerCodec::new(Limits::default()), &mut buf);
        prop_assert_eq!(decoded, ops);
    }

    #[test]
    fn server_ops_round_trip(ops in vec(server_op(), 1..6)) {
        let mut buf = BytesMut::new();
        for op in &ops {
            let before = buf.len();
            op.encode(&mut buf);
            prop_assert_eq!(buf.len() - before, op.encoded_len());
        }
        let decoded = decode_all(&mut ClientCodec::new(Limits::default()), &mut buf);
        prop_assert_eq!(decoded, ops);
    }

    #[test]
    fn arbitrary_input_never_panics_or_consumes_partially(
        data in vec(prop_oneof![
            any::<u8>(),
            Just(b'\r'), Just(b'\n'), Just(b' '),
            Just(b'0'), Just(b'1'), Just(b'P'), Just(b'H'),
        ], 0..200),
        cut in 0usize..200,
    ) {
        let prefixes: [&[u8]; 4] = [b"", b"PUB a ", b"HPUB a 12 ", b"MSG a 1 "];
        for prefix in prefixes {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&data);
            let cut = cut.min(bytes.len());
            let mut server = ServerCodec::new(Limits { max_control_line: 64, max_payload: 64 });
            let mut client = ClientCodec::new(Limits { max_control_line: 64, max_payload: 64 });
            for codec_is_server in [true, false] {
                let mut buf = BytesMut::new();
                for piece in [&bytes[..cut], &bytes[cut..]] {
                    buf.extend_from_slice(piece);
                    loop {
                        let before = buf.clone();
                        let r = if codec_is_server {
                            server.decode(&mut buf).map(|o| o.is_some())
                        } else {
                            client.decode(&mut buf).map(|o| o.is_some())
                        };
                        match r {
                            Ok(true) => {}
                            Ok(false) => {
                                prop_assert_eq!(&buf, &before);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }
}
