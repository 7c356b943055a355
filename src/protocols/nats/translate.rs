//! NATS ops <-> router values.
//!
//! A NATS subject is already in the canonical form (tokens joined by `.`). The
//! `Message` properties NATS has no field for travel as headers (DESIGN.md):
//! `Content-Type`, `Correlation-Id` and `Nats-Msg-Id`, matched with exactly that
//! spelling (NATS header names are case-sensitive to clients, so `content-type` stays
//! an ordinary header). Everything else in a header block is user headers, in order,
//! duplicates kept. On the way out the three come first in the block.

use bytes::Bytes;
use dwbroker_codecs::nats::Headers;

use crate::router::{ConnId, Delivery, LastSubject, Message, Subject};

const CONTENT_TYPE: &str = "Content-Type";
const CORRELATION_ID: &str = "Correlation-Id";
const MESSAGE_ID: &str = "Nats-Msg-Id";
/// The extension under which a message delivered on one subject (a JetStream
/// inbox or deliver subject) carries the subject it is written with.
pub(crate) const SUBJECT_EXTENSION: &str = "nats.subject";
/// The extension of a status message (`404 No Messages`): the header block's
/// status line, not a header.
pub(crate) const STATUS_EXTENSION: &str = "nats.status";

/// A PUB or HPUB as a router `Message`; `None` if the subject cannot be one (empty,
/// or deeper than the router allows).
pub(crate) fn message_from_pub(
    last: &mut LastSubject,
    subject: &str,
    reply_to: Option<&str>,
    headers: Option<Headers>,
    payload: Bytes,
    origin: ConnId,
) -> Option<Message> {
    let mut message = Message {
        subject: last.get(subject, Subject::new).ok()?,
        payload,
        reply_to: reply_to.and_then(|r| Subject::new(r).ok()),
        origin,
        qos: Delivery::AtMostOnce,
        ..Message::default()
    };
    for (name, value) in headers.map(|h| h.entries).unwrap_or_default() {
        if name == CONTENT_TYPE && message.content_type.is_none() {
            message.content_type = Some(value);
        } else if name == CORRELATION_ID && message.correlation_id.is_none() {
            message.correlation_id = Some(Bytes::from(value));
        } else if name == MESSAGE_ID && message.message_id.is_none() {
            message.message_id = Some(value);
        } else {
            message.headers.push((name, value));
        }
    }
    Some(message)
}

/// The subject a MSG carries: the routing subject, unless the message says
/// otherwise ([`SUBJECT_EXTENSION`]).
pub(crate) fn subject_of(message: &Message) -> &str {
    message
        .extensions
        .get(SUBJECT_EXTENSION)
        .and_then(|s| std::str::from_utf8(s).ok())
        .unwrap_or(message.subject.as_str())
}

/// The header block a message is delivered with, `None` if it has nothing to say
/// (then it goes out as a plain MSG).
pub(crate) fn headers_of(message: &Message) -> Option<Headers> {
    let (status, description) = match message
        .extensions
        .get(STATUS_EXTENSION)
        .and_then(|s| std::str::from_utf8(s).ok())
    {
        Some(line) => {
            let (code, text) = line.split_once(' ').unwrap_or((line, ""));
            (
                code.parse::<u16>().ok(),
                (!text.is_empty()).then(|| text.to_owned()),
            )
        }
        None => (None, None),
    };
    let mut entries = Vec::new();
    if let Some(ct) = &message.content_type {
        entries.push((CONTENT_TYPE.to_owned(), ct.clone()));
    }
    if let Some(id) = &message.correlation_id {
        entries.push((
            CORRELATION_ID.to_owned(),
            String::from_utf8_lossy(id).into_owned(),
        ));
    }
    if let Some(id) = &message.message_id {
        entries.push((MESSAGE_ID.to_owned(), id.clone()));
    }
    entries.extend(message.headers.iter().cloned());
    (!entries.is_empty() || status.is_some()).then_some(Headers {
        status,
        description,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_headers_round_trip_and_user_headers_keep_order() {
        let headers = Headers {
            status: None,
            description: None,
            entries: vec![
                ("k".into(), "1".into()),
                ("Content-Type".into(), "text/plain".into()),
                ("content-type".into(), "stays a header".into()),
                ("k".into(), "2".into()),
                ("Correlation-Id".into(), "c-7".into()),
                ("Nats-Msg-Id".into(), "m-1".into()),
            ],
        };
        let m = message_from_pub(
            &mut LastSubject::default(),
            "a.b",
            Some("_INBOX.x"),
            Some(headers),
            Bytes::from_static(b"p"),
            3,
        )
        .unwrap();
        assert_eq!(m.subject.as_str(), "a.b");
        assert_eq!(m.reply_to.as_ref().unwrap().as_str(), "_INBOX.x");
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.correlation_id.as_deref(), Some(&b"c-7"[..]));
        assert_eq!(m.message_id.as_deref(), Some("m-1"));
        assert_eq!(
            m.headers,
            vec![
                ("k".into(), "1".into()),
                ("content-type".into(), "stays a header".into()),
                ("k".into(), "2".into())
            ]
        );
        let out = headers_of(&m).unwrap();
        assert_eq!(
            out.entries,
            vec![
                ("Content-Type".to_string(), "text/plain".to_string()),
                ("Correlation-Id".into(), "c-7".into()),
                ("Nats-Msg-Id".into(), "m-1".into()),
                ("k".into(), "1".into()),
                ("content-type".into(), "stays a header".into()),
                ("k".into(), "2".into()),
            ]
        );
    }

    #[test]
    fn plain_messages_have_no_header_block() {
        let m = message_from_pub(
            &mut LastSubject::default(),
            "a",
            None,
            None,
            Bytes::new(),
            1,
        )
        .unwrap();
        assert!(headers_of(&m).is_none());
        assert!(
            message_from_pub(&mut LastSubject::default(), "", None, None, Bytes::new(), 1)
                .is_none()
        );
    }

    #[test]
    fn status_and_delivered_subject_come_from_extensions() {
        let mut m = Message {
            subject: Subject::new("_INBOX.x").unwrap(),
            headers: vec![("Nats-Pending-Messages".into(), "4".into())],
            ..Message::default()
        };
        m.extensions
            .set(STATUS_EXTENSION, Bytes::from_static(b"408 Request Timeout"));
        let h = headers_of(&m).unwrap();
        assert_eq!(h.status, Some(408));
        assert_eq!(h.description.as_deref(), Some("Request Timeout"));
        assert_eq!(h.entries.len(), 1);
        assert_eq!(subject_of(&m), "_INBOX.x");
        m.extensions
            .set(SUBJECT_EXTENSION, Bytes::from_static(b"orders.new"));
        assert_eq!(subject_of(&m), "orders.new");
    }
}
