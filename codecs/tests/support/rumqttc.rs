//! Conversions between our MQTT packets and rumqttc 0.25's (`rumqttc::mqttbytes::v4` for
//! 3.1.1, `rumqttc::v5::mqttbytes::v5` for 5), shared by the differential tests
//! (tests/differential.rs) and the differential fuzz target (fuzz/fuzz_targets/
//! differential_mqtt.rs). The divergences they paper over are listed in
//! tests/differential.rs.
#![allow(dead_code)]

use bytes::Bytes;
use dwbroker_codecs::mqtt::{
    Ack, ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS,
    ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will,
};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

pub fn from_client(p: &Packet) -> bool {
    matches!(
        p,
        Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq
            | Packet::Auth(_)
            | Packet::Disconnect(_)
    ) || matches!(p, Packet::Publish(x) if x.properties.subscription_identifiers.is_empty())
        || matches!(
            p,
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_)
        )
}

pub fn qos4(q: QoS) -> rumqttc::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}

pub fn qos_from4(q: rumqttc::mqttbytes::QoS) -> QoS {
    QoS::from_u8(q as u8).expect("valid QoS")
}

pub fn qos5(q: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

pub fn qos_from5(q: rumqttc::v5::mqttbytes::QoS) -> QoS {
    QoS::from_u8(q as u8).expect("valid QoS")
}

/// Looks `x` up in a (rumqttc value, wire byte) table, either way.
pub fn to_code<T: PartialEq + std::fmt::Debug>(table: &[(T, u8)], x: &T) -> ReasonCode {
    ReasonCode(
        table
            .iter()
            .find(|(t, _)| t == x)
            .unwrap_or_else(|| panic!("{x:?} not in table"))
            .1,
    )
}

pub fn from_code<T: Clone>(table: &[(T, u8)], c: ReasonCode) -> T {
    table
        .iter()
        .find(|(_, b)| *b == c.0)
        .unwrap_or_else(|| panic!("{c:?} not in table"))
        .0
        .clone()
}

// ===== 3.1.1 conversions =====

pub fn v4_connack_codes() -> Vec<(v4::ConnectReturnCode, u8)> {
    use v4::ConnectReturnCode::*;
    vec![
        (Success, 0x00),
        (RefusedProtocolVersion, 0x84),
        (BadClientId, 0x85),
        (ServiceUnavailable, 0x88),
        (BadUserNamePassword, 0x86),
        (NotAuthorized, 0x87),
    ]
}

pub fn to_v4(p: &Packet) -> v4::Packet {
    match p {
        Packet::Connect(c) => v4::Packet::Connect(v4::Connect {
            protocol: rumqttc::mqttbytes::Protocol::V4,
            keep_alive: c.keep_alive,
            client_id: c.client_id.clone(),
            clean_session: c.clean_start,
            last_will: c.will.as_ref().map(|w| v4::LastWill {
                topic: w.topic.clone(),
                message: w.payload.clone(),
                qos: qos4(w.qos),
                retain: w.retain,
            }),
            login: c.username.as_ref().map(|u| v4::Login {
                username: u.clone(),
                password: String::from_utf8(c.password.clone().unwrap_or_default().to_vec())
                    .expect("UTF-8 password"),
            }),
        }),
        Packet::ConnAck(c) => v4::Packet::ConnAck(v4::ConnAck {
            session_present: c.session_present,
            code: from_code(&v4_connack_codes(), c.code),
        }),
        Packet::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: qos4(p.qos),
            retain: p.retain,
            topic: p.topic.clone(),
            pkid: p.packet_id,
            payload: p.payload.clone(),
        }),
        Packet::PubAck(a) => v4::Packet::PubAck(v4::PubAck { pkid: a.packet_id }),
        Packet::PubRec(a) => v4::Packet::PubRec(v4::PubRec { pkid: a.packet_id }),
        Packet::PubRel(a) => v4::Packet::PubRel(v4::PubRel { pkid: a.packet_id }),
        Packet::PubComp(a) => v4::Packet::PubComp(v4::PubComp { pkid: a.packet_id }),
        Packet::Subscribe(s) => v4::Packet::Subscribe(v4::Subscribe {
            pkid: s.packet_id,
            filters: s
                .filters
                .iter()
                .map(|(f, o)| v4::SubscribeFilter {
                    path: f.clone(),
                    qos: qos4(o.qos),
                })
                .collect(),
        }),
        Packet::SubAck(s) => v4::Packet::SubAck(v4::SubAck {
            pkid: s.packet_id,
            return_codes: s
                .codes
                .iter()
                .map(|c| match QoS::from_u8(c.0) {
                    Some(q) => v4::SubscribeReasonCode::Success(qos4(q)),
                    None => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        }),
        Packet::Unsubscribe(u) => v4::Packet::Unsubscribe(v4::Unsubscribe {
            pkid: u.packet_id,
            topics: u.filters.clone(),
        }),
        Packet::UnsubAck(u) => v4::Packet::UnsubAck(v4::UnsubAck { pkid: u.packet_id }),
        Packet::PingReq => v4::Packet::PingReq,
        Packet::PingResp => v4::Packet::PingResp,
        Packet::Disconnect(_) => v4::Packet::Disconnect,
        Packet::Auth(_) => panic!("no AUTH in 3.1.1"),
    }
}

pub fn from_v4(p: v4::Packet) -> Packet {
    let ack = |pkid| Ack::new(pkid);
    match p {
        v4::Packet::Connect(c) => Packet::Connect(Connect {
            version: ProtocolVersion::V311,
            clean_start: c.clean_session,
            keep_alive: c.keep_alive,
            properties: Properties::default(),
            client_id: c.client_id,
            will: c.last_will.map(|w| Will {
                topic: w.topic,
                payload: w.message,
                qos: qos_from4(w.qos),
                retain: w.retain,
                properties: Properties::default(),
            }),
            username: c.login.as_ref().map(|l| l.username.clone()),
            password: c.login.map(|l| Bytes::from(l.password)),
        }),
        v4::Packet::ConnAck(c) => Packet::ConnAck(ConnAck {
            session_present: c.session_present,
            code: to_code(&v4_connack_codes(), &c.code),
            properties: Properties::default(),
        }),
        v4::Packet::Publish(p) => Packet::Publish(Publish {
            dup: p.dup,
            qos: qos_from4(p.qos),
            retain: p.retain,
            topic: p.topic,
            packet_id: p.pkid,
            properties: Properties::default(),
            payload: p.payload,
        }),
        v4::Packet::PubAck(a) => Packet::PubAck(ack(a.pkid)),
        v4::Packet::PubRec(a) => Packet::PubRec(ack(a.pkid)),
        v4::Packet::PubRel(a) => Packet::PubRel(ack(a.pkid)),
        v4::Packet::PubComp(a) => Packet::PubComp(ack(a.pkid)),
        v4::Packet::Subscribe(s) => Packet::Subscribe(Subscribe {
            packet_id: s.pkid,
            properties: Properties::default(),
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, SubscriptionOptions::new(qos_from4(f.qos))))
                .collect(),
        }),
        v4::Packet::SubAck(s) => Packet::SubAck(SubAck {
            packet_id: s.pkid,
            properties: Properties::default(),
            codes: s
                .return_codes
                .into_iter()
                .map(|c| match c {
                    v4::SubscribeReasonCode::Success(q) => ReasonCode(q as u8),
                    v4::SubscribeReasonCode::Failure => ReasonCode(0x80),
                })
                .collect(),
        }),
        v4::Packet::Unsubscribe(u) => Packet::Unsubscribe(Unsubscribe {
            packet_id: u.pkid,
            properties: Properties::default(),
            filters: u.topics,
        }),
        v4::Packet::UnsubAck(u) => Packet::UnsubAck(UnsubAck {
            packet_id: u.pkid,
            properties: Properties::default(),
            codes: Vec::new(),
        }),
        v4::Packet::PingReq => Packet::PingReq,
        v4::Packet::PingResp => Packet::PingResp,
        v4::Packet::Disconnect => Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)),
    }
}

// ===== 5.0 conversions =====

pub fn none_if_empty<T>(empty: bool, f: impl FnOnce() -> T) -> Option<T> {
    if empty {
        None
    } else {
        Some(f())
    }
}

pub fn v5_connack_codes() -> Vec<(v5::ConnectReturnCode, u8)> {
    use v5::ConnectReturnCode::*;
    vec![
        (Success, 0x00),
        (UnspecifiedError, 0x80),
        (MalformedPacket, 0x81),
        (ProtocolError, 0x82),
        (ImplementationSpecificError, 0x83),
        (UnsupportedProtocolVersion, 0x84),
        (ClientIdentifierNotValid, 0x85),
        (BadUserNamePassword, 0x86),
        (NotAuthorized, 0x87),
        (ServerUnavailable, 0x88),
        (ServerBusy, 0x89),
        (Banned, 0x8A),
        (BadAuthenticationMethod, 0x8C),
        (TopicNameInvalid, 0x90),
        (PacketTooLarge, 0x95),
        (QuotaExceeded, 0x97),
        (PayloadFormatInvalid, 0x99),
        (RetainNotSupported, 0x9A),
        (QoSNotSupported, 0x9B),
        (UseAnotherServer, 0x9C),
        (ServerMoved, 0x9D),
        (ConnectionRateExceeded, 0x9F),
    ]
}

pub fn v5_puback_codes() -> Vec<(v5::PubAckReason, u8)> {
    use v5::PubAckReason::*;
    vec![
        (Success, 0x00),
        (NoMatchingSubscribers, 0x10),
        (UnspecifiedError, 0x80),
        (ImplementationSpecificError, 0x83),
        (NotAuthorized, 0x87),
        (TopicNameInvalid, 0x90),
        (PacketIdentifierInUse, 0x91),
        (QuotaExceeded, 0x97),
        (PayloadFormatInvalid, 0x99),
    ]
}

pub fn v5_pubrec_codes() -> Vec<(v5::PubRecReason, u8)> {
    use v5::PubRecReason::*;
    vec![
        (Success, 0x00),
        (NoMatchingSubscribers, 0x10),
        (UnspecifiedError, 0x80),
        (ImplementationSpecificError, 0x83),
        (NotAuthorized, 0x87),
        (TopicNameInvalid, 0x90),
        (PacketIdentifierInUse, 0x91),
        (QuotaExceeded, 0x97),
        (PayloadFormatInvalid, 0x99),
    ]
}

pub fn v5_pubrel_codes() -> Vec<(v5::PubRelReason, u8)> {
    vec![
        (v5::PubRelReason::Success, 0x00),
        (v5::PubRelReason::PacketIdentifierNotFound, 0x92),
    ]
}

pub fn v5_pubcomp_codes() -> Vec<(v5::PubCompReason, u8)> {
    vec![
        (v5::PubCompReason::Success, 0x00),
        (v5::PubCompReason::PacketIdentifierNotFound, 0x92),
    ]
}

pub fn v5_suback_codes() -> Vec<(v5::SubscribeReasonCode, u8)> {
    use v5::SubscribeReasonCode::*;
    vec![
        (Success(rumqttc::v5::mqttbytes::QoS::AtMostOnce), 0),
        (Success(rumqttc::v5::mqttbytes::QoS::AtLeastOnce), 1),
        (Success(rumqttc::v5::mqttbytes::QoS::ExactlyOnce), 2),
        (Unspecified, 0x80),
        (ImplementationSpecific, 0x83),
        (NotAuthorized, 0x87),
        (TopicFilterInvalid, 0x8F),
        (PkidInUse, 0x91),
        (QuotaExceeded, 0x97),
        (SharedSubscriptionsNotSupported, 0x9E),
        (SubscriptionIdNotSupported, 0xA1),
        (WildcardSubscriptionsNotSupported, 0xA2),
    ]
}

pub fn v5_unsuback_codes() -> Vec<(v5::UnsubAckReason, u8)> {
    use v5::UnsubAckReason::*;
    vec![
        (Success, 0x00),
        (NoSubscriptionExisted, 0x11),
        (UnspecifiedError, 0x80),
        (ImplementationSpecificError, 0x83),
        (NotAuthorized, 0x87),
        (TopicFilterInvalid, 0x8F),
        (PacketIdentifierInUse, 0x91),
    ]
}

pub fn retain5(r: RetainHandling) -> v5::RetainForwardRule {
    match r {
        RetainHandling::SendAtSubscribe => v5::RetainForwardRule::OnEverySubscribe,
        RetainHandling::SendIfNew => v5::RetainForwardRule::OnNewSubscribe,
        RetainHandling::DoNotSend => v5::RetainForwardRule::Never,
    }
}

pub fn retain_from5(r: v5::RetainForwardRule) -> RetainHandling {
    match r {
        v5::RetainForwardRule::OnEverySubscribe => RetainHandling::SendAtSubscribe,
        v5::RetainForwardRule::OnNewSubscribe => RetainHandling::SendIfNew,
        v5::RetainForwardRule::Never => RetainHandling::DoNotSend,
    }
}

pub fn to_v5(p: &Packet) -> v5::Packet {
    match p {
        Packet::Connect(c) => {
            let pr = &c.properties;
            let connect = v5::Connect {
                keep_alive: c.keep_alive,
                client_id: c.client_id.clone(),
                clean_start: c.clean_start,
                properties: none_if_empty(pr.is_empty(), || v5::ConnectProperties {
                    session_expiry_interval: pr.session_expiry_interval,
                    receive_maximum: pr.receive_maximum,
                    max_packet_size: pr.maximum_packet_size,
                    topic_alias_max: pr.topic_alias_maximum,
                    request_response_info: pr.request_response_information,
                    request_problem_info: pr.request_problem_information,
                    user_properties: pr.user_properties.clone(),
                    authentication_method: pr.authentication_method.clone(),
                    authentication_data: pr.authentication_data.clone(),
                }),
            };
            let will = c.will.as_ref().map(|w| {
                let wp = &w.properties;
                v5::LastWill {
                    topic: Bytes::from(w.topic.clone()),
                    message: w.payload.clone(),
                    qos: qos5(w.qos),
                    retain: w.retain,
                    properties: none_if_empty(wp.is_empty(), || v5::LastWillProperties {
                        delay_interval: wp.will_delay_interval,
                        payload_format_indicator: wp.payload_format_indicator,
                        message_expiry_interval: wp.message_expiry_interval,
                        content_type: wp.content_type.clone(),
                        response_topic: wp.response_topic.clone(),
                        correlation_data: wp.correlation_data.clone(),
                        user_properties: wp.user_properties.clone(),
                    }),
                }
            });
            let login = c.username.as_ref().map(|u| v5::Login {
                username: u.clone(),
                password: String::from_utf8(c.password.clone().unwrap_or_default().to_vec())
                    .expect("UTF-8 password"),
            });
            v5::Packet::Connect(connect, will, login)
        }
        Packet::ConnAck(c) => {
            let pr = &c.properties;
            v5::Packet::ConnAck(v5::ConnAck {
                session_present: c.session_present,
                code: from_code(&v5_connack_codes(), c.code),
                properties: none_if_empty(pr.is_empty(), || v5::ConnAckProperties {
                    session_expiry_interval: pr.session_expiry_interval,
                    receive_max: pr.receive_maximum,
                    max_qos: pr.maximum_qos,
                    retain_available: pr.retain_available,
                    max_packet_size: pr.maximum_packet_size,
                    assigned_client_identifier: pr.assigned_client_identifier.clone(),
                    topic_alias_max: pr.topic_alias_maximum,
                    reason_string: pr.reason_string.clone(),
                    user_properties: pr.user_properties.clone(),
                    wildcard_subscription_available: pr.wildcard_subscription_available,
                    subscription_identifiers_available: pr.subscription_identifier_available,
                    shared_subscription_available: pr.shared_subscription_available,
                    server_keep_alive: pr.server_keep_alive,
                    response_information: pr.response_information.clone(),
                    server_reference: pr.server_reference.clone(),
                    authentication_method: pr.authentication_method.clone(),
                    authentication_data: pr.authentication_data.clone(),
                }),
            })
        }
        Packet::Publish(p) => {
            let pr = &p.properties;
            v5::Packet::Publish(v5::Publish {
                dup: p.dup,
                qos: qos5(p.qos),
                retain: p.retain,
                topic: Bytes::from(p.topic.clone()),
                pkid: p.packet_id,
                payload: p.payload.clone(),
                properties: none_if_empty(pr.is_empty(), || v5::PublishProperties {
                    payload_format_indicator: pr.payload_format_indicator,
                    message_expiry_interval: pr.message_expiry_interval,
                    topic_alias: pr.topic_alias,
                    response_topic: pr.response_topic.clone(),
                    correlation_data: pr.correlation_data.clone(),
                    user_properties: pr.user_properties.clone(),
                    subscription_identifiers: pr
                        .subscription_identifiers
                        .iter()
                        .map(|&i| i as usize)
                        .collect(),
                    content_type: pr.content_type.clone(),
                }),
            })
        }
        Packet::PubAck(a) => v5::Packet::PubAck(v5::PubAck {
            pkid: a.packet_id,
            reason: from_code(&v5_puback_codes(), a.code),
            properties: none_if_empty(a.properties.is_empty(), || v5::PubAckProperties {
                reason_string: a.properties.reason_string.clone(),
                user_properties: a.properties.user_properties.clone(),
            }),
        }),
        Packet::PubRec(a) => v5::Packet::PubRec(v5::PubRec {
            pkid: a.packet_id,
            reason: from_code(&v5_pubrec_codes(), a.code),
            properties: none_if_empty(a.properties.is_empty(), || v5::PubRecProperties {
                reason_string: a.properties.reason_string.clone(),
                user_properties: a.properties.user_properties.clone(),
            }),
        }),
        Packet::PubRel(a) => v5::Packet::PubRel(v5::PubRel {
            pkid: a.packet_id,
            reason: from_code(&v5_pubrel_codes(), a.code),
            properties: none_if_empty(a.properties.is_empty(), || v5::PubRelProperties {
                reason_string: a.properties.reason_string.clone(),
                user_properties: a.properties.user_properties.clone(),
            }),
        }),
        Packet::PubComp(a) => v5::Packet::PubComp(v5::PubComp {
            pkid: a.packet_id,
            reason: from_code(&v5_pubcomp_codes(), a.code),
            properties: none_if_empty(a.properties.is_empty(), || v5::PubCompProperties {
                reason_string: a.properties.reason_string.clone(),
                user_properties: a.properties.user_properties.clone(),
            }),
        }),
        Packet::Subscribe(s) => v5::Packet::Subscribe(v5::Subscribe {
            pkid: s.packet_id,
            filters: s
                .filters
                .iter()
                .map(|(f, o)| v5::Filter {
                    path: f.clone(),
                    qos: qos5(o.qos),
                    nolocal: o.no_local,
                    preserve_retain: o.retain_as_published,
                    retain_forward_rule: retain5(o.retain_handling),
                })
                .collect(),
            properties: none_if_empty(s.properties.is_empty(), || v5::SubscribeProperties {
                id: s
                    .properties
                    .subscription_identifiers
                    .first()
                    .map(|&i| i as usize),
                user_properties: s.properties.user_properties.clone(),
            }),
        }),
        Packet::SubAck(s) => v5::Packet::SubAck(v5::SubAck {
            pkid: s.packet_id,
            return_codes: s
                .codes
                .iter()
                .map(|&c| from_code(&v5_suback_codes(), c))
                .collect(),
            properties: none_if_empty(s.properties.is_empty(), || v5::SubAckProperties {
                reason_string: s.properties.reason_string.clone(),
                user_properties: s.properties.user_properties.clone(),
            }),
        }),
        Packet::Unsubscribe(u) => v5::Packet::Unsubscribe(v5::Unsubscribe {
            pkid: u.packet_id,
            filters: u.filters.clone(),
            properties: none_if_empty(u.properties.is_empty(), || v5::UnsubscribeProperties {
                user_properties: u.properties.user_properties.clone(),
            }),
        }),
        Packet::UnsubAck(u) => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid: u.packet_id,
            reasons: u
                .codes
                .iter()
                .map(|&c| from_code(&v5_unsuback_codes(), c))
                .collect(),
            properties: none_if_empty(u.properties.is_empty(), || v5::UnsubAckProperties {
                reason_string: u.properties.reason_string.clone(),
                user_properties: u.properties.user_properties.clone(),
            }),
        }),
        Packet::PingReq => v5::Packet::PingReq(v5::PingReq),
        Packet::PingResp => v5::Packet::PingResp(v5::PingResp),
        Packet::Disconnect(d) => v5::Packet::Disconnect(v5::Disconnect {
            reason_code: v5::DisconnectReasonCode::try_from(d.code.0).expect("known code"),
            properties: none_if_empty(d.properties.is_empty(), || v5::DisconnectProperties {
                session_expiry_interval: d.properties.session_expiry_interval,
                reason_string: d.properties.reason_string.clone(),
                user_properties: d.properties.user_properties.clone(),
                server_reference: d.properties.server_reference.clone(),
            }),
        }),
        Packet::Auth(_) => panic!("rumqttc cannot build AUTH (divergence 8)"),
    }
}

pub fn ack_props(
    reason_string: Option<String>,
    user_properties: Vec<(String, String)>,
) -> Properties {
    Properties {
        reason_string,
        user_properties,
        ..Properties::default()
    }
}

pub fn from_v5(p: v5::Packet) -> Packet {
    match p {
        v5::Packet::Connect(c, will, login) => {
            let pr = c
                .properties
                .map_or_else(Properties::default, |p| Properties {
                    session_expiry_interval: p.session_expiry_interval,
                    receive_maximum: p.receive_maximum,
                    maximum_packet_size: p.max_packet_size,
                    topic_alias_maximum: p.topic_alias_max,
                    request_response_information: p.request_response_info,
                    request_problem_information: p.request_problem_info,
                    user_properties: p.user_properties,
                    authentication_method: p.authentication_method,
                    authentication_data: p.authentication_data,
                    ..Properties::default()
                });
            Packet::Connect(Connect {
                version: ProtocolVersion::V5,
                clean_start: c.clean_start,
                keep_alive: c.keep_alive,
                properties: pr,
                client_id: c.client_id,
                will: will.map(|w| Will {
                    topic: String::from_utf8(w.topic.to_vec()).expect("UTF-8"),
                    payload: w.message,
                    qos: qos_from5(w.qos),
                    retain: w.retain,
                    properties: w
                        .properties
                        .map_or_else(Properties::default, |p| Properties {
                            will_delay_interval: p.delay_interval,
                            payload_format_indicator: p.payload_format_indicator,
                            message_expiry_interval: p.message_expiry_interval,
                            content_type: p.content_type,
                            response_topic: p.response_topic,
                            correlation_data: p.correlation_data,
                            user_properties: p.user_properties,
                            ..Properties::default()
                        }),
                }),
                username: login.as_ref().map(|l| l.username.clone()),
                password: login.map(|l| Bytes::from(l.password)),
            })
        }
        v5::Packet::ConnAck(c) => Packet::ConnAck(ConnAck {
            session_present: c.session_present,
            code: to_code(&v5_connack_codes(), &c.code),
            properties: c
                .properties
                .map_or_else(Properties::default, |p| Properties {
                    session_expiry_interval: p.session_expiry_interval,
                    receive_maximum: p.receive_max,
                    maximum_qos: p.max_qos,
                    retain_available: p.retain_available,
                    maximum_packet_size: p.max_packet_size,
                    assigned_client_identifier: p.assigned_client_identifier,
                    topic_alias_maximum: p.topic_alias_max,
                    reason_string: p.reason_string,
                    user_properties: p.user_properties,
                    wildcard_subscription_available: p.wildcard_subscription_available,
                    subscription_identifier_available: p.subscription_identifiers_available,
                    shared_subscription_available: p.shared_subscription_available,
                    server_keep_alive: p.server_keep_alive,
                    response_information: p.response_information,
                    server_reference: p.server_reference,
                    authentication_method: p.authentication_method,
                    authentication_data: p.authentication_data,
                    ..Properties::default()
                }),
        }),
        v5::Packet::Publish(p) => Packet::Publish(Publish {
            dup: p.dup,
            qos: qos_from5(p.qos),
            retain: p.retain,
            topic: String::from_utf8(p.topic.to_vec()).expect("UTF-8"),
            packet_id: p.pkid,
            properties: p
                .properties
                .map_or_else(Properties::default, |p| Properties {
                    payload_format_indicator: p.payload_format_indicator,
                    message_expiry_interval: p.message_expiry_interval,
                    topic_alias: p.topic_alias,
                    response_topic: p.response_topic,
                    correlation_data: p.correlation_data,
                    user_properties: p.user_properties,
                    subscription_identifiers: p
                        .subscription_identifiers
                        .into_iter()
                        .map(|i| u32::try_from(i).expect("fits"))
                        .collect(),
                    content_type: p.content_type,
                    ..Properties::default()
                }),
            payload: p.payload,
        }),
        v5::Packet::PubAck(a) => Packet::PubAck(Ack {
            packet_id: a.pkid,
            code: to_code(&v5_puback_codes(), &a.reason),
            properties: a.properties.map_or_else(Properties::default, |p| {
                ack_props(p.reason_string, p.user_properties)
            }),
        }),
        v5::Packet::PubRec(a) => Packet::PubRec(Ack {
            packet_id: a.pkid,
            code: to_code(&v5_pubrec_codes(), &a.reason),
            properties: a.properties.map_or_else(Properties::default, |p| {
                ack_props(p.reason_string, p.user_properties)
            }),
        }),
        v5::Packet::PubRel(a) => Packet::PubRel(Ack {
            packet_id: a.pkid,
            code: to_code(&v5_pubrel_codes(), &a.reason),
            properties: a.properties.map_or_else(Properties::default, |p| {
                ack_props(p.reason_string, p.user_properties)
            }),
        }),
        v5::Packet::PubComp(a) => Packet::PubComp(Ack {
            packet_id: a.pkid,
            code: to_code(&v5_pubcomp_codes(), &a.reason),
            properties: a.properties.map_or_else(Properties::default, |p| {
                ack_props(p.reason_string, p.user_properties)
            }),
        }),
        v5::Packet::Subscribe(s) => Packet::Subscribe(Subscribe {
            packet_id: s.pkid,
            properties: s
                .properties
                .map_or_else(Properties::default, |p| Properties {
                    subscription_identifiers: p
                        .id
                        .map(|i| u32::try_from(i).expect("fits"))
                        .into_iter()
                        .collect(),
                    user_properties: p.user_properties,
                    ..Properties::default()
                }),
            filters: s
                .filters
                .into_iter()
                .map(|f| {
                    (
                        f.path,
                        SubscriptionOptions {
                            qos: qos_from5(f.qos),
                            no_local: f.nolocal,
                            retain_as_published: f.preserve_retain,
                            retain_handling: retain_from5(f.retain_forward_rule),
                        },
                    )
                })
                .collect(),
        }),
        v5::Packet::SubAck(s) => Packet::SubAck(SubAck {
            packet_id: s.pkid,
            properties: s.properties.map_or_else(Properties::default, |p| {
                ack_props(p.reason_string, p.user_properties)
            }),
            codes: s
                .return_codes
                .iter()
                .map(|c| to_code(&v5_suback_codes(), c))
                .collect(),
        }),
        v5::Packet::Unsubscribe(u) => Packet::Unsubscribe(Unsubscribe {
            packet_id: u.pkid,
            properties: u
                .properties
                .map_or_else(Properties::default, |p| Properties {
                    user_properties: p.user_properties,
                    ..Properties::default()
                }),
            filters: u.filters,
        }),
        v5::Packet::UnsubAck(u) => Packet::UnsubAck(UnsubAck {
            packet_id: u.pkid,
            properties: u.properties.map_or_else(Properties::default, |p| {
                ack_props(p.reason_string, p.user_properties)
            }),
            codes: u
                .reasons
                .iter()
                .map(|c| to_code(&v5_unsuback_codes(), c))
                .collect(),
        }),
        v5::Packet::PingReq(_) => Packet::PingReq,
        v5::Packet::PingResp(_) => Packet::PingResp,
        v5::Packet::Disconnect(d) => Packet::Disconnect(Disconnect {
            code: ReasonCode(d.reason_code as u8),
            properties: d
                .properties
                .map_or_else(Properties::default, |p| Properties {
                    session_expiry_interval: p.session_expiry_interval,
                    reason_string: p.reason_string,
                    user_properties: p.user_properties,
                    server_reference: p.server_reference,
                    ..Properties::default()
                }),
        }),
        v5::Packet::Auth(_) => panic!("rumqttc's AUTH fields cannot be named (divergence 8)"),
    }
}

/// Whether `p` is a reason-only DISCONNECT, which rumqttc can neither write nor read
/// correctly (divergence 2).
pub fn reason_only_disconnect(p: &Packet) -> bool {
    matches!(p, Packet::Disconnect(d) if d.properties.is_empty() && d.code != ReasonCode::SUCCESS)
}
