//! PUBLISH: an Application Message (§3.3).
//!
//! ```text
//! Fixed header flags: 3 DUP | 2-1 QoS | 0 RETAIN
//! Variable header:    Topic Name, [Packet Identifier if QoS > 0], [v5] Properties
//! Payload:            the rest of the packet (may be empty)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::wire::{field_len, put_string, Reader};
use crate::mqtt::{ProtocolVersion, QoS, Role};

const DUP: u8 = 0b1000;
const QOS_SHIFT: u8 = 1;
const RETAIN: u8 = 0b0001;

/// PUBLISH: an Application Message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a re-delivery. Always false at QoS 0.
    pub dup: bool,
    /// Delivery QoS.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Topic Name. May be empty in v5 when a Topic Alias stands in for it (the front checks).
    pub topic: String,
    /// Packet Identifier: 0 if and only if QoS 0.
    pub packet_id: u16,
    /// PUBLISH properties (v5 only; empty for 3.1.1).
    pub properties: Properties,
    /// Payload: a zero-copy slice of the received packet.
    pub payload: Bytes,
}

/// Checks the PUBLISH fixed-header flags, as soon as the first byte arrives.
pub(crate) fn check_flags(flags: u8) -> Result<QoS, DecodeError> {
    // [MQTT-3.3.1-4] A PUBLISH Packet MUST NOT have both QoS bits set to 1. If a Server or
    // Client receives a PUBLISH packet which has both QoS bits set to 1 it is a Malformed
    // Packet.
    let qos = QoS::from_u8((flags >> QOS_SHIFT) & 0b11).ok_or(DecodeError::Malformed(
        "[MQTT-3.3.1-4] PUBLISH QoS bits are both 1",
    ))?;
    // [MQTT-3.3.1-2] The DUP flag MUST be set to 0 for all QoS 0 messages.
    if qos == QoS::AtMostOnce && flags & DUP != 0 {
        return Err(DecodeError::Malformed(
            "[MQTT-3.3.1-2] PUBLISH QoS 0 with DUP set",
        ));
    }
    Ok(qos)
}

/// Rejects wildcards in a Topic Name.
pub(crate) fn check_topic_name(topic: &str) -> Result<(), DecodeError> {
    // [MQTT-3.3.2-2] The Topic Name in the PUBLISH packet MUST NOT contain wildcard characters.
    // ([MQTT-4.7.0-1] The wildcard characters can be used in Topic Filters, but MUST NOT be used
    // within a Topic Name.)
    if topic.contains(['+', '#']) {
        return Err(DecodeError::TopicNameInvalid);
    }
    Ok(())
}

impl Publish {
    pub(crate) fn decode(
        flags: u8,
        body: Bytes,
        version: ProtocolVersion,
        role: Role,
    ) -> Result<Self, DecodeError> {
        let qos = check_flags(flags)?;
        let mut r = Reader::new(body);
        let topic = r.string()?;
        check_topic_name(&topic)?;
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            let id = r.u16()?;
            // [MQTT-2.2.1-3] Each time a Client sends a new SUBSCRIBE, UNSUBSCRIBE, or PUBLISH
            // (where QoS > 0) MQTT Control Packet it MUST assign it a non-zero Packet
            // Identifier that is currently unused. (3.1.1: [MQTT-2.3.1-1].)
            if id == 0 {
                return Err(DecodeError::ProtocolError(
                    "[MQTT-2.2.1-3] PUBLISH QoS > 0 with Packet Identifier 0",
                ));
            }
            id
        };
        let properties = if version == ProtocolVersion::V5 {
            Properties::decode(&mut r, Place::of(PacketType::Publish))?
        } else {
            Properties::default()
        };
        // [MQTT-3.3.4-6] A PUBLISH packet sent from a Client to a Server MUST NOT contain a
        // Subscription Identifier.
        if role == Role::Server && !properties.subscription_identifiers.is_empty() {
            return Err(DecodeError::ProtocolError(
                "[MQTT-3.3.4-6] Subscription Identifier in a Client's PUBLISH",
            ));
        }
        Ok(Self {
            dup: flags & DUP != 0,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    /// The fixed-header flags nibble.
    pub(crate) fn flags(&self) -> u8 {
        let mut flags = (self.qos as u8) << QOS_SHIFT;
        if self.dup {
            flags |= DUP;
        }
        if self.retain {
            flags |= RETAIN;
        }
        flags
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut n = field_len(self.topic.as_bytes());
        if self.qos != QoS::AtMostOnce {
            n += 2;
        }
        if version == ProtocolVersion::V5 {
            n += self.properties.encoded_len();
        }
        n + self.payload.len()
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if (self.qos == QoS::AtMostOnce) != (self.packet_id == 0) {
            return Err(EncodeError::InvalidPacket(
                "[MQTT-2.2.1-2] PUBLISH Packet Identifier must be 0 iff QoS 0",
            ));
        }
        if self.qos == QoS::AtMostOnce && self.dup {
            return Err(EncodeError::InvalidPacket(
                "[MQTT-3.3.1-2] DUP must be 0 at QoS 0",
            ));
        }
        put_string(dst, &self.topic)?;
        if self.qos != QoS::AtMostOnce {
            dst.put_u16(self.packet_id);
        }
        if version == ProtocolVersion::V5 {
            self.properties
                .encode(Place::of(PacketType::Publish), dst)?;
        }
        dst.put_slice(&self.payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::testutil::{decode_client, decode_server, encode_vec};
    use crate::mqtt::{Codec, Packet};
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    fn publish(qos: QoS, packet_id: u16, payload: &'static [u8]) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: "a/b".into(),
            packet_id,
            properties: Properties::default(),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn v311_publish_qos0() {
        let bytes = [
            0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
        ];
        let p = publish(QoS::AtMostOnce, 0, b"hello");
        let v = ProtocolVersion::V311;
        assert_eq!(
            decode_server(v, &bytes).unwrap(),
            Packet::Publish(p.clone())
        );
        assert_eq!(encode_vec(&Packet::Publish(p), v), bytes);
    }

    #[test]
    fn v311_publish_qos1_retain() {
        let bytes = [0x33, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'x'];
        let mut p = publish(QoS::AtLeastOnce, 10, b"x");
        p.retain = true;
        let v = ProtocolVersion::V311;
        assert_eq!(
            decode_server(v, &bytes).unwrap(),
            Packet::Publish(p.clone())
        );
        assert_eq!(encode_vec(&Packet::Publish(p), v), bytes);
    }

    #[test]
    fn v5_publish_qos1_no_properties() {
        let bytes = [
            0x32, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, 0x00, b'h', b'i',
        ];
        let p = publish(QoS::AtLeastOnce, 10, b"hi");
        let v = ProtocolVersion::V5;
        assert_eq!(
            decode_server(v, &bytes).unwrap(),
            Packet::Publish(p.clone())
        );
        assert_eq!(encode_vec(&Packet::Publish(p), v), bytes);
    }

    #[test]
    fn v5_publish_qos2_dup_retain_with_properties() {
        let bytes = [
            0x3D, 0x13, // PUBLISH DUP QoS 2 RETAIN, remaining 19
            0x00, 0x03, b'a', b'/', b'b', // topic
            0x12, 0x34, // packet id
            0x0B, // property length 11
            0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry 60
            0x26, 0x00, 0x01, b'k', 0x00,
            0x00, // user property ("k", "")
                  // empty payload
        ];
        let mut p = publish(QoS::ExactlyOnce, 0x1234, b"");
        p.dup = true;
        p.retain = true;
        p.properties.message_expiry_interval = Some(60);
        p.properties.user_properties = vec![("k".into(), String::new())];
        let v = ProtocolVersion::V5;
        assert_eq!(
            decode_server(v, &bytes).unwrap(),
            Packet::Publish(p.clone())
        );
        assert_eq!(encode_vec(&Packet::Publish(p), v), bytes);
    }

    #[test]
    fn payload_is_a_zero_copy_slice() {
        let bytes = [
            0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
        ];
        let mut buf = BytesMut::from(&bytes[..]);
        let base = buf.as_ptr() as usize;
        let mut codec = Codec::server(1024);
        codec.set_version(ProtocolVersion::V311);
        let Some(Packet::Publish(p)) = codec.decode(&mut buf).unwrap() else {
            panic!("not PUBLISH")
        };
        assert_eq!(p.payload.as_ptr() as usize, base + 7);
    }

    #[test]
    fn mqtt_3_3_1_4_publish_qos3_is_malformed() {
        let bytes = [0x36, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
        assert_eq!(e.reason_code().0, 0x81);
    }

    #[test]
    fn mqtt_3_3_1_4_publish_qos3_is_rejected_from_the_first_byte() {
        let mut buf = BytesMut::from(&[0x36][..]);
        let mut codec = Codec::server(1024);
        codec.set_version(ProtocolVersion::V5);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn mqtt_3_3_1_2_publish_qos0_with_dup_is_malformed() {
        let bytes = [0x38, 0x05, 0x00, 0x03, b'a', b'/', b'b'];
        let e = decode_server(ProtocolVersion::V311, &bytes).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn mqtt_2_2_1_3_publish_qos1_packet_id_0_is_protocol_error() {
        let bytes = [0x32, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x00, 0x00];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::ProtocolError(_)), "{e}");
        assert_eq!(e.reason_code().0, 0x82);
    }

    #[test]
    fn mqtt_3_3_2_2_topic_with_wildcard_is_invalid() {
        for topic in [b"a/+", b"a/#"] {
            let mut bytes = vec![0x30, 0x06, 0x00, 0x03];
            bytes.extend_from_slice(topic);
            bytes.push(0x00);
            let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
            assert!(matches!(e, DecodeError::TopicNameInvalid), "{e}");
            assert_eq!(e.reason_code().0, 0x90);
        }
    }

    #[test]
    fn empty_topic_is_decoded_for_the_front_to_judge() {
        // v5: empty topic with Topic Alias 1.
        let bytes = [0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01];
        let Packet::Publish(p) = decode_server(ProtocolVersion::V5, &bytes).unwrap() else {
            panic!("not PUBLISH")
        };
        assert_eq!(p.topic, "");
        assert_eq!(p.properties.topic_alias, Some(1));
    }

    #[test]
    fn mqtt_3_3_4_6_client_publish_with_subscription_identifier_is_protocol_error() {
        let bytes = [0x30, 0x07, 0x00, 0x01, b't', 0x02, 0x0B, 0x05, b'p'];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert_eq!(e.reason_code().0, 0x82, "{e}");
        // A server may send them, one per matching subscription.
        let bytes = [
            0x30, 0x09, 0x00, 0x01, b't', 0x04, 0x0B, 0x05, 0x0B, 0x07, b'p',
        ];
        let Packet::Publish(p) = decode_client(ProtocolVersion::V5, &bytes).unwrap() else {
            panic!("not PUBLISH")
        };
        assert_eq!(p.properties.subscription_identifiers, vec![5, 7]);
    }

    #[test]
    fn publish_missing_packet_id_is_truncated() {
        let bytes = [0x32, 0x05, 0x00, 0x03, b'a', b'/', b'b'];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated), "{e}");
    }

    #[test]
    fn encode_rejects_inconsistent_packet_id() {
        let mut dst = BytesMut::new();
        let p = publish(QoS::AtMostOnce, 5, b"");
        assert!(Packet::Publish(p)
            .encode(ProtocolVersion::V5, &mut dst)
            .is_err());
        let p = publish(QoS::AtLeastOnce, 0, b"");
        assert!(Packet::Publish(p)
            .encode(ProtocolVersion::V5, &mut dst)
            .is_err());
        assert!(dst.is_empty());
    }
}
