//! MQTT sessions by client identifier: who holds each one, session takeover, parking
//! a persistent session while its client is away, session expiry and delayed wills,
//! and the MQTT state a stored session keeps (see [`StateKey`]): taken back up from
//! storage at start.
//!
//! The registry owns no sockets and reads no clock: callers pass `now`. Its one
//! mutex is never held across an `.await` nor while calling into the router; see
//! docs/locks.md.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::router::{ConnId, Dispatch, Message, RestoredSession, Router, Session};

/// An outgoing QoS 1/2 message not yet fully acknowledged by the client.
#[derive(Debug, Clone)]
pub(crate) enum OutFlight {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent(Dispatch),
    /// Sent on an earlier connection; to be resent (DUP, same packet id) when the
    /// client's Receive Maximum allows.
    Resend(Dispatch),
    /// PUBREL sent; waiting for PUBCOMP.
    Released,
}

/// The part of an MQTT session that outlives a network connection
/// ([MQTT-4.1.0-1]: subscriptions live in the router under `session`).
#[derive(Debug)]
pub(crate) struct SessionState {
    /// The router subscriber: its subscriptions and its queue of pending messages.
    pub(crate) session: Arc<Session>,
    /// Outgoing QoS 1/2 messages in the order they were first sent.
    pub(crate) inflight: VecDeque<(u16, OutFlight)>,
    /// Incoming QoS 2 packet ids whose PUBREL has not arrived yet.
    pub(crate) awaiting_rel: HashSet<u16>,
    /// The last packet identifier used for an outgoing message.
    pub(crate) last_packet_id: u16,
}

/// What a stored session records of its MQTT state, besides its pending
/// messages (which the router stores): a key per fact, its value if it has one.
/// Each fact is recorded before the packet that depends on it is sent, so that
/// exactly-once delivery holds across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateKey {
    /// Outgoing QoS 2 dispatch `seq` was sent under packet id (the value): it is
    /// resent under the same id, with DUP.
    Sent(u64),
    /// PUBREL was sent for packet id: PUBCOMP awaited.
    Released(u16),
    /// Incoming QoS 2 packet id was routed: PUBREL awaited.
    AwaitingRel(u16),
}

impl StateKey {
    pub(crate) fn bytes(self) -> Vec<u8> {
        let mut key = Vec::with_capacity(9);
        match self {
            StateKey::Sent(seq) => {
                key.push(b'o');
                key.extend_from_slice(&seq.to_be_bytes());
            }
            StateKey::Released(id) => {
                key.push(b'r');
                key.extend_from_slice(&id.to_be_bytes());
            }
            StateKey::AwaitingRel(id) => {
                key.push(b'i');
                key.extend_from_slice(&id.to_be_bytes());
            }
        }
        key
    }

    fn parse(key: &[u8]) -> Option<StateKey> {
        let (tag, rest) = key.split_first()?;
        match tag {
            b'o' => Some(StateKey::Sent(u64::from_be_bytes(rest.try_into().ok()?))),
            b'r' => Some(StateKey::Released(u16::from_be_bytes(
                rest.try_into().ok()?,
            ))),
            b'i' => Some(StateKey::AwaitingRel(u16::from_be_bytes(
                rest.try_into().ok()?,
            ))),
            _ => None,
        }
    }
}

impl SessionState {
    /// A new, empty session with its own router subscriber; stored (when the
    /// router stores anything) if it outlives its connection.
    pub(crate) fn open(router: &Router, client_id: &str, expiry_secs: u32) -> SessionState {
        let session = if expiry_secs > 0 {
            router.open_stored_session(client_id, expiry_secs)
        } else {
            router.open_session()
        };
        SessionState {
            session,
            inflight: VecDeque::new(),
            awaiting_rel: HashSet::new(),
            last_packet_id: 0,
        }
    }

    /// A stored session taken back up: its QoS 2 messages sent before the restart
    /// are resent under their packet ids, its PUBRELs sent again, its incoming
    /// QoS 2 packet ids still awaiting PUBREL.
    fn restored(r: &RestoredSession) -> SessionState {
        let mut state = SessionState {
            session: r.session.clone(),
            inflight: VecDeque::new(),
            awaiting_rel: HashSet::new(),
            last_packet_id: 0,
        };
        for (key, value) in &r.state {
            let id = match StateKey::parse(key) {
                Some(StateKey::Sent(seq)) => {
                    let packet_id = value
                        .as_ref()
                        .try_into()
                        .map(u16::from_be_bytes)
                        .ok()
                        .filter(|id| *id != 0);
                    match (packet_id, r.session.take(seq)) {
                        (Some(id), Some(dispatch)) => {
                            state.inflight.push_back((id, OutFlight::Resend(dispatch)));
                            id
                        }
                        _ => {
                            r.session.record_state(key, None);
                            continue;
                        }
                    }
                }
                Some(StateKey::Released(id)) => {
                    state.inflight.push_back((id, OutFlight::Released));
                    id
                }
                Some(StateKey::AwaitingRel(id)) => {
                    state.awaiting_rel.insert(id);
                    continue;
                }
                None => {
                    tracing::warn!(client_id = %r.name, "mqtt: unknown stored session state dropped");
                    r.session.record_state(key, None);
                    continue;
                }
            };
            state.last_packet_id = state.last_packet_id.max(id);
        }
        state
    }

    /// Ends the session in the router. Its unacknowledged messages from shared
    /// subscriptions go to other members of their groups.
    pub(crate) fn end(self, router: &Router) {
        let unacked = self
            .inflight
            .into_iter()
            .filter_map(|(_, flight)| match flight {
                OutFlight::Sent(d) | OutFlight::Resend(d) => Some(d),
                OutFlight::Released => None,
            })
            .collect();
        router.close_session_with(self.session.id(), unacked);
    }
}

/// A will message waiting for its Will Delay Interval.
#[derive(Debug)]
pub(crate) struct PendingWill {
    pub(crate) message: Message,
    pub(crate) due: Instant,
}

/// How a new connection asks the current holder of a client id to hand over.
/// The holder answers with its session state (or `None` if its session ended).
pub(crate) type Handoff = oneshot::Sender<Option<SessionState>>;

#[derive(Debug)]
enum Slot {
    /// A live connection holds the session; `kick` asks it to leave.
    Online {
        conn: ConnId,
        kick: oneshot::Sender<Handoff>,
    },
    /// No connection; kept until its expiry.
    Parked(Box<Parked>),
}

#[derive(Debug)]
struct Parked {
    state: SessionState,
    expires_at: Instant,
    will: Option<PendingWill>,
}

impl Parked {
    /// When the sweeper has something to do for it: its will's delay passes or
    /// it expires, whichever comes first.
    fn next_due(&self) -> Instant {
        match &self.will {
            Some(w) => w.due.min(self.expires_at),
            None => self.expires_at,
        }
    }
}

/// The client ids and, in time order, when each parked session is next due, so
/// that a sweep looks only at what is due (not at every session).
#[derive(Debug, Default)]
struct Slots {
    by_id: HashMap<String, Slot>,
    due: BTreeSet<(Instant, String)>,
}

impl Slots {
    /// Puts `slot` under `id`, keeping the time index in step; returns what was
    /// there.
    fn insert(&mut self, id: &str, slot: Slot) -> Option<Slot> {
        let due = match &slot {
            Slot::Parked(p) => Some(p.next_due()),
            Slot::Online { .. } => None,
        };
        let old = self.by_id.insert(id.to_owned(), slot);
        self.unindex(id, old.as_ref());
        if let Some(at) = due {
            self.due.insert((at, id.to_owned()));
        }
        old
    }

    fn remove(&mut self, id: &str) -> Option<Slot> {
        let old = self.by_id.remove(id);
        self.unindex(id, old.as_ref());
        old
    }

    fn unindex(&mut self, id: &str, old: Option<&Slot>) {
        if let Some(Slot::Parked(p)) = old {
            self.due.remove(&(p.next_due(), id.to_owned()));
        }
    }
}

/// What a connecting client finds under its client id.
#[derive(Debug)]
pub(crate) enum Prior {
    /// Nothing: a new session.
    Fresh,
    /// A parked session that had expired by the time the client came back: the
    /// caller ends it (and publishes its will, if one was waiting) and starts fresh.
    Expired(SessionState, Option<Box<Message>>),
    /// The registry already holds `max_sessions` client ids; nothing was claimed.
    Full,
    /// A parked session, now claimed (a pending delayed will is cancelled:
    /// the client came back in time).
    Parked(SessionState),
    /// A live connection, which must be asked to hand over.
    Online(oneshot::Sender<Handoff>),
}

/// Everything the sweeper found due.
#[derive(Debug, Default)]
pub(crate) struct Due {
    /// Wills whose delay has passed or whose session ended.
    pub(crate) wills: Vec<Message>,
    /// Sessions that expired, with their client ids (the caller closes them).
    pub(crate) expired: Vec<(String, SessionState)>,
}

/// The registry of MQTT sessions.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    slots: Mutex<Slots>,
}

impl Registry {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `conn` the holder of `client_id` and says what was there before. A
    /// new client id is refused once `max_sessions` ids are held.
    pub(crate) fn claim(
        &self,
        client_id: &str,
        conn: ConnId,
        kick: oneshot::Sender<Handoff>,
        now: Instant,
        max_sessions: usize,
    ) -> Prior {
        let mut slots = self.slots();
        if slots.by_id.len() >= max_sessions && !slots.by_id.contains_key(client_id) {
            return Prior::Full;
        }
        match slots.insert(client_id, Slot::Online { conn, kick }) {
            None => Prior::Fresh,
            // The sweeper may not have run since the session expired: an expired
            // session is never resumed, and its will is still due.
            Some(Slot::Parked(parked)) if parked.expires_at <= now => {
                Prior::Expired(parked.state, parked.will.map(|w| Box::new(w.message)))
            }
            Some(Slot::Parked(parked)) => Prior::Parked(parked.state),
            Some(Slot::Online { kick, .. }) => Prior::Online(kick),
        }
    }

    /// Called when `conn` ends. If it still holds `client_id`, the session is parked
    /// until `expires_at` (when `park` is given) or forgotten, and `None` is returned.
    /// If another connection has taken the id over meanwhile, the state is given
    /// back so that the caller can hand it over through its kick channel.
    pub(crate) fn release(
        &self,
        client_id: &str,
        conn: ConnId,
        park: Option<(SessionState, Instant, Option<PendingWill>)>,
    ) -> Option<SessionState> {
        let mut slots = self.slots();
        let ours =
            matches!(slots.by_id.get(client_id), Some(Slot::Online { conn: c, .. }) if *c == conn);
        if !ours {
            return park.map(|(state, _, _)| state);
        }
        match park {
            Some((state, expires_at, will)) => {
                slots.insert(
                    client_id,
                    Slot::Parked(Box::new(Parked {
                        state,
                        expires_at,
                        will,
                    })),
                );
            }
            None => {
                slots.remove(client_id);
            }
        }
        None
    }

    /// Collects due wills and expired sessions: only the parked sessions whose
    /// time has come are looked at.
    pub(crate) fn sweep(&self, now: Instant) -> Due {
        let mut due = Due::default();
        let mut slots = self.slots();
        while slots.due.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, id)) = slots.due.pop_first() else {
                break;
            };
            let Some(Slot::Parked(parked)) = slots.by_id.get_mut(&id) else {
                continue;
            };
            let expired = parked.expires_at <= now;
            // A will is published when its delay passes or when the session
            // ends, whichever comes first (MQTT 5 §3.1.3.2.2).
            if let Some(w) = parked.will.take() {
                due.wills.push(w.message);
            }
            if expired {
                if let Some(Slot::Parked(parked)) = slots.by_id.remove(&id) {
                    due.expired.push((id, parked.state));
                }
            } else {
                // Its will is gone: next due at its expiry.
                let at = parked.expires_at;
                slots.due.insert((at, id));
            }
        }
        due
    }

    /// Parks the stored sessions recovered at start: each expires its expiry
    /// after `now` (when its client went away before the restart is not known).
    pub(crate) fn restore(&self, sessions: Vec<RestoredSession>, now: Instant) {
        let mut slots = self.slots();
        for r in sessions {
            let state = SessionState::restored(&r);
            let expires_at = now + std::time::Duration::from_secs(u64::from(r.expiry_secs));
            slots.insert(
                &r.name,
                Slot::Parked(Box::new(Parked {
                    state,
                    expires_at,
                    will: None,
                })),
            );
        }
    }

    /// Number of client ids known (online or parked).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{OutboxLimits, RetainedLimits};
    use std::time::Duration;

    fn router() -> Router {
        Router::new(
            OutboxLimits {
                max_messages: 10,
                max_bytes: 1 << 20,
            },
            RetainedLimits {
                max_messages: 10,
                max_bytes: 1 << 20,
            },
            crate::router::DEFAULT_VHOST_LIMITS,
        )
    }

    #[test]
    fn claim_release_park_and_resume() {
        let r = router();
        let reg = Registry::default();
        let (tx, _rx) = oneshot::channel();
        assert!(matches!(
            reg.claim("c", 1, tx, Instant::now(), 100),
            Prior::Fresh
        ));
        let now = Instant::now();
        let state = SessionState::open(&r, "c", 0);
        let id = state.session.id();
        assert!(reg
            .release("c", 1, Some((state, now + Duration::from_secs(5), None)))
            .is_none());
        let (tx, _rx) = oneshot::channel();
        match reg.claim("c", 2, tx, Instant::now(), 100) {
            Prior::Parked(s) => assert_eq!(s.session.id(), id),
            other => panic!("expected parked, got {other:?}"),
        }
    }

    #[test]
    fn release_after_takeover_gives_state_back() {
        let r = router();
        let reg = Registry::default();
        let (tx1, _rx1) = oneshot::channel();
        reg.claim("c", 1, tx1, Instant::now(), 100);
        let (tx2, _rx2) = oneshot::channel();
        assert!(matches!(
            reg.claim("c", 2, tx2, Instant::now(), 100),
            Prior::Online(_)
        ));
        let back = reg.release(
            "c",
            1,
            Some((SessionState::open(&r, "c", 0), Instant::now(), None)),
        );
        assert!(back.is_some());
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn sweep_publishes_due_wills_and_expires_sessions() {
        let r = router();
        let reg = Registry::default();
        let now = Instant::now();
        for (id, will_in, expire_in) in [("a", 1, 10), ("b", 10, 2), ("c", 10, 10)] {
            let (tx, _rx) = oneshot::channel();
            reg.claim(id, 1, tx, Instant::now(), 100);
            let will = PendingWill {
                message: Message::default(),
                due: now + Duration::from_secs(will_in),
            };
            reg.release(
                id,
                1,
                Some((
                    SessionState::open(&r, "c", 0),
                    now + Duration::from_secs(expire_in),
                    Some(will),
                )),
            );
        }
        let due = reg.sweep(now + Duration::from_secs(3));
        assert_eq!(due.wills.len(), 2, "a's delay passed, b's session ended");
        assert_eq!(due.expired.len(), 1);
        assert_eq!(due.expired[0].0, "b");
        assert_eq!(reg.len(), 2);
        let due = reg.sweep(now + Duration::from_secs(3));
        assert!(due.wills.is_empty(), "a will is published once");
        // a expires later; c's will goes with its session.
        let due = reg.sweep(now + Duration::from_secs(11));
        assert_eq!((due.wills.len(), due.expired.len()), (1, 2));
        assert_eq!(reg.len(), 0);
        assert!(reg.slots().due.is_empty());
    }

    #[test]
    fn a_session_claimed_back_leaves_the_time_index() {
        let r = router();
        let reg = Registry::default();
        let now = Instant::now();
        for round in 0..3 {
            let (tx, _rx) = oneshot::channel();
            reg.claim("back", round, tx, now, 100);
            let expires = now + Duration::from_secs(60);
            reg.release(
                "back",
                round,
                Some((SessionState::open(&r, "back", 60), expires, None)),
            );
            assert_eq!(reg.slots().due.len(), 1);
        }
        let (tx, _rx) = oneshot::channel();
        assert!(matches!(
            reg.claim("back", 9, tx, now, 100),
            Prior::Parked(_)
        ));
        assert!(reg.slots().due.is_empty());
        assert!(reg.sweep(now + Duration::from_secs(61)).expired.is_empty());
    }

    #[test]
    fn an_expired_parked_session_is_not_resumed_and_keeps_its_will() {
        let r = router();
        let reg = Registry::default();
        let now = Instant::now();
        let (tx, _rx) = oneshot::channel();
        reg.claim("c", 1, tx, now, 100);
        let will = PendingWill {
            message: Message::default(),
            due: now + Duration::from_secs(60),
        };
        reg.release(
            "c",
            1,
            Some((
                SessionState::open(&r, "c", 0),
                now + Duration::from_secs(1),
                Some(will),
            )),
        );
        let (tx, _rx) = oneshot::channel();
        match reg.claim("c", 2, tx, now + Duration::from_secs(2), 100) {
            Prior::Expired(_, will) => assert!(will.is_some()),
            other => panic!("expected expired, got {other:?}"),
        }
    }

    #[test]
    fn new_client_ids_are_refused_beyond_max_sessions() {
        let reg = Registry::default();
        let now = Instant::now();
        let (tx, _rx1) = oneshot::channel();
        assert!(matches!(reg.claim("a", 1, tx, now, 1), Prior::Fresh));
        let (tx, _rx2) = oneshot::channel();
        assert!(matches!(reg.claim("b", 2, tx, now, 1), Prior::Full));
        let (tx, _rx3) = oneshot::channel();
        assert!(matches!(reg.claim("a", 3, tx, now, 1), Prior::Online(_)));
    }
}
