//! PUBACK, PUBREC, PUBREL and PUBCOMP: the QoS 1 and QoS 2 acknowledgements (§3.4-§3.7).
//! They share one layout, so they share one struct.
//!
//! ```text
//! Variable header: Packet Identifier, [v5] Reason Code, [v5] Properties
//! v5 short forms:  Remaining Length 2 = Success, no properties;
//!                  Remaining Length 3 = Reason Code, no properties
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::reason::ReasonCode;
use crate::mqtt::wire::Reader;
use crate::mqtt::ProtocolVersion;

/// PUBACK, PUBREC, PUBREL or PUBCOMP (the `Packet` variant says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Packet Identifier of the PUBLISH being acknowledged.
    pub packet_id: u16,
    /// Reason Code (v5; always `SUCCESS` for 3.1.1).
    pub code: ReasonCode,
    /// Properties (v5 only; empty for 3.1.1).
    pub properties: Properties,
}

impl Ack {
    /// An acknowledgement with Reason Code 0x00 and no properties.
    pub fn new(packet_id: u16) -> Self {
        Self {
            packet_id,
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(
        packet_type: PacketType,
        body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = r.u16()?;
        let mut ack = Self::new(packet_id);
        if version == ProtocolVersion::V5 {
            // §3.4.2.1: "The Reason Code and Property Length can be omitted if the Reason Code is
            // 0x00 (Success) and there are no Properties. In this case the PUBACK has a
            // Remaining Length of 2." §3.4.2.2.1: "If the Remaining Length is less than 4 there
            // is no Property Length and the value of 0 is used."
            if !r.is_empty() {
                ack.code = ReasonCode(r.u8()?);
            }
            if !r.is_empty() {
                ack.properties = Properties::decode(&mut r, Place::of(packet_type))?;
            }
        }
        r.finish()?;
        Ok(ack)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        match version {
            ProtocolVersion::V311 => 2,
            ProtocolVersion::V5 if self.properties.is_empty() => {
                if self.code == ReasonCode::SUCCESS {
                    2
                } else {
                    3
                }
            }
            ProtocolVersion::V5 => 3 + self.properties.encoded_len(),
        }
    }

    pub(crate) fn encode_body(
        &self,
        packet_type: PacketType,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        dst.put_u16(self.packet_id);
        if version == ProtocolVersion::V5 {
            let empty = self.properties.is_empty();
            if self.code != ReasonCode::SUCCESS || !empty {
                dst.put_u8(self.code.0);
            }
            if !empty {
                self.properties.encode(Place::of(packet_type), dst)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::{decode_client, decode_server, encode_vec};
    use crate::mqtt::Packet;

    #[test]
    fn v311_acks() {
        let v = ProtocolVersion::V311;
        let cases = [
            (0x40, Packet::PubAck(Ack::new(7))),
            (0x50, Packet::PubRec(Ack::new(7))),
            (0x62, Packet::PubRel(Ack::new(7))),
            (0x70, Packet::PubComp(Ack::new(7))),
        ];
        for (first, packet) in cases {
            let bytes = [first, 0x02, 0x00, 0x07];
            assert_eq!(decode_server(v, &bytes).unwrap(), packet);
            assert_eq!(decode_client(v, &bytes).unwrap(), packet);
            assert_eq!(encode_vec(&packet, v), bytes);
        }
    }

    #[test]
    fn v311_ack_with_extra_bytes_is_malformed() {
        let e = decode_server(ProtocolVersion::V311, &[0x40, 0x03, 0x00, 0x07, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::TrailingBytes), "{e}");
    }

    #[test]
    fn spec_3_4_2_1_v5_short_forms() {
        let v = ProtocolVersion::V5;
        // Remaining Length 2: Success, no properties.
        let p = Packet::PubAck(Ack::new(1));
        assert_eq!(decode_server(v, &[0x40, 0x02, 0x00, 0x01]).unwrap(), p);
        assert_eq!(encode_vec(&p, v), [0x40, 0x02, 0x00, 0x01]);
        // Remaining Length 3: Reason Code only.
        let p = Packet::PubRec(Ack {
            code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            ..Ack::new(1)
        });
        assert_eq!(
            decode_server(v, &[0x50, 0x03, 0x00, 0x01, 0x10]).unwrap(),
            p
        );
        assert_eq!(encode_vec(&p, v), [0x50, 0x03, 0x00, 0x01, 0x10]);
        // Remaining Length 4 with an empty property list is still accepted.
        let p = Packet::PubComp(Ack::new(1));
        assert_eq!(
            decode_server(v, &[0x70, 0x04, 0x00, 0x01, 0x00, 0x00]).unwrap(),
            p
        );
    }

    #[test]
    fn v5_ack_with_reason_string() {
        let v = ProtocolVersion::V5;
        let bytes = [
            0x62, 0x09, 0x00, 0x02, 0x92, 0x05, 0x1F, 0x00, 0x02, b'n', b'f',
        ];
        let p = Packet::PubRel(Ack {
            packet_id: 2,
            code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            properties: Properties {
                reason_string: Some("nf".into()),
                ..Properties::default()
            },
        });
        assert_eq!(decode_server(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn mqtt_3_6_1_1_pubrel_flags_must_be_0010() {
        let e = decode_server(ProtocolVersion::V5, &[0x60, 0x02, 0x00, 0x01]).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidFlags { .. }), "{e}");
        assert_eq!(e.reason_code().0, 0x81);
        let e = decode_server(ProtocolVersion::V5, &[0x41, 0x02, 0x00, 0x01]).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidFlags { .. }), "{e}");
    }

    #[test]
    fn ack_without_packet_id_is_truncated() {
        let e = decode_server(ProtocolVersion::V5, &[0x40, 0x01, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated), "{e}");
    }

    #[test]
    fn ack_property_not_allowed_is_malformed() {
        // Topic Alias (0x23) in a PUBACK.
        let bytes = [0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert!(
            matches!(e, DecodeError::PropertyNotAllowed { id: 0x23, .. }),
            "{e}"
        );
    }
}
