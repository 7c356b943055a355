//! Multi-frame STOMP streams decoded whole, split in two at every offset, split in three,
//! and fed one byte at a time: all must yield the same items and end with the same kind of
//! error (the decoder keeps what it parsed between calls, so this is its main hazard).
//! And feeding a long line or body one byte at a time stays linear: nothing is rescanned.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use dwbroker_codecs::stomp::*;
use tokio_util::codec::Decoder;

const LIMITS: StompLimits = StompLimits {
    max_header_line: 64,
    max_headers: 6,
    max_body: 256,
};

#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Received>,
    /// The error's variant (its fields may depend on how much had arrived).
    error: Option<String>,
    /// The receipt reported after the error.
    receipt: Option<String>,
    /// Bytes left in the buffer when the stream ended without error.
    left: usize,
}

fn feed(version: Version, limits: StompLimits, bytes: &[u8], cuts: &[usize]) -> Outcome {
    let mut codec = StompCodec::new(limits);
    codec.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut fed = 0;
    for end in cuts.iter().copied().chain(std::iter::once(bytes.len())) {
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    let text = format!("{e:?}");
                    let kind = text[..text.find([' ', '(', '{']).unwrap_or(text.len())].to_owned();
                    return Outcome {
                        items,
                        error: Some(kind),
                        receipt: codec.failed_receipt().map(str::to_owned),
                        left: 0,
                    };
                }
            }
        }
    }
    Outcome {
        items,
        error: None,
        receipt: None,
        left: buf.len(),
    }
}

struct Case {
    name: &'static str,
    version: Version,
    bytes: Vec<u8>,
    frames: usize,
    heartbeats: usize,
    error: Option<&'static str>,
}

fn case(
    name: &'static str,
    version: Version,
    parts: &[&[u8]],
    frames: usize,
    heartbeats: usize,
    error: Option<&'static str>,
) -> Case {
    Case {
        name,
        version,
        bytes: parts.concat(),
        frames,
        heartbeats,
        error,
    }
}

fn cases() -> Vec<Case> {
    let mut binary = b"SEND\ndestination:/queue/bin\ncontent-length:40\n\n".to_vec();
    binary.extend((0..40u8).map(|i| if i % 7 == 0 { 0 } else { i.wrapping_mul(37) }));
    binary.push(0);
    let long_body = [&b"SEND\ndestination:/q\n\n"[..], &[b'x'; 256], b"\0"].concat();
    let long_line = [&b"SEND\nk:"[..], &[b'v'; 62], b"\n\n\0"].concat();
    vec![
        case(
            "stomp.py 1.1 session",
            Version::V1_1,
            &[
                b"STOMP\naccept-version:1.1\nhost:127.0.0.1\nheart-beat:0,0\n\n\0",
                b"SUBSCRIBE\ndestination:/queue/test\nid:1\nack:client\n\n\0",
                b"\n",
                b"SEND\ncontent-length:5\ndestination:/queue/test\n\nhello\0",
                &binary,
                b"\n",
                b"ACK\nmessage-id:m-1\nsubscription:1\n\n\0",
                b"DISCONNECT\nreceipt:77\n\n\0",
            ],
            6,
            2,
            None,
        ),
        case(
            "stompjs 1.2 session",
            Version::V1_2,
            &[
                b"CONNECT\naccept-version:1.2,1.1,1.0\nheart-beat:10000,10000\n\n\0",
                b"\n\n",
                b"SEND\ndestination:/topic/chat\ncontent-length:11\n\nhello world\0",
                b"\n",
                b"SEND\ndestination:/queue/a\n\n{\"a\":1}\0",
                b"\n",
                b"BEGIN\ntransaction:tx\n\n\0COMMIT\ntransaction:tx\n\n\0",
            ],
            5,
            4,
            None,
        ),
        case(
            "CRLF and escapes 1.2",
            Version::V1_2,
            &[
                b"\r\n",
                b"SEND\r\ndestination:/q\r\nk\\cey:va\\nl\\\\ue\\r\r\n\r\nbody\0\r\n",
                b"NACK\r\nid:\\c\\c\r\n\r\n\0",
                b"SEND\ncontent-length:3\ncontent-length:1\n\n\r\n\0\0\r\n\r\n",
            ],
            3,
            4,
            None,
        ),
        case(
            "1.0 verbatim",
            Version::V1_0,
            &[
                b"CONNECT\nlogin:a\\tb\n\n\0",
                b"SEND\nk\\cey:v\\q\\\n\nbody\0",
                b"\n",
                &long_line,
                &long_body,
            ],
            4,
            1,
            None,
        ),
        case(
            "server frames",
            Version::V1_2,
            &[
                b"CONNECTED\nversion:1.2\nsession:s:1\n\n\0",
                b"MESSAGE\nsubscription:1\nmessage-id:7\ndestination:/q\ncontent-length:3\n\na\0b\0",
                b"RECEIPT\nreceipt-id:77\n\n\0",
                b"ERROR\nmessage:bad\n\nsee body\0\n",
            ],
            4,
            1,
            None,
        ),
        case(
            "ends in a partial frame",
            Version::V1_2,
            &[b"BEGIN\ntransaction:t\n\n\0", b"SEND\ndestination:/q\ncontent-length:10\n\nabc"],
            1,
            0,
            None,
        ),
        case(
            "header line too long",
            Version::V1_2,
            &[b"BEGIN\ntransaction:t\n\n\0", b"SEND\nreceipt:r1\nk:", &[b'v'; 63], b"\n\n\0"],
            1,
            0,
            Some("HeaderLineTooLong"),
        ),
        case(
            "command line too long",
            Version::V1_2,
            &[b"\n", &[b'S'; 100], b"\n\n\0"],
            0,
            1,
            Some("HeaderLineTooLong"),
        ),
        case(
            "too many headers",
            Version::V1_2,
            &[b"SEND\nreceipt:r2\na:1\nb:2\nc:3\nd:4\ne:5\nf:6\n\n\0"],
            0,
            0,
            Some("TooManyHeaders"),
        ),
        case(
            "content-length over max_body",
            Version::V1_2,
            &[b"\n", b"SEND\nreceipt:r3\ncontent-length:257\n\n", &[b'x'; 257], b"\0"],
            0,
            1,
            Some("BodyTooLarge"),
        ),
        case(
            "NUL-terminated body over max_body",
            Version::V1_2,
            &[b"SEND\nreceipt:r4\n\n", &[b'x'; 300], b"\0SEND\n\n\0"],
            0,
            0,
            Some("BodyTooLarge"),
        ),
        case(
            "body on SUBSCRIBE",
            Version::V1_2,
            &[b"SUBSCRIBE\nid:0\ndestination:/q\nreceipt:r5\n\nx\0"],
            0,
            0,
            Some("UnexpectedBody"),
        ),
        case(
            "long body on SUBSCRIBE",
            Version::V1_2,
            &[b"SUBSCRIBE\nid:0\n\n", &[b'x'; 300], b"\0"],
            0,
            0,
            Some("BodyTooLarge"),
        ),
        case(
            "bad escape in 1.1",
            Version::V1_1,
            &[b"SEND\ndestination:/q\n\n\0", b"SEND\nreceipt:r6\nk:a\\rb\n\n\0"],
            1,
            0,
            Some("BadEscape"),
        ),
        case(
            "bad content-length",
            Version::V1_2,
            &[b"SEND\ncontent-length:-1\n\n\0"],
            0,
            0,
            Some("BadContentLength"),
        ),
        case(
            "missing NUL after content-length body",
            Version::V1_2,
            &[b"SEND\ncontent-length:2\n\nabc\0"],
            0,
            0,
            Some("Malformed"),
        ),
        case(
            "unknown command after frames",
            Version::V1_2,
            &[b"ABORT\ntransaction:t\n\n\0\n", b"send\n\n\0"],
            1,
            1,
            Some("UnknownCommand"),
        ),
        case(
            "invalid UTF-8 header",
            Version::V1_2,
            &[b"SEND\ndestination:\xc3\x28\n\n\0"],
            0,
            0,
            Some("Malformed"),
        ),
    ]
}

#[test]
fn every_split_yields_the_same_items() {
    for c in cases() {
        let whole = feed(c.version, LIMITS, &c.bytes, &[]);
        let frames = whole
            .items
            .iter()
            .filter(|i| matches!(i, Received::Frame(_)))
            .count();
        assert_eq!(frames, c.frames, "{}: frames {:?}", c.name, whole);
        assert_eq!(
            whole.items.len() - frames,
            c.heartbeats,
            "{}: heart-beats",
            c.name
        );
        assert_eq!(whole.error.as_deref(), c.error, "{}", c.name);
        if c.error.is_none() && c.name != "ends in a partial frame" {
            assert_eq!(whole.left, 0, "{}: bytes left", c.name);
        }
        for cut in 0..=c.bytes.len() {
            assert_eq!(
                feed(c.version, LIMITS, &c.bytes, &[cut]),
                whole,
                "{}: split at {cut}",
                c.name
            );
        }
        // Three chunks, for a sample of cut pairs.
        let n = c.bytes.len();
        for a in (0..=n).step_by(7) {
            for b in (a..=n).step_by(11) {
                assert_eq!(
                    feed(c.version, LIMITS, &c.bytes, &[a, b]),
                    whole,
                    "{}: split at {a} and {b}",
                    c.name
                );
            }
        }
        let every: Vec<usize> = (1..n).collect();
        assert_eq!(
            feed(c.version, LIMITS, &c.bytes, &every),
            whole,
            "{}: byte at a time",
            c.name
        );
    }
}

#[test]
fn failed_receipts_do_not_depend_on_splits() {
    let expected = [
        ("header line too long", Some("r1")),
        ("too many headers", Some("r2")),
        ("content-length over max_body", Some("r3")),
        ("NUL-terminated body over max_body", Some("r4")),
        ("body on SUBSCRIBE", Some("r5")),
        ("bad escape in 1.1", Some("r6")),
        ("bad content-length", None),
    ];
    for (name, receipt) in expected {
        let c = cases().into_iter().find(|c| c.name == name).unwrap();
        let every: Vec<usize> = (1..c.bytes.len()).collect();
        for cuts in [&[][..], &every] {
            let got = feed(c.version, LIMITS, &c.bytes, cuts);
            assert_eq!(got.receipt.as_deref(), receipt, "{name}");
        }
    }
}

/// Each byte scanned once: feeding a 256 KiB header line and a 1 MiB NUL-terminated body
/// one byte at a time takes a fraction of a second; rescanning what was buffered would
/// make it quadratic (about 10^11 byte comparisons, minutes even in release).
#[test]
fn one_byte_at_a_time_is_linear() {
    let limits = StompLimits {
        max_header_line: 1 << 20,
        max_headers: 8,
        max_body: 2 << 20,
    };
    let mut bytes = b"SEND\nk:".to_vec();
    bytes.resize(bytes.len() + (256 << 10), b'v');
    bytes.extend_from_slice(b"\n\n");
    bytes.resize(bytes.len() + (1 << 20), b'b');
    bytes.push(0);
    let mut codec = StompCodec::new(limits);
    let mut buf = BytesMut::with_capacity(bytes.len());
    let start = Instant::now();
    let mut got = None;
    for &b in &bytes {
        buf.extend_from_slice(&[b]);
        if let Some(item) = codec.decode(&mut buf).unwrap() {
            got = Some(item);
        }
    }
    let elapsed = start.elapsed();
    let Some(Received::Frame(frame)) = got else {
        panic!("no frame")
    };
    assert_eq!(frame.header("k").map(str::len), Some(256 << 10));
    assert_eq!(frame.body.len(), 1 << 20);
    assert!(
        elapsed < Duration::from_secs(30),
        "{elapsed:?}: the decoder rescans buffered bytes"
    );
}
