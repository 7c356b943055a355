//! Every NATS vector is decoded whole, split in two at every offset (so also between `\r` and
//! `\n`), and fed one byte at a time; all three must yield the same ops (or the same error), and
//! a call that returns `Ok(None)` must leave the buffer exactly as it was.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::nats::{
    ClientCodec, ClientOp, DecodeError, Headers, Limits, ServerCodec, ServerOp,
};
use tokio_util::codec::Decoder;

/// Feeds `bytes` to `codec` in the chunks given by `cuts`; returns every op decoded, then the
/// error if decoding stopped on one.
fn feed<D>(mut codec: D, bytes: &[u8], cuts: &[usize]) -> (Vec<D::Item>, Option<String>)
where
    D: Decoder<Error = DecodeError>,
{
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    let mut fed = 0;
    for end in cuts.iter().copied().chain(std::iter::once(bytes.len())) {
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        loop {
            let before = buf.clone();
            match codec.decode(&mut buf) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => {
                    assert_eq!(buf, before, "an incomplete buffer was advanced");
                    break;
                }
                Err(e) => return (ops, Some(format!("{e:?}"))),
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    (ops, None)
}

fn check<D>(factory: &dyn Fn() -> D, bytes: &[u8], expected: &[D::Item], error: Option<&str>)
where
    D: Decoder<Error = DecodeError>,
    D::Item: PartialEq + std::fmt::Debug,
{
    let error = error.map(str::to_owned);
    let (whole, err) = feed(factory(), bytes, &[]);
    assert_eq!(err, error, "whole buffer");
    assert_eq!(whole, expected, "whole buffer");
    for cut in 0..=bytes.len() {
        let (ops, err) = feed(factory(), bytes, &[cut]);
        assert_eq!(err, error, "split at {cut}");
        assert_eq!(ops, expected, "split at {cut}");
    }
    let every: Vec<usize> = (1..bytes.len()).collect();
    let (ops, err) = feed(factory(), bytes, &every);
    assert_eq!(err, error, "byte at a time");
    assert_eq!(ops, expected, "byte at a time");
}

fn server() -> ServerCodec {
    ServerCodec::new(Limits::default())
}

fn client() -> ClientCodec {
    ClientCodec::new(Limits::default())
}

fn small() -> ServerCodec {
    ServerCodec::new(Limits {
        max_control_line: 16,
        max_payload: 8,
    })
}

fn publ(subject: &str, reply_to: Option<&str>, payload: &'static [u8]) -> ClientOp {
    ClientOp::Pub {
        subject: subject.into(),
        reply_to: reply_to.map(Into::into),
        payload: Bytes::from_static(payload),
    }
}

#[test]
fn nats_server_split_test_vector() {
    // nats-server split_test.go cuts this into pieces.
    check(
        &server,
        b"PUB foo.bar INBOX.22 11\r\nhello world\r\n",
        &[publ("foo.bar", Some("INBOX.22"), b"hello world")],
        None,
    );
}

#[test]
fn client_op_sequence() {
    let bytes: &[u8] = b"CONNECT {\"verbose\":false}\r\nPING\r\npub\tfoo  0\r\n\r\n\
        SUB foo q 1\nUNSUB 1 5\r\nHPUB a r 22 27\r\nNATS/1.0\r\nBar: Baz\r\n\r\nhello\r\n\
        HPUB b 16 16\r\nNATS/1.0 503\r\n\r\n\r\nPONG  \r\nPUB x 2\r\n\r\n\r\n";
    let expected = [
        ClientOp::Connect(Bytes::from_static(b"{\"verbose\":false}")),
        ClientOp::Ping,
        publ("foo", None, b""),
        ClientOp::Sub {
            subject: "foo".into(),
            queue_group: Some("q".into()),
            sid: "1".into(),
        },
        ClientOp::Unsub {
            sid: "1".into(),
            max_msgs: Some(5),
        },
        ClientOp::HPub {
            subject: "a".into(),
            reply_to: Some("r".into()),
            headers: Headers {
                entries: vec![("Bar".into(), "Baz".into())],
                ..Headers::default()
            },
            payload: Bytes::from_static(b"hello"),
        },
        ClientOp::HPub {
            subject: "b".into(),
            reply_to: None,
            headers: Headers {
                status: Some(503),
                ..Headers::default()
            },
            payload: Bytes::new(),
        },
        ClientOp::Pong,
        // A payload that is itself CRLF.
        publ("x", None, b"\r\n"),
    ];
    check(&server, bytes, &expected, None);
}

#[test]
fn server_op_sequence() {
    let bytes: &[u8] = b"INFO {\"headers\":true}\r\nMSG foo 1 5\r\nhello\r\nMSG foo 1 r 0\r\n\r\n\
        HMSG _INBOX.x 9 28 30\r\nNATS/1.0 404 No Messages\r\n\r\nhi\r\n+OK\r\nPING\r\nPONG\r\n\
        -ERR 'Unknown Protocol Operation'\r\n";
    let expected = [
        ServerOp::Info(Bytes::from_static(b"{\"headers\":true}")),
        ServerOp::Msg {
            subject: "foo".into(),
            sid: "1".into(),
            reply_to: None,
            payload: Bytes::from_static(b"hello"),
        },
        ServerOp::Msg {
            subject: "foo".into(),
            sid: "1".into(),
            reply_to: Some("r".into()),
            payload: Bytes::new(),
        },
        ServerOp::HMsg {
            subject: "_INBOX.x".into(),
            sid: "9".into(),
            reply_to: None,
            headers: Headers {
                status: Some(404),
                description: Some("No Messages".into()),
                entries: vec![],
            },
            payload: Bytes::from_static(b"hi"),
        },
        ServerOp::Ok,
        ServerOp::Ping,
        ServerOp::Pong,
        ServerOp::Err("Unknown Protocol Operation".into()),
    ];
    check(&client, bytes, &expected, None);
}

#[test]
fn errors_are_the_same_however_split() {
    let ping = [ClientOp::Ping];
    check(
        &server,
        b"PING\r\nFOO bar\r\n",
        &ping,
        Some("UnknownOperation"),
    );
    check(&server, b"PING\r\n\r\n", &ping, Some("UnknownOperation"));
    check(
        &server,
        b"PING\r\nPUB a -1\r\n",
        &ping,
        Some("UnknownOperation"),
    );
    check(
        &server,
        b"PING\r\nPUB a 2\r\nabc\r\n",
        &ping,
        Some("BadPayloadTerminator"),
    );
    check(
        &server,
        b"PING\r\nPUB a 2\r\nab\n\r",
        &ping,
        Some("BadPayloadTerminator"),
    );
    check(
        &server,
        b"PING\r\nHPUB a 3 4\r\nabcd\r\n",
        &ping,
        Some("InvalidHeaders"),
    );
    check(
        &server,
        b"PING\r\nHPUB a 5 4\r\n",
        &ping,
        Some("InvalidHeaders"),
    );
    check(
        &small,
        b"PING\r\nPUB a 9\r\n",
        &ping,
        Some("MaxPayloadExceeded { size: 9, max: 8 }"),
    );
    check(
        &small,
        b"PING\r\nSUB aaaaaaaaaa 12345\r\n",
        &ping,
        Some("ControlLineTooLong { max: 16 }"),
    );
}

#[test]
fn line_of_exactly_max_is_accepted_however_split() {
    check(
        &small,
        b"SUB aaaaaaaaa 12\r\nPUB a 8\r\n12345678\r\n",
        &[
            ClientOp::Sub {
                subject: "aaaaaaaaa".into(),
                queue_group: None,
                sid: "12".into(),
            },
            publ("a", None, b"12345678"),
        ],
        None,
    );
}
