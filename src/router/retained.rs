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

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
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
    /// The messages that expire, by expiry: a sweep takes only what is due.
    by_expiry: BTreeSet<(u64, Subject)>,
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
            by_expiry: BTreeSet::new(),
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
        let expires_at = msg.expires_at;
        let subject = msg.subject.clone();
        // The replaced message leaves the index before the new one enters it:
        // both may have the same expiry, hence the same index key.
        if let Some(old) = self.by_subject.insert(subject.clone(), msg) {
            self.unindex(&old);
        }
        if let Some(at) = expires_at {
            self.by_expiry.insert((at, subject));
        }
        true
    }

    /// Clears the retained message of `subject`; returns whether there was one.
    pub fn clear(&mut self, subject: &Subject) -> bool {
        match self.by_subject.remove(subject) {
            Some(old) => {
                self.bytes -= old.weight();
                self.unindex(&old);
                true
            }
            None => false,
        }
    }

    fn unindex(&mut self, old: &Message) {
        if let Some(at) = old.expires_at {
            self.by_expiry.remove(&(at, old.subject.clone()));
        }
    }

    /// The retained messages whose subject matches `filter`, in subject order,
    /// leaving out those whose expiry is at or before `now_ms` (they stay stored until
    /// [`Retained::remove_expired`]).
    pub fn matching(&self, filter: &Filter, now_ms: u64) -> Vec<Arc<Message>> {
        let mut found = Vec::new();
        self.matching_page(filter, now_ms, None, usize::MAX, &mut found);
        found
    }

    /// [`Retained::matching`] a page at a time: looks at no more than `budget`
    /// stored subjects after `after` (from the start when `None`), adds what
    /// matches to `found` and returns where to go on from (`None`: done), so that
    /// a caller can let go of the store's lock between pages.
    pub fn matching_page(
        &self,
        filter: &Filter,
        now_ms: u64,
        after: Option<&Subject>,
        budget: usize,
        found: &mut Vec<Arc<Message>>,
    ) -> Option<Subject> {
        let live = |m: &Arc<Message>| !m.is_expired(now_ms);
        let (prefix, literal) = filter.literal_prefix();
        if literal {
            found.extend(
                self.by_subject
                    .get(prefix.as_str())
                    .filter(|m| live(m) && filter.matches(&m.subject))
                    .cloned(),
            );
            return None;
        }
        let start = match after {
            Some(s) => Bound::Excluded(s.as_str()),
            None => Bound::Included(prefix.as_str()),
        };
        let mut last: Option<&Subject> = None;
        for (seen, (subject, m)) in self
            .by_subject
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(subject, _)| subject.as_str().starts_with(&prefix))
            .enumerate()
        {
            if seen == budget.max(1) {
                return last.cloned();
            }
            last = Some(subject);
            if filter.matches(subject) && live(m) {
                found.push(m.clone());
            }
        }
        None
    }

    /// Drops every message whose expiry is at or before `now_ms`; returns their
    /// subjects.
    pub fn remove_expired(&mut self, now_ms: u64) -> Vec<Subject> {
        let mut gone = Vec::new();
        while self.by_expiry.first().is_some_and(|(at, _)| *at <= now_ms) {
            let Some((_, subject)) = self.by_expiry.pop_first() else {
                break;
            };
            if let Some(m) = self.by_subject.remove(&subject) {
                self.bytes -= m.weight();
                gone.push(subject);
            }
        }
        gone
    }

    /// How many retained messages are stored.
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
    fn paged_matching_finds_what_one_pass_finds() {
        let now = 1_700_000_000_000u64;
        let mut r = Retained::new(LIMITS);
        for i in 0..50 {
            r.set(msg(&format!("p/{i}/x"), "x"));
            r.set(msg(&format!("p/{i}/y"), "y"));
        }
        let filter = Filter::mqtt("p/+/x").unwrap();
        let whole = topics(&r.matching(&filter, now));
        assert_eq!(whole.len(), 50);
        for budget in [1, 2, 7, 100, 1000] {
            let (mut found, mut after, mut pages) = (Vec::new(), None, 0);
            loop {
                after = r.matching_page(&filter, now, after.as_ref(), budget, &mut found);
                pages += 1;
                if after.is_none() {
                    break;
                }
            }
            assert_eq!(topics(&found), whole, "budget {budget}");
            assert!(pages >= 100 / budget, "budget {budget}: {pages} pages");
        }
    }

    #[test]
    fn expiry_index_follows_replacements_and_clears() {
        let now = 1_700_000_000_000u64;
        let mut r = Retained::new(LIMITS);
        let expiring = |topic: &str, at: u64| {
            let mut m = Message::clone(&msg(topic, "x"));
            m.expires_at = Some(at);
            Arc::new(m)
        };
        r.set(expiring("a", now + 10));
        // Replaced by one that does not expire: it stays.
        r.set(msg("a", "kept"));
        r.set(expiring("b", now + 10));
        r.clear(&Subject::from_mqtt_topic("b").unwrap());
        r.set(expiring("c", now + 20));
        // Replaced by one with the same expiry: still indexed once.
        r.set(expiring("c", now + 20));
        assert_eq!(r.by_expiry.len(), 1);
        assert!(r.remove_expired(now + 15).is_empty());
        assert_eq!(r.remove_expired(now + 20).len(), 1);
        assert_eq!(r.len(), 1);
        assert!(r.by_expiry.is_empty());
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
