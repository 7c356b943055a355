//! The storage seam: what the router asks to be made durable, and the tickets a
//! front waits on before it acknowledges a publisher.
//!
//! Owns: [`Record`] (one change of durable state, self-contained and
//! deterministic to apply, so that a later replicated log can carry the same
//! records), the [`Journal`] the router's mutators append records to (in the
//! order the in-memory changes happen: appends are made under the lock of the
//! state they describe), group commit's hand-off (the storage engine takes
//! everything appended since its previous commit in one go, so one fsync covers
//! every record that arrived while the previous one ran), and [`Ticket`]s.
//! Refuses: encoding and disk I/O (`crate::storage` owns the engine, and is the
//! only one that takes batches).
//!
//! Locking: `journal.pending` is a leaf, taken under any router lock (a queue's
//! state, the retained store) and never held while taking another.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::message::{Dispatch, Message};
use super::queues::{Entry, QueueSpec};
use super::streams::config::{ConsumerConfig, StreamConfig};
use super::streams::consumer::{PendingDelivery, Position};
use super::streams::log::StreamMessage;
use super::subject::{Filter, Subject};
use super::vhost::exchanges::{BindArgs, Dest, ExchangeSpec};
use super::SubOptions;

/// Identifies a stored destination (a durable queue, a stored session) for as
/// long as it exists; never reused by another incarnation of the same name.
pub type DestId = u64;

/// One change of durable state.
#[derive(Debug, Clone)]
pub enum Record {
    /// A durable exchange was declared.
    ExchangeDeclared {
        /// Its name.
        name: String,
        /// Its declaration.
        spec: ExchangeSpec,
    },
    /// A durable exchange was deleted.
    ExchangeDeleted {
        /// Its name.
        name: String,
    },
    /// A durable queue was declared.
    QueueDeclared {
        /// Its id.
        id: DestId,
        /// Its name.
        name: String,
        /// Its declaration.
        spec: QueueSpec,
    },
    /// A durable queue was deleted, with every message it held.
    QueueDeleted {
        /// Its id.
        id: DestId,
        /// Its name.
        name: String,
    },
    /// A binding between durable ends was made.
    Bound(BindingRecord),
    /// A binding between durable ends was removed.
    Unbound(BindingRecord),
    /// A persistent message entered a durable queue.
    Enqueued {
        /// The queue.
        queue: DestId,
        /// The entry (its sequence number orders the queue).
        entry: Entry,
    },
    /// A stored message was delivered for the first time: after a restart it is
    /// redelivered.
    Delivered {
        /// The queue.
        queue: DestId,
        /// The entry's sequence number.
        seq: u64,
    },
    /// A stored message left its queue for good (acked, rejected, expired,
    /// dropped by a length limit, purged).
    Removed {
        /// The queue.
        queue: DestId,
        /// The entry's sequence number.
        seq: u64,
    },
    /// The retained message of a subject was set (`Some`) or cleared.
    Retained {
        /// The subject.
        subject: Subject,
        /// The message, if set.
        message: Option<Arc<Message>>,
    },
    /// A session that outlives its connection was opened, or its expiry changed.
    SessionOpened {
        /// Its id.
        id: DestId,
        /// The name its front knows it by (an MQTT client id).
        name: String,
        /// Seconds it outlives its connection.
        expiry_secs: u32,
    },
    /// A stored session ended, with everything it held.
    SessionEnded {
        /// Its id.
        id: DestId,
    },
    /// A stored session subscribed (or changed a subscription's options).
    SessionSubscribed {
        /// The session.
        session: DestId,
        /// The filter.
        filter: Filter,
        /// The options (the share group among them).
        opts: SubOptions,
    },
    /// A stored session unsubscribed.
    SessionUnsubscribed {
        /// The session.
        session: DestId,
        /// The filter.
        filter: Filter,
        /// The share group.
        group: Option<String>,
    },
    /// An at-least-once dispatch was queued for a stored session.
    SessionQueued {
        /// The session.
        session: DestId,
        /// Its number in the session.
        seq: u64,
        /// The dispatch.
        dispatch: Dispatch,
    },
    /// The front settled a stored session's dispatch.
    SessionSettled {
        /// The session.
        session: DestId,
        /// Its number.
        seq: u64,
    },
    /// State a front keeps for a stored session, opaque to the router (`None`
    /// removes the key).
    SessionState {
        /// The session.
        session: DestId,
        /// The front's key.
        key: Box<[u8]>,
        /// The front's value.
        value: Option<Box<[u8]>>,
    },
    /// A stored stream was created, or its declaration changed.
    StreamCreated {
        /// Its id.
        id: DestId,
        /// Its declaration.
        config: Arc<StreamConfig>,
        /// When it was created (ns since the Unix epoch).
        created_ns: u64,
    },
    /// A stored stream was deleted, with its messages.
    StreamDeleted {
        /// Its id.
        id: DestId,
    },
    /// A message was appended to a stored stream.
    StreamAppended {
        /// The stream.
        stream: DestId,
        /// The message with its sequence number and time.
        message: StreamMessage,
    },
    /// A message left a stored stream.
    StreamRemoved {
        /// The stream.
        stream: DestId,
        /// Its sequence number.
        seq: u64,
    },
    /// Every message of a stored stream numbered below `below` left it.
    StreamPurged {
        /// The stream.
        stream: DestId,
        /// The first sequence number kept.
        below: u64,
    },
    /// A consumer of a stored stream was created or its declaration changed.
    ConsumerCreated {
        /// Its id.
        id: DestId,
        /// Its stream.
        stream: DestId,
        /// Its declaration.
        config: Arc<ConsumerConfig>,
        /// When it was created (ns since the Unix epoch).
        created_ns: u64,
    },
    /// A consumer was deleted.
    ConsumerDeleted {
        /// Its id.
        id: DestId,
    },
    /// A consumer's last delivery and ack floor.
    ConsumerPosition {
        /// Its id.
        id: DestId,
        /// The last delivery.
        delivered: Position,
        /// Everything up to here is acknowledged.
        ack_floor: Position,
    },
    /// A consumer delivered stream message `seq` (again) and awaits its ack.
    ConsumerPending {
        /// Its id.
        id: DestId,
        /// The stream sequence.
        seq: u64,
        /// The delivery.
        pending: PendingDelivery,
    },
    /// A consumer's delivery of stream message `seq` was settled.
    ConsumerSettled {
        /// Its id.
        id: DestId,
        /// The stream sequence.
        seq: u64,
    },
}

/// A binding as it is stored: the same four values identify it.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingRecord {
    /// The source exchange.
    pub source: String,
    /// The destination.
    pub dest: Dest,
    /// The routing key.
    pub key: String,
    /// The arguments.
    pub args: BindArgs,
}

/// Why storage could not make a record durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreFailure(pub Arc<str>);

/// One group commit: the records taken together, and their outcome.
pub struct Commit {
    seq: u64,
    done: OnceLock<Result<(), StoreFailure>>,
    notify: Notify,
}

impl fmt::Debug for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Commit")
            .field("seq", &self.seq)
            .field("done", &self.done.get())
            .finish()
    }
}

impl Commit {
    fn new(seq: u64) -> Arc<Commit> {
        Arc::new(Commit {
            seq,
            done: OnceLock::new(),
            notify: Notify::new(),
        })
    }

    /// Records the outcome and wakes every waiter.
    pub(crate) fn complete(&self, outcome: Result<(), StoreFailure>) {
        let _ = self.done.set(outcome);
        self.notify.notify_waiters();
    }
}

/// What a front waits for before acknowledging a publish whose message must be
/// durable: the commit that covers the records it caused. An empty ticket (no
/// record, or no storage) is complete at once.
///
/// Commits complete in order and a failure fails every later commit too (see
/// `crate::storage`), so the latest commit of a publish's records stands for all
/// of them.
#[derive(Clone, Default)]
pub struct Ticket(Option<Arc<Commit>>);

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Ticket(none)"),
            Some(c) => write!(f, "Ticket({})", c.seq),
        }
    }
}

impl PartialEq for Ticket {
    fn eq(&self, other: &Ticket) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Ticket {}

impl Ticket {
    /// Whether there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Makes this ticket cover `other` too.
    pub fn merge(&mut self, other: Ticket) {
        if let Some(theirs) = other.0 {
            match &self.0 {
                Some(ours) if ours.seq >= theirs.seq => {}
                _ => self.0 = Some(theirs),
            }
        }
    }

    /// The outcome, if it is known.
    pub fn outcome(&self) -> Option<Result<(), StoreFailure>> {
        match &self.0 {
            None => Some(Ok(())),
            Some(c) => c.done.get().cloned(),
        }
    }

    /// Resolves with the outcome once it is known. Cancel-safe.
    pub async fn wait(&self) -> Result<(), StoreFailure> {
        let Some(commit) = &self.0 else {
            return Ok(());
        };
        loop {
            let notified = commit.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = commit.done.get() {
                return outcome.clone();
            }
            notified.await;
        }
    }
}

/// What the committer found in the journal.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Records to commit, and the commit their tickets wait on.
    Batch(Vec<Record>, Arc<Commit>),
    /// Nothing arrived in the time given.
    Idle,
    /// The journal is closed and empty.
    Closed,
}

#[derive(Debug)]
struct Pending {
    records: Vec<Record>,
    commit: Arc<Commit>,
    /// Atomic sections in progress: the batch is not taken while one is open.
    open_sections: usize,
    /// The committer is waiting for open sections to end: no new one starts.
    swap_wanted: bool,
    closed: bool,
    /// The commit of the last batch taken: it completes once that batch is durable.
    last_taken: Option<Arc<Commit>>,
}

/// The records appended since the storage engine's last commit.
#[derive(Debug)]
pub struct Journal {
    pending: Mutex<Pending>,
    /// Signalled when records arrive, a section ends or the journal closes.
    changed: Condvar,
    next_id: AtomicU64,
}

impl Journal {
    /// An empty journal whose destination ids start after `last_id` (the highest
    /// id the recovered state uses).
    pub fn new(last_id: DestId) -> Journal {
        Journal {
            pending: Mutex::new(Pending {
                records: Vec::new(),
                commit: Commit::new(1),
                open_sections: 0,
                swap_wanted: false,
                closed: false,
                last_taken: None,
            }),
            changed: Condvar::new(),
            next_id: AtomicU64::new(last_id + 1),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh destination id.
    pub(crate) fn next_dest_id(&self) -> DestId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends `record`; the ticket completes when it is durable.
    pub(crate) fn append(&self, record: Record) -> Ticket {
        let mut p = self.pending();
        p.records.push(record);
        let ticket = Ticket(Some(p.commit.clone()));
        let first = p.records.len() == 1;
        drop(p);
        if first {
            self.changed.notify_all();
        }
        ticket
    }

    /// A ticket that completes once every record appended so far is durable
    /// (those still pending, or else the last batch taken, which commits after
    /// the ones before it): for an answer that follows several records.
    pub(crate) fn barrier(&self) -> Ticket {
        let p = self.pending();
        if p.records.is_empty() {
            Ticket(p.last_taken.clone())
        } else {
            Ticket(Some(p.commit.clone()))
        }
    }

    /// Runs `f` so that every record it appends is committed in one batch (an
    /// AMQP transaction's commit). A section inside a section is part of it.
    pub(crate) fn atomic<T>(&self, f: impl FnOnce() -> T) -> T {
        thread_local! {
            static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        }
        if DEPTH.get() > 0 {
            // Waiting for the committer here would wait for ourselves.
            return f();
        }
        {
            let mut p = self.pending();
            while p.swap_wanted {
                p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.open_sections += 1;
        }
        struct Section<'a>(&'a Journal);
        impl Drop for Section<'_> {
            fn drop(&mut self) {
                DEPTH.set(DEPTH.get() - 1);
                self.0.pending().open_sections -= 1;
                self.0.changed.notify_all();
            }
        }
        DEPTH.set(DEPTH.get() + 1);
        let _section = Section(self);
        f()
    }

    /// Waits up to `idle` for records and takes all of them with the commit
    /// their tickets wait on. For the storage engine's committer thread only.
    pub(crate) fn take(&self, idle: Duration) -> Taken {
        let deadline = Instant::now() + idle;
        let mut p = self.pending();
        loop {
            if p.records.is_empty() {
                if p.closed {
                    return Taken::Closed;
                }
            } else if p.open_sections == 0 {
                break;
            } else {
                p.swap_wanted = true;
            }
            let now = Instant::now();
            if now >= deadline && p.records.is_empty() {
                return Taken::Idle;
            }
            let wait = deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            p = self
                .changed
                .wait_timeout(p, wait)
                .map(|(p, _)| p)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        p.swap_wanted = false;
        let next = Commit::new(p.commit.seq + 1);
        let commit = std::mem::replace(&mut p.commit, next);
        p.last_taken = Some(commit.clone());
        let records = std::mem::take(&mut p.records);
        drop(p);
        self.changed.notify_all();
        Taken::Batch(records, commit)
    }

    /// No more records will be taken once those pending are: the committer ends.
    pub(crate) fn close(&self) {
        self.pending().closed = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    fn retained() -> Record {
        Record::Retained {
            subject: Subject::new("a").unwrap(),
            message: None,
        }
    }

    #[test]
    fn a_barrier_waits_for_every_record_before_it() {
        let j = Journal::new(0);
        assert_eq!(j.barrier().outcome(), Some(Ok(())), "nothing written yet");
        let t = j.append(retained());
        assert_eq!(j.barrier(), t, "pending records");
        let Taken::Batch(_, commit) = j.take(LONG) else {
            panic!("a batch");
        };
        // Taken but not yet durable: the barrier still waits for it.
        let b = j.barrier();
        assert_eq!(b.outcome(), None);
        commit.complete(Ok(()));
        assert_eq!(b.outcome(), Some(Ok(())));
        assert_eq!(j.barrier().outcome(), Some(Ok(())));
    }

    #[test]
    fn tickets_complete_with_their_commit() {
        let j = Journal::new(0);
        let t1 = j.append(retained());
        let t2 = j.append(retained());
        assert_eq!(t1, t2);
        assert_eq!(t1.outcome(), None);
        let Taken::Batch(records, commit) = j.take(LONG) else {
            panic!("a batch");
        };
        assert_eq!(records.len(), 2);
        let t3 = j.append(retained());
        commit.complete(Ok(()));
        assert_eq!(t1.outcome(), Some(Ok(())));
        assert_eq!(t3.outcome(), None);
        let mut merged = t1.clone();
        merged.merge(t3.clone());
        assert_eq!(merged, t3);
        merged.merge(t1);
        assert_eq!(merged, t3);
        let Taken::Batch(_, commit) = j.take(LONG) else {
            panic!("a batch");
        };
        commit.complete(Err(StoreFailure("disk full".into())));
        assert!(t3.outcome().unwrap().is_err());
        assert_eq!(Ticket::default().outcome(), Some(Ok(())));
        assert!(matches!(j.take(Duration::from_millis(5)), Taken::Idle));
        j.close();
        assert!(matches!(j.take(LONG), Taken::Closed));
    }

    #[test]
    fn a_waiter_wakes_on_completion() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let j = Arc::new(Journal::new(0));
        let t = j.append(retained());
        let committer = {
            let j = j.clone();
            std::thread::spawn(move || {
                let Taken::Batch(_, commit) = j.take(LONG) else {
                    panic!("a batch");
                };
                std::thread::sleep(std::time::Duration::from_millis(20));
                commit.complete(Ok(()));
            })
        };
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), t.wait())
                .await
                .expect("completed")
                .unwrap();
        });
        committer.join().unwrap();
    }

    #[test]
    fn an_atomic_section_is_never_split() {
        let j = Arc::new(Journal::new(0));
        let taken = {
            let j = j.clone();
            std::thread::spawn(move || {
                let mut sizes = Vec::new();
                loop {
                    match j.take(LONG) {
                        Taken::Batch(records, commit) => {
                            sizes.push(records.len());
                            commit.complete(Ok(()));
                        }
                        Taken::Idle => {}
                        Taken::Closed => break,
                    }
                }
                sizes
            })
        };
        for _ in 0..50 {
            j.atomic(|| {
                for _ in 0..10 {
                    j.append(retained());
                    std::thread::yield_now();
                }
            });
        }
        j.close();
        let sizes = taken.join().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 500);
        assert!(sizes.iter().all(|n| n % 10 == 0), "{sizes:?}");
    }

    #[test]
    fn a_section_inside_a_section_does_not_wait_for_itself() {
        let j = Arc::new(Journal::new(0));
        let committer = {
            let j = j.clone();
            std::thread::spawn(move || loop {
                match j.take(LONG) {
                    Taken::Batch(records, commit) => {
                        assert_eq!(records.len(), 2);
                        commit.complete(Ok(()));
                    }
                    Taken::Idle => {}
                    Taken::Closed => return,
                }
            })
        };
        j.atomic(|| {
            j.append(retained());
            // Let the committer ask for the batch while the section is open.
            std::thread::sleep(std::time::Duration::from_millis(50));
            j.atomic(|| j.append(retained()));
        });
        j.close();
        committer.join().unwrap();
    }

    #[test]
    fn destination_ids_continue_after_the_recovered_ones() {
        let j = Journal::new(41);
        assert_eq!(j.next_dest_id(), 42);
        assert_eq!(j.next_dest_id(), 43);
    }
}
