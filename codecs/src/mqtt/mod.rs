//! MQTT 3.1.1 and 5.0 wire codec (OASIS mqtt-v3.1.1-os, mqtt-v5.0-os).
//!
//! [`Codec`] frames bytes into [`Packet`]s and back. It owns only what framing needs: the
//! maximum packet size, which side of the connection it decodes for, and the protocol version
//! learned from CONNECT. Everything else (first-packet rules beyond "CONNECT first", topic
//! aliases, packet-id state, auth, topic-filter syntax) is policy and belongs to the front.
//!
//! 3.1.1 and 5 share one set of packet types. Fields that only exist in v5 (properties, reason
//! codes) are left at their defaults when decoding 3.1.1 and are not written when encoding it;
//! reason codes use v5 numbering throughout and are mapped to 3.1.1 return codes on the wire.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

mod error;
mod header;
mod packet;
mod property;
mod reason;
mod wire;

#[cfg(test)]
pub(crate) mod testutil;

pub use error::{DecodeError, EncodeError};
pub use header::{PacketType, MAX_REMAINING_LENGTH};
pub use packet::ack::Ack;
pub use packet::auth::Auth;
pub use packet::connack::ConnAck;
pub use packet::connect::{Connect, Will};
pub use packet::disconnect::Disconnect;
pub use packet::publish::Publish;
pub use packet::suback::SubAck;
pub use packet::subscribe::{RetainHandling, Subscribe, SubscriptionOptions};
pub use packet::unsuback::UnsubAck;
pub use packet::unsubscribe::Unsubscribe;
pub use property::Properties;
pub use reason::ReasonCode;

use header::{put_varint, read_varint, varint_len, FixedHeader, VarInt};

/// The protocol version of a connection, from the CONNECT Protocol Level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// Quality of Service (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// At most once delivery.
    AtMostOnce = 0,
    /// At least once delivery.
    AtLeastOnce = 1,
    /// Exactly once delivery.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a two-bit wire value; 3 is not a QoS.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// Which side of the connection a codec decodes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Decodes what a Client may send.
    Server,
    /// Decodes what a Server may send.
    Client,
}

/// An MQTT control packet (§2.1.2), either direction.
///
/// `Connect` is the largest variant (two `Properties`), but boxing it would change the public
/// API the fronts are written against, and CONNECT is decoded once per connection; the hot
/// variant, `Publish`, is large anyway because `Properties` has one field per v5 property.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Connect),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(Ack),
    /// PUBREC.
    PubRec(Ack),
    /// PUBREL.
    PubRel(Ack),
    /// PUBCOMP.
    PubComp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (v5 only).
    Auth(Auth),
}

impl Packet {
    /// This packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// The Remaining Length: everything after the fixed header.
    fn remaining_len(&self, version: ProtocolVersion) -> usize {
        match self {
            Self::Connect(p) => p.body_len(),
            Self::ConnAck(p) => p.body_len(version),
            Self::Publish(p) => p.body_len(version),
            Self::PubAck(p) | Self::PubRec(p) | Self::PubRel(p) | Self::PubComp(p) => {
                p.body_len(version)
            }
            Self::Subscribe(p) => p.body_len(version),
            Self::SubAck(p) => p.body_len(version),
            Self::Unsubscribe(p) => p.body_len(version),
            Self::UnsubAck(p) => p.body_len(version),
            Self::PingReq | Self::PingResp => 0,
            Self::Disconnect(p) => p.body_len(version),
            Self::Auth(p) => p.body_len(),
        }
    }

    /// Total encoded size in bytes, fixed header included, as `encode` would write it for
    /// `version` (CONNECT always uses its own version).
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let remaining = self.remaining_len(version);
        1 + varint_len(remaining) + remaining
    }

    /// Appends the packet to `dst` in `version` (CONNECT always uses its own version).
    ///
    /// Reserves `encoded_len` bytes first. On error `dst` is left as it was. AUTH cannot be
    /// sent on a 3.1.1 connection.
    pub fn encode(&self, version: ProtocolVersion, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if version == ProtocolVersion::V311 && matches!(self, Self::Auth(_)) {
            return Err(EncodeError::InvalidPacket(
                "AUTH does not exist in MQTT 3.1.1",
            ));
        }
        let remaining = self.remaining_len(version);
        if remaining > MAX_REMAINING_LENGTH {
            return Err(EncodeError::PacketTooLarge { size: remaining });
        }
        let start = dst.len();
        dst.reserve(1 + varint_len(remaining) + remaining);
        let result = self.encode_unchecked(version, remaining, dst);
        if result.is_err() {
            dst.truncate(start);
        }
        result
    }

    fn encode_unchecked(
        &self,
        version: ProtocolVersion,
        remaining: usize,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let packet_type = self.packet_type();
        let flags = match self {
            Self::Publish(p) => p.flags(),
            _ => packet_type.fixed_flags(),
        };
        dst.put_u8(((packet_type as u8) << 4) | flags);
        put_varint(dst, remaining)?;
        match self {
            Self::Connect(p) => p.encode_body(dst),
            Self::ConnAck(p) => p.encode_body(version, dst),
            Self::Publish(p) => p.encode_body(version, dst),
            Self::PubAck(p) | Self::PubRec(p) | Self::PubRel(p) | Self::PubComp(p) => {
                p.encode_body(packet_type, version, dst)
            }
            Self::Subscribe(p) => p.encode_body(version, dst),
            Self::SubAck(p) => p.encode_body(version, dst),
            Self::Unsubscribe(p) => p.encode_body(version, dst),
            Self::UnsubAck(p) => p.encode_body(version, dst),
            Self::PingReq | Self::PingResp => Ok(()),
            Self::Disconnect(p) => p.encode_body(version, dst),
            Self::Auth(p) => p.encode_body(dst),
        }
    }
}

/// The MQTT codec for `tokio_util::codec::Framed`.
///
/// All read state lives here, so a `decode` interrupted by an incomplete buffer (or a dropped
/// `next()` future) simply resumes on the next call.
#[derive(Debug, Clone)]
pub struct Codec {
    role: Role,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    /// The version a first CONNECT that failed to decode claimed.
    refused_connect: Option<ProtocolVersion>,
}

impl Codec {
    /// A codec for the server side: decodes what a Client may send. Until a CONNECT has been
    /// decoded (or `set_version` called) only CONNECT is accepted, and its Protocol Level sets
    /// the version. `max_packet_size` bounds the whole packet, fixed header included.
    pub fn server(max_packet_size: u32) -> Self {
        Self {
            role: Role::Server,
            version: None,
            max_packet_size,
            refused_connect: None,
        }
    }

    /// A codec for the client side (tests, benchmarks): decodes what a Server may send.
    pub fn client(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            role: Role::Client,
            version: Some(version),
            max_packet_size,
            refused_connect: None,
        }
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The version a first CONNECT claimed when it failed to decode, so the server can
    /// give its reason code in a CONNACK that client reads (§4.13.1: an MQTT 5 server
    /// may send CONNACK with the reason before closing).
    pub fn refused_connect(&self) -> Option<ProtocolVersion> {
        self.refused_connect
    }

    /// Sets the protocol version (e.g. to answer an unsupported CONNECT in a chosen form).
    pub fn set_version(&mut self, v: ProtocolVersion) {
        self.version = Some(v);
    }

    /// Checks the first byte: packet type, direction and flags, before any length is known.
    fn check_first_byte(&self, b: u8) -> Result<(PacketType, u8), DecodeError> {
        let (packet_type, flags) = header::parse_first_byte(b, self.version)?;
        // [MQTT-3.1.0-1] After a Network Connection is established by a Client to a Server, the
        // first packet sent from the Client to the Server MUST be a CONNECT packet.
        if self.version.is_none() && packet_type != PacketType::Connect {
            return Err(DecodeError::ExpectedConnect(packet_type));
        }
        let unexpected = match self.role {
            Role::Server => matches!(
                packet_type,
                PacketType::ConnAck
                    | PacketType::SubAck
                    | PacketType::UnsubAck
                    | PacketType::PingResp
            ),
            Role::Client => matches!(
                packet_type,
                PacketType::Connect
                    | PacketType::Subscribe
                    | PacketType::Unsubscribe
                    | PacketType::PingReq
            ),
        };
        if unexpected {
            return Err(DecodeError::UnexpectedPacket(packet_type));
        }
        header::check_flags(packet_type, flags)?;
        if packet_type == PacketType::Publish {
            packet::publish::check_flags(flags)?;
        }
        Ok((packet_type, flags))
    }

    fn decode_body(&mut self, hdr: FixedHeader, body: bytes::Bytes) -> Result<Packet, DecodeError> {
        if hdr.packet_type == PacketType::Connect {
            // CONNECT carries its own protocol level, so it decodes whatever the codec knows.
            let claimed = Connect::claimed_version(&body);
            let connect = Connect::decode(body).inspect_err(|_| {
                if self.version.is_none() {
                    self.refused_connect = claimed;
                }
            })?;
            // A second CONNECT does not change the version: the front answers it with a
            // Protocol Error in the version already in use.
            if self.version.is_none() {
                self.version = Some(connect.version);
            }
            return Ok(Packet::Connect(connect));
        }
        // `check_first_byte` let nothing else through before the version is known.
        let version = self
            .version
            .ok_or(DecodeError::ExpectedConnect(hdr.packet_type))?;
        Ok(match hdr.packet_type {
            // Handled above; kept total rather than unreachable!().
            PacketType::Connect => return Err(DecodeError::UnexpectedPacket(hdr.packet_type)),
            PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(body, version)?),
            PacketType::Publish => {
                Packet::Publish(Publish::decode(hdr.flags, body, version, self.role)?)
            }
            PacketType::PubAck => Packet::PubAck(Ack::decode(hdr.packet_type, body, version)?),
            PacketType::PubRec => Packet::PubRec(Ack::decode(hdr.packet_type, body, version)?),
            PacketType::PubRel => Packet::PubRel(Ack::decode(hdr.packet_type, body, version)?),
            PacketType::PubComp => Packet::PubComp(Ack::decode(hdr.packet_type, body, version)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(body, version)?),
            PacketType::SubAck => Packet::SubAck(SubAck::decode(body, version)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(body, version)?),
            PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(body, version)?),
            PacketType::PingReq | PacketType::PingResp => {
                // §3.12, §3.13: PINGREQ and PINGRESP have no variable header and no payload.
                if !body.is_empty() {
                    return Err(DecodeError::TrailingBytes);
                }
                if hdr.packet_type == PacketType::PingReq {
                    Packet::PingReq
                } else {
                    Packet::PingResp
                }
            }
            PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(body, version)?),
            PacketType::Auth => Packet::Auth(Auth::decode(body)?),
        })
    }
}

impl Decoder for Codec {
    type Item = Packet;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = src.first() else {
            // The smallest packet is two bytes.
            src.reserve(2);
            return Ok(None);
        };
        let (packet_type, flags) = self.check_first_byte(first)?;
        let (remaining_len, len_len) = match read_varint(src.get(1..).unwrap_or_default()) {
            VarInt::Value(v, n) => (v, n),
            VarInt::Incomplete => {
                src.reserve(1);
                return Ok(None);
            }
            // [MQTT-1.5.5-1] The encoded value MUST use the minimum number of bytes necessary to
            // represent the value; at most four bytes are allowed.
            VarInt::Malformed => return Err(DecodeError::MalformedRemainingLength),
        };
        let size = 1 + len_len + remaining_len;
        // §3.1.2.11.4 / §4.13: a packet above the Maximum Packet Size is rejected with 0x95.
        // Checked now, before the body is buffered.
        if size > self.max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        if src.len() < size {
            src.reserve(size - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(size);
        frame.advance(1 + len_len);
        let hdr = FixedHeader {
            packet_type,
            flags,
            remaining_len,
        };
        self.decode_body(hdr, frame.freeze()).map(Some)
    }
}

impl Codec {
    fn encode_packet(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        // Before the version is known only CONNECT (own version) or an answer to an
        // unsupported CONNECT can be sent; the latter defaults to v5.
        let version = self.version.unwrap_or(ProtocolVersion::V5);
        item.encode(version, dst)
    }
}

impl Encoder<Packet> for Codec {
    type Error = EncodeError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_packet(&item, dst)
    }
}

impl Encoder<&Packet> for Codec {
    type Error = EncodeError;

    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_packet(item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::decode_server;

    fn server_v5() -> Codec {
        let mut c = Codec::server(1024);
        c.set_version(ProtocolVersion::V5);
        c
    }

    #[test]
    fn mqtt_3_1_0_1_first_packet_must_be_connect() {
        let mut codec = Codec::server(1024);
        let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
        let e = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(e, DecodeError::ExpectedConnect(PacketType::PingReq)),
            "{e}"
        );
        assert_eq!(e.reason_code().0, 0x82);
        // AUTH before CONNECT too.
        let mut buf = BytesMut::from(&[0xF0, 0x00][..]);
        let e = Codec::server(1024).decode(&mut buf).unwrap_err();
        assert!(
            matches!(e, DecodeError::ExpectedConnect(PacketType::Auth)),
            "{e}"
        );
    }

    #[test]
    fn connect_sets_the_version_and_a_second_connect_is_still_decoded() {
        let connect = [
            0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
        ];
        let mut codec = Codec::server(1024);
        assert_eq!(codec.version(), None);
        let mut buf = BytesMut::from(&connect[..]);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Packet::Connect(_))
        ));
        assert_eq!(codec.version(), Some(ProtocolVersion::V311));
        let mut buf = BytesMut::from(&connect[..]);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Packet::Connect(_))
        ));
        // AUTH is now invalid: this is 3.1.1.
        let mut buf = BytesMut::from(&[0xF0, 0x00][..]);
        assert!(matches!(
            codec.decode(&mut buf).unwrap_err(),
            DecodeError::InvalidPacketType(15)
        ));
    }

    #[test]
    fn packet_type_0_is_malformed() {
        let e = server_v5()
            .decode(&mut BytesMut::from(&[0x00, 0x00][..]))
            .unwrap_err();
        assert!(matches!(e, DecodeError::InvalidPacketType(0)), "{e}");
        assert_eq!(e.reason_code().0, 0x81);
    }

    #[test]
    fn server_rejects_server_only_packets() {
        for first in [0x20u8, 0x90, 0xB0, 0xD0] {
            let e = server_v5()
                .decode(&mut BytesMut::from(&[first, 0x00][..]))
                .unwrap_err();
            assert!(matches!(e, DecodeError::UnexpectedPacket(_)), "{e}");
            assert_eq!(e.reason_code().0, 0x82);
        }
    }

    #[test]
    fn client_rejects_client_only_packets() {
        for first in [0x10u8, 0x82, 0xA2, 0xC0] {
            let mut codec = Codec::client(ProtocolVersion::V5, 1024);
            let e = codec
                .decode(&mut BytesMut::from(&[first, 0x00][..]))
                .unwrap_err();
            assert!(matches!(e, DecodeError::UnexpectedPacket(_)), "{e}");
        }
    }

    #[test]
    fn pings() {
        let mut codec = server_v5();
        let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Packet::PingReq));
        let mut client = Codec::client(ProtocolVersion::V311, 1024);
        let mut buf = BytesMut::from(&[0xD0, 0x00][..]);
        assert_eq!(client.decode(&mut buf).unwrap(), Some(Packet::PingResp));
        let e = decode_server(ProtocolVersion::V5, &[0xC0, 0x01, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::TrailingBytes), "{e}");
        let mut out = BytesMut::new();
        Packet::PingResp
            .encode(ProtocolVersion::V5, &mut out)
            .unwrap();
        assert_eq!(&out[..], [0xD0, 0x00]);
    }

    #[test]
    fn packet_too_large_is_rejected_before_the_body_arrives() {
        let mut codec = Codec::server(100);
        codec.set_version(ProtocolVersion::V5);
        // PUBLISH announcing 200 bytes; only the header is here.
        let mut buf = BytesMut::from(&[0x30, 0xC8, 0x01][..]);
        let e = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::PacketTooLarge {
                    size: 203,
                    max: 100
                }
            ),
            "{e}"
        );
        assert_eq!(e.reason_code().0, 0x95);
        assert_eq!(buf.len(), 3, "nothing consumed");
        // Exactly at the limit is fine: 1 + 1 + 98 = 100.
        let mut buf = BytesMut::from(&[0x30, 0x62][..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() >= 100);
    }

    #[test]
    fn mqtt_1_5_5_1_malformed_remaining_length() {
        for bytes in [&[0x30, 0x80, 0x00][..], &[0x30, 0xFF, 0xFF, 0xFF, 0xFF]] {
            let e = server_v5().decode(&mut BytesMut::from(bytes)).unwrap_err();
            assert!(matches!(e, DecodeError::MalformedRemainingLength), "{e}");
            assert_eq!(e.reason_code().0, 0x81);
        }
    }

    #[test]
    fn incomplete_input_is_not_consumed() {
        let mut codec = server_v5();
        let mut buf = BytesMut::new();
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[0x30]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[0x05, 0x00]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], [0x30, 0x05, 0x00]);
    }

    #[test]
    fn encoder_uses_the_codec_version() {
        let p = Packet::Disconnect(Disconnect::new(ReasonCode::PROTOCOL_ERROR));
        let mut dst = BytesMut::new();
        Codec::server(1024).encode(&p, &mut dst).unwrap();
        assert_eq!(&dst[..], [0xE0, 0x01, 0x82], "unknown version encodes v5");
        let mut codec = Codec::server(1024);
        codec.set_version(ProtocolVersion::V311);
        let mut dst = BytesMut::new();
        codec.encode(p, &mut dst).unwrap();
        assert_eq!(&dst[..], [0xE0, 0x00]);
    }

    #[test]
    fn encode_appends_and_reports_exact_length() {
        let p = Packet::PubAck(Ack::new(3));
        let mut dst = BytesMut::from(&b"xy"[..]);
        p.encode(ProtocolVersion::V5, &mut dst).unwrap();
        assert_eq!(&dst[..], [b'x', b'y', 0x40, 0x02, 0x00, 0x03]);
        assert_eq!(p.encoded_len(ProtocolVersion::V5), 4);
    }

    #[test]
    fn encode_error_leaves_dst_untouched() {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: 0,
            properties: Properties::default(),
            payload: bytes::Bytes::new(),
        });
        let mut long = p.clone();
        if let Packet::Publish(pp) = &mut long {
            pp.properties.content_type = Some("x".repeat(70_000));
        }
        let mut dst = BytesMut::from(&b"ab"[..]);
        assert!(matches!(
            long.encode(ProtocolVersion::V5, &mut dst),
            Err(EncodeError::FieldTooLong { len: 70_000 })
        ));
        assert_eq!(&dst[..], b"ab");
        // Too large overall.
        if let Packet::Publish(pp) = &mut long {
            pp.properties.content_type = None;
            pp.payload = bytes::Bytes::from(vec![0u8; MAX_REMAINING_LENGTH]);
        }
        assert!(matches!(
            long.encode(ProtocolVersion::V5, &mut dst),
            Err(EncodeError::PacketTooLarge { .. })
        ));
        assert_eq!(&dst[..], b"ab");
        p.encode(ProtocolVersion::V5, &mut dst).unwrap();
    }
}
