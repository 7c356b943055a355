//! Consumer groups: instances, what each reads, where it is. Sans-I/O: topics and
//! committed offsets are asked of a [`Topics`], time is given.
//!
//! Owns: instance lifecycle (create, delete, expiry after
//! `consumer.instance.timeout.ms` of inactivity), subscriptions (topics or a
//! pattern) and manual assignments (mutually exclusive, as in Kafka), the
//! partitions of a group shared among its subscribed instances (Kafka's range
//! assignor, recomputed from the current members and topics on every use, so a
//! join, leave, expiry or new topic rebalances), and each instance's fetch
//! positions (from the committed offset, else `auto.offset.reset`).
//! Refuses: reading records and storing commits (api.rs through topics.rs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use regex::Regex;

use super::errors::RestError;
use super::media::Format;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TopicPartition {
    pub(crate) topic: String,
    pub(crate) partition: u32,
}

/// A partition's first offset and the next one to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) beginning: u64,
    pub(crate) end: u64,
}

/// What the group state needs to know about topics.
pub(crate) trait Topics {
    /// Every topic.
    fn names(&self) -> Vec<String>;
    /// How many partitions `topic` has (`None`: no such topic).
    fn partitions(&self, topic: &str) -> Option<u32>;
    /// A partition's offsets (`None`: no such partition).
    fn bounds(&self, tp: &TopicPartition) -> Option<Bounds>;
    /// The group's committed offset on a partition.
    fn committed(&self, tp: &TopicPartition) -> Option<u64>;
}

/// Where an instance without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Reset {
    Earliest,
    /// Kafka's default.
    #[default]
    Latest,
    /// Refuse to guess.
    None,
}

impl Reset {
    pub(crate) fn parse(text: &str) -> Option<Reset> {
        match text {
            "earliest" | "smallest" => Some(Reset::Earliest),
            "latest" | "largest" => Some(Reset::Latest),
            "none" => Some(Reset::None),
            _ => None,
        }
    }
}

/// How an instance was created.
#[derive(Debug, Clone)]
pub(crate) struct InstanceConfig {
    pub(crate) format: Format,
    pub(crate) reset: Reset,
    pub(crate) auto_commit: bool,
    /// Bytes a records request waits for (at most its timeout); none: the
    /// first records there are.
    pub(crate) fetch_min_bytes: Option<u64>,
    pub(crate) request_timeout: Duration,
}

#[derive(Debug, Clone)]
enum Subscription {
    None,
    Topics(Vec<String>),
    Pattern(Regex),
    Assigned(Vec<TopicPartition>),
}

#[derive(Debug)]
struct Instance {
    config: InstanceConfig,
    subscription: Subscription,
    /// The next offset to read, per partition it has read or sought.
    positions: BTreeMap<TopicPartition, u64>,
    last_used: Instant,
}

/// Consumer instances all groups together may have: each holds positions (and
/// perhaps a compiled pattern) until it is deleted or idle for the timeout.
pub(crate) const MAX_INSTANCES: usize = 10_000;

/// Every group's instances.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: BTreeMap<String, BTreeMap<String, Instance>>,
    instances: usize,
}

/// Kafka's message when subscribe and assign are mixed.
const EXCLUSIVE: &str = "Subscription to topics, partitions and pattern are mutually exclusive";

impl Groups {
    /// Adds instance `name` to `group`.
    pub(crate) fn create(
        &mut self,
        group: &str,
        name: &str,
        config: InstanceConfig,
        now: Instant,
    ) -> Result<(), RestError> {
        if self.groups.get(group).is_some_and(|m| m.contains_key(name)) {
            return Err(RestError::instance_exists());
        }
        if self.instances >= MAX_INSTANCES {
            return Err(RestError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                42901,
                format!("Too many consumer instances (at most {MAX_INSTANCES}); delete some first"),
            ));
        }
        self.instances += 1;
        let members = self.groups.entry(group.to_owned()).or_default();
        members.insert(
            name.to_owned(),
            Instance {
                config,
                subscription: Subscription::None,
                positions: BTreeMap::new(),
                last_used: now,
            },
        );
        Ok(())
    }

    fn instance(
        &mut self,
        group: &str,
        name: &str,
        now: Instant,
    ) -> Result<&mut Instance, RestError> {
        let i = self
            .groups
            .get_mut(group)
            .and_then(|g| g.get_mut(name))
            .ok_or_else(RestError::instance_not_found)?;
        i.last_used = now;
        Ok(i)
    }

    /// Instance `name`'s configuration (and marks it used).
    pub(crate) fn config(
        &mut self,
        group: &str,
        name: &str,
        now: Instant,
    ) -> Result<InstanceConfig, RestError> {
        Ok(self.instance(group, name, now)?.config.clone())
    }

    /// Removes instance `name`.
    pub(crate) fn delete(&mut self, group: &str, name: &str) -> Result<(), RestError> {
        let members = self
            .groups
            .get_mut(group)
            .ok_or_else(RestError::instance_not_found)?;
        members
            .remove(name)
            .ok_or_else(RestError::instance_not_found)?;
        self.instances -= 1;
        if members.is_empty() {
            self.groups.remove(group);
        }
        Ok(())
    }

    /// Removes instances unused for `timeout`; returns (group, instance) of each.
    pub(crate) fn expire(&mut self, timeout: Duration, now: Instant) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        for (group, members) in &mut self.groups {
            members.retain(|name, i| {
                let keep = now.saturating_duration_since(i.last_used) < timeout;
                if !keep {
                    gone.push((group.clone(), name.clone()));
                }
                keep
            });
        }
        self.groups.retain(|_, members| !members.is_empty());
        self.instances -= gone.len();
        gone
    }

    /// Subscribes instance `name` to `topics` (each once).
    pub(crate) fn subscribe(
        &mut self,
        group: &str,
        name: &str,
        mut topics: Vec<String>,
        now: Instant,
    ) -> Result<(), RestError> {
        topics.sort();
        topics.dedup();
        self.set_subscription(group, name, Subscription::Topics(topics), now)
    }

    /// Subscribes instance `name` to the topics `pattern` matches (see [`pattern`]).
    pub(crate) fn subscribe_pattern(
        &mut self,
        group: &str,
        name: &str,
        pattern: Regex,
        now: Instant,
    ) -> Result<(), RestError> {
        self.set_subscription(group, name, Subscription::Pattern(pattern), now)
    }

    /// Assigns instance `name` the partitions `tps` (each once; no group sharing).
    pub(crate) fn assign(
        &mut self,
        group: &str,
        name: &str,
        mut tps: Vec<TopicPartition>,
        now: Instant,
    ) -> Result<(), RestError> {
        tps.sort();
        tps.dedup();
        self.set_subscription(group, name, Subscription::Assigned(tps), now)
    }

    fn set_subscription(
        &mut self,
        group: &str,
        name: &str,
        to: Subscription,
        now: Instant,
    ) -> Result<(), RestError> {
        let i = self.instance(group, name, now)?;
        let clash = matches!(
            (&i.subscription, &to),
            (
                Subscription::Assigned(_),
                Subscription::Topics(_) | Subscription::Pattern(_)
            ) | (
                Subscription::Topics(_) | Subscription::Pattern(_),
                Subscription::Assigned(_)
            )
        );
        if clash {
            return Err(RestError::illegal_state(EXCLUSIVE));
        }
        i.subscription = to;
        Ok(())
    }

    /// Ends instance `name`'s subscription and assignment.
    pub(crate) fn unsubscribe(
        &mut self,
        group: &str,
        name: &str,
        now: Instant,
    ) -> Result<(), RestError> {
        let i = self.instance(group, name, now)?;
        i.subscription = Subscription::None;
        i.positions.clear();
        Ok(())
    }

    /// The topics instance `name` subscribed to (a pattern's, as they are now).
    pub(crate) fn subscription(
        &mut self,
        group: &str,
        name: &str,
        topics: &impl Topics,
        now: Instant,
    ) -> Result<Vec<String>, RestError> {
        let i = self.instance(group, name, now)?;
        Ok(match &i.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(re) => topics
                .names()
                .into_iter()
                .filter(|t| re.is_match(t))
                .collect(),
            Subscription::None | Subscription::Assigned(_) => Vec::new(),
        })
    }

    /// The partitions instance `name` reads now: its manual assignment, or its
    /// share of its group's partitions of the topics it subscribed to.
    pub(crate) fn assignment(
        &mut self,
        group: &str,
        name: &str,
        topics: &impl Topics,
        now: Instant,
    ) -> Result<Vec<TopicPartition>, RestError> {
        self.instance(group, name, now)?;
        let members = &self.groups[group];
        if let Subscription::Assigned(tps) = &members[name].subscription {
            return Ok(tps.clone());
        }
        let all_names = topics.names();
        let subscriptions: BTreeMap<&String, Vec<&String>> = members
            .iter()
            .map(|(n, i)| {
                let wanted = match &i.subscription {
                    Subscription::Topics(t) => t.iter().collect(),
                    Subscription::Pattern(re) => {
                        all_names.iter().filter(|t| re.is_match(t)).collect()
                    }
                    Subscription::None | Subscription::Assigned(_) => Vec::new(),
                };
                (n, wanted)
            })
            .collect();
        let mine = subscriptions
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for topic in mine {
            let Some(count) = topics.partitions(topic) else {
                continue;
            };
            // Kafka's range assignor: the members reading the topic, by name, get
            // consecutive ranges, the first ones one partition more.
            let readers: Vec<&String> = subscriptions
                .iter()
                .filter(|(_, t)| t.contains(&topic))
                .map(|(n, _)| *n)
                .collect();
            let k = readers.len() as u32;
            let Some(me) = readers.iter().position(|n| n.as_str() == name) else {
                continue;
            };
            let me = me as u32;
            let (each, extra) = (count / k, count % k);
            let start = me * each + me.min(extra);
            let len = each + u32::from(me < extra);
            out.extend((start..start + len).map(|partition| TopicPartition {
                topic: topic.clone(),
                partition,
            }));
        }
        Ok(out)
    }

    /// Where instance `name` reads each of its partitions next, starting a
    /// partition it has no position on from the committed offset or its reset
    /// policy; positions on partitions it no longer has are forgotten.
    pub(crate) fn positions(
        &mut self,
        group: &str,
        name: &str,
        topics: &impl Topics,
        now: Instant,
    ) -> Result<Vec<(TopicPartition, u64)>, RestError> {
        let assigned = self.assignment(group, name, topics, now)?;
        let i = self.instance(group, name, now)?;
        i.positions.retain(|tp, _| assigned.contains(tp));
        let mut out = Vec::with_capacity(assigned.len());
        for tp in assigned {
            let next = match i.positions.get(&tp) {
                Some(next) => *next,
                None => {
                    let Some(bounds) = topics.bounds(&tp) else {
                        continue;
                    };
                    let start = match (topics.committed(&tp), i.config.reset) {
                        (Some(c), _) => c.clamp(bounds.beginning, bounds.end),
                        (None, Reset::Earliest) => bounds.beginning,
                        (None, Reset::Latest) => bounds.end,
                        (None, Reset::None) => {
                            return Err(RestError::illegal_state(format!(
                                "Undefined offset with no reset policy for partitions: [{}-{}]",
                                tp.topic, tp.partition
                            )))
                        }
                    };
                    i.positions.insert(tp.clone(), start);
                    start
                }
            };
            out.push((tp, next));
        }
        Ok(out)
    }

    /// Records that instance `name` has read partition `tp` up to `next`.
    pub(crate) fn advance(
        &mut self,
        group: &str,
        name: &str,
        tp: &TopicPartition,
        next: u64,
        now: Instant,
    ) -> Result<(), RestError> {
        let i = self.instance(group, name, now)?;
        i.positions.insert(tp.clone(), next);
        Ok(())
    }

    /// Moves instance `name` on `tp` from `from` to `next`, unless its position
    /// changed meanwhile (a seek, a rebalance): records read without the lock
    /// count only if nothing moved under them.
    pub(crate) fn advance_from(
        &mut self,
        group: &str,
        name: &str,
        tp: &TopicPartition,
        from: u64,
        next: u64,
        now: Instant,
    ) -> Result<bool, RestError> {
        let i = self.instance(group, name, now)?;
        match i.positions.get_mut(tp) {
            Some(at) if *at == from => {
                *at = next;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Seeks instance `name` on `tp` (which it must be assigned).
    pub(crate) fn seek(
        &mut self,
        group: &str,
        name: &str,
        tp: &TopicPartition,
        offset: u64,
        topics: &impl Topics,
        now: Instant,
    ) -> Result<(), RestError> {
        if !self.assignment(group, name, topics, now)?.contains(tp) {
            return Err(RestError::illegal_state(format!(
                "No current assignment for partition {}-{}",
                tp.topic, tp.partition
            )));
        }
        self.advance(group, name, tp, offset, now)
    }

    /// The next offset of every partition instance `name` has read: what an
    /// offsets commit without a body commits.
    pub(crate) fn consumed(
        &mut self,
        group: &str,
        name: &str,
        now: Instant,
    ) -> Result<Vec<(TopicPartition, u64)>, RestError> {
        let i = self.instance(group, name, now)?;
        Ok(i.positions.iter().map(|(tp, n)| (tp.clone(), *n)).collect())
    }
}

/// A `topic_pattern` (a regular expression matching a whole name, as Java's
/// `Pattern.matcher().matches()`), compiled before any lock is taken.
pub(crate) fn pattern(text: &str) -> Result<Regex, RestError> {
    Regex::new(&format!("^(?:{text})$"))
        .map_err(|e| RestError::unprocessable(format!("Invalid topic_pattern: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        topics: BTreeMap<String, u32>,
        committed: BTreeMap<TopicPartition, u64>,
    }

    impl Topics for Fake {
        fn names(&self) -> Vec<String> {
            self.topics.keys().cloned().collect()
        }
        fn partitions(&self, topic: &str) -> Option<u32> {
            self.topics.get(topic).copied()
        }
        fn bounds(&self, tp: &TopicPartition) -> Option<Bounds> {
            (tp.partition < *self.topics.get(&tp.topic)?).then_some(Bounds {
                beginning: 2,
                end: 10,
            })
        }
        fn committed(&self, tp: &TopicPartition) -> Option<u64> {
            self.committed.get(tp).copied()
        }
    }

    fn tp(topic: &str, partition: u32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    fn config(reset: Reset) -> InstanceConfig {
        InstanceConfig {
            format: Format::Binary,
            reset,
            auto_commit: false,
            fetch_min_bytes: None,
            request_timeout: Duration::from_secs(1),
        }
    }

    fn fake() -> Fake {
        Fake {
            topics: [("a".to_owned(), 3), ("b".to_owned(), 1)].into(),
            committed: [(tp("a", 1), 7)].into(),
        }
    }

    #[test]
    fn instances_of_a_group_split_its_partitions_and_rebalance() {
        let t = fake();
        let now = Instant::now();
        let mut g = Groups::default();
        g.create("g", "one", config(Reset::Earliest), now).unwrap();
        assert_eq!(
            g.create("g", "one", config(Reset::Earliest), now)
                .unwrap_err()
                .code,
            40902
        );
        g.subscribe("g", "one", vec!["a".into(), "b".into()], now)
            .unwrap();
        assert_eq!(
            g.assignment("g", "one", &t, now).unwrap(),
            [tp("a", 0), tp("a", 1), tp("a", 2), tp("b", 0)]
        );
        g.create("g", "two", config(Reset::Latest), now).unwrap();
        g.subscribe("g", "two", vec!["a".into()], now).unwrap();
        assert_eq!(
            g.assignment("g", "one", &t, now).unwrap(),
            [tp("a", 0), tp("a", 1), tp("b", 0)]
        );
        assert_eq!(g.assignment("g", "two", &t, now).unwrap(), [tp("a", 2)]);
        // Starting points: committed, else the reset policy.
        assert_eq!(
            g.positions("g", "one", &t, now).unwrap(),
            [(tp("a", 0), 2), (tp("a", 1), 7), (tp("b", 0), 2)]
        );
        assert_eq!(
            g.positions("g", "two", &t, now).unwrap(),
            [(tp("a", 2), 10)]
        );
        // "two" leaves: "one" gets everything again.
        g.delete("g", "two").unwrap();
        assert_eq!(g.assignment("g", "one", &t, now).unwrap().len(), 4);
        assert_eq!(g.delete("g", "two").unwrap_err().code, 40403);
    }

    #[test]
    fn assign_and_subscribe_are_exclusive_and_seek_needs_the_partition() {
        let t = fake();
        let now = Instant::now();
        let mut g = Groups::default();
        g.create("g", "i", config(Reset::Latest), now).unwrap();
        g.assign("g", "i", vec![tp("a", 2)], now).unwrap();
        assert_eq!(
            g.subscribe("g", "i", vec!["a".into()], now)
                .unwrap_err()
                .code,
            40903
        );
        assert_eq!(
            g.seek("g", "i", &tp("a", 0), 1, &t, now).unwrap_err().code,
            40903
        );
        g.seek("g", "i", &tp("a", 2), 4, &t, now).unwrap();
        assert_eq!(g.positions("g", "i", &t, now).unwrap(), [(tp("a", 2), 4)]);
        g.unsubscribe("g", "i", now).unwrap();
        g.subscribe_pattern("g", "i", pattern("a|c").unwrap(), now)
            .unwrap();
        assert_eq!(g.subscription("g", "i", &t, now).unwrap(), ["a"]);
        assert_eq!(pattern("(").unwrap_err().code, 422);
        // Duplicates count once.
        g.unsubscribe("g", "i", now).unwrap();
        g.assign("g", "i", vec![tp("b", 0), tp("b", 0)], now)
            .unwrap();
        assert_eq!(g.assignment("g", "i", &t, now).unwrap(), [tp("b", 0)]);
    }

    #[test]
    fn idle_instances_expire_and_reset_none_refuses_to_guess() {
        let t = fake();
        let now = Instant::now();
        let mut g = Groups::default();
        g.create("g", "idle", config(Reset::None), now).unwrap();
        g.subscribe("g", "idle", vec!["b".into()], now).unwrap();
        assert_eq!(g.positions("g", "idle", &t, now).unwrap_err().code, 40903);
        let later = now + Duration::from_secs(301);
        assert!(g
            .expire(Duration::from_secs(300), now + Duration::from_secs(1))
            .is_empty());
        assert_eq!(
            g.expire(Duration::from_secs(300), later),
            [("g".to_owned(), "idle".to_owned())]
        );
        assert_eq!(g.config("g", "idle", later).unwrap_err().code, 40403);
    }
}
