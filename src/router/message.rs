//! The neutral message every protocol front translates to and from.
//!
//! Owns: [`Message`] (one publish, whatever protocol it came from), [`Delivery`]
//! (the delivery guarantee) and [`Dispatch`] (what is queued for one subscriber).
//! Refuses: any wire type or wire encoding (no `dwbroker_codecs` here), and any
//! clock: expiry is an absolute [`Instant`] computed by the front that received the
//! message, compared against a `now` the caller passes in.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

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
    /// When the message stops being deliverable (absolute; computed by the front).
    pub expires_at: Option<Instant>,
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
    /// The publisher's delivery guarantee.
    pub qos: Delivery,
    /// Dead-letter history, most recent first (AMQP `x-death`): one record per
    /// (queue, reason), its count incremented and moved to the front when it
    /// happens again.
    pub deaths: Vec<Death>,
    /// The AMQP content-header property bytes exactly as an AMQP publisher sent
    /// them; opaque to the router; the AMQP front re-sends them verbatim.
    pub amqp_properties: Option<Bytes>,
    /// The `reply-to` destination exactly as a STOMP publisher gave it; opaque to
    /// the router; the STOMP front shows it verbatim (RabbitMQ does the same).
    pub stomp_reply_to: Option<String>,
}

/// The current time as the router needs it: monotonic for expiry, wall clock for
/// x-death records.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time, for expiry.
    pub at: Instant,
    /// Milliseconds since the Unix epoch, for records shown to clients.
    pub unix_ms: u64,
}

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// Rejected or nacked without requeue.
    Rejected,
    /// Its TTL passed while queued.
    Expired,
    /// Dropped or refused by a queue length limit.
    MaxLen,
}

impl DeathReason {
    /// The AMQP `x-death` reason text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
        }
    }
}

/// One dead-lettering record (an AMQP `x-death` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Death {
    /// The queue it left.
    pub queue: String,
    /// Why.
    pub reason: DeathReason,
    /// The exchange it had been published to.
    pub exchange: String,
    /// The routing keys it had been published with.
    pub routing_keys: Vec<String>,
    /// How many times it died in this queue for this reason.
    pub count: u64,
    /// When (milliseconds since the Unix epoch), the latest time.
    pub time_ms: u64,
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
}

impl Message {
    /// Whether the message's expiry has passed by `now`: it is then delivered to
    /// no one and no longer retained.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
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
            + bytes(&self.amqp_properties)
            + strings(&self.stomp_reply_to)
    }

    /// Records a death in `queue` for `reason`: increments the existing record of
    /// that (queue, reason) and moves it to the front, or adds one at the front.
    pub fn add_death(
        &mut self,
        queue: &str,
        reason: DeathReason,
        exchange: &str,
        routing_key: &str,
        time_ms: u64,
    ) {
        let mut death = match self
            .deaths
            .iter()
            .position(|d| d.queue == queue && d.reason == reason)
        {
            Some(i) => {
                let mut d = self.deaths.remove(i);
                d.count += 1;
                d
            }
            None => Death {
                queue: queue.to_owned(),
                reason,
                exchange: exchange.to_owned(),
                routing_keys: vec![routing_key.to_owned()],
                count: 1,
                time_ms,
            },
        };
        death.time_ms = time_ms;
        self.deaths.insert(0, death);
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
