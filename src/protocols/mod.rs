//! One front per protocol. Each translates its wire packets to and from router
//! values and owns its protocol's policy; none of them knows about the others.

pub(crate) mod amqp;
mod delivery;
mod frames;
pub(crate) mod mqtt;
pub(crate) mod nats;
mod socket;
pub(crate) mod stomp;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::router::Now;

/// The current time as the router needs it: monotonic for expiry, wall clock
/// for the records it keeps (x-death).
pub(crate) fn now() -> Now {
    Now {
        at: Instant::now(),
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}
