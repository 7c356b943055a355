//! SUBSCRIBE: subscription request (§3.8).
//!
//! ```text
//! Fixed header flags: 0b0010
//! Variable header:    Packet Identifier, [v5] Properties
//! Payload:            one or more (Topic Filter, Subscription Options)
//! Options byte (v5):  7-6 Reserved | 5-4 Retain Handling | 3 RAP | 2 No Local | 1-0 QoS
//! Options byte (3.1.1): 7-2 Reserved | 1-0 QoS
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::error::{DecodeError, EncodeError};
use crate::mqtt::header::PacketType;
use crate::mqtt::property::{Place, Properties};
use crate::mqtt::wire::{field_len, put_string, Reader};
use crate::mqtt::{ProtocolVersion, QoS};

const NO_LOCAL: u8 = 0b0000_0100;
const RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
const RETAIN_HANDLING_SHIFT: u8 = 4;
const V5_RESERVED: u8 = 0b1100_0000;
const V311_RESERVED: u8 = 0b1111_1100;

/// SUBSCRIBE: subscribe to one or more Topic Filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier (never 0).
    pub packet_id: u16,
    /// Properties (v5 only: Subscription Identifier, User Properties).
    pub properties: Properties,
    /// Topic Filters with their options, in order. Filters are valid UTF-8 but their syntax is
    /// not checked here: the front answers 0x8F per filter.
    pub filters: Vec<(String, SubscriptionOptions)>,
}

/// Subscription Options (§3.8.3.1). For 3.1.1 only `qos` exists; the rest stay default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local: do not send the subscriber its own messages.
    pub no_local: bool,
    /// Retain As Published: keep the RETAIN flag when forwarding.
    pub retain_as_published: bool,
    /// When to send retained messages.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with the given QoS and every v5 option at its default.
    pub fn new(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    fn decode(b: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = match version {
            ProtocolVersion::V5 => V5_RESERVED,
            ProtocolVersion::V311 => V311_RESERVED,
        };
        // [MQTT-3.8.3-5] The Server MUST treat a SUBSCRIBE packet as malformed if any of
        // Reserved bits in the Payload are non-zero. (3.1.1: [MQTT-3-8.3-4].)
        if b & reserved != 0 {
            return Err(DecodeError::Malformed(
                "[MQTT-3.8.3-5] SUBSCRIBE options reserved bits set",
            ));
        }
        let qos = match QoS::from_u8(b & 0b11) {
            Some(q) => q,
            // 3.1.1 [MQTT-3-8.3-4]: "or QoS is not 0, 1 or 2" is malformed.
            None if version == ProtocolVersion::V311 => {
                return Err(DecodeError::Malformed(
                    "[MQTT-3-8.3-4] SUBSCRIBE requested QoS 3",
                ))
            }
            // v5 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
            None => {
                return Err(DecodeError::ProtocolError(
                    "[§3.8.3.1] SUBSCRIBE Maximum QoS 3",
                ))
            }
        };
        let retain_handling = match (b >> RETAIN_HANDLING_SHIFT) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            // §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
            _ => {
                return Err(DecodeError::ProtocolError(
                    "[§3.8.3.1] SUBSCRIBE Retain Handling 3",
                ))
            }
        };
        Ok(Self {
            qos,
            no_local: b & NO_LOCAL != 0,
            retain_as_published: b & RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    fn encode(self, version: ProtocolVersion) -> u8 {
        let mut b = self.qos as u8;
        if version == ProtocolVersion::V5 {
            if self.no_local {
                b |= NO_LOCAL;
            }
            if self.retain_as_published {
                b |= RETAIN_AS_PUBLISHED;
            }
            b |= (self.retain_handling as u8) << RETAIN_HANDLING_SHIFT;
        }
        b
    }
}

/// Retain Handling (§3.8.3.1): whether retained messages are sent when subscribing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    SendAtSubscribe = 0,
    /// Send retained messages only if the subscription does not currently exist.
    SendIfNew = 1,
    /// Do not send retained messages.
    DoNotSend = 2,
}

/// Reads a non-zero Packet Identifier, for SUBSCRIBE and UNSUBSCRIBE.
pub(crate) fn read_packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    let id = r.u16()?;
    // [MQTT-2.2.1-3] Each time a Client sends a new SUBSCRIBE, UNSUBSCRIBE, or PUBLISH (where
    // QoS > 0) MQTT Control Packet it MUST assign it a non-zero Packet Identifier that is
    // currently unused. (3.1.1: [MQTT-2.3.1-1].)
    if id == 0 {
        return Err(DecodeError::ProtocolError(
            "[MQTT-2.2.1-3] Packet Identifier 0",
        ));
    }
    Ok(id)
}

impl Subscribe {
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = read_packet_id(&mut r)?;
        let properties = if version == ProtocolVersion::V5 {
            Properties::decode(&mut r, Place::of(PacketType::Subscribe))?
        } else {
            Properties::default()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            filters.push((filter, options));
        }
        // [MQTT-3.8.3-2] The Payload MUST contain at least one Topic Filter and Subscription
        // Options pair. (3.1.1: [MQTT-3.8.3-3], "a protocol violation".)
        if filters.is_empty() {
            return Err(DecodeError::ProtocolError(
                "[MQTT-3.8.3-2] SUBSCRIBE without Topic Filters",
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
        for (filter, _) in &self.filters {
            n += field_len(filter.as_bytes()) + 1;
        }
        n
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.packet_id == 0 || self.filters.is_empty() {
            return Err(EncodeError::InvalidPacket(
                "SUBSCRIBE needs a non-zero Packet Identifier and at least one filter",
            ));
        }
        dst.put_u16(self.packet_id);
        if version == ProtocolVersion::V5 {
            self.properties
                .encode(Place::of(PacketType::Subscribe), dst)?;
        }
        for (filter, options) in &self.filters {
            put_string(dst, filter)?;
            dst.put_u8(options.encode(version));
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
    fn v311_subscribe_two_filters() {
        let bytes = [
            0x82, 0x0C, 0x00, 0x0A, // packet id 10
            0x00, 0x03, b'a', b'/', b'+', 0x01, // "a/+" QoS 1
            0x00, 0x01, b'#', 0x02, // "#" QoS 2
        ];
        let p = Packet::Subscribe(Subscribe {
            packet_id: 10,
            properties: Properties::default(),
            filters: vec![
                ("a/+".into(), SubscriptionOptions::new(QoS::AtLeastOnce)),
                ("#".into(), SubscriptionOptions::new(QoS::ExactlyOnce)),
            ],
        });
        let v = ProtocolVersion::V311;
        assert_eq!(decode_server(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn v5_subscribe_options_and_subscription_identifier() {
        let bytes = [
            0x82,
            0x09,
            0x00,
            0x01, // packet id 1
            0x02,
            0x0B,
            0x2A, // Subscription Identifier 42
            0x00,
            0x01,
            b't',        // "t"
            0b0010_1110, // Retain Handling 2, RAP, No Local, QoS 2
        ];
        let p = Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties {
                subscription_identifiers: vec![42],
                ..Properties::default()
            },
            filters: vec![(
                "t".into(),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            )],
        });
        let v = ProtocolVersion::V5;
        assert_eq!(decode_server(v, &bytes).unwrap(), p);
        assert_eq!(encode_vec(&p, v), bytes);
    }

    #[test]
    fn filters_are_not_syntax_checked() {
        let bytes = [0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x00];
        let Packet::Subscribe(s) = decode_server(ProtocolVersion::V311, &bytes).unwrap() else {
            panic!("not SUBSCRIBE")
        };
        assert_eq!(s.filters[0].0, "a#");
    }

    #[test]
    fn mqtt_3_8_1_1_subscribe_flags_must_be_0010() {
        let bytes = [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00];
        let e = decode_server(ProtocolVersion::V311, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidFlags { .. }), "{e}");
    }

    #[test]
    fn mqtt_3_8_3_2_subscribe_without_filters_is_protocol_error() {
        for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let bytes: &[u8] = if v == ProtocolVersion::V5 {
                &[0x82, 0x03, 0x00, 0x01, 0x00]
            } else {
                &[0x82, 0x02, 0x00, 0x01]
            };
            let e = decode_server(v, bytes).unwrap_err();
            assert!(matches!(e, DecodeError::ProtocolError(_)), "{e}");
            assert_eq!(e.reason_code().0, 0x82);
        }
    }

    #[test]
    fn mqtt_2_2_1_3_subscribe_packet_id_0_is_protocol_error() {
        let bytes = [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b't', 0x00];
        let e = decode_server(ProtocolVersion::V311, &bytes).unwrap_err();
        assert_eq!(e.reason_code().0, 0x82, "{e}");
    }

    #[test]
    fn mqtt_3_8_3_5_reserved_option_bits_are_malformed() {
        // v5: bit 6 set.
        let bytes = [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b't', 0x40];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
        // 3.1.1: No Local (bit 2) is reserved there.
        let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x04];
        let e = decode_server(ProtocolVersion::V311, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
    }

    #[test]
    fn mqtt_3_8_3_4_v311_qos3_is_malformed() {
        let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x03];
        let e = decode_server(ProtocolVersion::V311, &bytes).unwrap_err();
        assert_eq!(e.reason_code().0, 0x81, "{e}");
    }

    #[test]
    fn spec_3_8_3_1_v5_qos3_is_protocol_error() {
        let bytes = [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b't', 0x03];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert_eq!(e.reason_code().0, 0x82, "{e}");
    }

    #[test]
    fn spec_3_8_3_1_retain_handling_3_is_protocol_error() {
        let bytes = [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b't', 0x30];
        let e = decode_server(ProtocolVersion::V5, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::ProtocolError(_)), "{e}");
    }

    #[test]
    fn filter_without_options_byte_is_truncated() {
        let bytes = [0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b't'];
        let e = decode_server(ProtocolVersion::V311, &bytes).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated), "{e}");
    }

    #[test]
    fn v311_encode_drops_v5_options() {
        let p = Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![(
                "t".into(),
                SubscriptionOptions {
                    no_local: true,
                    ..SubscriptionOptions::new(QoS::AtLeastOnce)
                },
            )],
        });
        assert_eq!(
            encode_vec(&p, ProtocolVersion::V311),
            [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x01]
        );
    }
}
