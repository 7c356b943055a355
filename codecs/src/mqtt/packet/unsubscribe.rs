//! UNSUBSCRIBE: unsubscribe request (§3.10).
//!
//! ```text
//! Fixed header flags: 0b0010
//! Variable header:    Packet Identifier, [v5] Properties
//! Payload:            one or more Topic Filters
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::packet::subscribe::read_packet_id;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::wire::{field_len, put_string, Reader};
use crate::mqtt::ProtocolVersion;

/// UNSUBSCRIBE: remove one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier (never 0).
    pub packet_id: u16,
    /// Properties (v5 only: User Properties).
    pub properties: Properties,
    /// Topic Filters, valid UTF-8 but not syntax-checked.
    pub filters: Vec<String>,
}

impl Unsubscribe {
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = read_packet_id(&mut r)?;
        let properties = if version == ProtocolVersion::V5 {
            Properties::decode(&mut r, Place::of(PacketType::Unsubscribe))?
        } else {
            Properties::default()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(r.string()?);
        }
        // [MQTT-3.10.3-2] The Payload of an UNSUBSCRIBE packet MUST contain at least one Topic
        // Filter. (3.1.1: [MQTT-3.10.3-2], "a protocol violation".)
        if filters.is_empty() {
            return Err(DecodeError::ProtocolError(
                "[MQTT-3.10.3-2] UNSUBSCRIBE without Topic Filters",
            ));
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut n = 2;
        if version == ProtocolVersion::V5 {
            n += self.properties.encoded_len();
        }
        n + self
            .filters
            .iter()
            .map(|f| field_len(f.as_bytes()))
            .sum::<usize>()
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.packet_id == 0 || self.filters.is_empty() {
            return Err(EncodeError::InvalidPacket(
                "UNSUBSCRIBE needs a non-zero Packet Identifier and at least one filter",
            ));
        }
        dst.put_u16(self.packet_id);
        if version == ProtocolVersion::V5 {
            self.properties
                .encode(Place::of(PacketType::Unsubscribe), dst)?;
        }
        for filter in &self.filters {
            put_string(dst, filter)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::{decode_server, encode_vec};
    use crate::mqtt::Packet;

    #[test]
    fn v311_unsubscribe() {
        let bytes = [
            0xA2, 0x0A, 0x00, 0x05, 0x00, 0x01, b'a', 0x00, 0x03, b'b', b'/', b'#',
        ];
        let p = Packet::Unsubscribe(Unsubscribe {
            packet_id: 5,
            properties: Properties::default(),
            filters: vec!["a".into(), "b/#".into()],
        });
        let v = ProtocolVersion::V311;
        assert_eq!(decode_server(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn v5_unsubscribe_with_user_property() {
        let bytes = [
            0xA2, 0x0D, 0x00, 0x05, 0x07, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', 0x00, 0x01,
            b'a',
        ];
        let p = Packet::Unsubscribe(Unsubscribe {
            packet_id: 5,
            properties: Properties {
                user_properties: vec![("k".into(), "v".into())],
                ..Properties::default()
            },
            filters: vec!["a".into()],
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_server(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn mqtt_3_10_1_1_unsubscribe_flags_must_be_0010() {
        let e = decode_server(
            ProtocolVersion::V311,
            &[0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
        )
        .unwrap_err();
        assert!(matches!(e, DecodeError::InvalidFlags { .. }), "{e}");
    }

    #[test]
    fn mqtt_3_10_3_2_unsubscribe_without_filters_is_protocol_error() {
        let e = decode_server(ProtocolVersion::V5, &[0xA2, 0x03, 0x00, 0x01, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::ProtocolError(_)), "{e}");
        assert_eq!(e.reason_code().0, 0x82);
    }

    #[test]
    fn mqtt_2_2_1_3_unsubscribe_packet_id_0_is_protocol_error() {
        let e = decode_server(
            ProtocolVersion::V311,
            &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'],
        )
        .unwrap_err();
        assert_eq!(e.reason_code().0, 0x82, "{e}");
    }
}
