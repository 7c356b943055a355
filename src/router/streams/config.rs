//! What a stream and a stream consumer are declared with, in the router's terms.
//!
//! Owns: the limits and policies the router enforces (retention, discard,
//! deliver/ack policies, windows), with "unlimited" as `None` rather than a
//! sentinel, and the opaque declaration text of the front that declared it
//! (`front`: the JetStream front keeps its full JSON config there, so what a
//! client declared is echoed back verbatim, across a restart too).
//! Refuses: wire formats (JSON lives in the front) and validation of what a
//! protocol allows (the front checks its own rules before asking).

use std::time::Duration;

use bytes::Bytes;

pub use super::partition::Partition;

/// When messages leave a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Only by the stream's limits.
    #[default]
    Limits,
    /// Once every consumer interested in it has acknowledged it.
    Interest,
    /// Once one consumer has acknowledged it.
    WorkQueue,
}

/// What a full stream does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discard {
    /// Drops its oldest messages to make room.
    #[default]
    Old,
    /// Refuses the new message.
    New,
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageKind {
    /// In the storage engine: survives a restart; appends are acknowledged
    /// after the fsync that covers them.
    #[default]
    File,
    /// In memory only.
    Memory,
}

/// A stream's declaration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamConfig {
    /// Its name (unique).
    pub name: String,
    /// The filters (canonical, NATS syntax) whose publishes it captures.
    pub subjects: Vec<String>,
    /// When messages leave.
    pub retention: Retention,
    /// Most consumers.
    pub max_consumers: Option<u64>,
    /// Most messages.
    pub max_msgs: Option<u64>,
    /// Most bytes.
    pub max_bytes: Option<u64>,
    /// Oldest message age.
    pub max_age: Option<Duration>,
    /// Most messages per subject (always discards the oldest of the subject).
    pub max_msgs_per_subject: Option<u64>,
    /// Largest message.
    pub max_msg_size: Option<u64>,
    /// What a full stream does.
    pub discard: Discard,
    /// Where messages are kept.
    pub storage: StorageKind,
    /// Publishes with a message id seen within this window are duplicates.
    pub duplicate_window: Duration,
    /// No new messages, no deletes, no purges.
    pub sealed: bool,
    /// Messages cannot be deleted one by one.
    pub deny_delete: bool,
    /// The stream cannot be purged.
    pub deny_purge: bool,
    /// Which partition of a topic it is (a Kafka topic of N partitions is N
    /// streams capturing the same subjects; each publish goes to one of them).
    pub partition: Option<Partition>,
    /// The declaring front's own text of the declaration.
    pub front: Bytes,
}

/// Which message a new consumer starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliverPolicy {
    /// The first.
    #[default]
    All,
    /// The last one (of its filters).
    Last,
    /// The first one published after it was created.
    New,
    /// The first at or after this stream sequence.
    ByStartSequence(u64),
    /// The first stored at or after this time (ns since the Unix epoch).
    ByStartTime(u64),
    /// The last of each subject.
    LastPerSubject,
}

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    /// Not at all: delivered means done.
    None,
    /// An ack covers every earlier delivery.
    All,
    /// Each delivery separately.
    #[default]
    Explicit,
}

/// A consumer's declaration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerConfig {
    /// Its name (unique within the stream).
    pub name: String,
    /// Whether it outlives inactivity (a durable one is deleted only on request).
    pub durable: bool,
    /// Where it starts.
    pub deliver_policy: DeliverPolicy,
    /// How it is acknowledged.
    pub ack_policy: AckPolicy,
    /// How long a delivery may stay unacknowledged before it is redelivered.
    pub ack_wait: Duration,
    /// Redelivery delays by delivery count (the last repeats); overrides `ack_wait`.
    pub backoff: Vec<Duration>,
    /// Most deliveries of one message.
    pub max_deliver: Option<u64>,
    /// Most unacknowledged deliveries.
    pub max_ack_pending: Option<u64>,
    /// The filters (canonical, NATS syntax) of the messages it reads; none: all.
    pub filter_subjects: Vec<String>,
    /// The declaring front's own text of the declaration.
    pub front: Bytes,
}
