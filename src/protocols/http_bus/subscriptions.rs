//! The bus's GET subscriptions: one router session per (user, `X-Client-Id`,
//! path), so that what is published between two polls waits in its outbox (up to
//! the queue limits); removed after `http_subscription_timeout` without a poll, or
//! by DELETE.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::access::Guard;
use crate::router::{Router, Session};

/// At most this many held subscriptions (each holds an outbox).
pub(super) const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Who holds a subscription and on which path (`mqtt/a/+`, `nats/a.*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) user: Option<String>,
    pub(super) client_id: String,
    pub(super) path: String,
}

/// One held subscription.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) session: Arc<Session>,
    /// What its user may receive (deliveries it may not are dropped).
    pub(super) guard: Mutex<Guard>,
    /// The reload of users and permissions it was made under: after another,
    /// it is made again under the new rules.
    pub(super) generation: u64,
    last_poll: Mutex<Instant>,
}

impl Held {
    pub(super) fn new(session: Arc<Session>, guard: Guard, generation: u64, now: Instant) -> Held {
        Held {
            session,
            guard: Mutex::new(guard),
            generation,
            last_poll: Mutex::new(now),
        }
    }

    pub(super) fn touch(&self, now: Instant) {
        *self.last_poll.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    fn idle_since(&self) -> Instant {
        *self.last_poll.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends a router session when dropped: a request's own session is closed even
/// when the client goes away mid-request (its handler's future is dropped then).
#[derive(Debug)]
pub(super) struct Closer {
    pub(super) router: Arc<Router>,
    pub(super) session: crate::router::SessionId,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.router.close_session(self.session);
    }
}

/// Every held subscription.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    held: Mutex<HashMap<Key, Arc<Held>>>,
}

/// [`MAX_SUBSCRIPTIONS`] are held: no more is made.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Full;

impl Subscriptions {
    /// The subscription of `key`, made by `make` if there is none; `true` with
    /// it if it is new.
    pub(super) fn get_or_make(
        &self,
        key: &Key,
        make: impl FnOnce() -> Held,
    ) -> Result<(Arc<Held>, bool), Full> {
        let mut held = self.lock();
        if let Some(h) = held.get(key) {
            return Ok((h.clone(), false));
        }
        if held.len() >= MAX_SUBSCRIPTIONS {
            return Err(Full);
        }
        let new = Arc::new(make());
        held.insert(key.clone(), new.clone());
        Ok((new, true))
    }

    /// Removes the subscription of `key`, ending its session; false if there was
    /// none.
    pub(super) fn remove(&self, key: &Key, router: &Router) -> bool {
        let removed = self.lock().remove(key);
        match removed {
            Some(h) => {
                router.close_session(h.session.id());
                true
            }
            None => false,
        }
    }

    /// Removes the subscriptions not polled within `timeout`; returns how many.
    pub(crate) fn expire(&self, now: Instant, timeout: Duration, router: &Router) -> usize {
        let expired: Vec<Arc<Held>> = {
            let mut held = self.lock();
            let keys: Vec<Key> = held
                .iter()
                .filter(|(_, h)| now.saturating_duration_since(h.idle_since()) >= timeout)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| held.remove(k)).collect()
        };
        for h in &expired {
            router.close_session(h.session.id());
        }
        expired.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Held>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Grant;
    use crate::router::{OutboxLimits, RetainedLimits, DEFAULT_VHOST_LIMITS};

    fn router() -> Router {
        let limits = OutboxLimits {
            max_messages: 10,
            max_bytes: 1024,
        };
        let retained = RetainedLimits {
            max_messages: 10,
            max_bytes: 1024,
        };
        Router::new(limits, retained, DEFAULT_VHOST_LIMITS)
    }

    #[test]
    fn a_subscription_is_kept_until_it_idles_out_or_is_removed() {
        let router = router();
        let subs = Subscriptions::default();
        let key = |c: &str| Key {
            user: None,
            client_id: c.into(),
            path: "nats/a".into(),
        };
        let t0 = Instant::now();
        let make = || {
            Held::new(
                router.open_session(),
                Guard::new(Grant::everything()),
                0,
                t0,
            )
        };
        let (a, new) = subs.get_or_make(&key("a"), make).unwrap();
        assert!(new);
        let (again, new) = subs.get_or_make(&key("a"), || unreachable!()).unwrap();
        assert!(!new && Arc::ptr_eq(&a, &again));
        let make = || {
            Held::new(
                router.open_session(),
                Guard::new(Grant::everything()),
                0,
                t0,
            )
        };
        subs.get_or_make(&key("b"), make).unwrap();
        assert_eq!(router.session_count(), 2);

        a.touch(t0 + Duration::from_secs(10));
        assert_eq!(
            subs.expire(t0 + Duration::from_secs(6), Duration::from_secs(5), &router),
            1
        );
        assert_eq!(router.session_count(), 1);
        assert!(subs.remove(&key("a"), &router));
        assert!(!subs.remove(&key("a"), &router));
        assert_eq!(router.session_count(), 0);
    }
}
