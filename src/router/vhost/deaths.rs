//! Dead-letter history (RabbitMQ's `x-death`): written by dead-lettering, read
//! by the AMQP front when it renders a delivery's headers.
//!
//! Owns: the [`Death`] records, their place in a message (one opaque extension,
//! so that `Message` stays the neutral type), RabbitMQ's update rule (one record
//! per (queue, reason), its count incremented and moved to the front when it
//! happens again) and its cycle rule.
//! Refuses: routing dead letters (the exchange model does), and AMQP field
//! tables (the AMQP front renders the records).

use serde::{Deserialize, Serialize};

use crate::router::message::Message;

/// The extension key the history travels under.
pub const EXTENSION: &str = "x-death";

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The history of `msg`, most recent first (empty if it never died). A history
/// that does not decode (it is only ever written here) reads as empty.
pub fn deaths(msg: &Message) -> Vec<Death> {
    msg.extensions
        .get(EXTENSION)
        .and_then(|bytes| postcard::from_bytes(bytes).ok())
        .unwrap_or_default()
}

/// Records a death of `msg` in `queue` for `reason`: increments the existing
/// record of that (queue, reason) and moves it to the front, or adds one at the
/// front.
pub(crate) fn add_death(
    msg: &mut Message,
    queue: &str,
    reason: DeathReason,
    exchange: &str,
    routing_key: &str,
    time_ms: u64,
) {
    let mut all = deaths(msg);
    let mut death = match all
        .iter()
        .position(|d| d.queue == queue && d.reason == reason)
    {
        Some(i) => {
            let mut d = all.remove(i);
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
    all.insert(0, death);
    match postcard::to_stdvec(&all) {
        Ok(bytes) => msg.extensions.set(EXTENSION, bytes.into()),
        // Serialising plain strings and integers into memory cannot fail.
        Err(e) => tracing::error!(error = %e, "x-death history not recorded"),
    }
}

/// RabbitMQ's dead-letter cycle rule: a dead letter is dropped instead of
/// entering `queue` again when every death since it last left `queue` (deaths are
/// most recent first) was automatic (expiry, length limit) rather than a client's
/// reject, so an automatic cycle cannot spin forever.
pub(crate) fn is_cycle(msg: &Message, queue: &str) -> bool {
    if msg.extensions.get(EXTENSION).is_none() {
        return false;
    }
    let deaths = deaths(msg);
    match deaths.iter().position(|d| d.queue == queue) {
        None => false,
        Some(i) => deaths[..=i]
            .iter()
            .all(|d| d.reason != DeathReason::Rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_deaths_count_and_move_to_the_front() {
        let mut m = Message::default();
        assert!(deaths(&m).is_empty());
        add_death(&mut m, "a", DeathReason::Expired, "x", "k", 1);
        add_death(&mut m, "b", DeathReason::Rejected, "x", "k", 2);
        add_death(&mut m, "a", DeathReason::Expired, "y", "j", 3);
        let d = deaths(&m);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].queue.as_str(), d[0].count, d[0].time_ms), ("a", 2, 3));
        // The first record keeps where it was first published.
        assert_eq!(
            (d[0].exchange.as_str(), &d[0].routing_keys[..]),
            ("x", &["k".to_owned()][..])
        );
        assert_eq!(d[1].queue, "b");
    }

    #[test]
    fn only_automatic_cycles_are_cut() {
        let mut m = Message::default();
        assert!(!is_cycle(&m, "a"));
        add_death(&mut m, "a", DeathReason::Expired, "x", "k", 1);
        assert!(is_cycle(&m, "a"));
        assert!(!is_cycle(&m, "b"));
        add_death(&mut m, "b", DeathReason::Rejected, "x", "k", 2);
        assert!(!is_cycle(&m, "a"));
    }
}
