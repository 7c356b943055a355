//! Content headers (§4.2.6.1): class id, weight, body size, then the basic class's property
//! flags and property list.
//!
//! Owns: the 14 basic properties (one table, flag order = spec order) and the verbatim
//! property bytes ([`ContentHeader::raw_properties`]), so the broker can forward a message's
//! properties without re-encoding them. Refuses: a set continuation bit (bit 0) in the flags
//! word. The basic class defines only 14 properties, so a conforming peer never sets it, and
//! parsing further flag words we would then ignore would only hide garbage. Bit 1 (unused) is
//! ignored, like RabbitMQ does. Bytes after the last present property are ignored (they are
//! still in `raw_properties`).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::AmqpError;
use super::field_table::FieldTable;
use super::wire::{Reader, Writer};

/// The flags word's continuation bit: another flags word follows.
const CONTINUATION: u16 = 1;

macro_rules! properties {
    ($( $(#[doc = $doc:literal])* $field:ident : $wire:ident => $ty:ty, bit $bit:literal; )*) => {
        /// The basic class's content properties; `None` = flag clear, property absent.
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct BasicProperties {
            $( $(#[doc = $doc])* pub $field: Option<$ty>, )*
        }

        impl BasicProperties {
            /// Decodes a flags word and the property list it announces.
            pub fn decode(raw: &[u8]) -> Result<BasicProperties, AmqpError> {
                Self::decode_bytes(Bytes::copy_from_slice(raw))
            }

            /// [`BasicProperties::decode`] on a frame slice; long strings stay zero-copy.
            pub(crate) fn decode_bytes(raw: Bytes) -> Result<BasicProperties, AmqpError> {
                let mut r = Reader::new(raw, 0, 0, "content header");
                let flags = r.short()?;
                if flags & CONTINUATION != 0 {
                    return Err(r.err("property flags continuation bit set"));
                }
                let mut p = BasicProperties::default();
                $(
                    if flags & (1 << $bit) != 0 {
                        p.$field = Some(r.$wire()?);
                    }
                )*
                // As RabbitMQ's and amq-protocol's parsers: nothing after the last property.
                if !r.is_empty() {
                    return Err(r.err("bytes after the properties"));
                }
                Ok(p)
            }

            /// Writes the flags word and the present properties.
            pub fn encode(&self, dst: &mut BytesMut) {
                let mut flags = 0u16;
                $( if self.$field.is_some() { flags |= 1 << $bit; } )*
                dst.put_u16(flags);
                let mut w = Writer::new(dst);
                $( if let Some(v) = &self.$field { w.$wire(v); } )*
            }
        }
    };
}

properties! {
    /// MIME content type.
    content_type: shortstr => String, bit 15;
    /// MIME content encoding.
    content_encoding: shortstr => String, bit 14;
    /// Application headers.
    headers: table => FieldTable, bit 13;
    /// 1 = non-persistent, 2 = persistent.
    delivery_mode: octet => u8, bit 12;
    /// Message priority, 0 to 9.
    priority: octet => u8, bit 11;
    /// Application correlation identifier.
    correlation_id: shortstr => String, bit 10;
    /// Address to reply to.
    reply_to: shortstr => String, bit 9;
    /// Per-message TTL in milliseconds, as a decimal string (RabbitMQ).
    expiration: shortstr => String, bit 8;
    /// Application message identifier.
    message_id: shortstr => String, bit 7;
    /// Message timestamp (POSIX seconds).
    timestamp: timestamp => u64, bit 6;
    /// Message type name (the spec's `type`).
    kind: shortstr => String, bit 5;
    /// Creating user id (RabbitMQ validates it against the connection's user).
    user_id: shortstr => String, bit 4;
    /// Creating application id.
    app_id: shortstr => String, bit 3;
    /// Deprecated cluster id (kept so it round-trips).
    cluster_id: shortstr => String, bit 2;
}

/// A decoded content header frame's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    /// The content class (60 for basic; the front rejects others).
    pub class_id: u16,
    /// Total size of the body frames that follow.
    pub body_size: u64,
    /// The decoded properties (decoded as basic properties whatever the class).
    pub properties: BasicProperties,
    /// The flags word(s) and property list exactly as received: a zero-copy slice of the frame,
    /// for re-sending properties verbatim ([`encode_content_header_raw`](super::encode_content_header_raw)).
    pub raw_properties: Bytes,
}

impl ContentHeader {
    /// Decodes a header frame's payload: class id, weight (ignored), body size, properties.
    pub(crate) fn decode_bytes(payload: Bytes) -> Result<ContentHeader, AmqpError> {
        let mut r = Reader::new(payload, 0, 0, "content header");
        let class_id = r.short()?;
        let _weight = r.short()?;
        let body_size = r.longlong()?;
        let raw_properties = r.take_rest();
        let properties = BasicProperties::decode_bytes(raw_properties.clone())?;
        Ok(ContentHeader {
            class_id,
            body_size,
            properties,
            raw_properties,
        })
    }
}
