//! Feeds arbitrary bytes to the STOMP decoder, for each version, whole and in two chunks
//! split at a fuzzed offset (the partial-line hazard of a streaming text parser).
//!
//! Input layout: byte 0 the split offset, byte 1 the limits mode (small, tiny or larger
//! limits), the rest is the stream.
//!
//! Invariants: no panic; the decoder never consumes more than it was given; a decoded frame
//! is within the limits (header count, body size); both feedings give the same items and the
//! same kind of error; `failed_receipt` and `summary` never panic; a frame that the version
//! can represent re-encodes to bytes that decode to the same frame, and re-encoding is
//! stable.
#![no_main]

use bytes::BytesMut;
use dwbroker_codecs::stomp::{Frame, Received, StompCodec, StompError, StompLimits, Version};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let [split, mode, data @ ..] = data else {
        return;
    };
    let split = usize::from(*split).min(data.len());
    let limits = match mode % 3 {
        0 => StompLimits {
            max_header_line: 128,
            max_headers: 16,
            max_body: 512,
        },
        1 => StompLimits {
            max_header_line: 16,
            max_headers: 2,
            max_body: 8,
        },
        _ => StompLimits {
            max_header_line: 1024,
            max_headers: 64,
            max_body: 4096,
        },
    };
    for version in Version::ALL {
        let whole = run(version, limits, &[data]);
        let halves = run(version, limits, &[&data[..split], &data[split..]]);
        assert_eq!(
            whole, halves,
            "{version:?}: splitting at {split} changes the outcome"
        );
    }
});

/// The items decoded from `chunks` fed in turn, and the kind of error that ended them.
fn run(version: Version, limits: StompLimits, chunks: &[&[u8]]) -> (Vec<Received>, Option<String>) {
    let mut codec = StompCodec::new(limits);
    codec.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let (mut fed, mut consumed) = (0usize, 0usize);
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(item)) => {
                    consumed += before - buf.len();
                    assert!(consumed <= fed, "consumed more than fed");
                    if let Received::Frame(frame) = &item {
                        assert!(
                            frame.headers.len() <= limits.max_headers,
                            "too many headers"
                        );
                        assert!(frame.body.len() <= limits.max_body, "body over max_body");
                        round_trip(version, frame);
                    }
                    items.push(item);
                }
                Ok(None) => {
                    consumed += before - buf.len();
                    assert!(consumed <= fed, "consumed more than fed");
                    break;
                }
                Err(e) => {
                    let _ = codec.failed_receipt();
                    let _ = e.summary();
                    return (items, Some(kind(&e)));
                }
            }
        }
    }
    (items, None)
}

/// The error's variant, without the fields that depend on how the input was split.
fn kind(e: &StompError) -> String {
    let text = format!("{e:?}");
    let end = text.find([' ', '(', '{']).unwrap_or(text.len());
    text[..end].to_owned()
}

/// Whether `version` can write `frame`'s headers so that they decode the same: without
/// escapes (1.0, handshake frames) a CR or LF cannot be written; in 1.1 a value cannot end
/// with a CR (it would read as a CRLF line end).
fn representable(version: Version, frame: &Frame) -> bool {
    let texts = || frame.headers.iter().flat_map(|(n, v)| [n, v]);
    if version == Version::V1_0 || frame.command.is_handshake() {
        texts().all(|t| !t.contains(['\r', '\n']))
    } else if version == Version::V1_1 {
        frame.headers.iter().all(|(_, v)| !v.ends_with('\r'))
    } else {
        true
    }
}

fn round_trip(version: Version, frame: &Frame) {
    let mut out = BytesMut::new();
    frame.encode(version, &mut out);
    let first = out.clone();
    let mut again = StompCodec::new(StompLimits {
        max_header_line: usize::MAX,
        max_headers: usize::MAX,
        max_body: usize::MAX,
    });
    again.set_version(version);
    let decoded = match again.decode(&mut out) {
        Ok(Some(Received::Frame(decoded))) => decoded,
        other => panic!("{version:?}: re-encoding does not decode: {other:?}"),
    };
    assert!(out.is_empty(), "re-encoding left bytes");
    if representable(version, frame) {
        assert_eq!(
            &decoded, frame,
            "{version:?}: re-encoding decodes differently"
        );
        let mut second = BytesMut::new();
        decoded.encode(version, &mut second);
        assert_eq!(first, second, "encoding is not stable");
    }
}
