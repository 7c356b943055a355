//! SUBACK: subscription acknowledgement (§3.9).
//!
//! ```text
//! Variable header: Packet Identifier, [v5] Properties
//! Payload:         one Reason Code per Topic Filter, in order
//! 3.1.1 return codes: 0x00, 0x01, 0x02 (granted QoS) or 0x80 (failure)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::reason::ReasonCode;
use crate::mqtt::wire::Reader;
use crate::mqtt::ProtocolVersion;

/// SUBACK: one Reason Code per requested filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet Identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// Properties (v5 only).
    pub properties: Properties,
    /// v5 Reason Codes, one per filter. For 3.1.1 any code >= 0x80 is sent as 0x80.
    pub codes: Vec<ReasonCode>,
}

/// The 3.1.1 return code for a v5 Reason Code: granted QoS passes, anything else is 0x80.
fn v311_return_code(code: ReasonCode) -> u8 {
    match code.0 {
        0..=2 => code.0,
        _ => 0x80,
    }
}

impl SubAck {
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = r.u16()?;
        let properties = if version == ProtocolVersion::V5 {
            Properties::decode(&mut r, Place::of(PacketType::SubAck))?
        } else {
            Properties::default()
        };
        let mut codes = Vec::new();
        while !r.is_empty() {
            let code = r.u8()?;
            // 3.1.1 [MQTT-3.9.3-2] SUBACK return codes other than 0x00, 0x01, 0x02 and 0x80 are
            // reserved and MUST NOT be used.
            if version == ProtocolVersion::V311 && !matches!(code, 0..=2 | 0x80) {
                return Err(DecodeError::Malformed(
                    "[MQTT-3.9.3-2] reserved SUBACK return code",
                ));
            }
            codes.push(ReasonCode(code));
        }
        Ok(Self {
            packet_id,
            properties,
            codes,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut n = 2 + self.codes.len();
        if version == ProtocolVersion::V5 {
            n += self.properties.encoded_len();
        }
        n
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        dst.put_u16(self.packet_id);
        match version {
            ProtocolVersion::V5 => {
                self.properties.encode(Place::of(PacketType::SubAck), dst)?;
                dst.extend(self.codes.iter().map(|c| c.0));
            }
            ProtocolVersion::V311 => {
                dst.extend(self.codes.iter().map(|c| v311_return_code(*c)));
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
    fn v311_suback_maps_failures_to_0x80() {
        let p = Packet::SubAck(SubAck {
            packet_id: 10,
            properties: Properties::default(),
            codes: vec![
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::NOT_AUTHORIZED,
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::TOPIC_FILTER_INVALID,
            ],
        });
        let v = ProtocolVersion::V311;
        let bytes = encode_vec(&p, v);
        assert_eq!(bytes, [0x90, 0x06, 0x00, 0x0A, 0x01, 0x80, 0x00, 0x80]);
        let Packet::SubAck(back) = decode_client(v, &bytes).unwrap() else {
            panic!("not SUBACK")
        };
        assert_eq!(
            back.codes,
            [
                ReasonCode(1),
                ReasonCode(0x80),
                ReasonCode(0),
                ReasonCode(0x80)
            ]
        );
    }

    #[test]
    fn v5_suback_with_reason_string() {
        let bytes = [
            0x90, 0x09, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, b'r', 0x02, 0x87,
        ];
        let p = Packet::SubAck(SubAck {
            packet_id: 1,
            properties: Properties {
                reason_string: Some("r".into()),
                ..Properties::default()
            },
            codes: vec![ReasonCode::GRANTED_QOS_2, ReasonCode::NOT_AUTHORIZED],
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_client(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn mqtt_3_9_3_2_v311_reserved_return_code_is_malformed() {
        let e = decode_client(ProtocolVersion::V311, &[0x90, 0x03, 0x00, 0x01, 0x03]).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn server_rejects_suback_from_a_client() {
        let e =
            decode_server(ProtocolVersion::V5, &[0x90, 0x04, 0x00, 0x01, 0x00, 0x00]).unwrap_err();
        assert!(
            matches!(e, DecodeError::UnexpectedPacket(PacketType::SubAck)),
            "{e}"
        );
        assert_eq!(e.reason_code().0, 0x82);
    }
}
