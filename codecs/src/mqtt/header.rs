//! The fixed header: packet type, flags and the Remaining Length varint (§2.1, §1.5.5).
//!
//! ```text
//! Bit     7  6  5  4 | 3  2  1  0
//! byte 1  packet type| flags
//! byte 2… Remaining Length (Variable Byte Integer, 1 to 4 bytes)
//! ```

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::ProtocolVersion;

/// The largest value a Variable Byte Integer can carry, and so the largest Remaining Length
/// (§1.5.5: four bytes of seven bits each).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// MQTT control packet type: the high nibble of the first fixed-header byte (§2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Client request to connect to the Server.
    Connect = 1,
    /// Connect acknowledgment.
    ConnAck,
    /// Publish message.
    Publish,
    /// Publish acknowledgment (QoS 1).
    PubAck,
    /// Publish received (QoS 2 delivery part 1).
    PubRec,
    /// Publish release (QoS 2 delivery part 2).
    PubRel,
    /// Publish complete (QoS 2 delivery part 3).
    PubComp,
    /// Subscribe request.
    Subscribe,
    /// Subscribe acknowledgment.
    SubAck,
    /// Unsubscribe request.
    Unsubscribe,
    /// Unsubscribe acknowledgment.
    UnsubAck,
    /// PING request.
    PingReq,
    /// PING response.
    PingResp,
    /// Disconnect notification.
    Disconnect,
    /// Authentication exchange (MQTT 5 only).
    Auth,
}

impl PacketType {
    /// The packet type for a fixed-header nibble; 0 is reserved and yields `None`.
    pub(crate) fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 => Self::Auth,
            _ => return None,
        })
    }

    /// The spec's upper-case name, e.g. `"CONNACK"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        }
    }

    /// The flags nibble every packet but PUBLISH must carry (§2.1.3, Table 2-2).
    pub(crate) fn fixed_flags(self) -> u8 {
        match self {
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FixedHeader {
    pub(crate) packet_type: PacketType,
    pub(crate) flags: u8,
    pub(crate) remaining_len: usize,
}

/// Parses the first fixed-header byte: the type nibble and the flags nibble.
///
/// `version` is the negotiated version, if known: AUTH only exists in MQTT 5.
pub(crate) fn parse_first_byte(
    b: u8,
    version: Option<ProtocolVersion>,
) -> Result<(PacketType, u8), DecodeError> {
    let nibble = b >> 4;
    let flags = b & 0x0F;
    // §2.1.2: packet type 0 is "Reserved, Forbidden"; 15 is reserved in 3.1.1 (AUTH is new in 5).
    let packet_type = match PacketType::from_nibble(nibble) {
        Some(PacketType::Auth) if version == Some(ProtocolVersion::V311) => {
            return Err(DecodeError::InvalidPacketType(nibble))
        }
        Some(t) => t,
        None => return Err(DecodeError::InvalidPacketType(nibble)),
    };
    Ok((packet_type, flags))
}

/// Checks the flags nibble of every packet type except PUBLISH, whose flags carry DUP/QoS/RETAIN
/// and are checked by `Publish::decode`.
pub(crate) fn check_flags(packet_type: PacketType, flags: u8) -> Result<(), DecodeError> {
    if packet_type == PacketType::Publish {
        return Ok(());
    }
    // [MQTT-2.1.3-1] Where a flag bit is marked as "Reserved" it is reserved for future use and
    // MUST be set to the value listed. (3.1.1: [MQTT-2.2.2-1], [MQTT-2.2.2-2]; PUBREL
    // [MQTT-3.6.1-1], SUBSCRIBE [MQTT-3.8.1-1], UNSUBSCRIBE [MQTT-3.10.1-1].)
    if flags != packet_type.fixed_flags() {
        return Err(DecodeError::InvalidFlags { packet_type, flags });
    }
    Ok(())
}

/// The outcome of reading a Variable Byte Integer from a possibly incomplete buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and how many bytes encoded it.
    Value(usize, usize),
    /// More bytes are needed.
    Incomplete,
    /// A fifth byte would be needed, or the encoding is not minimal.
    Malformed,
}

/// Reads a Variable Byte Integer (§1.5.5) from the start of `bytes`.
pub(crate) fn read_varint(bytes: &[u8]) -> VarInt {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // [MQTT-1.5.5-1] The encoded value MUST use the minimum number of bytes necessary to
            // represent the value: a multi-byte encoding whose last (most significant) group is
            // zero, e.g. 0x80 0x00, could have been shorter.
            if i > 0 && b == 0 {
                return VarInt::Malformed;
            }
            return VarInt::Value(value, i + 1);
        }
    }
    if bytes.len() >= 4 {
        // The fourth byte still had its continuation bit set: at most four bytes are allowed.
        VarInt::Malformed
    } else {
        VarInt::Incomplete
    }
}

/// How many bytes the Variable Byte Integer encoding of `value` takes.
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` as a Variable Byte Integer; values above [`MAX_REMAINING_LENGTH`] cannot be
/// represented.
pub(crate) fn put_varint(dst: &mut BytesMut, value: usize) -> Result<(), EncodeError> {
    if value > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge { size: value });
    }
    let mut v = value;
    loop {
        // Truncation is intended: the low seven bits.
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        dst.put_u8(b);
        if v == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_spec_boundaries_roundtrip() {
        // §1.5.5 Table 1-1: the boundaries of each encoded size.
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(v, bytes) in cases {
            assert_eq!(read_varint(bytes), VarInt::Value(v, bytes.len()));
            let mut dst = BytesMut::new();
            put_varint(&mut dst, v).unwrap();
            assert_eq!(&dst[..], bytes);
            assert_eq!(varint_len(v), bytes.len());
        }
    }

    #[test]
    fn mqtt_1_5_5_1_non_minimal_varint_is_malformed() {
        assert_eq!(read_varint(&[0x80, 0x00]), VarInt::Malformed);
        assert_eq!(read_varint(&[0x81, 0x00]), VarInt::Malformed);
        assert_eq!(read_varint(&[0xFF, 0x80, 0x00]), VarInt::Malformed);
        assert_eq!(read_varint(&[0x80, 0x80, 0x80, 0x00]), VarInt::Malformed);
    }

    #[test]
    fn mqtt_1_5_5_1_fifth_varint_byte_is_malformed() {
        assert_eq!(read_varint(&[0xFF, 0xFF, 0xFF, 0xFF]), VarInt::Malformed);
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            VarInt::Malformed
        );
    }

    #[test]
    fn varint_incomplete() {
        assert_eq!(read_varint(&[]), VarInt::Incomplete);
        assert_eq!(read_varint(&[0x80]), VarInt::Incomplete);
        assert_eq!(read_varint(&[0xFF, 0xFF, 0xFF]), VarInt::Incomplete);
    }

    #[test]
    fn varint_too_large_is_an_encode_error() {
        let mut dst = BytesMut::new();
        assert!(put_varint(&mut dst, MAX_REMAINING_LENGTH + 1).is_err());
        assert!(dst.is_empty());
    }

    #[test]
    fn mqtt_2_1_3_1_reserved_flags_are_checked() {
        assert!(check_flags(PacketType::Subscribe, 0b0010).is_ok());
        assert!(check_flags(PacketType::Subscribe, 0b0000).is_err());
        assert!(check_flags(PacketType::PubRel, 0b0000).is_err());
        assert!(check_flags(PacketType::Unsubscribe, 0b0011).is_err());
        assert!(check_flags(PacketType::PingReq, 0b0001).is_err());
        assert!(check_flags(PacketType::Publish, 0b1111).is_ok());
    }

    #[test]
    fn packet_type_0_and_v311_15_are_invalid() {
        assert!(parse_first_byte(0x00, None).is_err());
        assert!(parse_first_byte(0xF0, Some(ProtocolVersion::V311)).is_err());
        assert_eq!(
            parse_first_byte(0xF0, Some(ProtocolVersion::V5)).unwrap(),
            (PacketType::Auth, 0)
        );
    }
}
