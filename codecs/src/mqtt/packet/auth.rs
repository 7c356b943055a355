//! AUTH: enhanced authentication exchange, MQTT 5 only (§3.15).
//!
//! ```text
//! Variable header: Reason Code, Properties; Remaining Length 0 = Success, no properties
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::reason::ReasonCode;
use crate::mqtt::wire::Reader;

/// AUTH: one step of an enhanced authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Authenticate Reason Code: Success, Continue authentication or Re-authenticate.
    pub code: ReasonCode,
    /// Properties: Authentication Method and Data, Reason String, User Properties.
    pub properties: Properties,
}

impl Auth {
    pub(crate) fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        // §3.15.2: "The Reason Code and Property Length can be omitted if the Reason Code is 0x00
        // (Success) and there are no Properties. In this case the AUTH has a Remaining Length of
        // 0." Only both may be omitted: Remaining Length 1 is truncated.
        if r.is_empty() {
            return Ok(Self {
                code: ReasonCode::SUCCESS,
                properties: Properties::default(),
            });
        }
        let code = ReasonCode(r.u8()?);
        let properties = Properties::decode(&mut r, Place::of(PacketType::Auth))?;
        r.finish()?;
        Ok(Self { code, properties })
    }

    fn is_short(&self) -> bool {
        self.code == ReasonCode::SUCCESS && self.properties.is_empty()
    }

    pub(crate) fn body_len(&self) -> usize {
        if self.is_short() {
            0
        } else {
            1 + self.properties.encoded_len()
        }
    }

    pub(crate) fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if !self.is_short() {
            dst.put_u8(self.code.0);
            self.properties.encode(Place::of(PacketType::Auth), dst)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::{decode_client, decode_server, encode_vec};
    use crate::mqtt::{Packet, ProtocolVersion};

    #[test]
    fn spec_3_15_2_auth_success_short_form() {
        let p = Packet::Auth(Auth {
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_client(v, &[0xF0, 0x00]).unwrap(), p);
        assert_eq!(encode_vec(&p, v), [0xF0, 0x00]);
    }

    #[test]
    fn auth_continue_with_method_and_data() {
        let bytes = [
            0xF0, 0x0C, 0x18, 0x0A, // Continue authentication, property length 10
            0x15, 0x00, 0x03, b'S', b'C', b'R', // Authentication Method "SCR"
            0x16, 0x00, 0x01, 0xAB, // Authentication Data
        ];
        let p = Packet::Auth(Auth {
            code: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some("SCR".into()),
                authentication_data: Some(Bytes::from_static(&[0xAB])),
                ..Properties::default()
            },
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_server(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn auth_reason_without_property_length_is_truncated() {
        let e = decode_server(ProtocolVersion::V5, &[0xF0, 0x01, 0x18]).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated), "{e}");
    }

    #[test]
    fn auth_in_v311_is_malformed() {
        let e = decode_server(ProtocolVersion::V311, &[0xF0, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidPacketType(15)), "{e}");
        assert_eq!(e.reason_code().0, 0x81);
    }

    #[test]
    fn auth_reason_only_encodes_with_property_length() {
        let p = Packet::Auth(Auth {
            code: ReasonCode::RE_AUTHENTICATE,
            properties: Properties::default(),
        });
        assert_eq!(
            encode_vec(&p, ProtocolVersion::V5),
            [0xF0, 0x02, 0x19, 0x00]
        );
    }
}
