//! JetStream's JSON: stream and consumer configurations as nats-server 2.10 reads
//! and writes them, and their translation into the router's declarations.
//!
//! Owns: nats-server's defaults (a zero or missing limit is -1, "unlimited"; a
//! zero ack wait is 30 s; ...), the fields it omits when empty, the checks it makes
//! before a declaration reaches the router, and the time format of its replies.
//! Clients (async-nats especially) deserialize replies without defaults of their
//! own, so a reply carries the configuration with every default filled in; that
//! normalized text is what the router keeps as the declaration's `front`.
//! Refuses: state (the router's) and the API's request/reply envelope (api.rs).

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::ApiError;
use crate::router::streams::config::{
    AckPolicy, ConsumerConfig, DeliverPolicy, Discard, Retention, StorageKind, StreamConfig,
};
use crate::router::streams::parse_filters;
use crate::router::Filter;

/// nats-server's duplicate window when none is given.
const DEFAULT_DUPLICATE_WINDOW: i64 = 120_000_000_000;
/// nats-server's ack wait when none is given.
const DEFAULT_ACK_WAIT: i64 = 30_000_000_000;
/// nats-server's max_ack_pending when none is given.
const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// nats-server's max_waiting (pull requests held per consumer) when none is given.
const DEFAULT_MAX_WAITING: i64 = 512;
/// How long an ephemeral consumer outlives its last client, when not given.
const DEFAULT_INACTIVE_THRESHOLD: i64 = 5_000_000_000;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A stream's retention, as JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RetentionJson {
    #[default]
    Limits,
    Interest,
    #[serde(rename = "workqueue")]
    WorkQueue,
}

/// A stream's discard policy, as JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DiscardJson {
    #[default]
    Old,
    New,
}

/// A stream's storage, as JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageJson {
    #[default]
    File,
    Memory,
}

/// A stream configuration (nats-server's `StreamConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct StreamJson {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) subjects: Vec<String>,
    pub(crate) retention: RetentionJson,
    pub(crate) max_consumers: i64,
    pub(crate) max_msgs: i64,
    pub(crate) max_bytes: i64,
    pub(crate) max_age: i64,
    pub(crate) max_msgs_per_subject: i64,
    pub(crate) max_msg_size: i64,
    pub(crate) discard: DiscardJson,
    pub(crate) storage: StorageJson,
    pub(crate) num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) no_ack: bool,
    pub(crate) duplicate_window: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) placement: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mirror: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sources: Option<Value>,
    pub(crate) allow_direct: bool,
    pub(crate) mirror_direct: bool,
    pub(crate) sealed: bool,
    pub(crate) deny_delete: bool,
    pub(crate) deny_purge: bool,
    pub(crate) allow_rollup_hdrs: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) discard_new_per_subject: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) republish: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) subject_transform: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Value>,
}

impl Default for StreamJson {
    fn default() -> Self {
        StreamJson {
            name: String::new(),
            description: None,
            subjects: Vec::new(),
            retention: RetentionJson::Limits,
            max_consumers: -1,
            max_msgs: -1,
            max_bytes: -1,
            max_age: 0,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            discard: DiscardJson::Old,
            storage: StorageJson::File,
            num_replicas: 1,
            no_ack: false,
            duplicate_window: 0,
            placement: None,
            mirror: None,
            sources: None,
            allow_direct: false,
            mirror_direct: false,
            sealed: false,
            deny_delete: false,
            deny_purge: false,
            allow_rollup_hdrs: false,
            discard_new_per_subject: false,
            republish: None,
            subject_transform: None,
            compression: None,
            metadata: None,
        }
    }
}

/// A limit: -1 (and, as nats-server reads it, 0) is none.
fn limit(n: i64) -> Option<u64> {
    u64::try_from(n).ok().filter(|&n| n > 0)
}

fn nanos(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

/// A stream or consumer name nats-server accepts: not empty, no `.`, `*`, `>`,
/// path separators or whitespace.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
}

impl StreamJson {
    /// Parses a create/update request body.
    pub(crate) fn parse(body: &[u8]) -> Result<StreamJson, ApiError> {
        serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())
    }

    /// Fills in nats-server's defaults and checks what it checks; `name` is the
    /// one in the request subject.
    pub(crate) fn normalize(mut self, name: &str) -> Result<StreamJson, ApiError> {
        if self.name.is_empty() || self.name != name {
            return Err(ApiError::new(
                400,
                10056,
                "stream name in subject does not match request",
            ));
        }
        if !valid_name(&self.name) {
            return Err(ApiError::new(400, 10057, "invalid stream name"));
        }
        if self.mirror.is_some() || self.sources.is_some() {
            return Err(ApiError::new(
                500,
                10052,
                "stream mirrors and sources are not supported",
            ));
        }
        if self.num_replicas > 1 {
            return Err(ApiError::new(
                500,
                10074,
                "replicas > 1 not supported in non-clustered mode",
            ));
        }
        self.num_replicas = 1;
        if self.subjects.is_empty() {
            self.subjects = vec![self.name.clone()];
        }
        let filters = parse_filters(&self.subjects)
            .map_err(|_| ApiError::new(500, 10052, "invalid subject"))?;
        let api = Filter::nats("$JS.API.>").expect("a valid filter");
        if filters
            .iter()
            .any(|f| crate::router::streams::filters_overlap(f, &api))
        {
            return Err(ApiError::new(
                400,
                10052,
                "subjects that overlap with jetstream api require no-ack to be true",
            ));
        }
        for n in [
            &mut self.max_consumers,
            &mut self.max_msgs,
            &mut self.max_bytes,
            &mut self.max_msgs_per_subject,
            &mut self.max_msg_size,
        ] {
            if *n == 0 {
                *n = -1;
            }
        }
        if self.max_age < 0 || self.duplicate_window < 0 {
            return Err(ApiError::new(
                500,
                10052,
                "negative durations are not allowed",
            ));
        }
        if self.duplicate_window == 0 {
            self.duplicate_window = if self.max_age > 0 {
                self.max_age.min(DEFAULT_DUPLICATE_WINDOW)
            } else {
                DEFAULT_DUPLICATE_WINDOW
            };
        } else if self.max_age > 0 && self.duplicate_window > self.max_age {
            return Err(ApiError::new(
                500,
                10052,
                "duplicates window can not be larger then max age",
            ));
        }
        Ok(self)
    }

    /// The router's declaration; `self` is normalized.
    pub(crate) fn to_router(&self) -> StreamConfig {
        StreamConfig {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            retention: match self.retention {
                RetentionJson::Limits => Retention::Limits,
                RetentionJson::Interest => Retention::Interest,
                RetentionJson::WorkQueue => Retention::WorkQueue,
            },
            max_consumers: limit(self.max_consumers),
            max_msgs: limit(self.max_msgs),
            max_bytes: limit(self.max_bytes),
            max_age: (self.max_age > 0).then(|| nanos(self.max_age)),
            max_msgs_per_subject: limit(self.max_msgs_per_subject),
            max_msg_size: limit(self.max_msg_size),
            discard: match self.discard {
                DiscardJson::Old => Discard::Old,
                DiscardJson::New => Discard::New,
            },
            storage: match self.storage {
                StorageJson::File => StorageKind::File,
                StorageJson::Memory => StorageKind::Memory,
            },
            duplicate_window: nanos(self.duplicate_window),
            sealed: self.sealed,
            deny_delete: self.deny_delete,
            deny_purge: self.deny_purge,
            partition: None,
            front: Bytes::from(serde_json::to_vec(self).unwrap_or_default()),
        }
    }

    /// The JSON a stream was declared with (the router's `front`).
    pub(crate) fn of(config: &StreamConfig) -> StreamJson {
        serde_json::from_slice(&config.front).unwrap_or_else(|_| StreamJson {
            name: config.name.clone(),
            subjects: config.subjects.clone(),
            ..StreamJson::default()
        })
    }
}

/// A consumer's deliver policy, as JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeliverPolicyJson {
    #[default]
    All,
    Last,
    New,
    ByStartSequence,
    ByStartTime,
    LastPerSubject,
}

/// A consumer's ack policy, as JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AckPolicyJson {
    None,
    All,
    #[default]
    Explicit,
}

/// A consumer's replay policy, as JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReplayJson {
    #[default]
    Instant,
    Original,
}

/// A consumer configuration (nats-server's `ConsumerConfig`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ConsumerJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) durable_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) deliver_policy: DeliverPolicyJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) opt_start_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) opt_start_time: Option<String>,
    pub(crate) ack_policy: AckPolicyJson,
    pub(crate) ack_wait: i64,
    pub(crate) max_deliver: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) backoff: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) filter_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) filter_subjects: Option<Vec<String>>,
    pub(crate) replay_policy: ReplayJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sample_freq: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) max_waiting: i64,
    pub(crate) max_ack_pending: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) flow_control: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) idle_heartbeat: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) headers_only: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) max_batch: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) max_expires: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) max_bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deliver_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deliver_group: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) inactive_threshold: i64,
    pub(crate) num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) mem_storage: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Value>,
}

/// A consumer create request's envelope.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateConsumer {
    #[serde(default)]
    pub(crate) stream_name: String,
    pub(crate) config: ConsumerJson,
    #[serde(default)]
    pub(crate) action: String,
}

fn none_if_empty(s: &mut Option<String>) {
    if s.as_deref() == Some("") {
        *s = None;
    }
}

impl ConsumerJson {
    /// Whether it delivers to a subject (push) rather than on request (pull).
    pub(crate) fn is_push(&self) -> bool {
        self.deliver_subject.is_some()
    }

    /// Fills in nats-server's defaults and checks what it checks. `name` is the
    /// consumer's name (from the subject, the config or generated).
    pub(crate) fn normalize(mut self, name: &str) -> Result<ConsumerJson, ApiError> {
        for s in [
            &mut self.durable_name,
            &mut self.name,
            &mut self.filter_subject,
            &mut self.deliver_subject,
            &mut self.deliver_group,
        ] {
            none_if_empty(s);
        }
        if let Some(durable) = &self.durable_name {
            if durable != name {
                return Err(ApiError::new(
                    400,
                    10017,
                    "consumer name in subject does not match durable name in request",
                ));
            }
        }
        if !valid_name(name) {
            return Err(ApiError::new(400, 10103, "consumer name is not valid"));
        }
        if self.durable_name.is_some() || self.name.is_some() {
            self.name = Some(name.to_owned());
        }
        match (self.deliver_policy, self.opt_start_seq, &self.opt_start_time) {
            (DeliverPolicyJson::ByStartSequence, Some(seq), None) if seq > 0 => {}
            (DeliverPolicyJson::ByStartSequence, _, _) => {
                return Err(policy_error(
                    "consumer delivery policy is deliver by start sequence, but optional start sequence is not set",
                ))
            }
            (DeliverPolicyJson::ByStartTime, None, Some(t)) => {
                parse_time(t).ok_or_else(ApiError::invalid_json)?;
            }
            (DeliverPolicyJson::ByStartTime, _, _) => {
                return Err(policy_error(
                    "consumer delivery policy is deliver by start time, but optional start time is not set",
                ))
            }
            (_, Some(_), _) => {
                return Err(policy_error(
                    "consumer delivery policy is not deliver by start sequence, but optional start sequence is set",
                ))
            }
            (_, _, Some(_)) => {
                return Err(policy_error(
                    "consumer delivery policy is not deliver by start time, but optional start time is set",
                ))
            }
            _ => {}
        }
        if self.replay_policy == ReplayJson::Original {
            return Err(ApiError::new(
                400,
                10084,
                "replay policy original is not supported",
            ));
        }
        if self.filter_subject.is_some() && self.filter_subjects.is_some() {
            return Err(ApiError::new(
                400,
                10136,
                "consumer cannot have both FilterSubject and FilterSubjects specified",
            ));
        }
        for f in self.filters() {
            Filter::nats(&f).map_err(|_| {
                ApiError::new(
                    400,
                    10093,
                    "consumer filter subject is not a valid subset of the interest subjects",
                )
            })?;
        }
        if self.is_push() {
            if self.max_waiting != 0 {
                return Err(ApiError::new(
                    400,
                    10074,
                    "consumer in push mode can not set max waiting",
                ));
            }
            if self.flow_control && self.idle_heartbeat <= 0 {
                return Err(ApiError::new(
                    400,
                    10113,
                    "consumer with flow control also needs heartbeats",
                ));
            }
            if self.max_batch != 0 || self.max_expires != 0 || self.max_bytes != 0 {
                return Err(ApiError::new(
                    400,
                    10134,
                    "consumer in push mode can not set max batch, max expires or max bytes",
                ));
            }
            if let Some(d) = &self.deliver_subject {
                crate::router::Subject::new(d).map_err(|_| {
                    ApiError::new(400, 10052, "consumer deliver subject is not valid")
                })?;
            }
        } else {
            if self.deliver_group.is_some() {
                return Err(ApiError::new(
                    400,
                    10078,
                    "consumer is pull mode and can not have a deliver group",
                ));
            }
            if self.flow_control || self.idle_heartbeat != 0 {
                return Err(ApiError::new(
                    400,
                    10082,
                    "consumer in pull mode can not have flow control or heartbeats",
                ));
            }
            if self.max_waiting < 0 {
                return Err(ApiError::new(
                    400,
                    10052,
                    "consumer max waiting needs to be positive",
                ));
            }
            if self.max_waiting == 0 {
                self.max_waiting = DEFAULT_MAX_WAITING;
            }
        }
        if self.ack_wait < 0 || self.idle_heartbeat < 0 || self.inactive_threshold < 0 {
            return Err(ApiError::new(
                500,
                10052,
                "negative durations are not allowed",
            ));
        }
        if self
            .backoff
            .as_ref()
            .is_some_and(|b| b.iter().any(|&d| d <= 0))
        {
            return Err(ApiError::new(
                400,
                10116,
                "consumer backoff durations must be positive",
            ));
        }
        if self.ack_wait == 0 {
            self.ack_wait = self
                .backoff
                .as_ref()
                .and_then(|b| b.first().copied())
                .unwrap_or(DEFAULT_ACK_WAIT);
        }
        if self.max_deliver == 0 {
            self.max_deliver = -1;
        }
        if let Some(b) = &self.backoff {
            if self.max_deliver != -1 && self.max_deliver <= b.len() as i64 {
                return Err(ApiError::new(
                    400,
                    10116,
                    "max deliver is required to be > length of backoff values",
                ));
            }
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicyJson::None {
            self.max_ack_pending = DEFAULT_MAX_ACK_PENDING;
        }
        if self.durable_name.is_none() && self.inactive_threshold == 0 {
            self.inactive_threshold = DEFAULT_INACTIVE_THRESHOLD;
        }
        Ok(self)
    }

    /// Its filters (`filter_subject` or `filter_subjects`).
    pub(crate) fn filters(&self) -> Vec<String> {
        match (&self.filter_subject, &self.filter_subjects) {
            (Some(f), _) => vec![f.clone()],
            (None, Some(fs)) => fs.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// The router's declaration; `self` is normalized.
    pub(crate) fn to_router(&self, name: &str) -> ConsumerConfig {
        ConsumerConfig {
            name: name.to_owned(),
            durable: self.durable_name.is_some(),
            deliver_policy: match self.deliver_policy {
                DeliverPolicyJson::All => DeliverPolicy::All,
                DeliverPolicyJson::Last => DeliverPolicy::Last,
                DeliverPolicyJson::New => DeliverPolicy::New,
                DeliverPolicyJson::ByStartSequence => {
                    DeliverPolicy::ByStartSequence(self.opt_start_seq.unwrap_or(1))
                }
                DeliverPolicyJson::ByStartTime => DeliverPolicy::ByStartTime(
                    self.opt_start_time
                        .as_deref()
                        .and_then(parse_time)
                        .unwrap_or(0),
                ),
                DeliverPolicyJson::LastPerSubject => DeliverPolicy::LastPerSubject,
            },
            ack_policy: match self.ack_policy {
                AckPolicyJson::None => AckPolicy::None,
                AckPolicyJson::All => AckPolicy::All,
                AckPolicyJson::Explicit => AckPolicy::Explicit,
            },
            ack_wait: nanos(self.ack_wait),
            backoff: self.backoff.iter().flatten().map(|&d| nanos(d)).collect(),
            max_deliver: limit(self.max_deliver),
            max_ack_pending: limit(self.max_ack_pending),
            filter_subjects: self.filters(),
            front: Bytes::from(serde_json::to_vec(self).unwrap_or_default()),
        }
    }

    /// The JSON a consumer was declared with (the router's `front`).
    pub(crate) fn of(config: &ConsumerConfig) -> ConsumerJson {
        serde_json::from_slice(&config.front).unwrap_or_default()
    }
}

fn policy_error(text: &'static str) -> ApiError {
    ApiError::new(400, 10094, text)
}

pub(crate) use crate::protocols::parse_time;

/// An RFC 3339 time (UTC, nanoseconds) as nats-server writes it; 0 is Go's zero
/// time, which it writes for "never".
pub(crate) fn format_time(ns: u64) -> String {
    if ns == 0 {
        return "0001-01-01T00:00:00Z".to_owned();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_defaults_are_nats_servers() {
        let s = StreamJson::parse(br#"{"name":"S","max_msgs":0,"max_age":5000000000}"#)
            .unwrap()
            .normalize("S")
            .unwrap();
        assert_eq!(s.subjects, ["S"]);
        assert_eq!(s.max_msgs, -1);
        assert_eq!(s.duplicate_window, 5_000_000_000);
        let c = s.to_router();
        assert_eq!(c.max_msgs, None);
        assert_eq!(c.max_age, Some(Duration::from_secs(5)));
        let echoed: Value = serde_json::from_slice(&c.front).unwrap();
        assert_eq!(echoed["max_bytes"], -1);
        assert_eq!(echoed["storage"], "file");
        assert!(echoed.get("mirror").is_none());
    }

    #[test]
    fn bad_stream_configs_get_nats_servers_errors() {
        let code = |body: &[u8], name: &str| {
            StreamJson::parse(body)
                .and_then(|s| s.normalize(name))
                .unwrap_err()
                .err_code
        };
        assert_eq!(code(b"{bad", "S"), 10025);
        assert_eq!(code(br#"{"name":"S","retention":"bogus"}"#, "S"), 10025);
        assert_eq!(code(br#"{"name":"S","max_msgs":"a"}"#, "S"), 10025);
        assert_eq!(code(br#"{"name":"T"}"#, "S"), 10056);
        assert_eq!(code(br#"{"name":"S","subjects":["a b"]}"#, "S"), 10052);
        assert_eq!(code(br#"{"name":"S","num_replicas":3}"#, "S"), 10074);
    }

    #[test]
    fn consumer_defaults_and_checks() {
        let c: ConsumerJson = serde_json::from_str(r#"{"ack_policy":"explicit"}"#).unwrap();
        let c = c.normalize("eph").unwrap();
        assert_eq!(c.ack_wait, DEFAULT_ACK_WAIT);
        assert_eq!(c.max_waiting, DEFAULT_MAX_WAITING);
        assert_eq!(c.inactive_threshold, DEFAULT_INACTIVE_THRESHOLD);
        assert!(!c.to_router("eph").durable);
        let bad: ConsumerJson =
            serde_json::from_str(r#"{"durable_name":"D","deliver_policy":"by_start_sequence"}"#)
                .unwrap();
        assert_eq!(bad.normalize("D").unwrap_err().err_code, 10094);
        let push: ConsumerJson =
            serde_json::from_str(r#"{"deliver_subject":"d","flow_control":true}"#).unwrap();
        assert_eq!(push.normalize("P").unwrap_err().err_code, 10113);
    }

    #[test]
    fn times_are_rfc3339_with_gos_zero() {
        assert_eq!(format_time(0), "0001-01-01T00:00:00Z");
        let t = format_time(1_796_575_715_542_080_218);
        assert_eq!(t, "2026-12-06T16:48:35.542080218Z");
        assert_eq!(parse_time(&t), Some(1_796_575_715_542_080_218));
    }
}
