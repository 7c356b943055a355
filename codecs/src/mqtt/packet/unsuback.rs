//! UNSUBACK: unsubscribe acknowledgement (§3.11).
//!
//! ```text
//! Variable header: Packet Identifier, [v5] Properties
//! Payload (v5):    one Reason Code per Topic Filter; 3.1.1 has no payload
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::reason::ReasonCode;
use crate::mqtt::wire::Reader;
use crate::mqtt::ProtocolVersion;

/// UNSUBACK: one Reason Code per filter in v5; just the Packet Identifier in 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet Identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// Properties (v5 only).
    pub properties: Properties,
    /// Reason Codes (v5 only; not written for 3.1.1 and empty when decoding it).
    pub codes: Vec<ReasonCode>,
}

impl UnsubAck {
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = r.u16()?;
        let mut ack = Self {
            packet_id,
            properties: Properties::default(),
            codes: Vec::new(),
        };
        if version == ProtocolVersion::V5 {
            ack.properties = Properties::decode(&mut r, Place::of(PacketType::UnsubAck))?;
            while !r.is_empty() {
                ack.codes.push(ReasonCode(r.u8()?));
            }
        }
        r.finish()?;
        Ok(ack)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        match version {
            ProtocolVersion::V311 => 2,
            ProtocolVersion::V5 => 2 + self.properties.encoded_len() + self.codes.len(),
        }
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        dst.put_u16(self.packet_id);
        if version == ProtocolVersion::V5 {
            self.properties
                .encode(Place::of(PacketType::UnsubAck), dst)?;
            dst.extend(self.codes.iter().map(|c| c.0));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::{decode_client, encode_vec};
    use crate::mqtt::Packet;

    #[test]
    fn v311_unsuback_has_no_codes() {
        let p = Packet::UnsubAck(UnsubAck {
            packet_id: 5,
            properties: Properties::default(),
            codes: vec![ReasonCode::SUCCESS],
        });
        let v = ProtocolVersion::V311;
        assert_eq!(encode_vec(&p, v), [0xB0, 0x02, 0x00, 0x05]);
        let Packet::UnsubAck(back) = decode_client(v, &[0xB0, 0x02, 0x00, 0x05]).unwrap() else {
            panic!("not UNSUBACK")
        };
        assert!(back.codes.is_empty());
    }

    #[test]
    fn v311_unsuback_with_payload_is_malformed() {
        let e = decode_client(ProtocolVersion::V311, &[0xB0, 0x03, 0x00, 0x05, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::TrailingBytes), "{e}");
    }

    #[test]
    fn v5_unsuback() {
        let bytes = [0xB0, 0x05, 0x00, 0x05, 0x00, 0x00, 0x11];
        let p = Packet::UnsubAck(UnsubAck {
            packet_id: 5,
            properties: Properties::default(),
            codes: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_client(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }
}
