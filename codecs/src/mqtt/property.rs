//! MQTT 5 properties (§2.2.2), as one table.
//!
//! Each row gives the identifier, the `Properties` field, the wire type, where the property may
//! appear, where it may repeat, and which values are valid. The struct, the decoder, the encoder
//! and the length computation are all generated from that table, so they cannot disagree.
//! 3.1.1 has no properties: they are never read nor written for it.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::header::{put_varint, varint_len, PacketType, MAX_REMAINING_LENGTH};
use super::wire::{field_len, put_binary, put_string, Reader};

/// Where a property list sits: one bit per packet type, plus bit 0 for CONNECT's Will
/// Properties (packet type 0 is reserved, so the bit is free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place(u16);

impl Place {
    /// The Will Properties inside a CONNECT payload (§3.1.3.2).
    pub(crate) const WILL: Self = Self(WILL);

    /// The property list in the variable header of `packet_type`.
    pub(crate) fn of(packet_type: PacketType) -> Self {
        Self(1 << (packet_type as u16))
    }

    /// Whether this place is one of `mask`'s (a row's "in" or "repeat in" column).
    fn is_in(self, mask: u16) -> bool {
        self.0 & mask != 0
    }

    fn name(self) -> &'static str {
        if self == Self::WILL {
            return "CONNECT Will Properties";
        }
        (1..=15u8)
            .find(|n| self.0 == 1 << n)
            .and_then(PacketType::from_nibble)
            .map_or("?", PacketType::name)
    }
}

const WILL: u16 = 1 << 0;
const CONNECT: u16 = 1 << 1;
const CONNACK: u16 = 1 << 2;
const PUBLISH: u16 = 1 << 3;
const PUBACK: u16 = 1 << 4;
const PUBREC: u16 = 1 << 5;
const PUBREL: u16 = 1 << 6;
const PUBCOMP: u16 = 1 << 7;
const SUBSCRIBE: u16 = 1 << 8;
const SUBACK: u16 = 1 << 9;
const UNSUBSCRIBE: u16 = 1 << 10;
const UNSUBACK: u16 = 1 << 11;
const DISCONNECT: u16 = 1 << 14;
const AUTH: u16 = 1 << 15;
const ALL: u16 = WILL
    | CONNECT
    | CONNACK
    | PUBLISH
    | PUBACK
    | PUBREC
    | PUBREL
    | PUBCOMP
    | SUBSCRIBE
    | SUBACK
    | UNSUBSCRIBE
    | UNSUBACK
    | DISCONNECT
    | AUTH;
const NOWHERE: u16 = 0;

/// A property wire type (§2.2.2.2): how one value is read, written and measured.
trait Kind {
    type Value;
    fn read(r: &mut Reader) -> Result<Self::Value, DecodeError>;
    fn write(v: &Self::Value, dst: &mut BytesMut) -> Result<(), EncodeError>;
    fn len(v: &Self::Value) -> usize;
}

/// Byte.
struct Byte;
/// Two Byte Integer.
struct TwoByte;
/// Four Byte Integer.
struct FourByte;
/// Variable Byte Integer.
struct VarInt;
/// UTF-8 Encoded String.
struct Utf8;
/// Binary Data.
struct Binary;
/// UTF-8 String Pair.
struct Pair;

impl Kind for Byte {
    type Value = u8;
    fn read(r: &mut Reader) -> Result<u8, DecodeError> {
        r.u8()
    }
    fn write(v: &u8, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.put_u8(*v);
        Ok(())
    }
    fn len(_: &u8) -> usize {
        1
    }
}

impl Kind for TwoByte {
    type Value = u16;
    fn read(r: &mut Reader) -> Result<u16, DecodeError> {
        r.u16()
    }
    fn write(v: &u16, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.put_u16(*v);
        Ok(())
    }
    fn len(_: &u16) -> usize {
        2
    }
}

impl Kind for FourByte {
    type Value = u32;
    fn read(r: &mut Reader) -> Result<u32, DecodeError> {
        r.u32()
    }
    fn write(v: &u32, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.put_u32(*v);
        Ok(())
    }
    fn len(_: &u32) -> usize {
        4
    }
}

impl Kind for VarInt {
    type Value = u32;
    fn read(r: &mut Reader) -> Result<u32, DecodeError> {
        // A four-byte varint is at most 268,435,455, which fits.
        u32::try_from(r.varint()?).map_err(|_| DecodeError::MalformedVarInt)
    }
    fn write(v: &u32, dst: &mut BytesMut) -> Result<(), EncodeError> {
        put_varint(dst, *v as usize)
    }
    fn len(v: &u32) -> usize {
        varint_len(*v as usize)
    }
}

impl Kind for Utf8 {
    type Value = String;
    fn read(r: &mut Reader) -> Result<String, DecodeError> {
        r.string()
    }
    fn write(v: &String, dst: &mut BytesMut) -> Result<(), EncodeError> {
        put_string(dst, v)
    }
    fn len(v: &String) -> usize {
        field_len(v.as_bytes())
    }
}

impl Kind for Binary {
    type Value = Bytes;
    fn read(r: &mut Reader) -> Result<Bytes, DecodeError> {
        r.binary()
    }
    fn write(v: &Bytes, dst: &mut BytesMut) -> Result<(), EncodeError> {
        put_binary(dst, v)
    }
    fn len(v: &Bytes) -> usize {
        field_len(v)
    }
}

impl Kind for Pair {
    type Value = (String, String);
    fn read(r: &mut Reader) -> Result<(String, String), DecodeError> {
        Ok((r.string()?, r.string()?))
    }
    fn write(v: &(String, String), dst: &mut BytesMut) -> Result<(), EncodeError> {
        put_string(dst, &v.0)?;
        put_string(dst, &v.1)
    }
    fn len(v: &(String, String)) -> usize {
        field_len(v.0.as_bytes()) + field_len(v.1.as_bytes())
    }
}

/// Stores a decoded value in an `Option` (single-use) or a `Vec` (repeatable) field.
macro_rules! store {
    (one, $slot:expr, $v:expr, $repeatable:expr, $id:expr) => {{
        // §2.2.2.2: "It is a Protocol Error to include the <property> more than once."
        if $slot.is_some() {
            return Err(DecodeError::DuplicateProperty($id));
        }
        $slot = Some($v);
    }};
    (many, $slot:expr, $v:expr, $repeatable:expr, $id:expr) => {{
        if !$slot.is_empty() && !$repeatable {
            return Err(DecodeError::DuplicateProperty($id));
        }
        $slot.push($v);
    }};
}

macro_rules! properties {
    ($(
        $(#[doc = $doc:literal])*
        $id:literal $field:ident: $ty:ty = $card:ident $kind:ident,
            in $allowed:expr, repeat in $repeat:expr, valid $valid:expr;
    )*) => {
        /// MQTT 5 properties (§2.2.2.2): one field per property. `None` / empty means absent.
        ///
        /// Which properties a packet may carry is checked when decoding and encoding; a default
        /// (empty) `Properties` is valid everywhere and encodes as a single zero byte in v5.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Properties {
            $(
                $(#[doc = $doc])*
                #[doc = concat!("\n\nIdentifier ", stringify!($id), ".")]
                pub $field: $ty,
            )*
        }

        impl Properties {
            /// Decodes property entries until `r` is empty.
            fn decode_entries(r: &mut Reader, place: Place) -> Result<Self, DecodeError> {
                let mut props = Self::default();
                while !r.is_empty() {
                    // §2.2.2.2: the identifier is a Variable Byte Integer.
                    let id = r.varint()?;
                    match id {
                        $(
                            $id => {
                                // §2.2.2.2: a property not listed for this packet type makes
                                // the packet malformed.
                                if !place.is_in($allowed) {
                                    return Err(DecodeError::PropertyNotAllowed {
                                        id: $id,
                                        place: place.name(),
                                    });
                                }
                                let value = <$kind as Kind>::read(r)?;
                                if !($valid)(&value) {
                                    return Err(DecodeError::InvalidPropertyValue($id));
                                }
                                store!($card, props.$field, value, place.is_in($repeat), $id);
                            }
                        )*
                        _ => {
                            return Err(DecodeError::UnknownProperty(
                                u32::try_from(id).unwrap_or(u32::MAX),
                            ))
                        }
                    }
                }
                Ok(props)
            }

            /// Length of the entries, without the Property Length prefix.
            fn entries_len(&self) -> usize {
                let mut n = 0;
                $(
                    for v in self.$field.iter() {
                        // Every identifier is below 0x80: one varint byte.
                        n += 1 + <$kind as Kind>::len(v);
                    }
                )*
                n
            }

            /// Checks every set property against the table, as the decoder would.
            fn validate(&self, place: Place) -> Result<(), EncodeError> {
                $(
                    let mut count = 0usize;
                    for v in self.$field.iter() {
                        if !place.is_in($allowed) {
                            return Err(EncodeError::PropertyNotAllowed {
                                id: $id,
                                place: place.name(),
                            });
                        }
                        count += 1;
                        if !($valid)(v) || (count > 1 && !place.is_in($repeat)) {
                            return Err(EncodeError::InvalidPropertyValue($id));
                        }
                    }
                )*
                Ok(())
            }

            fn encode_entries(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
                $(
                    for v in self.$field.iter() {
                        dst.put_u8($id);
                        <$kind as Kind>::write(v, dst)?;
                    }
                )*
                Ok(())
            }
        }
    };
}

fn bool_byte(v: &u8) -> bool {
    *v <= 1
}

fn any<T>(_: &T) -> bool {
    true
}

fn non_zero_u16(v: &u16) -> bool {
    *v != 0
}

fn non_zero_u32(v: &u32) -> bool {
    *v != 0
}

fn subscription_identifier(v: &u32) -> bool {
    // §3.3.2.3.8: "The Subscription Identifier can have the value of 1 to 268,435,455. It is a
    // Protocol Error if the Subscription Identifier has a value of 0."
    *v != 0 && *v as usize <= MAX_REMAINING_LENGTH
}

properties! {
    /// Payload Format Indicator: 0 unspecified bytes, 1 UTF-8 character data.
    0x01 payload_format_indicator: Option<u8> = one Byte,
        in PUBLISH | WILL, repeat in NOWHERE, valid bool_byte;
    /// Message Expiry Interval, in seconds.
    0x02 message_expiry_interval: Option<u32> = one FourByte,
        in PUBLISH | WILL, repeat in NOWHERE, valid any;
    /// Content Type of the payload (e.g. a MIME type).
    0x03 content_type: Option<String> = one Utf8,
        in PUBLISH | WILL, repeat in NOWHERE, valid any;
    /// Response Topic of a request.
    0x08 response_topic: Option<String> = one Utf8,
        in PUBLISH | WILL, repeat in NOWHERE, valid any;
    /// Correlation Data of a request/response pair.
    0x09 correlation_data: Option<Bytes> = one Binary,
        in PUBLISH | WILL, repeat in NOWHERE, valid any;
    /// Subscription Identifiers: one in SUBSCRIBE; in a server-to-client PUBLISH, one per
    /// matching subscription (1 to 268,435,455).
    0x0B subscription_identifiers: Vec<u32> = many VarInt,
        in PUBLISH | SUBSCRIBE, repeat in PUBLISH, valid subscription_identifier;
    /// Session Expiry Interval, in seconds.
    0x11 session_expiry_interval: Option<u32> = one FourByte,
        in CONNECT | CONNACK | DISCONNECT, repeat in NOWHERE, valid any;
    /// Assigned Client Identifier, when the Client sent an empty one.
    0x12 assigned_client_identifier: Option<String> = one Utf8,
        in CONNACK, repeat in NOWHERE, valid any;
    /// Server Keep Alive, in seconds, overriding the Client's.
    0x13 server_keep_alive: Option<u16> = one TwoByte,
        in CONNACK, repeat in NOWHERE, valid any;
    /// Authentication Method for enhanced authentication.
    0x15 authentication_method: Option<String> = one Utf8,
        in CONNECT | CONNACK | AUTH, repeat in NOWHERE, valid any;
    /// Authentication Data for enhanced authentication.
    0x16 authentication_data: Option<Bytes> = one Binary,
        in CONNECT | CONNACK | AUTH, repeat in NOWHERE, valid any;
    /// Request Problem Information: 0 or 1.
    0x17 request_problem_information: Option<u8> = one Byte,
        in CONNECT, repeat in NOWHERE, valid bool_byte;
    /// Will Delay Interval, in seconds.
    0x18 will_delay_interval: Option<u32> = one FourByte,
        in WILL, repeat in NOWHERE, valid any;
    /// Request Response Information: 0 or 1.
    0x19 request_response_information: Option<u8> = one Byte,
        in CONNECT, repeat in NOWHERE, valid bool_byte;
    /// Response Information, the basis for response topics.
    0x1A response_information: Option<String> = one Utf8,
        in CONNACK, repeat in NOWHERE, valid any;
    /// Server Reference, another server to use.
    0x1C server_reference: Option<String> = one Utf8,
        in CONNACK | DISCONNECT, repeat in NOWHERE, valid any;
    /// Reason String, human-readable diagnostics.
    0x1F reason_string: Option<String> = one Utf8,
        in CONNACK | PUBACK | PUBREC | PUBREL | PUBCOMP | SUBACK | UNSUBACK | DISCONNECT | AUTH,
        repeat in NOWHERE, valid any;
    /// Receive Maximum: QoS 1 and 2 publications in flight (not 0).
    0x21 receive_maximum: Option<u16> = one TwoByte,
        in CONNECT | CONNACK, repeat in NOWHERE, valid non_zero_u16;
    /// Topic Alias Maximum.
    0x22 topic_alias_maximum: Option<u16> = one TwoByte,
        in CONNECT | CONNACK, repeat in NOWHERE, valid any;
    /// Topic Alias. 0 and values above the maximum are the front's to reject (0x94).
    0x23 topic_alias: Option<u16> = one TwoByte,
        in PUBLISH, repeat in NOWHERE, valid any;
    /// Maximum QoS the Server supports: 0 or 1 (absent means 2).
    0x24 maximum_qos: Option<u8> = one Byte,
        in CONNACK, repeat in NOWHERE, valid bool_byte;
    /// Retain Available: 0 or 1.
    0x25 retain_available: Option<u8> = one Byte,
        in CONNACK, repeat in NOWHERE, valid bool_byte;
    /// User Properties, in order; names may repeat.
    0x26 user_properties: Vec<(String, String)> = many Pair,
        in ALL, repeat in ALL, valid any;
    /// Maximum Packet Size the sender will accept (not 0).
    0x27 maximum_packet_size: Option<u32> = one FourByte,
        in CONNECT | CONNACK, repeat in NOWHERE, valid non_zero_u32;
    /// Wildcard Subscription Available: 0 or 1.
    0x28 wildcard_subscription_available: Option<u8> = one Byte,
        in CONNACK, repeat in NOWHERE, valid bool_byte;
    /// Subscription Identifiers Available: 0 or 1.
    0x29 subscription_identifier_available: Option<u8> = one Byte,
        in CONNACK, repeat in NOWHERE, valid bool_byte;
    /// Shared Subscription Available: 0 or 1.
    0x2A shared_subscription_available: Option<u8> = one Byte,
        in CONNACK, repeat in NOWHERE, valid bool_byte;
}

impl Properties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.entries_len() == 0
    }

    /// Reads a Property Length and that many bytes of properties (§2.2.2.1).
    pub(crate) fn decode(r: &mut Reader, place: Place) -> Result<Self, DecodeError> {
        let len = r.varint()?;
        // The Property Length is bounded by what is left of the packet.
        let mut entries = Reader::new(r.take(len)?);
        Self::decode_entries(&mut entries, place)
    }

    /// The encoded size, Property Length prefix included.
    pub(crate) fn encoded_len(&self) -> usize {
        let n = self.entries_len();
        varint_len(n) + n
    }

    /// Writes the Property Length and the properties, after checking them against the table.
    pub(crate) fn encode(&self, place: Place, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.validate(place)?;
        put_varint(dst, self.entries_len())?;
        self.encode_entries(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &'static [u8], place: Place) -> Result<Properties, DecodeError> {
        let mut r = Reader::new(Bytes::from_static(bytes));
        let p = Properties::decode(&mut r, place)?;
        r.finish()?;
        Ok(p)
    }

    #[test]
    fn all_connack_properties_roundtrip() {
        let p = Properties {
            session_expiry_interval: Some(30),
            assigned_client_identifier: Some("auto-1".into()),
            server_keep_alive: Some(60),
            authentication_method: Some("SCRAM-SHA-256".into()),
            authentication_data: Some(Bytes::from_static(b"\x01\x02")),
            response_information: Some("resp/".into()),
            server_reference: Some("other:1883".into()),
            reason_string: Some("ok".into()),
            receive_maximum: Some(10),
            topic_alias_maximum: Some(5),
            maximum_qos: Some(1),
            retain_available: Some(0),
            user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            maximum_packet_size: Some(1024),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(1),
            shared_subscription_available: Some(0),
            ..Properties::default()
        };
        let mut dst = BytesMut::new();
        p.encode(Place::of(PacketType::ConnAck), &mut dst).unwrap();
        assert_eq!(dst.len(), p.encoded_len());
        let mut r = Reader::new(dst.freeze());
        let back = Properties::decode(&mut r, Place::of(PacketType::ConnAck)).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn spec_2_2_2_2_property_vector() {
        // Property Length 5, then Session Expiry Interval (0x11) = 10.
        let p = decode(
            &[0x05, 0x11, 0x00, 0x00, 0x00, 0x0A],
            Place::of(PacketType::Connect),
        )
        .unwrap();
        assert_eq!(p.session_expiry_interval, Some(10));
    }

    #[test]
    fn spec_2_2_2_2_unknown_property_is_malformed() {
        let e = decode(&[0x02, 0x7F, 0x00], Place::of(PacketType::Connect)).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownProperty(0x7F)));
        assert_eq!(e.reason_code().0, 0x81);
    }

    #[test]
    fn spec_2_2_2_2_property_not_allowed_is_malformed() {
        // Topic Alias in CONNECT.
        let e = decode(&[0x03, 0x23, 0x00, 0x01], Place::of(PacketType::Connect)).unwrap_err();
        assert!(matches!(
            e,
            DecodeError::PropertyNotAllowed { id: 0x23, .. }
        ));
        assert_eq!(e.reason_code().0, 0x81);
        // Will Delay Interval is only for the Will.
        assert!(decode(&[0x05, 0x18, 0, 0, 0, 1], Place::of(PacketType::Connect)).is_err());
        assert!(decode(&[0x05, 0x18, 0, 0, 0, 1], Place::WILL).is_ok());
    }

    #[test]
    fn spec_2_2_2_2_duplicate_property_is_protocol_error() {
        let e = decode(
            &[0x06, 0x21, 0x00, 0x01, 0x21, 0x00, 0x02],
            Place::of(PacketType::Connect),
        )
        .unwrap_err();
        assert!(matches!(e, DecodeError::DuplicateProperty(0x21)));
        assert_eq!(e.reason_code().0, 0x82);
    }

    #[test]
    fn spec_3_8_2_1_2_subscription_identifier_repeat_only_in_publish() {
        let bytes: &[u8] = &[0x04, 0x0B, 0x01, 0x0B, 0x02];
        let p = decode(bytes, Place::of(PacketType::Publish)).unwrap();
        assert_eq!(p.subscription_identifiers, vec![1, 2]);
        let e = decode(bytes, Place::of(PacketType::Subscribe)).unwrap_err();
        assert!(matches!(e, DecodeError::DuplicateProperty(0x0B)));
    }

    #[test]
    fn spec_3_3_2_3_8_subscription_identifier_zero_is_protocol_error() {
        let e = decode(&[0x02, 0x0B, 0x00], Place::of(PacketType::Publish)).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidPropertyValue(0x0B)));
        assert_eq!(e.reason_code().0, 0x82);
    }

    #[test]
    fn spec_3_1_2_11_invalid_values_are_protocol_errors() {
        // Receive Maximum 0, Maximum Packet Size 0, Request Problem Information 2.
        for bytes in [
            &[0x03, 0x21, 0x00, 0x00][..],
            &[0x05, 0x27, 0, 0, 0, 0],
            &[0x02, 0x17, 0x02],
        ] {
            let mut r = Reader::new(Bytes::copy_from_slice(bytes));
            let e = Properties::decode(&mut r, Place::of(PacketType::Connect)).unwrap_err();
            assert_eq!(e.reason_code().0, 0x82, "{bytes:?}");
        }
        // Payload Format Indicator 2 in PUBLISH.
        assert!(decode(&[0x02, 0x01, 0x02], Place::of(PacketType::Publish)).is_err());
        // Maximum QoS 2 in CONNACK.
        assert!(decode(&[0x02, 0x24, 0x02], Place::of(PacketType::ConnAck)).is_err());
    }

    #[test]
    fn property_length_past_end_is_malformed() {
        let e = decode(&[0x09, 0x11, 0x00], Place::of(PacketType::Connect)).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated));
        // A value cut short inside the property list.
        let e = decode(&[0x02, 0x11, 0x00], Place::of(PacketType::Connect)).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated));
    }

    #[test]
    fn encode_rejects_what_decode_rejects() {
        let mut dst = BytesMut::new();
        let p = Properties {
            topic_alias: Some(1),
            ..Properties::default()
        };
        assert!(p.encode(Place::of(PacketType::Connect), &mut dst).is_err());
        let p = Properties {
            subscription_identifiers: vec![1, 2],
            ..Properties::default()
        };
        assert!(p
            .encode(Place::of(PacketType::Subscribe), &mut dst)
            .is_err());
        assert!(p.encode(Place::of(PacketType::Publish), &mut dst).is_ok());
        let p = Properties {
            receive_maximum: Some(0),
            ..Properties::default()
        };
        assert!(p.encode(Place::of(PacketType::Connect), &mut dst).is_err());
        assert!(Properties::default().is_empty());
    }
}
