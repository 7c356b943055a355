//! DISCONNECT: disconnect notification (§3.14).
//!
//! ```text
//! 3.1.1:  no variable header (Remaining Length 0)
//! v5:     Reason Code, Properties; Remaining Length 0 = Normal disconnection,
//!         Remaining Length 1 = Reason Code only
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::reason::ReasonCode;
use crate::mqtt::wire::Reader;
use crate::mqtt::ProtocolVersion;

/// DISCONNECT. In 3.1.1 only a Client sends it, and it carries nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Disconnect Reason Code (v5; `NORMAL_DISCONNECTION` for 3.1.1).
    pub code: ReasonCode,
    /// Properties (v5 only).
    pub properties: Properties,
}

impl Disconnect {
    /// A normal disconnection without properties.
    pub fn new(code: ReasonCode) -> Self {
        Self {
            code,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let mut d = Self::new(ReasonCode::NORMAL_DISCONNECTION);
        if version == ProtocolVersion::V5 {
            // §3.14.2.1: "If the Remaining Length is less than 1 the value of 0x00 (Normal
            // disconnection) is used." §3.14.2.2.1: "If the Remaining Length is less than 2, a
            // value of 0 is used" for the Property Length.
            if !r.is_empty() {
                d.code = ReasonCode(r.u8()?);
            }
            if !r.is_empty() {
                d.properties = Properties::decode(&mut r, Place::of(PacketType::Disconnect))?;
            }
        }
        // 3.1.1 §3.14.2: "The DISCONNECT Packet has no variable header."
        r.finish()?;
        Ok(d)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        match version {
            ProtocolVersion::V311 => 0,
            ProtocolVersion::V5 if self.properties.is_empty() => {
                usize::from(self.code != ReasonCode::NORMAL_DISCONNECTION)
            }
            ProtocolVersion::V5 => 1 + self.properties.encoded_len(),
        }
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if version == ProtocolVersion::V5 {
            let empty = self.properties.is_empty();
            if self.code != ReasonCode::NORMAL_DISCONNECTION || !empty {
                dst.put_u8(self.code.0);
            }
            if !empty {
                self.properties
                    .encode(Place::of(PacketType::Disconnect), dst)?;
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
    fn v311_disconnect() {
        let p = Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
        let v = ProtocolVersion::V311;
        assert_eq!(decode_server(v, &[0xE0, 0x00]).unwrap(), p);
        assert_eq!(encode_vec(&p, v), [0xE0, 0x00]);
        // A v5 reason is dropped on a 3.1.1 connection.
        let p = Packet::Disconnect(Disconnect::new(ReasonCode::PROTOCOL_ERROR));
        assert_eq!(encode_vec(&p, v), [0xE0, 0x00]);
    }

    #[test]
    fn v311_disconnect_with_body_is_malformed() {
        let e = decode_server(ProtocolVersion::V311, &[0xE0, 0x01, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::TrailingBytes), "{e}");
    }

    #[test]
    fn spec_3_14_2_1_v5_short_forms() {
        let v = ProtocolVersion::V5;
        let p = Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
        assert_eq!(decode_server(v, &[0xE0, 0x00]).unwrap(), p);
        assert_eq!(encode_vec(&p, v), [0xE0, 0x00]);
        let p = Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL));
        assert_eq!(decode_server(v, &[0xE0, 0x01, 0x04]).unwrap(), p);
        assert_eq!(encode_vec(&p, v), [0xE0, 0x01, 0x04]);
        // What mosquitto sends for a Malformed Packet.
        let p = Packet::Disconnect(Disconnect::new(ReasonCode::MALFORMED_PACKET));
        assert_eq!(decode_client(v, &[0xE0, 0x01, 0x81]).unwrap(), p);
    }

    #[test]
    fn v5_disconnect_with_properties() {
        let bytes = [0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00];
        let p = Packet::Disconnect(Disconnect {
            code: ReasonCode::NORMAL_DISCONNECTION,
            properties: Properties {
                session_expiry_interval: Some(0),
                ..Properties::default()
            },
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_server(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn mqtt_3_14_1_1_disconnect_flags_must_be_zero() {
        let e = decode_server(ProtocolVersion::V5, &[0xE1, 0x00]).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidFlags { .. }), "{e}");
    }
}
