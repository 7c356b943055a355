//! Reading the data directory back at start.
//!
//! Owns: checking the format version, decoding every stored value (a value that
//! does not decode is a startup error naming its keyspace and key, never a
//! panic and never a silent skip), dropping what no longer belongs (messages of
//! a queue that is gone, delivered marks of messages that are gone, expired
//! retained messages, what a session that is gone left) and handing the rest to
//! the router in order: exchanges, queues with their messages, bindings,
//! retained messages, stored sessions (whose front state goes back to their
//! front).
//! A torn batch at the end of the engine's journal is dropped by the engine
//! itself when it opens (batches carry checksums and are applied whole), and
//! logged by it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use fjall::{Database, Keyspace, PersistMode};

use super::format::{self, DecodeError, FORMAT_VERSION};
use super::{Spaces, StorageError};
use crate::router::journal::BindingRecord;
use crate::router::streams::consumer::Position;
use crate::router::streams::{RestoredConsumer, RestoredStream};
use crate::router::{
    DestId, Dispatch, Entry, ExchangeSpec, Filter, FrontState, Message, Now, QueueSpec,
    RestoredSession, Router, SubOptions,
};

/// A durable queue as stored.
#[derive(Debug)]
struct StoredQueue {
    id: DestId,
    name: String,
    spec: QueueSpec,
    entries: Vec<Entry>,
}

/// A stored session as stored.
#[derive(Debug)]
struct StoredSession {
    id: DestId,
    name: String,
    expiry_secs: u32,
    subscriptions: Vec<(Filter, SubOptions)>,
    pending: Vec<Dispatch>,
    state: FrontState,
}

/// Everything read back from the data directory, to apply to a router.
#[derive(Debug, Default)]
pub struct Recovered {
    exchanges: Vec<(String, ExchangeSpec)>,
    queues: Vec<StoredQueue>,
    bindings: Vec<BindingRecord>,
    retained: Vec<Message>,
    sessions: Vec<StoredSession>,
    streams: Vec<RestoredStream>,
}

/// What recovery put back, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Durable exchanges.
    pub exchanges: usize,
    /// Durable queues.
    pub queues: usize,
    /// Persistent messages in them.
    pub messages: usize,
    /// Bindings.
    pub bindings: usize,
    /// Retained messages.
    pub retained: usize,
    /// Stored sessions.
    pub sessions: usize,
    /// Pending messages of stored sessions.
    pub session_messages: usize,
    /// Streams.
    pub streams: usize,
    /// Messages in them.
    pub stream_messages: usize,
}

impl Recovered {
    /// Messages stored in queues and sessions.
    pub(crate) fn stored_messages(&self) -> u64 {
        let queued: usize = self.queues.iter().map(|q| q.entries.len()).sum();
        let pending: usize = self.sessions.iter().map(|s| s.pending.len()).sum();
        let streamed: usize = self.streams.iter().map(|s| s.messages.len()).sum();
        (queued + pending + streamed) as u64
    }

    /// The highest destination id in use.
    pub(crate) fn last_id(&self) -> DestId {
        let queues = self.queues.iter().map(|q| q.id);
        let sessions = self.sessions.iter().map(|s| s.id);
        let streams = self.streams.iter().map(|s| s.id);
        let consumers = self
            .streams
            .iter()
            .flat_map(|s| s.consumers.iter().map(|c| c.id));
        queues
            .chain(sessions)
            .chain(streams)
            .chain(consumers)
            .max()
            .unwrap_or(0)
    }

    /// Rebuilds the durable state in `router` (built on this storage's journal,
    /// before it serves anyone); returns what it put back and the stored
    /// sessions, for their front to take up.
    pub fn apply(self, router: &Router, now: Now) -> (Summary, Vec<RestoredSession>) {
        let mut summary = Summary {
            exchanges: self.exchanges.len(),
            queues: self.queues.len(),
            ..Summary::default()
        };
        for (name, spec) in self.exchanges {
            router.restore_exchange(&name, spec);
        }
        for q in self.queues {
            summary.messages += q.entries.len();
            router.restore_queue(q.id, &q.name, q.spec, q.entries, now);
        }
        for b in self.bindings {
            match router.restore_binding(b.clone()) {
                Ok(()) => summary.bindings += 1,
                Err(e) => tracing::warn!(binding = ?b, error = %e, "stored binding not restored"),
            }
        }
        for m in self.retained {
            router.restore_retained(Arc::new(m));
            summary.retained += 1;
        }
        let mut sessions = Vec::with_capacity(self.sessions.len());
        for s in self.sessions {
            summary.sessions += 1;
            summary.session_messages += s.pending.len();
            sessions.push(router.restore_session(
                s.id,
                s.name,
                s.expiry_secs,
                s.subscriptions,
                s.pending,
                s.state,
            ));
        }
        for st in self.streams {
            let name = st.config.name.clone();
            let messages = st.messages.len();
            let restored = router.restore_stream(st, now.at);
            match restored {
                Ok(()) => {
                    summary.streams += 1;
                    summary.stream_messages += messages;
                }
                Err(e) => tracing::warn!(stream = %name, error = %e, "stored stream not restored"),
            }
        }
        // Messages that expired while the broker was down go now (dead-lettered
        // where their queue says so), before anyone can consume them.
        router.vhost_housekeeping(now);
        (summary, sessions)
    }
}

/// Reads every keyspace; deletes what no longer belongs.
pub(super) fn read(dir: &Path, db: &Database, s: &Spaces) -> Result<Recovered, StorageError> {
    let engine = |what| engine_error(dir, what);
    let corrupt = |keyspace, key: &[u8], why| corrupt_error(dir, keyspace, key, why);
    check_version(dir, db, &s.meta)?;
    let mut out = Recovered::default();
    let mut garbage: Vec<(&Keyspace, Vec<u8>)> = Vec::new();

    for (key, value) in all(&s.exchanges).map_err(engine("exchanges"))? {
        let name = utf8(&key).map_err(|why| corrupt("exchanges", &key, why))?;
        let spec =
            format::decode_exchange(&value).map_err(|why| corrupt("exchanges", &key, why))?;
        out.exchanges.push((name, spec));
    }
    let mut by_id: HashMap<DestId, usize> = HashMap::new();
    for (key, value) in all(&s.queues).map_err(engine("queues"))? {
        let name = utf8(&key).map_err(|why| corrupt("queues", &key, why))?;
        let (id, spec) =
            format::decode_queue(&value).map_err(|why| corrupt("queues", &key, why))?;
        by_id.insert(id, out.queues.len());
        out.queues.push(StoredQueue {
            id,
            name,
            spec,
            entries: Vec::new(),
        });
    }
    let mut delivered: HashSet<(DestId, u64)> = HashSet::new();
    for (key, _) in all(&s.delivered).map_err(engine("delivered"))? {
        delivered.insert(
            format::parse_message_key(&key).map_err(|why| corrupt("delivered", &key, why))?,
        );
    }
    let mut live: HashSet<(DestId, u64)> = HashSet::new();
    for (key, value) in all(&s.messages).map_err(engine("messages"))? {
        let (id, seq) =
            format::parse_message_key(&key).map_err(|why| corrupt("messages", &key, why))?;
        let Some(&i) = by_id.get(&id) else {
            garbage.push((&s.messages, key));
            continue;
        };
        let was_delivered = delivered.contains(&(id, seq));
        let entry = format::decode_entry(seq, &value, was_delivered)
            .map_err(|why| corrupt("messages", &key, why))?;
        live.insert((id, seq));
        out.queues[i].entries.push(entry);
    }
    for mark in delivered.difference(&live) {
        garbage.push((&s.delivered, format::message_key(mark.0, mark.1)));
    }
    for (key, _) in all(&s.bindings).map_err(engine("bindings"))? {
        out.bindings
            .push(format::decode_binding(&key).map_err(|why| corrupt("bindings", &key, why))?);
    }
    let now_ms = Now::current().unix_ms;
    for (key, value) in all(&s.retained).map_err(engine("retained"))? {
        let message =
            format::decode_message(&value).map_err(|why| corrupt("retained", &key, why))?;
        if message.is_expired(now_ms) {
            garbage.push((&s.retained, key));
        } else {
            out.retained.push(message);
        }
    }
    read_sessions(dir, &mut out, s, &mut garbage)?;
    read_streams(dir, &mut out, s, &mut garbage)?;
    if !garbage.is_empty() {
        tracing::info!(
            keys = garbage.len(),
            "storage: removing entries that no longer belong (orphaned or expired)"
        );
        let mut batch = db.batch();
        for (space, key) in garbage {
            batch.remove(space, key);
        }
        batch
            .durability(Some(PersistMode::SyncAll))
            .commit()
            .map_err(|source| StorageError::Engine {
                dir: dir.to_owned(),
                what: "removing orphaned entries".into(),
                source,
            })?;
    }
    Ok(out)
}

fn engine_error<'a>(
    dir: &'a Path,
    keyspace: &'static str,
) -> impl Fn(fjall::Error) -> StorageError + 'a {
    move |source| StorageError::Engine {
        dir: dir.to_owned(),
        what: format!("reading keyspace '{keyspace}'"),
        source,
    }
}

fn corrupt_error(dir: &Path, keyspace: &'static str, key: &[u8], why: DecodeError) -> StorageError {
    StorageError::Corrupt {
        dir: dir.to_owned(),
        keyspace,
        key: key.iter().map(|b| format!("{b:02x}")).collect(),
        why,
    }
}

/// Stored sessions with their subscriptions, pending dispatches (in order) and
/// front state; what belongs to no stored session is garbage.
fn read_sessions<'s>(
    dir: &Path,
    out: &mut Recovered,
    s: &'s Spaces,
    garbage: &mut Vec<(&'s Keyspace, Vec<u8>)>,
) -> Result<(), StorageError> {
    let engine = |what| engine_error(dir, what);
    let corrupt = |keyspace, key: &[u8], why| corrupt_error(dir, keyspace, key, why);
    let mut by_id: HashMap<DestId, usize> = HashMap::new();
    for (key, value) in all(&s.sessions).map_err(engine("sessions"))? {
        let (id, _) = format::parse_dest_key(&key).map_err(|why| corrupt("sessions", &key, why))?;
        let (name, expiry_secs) =
            format::decode_session(&value).map_err(|why| corrupt("sessions", &key, why))?;
        by_id.insert(id, out.sessions.len());
        out.sessions.push(StoredSession {
            id,
            name,
            expiry_secs,
            subscriptions: Vec::new(),
            pending: Vec::new(),
            state: Vec::new(),
        });
    }
    for (key, value) in all(&s.session_subs).map_err(engine("session_subs"))? {
        let (id, rest) =
            format::parse_dest_key(&key).map_err(|why| corrupt("session_subs", &key, why))?;
        let Some(&i) = by_id.get(&id) else {
            garbage.push((&s.session_subs, key));
            continue;
        };
        let sub = format::decode_subscription(rest, &value)
            .map_err(|why| corrupt("session_subs", &key, why))?;
        out.sessions[i].subscriptions.push(sub);
    }
    for (key, value) in all(&s.session_messages).map_err(engine("session_messages"))? {
        let (id, seq) = format::parse_message_key(&key)
            .map_err(|why| corrupt("session_messages", &key, why))?;
        let Some(&i) = by_id.get(&id) else {
            garbage.push((&s.session_messages, key));
            continue;
        };
        let d = format::decode_dispatch(seq, &value)
            .map_err(|why| corrupt("session_messages", &key, why))?;
        out.sessions[i].pending.push(d);
    }
    for (key, value) in all(&s.session_state).map_err(engine("session_state"))? {
        let (id, rest) =
            format::parse_dest_key(&key).map_err(|why| corrupt("session_state", &key, why))?;
        let Some(&i) = by_id.get(&id) else {
            garbage.push((&s.session_state, key));
            continue;
        };
        out.sessions[i]
            .state
            .push((rest.into(), value.into_boxed_slice()));
    }
    Ok(())
}

/// Stored streams with their messages (in order), last sequence numbers and
/// consumers with their positions and pending deliveries; what belongs to no
/// stored stream or consumer is garbage.
fn read_streams<'s>(
    dir: &Path,
    out: &mut Recovered,
    s: &'s Spaces,
    garbage: &mut Vec<(&'s Keyspace, Vec<u8>)>,
) -> Result<(), StorageError> {
    let engine = |what| engine_error(dir, what);
    let corrupt = |keyspace, key: &[u8], why| corrupt_error(dir, keyspace, key, why);
    let id_of = |keyspace, key: &[u8]| {
        format::parse_dest_key(key)
            .map(|(id, _)| id)
            .map_err(|why| corrupt(keyspace, key, why))
    };
    let mut by_id: HashMap<DestId, usize> = HashMap::new();
    for (key, value) in all(&s.streams).map_err(engine("streams"))? {
        let id = id_of("streams", &key)?;
        let (config, created_ns) =
            format::decode_stream(&value).map_err(|why| corrupt("streams", &key, why))?;
        by_id.insert(id, out.streams.len());
        out.streams.push(RestoredStream {
            id,
            config,
            created_ns,
            last: (0, 0),
            messages: Vec::new(),
            consumers: Vec::new(),
        });
    }
    for (key, value) in all(&s.stream_last).map_err(engine("stream_last"))? {
        let id = id_of("stream_last", &key)?;
        let Some(&i) = by_id.get(&id) else {
            garbage.push((&s.stream_last, key));
            continue;
        };
        out.streams[i].last =
            format::decode_stream_last(&value).map_err(|why| corrupt("stream_last", &key, why))?;
    }
    for (key, value) in all(&s.stream_messages).map_err(engine("stream_messages"))? {
        let (id, seq) =
            format::parse_message_key(&key).map_err(|why| corrupt("stream_messages", &key, why))?;
        let Some(&i) = by_id.get(&id) else {
            garbage.push((&s.stream_messages, key));
            continue;
        };
        let m = format::decode_stream_message(seq, &value)
            .map_err(|why| corrupt("stream_messages", &key, why))?;
        out.streams[i].messages.push(m);
    }
    let mut consumers: HashMap<DestId, (usize, usize)> = HashMap::new();
    for (key, value) in all(&s.consumers).map_err(engine("consumers"))? {
        let id = id_of("consumers", &key)?;
        let (stream, config, created_ns) =
            format::decode_consumer(&value).map_err(|why| corrupt("consumers", &key, why))?;
        let Some(&i) = by_id.get(&stream) else {
            garbage.push((&s.consumers, key));
            continue;
        };
        consumers.insert(id, (i, out.streams[i].consumers.len()));
        out.streams[i].consumers.push(RestoredConsumer {
            id,
            config,
            created_ns,
            delivered: Position::default(),
            ack_floor: Position::default(),
            pending: Vec::new(),
        });
    }
    for (key, value) in all(&s.consumer_positions).map_err(engine("consumer_positions"))? {
        let id = id_of("consumer_positions", &key)?;
        let Some(&(i, j)) = consumers.get(&id) else {
            garbage.push((&s.consumer_positions, key));
            continue;
        };
        let (delivered, floor) = format::decode_position(&value)
            .map_err(|why| corrupt("consumer_positions", &key, why))?;
        let c = &mut out.streams[i].consumers[j];
        c.delivered = delivered;
        c.ack_floor = floor;
    }
    for (key, value) in all(&s.consumer_pending).map_err(engine("consumer_pending"))? {
        let (id, seq) = format::parse_message_key(&key)
            .map_err(|why| corrupt("consumer_pending", &key, why))?;
        let Some(&(i, j)) = consumers.get(&id) else {
            garbage.push((&s.consumer_pending, key));
            continue;
        };
        let p =
            format::decode_pending(&value).map_err(|why| corrupt("consumer_pending", &key, why))?;
        out.streams[i].consumers[j].pending.push((seq, p));
    }
    Ok(())
}

/// Every (key, value) of `space`, in key order.
fn all(space: &Keyspace) -> fjall::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    space
        .iter()
        .map(|guard| {
            let (k, v) = guard.into_inner()?;
            Ok((k.to_vec(), v.to_vec()))
        })
        .collect()
}

fn utf8(key: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(key.to_vec()).map_err(|e| e.to_string())
}

/// Writes the format version into a new directory; refuses another version.
fn check_version(dir: &Path, db: &Database, meta: &Keyspace) -> Result<(), StorageError> {
    let engine = |source| StorageError::Engine {
        dir: dir.to_owned(),
        what: "reading keyspace 'meta'".into(),
        source,
    };
    match meta.get("format").map_err(engine)? {
        None => {
            meta.insert("format", FORMAT_VERSION.to_be_bytes())
                .map_err(engine)?;
            db.persist(PersistMode::SyncAll).map_err(engine)
        }
        Some(v) if v.as_ref() == FORMAT_VERSION.to_be_bytes() => Ok(()),
        Some(v) => Err(StorageError::Corrupt {
            dir: dir.to_owned(),
            keyspace: "meta",
            key: "format".into(),
            why: format!(
                "format version {:?} is not {FORMAT_VERSION}, the one this dwbroker reads",
                v.as_ref()
            ),
        }),
    }
}
