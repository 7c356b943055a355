//! AMQP content <-> the router's [`Message`].
//!
//! Owns: the property mapping of DESIGN.md ("Message properties across
//! protocols") for AMQP, the x-death rendering of the router's death records, and
//! the form in which a foreign reply subject is shown to AMQP consumers: the
//! queue's own name when it names a queue (a STOMP `reply-to:/queue/q`), else the
//! direct reply-to form, which the default exchange routes back to the subject.
//! Refuses: routing and policy (session.rs decides what a property means for the
//! connection, e.g. the validated user-id).

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::amqp::{BasicProperties, FieldTable, FieldValue};

use crate::router::{
    deaths, ConnId, Death, Delivery, Headers, Message, Now, Subject, REPLY_TO_PREFIX,
};

/// The extension under which a message keeps its AMQP publisher's content-header
/// property bytes.
const PROPERTIES: &str = "amqp.properties";

/// Why a publish's properties cannot be accepted (RabbitMQ answers 406).
#[derive(Debug)]
pub(super) struct BadProperty(pub(super) String);

/// The message an AMQP publish becomes. `raw` is the content header's property
/// bytes, kept so that AMQP consumers get every property back verbatim.
pub(super) fn message_from_publish(
    props: &BasicProperties,
    raw: Bytes,
    payload: Bytes,
    subject: Subject,
    origin: ConnId,
    now: Now,
) -> Result<Message, BadProperty> {
    let expires_at = match &props.expiration {
        None => None,
        Some(text) => {
            let ms: u64 = text
                .parse()
                .map_err(|_| BadProperty(format!("invalid expiration '{text}'")))?;
            Some(now.unix_ms.saturating_add(ms))
        }
    };
    let mut message = Message {
        subject,
        payload,
        headers: props
            .headers
            .as_ref()
            .map(render_headers)
            .unwrap_or_default(),
        content_type: props.content_type.clone(),
        correlation_id: props
            .correlation_id
            .as_ref()
            .map(|c| Bytes::copy_from_slice(c.as_bytes())),
        // Verbatim, prefix included: a direct reply-to queue is bound to its own
        // name in the subject space, so a responder of any protocol reaches it.
        reply_to: props.reply_to.as_deref().and_then(|r| Subject::new(r).ok()),
        expires_at,
        priority: props.priority,
        message_id: props.message_id.clone(),
        timestamp: props.timestamp.map(|s| s.saturating_mul(1000)),
        origin,
        qos: if props.delivery_mode == Some(2) {
            Delivery::AtLeastOnce
        } else {
            Delivery::AtMostOnce
        },
        ..Message::default()
    };
    message.extensions.set(PROPERTIES, raw);
    Ok(message)
}

/// Header values as text, for protocols whose headers are strings.
fn render_headers(table: &FieldTable) -> Headers {
    table
        .iter()
        .map(|(k, v)| (k.clone(), v.to_text()))
        .collect()
}

/// The content-header properties of a delivery: the publisher's bytes verbatim
/// when nothing changed since an AMQP client published it, otherwise encoded
/// from the message.
pub(super) enum Properties {
    Raw(Bytes),
    Encoded(BytesMut),
}

impl Properties {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Properties::Raw(b) => b,
            Properties::Encoded(b) => b,
        }
    }
}

/// The properties a consumer sees for `msg` at `now`.
/// `is_queue` tells whether a name is a queue's.
pub(super) fn delivery_properties(
    msg: &Message,
    now: Now,
    is_queue: &dyn Fn(&str) -> bool,
) -> Properties {
    let raw = msg.extensions.get(PROPERTIES);
    let deaths = deaths::deaths(msg);
    if deaths.is_empty() {
        if let Some(raw) = raw {
            return Properties::Raw(raw.clone());
        }
    }
    let mut props = match raw.and_then(|raw| BasicProperties::decode(raw).ok()) {
        Some(props) => props,
        None => foreign_properties(msg, now, is_queue),
    };
    if !deaths.is_empty() {
        let original_expiration = props.expiration.take();
        let headers = props.headers.get_or_insert_with(FieldTable::default);
        add_deaths(headers, &deaths, original_expiration);
    }
    let mut out = BytesMut::new();
    props.encode(&mut out);
    Properties::Encoded(out)
}

/// Properties for a message another protocol published.
fn foreign_properties(msg: &Message, now: Now, is_queue: &dyn Fn(&str) -> bool) -> BasicProperties {
    let headers = (!msg.headers.is_empty()).then(|| {
        FieldTable(
            msg.headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        FieldValue::LongString(Bytes::copy_from_slice(v.as_bytes())),
                    )
                })
                .collect(),
        )
    });
    let reply_to = msg.reply_to.as_ref().map(|s| {
        let s = s.as_str();
        if s.starts_with(REPLY_TO_PREFIX) || is_queue(s) {
            s.to_owned()
        } else {
            format!("{REPLY_TO_PREFIX}{s}")
        }
    });
    BasicProperties {
        content_type: msg.content_type.clone(),
        headers,
        delivery_mode: Some(if msg.qos == Delivery::AtMostOnce {
            1
        } else {
            2
        }),
        priority: msg.priority,
        correlation_id: msg
            .correlation_id
            .as_ref()
            .map(|c| String::from_utf8_lossy(c).into_owned()),
        reply_to,
        expiration: msg.ms_left(now.unix_ms).map(|ms| ms.to_string()),
        message_id: msg.message_id.clone(),
        timestamp: msg.timestamp.map(|ms| ms / 1000),
        ..BasicProperties::default()
    }
}

/// Writes `x-death` and the `x-first-death-*` headers as RabbitMQ does.
fn add_deaths(headers: &mut FieldTable, deaths: &[Death], original_expiration: Option<String>) {
    let text = |s: &str| FieldValue::LongString(Bytes::copy_from_slice(s.as_bytes()));
    let records = deaths
        .iter()
        .map(|d| {
            let mut t = FieldTable::default();
            t.insert("count", FieldValue::I64(d.count as i64));
            t.insert("reason", text(d.reason.as_str()));
            t.insert("queue", text(&d.queue));
            t.insert("time", FieldValue::Timestamp(d.time_ms / 1000));
            t.insert("exchange", text(&d.exchange));
            t.insert(
                "routing-keys",
                FieldValue::Array(d.routing_keys.iter().map(|k| text(k)).collect()),
            );
            if let Some(exp) = &original_expiration {
                if d.reason.as_str() == "expired" {
                    t.insert("original-expiration", text(exp));
                }
            }
            FieldValue::Table(t)
        })
        .collect();
    headers.insert("x-death", FieldValue::Array(records));
    if let Some(first) = deaths.last() {
        headers.insert("x-first-death-exchange", text(&first.exchange));
        headers.insert("x-first-death-queue", text(&first.queue));
        headers.insert("x-first-death-reason", text(first.reason.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::DeathReason;

    fn publish(props: &BasicProperties) -> Message {
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        message_from_publish(
            props,
            raw.freeze(),
            Bytes::from_static(b"x"),
            Subject::new("a.b").unwrap(),
            7,
            Now::current(),
        )
        .unwrap()
    }

    #[test]
    fn amqp_properties_map_to_the_neutral_fields() {
        let mut headers = FieldTable::default();
        headers.insert("n", FieldValue::I32(5));
        headers.insert("s", FieldValue::LongString(Bytes::from_static(b"v")));
        let m = publish(&BasicProperties {
            content_type: Some("text/plain".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            correlation_id: Some("c1".into()),
            reply_to: Some("amq.rabbitmq.reply-to.abc".into()),
            expiration: Some("60000".into()),
            timestamp: Some(1_700_000_000),
            ..BasicProperties::default()
        });
        assert_eq!(
            m.headers,
            vec![("n".into(), "5".into()), ("s".into(), "v".into())]
        );
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.correlation_id.as_deref(), Some(&b"c1"[..]));
        assert_eq!(
            m.reply_to.as_ref().map(Subject::as_str),
            Some("amq.rabbitmq.reply-to.abc")
        );
        assert!(m.expires_at.is_some());
        assert_eq!(m.timestamp, Some(1_700_000_000_000));
        assert_eq!(m.qos, Delivery::AtLeastOnce);
    }

    #[test]
    fn bad_expiration_is_refused() {
        let props = BasicProperties {
            expiration: Some("soon".into()),
            ..BasicProperties::default()
        };
        let r = message_from_publish(
            &props,
            Bytes::new(),
            Bytes::new(),
            Subject::new("a").unwrap(),
            1,
            Now::current(),
        );
        assert!(r.is_err());
    }

    #[test]
    fn amqp_published_properties_go_back_verbatim() {
        let m = publish(&BasicProperties {
            app_id: Some("app".into()),
            ..BasicProperties::default()
        });
        let Properties::Raw(raw) = delivery_properties(&m, Now::current(), &|_| false) else {
            panic!("expected the raw properties");
        };
        assert_eq!(
            BasicProperties::decode(&raw).unwrap().app_id.as_deref(),
            Some("app")
        );
    }

    #[test]
    fn foreign_reply_subject_uses_the_direct_reply_to_form() {
        let m = Message {
            subject: Subject::new("a").unwrap(),
            reply_to: Some(Subject::new("_INBOX.x").unwrap()),
            headers: vec![("k".into(), "v".into())],
            ..Message::default()
        };
        let props =
            BasicProperties::decode(delivery_properties(&m, Now::current(), &|_| false).bytes())
                .unwrap();
        assert_eq!(
            props.reply_to.as_deref(),
            Some("amq.rabbitmq.reply-to._INBOX.x")
        );
        assert_eq!(
            props.headers.unwrap().get("k"),
            Some(&FieldValue::LongString(Bytes::from_static(b"v")))
        );
    }

    #[test]
    fn deaths_become_x_death_and_expiration_moves_into_it() {
        let mut m = publish(&BasicProperties {
            expiration: Some("100".into()),
            ..BasicProperties::default()
        });
        deaths::add_death(&mut m, "q", DeathReason::Expired, "", "q", 1_000);
        let props =
            BasicProperties::decode(delivery_properties(&m, Now::current(), &|_| false).bytes())
                .unwrap();
        assert_eq!(props.expiration, None);
        let headers = props.headers.unwrap();
        let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
            panic!("no x-death");
        };
        let FieldValue::Table(first) = &deaths[0] else {
            panic!("not a table");
        };
        assert_eq!(
            first.get("reason").and_then(FieldValue::as_str),
            Some("expired")
        );
        assert_eq!(
            first
                .get("original-expiration")
                .and_then(FieldValue::as_str),
            Some("100")
        );
        assert_eq!(
            headers
                .get("x-first-death-queue")
                .and_then(FieldValue::as_str),
            Some("q")
        );
    }
}
