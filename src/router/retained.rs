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
use std::time::Instant;

use super::message::Message;
use super::subject::{Filter, Subject};

/// The last retained message per subject.
#[derive(Debug, Default)]
pub struct Retained {
    by_subject: BTreeMap<Subject, Arc<Message>>,
}

impl Retained {
    /// Stores `msg` as its subject's retained message; an empty payload clears it
    /// ([MQTT-3.3.1-6], [MQTT-3.3.1-7]).
    pub fn set(&mut self, msg: Arc<Message>) {
        if msg.payload.is_empty() {
            self.by_subject.remove(&msg.subject);
        } else {
            self.by_subject.insert(msg.subject.clone(), msg);
        }
    }

    /// Clears the retained message of `subject`, if any.
    pub fn clear(&mut self, subject: &Subject) {
        self.by_subject.remove(subject);
    }

    /// The retained messages whose subject matches `filter`, in subject order,
    /// leaving out those whose expiry is at or before `now` (they stay stored until
    /// [`Retained::remove_expired`]).
    pub fn matching(&self, filter: &Filter, now: Instant) -> Vec<Arc<Message>> {
        let live = |m: &&Arc<Message>| m.expires_at.is_none_or(|at| at > now);
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

    /// Drops every message whose expiry is at or before `now`; returns how many.
    pub fn remove_expired(&mut self, now: Instant) -> usize {
        let before = self.by_subject.len();
        self.by_subject
            .retain(|_, m| m.expires_at.is_none_or(|at| at > now));
        before - self.by_subject.len()
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
    use std::time::Duration;

    use super::*;

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
        let now = Instant::now();
        let mut r = Retained::default();
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
        let now = Instant::now();
        let mut r = Retained::default();
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
        let now = Instant::now();
        let mut r = Retained::default();
        let mut expiring = Message::clone(&msg("a", "x"));
        expiring.expires_at = Some(now + Duration::from_secs(10));
        r.set(Arc::new(expiring));
        r.set(msg("b", "y"));
        let all = Filter::mqtt("#").unwrap();
        assert_eq!(topics(&r.matching(&all, now)), ["a", "b"]);
        let later = now + Duration::from_secs(10);
        assert_eq!(topics(&r.matching(&all, later)), ["b"]);
        assert!(r.matching(&Filter::mqtt("a").unwrap(), later).is_empty());
        assert_eq!(r.len(), 2);
        assert_eq!(r.remove_expired(later), 1);
        assert_eq!(r.len(), 1);
    }
}
