//! A stream's messages in sequence order, with the indexes its rules need.
//!
//! Owns: sequence numbers (never reused, kept across purges), the per-subject
//! index (limits per subject, last-per-subject reads, purge by subject), the
//! message-id window of deduplication, and the counts a stream reports.
//! Refuses: policy (which message to drop is the stream's decision) and storage.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::super::message::Message;
use super::super::subject::{Filter, Subject};

/// One stored message.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    /// Its sequence number in the stream.
    pub seq: u64,
    /// When the stream stored it, ns since the Unix epoch.
    pub time_ns: u64,
    /// The message.
    pub message: Arc<Message>,
}

impl StreamMessage {
    /// The bytes it counts for in the stream's limits (as nats-server counts:
    /// subject, headers and payload, plus a fixed record overhead).
    pub fn size(&self) -> u64 {
        let m = &self.message;
        let headers: usize = m.headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        (m.subject.as_str().len() + headers + m.payload.len() + 16) as u64
    }
}

/// The messages and their indexes.
#[derive(Debug, Default)]
pub(crate) struct Log {
    msgs: BTreeMap<u64, StreamMessage>,
    bytes: u64,
    /// The last sequence number given out (0: none yet).
    last_seq: u64,
    last_time_ns: u64,
    /// The first sequence number still possible (after a purge, last_seq + 1).
    first_seq: u64,
    subjects: HashMap<Subject, BTreeSet<u64>>,
    ids: HashMap<String, (u64, u64)>,
    id_order: VecDeque<(u64, String)>,
}

impl Log {
    /// The message numbered `seq`.
    pub(crate) fn get(&self, seq: u64) -> Option<&StreamMessage> {
        self.msgs.get(&seq)
    }

    /// How many messages it holds.
    pub(crate) fn len(&self) -> u64 {
        self.msgs.len() as u64
    }

    /// Their bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The last sequence number given out.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// When the last message was stored (ns; 0: never).
    pub(crate) fn last_time_ns(&self) -> u64 {
        self.last_time_ns
    }

    /// The oldest message.
    pub(crate) fn first(&self) -> Option<&StreamMessage> {
        self.msgs.values().next()
    }

    /// The first sequence number a reader could still find.
    pub(crate) fn first_seq(&self) -> u64 {
        self.first()
            .map_or(self.first_seq.max(self.last_seq + 1), |m| m.seq)
    }

    /// Sequence numbers in range that were deleted from the middle.
    pub(crate) fn num_deleted(&self) -> u64 {
        match self.first() {
            Some(first) => self.last_seq + 1 - first.seq - self.len(),
            None => 0,
        }
    }

    /// How many subjects have messages.
    pub(crate) fn num_subjects(&self) -> usize {
        self.subjects.len()
    }

    /// Appends `message` as the next sequence number.
    pub(crate) fn append(&mut self, message: Arc<Message>, time_ns: u64) -> &StreamMessage {
        self.last_seq += 1;
        self.insert(StreamMessage {
            seq: self.last_seq,
            time_ns,
            message,
        })
    }

    /// Puts back a message read from storage (in any order).
    pub(crate) fn restore(&mut self, m: StreamMessage) {
        self.last_seq = self.last_seq.max(m.seq);
        self.insert(m);
    }

    /// Recovery: the sequence numbers given out before a restart, kept even if
    /// the messages are gone.
    pub(crate) fn restore_last_seq(&mut self, last_seq: u64, last_time_ns: u64) {
        if last_seq > self.last_seq {
            self.last_seq = last_seq;
            self.first_seq = last_seq + 1;
        }
        self.last_time_ns = self.last_time_ns.max(last_time_ns);
    }

    fn insert(&mut self, m: StreamMessage) -> &StreamMessage {
        let seq = m.seq;
        self.bytes += m.size();
        self.last_time_ns = self.last_time_ns.max(m.time_ns);
        self.subjects
            .entry(m.message.subject.clone())
            .or_default()
            .insert(seq);
        self.msgs.entry(seq).or_insert(m)
    }

    /// Removes the message numbered `seq`.
    pub(crate) fn remove(&mut self, seq: u64) -> Option<StreamMessage> {
        let m = self.msgs.remove(&seq)?;
        self.bytes -= m.size();
        if let Some(seqs) = self.subjects.get_mut(&m.message.subject) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.subjects.remove(&m.message.subject);
            }
        }
        if self.msgs.is_empty() {
            self.first_seq = self.last_seq + 1;
        }
        Some(m)
    }

    /// The messages of `subject`, oldest first.
    pub(crate) fn subject_seqs(&self, subject: &Subject) -> Option<&BTreeSet<u64>> {
        self.subjects.get(subject)
    }

    /// The messages from `seq` on, in order.
    pub(crate) fn range_from(&self, seq: u64) -> impl Iterator<Item = &StreamMessage> {
        self.msgs.range(seq..).map(|(_, m)| m)
    }

    /// The first message at or after `seq` that `wanted` accepts.
    pub(crate) fn next_from(
        &self,
        seq: u64,
        wanted: impl Fn(&Subject) -> bool,
    ) -> Option<&StreamMessage> {
        self.msgs
            .range(seq..)
            .map(|(_, m)| m)
            .find(|m| wanted(&m.message.subject))
    }

    /// The last message `wanted` accepts.
    pub(crate) fn last_where(&self, wanted: impl Fn(&Subject) -> bool) -> Option<&StreamMessage> {
        self.msgs
            .values()
            .rev()
            .find(|m| wanted(&m.message.subject))
    }

    /// How many messages at or after `seq` `wanted` accepts.
    pub(crate) fn count_from(&self, seq: u64, wanted: impl Fn(&Subject) -> bool) -> u64 {
        self.msgs
            .range(seq..)
            .filter(|(_, m)| wanted(&m.message.subject))
            .count() as u64
    }

    /// Every sequence number, in order, of messages `wanted` accepts below `below`.
    pub(crate) fn seqs_where(&self, below: u64, wanted: impl Fn(&Subject) -> bool) -> Vec<u64> {
        self.msgs
            .range(..below)
            .filter(|(_, m)| wanted(&m.message.subject))
            .map(|(s, _)| *s)
            .collect()
    }

    /// The last message of each subject `filters` accept, in sequence order.
    pub(crate) fn last_per_subject(&self, filters: &[Filter]) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .subjects
            .iter()
            .filter(|(s, _)| accepts(filters, s))
            .filter_map(|(_, seqs)| seqs.last().copied())
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// Per subject `filter` accepts, its message count.
    pub(crate) fn subject_counts(&self, filter: &Filter) -> BTreeMap<String, u64> {
        self.subjects
            .iter()
            .filter(|(s, _)| filter.matches(s))
            .map(|(s, seqs)| (s.as_str().to_owned(), seqs.len() as u64))
            .collect()
    }

    /// The first message stored at or after `time_ns`.
    pub(crate) fn first_at_or_after(&self, time_ns: u64) -> Option<u64> {
        self.msgs
            .values()
            .find(|m| m.time_ns >= time_ns)
            .map(|m| m.seq)
    }

    /// The sequence number the message id `id` was stored under within the
    /// window (forgetting ids stored before `oldest_ns`).
    pub(crate) fn duplicate_of(&mut self, id: &str, oldest_ns: u64) -> Option<u64> {
        while let Some((at, _)) = self.id_order.front() {
            if *at >= oldest_ns {
                break;
            }
            if let Some((at, old)) = self.id_order.pop_front() {
                if self.ids.get(&old).is_some_and(|(_, t)| *t == at) {
                    self.ids.remove(&old);
                }
            }
        }
        self.ids.get(id).map(|(seq, _)| *seq)
    }

    /// Remembers that message id `id` was stored as `seq` at `time_ns`.
    pub(crate) fn remember_id(&mut self, id: String, seq: u64, time_ns: u64) {
        self.id_order.push_back((time_ns, id.clone()));
        self.ids.insert(id, (seq, time_ns));
    }

    /// The message id of the last message, if it had one.
    pub(crate) fn last_id(&self) -> Option<&str> {
        self.msgs
            .values()
            .next_back()
            .and_then(|m| m.message.message_id.as_deref())
    }
}

/// Whether a consumer with `filters` (none: all) reads `subject`.
pub(crate) fn accepts(filters: &[Filter], subject: &Subject) -> bool {
    filters.is_empty() || filters.iter().any(|f| f.matches(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(subject: &str) -> Arc<Message> {
        Arc::new(Message {
            subject: Subject::new(subject).unwrap(),
            payload: bytes::Bytes::from_static(b"x"),
            ..Message::default()
        })
    }

    #[test]
    fn sequence_numbers_survive_removal_and_subjects_are_indexed() {
        let mut log = Log::default();
        assert_eq!(log.first_seq(), 1);
        for s in ["a", "b", "a"] {
            log.append(msg(s), 10);
        }
        assert_eq!(
            log.subject_seqs(&Subject::new("a").unwrap()).unwrap().len(),
            2
        );
        log.remove(2);
        assert_eq!(log.num_deleted(), 1);
        assert_eq!(log.num_subjects(), 1);
        log.remove(1);
        log.remove(3);
        assert_eq!(log.len(), 0);
        assert_eq!(log.bytes(), 0);
        assert_eq!(log.first_seq(), 4);
        assert_eq!(log.append(msg("c"), 11).seq, 4);
    }

    #[test]
    fn message_ids_are_forgotten_after_the_window() {
        let mut log = Log::default();
        log.remember_id("x".into(), 1, 100);
        assert_eq!(log.duplicate_of("x", 50), Some(1));
        assert_eq!(log.duplicate_of("x", 101), None);
    }
}
