//! Feeds arbitrary bytes to the server-side MQTT decoder, in two chunks split at a
//! fuzzed offset (the partial-frame hazard of a streaming decoder).
//!
//! Input layout: byte 0 chooses the decoder's starting state (no version yet, so
//! CONNECT must come first; or already 3.1.1 / 5.0, so every packet type is reached
//! without a CONNECT), byte 1 the split offset, the rest is the stream.
//!
//! Invariants: no panic; the decoder never consumes more than it was given; what
//! decodes re-encodes, and the re-encoding decodes to the same packet.
#![no_main]

use bytes::BytesMut;
use dwbroker_codecs::mqtt::{Codec, ProtocolVersion};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX_PACKET: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let [mode, split, data @ ..] = data else { return };
    let split = usize::from(*split).min(data.len());
    let mut codec = Codec::server(MAX_PACKET);
    match mode % 3 {
        1 => codec.set_version(ProtocolVersion::V311),
        2 => codec.set_version(ProtocolVersion::V5),
        _ => {}
    }
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    for chunk in [&data[..split], &data[split..]] {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(packet)) => {
                    consumed += before - buf.len();
                    assert!(consumed <= fed, "consumed more than fed");
                    round_trip(&packet, codec.version().unwrap_or(ProtocolVersion::V5));
                }
                Ok(None) => {
                    assert_eq!(before, buf.len(), "an incomplete packet was consumed");
                    break;
                }
                Err(_) => return,
            }
        }
    }
});

fn round_trip(packet: &dwbroker_codecs::mqtt::Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    if packet.encode(version, &mut out).is_err() {
        return;
    }
    assert_eq!(out.len(), packet.encoded_len(version), "encoded_len disagrees");
    let mut codec = Codec::server(u32::MAX);
    codec.set_version(version);
    match codec.decode(&mut out) {
        Ok(Some(again)) => assert_eq!(&again, packet, "re-encoding decodes differently"),
        other => panic!("re-encoding does not decode: {other:?}"),
    }
}
