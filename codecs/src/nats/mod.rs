//! NATS client protocol wire codec (nats.docs "Client Protocol"; headers: ADR-4; server truth:
//! nats-server `server/parser.go`).
//!
//! [`ServerCodec`] decodes what a client sends ([`ClientOp`]) and encodes what a server sends
//! ([`ServerOp`]); [`ClientCodec`] is its mirror, for tests and benches. The codec owns only
//! framing and its two limits. It does not parse CONNECT/INFO JSON, validate subjects, track
//! subscriptions, or decide what to answer: every [`DecodeError`] is fatal and carries the
//! `-ERR` text the front should send ([`DecodeError::err_message`]).

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

mod error;
mod headers;
mod op;
mod parse;

pub use error::DecodeError;
pub use headers::Headers;
pub use op::{encode_msg, ClientOp, ServerOp};

use parse::Framer;

/// nats-server `MAX_CONTROL_LINE_SIZE` (server/const.go; the protocol doc's 1024 is stale).
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
/// nats-server `MAX_PAYLOAD_SIZE`, advertised as INFO `max_payload`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1_048_576;

/// Limits checked before anything is buffered.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest control line accepted, terminator excluded; a longer one is rejected as soon as
    /// that many bytes arrived without a line end.
    pub max_control_line: usize,
    /// Largest `#bytes` (`#total bytes` for HPUB/HMSG) accepted; rejected on the control line.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// Decodes what a client sends; encodes what a server sends.
#[derive(Debug, Clone)]
pub struct ServerCodec {
    framer: Framer<ClientOp>,
}

impl ServerCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            framer: Framer::new(limits),
        }
    }

    /// Changes the payload limit, e.g. to the per-account value once CONNECT authenticated.
    pub fn set_max_payload(&mut self, n: usize) {
        self.framer.limits.max_payload = n;
    }
}

impl Decoder for ServerCodec {
    type Item = ClientOp;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ClientOp>, DecodeError> {
        self.framer.decode(src)
    }
}

impl Encoder<&ServerOp> for ServerCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: &ServerOp, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        item.encode(dst);
        Ok(())
    }
}

impl Encoder<ServerOp> for ServerCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: ServerOp, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        item.encode(dst);
        Ok(())
    }
}

/// Decodes what a server sends (for tests, benches): MSG, HMSG, INFO, PING, PONG, +OK, -ERR.
#[derive(Debug, Clone)]
pub struct ClientCodec {
    framer: Framer<ServerOp>,
}

impl ClientCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            framer: Framer::new(limits),
        }
    }
}

impl Decoder for ClientCodec {
    type Item = ServerOp;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ServerOp>, DecodeError> {
        self.framer.decode(src)
    }
}

impl Encoder<&ClientOp> for ClientCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: &ClientOp, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        item.encode(dst);
        Ok(())
    }
}

impl Encoder<ClientOp> for ClientCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: ClientOp, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        item.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// Decodes everything in `input` with a default server codec.
    fn client_ops(input: &[u8]) -> Result<Vec<ClientOp>, DecodeError> {
        decode_all(&mut ServerCodec::new(Limits::default()), input)
    }

    fn decode_all<D: Decoder<Error = DecodeError>>(
        codec: &mut D,
        input: &[u8],
    ) -> Result<Vec<D::Item>, DecodeError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(op) = codec.decode(&mut buf)? {
            out.push(op);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn publ(subject: &str, reply_to: Option<&str>, payload: &'static [u8]) -> ClientOp {
        ClientOp::Pub {
            subject: subject.into(),
            reply_to: reply_to.map(Into::into),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn a_line_that_cannot_start_an_operation_is_refused_before_its_end() {
        // A TLS ClientHello's first bytes: no line end, and none needed to refuse it.
        let mut codec = ServerCodec::new(Limits::default());
        let mut buf = BytesMut::from(&[0x16u8, 0x03, 0x01, 0x00, 0xc8][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::UnknownOperation)
        ));
        // A partial operation still waits for its line end.
        let mut codec = ServerCodec::new(Limits::default());
        let mut buf = BytesMut::from(&b"PI"[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        let mut client = ClientCodec::new(Limits::default());
        let mut buf = BytesMut::from(&b"-ER"[..]);
        assert!(matches!(client.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn pub_with_and_without_reply() {
        assert_eq!(
            client_ops(b"PUB foo.bar INBOX.22 11\r\nhello world\r\nPUB foo 0\r\n\r\n").unwrap(),
            [
                publ("foo.bar", Some("INBOX.22"), b"hello world"),
                publ("foo", None, b"")
            ]
        );
    }

    #[test]
    fn op_names_are_case_insensitive() {
        assert_eq!(
            client_ops(b"pub foo 1\r\na\r\nPub foo 1\r\na\r\nping\r\nPoNg\r\n").unwrap(),
            [
                publ("foo", None, b"a"),
                publ("foo", None, b"a"),
                ClientOp::Ping,
                ClientOp::Pong
            ]
        );
    }

    #[test]
    fn tabs_runs_of_spaces_and_bare_lf() {
        assert_eq!(
            client_ops(b"PUB\tfoo \t r  2\nhi\r\nSUB  foo\tq  1\nPING  \r\nPONG\t\n").unwrap(),
            [
                publ("foo", Some("r"), b"hi"),
                ClientOp::Sub {
                    subject: "foo".into(),
                    queue_group: Some("q".into()),
                    sid: "1".into()
                },
                ClientOp::Ping,
                ClientOp::Pong
            ]
        );
    }

    #[test]
    fn connect_keeps_raw_json() {
        assert_eq!(
            client_ops(b"CONNECT {\"verbose\":false, \"name\":\"a b\"}\r\nconnect\t {}\r\n")
                .unwrap(),
            [
                ClientOp::Connect(Bytes::from_static(b"{\"verbose\":false, \"name\":\"a b\"}")),
                ClientOp::Connect(Bytes::from_static(b"{}"))
            ]
        );
    }

    #[test]
    fn sub_and_unsub() {
        assert_eq!(
            client_ops(b"SUB foo 1\r\nSUB foo.* grp 2\r\nUNSUB 1\r\nUNSUB 2 5\r\n").unwrap(),
            [
                ClientOp::Sub {
                    subject: "foo".into(),
                    queue_group: None,
                    sid: "1".into()
                },
                ClientOp::Sub {
                    subject: "foo.*".into(),
                    queue_group: Some("grp".into()),
                    sid: "2".into()
                },
                ClientOp::Unsub {
                    sid: "1".into(),
                    max_msgs: None
                },
                ClientOp::Unsub {
                    sid: "2".into(),
                    max_msgs: Some(5)
                },
            ]
        );
    }

    #[test]
    fn hpub_as_observed() {
        // reference §1.2: `HPUB foo.bar reply.x 22 27` is delivered as `HMSG foo.bar 1 reply.x 22 27`.
        let ops =
            client_ops(b"HPUB foo.bar reply.x 22 27\r\nNATS/1.0\r\nBar: Baz\r\n\r\nhello\r\n")
                .unwrap();
        assert_eq!(
            ops,
            [ClientOp::HPub {
                subject: "foo.bar".into(),
                reply_to: Some("reply.x".into()),
                headers: Headers {
                    status: None,
                    description: None,
                    entries: vec![("Bar".into(), "Baz".into())],
                },
                payload: Bytes::from_static(b"hello"),
            }]
        );
    }

    #[test]
    fn hpub_with_status_and_empty_payload() {
        let ops = client_ops(b"hpub a 28 28\r\nNATS/1.0 404 No Messages\r\n\r\n\r\n").unwrap();
        assert_eq!(
            ops,
            [ClientOp::HPub {
                subject: "a".into(),
                reply_to: None,
                headers: Headers {
                    status: Some(404),
                    description: Some("No Messages".into()),
                    entries: vec![],
                },
                payload: Bytes::new(),
            }]
        );
    }

    #[test]
    fn errors() {
        let unknown = [
            &b"\r\n"[..],
            b"\n",
            b"FOO\r\n",
            b"PUB\r\n",
            b"PUB foo\r\n",
            b"PUB foo r x 1\r\n",
            b"PUB foo -1\r\n",
            b"PUB foo +1\r\n",
            b"PUB foo 1x\r\n",
            b"PUB foo 99999999999999999999999\r\n",
            b"SUB foo\r\n",
            b"SUB a b c d\r\n",
            b"UNSUB\r\n",
            b"UNSUB 1 x\r\n",
            b"UNSUB 1 2 3\r\n",
            b"PING x\r\n",
            b"MSG foo 1 1\r\n",
            b"INFO {}\r\n",
            b"SUB \xff 1\r\n",
            b" PING\r\n",
        ];
        for input in unknown {
            assert!(
                matches!(client_ops(input), Err(DecodeError::UnknownOperation)),
                "{input:?}"
            );
        }
        assert!(matches!(
            client_ops(b"PUB foo 3\r\nabcd\r\n"),
            Err(DecodeError::BadPayloadTerminator)
        ));
        assert!(matches!(
            client_ops(b"PUB foo 3\r\nabc\n\r"),
            Err(DecodeError::BadPayloadTerminator)
        ));
        assert!(matches!(
            client_ops(b"HPUB foo 12 11\r\n"),
            Err(DecodeError::InvalidHeaders)
        ));
        assert!(matches!(
            client_ops(b"HPUB foo 5 5\r\nhello\r\n"),
            Err(DecodeError::InvalidHeaders)
        ));
    }

    #[test]
    fn max_payload_is_checked_on_the_control_line() {
        let mut codec = ServerCodec::new(Limits {
            max_control_line: 4096,
            max_payload: 4,
        });
        // Nothing of the payload has arrived: the announced size alone is rejected.
        let mut buf = BytesMut::from(&b"PUB foo 5\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::MaxPayloadExceeded { size: 5, max: 4 })
        ));
        let mut buf = BytesMut::from(&b"HPUB foo 2 5\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::MaxPayloadExceeded { size: 5, max: 4 })
        ));
        let mut buf = BytesMut::from(&b"PUB foo 4\r\nabcd\r\n"[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(publ("foo", None, b"abcd"))
        );
        codec.set_max_payload(3);
        let mut buf = BytesMut::from(&b"PUB foo 4\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::MaxPayloadExceeded { size: 4, max: 3 })
        ));
    }

    #[test]
    fn control_line_limit_without_crlf() {
        let limits = Limits {
            max_control_line: 10,
            max_payload: 100,
        };
        let mut codec = ServerCodec::new(limits);
        // Exactly max bytes, then a pending `\r`: still waiting.
        let mut buf = BytesMut::from(&b"SUB abc 12\r"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 11);
        buf.extend_from_slice(b"\n");
        assert!(codec.decode(&mut buf).unwrap().is_some());
        // One byte over, no terminator yet: rejected before the line end arrives.
        let mut codec = ServerCodec::new(limits);
        let mut buf = BytesMut::from(&b"SUB abc 123"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::ControlLineTooLong { max: 10 })
        ));
        let mut codec = ServerCodec::new(limits);
        let mut buf = BytesMut::from(&b"SUB abc 123\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::ControlLineTooLong { max: 10 })
        ));
    }

    #[test]
    fn incomplete_payload_reserves_and_is_not_consumed() {
        let mut codec = ServerCodec::new(Limits::default());
        let mut buf = BytesMut::from(&b"PUB foo 1000\r\nab"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"PUB foo 1000\r\nab");
        assert!(buf.capacity() >= 14 + 1000 + 2);
    }

    #[test]
    fn payload_is_zero_copy() {
        let mut codec = ServerCodec::new(Limits::default());
        let mut buf = BytesMut::from(&b"PUB foo 5\r\nhello\r\n"[..]);
        let start = buf.as_ptr() as usize;
        match codec.decode(&mut buf).unwrap() {
            Some(ClientOp::Pub { payload, .. }) => {
                assert_eq!(payload.as_ptr() as usize, start + 11);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_codec_decodes_server_ops() {
        let mut codec = ClientCodec::new(Limits::default());
        let ops = decode_all(
            &mut codec,
            b"INFO {\"max_payload\":1048576}\r\nMSG foo 1 5\r\nhello\r\nmsg foo 1 r 0\r\n\r\n\
              HMSG _INBOX.x 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\n+OK\r\nPING\r\npong\r\n-ERR 'Stale Connection'\r\n",
        )
        .unwrap();
        assert_eq!(
            ops,
            [
                ServerOp::Info(Bytes::from_static(b"{\"max_payload\":1048576}")),
                ServerOp::Msg {
                    subject: "foo".into(),
                    sid: "1".into(),
                    reply_to: None,
                    payload: Bytes::from_static(b"hello")
                },
                ServerOp::Msg {
                    subject: "foo".into(),
                    sid: "1".into(),
                    reply_to: Some("r".into()),
                    payload: Bytes::new()
                },
                ServerOp::HMsg {
                    subject: "_INBOX.x".into(),
                    sid: "9".into(),
                    reply_to: None,
                    headers: Headers {
                        status: Some(503),
                        ..Headers::default()
                    },
                    payload: Bytes::new()
                },
                ServerOp::Ok,
                ServerOp::Ping,
                ServerOp::Pong,
                ServerOp::Err("Stale Connection".into()),
            ]
        );
        let mut codec = ClientCodec::new(Limits::default());
        assert!(matches!(
            decode_all(&mut codec, b"PUB foo 0\r\n\r\n"),
            Err(DecodeError::UnknownOperation)
        ));
    }

    #[test]
    fn encoders_write_ops() {
        let mut dst = BytesMut::new();
        let mut codec = ServerCodec::new(Limits::default());
        codec.encode(&ServerOp::Ping, &mut dst).unwrap();
        codec.encode(ServerOp::Ok, &mut dst).unwrap();
        let mut client = ClientCodec::new(Limits::default());
        client.encode(&ClientOp::Pong, &mut dst).unwrap();
        client.encode(ClientOp::Ping, &mut dst).unwrap();
        assert_eq!(&dst[..], b"PING\r\n+OK\r\nPONG\r\nPING\r\n");
    }
}
