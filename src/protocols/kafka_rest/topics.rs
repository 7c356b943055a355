//! Kafka topics over the router's streams: topic `t` of N partitions is the N
//! streams `t:0` .. `t:N-1` (partitions of one topic, capturing subject `t`), and
//! offset `o` of a partition is stream sequence `o + 1`.
//!
//! Owns: that mapping, topic names, creating a topic on first produce, what the
//! topic and partition resources show, and a group's committed offsets (a durable
//! stream consumer per group on each partition, whose position is the offset).
//! Refuses: HTTP (api.rs) and group membership (groups.rs).

use std::sync::Arc;

use serde_json::{json, Value};

use super::errors::RestError;
use super::groups::{Bounds, TopicPartition, Topics};
use crate::config::Retention;
use crate::router::streams::config::{AckPolicy, ConsumerConfig, StreamConfig};
use crate::router::streams::partition::Partition;
use crate::router::streams::Stream;
use crate::router::{Filter, Now, Router};

/// The longest topic name Kafka allows.
const MAX_TOPIC_NAME: usize = 249;

/// The stream holding partition `p` of `topic`. `:` is not allowed in Kafka
/// topic names, so no topic's streams collide with another's.
pub(crate) fn stream_name(topic: &str, p: u32) -> String {
    format!("{topic}:{p}")
}

/// The committed offsets of `group` are the position of this consumer on each
/// partition's stream.
fn group_consumer(group: &str) -> String {
    format!("kafka-group:{group}")
}

/// A topic's partitions, in order.
#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) partitions: Vec<Arc<Stream>>,
}

/// Checks a topic name as Kafka does: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or
/// `..`; it must also be a subject (no empty token).
pub(crate) fn check_name(topic: &str) -> Result<Filter, RestError> {
    let legal = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_NAME
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    let invalid = || {
        RestError::new(
            axum::http::StatusCode::BAD_REQUEST,
            40002,
            format!("Invalid topic name: {topic}"),
        )
    };
    if !legal {
        return Err(invalid());
    }
    Filter::nats(topic).map_err(|_| invalid())
}

/// Topic `name` as it is now.
pub(crate) fn find(router: &Router, name: &str) -> Option<Topic> {
    let first = router.stream(&stream_name(name, 0))?;
    let count = first.partition()?.count;
    let mut partitions = vec![first];
    for p in 1..count {
        partitions.push(router.stream(&stream_name(name, p))?);
    }
    Some(Topic {
        name: name.to_owned(),
        partitions,
    })
}

/// Topic `name`, created with `count` partitions and `retention` if it does not
/// exist; it captures its own name and the subject filters `more`.
pub(crate) fn find_or_create(
    router: &Router,
    name: &str,
    count: u32,
    more: &[String],
    retention: Retention,
    now: Now,
) -> Result<Topic, RestError> {
    if let Some(topic) = find(router, name) {
        return Ok(topic);
    }
    check_name(name)?;
    let count = count.max(1);
    let mut partitions = Vec::with_capacity(count as usize);
    for index in 0..count {
        let config = StreamConfig {
            name: stream_name(name, index),
            subjects: std::iter::once(name.to_owned())
                .chain(more.iter().filter(|s| *s != name).cloned())
                .collect(),
            partition: Some(Partition { index, count }),
            front: bytes::Bytes::from_static(b"kafka-rest"),
            max_bytes: retention.bytes,
            max_age: retention.age,
            ..StreamConfig::default()
        };
        let stream = router
            .create_stream(config, now)
            .map_err(|e| RestError::storage(format!("topic {name} not created: {e}")))?;
        partitions.push(stream);
    }
    Ok(Topic {
        name: name.to_owned(),
        partitions,
    })
}

/// Every topic's name, sorted.
pub(crate) fn names(router: &Router) -> Vec<String> {
    router
        .streams()
        .iter()
        .filter(|s| s.partition().is_some_and(|p| p.index == 0))
        .filter_map(|s| s.name().strip_suffix(":0").map(str::to_owned))
        .collect()
}

impl Topic {
    /// Partition `p`.
    pub(crate) fn partition(&self, p: u32) -> Option<&Arc<Stream>> {
        self.partitions.get(p as usize)
    }

    /// The resource `GET /topics/{t}`.
    pub(crate) fn to_json(&self) -> Value {
        let config = self.partitions[0].config();
        let ms = |d: Option<std::time::Duration>| {
            d.map_or("-1".to_owned(), |d| d.as_millis().to_string())
        };
        let num = |n: Option<u64>| n.map_or("-1".to_owned(), |n| n.to_string());
        json!({
            "name": self.name,
            "configs": {
                "cleanup.policy": "delete",
                "retention.ms": ms(config.max_age),
                "retention.bytes": num(config.max_bytes),
                "max.message.bytes": num(config.max_msg_size),
            },
            "partitions": (0..self.partitions.len() as u32).map(partition_json).collect::<Vec<_>>(),
        })
    }
}

/// A partition resource: one broker (0) leads every partition.
pub(crate) fn partition_json(p: u32) -> Value {
    json!({
        "partition": p,
        "leader": 0,
        "replicas": [{ "broker": 0, "leader": true, "in_sync": true }],
    })
}

/// The first and the next offset of a partition.
pub(crate) fn bounds(stream: &Stream) -> Bounds {
    let stats = stream.stats();
    Bounds {
        beginning: stats.first_seq.saturating_sub(1).min(stats.last_seq),
        end: stats.last_seq,
    }
}

/// The committed offset of `group` on a partition (the next offset to read).
pub(crate) fn committed(stream: &Stream, group: &str) -> Option<u64> {
    stream
        .consumer_info(&group_consumer(group))
        .map(|c| c.state.delivered.stream_seq)
}

/// Commits `offset` (the next to read) for `group` on a partition; the caller
/// waits for storage before answering.
pub(crate) fn commit(stream: &Stream, group: &str, offset: u64, now: Now) -> Result<(), RestError> {
    let name = group_consumer(group);
    if !stream.has_consumer(&name) {
        let config = ConsumerConfig {
            name: name.clone(),
            durable: true,
            ack_policy: AckPolicy::None,
            front: bytes::Bytes::from_static(b"kafka-rest"),
            ..ConsumerConfig::default()
        };
        stream
            .add_consumer(config, now, false)
            .map_err(RestError::storage)?;
    }
    stream
        .set_position(&name, offset)
        .map_err(RestError::storage)
}

/// The router's topics, as the group state machine asks about them.
pub(crate) struct RouterTopics<'a> {
    pub(crate) router: &'a Router,
    pub(crate) group: &'a str,
}

impl<'a> RouterTopics<'a> {
    /// The topics as `group` sees them (its committed offsets).
    pub(crate) fn of(ctx: &'a crate::server::Context, group: &'a str) -> RouterTopics<'a> {
        RouterTopics {
            router: &ctx.router,
            group,
        }
    }

    pub(crate) fn stream(&self, tp: &TopicPartition) -> Option<Arc<Stream>> {
        let stream = self.router.stream(&stream_name(&tp.topic, tp.partition))?;
        stream.partition().is_some().then_some(stream)
    }
}

impl Topics for RouterTopics<'_> {
    fn names(&self) -> Vec<String> {
        names(self.router)
    }

    fn partitions(&self, topic: &str) -> Option<u32> {
        let first = self.router.stream(&stream_name(topic, 0))?;
        first.partition().map(|p| p.count)
    }

    fn bounds(&self, tp: &TopicPartition) -> Option<Bounds> {
        self.stream(tp).map(|s| bounds(&s))
    }

    fn committed(&self, tp: &TopicPartition) -> Option<u64> {
        let stream = self.stream(tp)?;
        committed(&stream, self.group)
    }
}
