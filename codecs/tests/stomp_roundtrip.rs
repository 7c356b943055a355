//! Property tests: arbitrary frames survive encode → decode in every version (header names and
//! values with every character the version can escape; bodies of arbitrary bytes behind a
//! `content-length`), alone and as a stream with heart-beats; what 1.0 cannot escape is
//! written as documented; and decoding arbitrary bytes never panics.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::stomp::*;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const COMMANDS: [Command; 15] = Command::ALL;

const UNLIMITED: StompLimits = StompLimits {
    max_header_line: usize::MAX,
    max_headers: usize::MAX,
    max_body: usize::MAX,
};

/// What a header name or value may contain when written by `version` in a frame that is
/// escaped (`escaped`) or not.
#[derive(Debug, Clone, Copy)]
enum Alphabet {
    /// 1.2 escaped frames: anything.
    All,
    /// 1.1 escaped frames: anything but CR (1.1 has no `\r`).
    NoCr,
    /// 1.0 and handshake frames: no CR or LF (no escapes at all).
    NoEol,
}

fn alphabet(version: Version, command: Command) -> Alphabet {
    match version {
        _ if command.is_handshake() => Alphabet::NoEol,
        Version::V1_0 => Alphabet::NoEol,
        Version::V1_1 => Alphabet::NoCr,
        Version::V1_2 => Alphabet::All,
    }
}

fn text(alphabet: Alphabet) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![':', '\n', '\r', '\\', 'c', 'n', 'r', ' ', '\0']),
        2 => prop::char::range('a', 'z'),
    ];
    prop::collection::vec(ch, 0..16).prop_map(move |chars| {
        chars
            .into_iter()
            .filter(|c| match alphabet {
                Alphabet::All => true,
                Alphabet::NoCr => *c != '\r',
                Alphabet::NoEol => *c != '\r' && *c != '\n',
            })
            .collect()
    })
}

/// A header name: as `text`, but never `content-length` (the frame adds its own), and
/// without `:` where nothing is escaped (the first `:` ends the name).
fn name(alphabet: Alphabet) -> impl Strategy<Value = String> {
    text(alphabet).prop_map(move |n| {
        let n = match alphabet {
            Alphabet::NoEol => n.replace(':', "."),
            _ => n,
        };
        if n == "content-length" {
            "x-content-length".to_owned()
        } else {
            n
        }
    })
}

fn headers(alphabet: Alphabet) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name(alphabet), text(alphabet)), 0..8)
}

/// A frame `version` can carry: headers from its alphabet and, on commands with a body,
/// arbitrary bytes behind a `content-length` header at an arbitrary position.
fn frame(version: Version) -> impl Strategy<Value = Frame> {
    prop::sample::select(COMMANDS.to_vec()).prop_flat_map(move |command| {
        let abc = alphabet(version, command);
        let body = if command.may_have_body() {
            prop::collection::vec(any::<u8>(), 0..300).boxed()
        } else {
            Just(Vec::new()).boxed()
        };
        (headers(abc), body, any::<prop::sample::Index>()).prop_map(move |(headers, body, at)| {
            let mut frame = Frame::new(command);
            frame.headers = headers;
            if command.may_have_body() {
                let at = at.index(frame.headers.len() + 1);
                frame
                    .headers
                    .insert(at, ("content-length".into(), body.len().to_string()));
            }
            frame.body = Bytes::from(body);
            frame
        })
    })
}

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(Version::ALL.to_vec())
}

fn versioned_frame() -> impl Strategy<Value = (Version, Frame)> {
    version().prop_flat_map(|v| (Just(v), frame(v)))
}

fn versioned_frames() -> impl Strategy<Value = (Version, Vec<(Frame, u8)>)> {
    version().prop_flat_map(|v| (Just(v), prop::collection::vec((frame(v), 0u8..4), 1..6)))
}

fn decoder(version: Version) -> StompCodec {
    let mut codec = StompCodec::new(UNLIMITED);
    codec.set_version(version);
    codec
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frames_round_trip((version, frame) in versioned_frame()) {
        let mut out = BytesMut::new();
        frame.encode(version, &mut out);
        let first = out.clone();
        let decoded = decoder(version).decode(&mut out).unwrap();
        prop_assert_eq!(decoded, Some(Received::Frame(frame.clone())));
        prop_assert!(out.is_empty());
        // The writer gives the same bytes as Frame::encode.
        let mut again = BytesMut::new();
        let mut w = FrameWriter::start(&mut again, frame.command, version);
        for (n, v) in &frame.headers {
            w.header(n, v);
        }
        w.finish(&frame.body);
        prop_assert_eq!(again, first);
    }

    /// Frames back to back with 0–3 heart-beats (LF or CRLF) after each, decoded by one codec.
    #[test]
    fn streams_round_trip((version, frames) in versioned_frames()) {
        let mut out = BytesMut::new();
        let mut expected = Vec::new();
        for (i, (frame, beats)) in frames.iter().enumerate() {
            frame.encode(version, &mut out);
            expected.push(Received::Frame(frame.clone()));
            for b in 0..*beats {
                if (i + usize::from(b)) % 2 == 0 {
                    encode_heartbeat(&mut out);
                } else {
                    out.extend_from_slice(b"\r\n");
                }
                expected.push(Received::Heartbeat);
            }
        }
        let mut codec = decoder(version);
        let mut got = Vec::new();
        while let Some(item) = codec.decode(&mut out).unwrap() {
            got.push(item);
        }
        prop_assert!(out.is_empty());
        prop_assert_eq!(got, expected);
    }

    /// 1.0 has no escapes: values are written as they are but for CR and LF, which become
    /// spaces; handshake frames do the same in every version.
    #[test]
    fn unescapable_values_become_spaces(
        version in version(),
        handshake in any::<bool>(),
        value in text(Alphabet::All),
    ) {
        let (command, version) = if handshake {
            (Command::Connected, version)
        } else {
            (Command::Send, Version::V1_0)
        };
        let frame = Frame::new(command).with("k", &value);
        let mut out = BytesMut::new();
        frame.encode(version, &mut out);
        let Some(Received::Frame(decoded)) = decoder(version).decode(&mut out).unwrap() else {
            panic!("a frame");
        };
        let expected = value.replace(['\r', '\n'], " ");
        prop_assert_eq!(decoded.header("k"), Some(expected.as_str()));
    }

    /// Arbitrary bytes (mostly STOMP-like) never panic, whole or byte by byte, and give the
    /// same items both ways.
    #[test]
    fn arbitrary_bytes_never_panic(
        version in version(),
        chunks in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..12),
                prop::sample::select(vec![
                    b"SEND\n".to_vec(), b"SUBSCRIBE\n".to_vec(), b"CONNECT\n".to_vec(),
                    b"content-length:3\n".to_vec(), b"receipt:r\n".to_vec(), b"k:v\\n\n".to_vec(),
                    b"\n".to_vec(), b"\r\n".to_vec(), b"\0".to_vec(), b"\\".to_vec(),
                ]),
            ],
            0..12,
        ),
    ) {
        let bytes = chunks.concat();
        let limits = StompLimits { max_header_line: 24, max_headers: 3, max_body: 16 };
        let run = |cuts: &[usize]| {
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
                            let _ = codec.failed_receipt();
                            return (items, Some(e.summary()));
                        }
                    }
                }
            }
            (items, None)
        };
        let whole = run(&[]);
        for item in &whole.0 {
            if let Received::Frame(f) = item {
                prop_assert!(f.headers.len() <= limits.max_headers);
                prop_assert!(f.body.len() <= limits.max_body);
            }
        }
        let every: Vec<usize> = (1..bytes.len()).collect();
        prop_assert_eq!(run(&every), whole);
    }
}
