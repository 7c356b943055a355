//! Hand-written STOMP byte vectors: client frames as stomp.py and @stomp/stompjs send them
//! (decoded exactly), every command, CRLF, heart-beats, escaping per version, bodies; the
//! server frames the broker writes (encoded byte for byte); and every decode error.
//!
//! The fuzz seeds in `fuzz/seeds/decode_stomp/` are checked against these vectors;
//! `DWBROKER_WRITE_SEEDS=1 cargo test -p dwbroker-codecs --test stomp_vectors` rewrites them.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::stomp::*;
use tokio_util::codec::Decoder;

const LIMITS: StompLimits = StompLimits {
    max_header_line: 1024,
    max_headers: 32,
    max_body: 4096,
};

fn codec(version: Version, limits: StompLimits) -> StompCodec {
    let mut c = StompCodec::new(limits);
    c.set_version(version);
    c
}

/// Feeds `bytes` at once; the items decoded until the decoder wants more, or its error.
fn decode_with(
    version: Version,
    limits: StompLimits,
    bytes: &[u8],
) -> Result<Vec<Received>, StompError> {
    let mut c = codec(version, limits);
    let mut buf = BytesMut::from(bytes);
    let mut items = Vec::new();
    while let Some(item) = c.decode(&mut buf)? {
        items.push(item);
    }
    Ok(items)
}

/// The items of a complete stream (no bytes left over).
fn items(version: Version, bytes: &[u8]) -> Vec<Received> {
    let mut c = codec(version, LIMITS);
    let mut buf = BytesMut::from(bytes);
    let mut items = Vec::new();
    while let Some(item) = c.decode(&mut buf).expect("decodes") {
        items.push(item);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    items
}

/// The one frame of `bytes` (1.2).
fn frame(bytes: &[u8]) -> Frame {
    frame_v(Version::V1_2, bytes)
}

fn frame_v(version: Version, bytes: &[u8]) -> Frame {
    match items(version, bytes).as_slice() {
        [Received::Frame(f)] => f.clone(),
        other => panic!("expected one frame, got {other:?}"),
    }
}

fn error_with(version: Version, limits: StompLimits, bytes: &[u8]) -> StompError {
    match decode_with(version, limits, bytes) {
        Err(e) => e,
        Ok(items) => panic!("expected an error, got {items:?}"),
    }
}

fn error(bytes: &[u8]) -> StompError {
    error_with(Version::V1_2, LIMITS, bytes)
}

fn f(command: Command, headers: &[(&str, &str)], body: &[u8]) -> Frame {
    let mut frame = Frame::new(command);
    for (n, v) in headers {
        frame = frame.with(n, v);
    }
    frame.body = Bytes::copy_from_slice(body);
    frame
}

fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame.encode(version, &mut out);
    out.to_vec()
}

/// One client frame per command, as the clients write them, with the frame they decode to.
fn client_vectors() -> Vec<(&'static str, &'static [u8], Frame)> {
    use Command::*;
    vec![
        (
            "stomp_py_stomp",
            b"STOMP\naccept-version:1.1\nhost:127.0.0.1\n\n\0",
            f(Stomp, &[("accept-version", "1.1"), ("host", "127.0.0.1")], b""),
        ),
        (
            "stomp_py_connect_12",
            b"CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:1000,1000\nlogin:guest\npasscode:guest\n\n\0",
            f(
                Connect,
                &[
                    ("accept-version", "1.2"),
                    ("host", "127.0.0.1"),
                    ("heart-beat", "1000,1000"),
                    ("login", "guest"),
                    ("passcode", "guest"),
                ],
                b"",
            ),
        ),
        (
            "stompjs_connect",
            b"CONNECT\naccept-version:1.2,1.1,1.0\nheart-beat:10000,10000\n\n\0",
            f(
                Connect,
                &[
                    ("accept-version", "1.2,1.1,1.0"),
                    ("heart-beat", "10000,10000"),
                ],
                b"",
            ),
        ),
        (
            "stomp_py_send",
            b"SEND\ncontent-length:5\ndestination:/queue/test\nreceipt:r-1\n\nhello\0",
            f(
                Send,
                &[
                    ("content-length", "5"),
                    ("destination", "/queue/test"),
                    ("receipt", "r-1"),
                ],
                b"hello",
            ),
        ),
        (
            "stompjs_send",
            b"SEND\ndestination:/topic/chat\ncontent-type:text/plain\ncontent-length:11\n\nhello world\0",
            f(
                Send,
                &[
                    ("destination", "/topic/chat"),
                    ("content-type", "text/plain"),
                    ("content-length", "11"),
                ],
                b"hello world",
            ),
        ),
        (
            "stompjs_send_no_length",
            b"SEND\ndestination:/queue/a\n\n{\"a\":1}\0",
            f(Send, &[("destination", "/queue/a")], b"{\"a\":1}"),
        ),
        (
            "subscribe",
            b"SUBSCRIBE\ndestination:/queue/test\nid:sub-0\nack:client-individual\n\n\0",
            f(
                Subscribe,
                &[
                    ("destination", "/queue/test"),
                    ("id", "sub-0"),
                    ("ack", "client-individual"),
                ],
                b"",
            ),
        ),
        (
            "unsubscribe",
            b"UNSUBSCRIBE\nid:sub-0\n\n\0",
            f(Unsubscribe, &[("id", "sub-0")], b""),
        ),
        (
            "ack_12",
            b"ACK\nid:T_sub-0@@session-1@@1\ntransaction:tx1\n\n\0",
            f(
                Ack,
                &[("id", "T_sub-0@@session-1@@1"), ("transaction", "tx1")],
                b"",
            ),
        ),
        (
            "nack_11",
            b"NACK\nmessage-id:m-7\nsubscription:sub-0\nrequeue:false\n\n\0",
            f(
                Nack,
                &[
                    ("message-id", "m-7"),
                    ("subscription", "sub-0"),
                    ("requeue", "false"),
                ],
                b"",
            ),
        ),
        (
            "begin",
            b"BEGIN\ntransaction:tx1\n\n\0",
            f(Begin, &[("transaction", "tx1")], b""),
        ),
        (
            "commit",
            b"COMMIT\ntransaction:tx1\nreceipt:r-2\n\n\0",
            f(Commit, &[("transaction", "tx1"), ("receipt", "r-2")], b""),
        ),
        (
            "abort",
            b"ABORT\ntransaction:tx2\n\n\0",
            f(Abort, &[("transaction", "tx2")], b""),
        ),
        (
            "disconnect",
            b"DISCONNECT\nreceipt:77\n\n\0",
            f(Disconnect, &[("receipt", "77")], b""),
        ),
        (
            "connected",
            b"CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:RabbitMQ/3.10.8\nsession:session-Ab:c\n\n\0",
            f(
                Connected,
                &[
                    ("version", "1.2"),
                    ("heart-beat", "0,0"),
                    ("server", "RabbitMQ/3.10.8"),
                    ("session", "session-Ab:c"),
                ],
                b"",
            ),
        ),
        (
            "message",
            b"MESSAGE\nsubscription:sub-0\ndestination:/queue/test\nmessage-id:T_sub-0@@session-1@@1\nredelivered:false\nack:T_sub-0@@session-1@@1\ncontent-length:2\n\nhi\0",
            f(
                Message,
                &[
                    ("subscription", "sub-0"),
                    ("destination", "/queue/test"),
                    ("message-id", "T_sub-0@@session-1@@1"),
                    ("redelivered", "false"),
                    ("ack", "T_sub-0@@session-1@@1"),
                    ("content-length", "2"),
                ],
                b"hi",
            ),
        ),
        (
            "receipt",
            b"RECEIPT\nreceipt-id:77\n\n\0",
            f(Receipt, &[("receipt-id", "77")], b""),
        ),
        (
            "error",
            b"ERROR\nmessage:Bad CONNECT\ncontent-type:text/plain\nversion:1.0,1.1,1.2\ncontent-length:14\n\nAccess refused\0",
            f(
                Error,
                &[
                    ("message", "Bad CONNECT"),
                    ("content-type", "text/plain"),
                    ("version", "1.0,1.1,1.2"),
                    ("content-length", "14"),
                ],
                b"Access refused",
            ),
        ),
    ]
}

#[test]
fn every_command_decodes_exactly() {
    let vectors = client_vectors();
    let mut seen: Vec<Command> = vectors.iter().map(|(_, _, f)| f.command).collect();
    seen.sort_by_key(|c| c.as_str());
    seen.dedup();
    assert_eq!(seen.len(), 15, "a command has no vector");
    for (name, bytes, expected) in vectors {
        for version in [Version::V1_1, Version::V1_2] {
            assert_eq!(frame_v(version, bytes), expected, "{name} in {version:?}");
        }
    }
}

#[test]
fn every_command_reencodes_to_the_same_bytes() {
    for (name, bytes, expected) in client_vectors() {
        assert_eq!(encoded(&expected, Version::V1_2), bytes, "{name}");
    }
}

#[test]
fn commands_are_case_sensitive_and_classified() {
    let all = [
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
        "CONNECTED",
        "MESSAGE",
        "RECEIPT",
        "ERROR",
    ];
    for name in all {
        let c = Command::parse(name.as_bytes()).expect(name);
        assert_eq!(c.as_str(), name);
        assert_eq!(Command::parse(name.to_lowercase().as_bytes()), None);
        assert_eq!(
            c.may_have_body(),
            matches!(name, "SEND" | "MESSAGE" | "ERROR"),
            "{name}"
        );
        assert_eq!(
            c.is_handshake(),
            matches!(name, "CONNECT" | "STOMP" | "CONNECTED"),
            "{name}"
        );
    }
    assert_eq!(Command::parse(b""), None);
    assert_eq!(Command::parse(b"SEND "), None);
}

#[test]
fn versions_negotiate() {
    assert_eq!(Version::negotiate(None), Some(Version::V1_0));
    assert_eq!(Version::negotiate(Some("1.1")), Some(Version::V1_1));
    assert_eq!(Version::negotiate(Some("1.2,1.1,1.0")), Some(Version::V1_2));
    assert_eq!(Version::negotiate(Some("1.0, 1.1")), Some(Version::V1_1));
    assert_eq!(Version::negotiate(Some("1.1,2.0")), Some(Version::V1_1));
    assert_eq!(Version::negotiate(Some("2.0")), None);
    assert_eq!(Version::negotiate(Some("")), None);
}

#[test]
fn crlf_frames() {
    let bytes = b"SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nhello\0\r\n";
    assert_eq!(
        items(Version::V1_2, bytes),
        vec![
            Received::Frame(f(
                Command::Send,
                &[("destination", "/queue/a"), ("content-type", "text/plain")],
                b"hello"
            )),
            Received::Heartbeat,
        ]
    );
    // Mixed LF and CRLF in one frame.
    assert_eq!(
        frame(b"SUBSCRIBE\r\nid:0\ndestination:/q\r\n\n\0"),
        f(
            Command::Subscribe,
            &[("id", "0"), ("destination", "/q")],
            b""
        )
    );
}

#[test]
fn heartbeats_between_frames() {
    let bytes = b"\n\r\nSEND\ndestination:/q\n\nx\0\n\nBEGIN\ntransaction:t\n\n\0\r\n";
    assert_eq!(
        items(Version::V1_2, bytes),
        vec![
            Received::Heartbeat,
            Received::Heartbeat,
            Received::Frame(f(Command::Send, &[("destination", "/q")], b"x")),
            Received::Heartbeat,
            Received::Heartbeat,
            Received::Frame(f(Command::Begin, &[("transaction", "t")], b"")),
            Received::Heartbeat,
        ]
    );
    // A lone CR is not yet a heart-beat.
    assert_eq!(decode_with(Version::V1_2, LIMITS, b"\r").unwrap(), vec![]);
}

#[test]
fn escapes_in_1_2() {
    let got = frame(b"SEND\ndestination:/q\nk\\cey:va\\nl\\\\ue\\r\na\\\\b\\n:\\c\\c\n\n\0");
    assert_eq!(
        got.headers,
        vec![
            ("destination".to_owned(), "/q".to_owned()),
            ("k:ey".to_owned(), "va\nl\\ue\r".to_owned()),
            ("a\\b\n".to_owned(), "::".to_owned()),
        ]
    );
    // An unescaped ':' in a value is taken literally (only the first one splits).
    assert_eq!(
        frame(b"SEND\nreply-to:http://h:1/x\n\n\0").header("reply-to"),
        Some("http://h:1/x")
    );
    // Values are never trimmed; empty names and values are kept.
    assert_eq!(
        frame(b"SEND\n k : v \nempty:\n:nameless\n\n\0").headers,
        vec![
            (" k ".to_owned(), " v ".to_owned()),
            ("empty".to_owned(), String::new()),
            (String::new(), "nameless".to_owned()),
        ]
    );
}

#[test]
fn escapes_in_1_1() {
    let got = frame_v(Version::V1_1, b"SEND\nk\\cey:va\\nl\\\\ue\n\n\0");
    assert_eq!(got.header("k:ey"), Some("va\nl\\ue"));
    assert!(matches!(
        error_with(Version::V1_1, LIMITS, b"SEND\nk:a\\rb\n\n\0"),
        StompError::BadEscape(_)
    ));
    // A raw CR inside a value is data in 1.1.
    let got = frame_v(Version::V1_1, b"SEND\nk:a\rb\n\n\0");
    assert_eq!(got.header("k"), Some("a\rb"));
}

#[test]
fn no_escapes_in_1_0() {
    let got = frame_v(Version::V1_0, b"SEND\nk\\cey:va\\nl\\t\\r\\\n\n\0");
    assert_eq!(got.header("k\\cey"), Some("va\\nl\\t\\r\\"));
}

#[test]
fn no_escapes_in_handshake_frames() {
    for version in Version::ALL {
        let got = frame_v(
            version,
            b"CONNECT\naccept-version:1.2\nhost:vh\\cost\nlogin:a\\tb\npasscode:x\\\n\n\0",
        );
        assert_eq!(got.header("host"), Some("vh\\cost"), "{version:?}");
        assert_eq!(got.header("login"), Some("a\\tb"), "{version:?}");
        assert_eq!(got.header("passcode"), Some("x\\"), "{version:?}");
        let got = frame_v(version, b"STOMP\nlogin:a\\nb\n\n\0");
        assert_eq!(got.header("login"), Some("a\\nb"), "{version:?}");
        let got = frame_v(version, b"CONNECTED\nsession:s\\c1\n\n\0");
        assert_eq!(got.header("session"), Some("s\\c1"), "{version:?}");
    }
}

#[test]
fn set_version_changes_later_frames() {
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"SEND\nk:a\\rb\n\n\0"[..]);
    let Some(Received::Frame(got)) = c.decode(&mut buf).unwrap() else {
        panic!("a frame")
    };
    assert_eq!(got.header("k"), Some("a\rb"), "1.2 is the default");
    c.set_version(Version::V1_0);
    buf.extend_from_slice(b"SEND\nk:a\\rb\n\n\0");
    let Some(Received::Frame(got)) = c.decode(&mut buf).unwrap() else {
        panic!("a frame")
    };
    assert_eq!(got.header("k"), Some("a\\rb"));
    c.set_version(Version::V1_1);
    buf.extend_from_slice(b"SEND\nk:a\\rb\n\n\0");
    assert!(matches!(c.decode(&mut buf), Err(StompError::BadEscape(_))));
}

#[test]
fn repeated_headers_first_wins() {
    let got = frame(b"SEND\ndestination:/q/1\nfoo:1\ndestination:/q/2\nfoo:2\n\n\0");
    assert_eq!(got.header("destination"), Some("/q/1"));
    assert_eq!(got.header("foo"), Some("1"));
    assert_eq!(got.headers.len(), 4, "repeats are kept in order");
    assert_eq!(got.headers[3], ("foo".to_owned(), "2".to_owned()));
    // The first content-length decides; later ones are not even parsed.
    let got = frame(b"SEND\ncontent-length:3\ncontent-length:5\ncontent-length:abc\n\na\0c\0");
    assert_eq!(got.body, Bytes::from_static(b"a\0c"));
}

#[test]
fn binary_body_with_nuls() {
    let body: &[u8] = b"\0\x01\xff\0\n\r\n\0";
    let mut bytes =
        b"SEND\ndestination:/q\ncontent-type:application/octet-stream\ncontent-length:8\n\n"
            .to_vec();
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(b"\0\nSEND\ndestination:/q\n\nnext\0");
    let got = items(Version::V1_2, &bytes);
    assert_eq!(got.len(), 3);
    let Received::Frame(first) = &got[0] else {
        panic!("a frame")
    };
    assert_eq!(first.body.as_ref(), body);
    assert_eq!(got[1], Received::Heartbeat);
    assert!(matches!(&got[2], Received::Frame(f) if f.body.as_ref() == b"next"));
    // Body exactly at the limit, both ways.
    let big = vec![b'z'; LIMITS.max_body];
    let mut bytes = b"SEND\ncontent-length:4096\n\n".to_vec();
    bytes.extend_from_slice(&big);
    bytes.push(0);
    assert_eq!(frame(&bytes).body.len(), LIMITS.max_body);
    let mut bytes = b"SEND\n\n".to_vec();
    bytes.extend_from_slice(&big);
    bytes.push(0);
    assert_eq!(frame(&bytes).body.len(), LIMITS.max_body);
}

#[test]
fn empty_bodies() {
    for bytes in [
        &b"SEND\ndestination:/q\n\n\0"[..],
        b"SEND\ndestination:/q\ncontent-length:0\n\n\0",
        b"SUBSCRIBE\nid:1\ndestination:/q\ncontent-length:0\n\n\0",
        b"DISCONNECT\n\n\0",
    ] {
        assert!(frame(bytes).body.is_empty());
    }
    let got = frame(b"MESSAGE\n\n\0");
    assert_eq!(got, Frame::new(Command::Message));
}

#[test]
fn partial_frames_wait() {
    let whole = b"SEND\ndestination:/q\ncontent-length:3\n\nabc\0";
    for end in 0..whole.len() {
        assert_eq!(
            decode_with(Version::V1_2, LIMITS, &whole[..end]).unwrap(),
            vec![],
            "prefix of {end} bytes"
        );
    }
}

// ----------------------------------------------------------------------------------------
// Encoding the server's frames.

#[test]
fn encode_connected_unescaped() {
    let connected = Frame::new(Command::Connected)
        .with("version", "1.2")
        .with("heart-beat", "10000,10000")
        .with("server", "dwbroker/0.1.0")
        .with("session", "s:1\\x");
    let bytes = b"CONNECTED\nversion:1.2\nheart-beat:10000,10000\nserver:dwbroker/0.1.0\nsession:s:1\\x\n\n\0";
    for version in Version::ALL {
        assert_eq!(encoded(&connected, version), bytes, "{version:?}");
    }
    // Line breaks cannot be written unescaped: they become spaces.
    let odd = Frame::new(Command::Connected).with("server", "a\nb\rc");
    assert_eq!(
        encoded(&odd, Version::V1_2),
        b"CONNECTED\nserver:a b c\n\n\0"
    );
}

#[test]
fn encode_message_with_frame_writer() {
    let write = |version: Version| {
        let mut out = BytesMut::new();
        let mut w = FrameWriter::start(&mut out, Command::Message, version);
        w.header("destination", "/queue/a")
            .header("message-id", "m-1")
            .header("subscription", "0")
            .header("ack", "m-1")
            .header("k:ey", "v\nal\r\\")
            .header("content-length", "3");
        w.finish(b"a\0b");
        out.to_vec()
    };
    assert_eq!(
        write(Version::V1_2),
        b"MESSAGE\ndestination:/queue/a\nmessage-id:m-1\nsubscription:0\nack:m-1\nk\\cey:v\\nal\\r\\\\\ncontent-length:3\n\na\0b\0"
    );
    assert_eq!(
        write(Version::V1_1),
        b"MESSAGE\ndestination:/queue/a\nmessage-id:m-1\nsubscription:0\nack:m-1\nk\\cey:v\\nal\r\\\\\ncontent-length:3\n\na\0b\0"
    );
    assert_eq!(
        write(Version::V1_0),
        b"MESSAGE\ndestination:/queue/a\nmessage-id:m-1\nsubscription:0\nack:m-1\nk:ey:v al \\\ncontent-length:3\n\na\0b\0"
    );
    // Frame::encode writes the same bytes.
    let frame = f(
        Command::Message,
        &[
            ("destination", "/queue/a"),
            ("message-id", "m-1"),
            ("subscription", "0"),
            ("ack", "m-1"),
            ("k:ey", "v\nal\r\\"),
            ("content-length", "3"),
        ],
        b"a\0b",
    );
    for version in Version::ALL {
        assert_eq!(encoded(&frame, version), write(version), "{version:?}");
    }
    // And 1.2 decodes it back.
    assert_eq!(frame_v(Version::V1_2, &write(Version::V1_2)), frame);
}

#[test]
fn encode_receipt_error_and_heartbeat() {
    let receipt = Frame::new(Command::Receipt).with("receipt-id", "77");
    assert_eq!(
        encoded(&receipt, Version::V1_2),
        b"RECEIPT\nreceipt-id:77\n\n\0"
    );
    let body = "'SEND' is not a STOMP command";
    let mut out = BytesMut::new();
    let mut w = FrameWriter::start(&mut out, Command::Error, Version::V1_2);
    w.header("message", "Malformed frame")
        .header("receipt-id", "r:1")
        .header("content-type", "text/plain")
        .header("content-length", &body.len().to_string());
    w.finish(body.as_bytes());
    assert_eq!(
        out.as_ref(),
        &b"ERROR\nmessage:Malformed frame\nreceipt-id:r\\c1\ncontent-type:text/plain\ncontent-length:29\n\n'SEND' is not a STOMP command\0"[..]
    );
    let mut out = BytesMut::new();
    encode_heartbeat(&mut out);
    encode_heartbeat(&mut out);
    assert_eq!(out.as_ref(), b"\n\n");
}

// ----------------------------------------------------------------------------------------
// Errors.

#[test]
fn unknown_commands() {
    for (bytes, name) in [
        (&b"FOO\n\n\0"[..], "FOO"),
        (b"send\ndestination:/q\n\nx\0", "send"),
        (b"Connect\n\n\0", "Connect"),
        (b"SEND \n\n\0", "SEND "),
        (b"\x01\n\n", "\x01"),
        (b" \n\n", " "),
    ] {
        match error(bytes) {
            StompError::UnknownCommand(got) => assert_eq!(got, name),
            other => panic!("{bytes:?}: {other:?}"),
        }
    }
    // A first byte that starts no command (not an upper-case letter) is refused at once,
    // before any line end.
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"\x16\x03\x01\x02\x00"[..]);
    assert!(matches!(
        c.decode(&mut buf),
        Err(StompError::UnknownCommand(_))
    ));
    // Otherwise reported at the end of its headers (so that its receipt is known).
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"FOO\nreceipt:r\n"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    // After a heart-beat, still an unknown command, and the heart-beat came first.
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"\nsend\n\n"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), Some(Received::Heartbeat));
    assert!(matches!(
        c.decode(&mut buf),
        Err(StompError::UnknownCommand(_))
    ));
}

#[test]
fn header_line_without_colon() {
    for bytes in [
        &b"SEND\ndestination\n\n\0"[..],
        b"SEND\ndestination:/q\nno-colon\n\nbody\0",
        b"CONNECT\naccept-version 1.2\n\n\0",
    ] {
        assert!(
            matches!(error(bytes), StompError::Malformed(_)),
            "{bytes:?}"
        );
    }
}

#[test]
fn undefined_escapes() {
    for (version, bytes) in [
        (Version::V1_2, &b"SEND\nk:a\\tb\n\n\0"[..]),
        (Version::V1_1, b"SEND\nk:a\\tb\n\n\0"),
        (Version::V1_2, b"SEND\nk\\t:v\n\n\0"),
        (Version::V1_1, b"SEND\nk:a\\r\n\n\0"),
        (Version::V1_2, b"SEND\nk:ab\\\n\n\0"),
        (Version::V1_1, b"SEND\nk\\:v\n\n\0"),
        (Version::V1_2, b"SUBSCRIBE\nid:\\x41\n\n\0"),
        (Version::V1_2, b"ACK\nid:\\\xc3\xa9\n\n\0"),
    ] {
        let err = error_with(version, LIMITS, bytes);
        assert!(
            matches!(err, StompError::BadEscape(_)),
            "{version:?} {bytes:?}: {err:?}"
        );
        assert_eq!(err.summary(), "Invalid header escape");
    }
    // The same bytes are fine where nothing is escaped.
    frame_v(Version::V1_0, b"SEND\nk:a\\tb\n\n\0");
    frame_v(Version::V1_2, b"CONNECT\nk:a\\tb\n\n\0");
}

fn limits(max_header_line: usize, max_headers: usize, max_body: usize) -> StompLimits {
    StompLimits {
        max_header_line,
        max_headers,
        max_body,
    }
}

#[test]
fn header_line_too_long_complete() {
    let small = limits(16, 8, 64);
    // 16 bytes is fine, with LF or CRLF.
    let ok = b"SEND\nkkkkkkkkkkkkk:vv\n\n\0";
    assert_eq!(decode_with(Version::V1_2, small, ok).unwrap().len(), 1);
    let ok = b"SEND\nkkkkkkkkkkkkk:vv\r\n\r\n\0";
    assert_eq!(decode_with(Version::V1_2, small, ok).unwrap().len(), 1);
    for bytes in [
        &b"SEND\nkkkkkkkkkkkkk:vvv\n\n\0"[..],
        b"SEND\nkkkkkkkkkkkkk:vvv\r\n\r\n\0",
        b"UNSUBSCRIBE_UNSUBSCRIBE\n\n\0",
    ] {
        let err = error_with(Version::V1_2, small, bytes);
        assert!(
            matches!(err, StompError::HeaderLineTooLong { max: 16 }),
            "{bytes:?}: {err:?}"
        );
        assert_eq!(err.summary(), "Frame too large");
    }
}

#[test]
fn header_line_too_long_before_its_end_arrives() {
    let small = limits(16, 8, 64);
    for prefix in [&b""[..], b"SEND\n", b"SEND\ndestination:/q\n"] {
        let mut c = codec(Version::V1_2, small);
        let mut buf = BytesMut::from(prefix);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        // 16 bytes and a possible CR wait for the LF; one more byte is over the limit.
        // (Upper case: a command line starting with anything else is refused at once.)
        for _ in 0..17 {
            buf.extend_from_slice(b"X");
            assert_eq!(c.decode(&mut buf).unwrap(), None, "{prefix:?}");
        }
        buf.extend_from_slice(b"X");
        assert!(
            matches!(
                c.decode(&mut buf),
                Err(StompError::HeaderLineTooLong { max: 16 })
            ),
            "{prefix:?}"
        );
    }
    // A megabyte without LF, all at once, fails without waiting.
    let mut bytes = b"SEND\n".to_vec();
    bytes.resize(1 << 20, b'a');
    assert!(matches!(
        error_with(Version::V1_2, small, &bytes),
        StompError::HeaderLineTooLong { .. }
    ));
}

#[test]
fn too_many_headers() {
    let small = limits(64, 3, 64);
    let ok = b"SEND\na:1\nb:2\nc:3\n\n\0";
    assert_eq!(decode_with(Version::V1_2, small, ok).unwrap().len(), 1);
    // The fourth header line fails as soon as it is complete.
    let err = error_with(Version::V1_2, small, b"SEND\na:1\nb:2\nc:3\nd:4\n");
    assert!(
        matches!(err, StompError::TooManyHeaders { max: 3 }),
        "{err:?}"
    );
    assert_eq!(err.summary(), "Frame too large");
    // Repeats count.
    let err = error_with(Version::V1_2, small, b"SEND\na:1\na:1\na:1\na:1\n\n\0");
    assert!(matches!(err, StompError::TooManyHeaders { .. }), "{err:?}");
}

#[test]
fn content_length_over_max_body_with_only_the_headers() {
    // Refused at the end of the headers, before any of the body is buffered.
    let err = error(b"SEND\ndestination:/q\ncontent-length:4097\n\n");
    assert!(
        matches!(
            err,
            StompError::BodyTooLarge {
                size: 4097,
                max: 4096
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.summary(), "Frame too large");
    let err = error(b"SEND\ncontent-length:18446744073709551615\n\n");
    assert!(matches!(err, StompError::BodyTooLarge { .. }), "{err:?}");
    // Exactly the limit waits for the body.
    assert_eq!(
        decode_with(Version::V1_2, LIMITS, b"SEND\ncontent-length:4096\n\n").unwrap(),
        vec![]
    );
}

#[test]
fn nul_terminated_body_over_max_body() {
    let small = limits(64, 8, 16);
    let mut c = codec(Version::V1_2, small);
    let mut buf = BytesMut::from(&b"SEND\ndestination:/q\n\n"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    for _ in 0..16 {
        buf.extend_from_slice(b"b");
        assert_eq!(c.decode(&mut buf).unwrap(), None);
    }
    buf.extend_from_slice(b"b");
    let err = c.decode(&mut buf).unwrap_err();
    assert!(
        matches!(err, StompError::BodyTooLarge { size: 17, max: 16 }),
        "{err:?}"
    );
    // Refused all the same when the NUL arrives in the same read.
    let mut bytes = b"SEND\ndestination:/q\n\n".to_vec();
    bytes.extend_from_slice(&[b'b'; 17]);
    bytes.push(0);
    let err = error_with(Version::V1_2, small, &bytes);
    assert!(
        matches!(err, StompError::BodyTooLarge { max: 16, .. }),
        "{err:?}"
    );
    // 16 bytes and the NUL are fine.
    let mut bytes = b"SEND\ndestination:/q\n\n".to_vec();
    bytes.extend_from_slice(&[b'b'; 16]);
    bytes.push(0);
    assert_eq!(decode_with(Version::V1_2, small, &bytes).unwrap().len(), 1);
}

#[test]
fn bad_content_length() {
    for (value, bytes) in [
        ("abc", &b"SEND\ncontent-length:abc\n\n\0"[..]),
        ("-1", b"SEND\ncontent-length:-1\n\n\0"),
        ("", b"SEND\ncontent-length:\n\n\0"),
        (" 5", b"SEND\ncontent-length: 5\n\nhello\0"),
        ("5 ", b"SEND\ncontent-length:5 \n\nhello\0"),
        ("0x10", b"SEND\ncontent-length:0x10\n\n\0"),
        ("+5", b"SEND\ncontent-length:+5\n\nhello\0"),
        (
            "99999999999999999999999",
            b"SEND\ncontent-length:99999999999999999999999\n\n\0",
        ),
    ] {
        match error(bytes) {
            StompError::BadContentLength(got) => assert_eq!(got, value),
            other => panic!("{value:?}: {other:?}"),
        }
    }
    assert_eq!(
        error(b"SEND\ncontent-length:abc\n\n\0").summary(),
        "Malformed frame"
    );
}

#[test]
fn missing_nul_after_content_length_body() {
    for bytes in [
        &b"SEND\ncontent-length:3\n\nabcd\0"[..],
        b"SEND\ncontent-length:3\n\nabc\n\0",
        b"SEND\ncontent-length:0\n\nx\0",
    ] {
        let err = error(bytes);
        assert!(
            matches!(err, StompError::Malformed(_)),
            "{bytes:?}: {err:?}"
        );
    }
}

#[test]
fn body_on_a_frame_without_body() {
    for (bytes, name) in [
        (&b"SUBSCRIBE\nid:0\ndestination:/q\n\nx\0"[..], "SUBSCRIBE"),
        (b"SUBSCRIBE\nid:0\ncontent-length:1\n\nx\0", "SUBSCRIBE"),
        (b"CONNECT\naccept-version:1.2\n\nhi\0", "CONNECT"),
        (b"ACK\nid:1\n\n\nx\0", "ACK"),
        (b"RECEIPT\nreceipt-id:1\n\nx\0", "RECEIPT"),
    ] {
        match error(bytes) {
            StompError::UnexpectedBody(got) => assert_eq!(got, name),
            other => panic!("{bytes:?}: {other:?}"),
        }
    }
}

/// Line ends before the NUL of a frame without a body are not a body (RabbitMQ
/// accepts a CONNECT written with a blank line too many).
#[test]
fn line_ends_before_the_nul_of_a_bodiless_frame_are_accepted() {
    for bytes in [
        &b"CONNECT\nlogin:guest\n\n\n\0"[..],
        b"ACK\nid:1\n\n\n\0",
        b"DISCONNECT\n\n\r\n\0",
    ] {
        let f = frame(bytes);
        assert!(f.body.is_empty(), "{bytes:?}");
    }
}

/// A NUL between frames (a stray frame end) is skipped.
#[test]
fn nuls_between_frames_are_skipped() {
    let got = items(
        Version::V1_2,
        b"\n\0SUBSCRIBE\nid:0\ndestination:/q\n\n\0\n\0\0SEND\ndestination:/q\n\nx\0",
    );
    let commands: Vec<_> = got
        .iter()
        .filter_map(|r| match r {
            Received::Frame(f) => Some(f.command),
            Received::Heartbeat => None,
        })
        .collect();
    assert_eq!(commands, [Command::Subscribe, Command::Send]);
}

#[test]
fn header_not_utf8() {
    for version in Version::ALL {
        for bytes in [
            &b"SEND\ndestination:\xff\n\n\0"[..],
            b"SEND\n\xc3(:v\n\n\0",
            b"CONNECT\nlogin:\xed\xa0\x80\n\n\0",
            b"SEND\nk:a\\\\\xc3\n\n\0",
        ] {
            let err = error_with(version, LIMITS, bytes);
            assert!(
                matches!(err, StompError::Malformed(_)),
                "{version:?} {bytes:?}: {err:?}"
            );
        }
    }
    // UTF-8 is fine anywhere.
    assert_eq!(
        frame("SEND\ndestination:/queue/café\nclé:値\n\n\0".as_bytes()).header("clé"),
        Some("値")
    );
}

#[test]
fn failed_receipt() {
    // Body too large by content-length: the receipt came first.
    let mut c = StompCodec::new(LIMITS);
    let mut buf =
        BytesMut::from(&b"SEND\nreceipt:r-9\ndestination:/q\ncontent-length:5000\n\n"[..]);
    assert!(matches!(
        c.decode(&mut buf),
        Err(StompError::BodyTooLarge { .. })
    ));
    assert_eq!(c.failed_receipt(), Some("r-9"));
    // Body too large without content-length.
    let mut c = StompCodec::new(limits(64, 8, 4));
    let mut buf = BytesMut::from(&b"SEND\nreceipt:r-10\nreceipt:r-11\n\nabcde"[..]);
    assert!(matches!(
        c.decode(&mut buf),
        Err(StompError::BodyTooLarge { .. })
    ));
    assert_eq!(c.failed_receipt(), Some("r-10"));
    // Escaped receipt.
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"SUBSCRIBE\nreceipt:a\\cb\n\nbody\0"[..]);
    assert!(matches!(
        c.decode(&mut buf),
        Err(StompError::UnexpectedBody(_))
    ));
    assert_eq!(c.failed_receipt(), Some("a:b"));
    // A body over the limit and an unknown command are reported at the end of the
    // headers: a receipt after them is still found.
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:5000\nreceipt:r\n\n"[..]);
    assert!(c.decode(&mut buf).is_err());
    assert_eq!(c.failed_receipt(), Some("r"));
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"BOGUS\nreceipt:r\n\n"[..]);
    assert!(matches!(
        c.decode(&mut buf),
        Err(StompError::UnknownCommand(_))
    ));
    assert_eq!(c.failed_receipt(), Some("r"));
    // Not read yet: a malformed header line comes before it.
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"SEND\nbad\nreceipt:r\n\n"[..]);
    assert!(c.decode(&mut buf).is_err());
    assert_eq!(c.failed_receipt(), None);
    // After a good frame there is nothing to report.
    let mut c = StompCodec::new(LIMITS);
    let mut buf = BytesMut::from(&b"DISCONNECT\nreceipt:77\n\n\0"[..]);
    assert!(c.decode(&mut buf).unwrap().is_some());
    assert_eq!(c.failed_receipt(), None);
}

#[test]
fn error_texts() {
    let e = StompError::UnknownCommand("send".into());
    assert_eq!(e.to_string(), "Could not interpret command \"send\"");
    assert_eq!(e.summary(), "Bad command");
    let e = StompError::BodyTooLarge { size: 10, max: 4 };
    assert_eq!(
        e.to_string(),
        "a body of 10 bytes exceeds the maximum message size of 4 bytes"
    );
    assert_eq!(
        StompError::UnexpectedBody("ACK").to_string(),
        "ACK frames cannot have a body"
    );
}

/// The seeds in `fuzz/seeds/decode_stomp/` are these vectors: byte 0 is the split offset,
/// byte 1 the limits mode (0: the fuzz target's small limits), then the stream. With
/// `DWBROKER_WRITE_SEEDS=1` the test rewrites them instead of comparing.
#[test]
fn fuzz_seeds_are_the_vectors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_stomp");
    let rewrite = std::env::var_os("DWBROKER_WRITE_SEEDS").is_some();
    let write = |name: &str, stream: &[u8]| {
        let mut seed = vec![(stream.len() / 2).min(255) as u8, 0];
        seed.extend_from_slice(stream);
        if rewrite {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), seed).unwrap();
        } else {
            let on_disk = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(on_disk, seed, "fuzz seed {name} differs from the vectors");
        }
    };
    let vectors = client_vectors();
    let find = |name: &str| vectors.iter().find(|v| v.0 == name).unwrap().1;
    write(
        "stomp_py_session",
        &[
            find("stomp_py_stomp"),
            b"\n",
            find("subscribe"),
            find("stomp_py_send"),
            b"\n",
            find("ack_12"),
            find("disconnect"),
        ]
        .concat(),
    );
    write(
        "stompjs_session",
        &[
            find("stompjs_connect"),
            b"\n",
            find("stompjs_send"),
            b"\n",
            find("stompjs_send_no_length"),
            b"\n\n",
        ]
        .concat(),
    );
    write(
        "transaction",
        &[
            find("begin"),
            find("stomp_py_send"),
            find("nack_11"),
            find("commit"),
            find("abort"),
            find("unsubscribe"),
        ]
        .concat(),
    );
    write(
        "server_frames",
        &[
            find("connected"),
            find("message"),
            find("receipt"),
            find("error"),
        ]
        .concat(),
    );
    write(
        "crlf",
        b"SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nhello\0\r\n\r\n",
    );
    write(
        "escapes",
        b"SEND\ndestination:/q\nk\\cey:va\\nl\\\\ue\\r\na\\\\b\\n:\\c\\c\n\n\0",
    );
    write(
        "binary_body",
        b"SEND\ndestination:/q\ncontent-length:8\n\n\0\x01\xff\0\n\r\n\0\0\n",
    );
    write(
        "repeated_headers",
        b"SEND\ndestination:/q/1\nfoo:1\ndestination:/q/2\ncontent-length:3\ncontent-length:5\n\na\0c\0",
    );
    write(
        "connect_unescaped",
        b"CONNECT\naccept-version:1.2\nhost:vh\\cost\nlogin:a\\tb\npasscode:x\\\n\n\0",
    );
    write("bad_escape", b"SEND\nk:a\\tb\n\n\0");
    write(
        "receipt_body_too_large",
        b"SEND\nreceipt:r-9\ndestination:/q\ncontent-length:5000\n\n",
    );
    write("heartbeats", b"\n\r\n\n\r\nDISCONNECT\nreceipt:1\n\n\0\n");
    write(
        "body_on_subscribe",
        b"SUBSCRIBE\nid:0\ndestination:/q\nack:client\n\nx\0",
    );
}
