//! Retained messages: the last retained message of each subject.
//!
//! Owns: the store and the lookup by filter, skipping expired messages.
//! Refuses: delivery (the front queues what [`Retained::matching`] returns, under its
//! own retain-handling rules), locking (the router wraps it in a `Mutex`) and the
//! clock (`now` is passed in).
//!
//! Subjects are kept in order (a `BTreeMap`), so a filter with a literal prefix
//! (`sensors/kitchen/#`) scans only the subjects that start with that prefix, and
//! a literal filter is one lookup.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::message::Message;
use super::subject::{Filter, Subject};

/// How much the retained store holds.
#[derive(Debug, Clone, Copy)]
pub struct RetainedLimits {
    /// The most subjects with a retained message.
    pub max_messages: usize,
    /// The most bytes of retained messages, by [`Message::weight`].
    pub max_bytes: usize,
}

/// The last retained message per subject.
#[derive(Debug)]
pub struct Retained {
    limits: RetainedLimits,
    by_subject: BTreeMap<Subject, Arc<Message>>,
    bytes: usize,
    /// Refusing since the last stored message: warn once per episode.
    refusing: bool,
}

impl Retained {
    /// An empty store bounded by `limits`.
    pub fn new(limits: RetainedLimits) -> Retained {
        Retained {
            limits,
            by_subject: BTreeMap::new(),
            bytes: 0,
            refusing: false,
        }
    }

    /// Stores `msg` as its subject's retained message; an empty payload clears it
    /// ([MQTT-3.3.1-6], [MQTT-3.3.1-7]). Returns false if the store is full: the
    /// message is then not retained (the previous one of its subject, if any, is
    /// kept) and a warning is logged once per episode.
    pub fn set(&mut self, msg: Arc<Message>) -> bool {
        if msg.payload.is_empty() {
            self.clear(&msg.subject);
            return true;
        }
        let old = self.by_subject.get(&msg.subject).map_or(0, |m| m.weight());
        let count = self.by_subject.len() + usize::from(old == 0);
        let bytes = self.bytes - old + msg.weight();
        if count > self.limits.max_messages || bytes > self.limits.max_bytes {
            if !self.refusing {
                self.refusing = true;
                tracing::warn!(
                    retained = self.by_subject.len(),
                    bytes = self.bytes,
                    "retained store full, new retained messages are not kept"
                );
            }
            return false;
        }
        self.refusing = false;
        self.bytes = bytes;
        self.by_subject.insert(msg.subject.clone(), msg);
        true
    }

    /// Clears the retained message of `subject`; returns whether there was one.
    pub fn clear(&mut self, subject: &Subject) -> bool {
        match self.by_subject.remove(subject) {
            Some(old) => {
                self.bytes -= old.weight();
                true
            }
            None => false,
        }
    }

    /// The retained messages whose subject matches `filter`, in subject order,
    /// leaving out those whose expiry is at or before `now_ms` (they stay stored until
    /// [`Retained::remove_expired`]).
    pub fn matching(&self, filter: &Filter, now_ms: u64) -> Vec<Arc<Message>> {
        let live = |m: &&Arc<Message>| !m.is_expired(now_ms);
        let (prefix, literal) = filter.literal_prefix();
        if literal {
            return self
                .by_subject
                .get(prefix.as_str())
                .filter(live)
                .filter(|m| filter.matches(&m.subject))
                .cloned()
                .into_iter()
                .collect();
        }
        self.by_subject
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(subject, _)| subject.as_str().starts_with(&prefix))
            .filter(|(subject, _)| filter.matches(subject))
            .map(|(_, m)| m)
            .filter(live)
            .cloned()
            .collect()
    }

    /// Drops every message whose expiry is at or before `now_ms`; returns their
    /// subjects.
    pub fn remove_expired(&mut self, now_ms: u64) -> Vec<Subject> {
        let mut freed = 0;
        let mut gone = Vec::new();
        self.by_subject.retain(|subject, m| {
            let keep = !m.is_expired(now_ms);
            if !keep {
                freed += m.weight();
                gone.push(subject.clone());
            }
            keep
        });
        self.bytes -= freed;
        gone
    }

    /// How many subjects have a retained message.
    pub fn len(&self) -> usize {
        self.by_subject.len()
    }

    /// Whether no retained message is stored.
    pub fn is_empty(&self) -> bool {
        self.by_subject.is_empty()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    const LIMITS: RetainedLimits = RetainedLimits {
        max_messages: 100,
        max_bytes: 1 << 20,
    };

    fn msg(topic: &str, payload: &'static str) -> Arc<Message> {
        Arc::new(Message {
            subject: Subject::from_mqtt_topic(topic).unwrap(),
            payload: payload.into(),
            retain: true,
            ..Message::default()
        })
    }

    fn topics(found: &[Arc<Message>]) -> Vec<String> {
        found.iter().map(|m| m.subject.to_mqtt_topic()).collect()
    }

    #[test]
    fn set_replaces_and_empty_clears() {
        let now = 1_700_000_000_000u64;
        let mut r = Retained::new(LIMITS);
        r.set(msg("a/b", "1"));
        r.set(msg("a/b", "2"));
        assert_eq!(r.len(), 1);
        let found = r.matching(&Filter::mqtt("a/b").unwrap(), now);
        assert_eq!(&found[0].payload[..], b"2");
        r.set(msg("a/b", ""));
        assert!(r.is_empty());
        // Clearing what is not there is fine.
        r.set(msg("x", ""));
        assert!(r.is_empty());
    }

    #[test]
    fn matching_by_filter() {
        let now = 1_700_000_000_000u64;
        let mut r = Retained::new(LIMITS);
        for t in ["a", "a/b", "a/b/c", "ab", "b/a", "$SYS/x", "a.b"] {
            r.set(msg(t, "x"));
        }
        let m = |f: &str| topics(&r.matching(&Filter::mqtt(f).unwrap(), now));
        assert_eq!(m("a/#"), ["a", "a/b", "a/b/c"]);
        assert_eq!(m("a/+"), ["a/b"]);
        assert_eq!(m("+/a"), ["b/a"]);
        assert_eq!(m("#").len(), 6, "{:?}", m("#"));
        assert_eq!(m("$SYS/#"), ["$SYS/x"]);
        assert_eq!(m("a.b"), ["a.b"]);
        assert_eq!(m("a/c"), Vec::<String>::new());
        let n = |f: &str| topics(&r.matching(&Filter::nats(f).unwrap(), now));
        assert_eq!(n("a.>"), ["a/b", "a/b/c"]);
        assert_eq!(n(">").len(), 7);
    }

    #[test]
    fn expired_messages_are_skipped_not_removed() {
        let now = 1_700_000_000_000u64;
        let mut r = Retained::new(LIMITS);
        let mut expiring = Message::clone(&msg("a", "x"));
        expiring.expires_at = Some(now + 10_000);
        r.set(Arc::new(expiring));
        r.set(msg("b", "y"));
        let all = Filter::mqtt("#").unwrap();
        assert_eq!(topics(&r.matching(&all, now)), ["a", "b"]);
        let later = now + 10_000;
        assert_eq!(topics(&r.matching(&all, later)), ["b"]);
        assert!(r.matching(&Filter::mqtt("a").unwrap(), later).is_empty());
        assert_eq!(r.len(), 2);
        assert_eq!(r.remove_expired(later).len(), 1);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_store_is_bounded_and_replacing_is_always_possible() {
        let mut r = Retained::new(RetainedLimits {
            max_messages: 3,
            max_bytes: 1 << 20,
        });
        let msg = |subject: &str, payload: &'static str| {
            Arc::new(Message {
                subject: Subject::new(subject).unwrap(),
                payload: payload.into(),
                ..Message::default()
            })
        };
        for s in ["a", "b", "c"] {
            assert!(r.set(msg(s, "x")));
        }
        assert!(!r.set(msg("d", "x")), "a fourth subject is refused");
        assert!(r.set(msg("a", "y")), "replacing keeps the count");
        r.clear(&Subject::new("b").unwrap());
        assert!(r.set(msg("d", "x")));
        assert_eq!(r.len(), 3);
        let mut small = Retained::new(RetainedLimits {
            max_messages: 10,
            max_bytes: 4,
        });
        assert!(small.set(msg("a", "xyz")), "1 + 3 bytes fit");
        assert!(!small.set(msg("b", "x")));
    }
}
