//! Shared subscription groups: one member receives each message.
//!
//! Owns: a group's identity (its name and filter: MQTT `$share/<group>/<filter>`
//! and, later, NATS queue groups), its members and the round-robin choice among
//! them.
//! Refuses: looking members' sessions up or pushing to them (the router does), and
//! locking: membership changes need `&mut` (the index write lock);
//! [`Group::pick_where`] needs only `&self`, because the cursor is atomic, so
//! publishes choose members under the index read lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::sessions::SessionId;
use super::subject::Filter;
use super::SubOptions;

/// What identifies a group: its filter and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// The filter every member subscribed with.
    pub filter: Filter,
    /// The group name.
    pub name: Box<str>,
}

/// One subscriber in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The subscribing session.
    pub session: SessionId,
    /// Its options (qos, retain-as-published, subscription id).
    pub opts: SubOptions,
}

/// A shared subscription group.
#[derive(Debug)]
pub struct Group {
    key: Arc<GroupKey>,
    members: Vec<Member>,
    cursor: AtomicUsize,
}

impl Group {
    /// An empty group `name` over `filter`.
    pub fn new(name: &str, filter: Filter) -> Group {
        Group {
            key: Arc::new(GroupKey {
                filter,
                name: name.into(),
            }),
            members: Vec::new(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The group name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The group's identity, which dispatches to its members carry.
    pub fn key(&self) -> &Arc<GroupKey> {
        &self.key
    }

    /// Adds `session`, or replaces its options if it is already a member; returns
    /// whether it replaced.
    pub fn join(&mut self, session: SessionId, opts: SubOptions) -> bool {
        if let Some(m) = self.members.iter_mut().find(|m| m.session == session) {
            m.opts = opts;
            return true;
        }
        self.members.push(Member { session, opts });
        false
    }

    /// Removes `session`; returns whether it was a member.
    pub fn leave(&mut self, session: SessionId) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.session != session);
        self.members.len() != before
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no member left.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The next member, round robin, for which `eligible` is true: members that are
    /// not eligible are passed over (and keep their turn for the next message).
    pub fn pick_where(&self, mut eligible: impl FnMut(&Member) -> bool) -> Option<&Member> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        // Relaxed: the cursor only spreads load; concurrent publishes may pick the
        // same member, which is allowed.
        let start = self.cursor.load(Ordering::Relaxed);
        for step in 0..n {
            let i = start.wrapping_add(step) % n;
            let member = &self.members[i];
            if eligible(member) {
                self.cursor.store(i.wrapping_add(1), Ordering::Relaxed);
                return Some(member);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::message::Delivery;

    fn opts() -> SubOptions {
        SubOptions {
            qos: Delivery::AtLeastOnce,
            no_local: false,
            retain_as_published: false,
            subscription_id: None,
            share_group: Some("g".into()),
            withheld: None,
        }
    }

    fn group() -> Group {
        Group::new("g", Filter::mqtt("a/+").unwrap())
    }

    #[test]
    fn round_robin() {
        let mut g = group();
        assert!(g.pick_where(|_| true).is_none());
        assert!(!g.join(1, opts()));
        assert!(!g.join(2, opts()));
        assert!(!g.join(3, opts()));
        let picks: Vec<_> = (0..6)
            .map(|_| g.pick_where(|_| true).unwrap().session)
            .collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
        assert_eq!(g.name(), "g");
    }

    #[test]
    fn join_replaces_and_leave_removes() {
        let mut g = group();
        g.join(1, opts());
        let mut o = opts();
        o.qos = Delivery::ExactlyOnce;
        assert!(g.join(1, o.clone()));
        assert_eq!(g.len(), 1);
        assert_eq!(g.pick_where(|_| true).unwrap().opts, o);
        assert!(g.leave(1));
        assert!(!g.leave(1));
        assert!(g.is_empty());
    }

    #[test]
    fn pick_where_skips_ineligible_members() {
        let mut g = group();
        for s in 1..=3 {
            g.join(s, opts());
        }
        let picks: Vec<_> = (0..4)
            .map(|_| g.pick_where(|m| m.session != 2).unwrap().session)
            .collect();
        assert_eq!(picks, [1, 3, 1, 3]);
        assert!(g.pick_where(|_| false).is_none());
        // A survivor of removal still gets picked even if the cursor points past the end.
        g.leave(3);
        g.leave(2);
        assert_eq!(g.pick_where(|_| true).unwrap().session, 1);
    }
}
