//! Feeds arbitrary bytes to the server-side NATS decoder in two chunks split at a
//! fuzzed offset (the partial-line hazard of a streaming text parser).
//!
//! Invariants: no panic; an incomplete op is never consumed; the decoder never
//! consumes more than it was given; what decodes re-encodes to bytes that decode
//! to the same op.
#![no_main]

use bytes::BytesMut;
use dwbroker_codecs::nats::{Limits, ServerCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let [split, data @ ..] = data else { return };
    let split = usize::from(*split).min(data.len());
    let limits = Limits {
        max_control_line: 256,
        max_payload: 4096,
    };
    let mut codec = ServerCodec::new(limits);
    let mut buf = BytesMut::new();
    let (mut fed, mut consumed) = (0usize, 0usize);
    for chunk in [&data[..split], &data[split..]] {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(op)) => {
                    consumed += before - buf.len();
                    assert!(consumed <= fed, "consumed more than fed");
                    let mut out = BytesMut::new();
                    op.encode(&mut out);
                    assert_eq!(out.len(), op.encoded_len(), "encoded_len disagrees");
                    let mut again = ServerCodec::new(Limits {
                        max_control_line: usize::MAX,
                        max_payload: usize::MAX,
                    });
                    match again.decode(&mut out) {
                        Ok(Some(same)) => assert_eq!(same, op, "re-encoding decodes differently"),
                        other => panic!("re-encoding does not decode: {other:?}"),
                    }
                }
                Ok(None) => {
                    assert_eq!(before, buf.len(), "an incomplete op was consumed");
                    break;
                }
                Err(_) => return,
            }
        }
    }
});
