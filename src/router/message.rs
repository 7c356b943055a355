//! The neutral message every protocol front translates to and from.
//!
//! Owns: [`Message`] (one publish, whatever protocol it came from), [`Delivery`]
//! (the delivery guarantee) and [`Dispatch`] (what is queued for one subscriber).
//! Refuses: any wire type or wire encoding (no `dwbroker_codecs` here), any field
//! only one protocol reads (those travel as opaque [`Extensions`]), and any clock:
//! expiry is an absolute wall-clock time (ms since the Unix epoch) computed by the
//! front that received the message, compared against a `now` the caller passes in,
//! so that a message keeps its meaning across a restart.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use smallvec::SmallVec;

use super::groups::GroupKey;
use super::subject::Subject;

/// The id of the connection a message came from; 0 means in process (no connection).
pub type ConnId = u64;

/// The delivery guarantee of a message or a subscription (MQTT QoS).
///
/// Ordered, so that `min`/`max` give the effective guarantee of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Delivery {
    /// Fire and forget (QoS 0).
    #[default]
    AtMostOnce = 0,
    /// Acknowledged, possibly duplicated (QoS 1).
    AtLeastOnce = 1,
    /// Acknowledged with a two-step handshake, never duplicated (QoS 2).
    ExactlyOnce = 2,
}

/// Message headers: ordered, and a name may repeat (MQTT user properties, AMQP
/// headers, STOMP and NATS headers).
pub type Headers = Vec<(String, String)>;

/// One published message, shared by every subscriber it is delivered to.
///
/// Fields a protocol cannot express are `None`/empty and are dropped on the way
/// out to that protocol, never invented (see DESIGN.md, "Message properties").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// Where it was published, in the canonical subject space. Only
    /// `Message::default()` has the empty subject.
    pub subject: Subject,
    /// The body; shared, never copied on fan-out.
    pub payload: Bytes,
    /// Application headers, in order.
    pub headers: Headers,
    /// The MIME type of the payload.
    pub content_type: Option<String>,
    /// Opaque request/reply correlation data.
    pub correlation_id: Option<Bytes>,
    /// Where a reply should be published.
    pub reply_to: Option<Subject>,
    /// When the message stops being deliverable, in milliseconds since the Unix
    /// epoch (computed by the front).
    pub expires_at: Option<u64>,
    /// AMQP/STOMP priority.
    pub priority: Option<u8>,
    /// A publisher-assigned message id.
    pub message_id: Option<String>,
    /// A partitioning key (Kafka).
    pub key: Option<Bytes>,
    /// Milliseconds since the Unix epoch, as given by the publisher.
    pub timestamp: Option<u64>,
    /// The publisher declared the payload UTF-8 (MQTT 5 payload format indicator 1).
    pub payload_utf8: bool,
    /// The connection that published it (0 = in process), for no-local.
    pub origin: ConnId,
    /// Publish as retained: also stored as the subject's last retained message.
    pub retain: bool,
    /// The publisher's delivery guarantee. At least once is also what makes a
    /// message persistent (AMQP delivery mode 2, STOMP `persistent:true`, MQTT
    /// QoS 1/2): it is stored when it enters a durable destination.
    pub qos: Delivery,
    /// What only one protocol (or one router layer) reads, carried verbatim.
    pub extensions: Extensions,
}

/// Data the router carries with a message but never interprets: each entry is
/// named by the module that writes and reads it (the AMQP front's verbatim
/// content-header properties, the STOMP front's `reply-to` text, the RabbitMQ
/// model's dead-letter history). Copied with the message, stored with it, counted
/// in its weight.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extensions(SmallVec<[(Cow<'static, str>, Bytes); 1]>);

impl Extensions {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing any value it had.
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, value: Bytes) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every (key, value), in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    fn weight(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// The current time as the router needs it: wall clock for message times
/// (expiry, x-death records), monotonic for in-process timers (queue leases).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time, for timers that do not outlive the process.
    pub at: Instant,
    /// Milliseconds since the Unix epoch, for everything a message carries.
    pub unix_ms: u64,
}

impl Now {
    /// The current time.
    pub fn current() -> Now {
        Now {
            at: Instant::now(),
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// `ms` milliseconds later.
    pub fn plus_ms(self, ms: u64) -> Now {
        Now {
            at: self.at + std::time::Duration::from_millis(ms),
            unix_ms: self.unix_ms.saturating_add(ms),
        }
    }
}

/// See [`Dispatch::subscription_ids`].
pub type SubscriptionIds = smallvec::SmallVec<[u32; 2]>;

/// What the router queues for one subscriber session: one per (message, session),
/// however many of its subscriptions match.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// The shared message.
    pub message: Arc<Message>,
    /// The effective guarantee: the message's, capped by the granted one.
    pub qos: Delivery,
    /// Whether the delivery carries the retain flag.
    pub retain: bool,
    /// The subscription identifiers of every matching subscription (MQTT 5; the
    /// NATS front's subscription keys). Inline: one or two is the common case, and
    /// this is built for every delivery.
    pub subscription_ids: SubscriptionIds,
    /// The shared subscription group it was given to, if any: when the session
    /// ends before it is acknowledged, it goes to another member.
    pub share: Option<Arc<GroupKey>>,
    /// Its number in a stored session (0: not stored), by which the front
    /// settles it ([`Session::settle`](super::Session::settle)).
    pub seq: u64,
}

impl Message {
    /// Whether the message's expiry has passed by `now_ms` (ms since the Unix
    /// epoch): it is then delivered to no one and no longer retained.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }

    /// Milliseconds left before expiry at `now_ms` (`None`: it never expires).
    pub fn ms_left(&self, now_ms: u64) -> Option<u64> {
        self.expires_at.map(|at| at.saturating_sub(now_ms))
    }

    /// The bytes this message holds in memory beyond its fixed size: payload,
    /// headers and the variable-length properties. Outboxes are bounded by it, so
    /// a message of empty payload and large headers still counts.
    pub fn weight(&self) -> usize {
        let strings = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        let bytes = |o: &Option<Bytes>| o.as_ref().map_or(0, Bytes::len);
        self.payload.len()
            + self.subject.as_str().len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + strings(&self.content_type)
            + bytes(&self.correlation_id)
            + self.reply_to.as_ref().map_or(0, |s| s.as_str().len())
            + strings(&self.message_id)
            + bytes(&self.key)
            + self.extensions.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_orders_like_qos() {
        assert!(Delivery::AtMostOnce < Delivery::AtLeastOnce);
        assert!(Delivery::AtLeastOnce < Delivery::ExactlyOnce);
        assert_eq!(
            Delivery::ExactlyOnce.min(Delivery::AtLeastOnce),
            Delivery::AtLeastOnce
        );
        assert_eq!(Delivery::ExactlyOnce as u8, 2);
    }

    #[test]
    fn default_message_is_empty_qos0() {
        let m = Message::default();
        assert_eq!(m.subject.as_str(), "");
        assert!(m.payload.is_empty());
        assert_eq!(m.qos, Delivery::AtMostOnce);
        assert_eq!(m.origin, 0);
        assert!(!m.retain);
    }
}
