//! HTTP requests into router messages and messages into the bus's JSON: the
//! message's names in the path's protocol, its payload as UTF-8 text when it is
//! (base64 otherwise), its headers and common properties.

use axum::http::HeaderMap;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::router::{Delivery, Message, Subject};

/// The protocol a bus path speaks: how its names read and map to subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Dialect {
    /// `/mqtt/<topic>`: `a/b/c`, filters with `+` and `#`.
    Mqtt,
    /// `/nats/<subject>`: `a.b.c`, filters with `*` and `>`.
    Nats,
    /// `/amqp/...`: routing keys (subjects as the amq.topic exchange sees them).
    Amqp,
    /// `/stomp/topic/<key>`: amq.topic's routing keys and patterns, as STOMP
    /// topic subscriptions use them.
    Stomp,
}

impl Dialect {
    pub(super) fn subject(self, name: &str) -> Option<Subject> {
        match self {
            Dialect::Mqtt => Subject::from_mqtt_topic(name).ok(),
            Dialect::Nats => crate::protocols::nats::valid_publish_subject(name)
                .then(|| Subject::new(name).ok())
                .flatten(),
            Dialect::Amqp | Dialect::Stomp => Subject::new(name).ok(),
        }
    }

    pub(super) fn filter(self, name: &str) -> Option<crate::router::Filter> {
        match self {
            Dialect::Mqtt => crate::router::Filter::mqtt(name).ok(),
            Dialect::Nats => crate::router::Filter::nats(name).ok(),
            Dialect::Amqp | Dialect::Stomp => crate::router::Filter::amqp_topic(name).ok(),
        }
    }
}

/// Request headers that set a message's properties; `X-Header-<name>` sets an
/// application header.
const REPLY_TO: &str = "x-reply-to";
const CORRELATION_ID: &str = "x-correlation-id";
const MESSAGE_ID: &str = "x-message-id";
const HEADER_PREFIX: &str = "x-header-";
const PRIORITY: &str = "x-priority";
/// Milliseconds the message may wait to be delivered.
const EXPIRATION: &str = "x-expiration";
const DELIVERY_MODE: &str = "x-delivery-mode";
const PERSISTENT: &str = "x-persistent";

/// The message a POST (or a request's PUT) publishes: `body` on `subject`, its
/// properties from the headers (a reply-to in the path's dialect), published as
/// connection 0 (in process).
pub(super) fn message(
    dialect: Dialect,
    subject: Subject,
    headers: &HeaderMap,
    body: Bytes,
    qos: Delivery,
) -> Result<Message, String> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| format!("{name} is not text"))
            })
            .transpose()
    };
    let reply_to = match text(REPLY_TO)? {
        Some(name) => Some(
            dialect
                .subject(&name)
                .ok_or_else(|| format!("X-Reply-To {name:?} is not a valid name"))?,
        ),
        None => None,
    };
    let number = |name: &str| -> Result<Option<u64>, String> {
        text(name)?
            .map(|t| t.parse().map_err(|_| format!("{name} is not a number")))
            .transpose()
    };
    let priority = number(PRIORITY)?
        .map(|p| u8::try_from(p).map_err(|_| format!("{PRIORITY} is 0 to 255")))
        .transpose()?;
    let expires_at =
        number(EXPIRATION)?.map(|ms| crate::protocols::now().unix_ms.saturating_add(ms));
    // AMQP's delivery mode 2 makes a message persistent.
    // AMQP's delivery mode 2 and STOMP's `persistent:true` make a message
    // persistent.
    let qos = match (
        dialect,
        number(DELIVERY_MODE)?,
        text(PERSISTENT)?.as_deref(),
    ) {
        (Dialect::Amqp, Some(2), None) | (Dialect::Stomp, None, Some("true")) => {
            Delivery::AtLeastOnce
        }
        (Dialect::Amqp, Some(1) | None, None) | (Dialect::Stomp, None, Some("false") | None) => qos,
        (Dialect::Mqtt | Dialect::Nats, None, None) => qos,
        _ => {
            return Err(format!(
            "{DELIVERY_MODE} (1 or 2) is for AMQP paths, {PERSISTENT} (true or false) for STOMP's"
        ))
        }
    };
    let mut message = Message {
        subject,
        payload: body,
        priority,
        expires_at,
        content_type: text("content-type")?,
        correlation_id: text(CORRELATION_ID)?.map(Bytes::from),
        message_id: text(MESSAGE_ID)?,
        reply_to,
        qos,
        ..Message::default()
    };
    for (name, value) in headers {
        if let Some(header) = name.as_str().strip_prefix(HEADER_PREFIX) {
            let value = value.to_str().map_err(|_| format!("{name} is not text"))?;
            message.headers.push((header.to_owned(), value.to_owned()));
        }
    }
    Ok(message)
}

/// A message taken from an AMQP queue as the bus shows it: with the exchange
/// and routing key it was published with.
pub(super) fn entry_json(entry: &crate::router::Entry) -> Value {
    let mut v = message_json(Dialect::Amqp, &entry.message, entry.message.qos, false);
    v["exchange"] = json!(entry.exchange.as_ref());
    v["routing_key"] = json!(entry.routing_key.as_ref());
    v["redelivered"] = json!(entry.redelivered);
    v
}

/// A delivered message as the bus shows it.
pub(super) fn message_json(
    dialect: Dialect,
    message: &Message,
    qos: Delivery,
    retain: bool,
) -> Value {
    let mut v = Map::new();
    v.insert("subject".into(), json!(message.subject.as_str()));
    match dialect {
        Dialect::Mqtt => {
            v.insert("topic".into(), json!(message.subject.to_mqtt_topic()));
        }
        Dialect::Stomp => {
            let destination = format!("/topic/{}", message.subject.as_str());
            v.insert("destination".into(), json!(destination));
        }
        Dialect::Nats | Dialect::Amqp => {}
    }
    match std::str::from_utf8(&message.payload) {
        Ok(text) => {
            v.insert("payload".into(), json!(text));
            v.insert("encoding".into(), json!("utf-8"));
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&message.payload);
            v.insert("payload".into(), json!(encoded));
            v.insert("encoding".into(), json!("base64"));
        }
    }
    if !message.headers.is_empty() {
        let headers: Map<String, Value> = message
            .headers
            .iter()
            .map(|(k, val)| (k.clone(), json!(val)))
            .collect();
        v.insert("headers".into(), Value::Object(headers));
    }
    if let Some(t) = &message.content_type {
        v.insert("content_type".into(), json!(t));
    }
    if let Some(c) = &message.correlation_id {
        v.insert("correlation_id".into(), json!(String::from_utf8_lossy(c)));
    }
    if let Some(r) = &message.reply_to {
        let shown = match dialect {
            Dialect::Mqtt => r.to_mqtt_topic(),
            Dialect::Nats | Dialect::Amqp | Dialect::Stomp => r.as_str().to_owned(),
        };
        v.insert("reply_to".into(), json!(shown));
    }
    if let Some(t) = message.timestamp {
        v.insert("timestamp".into(), json!(t));
    }
    if dialect == Dialect::Mqtt {
        v.insert("qos".into(), json!(qos as u8));
        v.insert("retain".into(), json!(retain));
    }
    Value::Object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_properties_and_application_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("x-reply-to", "replies/here".parse().unwrap());
        headers.insert("x-correlation-id", "c-1".parse().unwrap());
        headers.insert("x-header-trace", "abc".parse().unwrap());
        let subject = Dialect::Mqtt.subject("a/b").unwrap();
        let m = message(
            Dialect::Mqtt,
            subject,
            &headers,
            "hi".into(),
            Delivery::AtLeastOnce,
        )
        .unwrap();
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.reply_to.as_ref().unwrap().to_mqtt_topic(), "replies/here");
        assert_eq!(m.correlation_id.as_deref(), Some(&b"c-1"[..]));
        assert_eq!(m.headers, vec![("trace".to_owned(), "abc".to_owned())]);

        let shown = message_json(Dialect::Mqtt, &m, Delivery::AtLeastOnce, false);
        assert_eq!(shown["topic"], "a/b");
        assert_eq!(
            (shown["payload"].as_str(), shown["encoding"].as_str()),
            (Some("hi"), Some("utf-8"))
        );
        assert_eq!(shown["headers"]["trace"], "abc");
        assert_eq!(shown["qos"], 1);
        assert_eq!(shown["reply_to"], "replies/here");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_base64() {
        let m = Message {
            subject: Subject::new("a").unwrap(),
            payload: Bytes::from_static(&[0xff, 0x00]),
            ..Message::default()
        };
        let shown = message_json(Dialect::Nats, &m, Delivery::AtMostOnce, false);
        assert_eq!(
            (shown["payload"].as_str(), shown["encoding"].as_str()),
            (Some("/wA="), Some("base64"))
        );
        assert!(shown.get("topic").is_none() && shown.get("qos").is_none());
    }

    #[test]
    fn a_bad_reply_to_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("x-reply-to", "a.*".parse().unwrap());
        let subject = Dialect::Nats.subject("a").unwrap();
        assert!(message(
            Dialect::Nats,
            subject,
            &headers,
            Bytes::new(),
            Delivery::AtMostOnce
        )
        .is_err());
    }
}
