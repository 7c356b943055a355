//! The stored forms of durable state: keys, and values encoded with postcard.
//!
//! Owns: one explicit stored type per router value (so that a change to a router
//! type cannot silently change what is on disk), key layouts (a message key is
//! its queue id then its sequence number, big-endian, so that a queue's messages
//! are one range in order), and the checks a decoded value passes before the
//! router sees it.
//! Refuses: I/O (see `engine.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::router::journal::BindingRecord;
use crate::router::streams::config::{
    AckPolicy, ConsumerConfig, DeliverPolicy, Discard, Partition, Retention, StorageKind,
    StreamConfig,
};
use crate::router::streams::consumer::{PendingDelivery, Position};
use crate::router::streams::log::StreamMessage;
use crate::router::{
    BindArgs, Delivery, Dest, DestId, Dispatch, Entry, ExchangeKind, ExchangeSpec, Extensions,
    Filter, Message, Overflow, QueueArgs, QueueSpec, QueueType, SubOptions, Subject,
};

/// The version of this layout, kept in the `meta` keyspace.
pub(super) const FORMAT_VERSION: u32 = 1;

/// Why a stored value could not be read back.
pub(super) type DecodeError = String;

/// A message as stored (its connection of origin is not: it means nothing after a
/// restart).
#[derive(Debug, Serialize, Deserialize)]
struct StoredMessage {
    subject: String,
    payload: Bytes,
    headers: Vec<(String, String)>,
    content_type: Option<String>,
    correlation_id: Option<Bytes>,
    reply_to: Option<String>,
    expires_at: Option<u64>,
    priority: Option<u8>,
    message_id: Option<String>,
    key: Option<Bytes>,
    timestamp: Option<u64>,
    payload_utf8: bool,
    retain: bool,
    qos: u8,
    extensions: Vec<(String, Bytes)>,
}

fn qos_of(n: u8) -> Result<Delivery, DecodeError> {
    match n {
        0 => Ok(Delivery::AtMostOnce),
        1 => Ok(Delivery::AtLeastOnce),
        2 => Ok(Delivery::ExactlyOnce),
        n => Err(format!("qos {n}")),
    }
}

impl StoredMessage {
    fn of(m: &Message) -> StoredMessage {
        StoredMessage {
            subject: m.subject.as_str().to_owned(),
            payload: m.payload.clone(),
            headers: m.headers.clone(),
            content_type: m.content_type.clone(),
            correlation_id: m.correlation_id.clone(),
            reply_to: m.reply_to.as_ref().map(|s| s.as_str().to_owned()),
            expires_at: m.expires_at,
            priority: m.priority,
            message_id: m.message_id.clone(),
            key: m.key.clone(),
            timestamp: m.timestamp,
            payload_utf8: m.payload_utf8,
            retain: m.retain,
            qos: m.qos as u8,
            extensions: m
                .extensions
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
        }
    }

    fn into_message(self) -> Result<Message, DecodeError> {
        // A message published to a queue by name (AMQP's default exchange, STOMP's
        // /queue/) may have no subject: the default one.
        let subject = if self.subject.is_empty() {
            Subject::default()
        } else {
            Subject::new(&self.subject).map_err(|e| format!("subject: {e}"))?
        };
        let reply_to = match self.reply_to {
            None => None,
            Some(r) => Some(Subject::new(&r).map_err(|e| format!("reply-to: {e}"))?),
        };
        let qos = qos_of(self.qos)?;
        let mut extensions = Extensions::default();
        for (k, v) in self.extensions {
            extensions.set(k, v);
        }
        Ok(Message {
            subject,
            payload: self.payload,
            headers: self.headers,
            content_type: self.content_type,
            correlation_id: self.correlation_id,
            reply_to,
            expires_at: self.expires_at,
            priority: self.priority,
            message_id: self.message_id,
            key: self.key,
            timestamp: self.timestamp,
            payload_utf8: self.payload_utf8,
            origin: 0,
            retain: self.retain,
            qos,
            extensions,
        })
    }
}

/// A queue entry as stored; its sequence number is in the key.
#[derive(Debug, Serialize, Deserialize)]
struct StoredEntry {
    message: StoredMessage,
    exchange: String,
    routing_key: String,
    expires_at: Option<u64>,
    priority: u8,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredQueue {
    id: DestId,
    durable: bool,
    auto_delete: bool,
    message_ttl_ms: Option<u64>,
    expires_ms: Option<u64>,
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    overflow: u8,
    dead_letter_exchange: Option<String>,
    dead_letter_routing_key: Option<String>,
    max_priority: Option<u8>,
}

/// What a queue declaration gained after [`StoredQueue`]'s layout was fixed,
/// written after it; a value without it is a queue declared before (classic, no
/// single active consumer).
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredQueueTail {
    single_active_consumer: bool,
    /// 0 classic, 1 quorum, 2 stream.
    queue_type: u8,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredExchange {
    kind: u8,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    alternate_exchange: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredBinding {
    source: String,
    /// 0: a queue, 1: an exchange.
    dest_kind: u8,
    dest: String,
    key: String,
    args: BindArgs,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSession {
    name: String,
    expiry_secs: u32,
}

/// A subscription of a stored session is keyed by its filter and share group.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSubKey {
    filter: String,
    group: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSubOptions {
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    subscription_id: Option<u32>,
}

/// A stored session's pending dispatch; its number is in the key.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDispatch {
    message: StoredMessage,
    qos: u8,
    retain: bool,
    subscription_ids: Vec<u32>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain owned values into memory cannot fail; an empty value
    // would be refused when read back, never half-applied.
    postcard::to_stdvec(value).unwrap_or_default()
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

/// The key of message `seq` of queue `id` (also of its delivered mark).
pub(super) fn message_key(id: DestId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key prefix of every message of queue `id`.
pub(super) fn queue_prefix(id: DestId) -> [u8; 8] {
    id.to_be_bytes()
}

/// (queue id, sequence number) of a message key.
pub(super) fn parse_message_key(key: &[u8]) -> Result<(DestId, u64), DecodeError> {
    let (id, seq) = key
        .split_first_chunk::<8>()
        .ok_or_else(|| "message key too short".to_owned())?;
    let seq: [u8; 8] = seq
        .try_into()
        .map_err(|_| "message key of the wrong length".to_owned())?;
    Ok((u64::from_be_bytes(*id), u64::from_be_bytes(seq)))
}

pub(super) fn encode_entry(entry: &Entry) -> Vec<u8> {
    encode(&StoredEntry {
        message: StoredMessage::of(&entry.message),
        exchange: entry.exchange.to_string(),
        routing_key: entry.routing_key.to_string(),
        expires_at: entry.expires_at,
        priority: entry.priority,
    })
}

pub(super) fn decode_entry(seq: u64, bytes: &[u8], delivered: bool) -> Result<Entry, DecodeError> {
    let e: StoredEntry = decode(bytes)?;
    Ok(Entry {
        message: Arc::new(e.message.into_message()?),
        exchange: e.exchange.into(),
        routing_key: e.routing_key.into(),
        redelivered: delivered,
        seq,
        expires_at: e.expires_at,
        priority: e.priority,
    })
}

pub(super) fn encode_message(m: &Message) -> Vec<u8> {
    encode(&StoredMessage::of(m))
}

pub(super) fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode::<StoredMessage>(bytes)?.into_message()
}

/// A stream declaration as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredStream {
    name: String,
    subjects: Vec<String>,
    retention: u8,
    max_consumers: Option<u64>,
    max_msgs: Option<u64>,
    max_bytes: Option<u64>,
    max_age_ns: Option<u64>,
    max_msgs_per_subject: Option<u64>,
    max_msg_size: Option<u64>,
    discard_new: bool,
    duplicate_window_ns: u64,
    sealed: bool,
    deny_delete: bool,
    deny_purge: bool,
    front: Bytes,
    created_ns: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn encode_stream(c: &StreamConfig, created_ns: u64) -> Vec<u8> {
    // The partition follows the declaration (added after format 1 was first
    // written: a declaration without it is an unpartitioned stream).
    let mut bytes = encode(&StoredStream {
        name: c.name.clone(),
        subjects: c.subjects.clone(),
        retention: match c.retention {
            Retention::Limits => 0,
            Retention::Interest => 1,
            Retention::WorkQueue => 2,
        },
        max_consumers: c.max_consumers,
        max_msgs: c.max_msgs,
        max_bytes: c.max_bytes,
        max_age_ns: c.max_age.map(nanos),
        max_msgs_per_subject: c.max_msgs_per_subject,
        max_msg_size: c.max_msg_size,
        discard_new: c.discard == Discard::New,
        duplicate_window_ns: nanos(c.duplicate_window),
        sealed: c.sealed,
        deny_delete: c.deny_delete,
        deny_purge: c.deny_purge,
        front: c.front.clone(),
        created_ns,
    });
    if let Some(p) = c.partition {
        bytes.extend(encode(&(p.index, p.count)));
    }
    bytes
}

/// A stored stream's declaration (its storage is `file`: only those are
/// stored) and creation time.
pub(super) fn decode_stream(bytes: &[u8]) -> Result<(StreamConfig, u64), DecodeError> {
    let (s, rest): (StoredStream, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    let partition = if rest.is_empty() {
        None
    } else {
        let (index, count): (u32, u32) = decode(rest)?;
        Some(Partition { index, count })
    };
    let retention = match s.retention {
        0 => Retention::Limits,
        1 => Retention::Interest,
        2 => Retention::WorkQueue,
        n => return Err(format!("retention {n}")),
    };
    Ok((
        StreamConfig {
            name: s.name,
            subjects: s.subjects,
            retention,
            max_consumers: s.max_consumers,
            max_msgs: s.max_msgs,
            max_bytes: s.max_bytes,
            max_age: s.max_age_ns.map(Duration::from_nanos),
            max_msgs_per_subject: s.max_msgs_per_subject,
            max_msg_size: s.max_msg_size,
            discard: if s.discard_new {
                Discard::New
            } else {
                Discard::Old
            },
            storage: StorageKind::File,
            duplicate_window: Duration::from_nanos(s.duplicate_window_ns),
            sealed: s.sealed,
            deny_delete: s.deny_delete,
            deny_purge: s.deny_purge,
            partition,
            front: s.front,
        },
        s.created_ns,
    ))
}

pub(super) fn encode_stream_message(m: &StreamMessage) -> Vec<u8> {
    encode(&(m.time_ns, StoredMessage::of(&m.message)))
}

pub(super) fn decode_stream_message(seq: u64, bytes: &[u8]) -> Result<StreamMessage, DecodeError> {
    let (time_ns, m): (u64, StoredMessage) = decode(bytes)?;
    Ok(StreamMessage {
        seq,
        time_ns,
        message: Arc::new(m.into_message()?),
    })
}

/// A stream's last sequence number and its time, kept when its messages go.
pub(super) fn encode_stream_last(seq: u64, time_ns: u64) -> Vec<u8> {
    encode(&(seq, time_ns))
}

pub(super) fn decode_stream_last(bytes: &[u8]) -> Result<(u64, u64), DecodeError> {
    decode(bytes)
}

/// A consumer declaration as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredConsumer {
    stream: DestId,
    created_ns: u64,
    name: String,
    durable: bool,
    deliver_policy: u8,
    deliver_from: u64,
    ack_policy: u8,
    ack_wait_ns: u64,
    backoff_ns: Vec<u64>,
    max_deliver: Option<u64>,
    max_ack_pending: Option<u64>,
    filter_subjects: Vec<String>,
    front: Bytes,
}

pub(super) fn encode_consumer(stream: DestId, c: &ConsumerConfig, created_ns: u64) -> Vec<u8> {
    let (deliver_policy, deliver_from) = match c.deliver_policy {
        DeliverPolicy::All => (0, 0),
        DeliverPolicy::Last => (1, 0),
        DeliverPolicy::New => (2, 0),
        DeliverPolicy::ByStartSequence(seq) => (3, seq),
        DeliverPolicy::ByStartTime(ns) => (4, ns),
        DeliverPolicy::LastPerSubject => (5, 0),
    };
    encode(&StoredConsumer {
        stream,
        created_ns,
        name: c.name.clone(),
        durable: c.durable,
        deliver_policy,
        deliver_from,
        ack_policy: match c.ack_policy {
            AckPolicy::None => 0,
            AckPolicy::All => 1,
            AckPolicy::Explicit => 2,
        },
        ack_wait_ns: nanos(c.ack_wait),
        backoff_ns: c.backoff.iter().copied().map(nanos).collect(),
        max_deliver: c.max_deliver,
        max_ack_pending: c.max_ack_pending,
        filter_subjects: c.filter_subjects.clone(),
        front: c.front.clone(),
    })
}

/// A stored consumer: its stream, declaration and creation time.
pub(super) fn decode_consumer(bytes: &[u8]) -> Result<(DestId, ConsumerConfig, u64), DecodeError> {
    let c: StoredConsumer = decode(bytes)?;
    let deliver_policy = match (c.deliver_policy, c.deliver_from) {
        (0, _) => DeliverPolicy::All,
        (1, _) => DeliverPolicy::Last,
        (2, _) => DeliverPolicy::New,
        (3, seq) => DeliverPolicy::ByStartSequence(seq),
        (4, ns) => DeliverPolicy::ByStartTime(ns),
        (5, _) => DeliverPolicy::LastPerSubject,
        (n, _) => return Err(format!("deliver policy {n}")),
    };
    let ack_policy = match c.ack_policy {
        0 => AckPolicy::None,
        1 => AckPolicy::All,
        2 => AckPolicy::Explicit,
        n => return Err(format!("ack policy {n}")),
    };
    Ok((
        c.stream,
        ConsumerConfig {
            name: c.name,
            durable: c.durable,
            deliver_policy,
            ack_policy,
            ack_wait: Duration::from_nanos(c.ack_wait_ns),
            backoff: c.backoff_ns.into_iter().map(Duration::from_nanos).collect(),
            max_deliver: c.max_deliver,
            max_ack_pending: c.max_ack_pending,
            filter_subjects: c.filter_subjects,
            front: c.front,
        },
        c.created_ns,
    ))
}

pub(super) fn encode_position(delivered: Position, floor: Position) -> Vec<u8> {
    encode(&(
        delivered.consumer_seq,
        delivered.stream_seq,
        floor.consumer_seq,
        floor.stream_seq,
    ))
}

/// A consumer's (last delivery, ack floor).
pub(super) fn decode_position(bytes: &[u8]) -> Result<(Position, Position), DecodeError> {
    let (dc, ds, fc, fs): (u64, u64, u64, u64) = decode(bytes)?;
    let at = |consumer_seq, stream_seq| Position {
        consumer_seq,
        stream_seq,
    };
    Ok((at(dc, ds), at(fc, fs)))
}

pub(super) fn encode_pending(p: PendingDelivery) -> Vec<u8> {
    encode(&(p.consumer_seq, p.deliveries))
}

pub(super) fn decode_pending(bytes: &[u8]) -> Result<PendingDelivery, DecodeError> {
    let (consumer_seq, deliveries): (u64, u64) = decode(bytes)?;
    Ok(PendingDelivery {
        consumer_seq,
        deliveries,
    })
}

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn count(n: Option<usize>) -> Option<u64> {
    n.map(|n| n as u64)
}

pub(super) fn encode_queue(id: DestId, spec: &QueueSpec) -> Vec<u8> {
    let a = &spec.args;
    let mut bytes = encode(&StoredQueue {
        id,
        durable: spec.durable,
        auto_delete: spec.auto_delete,
        message_ttl_ms: ms(a.message_ttl),
        expires_ms: ms(a.expires),
        max_length: count(a.max_length),
        max_length_bytes: count(a.max_length_bytes),
        overflow: match a.overflow {
            Overflow::DropHead => 0,
            Overflow::RejectPublish => 1,
            Overflow::RejectPublishDlx => 2,
        },
        dead_letter_exchange: a.dead_letter_exchange.clone(),
        dead_letter_routing_key: a.dead_letter_routing_key.clone(),
        max_priority: a.max_priority,
    });
    bytes.extend(encode(&StoredQueueTail {
        single_active_consumer: a.single_active_consumer,
        queue_type: match a.queue_type {
            QueueType::Classic => 0,
            QueueType::Quorum => 1,
            QueueType::Stream => 2,
        },
    }));
    bytes
}

pub(super) fn decode_queue(bytes: &[u8]) -> Result<(DestId, QueueSpec), DecodeError> {
    let (q, rest): (StoredQueue, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    let tail: StoredQueueTail = if rest.is_empty() {
        StoredQueueTail::default()
    } else {
        decode(rest)?
    };
    let queue_type = match tail.queue_type {
        0 => QueueType::Classic,
        1 => QueueType::Quorum,
        2 => QueueType::Stream,
        n => return Err(format!("queue type {n}")),
    };
    let size = |n: Option<u64>| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let overflow = match q.overflow {
        0 => Overflow::DropHead,
        1 => Overflow::RejectPublish,
        2 => Overflow::RejectPublishDlx,
        n => return Err(format!("overflow {n}")),
    };
    let spec = QueueSpec {
        durable: q.durable,
        exclusive_owner: None,
        auto_delete: q.auto_delete,
        args: QueueArgs {
            message_ttl: q.message_ttl_ms.map(Duration::from_millis),
            expires: q.expires_ms.map(Duration::from_millis),
            max_length: size(q.max_length),
            max_length_bytes: size(q.max_length_bytes),
            overflow,
            dead_letter_exchange: q.dead_letter_exchange,
            dead_letter_routing_key: q.dead_letter_routing_key,
            max_priority: q.max_priority,
            single_active_consumer: tail.single_active_consumer,
            queue_type,
        },
    };
    Ok((q.id, spec))
}

const KINDS: [ExchangeKind; 4] = [
    ExchangeKind::Direct,
    ExchangeKind::Fanout,
    ExchangeKind::Topic,
    ExchangeKind::Headers,
];

pub(super) fn encode_exchange(spec: &ExchangeSpec) -> Vec<u8> {
    encode(&StoredExchange {
        kind: KINDS.iter().position(|k| *k == spec.kind).unwrap_or(0) as u8,
        durable: spec.durable,
        auto_delete: spec.auto_delete,
        internal: spec.internal,
        alternate_exchange: spec.alternate_exchange.clone(),
    })
}

pub(super) fn decode_exchange(bytes: &[u8]) -> Result<ExchangeSpec, DecodeError> {
    let e: StoredExchange = decode(bytes)?;
    let kind = *KINDS
        .get(usize::from(e.kind))
        .ok_or_else(|| format!("exchange kind {}", e.kind))?;
    Ok(ExchangeSpec {
        kind,
        durable: e.durable,
        auto_delete: e.auto_delete,
        internal: e.internal,
        alternate_exchange: e.alternate_exchange,
    })
}

/// The key prefix of everything of destination `id`, followed by `rest`.
pub(super) fn dest_key(id: DestId, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + rest.len());
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(rest);
    key
}

/// (destination id, the rest) of a key made by [`dest_key`].
pub(super) fn parse_dest_key(key: &[u8]) -> Result<(DestId, &[u8]), DecodeError> {
    let (id, rest) = key
        .split_first_chunk::<8>()
        .ok_or_else(|| "key too short".to_owned())?;
    Ok((u64::from_be_bytes(*id), rest))
}

pub(super) fn encode_session(name: &str, expiry_secs: u32) -> Vec<u8> {
    encode(&StoredSession {
        name: name.to_owned(),
        expiry_secs,
    })
}

pub(super) fn decode_session(bytes: &[u8]) -> Result<(String, u32), DecodeError> {
    let s: StoredSession = decode(bytes)?;
    Ok((s.name, s.expiry_secs))
}

/// The key of a stored session's subscription to `filter` in `group`.
pub(super) fn subscription_key(session: DestId, filter: &Filter, group: Option<&str>) -> Vec<u8> {
    dest_key(
        session,
        &encode(&StoredSubKey {
            filter: filter.canonical(),
            group: group.map(str::to_owned),
        }),
    )
}

pub(super) fn encode_sub_options(o: &SubOptions) -> Vec<u8> {
    encode(&StoredSubOptions {
        qos: o.qos as u8,
        no_local: o.no_local,
        retain_as_published: o.retain_as_published,
        subscription_id: o.subscription_id,
    })
}

/// A subscription from its key (after the session id) and value.
pub(super) fn decode_subscription(
    key: &[u8],
    value: &[u8],
) -> Result<(Filter, SubOptions), DecodeError> {
    let k: StoredSubKey = decode(key)?;
    let o: StoredSubOptions = decode(value)?;
    let filter = Filter::from_canonical(&k.filter).map_err(|e| format!("filter: {e}"))?;
    Ok((
        filter,
        SubOptions {
            qos: qos_of(o.qos)?,
            no_local: o.no_local,
            retain_as_published: o.retain_as_published,
            subscription_id: o.subscription_id,
            share_group: k.group,
            withheld: None,
        },
    ))
}

pub(super) fn encode_dispatch(d: &Dispatch) -> Vec<u8> {
    encode(&StoredDispatch {
        message: StoredMessage::of(&d.message),
        qos: d.qos as u8,
        retain: d.retain,
        subscription_ids: d.subscription_ids.to_vec(),
    })
}

pub(super) fn decode_dispatch(seq: u64, bytes: &[u8]) -> Result<Dispatch, DecodeError> {
    let d: StoredDispatch = decode(bytes)?;
    Ok(Dispatch {
        message: Arc::new(d.message.into_message()?),
        qos: qos_of(d.qos)?,
        retain: d.retain,
        subscription_ids: d.subscription_ids.into_iter().collect(),
        share: None,
        seq,
    })
}

/// A binding is its own key (the value is empty).
pub(super) fn binding_key(b: &BindingRecord) -> Vec<u8> {
    let (dest_kind, dest) = match &b.dest {
        Dest::Queue(q) => (0, q.clone()),
        Dest::Exchange(x) => (1, x.clone()),
    };
    encode(&StoredBinding {
        source: b.source.clone(),
        dest_kind,
        dest,
        key: b.key.clone(),
        args: b.args.clone(),
    })
}

pub(super) fn decode_binding(key: &[u8]) -> Result<BindingRecord, DecodeError> {
    let b: StoredBinding = decode(key)?;
    let dest = match b.dest_kind {
        0 => Dest::Queue(b.dest),
        1 => Dest::Exchange(b.dest),
        n => return Err(format!("binding destination kind {n}")),
    };
    Ok(BindingRecord {
        source: b.source,
        dest,
        key: b.key,
        args: b.args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_with_everything_but_its_origin() {
        let mut m = Message {
            subject: Subject::new("a.b/c").unwrap(),
            payload: Bytes::from_static(b"\x00\xffpayload"),
            headers: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            content_type: Some("text/plain".into()),
            correlation_id: Some(Bytes::from_static(b"c")),
            reply_to: Some(Subject::new("r").unwrap()),
            expires_at: Some(1_700_000_000_000),
            priority: Some(4),
            message_id: Some("id".into()),
            key: Some(Bytes::from_static(b"key")),
            timestamp: Some(5),
            payload_utf8: true,
            origin: 9,
            retain: true,
            qos: Delivery::ExactlyOnce,
            extensions: Extensions::default(),
        };
        m.extensions
            .set("amqp.properties", Bytes::from_static(b"\x01\x02"));
        let back = decode_message(&encode_message(&m)).unwrap();
        assert_eq!(back, Message { origin: 0, ..m });
        let unnamed = Message::default();
        assert_eq!(decode_message(&encode_message(&unnamed)).unwrap(), unnamed);
    }

    #[test]
    fn stream_declarations_round_trip_with_and_without_a_partition() {
        let plain = StreamConfig {
            name: "orders".into(),
            subjects: vec!["orders.>".into()],
            max_msgs: Some(10),
            duplicate_window: Duration::from_secs(120),
            front: Bytes::from_static(b"{}"),
            ..StreamConfig::default()
        };
        assert_eq!(
            decode_stream(&encode_stream(&plain, 3)).unwrap(),
            (plain.clone(), 3)
        );
        let partitioned = StreamConfig {
            partition: Some(Partition { index: 2, count: 5 }),
            ..plain
        };
        let back = decode_stream(&encode_stream(&partitioned, 4)).unwrap();
        assert_eq!(back, (partitioned, 4));
    }

    #[test]
    fn queues_exchanges_and_bindings_round_trip() {
        let spec = QueueSpec {
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            args: QueueArgs {
                message_ttl: Some(Duration::from_millis(1500)),
                max_length: Some(10),
                overflow: Overflow::RejectPublishDlx,
                dead_letter_exchange: Some("dlx".into()),
                max_priority: Some(9),
                ..QueueArgs::default()
            },
        };
        assert_eq!(
            decode_queue(&encode_queue(7, &spec)).unwrap(),
            (7, spec.clone())
        );
        let quorum = QueueSpec {
            args: QueueArgs {
                single_active_consumer: true,
                queue_type: QueueType::Quorum,
                ..spec.args.clone()
            },
            ..spec.clone()
        };
        assert_eq!(
            decode_queue(&encode_queue(8, &quorum)).unwrap(),
            (8, quorum)
        );
        // A queue stored before the tail existed reads as classic.
        let mut before = encode_queue(9, &spec);
        before.truncate(before.len() - 2);
        assert_eq!(decode_queue(&before).unwrap(), (9, spec));
        let x = ExchangeSpec {
            kind: ExchangeKind::Headers,
            durable: true,
            auto_delete: true,
            internal: false,
            alternate_exchange: Some("ae".into()),
        };
        assert_eq!(decode_exchange(&encode_exchange(&x)).unwrap(), x);
        let b = BindingRecord {
            source: "x".into(),
            dest: Dest::Exchange("y".into()),
            key: "k".into(),
            args: vec![("x-match".into(), Some("any".into())), ("h".into(), None)],
        };
        assert_eq!(decode_binding(&binding_key(&b)).unwrap(), b);
    }

    #[test]
    fn sessions_subscriptions_and_dispatches_round_trip() {
        assert_eq!(
            decode_session(&encode_session("client-1", 3600)).unwrap(),
            ("client-1".to_owned(), 3600)
        );
        let filter = Filter::mqtt("a/+/#").unwrap();
        let opts = SubOptions {
            qos: Delivery::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            subscription_id: Some(7),
            share_group: Some("g".into()),
            withheld: None,
        };
        let key = subscription_key(9, &filter, opts.share_group.as_deref());
        let (id, rest) = parse_dest_key(&key).unwrap();
        assert_eq!(id, 9);
        assert_eq!(
            decode_subscription(rest, &encode_sub_options(&opts)).unwrap(),
            (filter, opts)
        );
        let d = Dispatch {
            message: Arc::new(Message {
                subject: Subject::new("a.b").unwrap(),
                payload: Bytes::from_static(b"p"),
                qos: Delivery::ExactlyOnce,
                ..Message::default()
            }),
            qos: Delivery::AtLeastOnce,
            retain: true,
            subscription_ids: [1, 2].into_iter().collect(),
            share: None,
            seq: 0,
        };
        let back = decode_dispatch(5, &encode_dispatch(&d)).unwrap();
        assert_eq!((back.seq, back.qos, back.retain), (5, d.qos, true));
        assert_eq!(back.subscription_ids, d.subscription_ids);
        assert_eq!(back.message, d.message);
    }

    #[test]
    fn message_keys_sort_by_queue_then_sequence() {
        let a = message_key(1, 255);
        let b = message_key(1, 256);
        let c = message_key(2, 0);
        assert!(a < b && b < c);
        assert_eq!(parse_message_key(&b).unwrap(), (1, 256));
        assert!(a.starts_with(&queue_prefix(1)));
        assert!(parse_message_key(&a[..9]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff\xff", b"\x05abc"] {
            assert!(decode_message(bytes).is_err());
            assert!(decode_queue(bytes).is_err());
            assert!(decode_exchange(bytes).is_err());
            assert!(decode_binding(bytes).is_err());
            assert!(decode_entry(0, bytes, false).is_err());
        }
    }
}
