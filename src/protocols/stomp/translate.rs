//! STOMP frames <-> router values: RabbitMQ's destination conventions, and the
//! property mapping of DESIGN.md ("Message properties across protocols") for STOMP.
//!
//! Owns: destination parsing, which SEND headers become `Message` fields and which
//! stay user headers, and the MESSAGE headers written from a `Message`.
//! Refuses: routing and policy (session.rs decides what a destination means for
//! the connection: declaring, binding, temporary queues).
//!
//! Reply-to rules: a SEND's `reply-to` destination becomes the message's reply
//! subject: the queue name for `/queue/q`, `/amq/queue/q`, `/reply-queue/q` (and
//! the temporary queue a `/temp-queue/x` stands for, which is bound to `amq.topic`
//! under its own name so that any protocol's responder reaches it), the key for
//! `/topic/k`; an `/exchange/...` reply-to has no subject. STOMP consumers are
//! shown a STOMP publisher's `reply-to` verbatim (a `/temp-queue/x` as the
//! `/reply-queue/<queue>` standing for it), as RabbitMQ does. A reply subject from
//! another protocol, `s`, is shown as `/reply-queue/s` for a server-named (`amq.`)
//! queue, `/queue/s` when a queue `s` exists, and `/topic/s` otherwise (so a SEND
//! to it reaches a NATS or MQTT requester).
//! STOMP's `message-id` is the broker's delivery id, so the publisher's message id
//! travels as `amqp-message-id` (RabbitMQ's name for it).

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::stomp::{Command, Frame, FrameWriter, Version};

use crate::router::{ConnId, Delivery, Message, Subject};

/// A destination, RabbitMQ's way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination<'a> {
    /// `/topic/<key>`: `amq.topic`, the shared subject space.
    Topic(&'a str),
    /// `/queue/<name>`: a queue declared on use, reached through the default exchange.
    Queue(&'a str),
    /// `/amq/queue/<name>`: an existing queue.
    AmqQueue(&'a str),
    /// `/exchange/<exchange>[/<key>]`.
    Exchange(&'a str, &'a str),
    /// `/temp-queue/<name>`: a private reply queue (in `reply-to` only).
    TempQueue(&'a str),
    /// `/reply-queue/<queue>`: where a temporary queue is reached.
    ReplyQueue(&'a str),
}

/// What an ERROR says about a destination it does not know.
pub(super) const VALID_DESTINATIONS: &str = "Valid destination types are: /temp-queue, \
/exchange, /topic, /queue, /amq/queue, /reply-queue/.";

/// The versions this front speaks, as a `version` header lists them.
pub(super) const SUPPORTED_VERSIONS: &str = "1.0,1.1,1.2";

/// The extension under which a message keeps a STOMP publisher's `reply-to` as
/// given (RabbitMQ shows STOMP consumers the publisher's text verbatim).
const REPLY_TO: &str = "stomp.reply-to";

/// Parses a destination header; `None` if it is none of RabbitMQ's forms, names
/// nothing, or (as RabbitMQ) has a `/` inside a queue name, a topic or an
/// exchange destination's routing key, or an empty exchange name.
pub(crate) fn parse_destination(text: &str) -> Option<Destination<'_>> {
    const KINDS: [&str; 6] = [
        "/topic/",
        "/queue/",
        "/amq/queue/",
        "/exchange/",
        "/temp-queue/",
        "/reply-queue/",
    ];
    let (kind, rest) = KINDS
        .into_iter()
        .find_map(|p| Some((p, text.strip_prefix(p)?)))?;
    if rest.is_empty() {
        return None;
    }
    let one_name = !rest.contains('/');
    Some(match kind {
        "/topic/" if one_name => Destination::Topic(rest),
        "/queue/" if one_name => Destination::Queue(rest),
        "/amq/queue/" if one_name => Destination::AmqQueue(rest),
        "/temp-queue/" => Destination::TempQueue(rest),
        "/reply-queue/" => Destination::ReplyQueue(rest),
        "/exchange/" => {
            let (exchange, key) = rest.split_once('/').unwrap_or((rest, ""));
            if exchange.is_empty() || key.contains('/') {
                return None;
            }
            Destination::Exchange(exchange, key)
        }
        _ => return None,
    })
}

/// Where a SEND to `destination` is published: the exchange and routing key,
/// and whether it names a queue declared on use (`/queue/<name>`); `None` for a
/// destination a SEND cannot name.
pub(crate) fn send_route(destination: Destination<'_>) -> Option<(&str, &str, bool)> {
    Some(match destination {
        Destination::Topic(key) => ("amq.topic", key, false),
        Destination::Queue(name) => ("", name, true),
        Destination::AmqQueue(name) | Destination::ReplyQueue(name) => ("", name, false),
        Destination::Exchange(exchange, key) => (exchange, key, false),
        Destination::TempQueue(_) => return None,
    })
}

/// For a destination of a known type that [`parse_destination`] refused, the
/// type and the part after it, for RabbitMQ's "Invalid destination" answer.
pub(super) fn invalid_destination(text: &str) -> Option<(&'static str, &str)> {
    ["queue", "topic", "exchange"].into_iter().find_map(|kind| {
        let content = text.strip_prefix('/')?.strip_prefix(kind)?;
        (content.is_empty() || content.starts_with('/')).then_some((kind, content))
    })
}

/// The destination a STOMP consumer is shown for a message routed through
/// `exchange` with `routing_key`.
pub(super) fn shown_destination(exchange: &str, routing_key: &str) -> String {
    match exchange {
        "" => format!("/queue/{routing_key}"),
        "amq.topic" => format!("/topic/{routing_key}"),
        // RabbitMQ leaves out the separator of an empty key (a fanout's).
        _ if routing_key.is_empty() => format!("/exchange/{exchange}"),
        _ => format!("/exchange/{exchange}/{routing_key}"),
    }
}

/// Headers that are a frame's own or a `Message` field: never user headers, in
/// either direction.
const RESERVED: [&str; 16] = [
    "destination",
    "receipt",
    "transaction",
    "content-length",
    "content-type",
    "persistent",
    "reply-to",
    "correlation-id",
    "expires",
    "priority",
    "amqp-message-id",
    "timestamp",
    "subscription",
    "message-id",
    "ack",
    "redelivered",
];

/// A SEND's `reply-to`, as the session resolved it.
pub(super) struct ReplyTo {
    /// The reply subject other protocols' responders publish to.
    pub(super) subject: Option<Subject>,
    /// The destination STOMP consumers are shown.
    pub(super) shown: String,
}

/// The message a SEND becomes.
pub(super) fn message_from_send(
    frame: &Frame,
    reply_to: Option<ReplyTo>,
    origin: ConnId,
) -> Message {
    let (reply_to, shown_reply_to) = match reply_to {
        Some(r) => (r.subject, Some(r.shown)),
        None => (None, None),
    };
    let header = |name| frame.header(name);
    let mut seen = HashSet::new();
    let mut headers = Vec::new();
    for (name, value) in &frame.headers {
        // The first occurrence wins (spec): a repeat is not a second header.
        if !RESERVED.contains(&name.as_str()) && seen.insert(name.as_str()) {
            headers.push((name.clone(), value.clone()));
        }
    }
    // JMS convention (ActiveMQ): expires 0 means never.
    let expires_at = header("expires")
        .and_then(|e| e.parse::<u64>().ok())
        .filter(|&epoch_ms| epoch_ms != 0);
    let mut message = Message {
        payload: frame.body.clone(),
        headers,
        content_type: header("content-type").map(str::to_owned),
        correlation_id: header("correlation-id").map(|c| Bytes::copy_from_slice(c.as_bytes())),
        reply_to,
        expires_at,
        priority: header("priority").and_then(|p| p.parse().ok()),
        message_id: header("amqp-message-id").map(str::to_owned),
        timestamp: header("timestamp").and_then(|t| t.parse().ok()),
        origin,
        qos: if header("persistent") == Some("true") {
            Delivery::AtLeastOnce
        } else {
            Delivery::AtMostOnce
        },
        ..Message::default()
    };
    if let Some(shown) = shown_reply_to {
        message.extensions.set(REPLY_TO, Bytes::from(shown));
    }
    message
}

/// The `reply-to` a STOMP publisher gave, as STOMP consumers are shown it.
pub(super) fn shown_reply_to(msg: &Message) -> Option<String> {
    let bytes = msg.extensions.get(REPLY_TO)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// One delivery as the session addresses it.
pub(super) struct Delivered<'a> {
    pub(super) subscription: &'a str,
    pub(super) destination: &'a str,
    pub(super) message_id: &'a str,
    /// The `ack` header (STOMP 1.2, client acknowledgement modes).
    pub(super) ack: Option<&'a str>,
    pub(super) redelivered: bool,
    /// The reply-to destination (see the module's reply-to rules).
    pub(super) reply_to: Option<&'a str>,
}

/// Writes the MESSAGE frame of `msg`.
pub(super) fn write_message(
    out: &mut BytesMut,
    version: Version,
    d: &Delivered<'_>,
    msg: &Message,
) {
    let mut w = FrameWriter::start(out, Command::Message, version);
    w.header("subscription", d.subscription)
        .header("destination", d.destination)
        .header("message-id", d.message_id);
    if let Some(ack) = d.ack {
        w.header("ack", ack);
    }
    w.header("redelivered", if d.redelivered { "true" } else { "false" });
    if let Some(ct) = &msg.content_type {
        w.header("content-type", ct);
    }
    let mut digits = Digits::default();
    w.header("content-length", digits.of(msg.payload.len() as u64));
    if msg.qos != Delivery::AtMostOnce {
        w.header("persistent", "true");
    }
    if let Some(reply_to) = d.reply_to {
        w.header("reply-to", reply_to);
    }
    if let Some(c) = &msg.correlation_id {
        w.header("correlation-id", &String::from_utf8_lossy(c));
    }
    if let Some(at) = msg.expires_at {
        w.header("expires", digits.of(at));
    }
    if let Some(p) = msg.priority {
        w.header("priority", digits.of(u64::from(p)));
    }
    if let Some(id) = &msg.message_id {
        w.header("amqp-message-id", id);
    }
    if let Some(ts) = msg.timestamp {
        w.header("timestamp", digits.of(ts));
    }
    for (name, value) in &msg.headers {
        if !RESERVED.contains(&name.as_str()) {
            w.header(name, value);
        }
    }
    w.finish(&msg.payload);
}

/// Decimal text of a number without allocating.
#[derive(Default)]
struct Digits([u8; 20]);

impl Digits {
    fn of(&mut self, mut n: u64) -> &str {
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        std::str::from_utf8(&self.0[i..]).unwrap_or("0")
    }
}

/// An ERROR frame: `message` is the short text, `detail` the body; `extra`
/// headers follow the standard ones.
pub(super) fn write_error(
    out: &mut BytesMut,
    version: Version,
    message: &str,
    detail: &str,
    extra: &[(&str, &str)],
) {
    let mut w = FrameWriter::start(out, Command::Error, version);
    w.header("message", message);
    // RabbitMQ's ERRORs name the versions spoken; after a version mismatch the
    // spec asks for exactly this header.
    w.header("version", SUPPORTED_VERSIONS);
    for (name, value) in extra {
        w.header(name, value);
    }
    w.header("content-type", "text/plain");
    let mut digits = Digits::default();
    w.header("content-length", digits.of(detail.len() as u64));
    w.finish(detail.as_bytes());
}
