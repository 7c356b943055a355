//! CONNECT: the Client's request to connect (§3.1).
//!
//! ```text
//! Variable header: Protocol Name "MQTT", Protocol Level (4 or 5), Connect Flags, Keep Alive,
//!                  [v5] Properties
//! Connect Flags:   7 User Name | 6 Password | 5 Will Retain | 4-3 Will QoS | 2 Will Flag
//!                  | 1 Clean Start | 0 Reserved
//! Payload:         Client Identifier, [Will Properties (v5), Will Topic, Will Payload],
//!                  [User Name], [Password]
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::packet::publish::check_topic_name;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::wire::{field_len, put_binary, put_string, Reader};
use crate::mqtt::{ProtocolVersion, QoS};

const PROTOCOL_NAME: &[u8] = b"MQTT";

const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL_FLAG: u8 = 0x04;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USER_NAME: u8 = 0x80;

/// CONNECT: the first packet a Client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version the Client speaks (protocol level 4 or 5).
    pub version: ProtocolVersion,
    /// Clean Start (v5) / Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// CONNECT properties (v5 only; empty for 3.1.1).
    pub properties: Properties,
    /// Client Identifier; may be empty.
    pub client_id: String,
    /// The Will Message, if the Will Flag is set.
    pub will: Option<Will>,
    /// User Name.
    pub username: Option<String>,
    /// Password (binary data). 3.1.1 forbids a password without a user name.
    pub password: Option<Bytes>,
}

/// The Will Message carried in CONNECT (§3.1.3.2-3.1.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will Topic (a Topic Name: no wildcards, not empty).
    pub topic: String,
    /// Will Payload.
    pub payload: Bytes,
    /// QoS to publish the Will Message with.
    pub qos: QoS,
    /// Whether the Will Message is retained.
    pub retain: bool,
    /// Will Properties (v5 only; empty for 3.1.1).
    pub properties: Properties,
}

impl Connect {
    /// The version a CONNECT body's protocol name and level claim, if one we speak.
    pub(crate) fn claimed_version(body: &[u8]) -> Option<ProtocolVersion> {
        let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
        match (body.get(2..2 + name_len)?, body.get(2 + name_len)?) {
            (PROTOCOL_NAME, 4) => Some(ProtocolVersion::V311),
            (PROTOCOL_NAME, 5) => Some(ProtocolVersion::V5),
            _ => None,
        }
    }

    /// Decodes a CONNECT body; the protocol level inside it decides the version.
    pub(crate) fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let name = r.binary()?;
        let level = r.u8()?;
        let version = match (&name[..], level) {
            (PROTOCOL_NAME, 4) => ProtocolVersion::V311,
            (PROTOCOL_NAME, 5) => ProtocolVersion::V5,
            // [MQTT-3.1.2-2] The Server MUST respond to the CONNECT packet with a CONNACK with
            // 0x84 (Unsupported Protocol Version) and then close the Network Connection if the
            // Protocol Version is not supported. "MQIsdp" is MQTT 3.1 (level 3).
            (PROTOCOL_NAME | b"MQIsdp", level) => {
                return Err(DecodeError::UnsupportedProtocolVersion { level })
            }
            // [MQTT-3.1.2-1] If the Protocol Name is incorrect the Server MAY disconnect the
            // Client, or it MAY continue processing the CONNECT packet in accordance with some
            // other specification.
            _ => return Err(DecodeError::InvalidProtocolName),
        };
        let v5 = version == ProtocolVersion::V5;

        let flags = r.u8()?;
        // [MQTT-3.1.2-3] The Server MUST validate that the reserved flag in the CONNECT packet is
        // set to 0.
        if flags & RESERVED != 0 {
            return Err(DecodeError::Malformed(
                "[MQTT-3.1.2-3] CONNECT reserved flag is set",
            ));
        }
        let will_flag = flags & WILL_FLAG != 0;
        let will_qos_bits = (flags >> WILL_QOS_SHIFT) & 0b11;
        let will_retain = flags & WILL_RETAIN != 0;
        // [MQTT-3.1.2-11] If the Will Flag is set to 0, then the Will QoS MUST be set to 0.
        // (3.1.1: [MQTT-3.1.2-11], [MQTT-3.1.2-13].)
        // [MQTT-3.1.2-13] If the Will Flag is set to 0, then Will Retain MUST be set to 0.
        // (3.1.1: [MQTT-3.1.2-15].)
        if !will_flag && (will_qos_bits != 0 || will_retain) {
            return Err(DecodeError::Malformed(
                "[MQTT-3.1.2-11] Will QoS and Will Retain must be 0 without a Will",
            ));
        }
        // [MQTT-3.1.2-12] If the Will Flag is set to 1, the value of Will QoS can be 0, 1 or 2.
        // It MUST NOT be 3. (3.1.1: [MQTT-3.1.2-14].)
        let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::Malformed(
            "[MQTT-3.1.2-12] Will QoS must not be 3",
        ))?;
        let has_password = flags & PASSWORD != 0;
        let has_user_name = flags & USER_NAME != 0;
        // 3.1.1 [MQTT-3.1.2-22] If the User Name Flag is set to 0, the Password Flag MUST be set
        // to 0. (MQTT 5 dropped this rule, §3.1.2.9.)
        if !v5 && has_password && !has_user_name {
            return Err(DecodeError::Malformed(
                "[MQTT-3.1.2-22] password without user name",
            ));
        }
        let keep_alive = r.u16()?;
        let properties = if v5 {
            Properties::decode(&mut r, Place::of(PacketType::Connect))?
        } else {
            Properties::default()
        };

        let client_id = r.string()?;
        let will = if will_flag {
            let properties = if v5 {
                Properties::decode(&mut r, Place::WILL)?
            } else {
                Properties::default()
            };
            let topic = r.string()?;
            check_topic_name(&topic)?;
            // [MQTT-4.7.3-1] All Topic Names and Topic Filters MUST be at least one character
            // long. (A Will has no Topic Alias to stand in for an empty name.)
            if topic.is_empty() {
                return Err(DecodeError::TopicNameInvalid);
            }
            let payload = r.binary()?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_user_name {
            Some(r.string()?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            version,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    /// Remaining Length of this CONNECT (always in its own `version`).
    pub(crate) fn body_len(&self) -> usize {
        let v5 = self.version == ProtocolVersion::V5;
        let mut n = field_len(PROTOCOL_NAME) + 1 + 1 + 2;
        if v5 {
            n += self.properties.encoded_len();
        }
        n += field_len(self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if v5 {
                n += will.properties.encoded_len();
            }
            n += field_len(will.topic.as_bytes()) + field_len(&will.payload);
        }
        if let Some(u) = &self.username {
            n += field_len(u.as_bytes());
        }
        if let Some(p) = &self.password {
            n += field_len(p);
        }
        n
    }

    /// Writes the body in this CONNECT's own `version`.
    pub(crate) fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let v5 = self.version == ProtocolVersion::V5;
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::InvalidPacket(
                "[MQTT-3.1.2-22] a 3.1.1 password needs a user name",
            ));
        }
        put_binary(dst, PROTOCOL_NAME)?;
        dst.put_u8(if v5 { 5 } else { 4 });
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= WILL_FLAG | ((will.qos as u8) << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        if self.username.is_some() {
            flags |= USER_NAME;
        }
        dst.put_u8(flags);
        dst.put_u16(self.keep_alive);
        if v5 {
            self.properties
                .encode(Place::of(PacketType::Connect), dst)?;
        }
        put_string(dst, &self.client_id)?;
        if let Some(will) = &self.will {
            if v5 {
                will.properties.encode(Place::WILL, dst)?;
            }
            put_string(dst, &will.topic)?;
            put_binary(dst, &will.payload)?;
        }
        if let Some(u) = &self.username {
            put_string(dst, u)?;
        }
        if let Some(p) = &self.password {
            put_binary(dst, p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::{decode_server_fresh, encode_vec};
    use crate::mqtt::Packet;

    /// 3.1.1 CONNECT: clean session, keep alive 60, client id "c1", Will QoS 1 retained on
    /// "w/t" with payload "bye", user "u", password "p".
    const V311_FULL: &[u8] = &[
        0x10,
        0x1E, // CONNECT, remaining length 30
        0x00,
        0x04,
        b'M',
        b'Q',
        b'T',
        b'T',
        0x04,        // protocol name, level 4
        0b1110_1110, // user, password, will retain, will QoS 1, will, clean session
        0x00,
        0x3C, // keep alive 60
        0x00,
        0x02,
        b'c',
        b'1', // client id
        0x00,
        0x03,
        b'w',
        b'/',
        b't', // will topic
        0x00,
        0x03,
        b'b',
        b'y',
        b'e', // will payload
        0x00,
        0x01,
        b'u', // user name
        0x00,
        0x01,
        b'p', // password
    ];

    fn v311_full() -> Connect {
        Connect {
            version: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::default(),
            client_id: "c1".into(),
            will: Some(Will {
                topic: "w/t".into(),
                payload: Bytes::from_static(b"bye"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties::default(),
            }),
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
        }
    }

    /// MQTT 5 CONNECT: clean start, keep alive 10, Session Expiry 10 and Receive Maximum 20,
    /// client id "c", Will QoS 0 on "w" with Will Delay 5 and payload "x", no credentials.
    const V5_WILL: &[u8] = &[
        0x10,
        0x22, // CONNECT, remaining length 34
        0x00,
        0x04,
        b'M',
        b'Q',
        b'T',
        b'T',
        0x05,        // protocol name, level 5
        0b0000_0110, // will, clean start
        0x00,
        0x0A, // keep alive 10
        0x08,
        0x11,
        0x00,
        0x00,
        0x00,
        0x0A,
        0x21,
        0x00,
        0x14, // properties
        0x00,
        0x01,
        b'c', // client id
        0x05,
        0x18,
        0x00,
        0x00,
        0x00,
        0x05, // will properties: will delay 5
        0x00,
        0x01,
        b'w', // will topic
        0x00,
        0x01,
        b'x', // will payload
    ];

    fn v5_will() -> Connect {
        Connect {
            version: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 10,
            properties: Properties {
                session_expiry_interval: Some(10),
                receive_maximum: Some(20),
                ..Properties::default()
            },
            client_id: "c".into(),
            will: Some(Will {
                topic: "w".into(),
                payload: Bytes::from_static(b"x"),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Properties {
                    will_delay_interval: Some(5),
                    ..Properties::default()
                },
            }),
            username: None,
            password: None,
        }
    }

    fn with_byte(base: &[u8], at: usize, b: u8) -> Vec<u8> {
        let mut v = base.to_vec();
        v[at] = b;
        v
    }

    #[test]
    fn v311_connect_with_will_and_credentials() {
        assert_eq!(
            decode_server_fresh(V311_FULL).unwrap(),
            Packet::Connect(v311_full())
        );
        assert_eq!(
            encode_vec(&Packet::Connect(v311_full()), ProtocolVersion::V5),
            V311_FULL,
            "CONNECT encodes in its own version"
        );
    }

    #[test]
    fn v5_connect_with_will_properties() {
        assert_eq!(
            decode_server_fresh(V5_WILL).unwrap(),
            Packet::Connect(v5_will())
        );
        assert_eq!(
            encode_vec(&Packet::Connect(v5_will()), ProtocolVersion::V311),
            V5_WILL
        );
    }

    #[test]
    fn v5_minimal_connect() {
        let bytes = [
            0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00,
        ];
        let Packet::Connect(c) = decode_server_fresh(&bytes).unwrap() else {
            panic!("not CONNECT")
        };
        assert_eq!(c.client_id, "");
        assert!(!c.clean_start && c.will.is_none() && c.username.is_none());
    }

    #[test]
    fn v5_password_without_user_name_is_allowed() {
        let bytes = [
            0x10, 0x11, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x40, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x02, b'p', b'w',
        ];
        let Packet::Connect(c) = decode_server_fresh(&bytes).unwrap() else {
            panic!("not CONNECT")
        };
        assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(c.username, None);
    }

    #[test]
    fn mqtt_3_1_2_22_v311_password_without_user_name_is_malformed() {
        let bytes = [
            0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x40, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x02, b'p', b'w',
        ];
        let e = decode_server_fresh(&bytes).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn mqtt_3_1_2_3_reserved_flag_is_malformed() {
        let e = decode_server_fresh(&with_byte(V311_FULL, 9, 0b1110_1111)).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
        assert_eq!(e.reason_code().0, 0x81);
    }

    #[test]
    fn mqtt_3_1_2_11_will_qos_without_will_is_malformed() {
        // Will flag 0 but Will QoS 1: 0b0000_1010 (QoS 1, clean start).
        let e = decode_server_fresh(&with_byte(V5_WILL, 9, 0b0000_1010)).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn mqtt_3_1_2_13_will_retain_without_will_is_malformed() {
        let e = decode_server_fresh(&with_byte(V5_WILL, 9, 0b0010_0010)).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn mqtt_3_1_2_12_will_qos_3_is_malformed() {
        let e = decode_server_fresh(&with_byte(V5_WILL, 9, 0b0001_1110)).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn a_refused_connect_remembers_the_version_it_claimed() {
        use tokio_util::codec::Decoder;
        let decode = |bytes: &[u8]| {
            let mut codec = crate::mqtt::Codec::server(1 << 20);
            let mut buf = bytes::BytesMut::from(bytes);
            assert!(codec.decode(&mut buf).is_err());
            codec.refused_connect()
        };
        // Will QoS 3: malformed after the level, so the client's version is known.
        assert_eq!(
            decode(&with_byte(V5_WILL, 9, 0b0001_1110)),
            Some(ProtocolVersion::V5)
        );
        let mut v311 = with_byte(V5_WILL, 9, 0b0001_1110);
        v311[8] = 4;
        assert_eq!(decode(&v311), Some(ProtocolVersion::V311));
        // Unknown level or name: no version to answer in.
        assert_eq!(decode(&with_byte(V5_WILL, 8, 6)), None);
        assert_eq!(decode(&with_byte(V5_WILL, 4, b'X')), None);
    }

    #[test]
    fn mqtt_3_1_2_2_unsupported_protocol_level() {
        // Level 6 with name "MQTT".
        let e = decode_server_fresh(&with_byte(V5_WILL, 8, 6)).unwrap_err();
        assert!(matches!(
            e,
            DecodeError::UnsupportedProtocolVersion { level: 6 }
        ));
        assert_eq!(e.reason_code().0, 0x84);
        // MQTT 3.1: "MQIsdp", level 3.
        let bytes = [
            0x10, 0x10, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3C,
            0x00, 0x02, b'c', b'1',
        ];
        let e = decode_server_fresh(&bytes).unwrap_err();
        assert!(matches!(
            e,
            DecodeError::UnsupportedProtocolVersion { level: 3 }
        ));
    }

    #[test]
    fn mqtt_3_1_2_1_invalid_protocol_name_is_malformed() {
        let e = decode_server_fresh(&with_byte(V5_WILL, 4, b'm')).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidProtocolName));
        assert_eq!(e.reason_code().0, 0x81);
    }

    #[test]
    fn mqtt_4_7_0_1_will_topic_with_wildcard_is_invalid() {
        let e = decode_server_fresh(&with_byte(V5_WILL, 32, b'#')).unwrap_err();
        assert!(matches!(e, DecodeError::TopicNameInvalid), "{e}");
    }

    #[test]
    fn will_property_not_allowed_in_connect_properties() {
        // Will properties carry Session Expiry (0x11), which only CONNECT itself may carry.
        let e = decode_server_fresh(&with_byte(V5_WILL, 25, 0x11)).unwrap_err();
        assert!(
            matches!(e, DecodeError::PropertyNotAllowed { id: 0x11, .. }),
            "{e}"
        );
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut bytes = V5_WILL.to_vec();
        bytes[1] += 1;
        bytes.push(0);
        let e = decode_server_fresh(&bytes).unwrap_err();
        assert!(matches!(e, DecodeError::TrailingBytes), "{e}");
    }

    #[test]
    fn truncated_connect_is_malformed() {
        // Remaining length says 5, the protocol name claims 4 bytes but the level is missing.
        let e = decode_server_fresh(&[0x10, 0x05, 0x00, 0x04, b'M', b'Q', b'T']).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated), "{e}");
    }

    #[test]
    fn encode_rejects_v311_password_without_user_name() {
        let mut c = v311_full();
        c.username = None;
        let mut dst = BytesMut::new();
        assert!(Packet::Connect(c)
            .encode(ProtocolVersion::V311, &mut dst)
            .is_err());
        assert!(dst.is_empty());
    }
}
