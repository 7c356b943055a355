//! Decode and encode errors. Each decode error knows the Reason Code a v5 peer should be told
//! (a 3.1.1 peer is simply disconnected, [MQTT-4.8.0-1]).

use super::header::PacketType;
use super::reason::ReasonCode;

/// Why bytes from the peer could not be decoded into a packet.
///
/// Partial input is never an error: the decoder returns `Ok(None)` until a whole packet arrived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The Remaining Length needs a fifth byte or is not minimally encoded ([MQTT-1.5.5-1]).
    #[error("malformed Remaining Length")]
    MalformedRemainingLength,
    /// A Variable Byte Integer inside the packet (property length, identifier or value) needs a
    /// fifth byte or is not minimally encoded ([MQTT-1.5.5-1]).
    #[error("malformed Variable Byte Integer")]
    MalformedVarInt,
    /// The whole packet (fixed header included) is larger than the configured maximum; detected
    /// from the fixed header, before the body is buffered.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total packet size announced by the fixed header.
        size: usize,
        /// The configured maximum.
        max: u32,
    },
    /// Packet type 0, or 15 (AUTH) on a 3.1.1 connection.
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// The fixed-header flags are not the ones the spec fixes for this packet type
    /// ([MQTT-2.1.3-1]).
    #[error("invalid fixed-header flags {flags:#06b} for {packet_type}")]
    InvalidFlags {
        /// The packet type.
        packet_type: PacketType,
        /// The flags nibble received.
        flags: u8,
    },
    /// A packet only the other side may send (e.g. CONNACK sent to a server).
    #[error("unexpected {0} packet")]
    UnexpectedPacket(PacketType),
    /// The first packet on a server connection was not CONNECT ([MQTT-3.1.0-1]); close
    /// without replying.
    #[error("expected CONNECT, got {0}")]
    ExpectedConnect(PacketType),
    /// The CONNECT protocol name is neither "MQTT" nor "MQIsdp" ([MQTT-3.1.2-1]).
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// CONNECT asks for a protocol level other than 4 (3.1.1) or 5 ([MQTT-3.1.2-2]); answer
    /// CONNACK 0x84 (3.1.1 form: return code 0x01) and close.
    #[error("unsupported protocol level {level}")]
    UnsupportedProtocolVersion {
        /// The protocol level received.
        level: u8,
    },
    /// A field runs past the end of the packet.
    #[error("packet truncated: a field runs past the Remaining Length")]
    Truncated,
    /// Bytes are left after the last field of a packet with no payload.
    #[error("unexpected bytes after the last field")]
    TrailingBytes,
    /// A UTF-8 string is ill-formed or contains U+0000 ([MQTT-1.5.4-1], [MQTT-1.5.4-2]).
    #[error("ill-formed UTF-8 string or U+0000")]
    InvalidUtf8,
    /// A PUBLISH (or Will) Topic Name contains a wildcard ([MQTT-3.3.2-2]).
    #[error("invalid Topic Name")]
    TopicNameInvalid,
    /// An unknown property identifier (§2.2.2.2).
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u32),
    /// A property that this packet type may not carry (§2.2.2.2).
    #[error("property {id:#04x} is not allowed in {place}")]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet (or "CONNECT Will") it appeared in.
        place: &'static str,
    },
    /// A property that may appear only once appeared twice.
    #[error("property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    /// A property value outside its allowed range (e.g. Receive Maximum 0).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// Any other Malformed Packet; the text names the spec statement.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Any other Protocol Error; the text names the spec statement.
    #[error("protocol error: {0}")]
    ProtocolError(&'static str),
    /// An I/O error from the transport (tokio-util's `Decoder` requires this conversion).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// The Reason Code to report to an MQTT 5 peer (in CONNACK or DISCONNECT) before closing.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Self::UnexpectedPacket(_)
            | Self::ExpectedConnect(_)
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_)
            | Self::ProtocolError(_) => ReasonCode::PROTOCOL_ERROR,
            Self::UnsupportedProtocolVersion { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            Self::TopicNameInvalid => ReasonCode::TOPIC_NAME_INVALID,
            Self::Io(_) => ReasonCode::UNSPECIFIED_ERROR,
            Self::MalformedRemainingLength
            | Self::MalformedVarInt
            | Self::InvalidPacketType(_)
            | Self::InvalidFlags { .. }
            | Self::InvalidProtocolName
            | Self::Truncated
            | Self::TrailingBytes
            | Self::InvalidUtf8
            | Self::UnknownProperty(_)
            | Self::PropertyNotAllowed { .. }
            | Self::Malformed(_) => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// Why a packet could not be encoded. The destination buffer is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A UTF-8 string or binary field is longer than 65,535 bytes (§1.5.4, §1.5.6).
    #[error("string or binary field of {len} bytes exceeds 65,535")]
    FieldTooLong {
        /// The field's length in bytes.
        len: usize,
    },
    /// The Remaining Length (or another Variable Byte Integer) exceeds 268,435,455.
    #[error("value {size} exceeds the Variable Byte Integer maximum of 268,435,455")]
    PacketTooLarge {
        /// The value that did not fit.
        size: usize,
    },
    /// A property that this packet type may not carry.
    #[error("property {id:#04x} is not allowed in {place}")]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet (or "CONNECT Will") it was set on.
        place: &'static str,
    },
    /// A property value the decoder would reject (e.g. Receive Maximum 0, or a repeated
    /// single-use property).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// The packet's fields contradict each other (e.g. QoS 0 with a Packet Identifier).
    #[error("invalid packet: {0}")]
    InvalidPacket(&'static str),
    /// An I/O error from the transport (tokio-util's `Encoder` requires this conversion).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
