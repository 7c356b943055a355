//! MQTT packets <-> router values: PUBLISH <-> `Message`, topic filters (with
//! `$share/<group>/`) <-> `Filter`, QoS <-> `Delivery`.
//!
//! Total functions only: every input maps to a value or a typed refusal. Topic and
//! filter *syntax* rules live in `router::subject`; this file only chooses which
//! MQTT field carries which `Message` property (DESIGN.md, "Message properties").

use std::sync::Arc;

use dwbroker_codecs::mqtt::{Properties, Publish, QoS, ReasonCode};

use crate::router::{ConnId, Delivery, Dispatch, Filter, LastSubject, Message, Now, Subject};

/// MQTT QoS to the router's delivery guarantee.
pub(crate) fn delivery(qos: QoS) -> Delivery {
    match qos {
        QoS::AtMostOnce => Delivery::AtMostOnce,
        QoS::AtLeastOnce => Delivery::AtLeastOnce,
        QoS::ExactlyOnce => Delivery::ExactlyOnce,
    }
}

/// The router's delivery guarantee to MQTT QoS.
pub(crate) fn qos(delivery: Delivery) -> QoS {
    match delivery {
        Delivery::AtMostOnce => QoS::AtMostOnce,
        Delivery::AtLeastOnce => QoS::AtLeastOnce,
        Delivery::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// An incoming PUBLISH (or will) as a router `Message`.
///
/// Refuses, with the reason code to answer, a topic the subject space cannot hold.
pub(crate) fn message_from_publish(
    last: &mut LastSubject,
    publish: &Publish,
    origin: ConnId,
    now: Now,
) -> Result<Message, ReasonCode> {
    let subject = last
        .get(&publish.topic, Subject::from_mqtt_topic)
        .map_err(|_| ReasonCode::TOPIC_NAME_INVALID)?;
    let props = &publish.properties;
    let reply_to = match &props.response_topic {
        // [MQTT-3.3.2-14] The Response Topic MUST be a UTF-8 Encoded String (a topic
        // name: no wildcards).
        Some(t) => Some(Subject::from_mqtt_topic(t).map_err(|_| ReasonCode::PROTOCOL_ERROR)?),
        None => None,
    };
    Ok(Message {
        subject,
        payload: publish.payload.clone(),
        headers: props.user_properties.clone(),
        content_type: props.content_type.clone(),
        correlation_id: props.correlation_data.clone(),
        reply_to,
        expires_at: props
            .message_expiry_interval
            .map(|secs| now.unix_ms.saturating_add(u64::from(secs) * 1000)),
        payload_utf8: props.payload_format_indicator == Some(1),
        origin,
        retain: publish.retain,
        qos: delivery(publish.qos),
        ..Message::default()
    })
}

/// A router dispatch as an outgoing PUBLISH (packet id 0: the caller assigns one).
///
/// Returns `None` when the message has expired by `now`, since an expired message
/// must not be delivered. Properties MQTT cannot express are dropped, never invented.
pub(crate) fn publish_from_dispatch(dispatch: &Dispatch, now: Now) -> Option<Publish> {
    let msg: &Arc<Message> = &dispatch.message;
    let message_expiry_interval = match msg.ms_left(now.unix_ms) {
        Some(0) => return None,
        // The remaining lifetime, rounded up so that a message never reaches a
        // subscriber with interval 0 ("expired") while it is still alive.
        Some(ms) => Some(u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)),
        None => None,
    };
    let properties = Properties {
        payload_format_indicator: msg.payload_utf8.then_some(1),
        message_expiry_interval,
        content_type: msg.content_type.clone(),
        response_topic: msg.reply_to.as_ref().map(Subject::to_mqtt_topic),
        correlation_data: msg.correlation_id.clone(),
        subscription_identifiers: dispatch.subscription_ids.to_vec(),
        user_properties: msg.headers.clone(),
        ..Properties::default()
    };
    Some(Publish {
        dup: false,
        qos: qos(dispatch.qos),
        retain: dispatch.retain,
        topic: msg.subject.to_mqtt_topic(),
        packet_id: 0,
        properties,
        payload: msg.payload.clone(),
    })
}

/// A parsed SUBSCRIBE/UNSUBSCRIBE filter: the router filter and the shared
/// subscription group, if the filter had the form `$share/<group>/<filter>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicFilter {
    pub(crate) filter: Filter,
    pub(crate) share_group: Option<String>,
}

/// Parses an MQTT topic filter, including shared subscriptions.
///
/// `None` means the filter is invalid (SUBACK 0x80 in 3.1.1, 0x8F in 5.0).
pub(crate) fn topic_filter(text: &str) -> Option<TopicFilter> {
    if let Some(rest) = text.strip_prefix("$share/") {
        // [MQTT-4.8.2-1] A ShareName MUST be at least one character long and MUST
        // NOT include "/", "+" or "#"; [MQTT-4.8.2-2] it is followed by "/" and a
        // Topic Filter.
        let (group, filter) = rest.split_once('/')?;
        if group.is_empty() || group.contains(['+', '#']) {
            return None;
        }
        return Some(TopicFilter {
            filter: Filter::mqtt(filter).ok()?,
            share_group: Some(group.to_owned()),
        });
    }
    Some(TopicFilter {
        filter: Filter::mqtt(text).ok()?,
        share_group: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn publish(topic: &str) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: topic.into(),
            packet_id: 7,
            properties: Properties {
                user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
                content_type: Some("text/plain".into()),
                response_topic: Some("reply/here".into()),
                correlation_data: Some(Bytes::from_static(b"c1")),
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(10),
                ..Properties::default()
            },
            payload: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn publish_round_trips_through_message() {
        let now = Now::current();
        let msg =
            message_from_publish(&mut LastSubject::default(), &publish("a/b.c"), 9, now).unwrap();
        assert_eq!(msg.subject.as_str(), "a.b/c");
        assert_eq!(msg.reply_to.as_ref().unwrap().as_str(), "reply.here");
        assert_eq!(msg.origin, 9);
        let dispatch = Dispatch {
            message: Arc::new(msg),
            qos: Delivery::AtLeastOnce,
            retain: false,
            subscription_ids: [4].into_iter().collect(),
            share: None,
            seq: 0,
        };
        let out = publish_from_dispatch(&dispatch, now.plus_ms(2500)).unwrap();
        assert_eq!(out.topic, "a/b.c");
        assert_eq!(out.payload, Bytes::from_static(b"hello"));
        assert_eq!(
            out.properties.user_properties,
            publish("x").properties.user_properties
        );
        assert_eq!(out.properties.response_topic.as_deref(), Some("reply/here"));
        assert_eq!(
            out.properties.correlation_data,
            Some(Bytes::from_static(b"c1"))
        );
        assert_eq!(out.properties.content_type.as_deref(), Some("text/plain"));
        assert_eq!(out.properties.payload_format_indicator, Some(1));
        assert_eq!(out.properties.message_expiry_interval, Some(8));
        assert_eq!(out.properties.subscription_identifiers, vec![4]);
        assert!(!out.retain);
    }

    #[test]
    fn expired_dispatch_is_not_published() {
        let now = Now::current();
        let msg = message_from_publish(&mut LastSubject::default(), &publish("a"), 1, now).unwrap();
        let dispatch = Dispatch {
            message: Arc::new(msg),
            qos: Delivery::AtMostOnce,
            retain: false,
            subscription_ids: Default::default(),
            share: None,
            seq: 0,
        };
        assert!(publish_from_dispatch(&dispatch, now.plus_ms(10_000)).is_none());
    }

    #[test]
    fn shared_filters_parse() {
        let f = topic_filter("$share/g1/a/+").unwrap();
        assert_eq!(f.share_group.as_deref(), Some("g1"));
        assert_eq!(f.filter, Filter::mqtt("a/+").unwrap());
        assert!(topic_filter("$share/g1").is_none());
        assert!(topic_filter("$share//a").is_none());
        assert!(topic_filter("$share/g+/a").is_none());
        assert!(topic_filter("a/#/b").is_none());
        assert!(topic_filter("").is_none());
        assert!(topic_filter("$SYS/#").unwrap().share_group.is_none());
    }
}
