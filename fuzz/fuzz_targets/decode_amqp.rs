//! Feeds arbitrary bytes to the AMQP 0-9-1 frame decoder, in two chunks split at a fuzzed
//! offset (the partial-frame hazard of a streaming decoder).
//!
//! Input layout: byte 0 the split offset, byte 1 the mode (frame_max: FRAME_MIN_SIZE, 64 KiB,
//! 128 bytes or unlimited), the rest is the stream.
//!
//! Invariants: no panic; an incomplete frame is never consumed; the decoder never consumes
//! more than it was given; what decodes re-encodes, the re-encoding decodes to the same frame
//! (content headers compared after normalising `raw_properties`, which keeps bytes a
//! re-encoding drops; floats compared via `Debug` so NaN equals itself), and re-encoding that
//! gives the same bytes.
#![no_main]

use bytes::BytesMut;
use dwbroker_codecs::amqp::{AmqpCodec, Frame, FRAME_MIN_SIZE};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let [split, mode, data @ ..] = data else {
        return;
    };
    let split = usize::from(*split).min(data.len());
    let max = match mode % 4 {
        0 => FRAME_MIN_SIZE,
        1 => 65_536,
        2 => 128,
        _ => 0,
    };
    let mut codec = AmqpCodec::new(max);
    let mut buf = BytesMut::new();
    let (mut fed, mut consumed) = (0usize, 0usize);
    for chunk in [&data[..split], &data[split..]] {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    consumed += before - buf.len();
                    assert!(consumed <= fed, "consumed more than fed");
                    round_trip(&frame);
                }
                Ok(None) => {
                    assert_eq!(before, buf.len(), "an incomplete frame was consumed");
                    break;
                }
                Err(e) => {
                    let _ = e.reply_code();
                    return;
                }
            }
        }
    }
});

/// `frame` as re-decoding its encoding would give it back.
fn normalised(frame: &Frame) -> String {
    let mut f = frame.clone();
    if let Frame::Header { header, .. } = &mut f {
        let mut raw = BytesMut::new();
        header.properties.encode(&mut raw);
        header.raw_properties = raw.freeze();
    }
    format!("{f:?}")
}

fn round_trip(frame: &Frame) {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    let first = out.clone();
    let again = match AmqpCodec::new(0).decode(&mut out) {
        Ok(Some(again)) => again,
        other => panic!("re-encoding does not decode: {other:?}"),
    };
    assert!(out.is_empty(), "re-encoding left bytes");
    assert_eq!(
        normalised(&again),
        normalised(frame),
        "re-encoding decodes differently"
    );
    let mut second = BytesMut::new();
    again.encode(&mut second);
    assert_eq!(first, second, "encoding is not stable");
}
