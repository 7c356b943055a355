//! Durable state on disk, in an embedded LSM engine (fjall): the committer that
//! turns the router's journal into group commits, and recovery.
//!
//! Owns: the data directory, its keyspaces and their stored forms
//! (`format.rs`), the committer thread (one write batch per journal hand-off,
//! persisted as [`Fsync`] says before the tickets of its records complete), what
//! a failed write means (every later commit fails too: after a failed write or
//! fsync the kernel may have dropped the pages it could not write, so nothing
//! more is promised until a restart, as PostgreSQL does), and reading
//! everything back at start (`recover.rs`), and giving back the space of
//! settled messages (see [`Reclaim`]).
//! Refuses: deciding what is durable (the router appends records for durable
//! state only) and answering clients (fronts wait on tickets).
//!
//! Keyspaces: `meta` (the format version), `exchanges` (name -> declaration),
//! `queues` (name -> id and declaration), `bindings` (the binding is the key),
//! `messages` (queue id, sequence -> entry), `delivered` (queue id, sequence:
//! delivered at least once), `retained` (subject -> message), `sessions` (id ->
//! name and expiry), `session_subs` (id, filter, group -> options),
//! `session_messages` (id, sequence -> dispatch), `session_state` (id, the
//! front's key -> the front's value).

mod format;
mod recover;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

pub use recover::Recovered;

use crate::router::journal::{Commit, Taken};
use crate::router::{Journal, Record, StoreFailure};

/// When the committer makes written records durable on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Every group commit is fsynced before its tickets complete: an
    /// acknowledged message survives a crash of the machine too.
    #[default]
    Always,
    /// Group commits are written to the operating system before their tickets
    /// complete (they survive a crash of the broker, `kill -9`) and fsynced at
    /// most [`BATCH_FSYNC_INTERVAL`] later (a power loss may lose that much).
    Batch,
    /// Written to the operating system, never fsynced by the broker (survives
    /// `kill -9`; the kernel decides when it reaches the disk).
    Never,
}

impl Fsync {
    /// Parses `always`, `batch` or `never`.
    pub fn parse(text: &str) -> Option<Fsync> {
        match text {
            "always" => Some(Fsync::Always),
            "batch" => Some(Fsync::Batch),
            "never" => Some(Fsync::Never),
            _ => None,
        }
    }
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::Batch => "batch",
            Fsync::Never => "never",
        })
    }
}

/// With [`Fsync::Batch`], the longest a written commit waits for its fsync.
pub const BATCH_FSYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The engine could not open or read the directory.
    #[error("data dir {dir}: {what}: {source}")]
    Engine {
        /// The data directory.
        dir: PathBuf,
        /// What was being done (the keyspace involved, if one).
        what: String,
        /// The engine's error.
        source: fjall::Error,
    },
    /// A stored value does not decode: the directory is damaged or was written
    /// by an incompatible version.
    #[error("data dir {dir}: corrupt entry in keyspace '{keyspace}' (key {key}): {why}")]
    Corrupt {
        /// The data directory.
        dir: PathBuf,
        /// The keyspace (a directory of the engine's under `dir`).
        keyspace: &'static str,
        /// The key, in hex.
        key: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The open keyspaces.
#[derive(Clone)]
struct Spaces {
    meta: Keyspace,
    exchanges: Keyspace,
    queues: Keyspace,
    bindings: Keyspace,
    messages: Keyspace,
    delivered: Keyspace,
    retained: Keyspace,
    sessions: Keyspace,
    session_subs: Keyspace,
    session_messages: Keyspace,
    session_state: Keyspace,
    streams: Keyspace,
    stream_messages: Keyspace,
    stream_last: Keyspace,
    consumers: Keyspace,
    consumer_positions: Keyspace,
    consumer_pending: Keyspace,
}

/// What the journals may hold before fjall flushes the memtables they back (fjall's
/// minimum): this bounds the data dir's journals, the memory of unflushed writes and
/// what a restart replays.
const MAX_JOURNALING_BYTES: u64 = 64 * 1024 * 1024;

/// How often the reclaimer looks at what was deleted.
const RECLAIM_INTERVAL: Duration = Duration::from_secs(5);
/// Deleted messages below which the reclaimer does nothing.
const RECLAIM_MIN: u64 = 1_000;

/// The space of settled messages. An LSM tree keeps a deleted message's bytes
/// until a compaction merges its tombstone into them, and compactions follow
/// writes: a queue drained and then left idle would keep its space. So once more
/// messages were deleted since the last reclaim than are still stored (and at
/// least [`RECLAIM_MIN`]), the message keyspaces are flushed and compacted; each
/// compaction rewrites at most as many live messages as were deleted before it.
#[derive(Debug, Default)]
struct Reclaim {
    live: AtomicU64,
    deleted: AtomicU64,
}

impl Reclaim {
    /// Counts a batch's effect on the stored messages.
    fn count(&self, ops: &BTreeMap<(Space, Vec<u8>), Op>) {
        let (mut put, mut deleted) = (0, 0);
        for ((space, _), op) in ops {
            if matches!(
                space,
                Space::Messages | Space::SessionMessages | Space::StreamMessages
            ) {
                match op {
                    Op::PutNew(_) => put += 1,
                    Op::Delete => deleted += 1,
                    Op::Put(_) => {}
                }
            }
        }
        self.live.fetch_add(put, Ordering::Relaxed);
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(l.saturating_sub(deleted))
            });
        self.deleted.fetch_add(deleted, Ordering::Relaxed);
    }

    /// Whether a reclaim is due; if so, counting starts again.
    fn due(&self) -> bool {
        let deleted = self.deleted.load(Ordering::Relaxed);
        if deleted < RECLAIM_MIN || deleted < self.live.load(Ordering::Relaxed) {
            return false;
        }
        self.deleted.store(0, Ordering::Relaxed);
        true
    }
}

/// The data directory while the broker runs.
pub struct Storage {
    dir: PathBuf,
    journal: Arc<Journal>,
    metrics: CommitMetrics,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// Dropped to stop the reclaimer.
    stop_reclaim: Mutex<Option<mpsc::Sender<()>>>,
    reclaimer: Mutex<Option<JoinHandle<()>>>,
    /// Makes the next write fail as a full disk would (the tests' fault seam;
    /// the committer holds the flag either way).
    #[cfg(test)]
    fail_next_write: Arc<AtomicBool>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage").field("dir", &self.dir).finish()
    }
}

impl Storage {
    /// Opens `dir` (creating it), reads back everything stored, and starts the
    /// committer. The caller applies what was recovered to a router built on
    /// [`Storage::journal`] before it serves anyone.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<(Storage, Recovered), StorageError> {
        let engine = |what: &str| {
            let what = what.to_owned();
            move |source| StorageError::Engine {
                dir: dir.to_owned(),
                what,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(|e| engine("creating it")(fjall::Error::Io(e)))?;
        let db = Database::builder(dir)
            // Commits are persisted by the committer, as `fsync` says.
            .manual_journal_persist(true)
            // fjall's default lets journals (and the memtables they back) reach 512 MiB
            // before it flushes: the data dir and the RSS after a restart, which replays
            // them, would grow that far under a steady load of short-lived messages.
            .max_journaling_size(MAX_JOURNALING_BYTES)
            .open()
            .map_err(engine("opening it"))?;
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(engine(&format!("keyspace '{name}'")))
        };
        let spaces = Spaces {
            meta: open("meta")?,
            exchanges: open("exchanges")?,
            queues: open("queues")?,
            bindings: open("bindings")?,
            messages: open("messages")?,
            delivered: open("delivered")?,
            retained: open("retained")?,
            sessions: open("sessions")?,
            session_subs: open("session_subs")?,
            session_messages: open("session_messages")?,
            session_state: open("session_state")?,
            streams: open("streams")?,
            stream_messages: open("stream_messages")?,
            stream_last: open("stream_last")?,
            consumers: open("consumers")?,
            consumer_positions: open("consumer_positions")?,
            consumer_pending: open("consumer_pending")?,
        };
        let recovered = recover::read(dir, &db, &spaces)?;
        let journal = Arc::new(Journal::new(recovered.last_id()));
        let fail_next_write = Arc::new(AtomicBool::new(false));
        let reclaim = Arc::new(Reclaim::default());
        reclaim
            .live
            .store(recovered.stored_messages(), Ordering::Relaxed);
        let metrics = CommitMetrics::default();
        let committer = {
            let journal = journal.clone();
            let fail = fail_next_write.clone();
            let reclaim = reclaim.clone();
            let spaces = spaces.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name("dwbroker-storage".into())
                .spawn(move || {
                    let committer = Committer {
                        db: &db,
                        spaces: &spaces,
                        fsync,
                        metrics: &metrics,
                    };
                    commit_loop(&committer, &journal, &fail, &reclaim)
                })
                .map_err(|e| engine("starting the committer")(fjall::Error::Io(e)))?
        };
        let (stop_reclaim, stopped) = mpsc::channel();
        let reclaimer = std::thread::Builder::new()
            .name("dwbroker-reclaim".into())
            .spawn(move || reclaim_loop(&spaces, &reclaim, &stopped))
            .map_err(|e| engine("starting the reclaimer")(fjall::Error::Io(e)))?;
        Ok((
            Storage {
                dir: dir.to_owned(),
                journal,
                metrics,
                committer: Mutex::new(Some(committer)),
                stop_reclaim: Mutex::new(Some(stop_reclaim)),
                reclaimer: Mutex::new(Some(reclaimer)),
                #[cfg(test)]
                fail_next_write,
            },
            recovered,
        ))
    }

    /// Makes the next write fail as a full disk would: every commit from then on
    /// fails (see the module docs).
    #[cfg(test)]
    pub(crate) fn fail_next_write(&self) {
        self.fail_next_write.store(true, Ordering::Release);
    }

    /// The committer's figures, for `/metrics`.
    pub(crate) fn metrics(&self) -> &CommitMetrics {
        &self.metrics
    }

    /// The journal the router records into.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Commits what is pending, fsyncs and stops the committer and the
    /// reclaimer.
    pub fn close(&self) {
        self.journal.close();
        drop(lock(&self.stop_reclaim).take());
        for handle in [&self.committer, &self.reclaimer] {
            if let Some(handle) = lock(handle).take() {
                if handle.join().is_err() {
                    tracing::error!("a storage thread ended with a panic");
                }
            }
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reclaimer: every [`RECLAIM_INTERVAL`], flushes and compacts the message
/// keyspaces when [`Reclaim::due`], until `stop` is dropped.
fn reclaim_loop(spaces: &Spaces, reclaim: &Reclaim, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(RECLAIM_INTERVAL) {
        if !reclaim.due() {
            continue;
        }
        for space in [
            &spaces.messages,
            &spaces.delivered,
            &spaces.session_messages,
            &spaces.stream_messages,
            &spaces.consumer_pending,
        ] {
            // fjall's own means of flushing and compacting now (hidden from its
            // docs, stable in the version the lockfile pins).
            let done = space
                .rotate_memtable_and_wait()
                .and_then(|()| space.major_compact());
            if let Err(e) = done {
                tracing::warn!(error = %e, "storage: compacting settled messages failed");
            }
            tracing::debug!(
                keyspace = %space.name(),
                bytes = space.disk_space(),
                "storage: settled messages compacted away"
            );
        }
    }
}

/// How long each group commit took (its write and, with `fsync = always`, its
/// fsync) and how many fsyncs there were; shared with `/metrics`.
#[derive(Debug, Clone)]
pub(crate) struct CommitMetrics {
    pub(crate) latency: Histogram,
    pub(crate) fsyncs: Counter,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            // 50 µs to about 1.6 s.
            latency: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            fsyncs: Counter::default(),
        }
    }
}

/// What the committer writes with.
struct Committer<'a> {
    db: &'a Database,
    spaces: &'a Spaces,
    fsync: Fsync,
    metrics: &'a CommitMetrics,
}

/// The committer: takes the journal's records in groups, writes each group as
/// one atomic batch, persists it, and completes the group's tickets.
fn commit_loop(
    committer: &Committer<'_>,
    journal: &Journal,
    fail_next_write: &AtomicBool,
    reclaim: &Reclaim,
) {
    let Committer {
        db,
        spaces,
        fsync,
        metrics,
    } = *committer;
    let mut failed: Option<StoreFailure> = None;
    let mut unsynced_since: Option<Instant> = None;
    // Only batch mode has anything to do while no records come (its fsync).
    let idle = match fsync {
        Fsync::Batch => BATCH_FSYNC_INTERVAL,
        Fsync::Always | Fsync::Never => Duration::from_secs(3600),
    };
    loop {
        let (records, commit) = match journal.take(idle) {
            Taken::Closed => break,
            Taken::Idle => {
                sync_due(committer, &mut unsynced_since, &mut failed);
                continue;
            }
            Taken::Batch(records, commit) => (records, commit),
        };
        let outcome = match &failed {
            Some(f) => Err(f.clone()),
            None if fail_next_write.swap(false, Ordering::AcqRel) => {
                Err(StoreFailure("No space left on device (injected)".into()))
            }
            None => {
                let started = Instant::now();
                let written = write(db, spaces, &records, fsync, reclaim);
                metrics.latency.observe(started.elapsed().as_secs_f64());
                if fsync == Fsync::Always && written.is_ok() {
                    metrics.fsyncs.inc();
                }
                written
            }
        };
        if fsync == Fsync::Batch && outcome.is_ok() && unsynced_since.is_none() {
            unsynced_since = Some(Instant::now());
        }
        complete(&commit, outcome, &mut failed);
        if fsync == Fsync::Batch {
            sync_due(committer, &mut unsynced_since, &mut failed);
        }
    }
    if failed.is_none() {
        if let Err(e) = db.persist(PersistMode::SyncAll) {
            tracing::error!(error = %e, "storage: final fsync failed");
        }
    }
}

/// Completes `commit`; the first failure is logged and makes every later
/// commit fail.
fn complete(commit: &Commit, outcome: Result<(), StoreFailure>, failed: &mut Option<StoreFailure>) {
    if let Err(f) = &outcome {
        if failed.is_none() {
            tracing::error!(
                error = %f,
                "storage: a write failed; durable publishes are refused (negatively \
                 acknowledged) until the broker restarts, other traffic goes on"
            );
            *failed = Some(f.clone());
        }
    }
    commit.complete(outcome);
}

/// With [`Fsync::Batch`]: fsyncs once the oldest unsynced commit is
/// [`BATCH_FSYNC_INTERVAL`] old.
fn sync_due(
    committer: &Committer<'_>,
    unsynced_since: &mut Option<Instant>,
    failed: &mut Option<StoreFailure>,
) {
    let Some(since) = *unsynced_since else {
        return;
    };
    if since.elapsed() < BATCH_FSYNC_INTERVAL {
        return;
    }
    *unsynced_since = None;
    let synced = committer.db.persist(PersistMode::SyncAll);
    if synced.is_ok() {
        committer.metrics.fsyncs.inc();
    }
    if let Err(e) = synced {
        if failed.is_none() {
            tracing::error!(error = %e, "storage: periodic fsync failed; durable publishes are refused until the broker restarts");
            *failed = Some(StoreFailure(e.to_string().into()));
        }
    }
}

/// Which keyspace an operation is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Space {
    Exchanges,
    Queues,
    Bindings,
    Messages,
    Delivered,
    Retained,
    Sessions,
    SessionSubs,
    SessionMessages,
    SessionState,
    Streams,
    StreamMessages,
    StreamLast,
    Consumers,
    ConsumerPositions,
    ConsumerPending,
}

impl Space {
    fn of(self, s: &Spaces) -> &Keyspace {
        match self {
            Space::Exchanges => &s.exchanges,
            Space::Queues => &s.queues,
            Space::Bindings => &s.bindings,
            Space::Messages => &s.messages,
            Space::Delivered => &s.delivered,
            Space::Retained => &s.retained,
            Space::Sessions => &s.sessions,
            Space::SessionSubs => &s.session_subs,
            Space::SessionMessages => &s.session_messages,
            Space::SessionState => &s.session_state,
            Space::Streams => &s.streams,
            Space::StreamMessages => &s.stream_messages,
            Space::StreamLast => &s.stream_last,
            Space::Consumers => &s.consumers,
            Space::ConsumerPositions => &s.consumer_positions,
            Space::ConsumerPending => &s.consumer_pending,
        }
    }
}

/// One group's net effect, key by key: later records win, and a message that
/// enters and leaves within one group never reaches the disk.
#[derive(Default)]
struct Changes {
    ops: BTreeMap<(Space, Vec<u8>), Op>,
}

enum Op {
    Put(Vec<u8>),
    /// Put in this group over a key that was not on disk (message keys are
    /// never reused): removing it leaves nothing to write.
    PutNew(Vec<u8>),
    Delete,
}

impl Changes {
    fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.ops.insert((space, key), Op::Put(value));
    }

    fn put_new(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.ops.insert((space, key), Op::PutNew(value));
    }

    fn delete(&mut self, space: Space, key: Vec<u8>) {
        match self.ops.get(&(space, key.clone())) {
            Some(Op::PutNew(_)) => {
                self.ops.remove(&(space, key));
            }
            _ => {
                self.ops.insert((space, key), Op::Delete);
            }
        }
    }

    /// Deletes every key of `space` in `from..to`, on disk and in this group.
    fn delete_range(
        &mut self,
        spaces: &Spaces,
        space: Space,
        from: Vec<u8>,
        to: Vec<u8>,
    ) -> fjall::Result<()> {
        let pending: Vec<Vec<u8>> = self
            .ops
            .range((space, from.clone())..(space, to.clone()))
            .map(|((_, k), _)| k.clone())
            .collect();
        for key in pending {
            self.ops.remove(&(space, key));
        }
        for guard in space.of(spaces).range(from..to) {
            let key = guard.key()?;
            self.ops.insert((space, key.to_vec()), Op::Delete);
        }
        Ok(())
    }

    /// Deletes every key of `space` starting with `prefix`, on disk and in
    /// this group.
    fn delete_prefix(&mut self, spaces: &Spaces, space: Space, prefix: &[u8]) -> fjall::Result<()> {
        let pending: Vec<Vec<u8>> = self
            .ops
            .range((space, prefix.to_vec())..)
            .take_while(|((s, k), _)| *s == space && k.starts_with(prefix))
            .map(|((_, k), _)| k.clone())
            .collect();
        for key in pending {
            self.ops.remove(&(space, key));
        }
        for guard in space.of(spaces).prefix(prefix) {
            let key = guard.key()?;
            self.ops.insert((space, key.to_vec()), Op::Delete);
        }
        Ok(())
    }
}

/// Writes `records` as one atomic batch and persists it as `fsync` says.
fn write(
    db: &Database,
    spaces: &Spaces,
    records: &[Record],
    fsync: Fsync,
    reclaim: &Reclaim,
) -> Result<(), StoreFailure> {
    let fail = |e: fjall::Error| StoreFailure(e.to_string().into());
    let mut changes = Changes::default();
    for record in records {
        apply(&mut changes, spaces, record).map_err(fail)?;
    }
    reclaim.count(&changes.ops);
    let mut batch = db.batch();
    for ((space, key), op) in changes.ops {
        match op {
            Op::Put(v) | Op::PutNew(v) => batch.insert(space.of(spaces), key, v),
            Op::Delete => batch.remove(space.of(spaces), key),
        }
    }
    let mode = match fsync {
        Fsync::Always => PersistMode::SyncAll,
        Fsync::Batch | Fsync::Never => PersistMode::Buffer,
    };
    batch.durability(Some(mode)).commit().map_err(fail)
}

fn apply(changes: &mut Changes, spaces: &Spaces, record: &Record) -> fjall::Result<()> {
    use format::*;
    match record {
        Record::ExchangeDeclared { name, spec } => {
            changes.put(
                Space::Exchanges,
                name.as_bytes().to_vec(),
                encode_exchange(spec),
            );
        }
        Record::ExchangeDeleted { name } => {
            changes.delete(Space::Exchanges, name.as_bytes().to_vec());
        }
        Record::QueueDeclared { id, name, spec } => {
            changes.put(
                Space::Queues,
                name.as_bytes().to_vec(),
                encode_queue(*id, spec),
            );
        }
        Record::QueueDeleted { id, name } => {
            changes.delete(Space::Queues, name.as_bytes().to_vec());
            changes.delete_prefix(spaces, Space::Messages, &queue_prefix(*id))?;
            changes.delete_prefix(spaces, Space::Delivered, &queue_prefix(*id))?;
        }
        Record::Bound(b) => changes.put(Space::Bindings, binding_key(b), Vec::new()),
        Record::Unbound(b) => changes.delete(Space::Bindings, binding_key(b)),
        Record::Enqueued { queue, entry } => {
            changes.put_new(
                Space::Messages,
                message_key(*queue, entry.seq),
                encode_entry(entry),
            );
        }
        Record::Delivered { queue, seq } => {
            changes.put_new(Space::Delivered, message_key(*queue, *seq), Vec::new());
        }
        Record::Removed { queue, seq } => {
            changes.delete(Space::Messages, message_key(*queue, *seq));
            changes.delete(Space::Delivered, message_key(*queue, *seq));
        }
        Record::Retained { subject, message } => {
            let key = subject.as_str().as_bytes().to_vec();
            match message {
                Some(m) => changes.put(Space::Retained, key, encode_message(m)),
                None => changes.delete(Space::Retained, key),
            }
        }
        Record::SessionOpened {
            id,
            name,
            expiry_secs,
        } => changes.put(
            Space::Sessions,
            dest_key(*id, &[]),
            encode_session(name, *expiry_secs),
        ),
        Record::SessionEnded { id } => {
            changes.delete(Space::Sessions, dest_key(*id, &[]));
            for space in [
                Space::SessionSubs,
                Space::SessionMessages,
                Space::SessionState,
            ] {
                changes.delete_prefix(spaces, space, &queue_prefix(*id))?;
            }
        }
        Record::SessionSubscribed {
            session,
            filter,
            opts,
        } => changes.put(
            Space::SessionSubs,
            subscription_key(*session, filter, opts.share_group.as_deref()),
            encode_sub_options(opts),
        ),
        Record::SessionUnsubscribed {
            session,
            filter,
            group,
        } => changes.delete(
            Space::SessionSubs,
            subscription_key(*session, filter, group.as_deref()),
        ),
        Record::SessionQueued {
            session,
            seq,
            dispatch,
        } => changes.put_new(
            Space::SessionMessages,
            message_key(*session, *seq),
            encode_dispatch(dispatch),
        ),
        Record::SessionSettled { session, seq } => {
            changes.delete(Space::SessionMessages, message_key(*session, *seq));
        }
        Record::SessionState {
            session,
            key,
            value,
        } => {
            let key = dest_key(*session, key);
            match value {
                Some(v) => changes.put(Space::SessionState, key, v.to_vec()),
                None => changes.delete(Space::SessionState, key),
            }
        }
        Record::StreamCreated {
            id,
            config,
            created_ns,
        } => changes.put(
            Space::Streams,
            queue_prefix(*id).to_vec(),
            encode_stream(config, *created_ns),
        ),
        Record::StreamDeleted { id } => {
            changes.delete(Space::Streams, queue_prefix(*id).to_vec());
            changes.delete(Space::StreamLast, queue_prefix(*id).to_vec());
            changes.delete_prefix(spaces, Space::StreamMessages, &queue_prefix(*id))?;
        }
        Record::StreamAppended { stream, message } => {
            changes.put_new(
                Space::StreamMessages,
                message_key(*stream, message.seq),
                encode_stream_message(message),
            );
            changes.put(
                Space::StreamLast,
                queue_prefix(*stream).to_vec(),
                encode_stream_last(message.seq, message.time_ns),
            );
        }
        Record::StreamRemoved { stream, seq } => {
            changes.delete(Space::StreamMessages, message_key(*stream, *seq));
        }
        Record::StreamPurged { stream, below } => changes.delete_range(
            spaces,
            Space::StreamMessages,
            message_key(*stream, 0),
            message_key(*stream, *below),
        )?,
        Record::ConsumerCreated {
            id,
            stream,
            config,
            created_ns,
        } => changes.put(
            Space::Consumers,
            queue_prefix(*id).to_vec(),
            encode_consumer(*stream, config, *created_ns),
        ),
        Record::ConsumerDeleted { id } => {
            changes.delete(Space::Consumers, queue_prefix(*id).to_vec());
            changes.delete(Space::ConsumerPositions, queue_prefix(*id).to_vec());
            changes.delete_prefix(spaces, Space::ConsumerPending, &queue_prefix(*id))?;
        }
        Record::ConsumerPosition {
            id,
            delivered,
            ack_floor,
        } => changes.put(
            Space::ConsumerPositions,
            queue_prefix(*id).to_vec(),
            encode_position(*delivered, *ack_floor),
        ),
        Record::ConsumerPending { id, seq, pending } => {
            let key = message_key(*id, *seq);
            let value = encode_pending(*pending);
            if pending.deliveries == 1 {
                changes.put_new(Space::ConsumerPending, key, value);
            } else {
                changes.put(Space::ConsumerPending, key, value);
            }
        }
        Record::ConsumerSettled { id, seq } => {
            changes.delete(Space::ConsumerPending, message_key(*id, *seq));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
