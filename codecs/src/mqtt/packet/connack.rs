//! CONNACK: the Server's answer to CONNECT (§3.2).
//!
//! ```text
//! Variable header: Connect Acknowledge Flags (bit 0 Session Present, 7-1 reserved),
//!                  Connect Reason Code (v5) / Connect Return Code (3.1.1), [v5] Properties
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::reason::ReasonCode;
use crate::mqtt::wire::Reader;
use crate::mqtt::ProtocolVersion;

const SESSION_PRESENT: u8 = 0x01;

/// CONNACK. The front always speaks v5 Reason Codes; 3.1.1 return codes are mapped on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// Connect Reason Code (v5 numbering, also for 3.1.1).
    pub code: ReasonCode,
    /// CONNACK properties (v5 only).
    pub properties: Properties,
}

/// The 3.1.1 Connect Return Code (§3.2.2.3) for a v5 Reason Code.
fn to_v311(code: ReasonCode) -> u8 {
    match code {
        ReasonCode::SUCCESS => 0,
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => 1,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => 2,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD => 4,
        ReasonCode::NOT_AUTHORIZED => 5,
        // 0x03 "Server unavailable" is the closest 3.1.1 answer to every other failure.
        _ => 3,
    }
}

/// The v5 Reason Code for a 3.1.1 Connect Return Code; 6-255 are reserved.
fn from_v311(rc: u8) -> Option<ReasonCode> {
    Some(match rc {
        0 => ReasonCode::SUCCESS,
        1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        3 => ReasonCode::SERVER_UNAVAILABLE,
        4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        5 => ReasonCode::NOT_AUTHORIZED,
        _ => return None,
    })
}

impl ConnAck {
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let flags = r.u8()?;
        // §3.2.2.1: "Bits 7-1 are reserved and MUST be set to 0." (3.1.1 §3.2.2.1 likewise.)
        if flags & !SESSION_PRESENT != 0 {
            return Err(DecodeError::Malformed(
                "[§3.2.2.1] CONNACK reserved flags set",
            ));
        }
        let raw = r.u8()?;
        let (code, properties) = match version {
            ProtocolVersion::V5 => (
                ReasonCode(raw),
                Properties::decode(&mut r, Place::of(PacketType::ConnAck))?,
            ),
            ProtocolVersion::V311 => (
                from_v311(raw).ok_or(DecodeError::Malformed(
                    "[§3.2.2.3] reserved CONNACK return code",
                ))?,
                Properties::default(),
            ),
        };
        r.finish()?;
        Ok(Self {
            session_present: flags & SESSION_PRESENT != 0,
            code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        match version {
            ProtocolVersion::V311 => 2,
            ProtocolVersion::V5 => 2 + self.properties.encoded_len(),
        }
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        dst.put_u8(if self.session_present {
            SESSION_PRESENT
        } else {
            0
        });
        match version {
            ProtocolVersion::V5 => {
                dst.put_u8(self.code.0);
                self.properties
                    .encode(Place::of(PacketType::ConnAck), dst)?;
            }
            ProtocolVersion::V311 => dst.put_u8(to_v311(self.code)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::{decode_client, encode_vec};
    use crate::mqtt::Packet;

    fn connack(code: ReasonCode) -> ConnAck {
        ConnAck {
            session_present: false,
            code,
            properties: Properties::default(),
        }
    }

    #[test]
    fn v311_connack_return_codes() {
        let v = ProtocolVersion::V311;
        let cases = [
            (ReasonCode::SUCCESS, 0),
            (ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, 1),
            (ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, 2),
            (ReasonCode::SERVER_UNAVAILABLE, 3),
            (ReasonCode::SERVER_BUSY, 3),
            (ReasonCode::BANNED, 3),
            (ReasonCode::BAD_USER_NAME_OR_PASSWORD, 4),
            (ReasonCode::NOT_AUTHORIZED, 5),
        ];
        for (code, rc) in cases {
            let bytes = encode_vec(&Packet::ConnAck(connack(code)), v);
            assert_eq!(bytes, [0x20, 0x02, 0x00, rc], "{code:?}");
        }
        for rc in 0..=5 {
            let Packet::ConnAck(c) = decode_client(v, &[0x20, 0x02, 0x01, rc]).unwrap() else {
                panic!("not CONNACK")
            };
            assert!(c.session_present);
            assert_eq!(to_v311(c.code), rc);
        }
    }

    #[test]
    fn v311_reserved_return_code_is_malformed() {
        let e = decode_client(ProtocolVersion::V311, &[0x20, 0x02, 0x00, 0x06]).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn spec_3_2_2_1_reserved_ack_flags_are_malformed() {
        let e = decode_client(ProtocolVersion::V311, &[0x20, 0x02, 0x02, 0x00]).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn v5_connack_with_properties() {
        let bytes = [
            0x20, 0x0D, 0x01, 0x00, // session present, Success
            0x0A, // property length
            0x12, 0x00, 0x02, b'i', b'd', // Assigned Client Identifier "id"
            0x21, 0x00, 0x0A, // Receive Maximum 10
            0x24, 0x01, // Maximum QoS 1
        ];
        let p = Packet::ConnAck(ConnAck {
            session_present: true,
            code: ReasonCode::SUCCESS,
            properties: Properties {
                assigned_client_identifier: Some("id".into()),
                receive_maximum: Some(10),
                maximum_qos: Some(1),
                ..Properties::default()
            },
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_client(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn v5_connack_unsupported_version() {
        let p = Packet::ConnAck(connack(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION));
        assert_eq!(
            encode_vec(&p, ProtocolVersion::V5),
            [0x20, 0x03, 0x00, 0x84, 0x00]
        );
        assert_eq!(
            encode_vec(&p, ProtocolVersion::V311),
            [0x20, 0x02, 0x00, 0x01]
        );
    }

    #[test]
    fn v5_connack_without_property_length_is_truncated() {
        let e = decode_client(ProtocolVersion::V5, &[0x20, 0x02, 0x00, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated), "{e}");
    }
}
