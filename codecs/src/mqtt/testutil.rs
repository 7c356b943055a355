//! Helpers for the per-packet unit tests.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{Codec, DecodeError, Packet, ProtocolVersion};

fn decode_all(mut codec: Codec, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = codec.decode(&mut buf)?.expect("a whole packet");
    assert!(buf.is_empty(), "the packet did not use all bytes: {buf:?}");
    Ok(packet)
}

/// Decodes one whole packet as a server that has not seen CONNECT yet.
pub(crate) fn decode_server_fresh(bytes: &[u8]) -> Result<Packet, DecodeError> {
    decode_all(Codec::server(1 << 20), bytes)
}

/// Decodes one whole packet as a server on a `version` connection.
pub(crate) fn decode_server(version: ProtocolVersion, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut codec = Codec::server(1 << 20);
    codec.set_version(version);
    decode_all(codec, bytes)
}

/// Decodes one whole packet as a client on a `version` connection.
pub(crate) fn decode_client(version: ProtocolVersion, bytes: &[u8]) -> Result<Packet, DecodeError> {
    decode_all(Codec::client(version, 1 << 20), bytes)
}

/// Encodes `packet` and checks `encoded_len`.
pub(crate) fn encode_vec(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut dst = BytesMut::new();
    packet.encode(version, &mut dst).expect("encodes");
    assert_eq!(dst.len(), packet.encoded_len(version));
    dst.to_vec()
}
