//! One front per protocol. Each translates its wire packets to and from router
//! values and owns its protocol's policy; none of them knows about the others.

mod acks;
pub(crate) mod amqp;
mod delivery;
mod frames;
mod http;
pub(crate) mod kafka_rest;
pub(crate) mod mqtt;
pub(crate) mod nats;
pub(crate) mod schema_registry;
mod socket;
pub(crate) mod stomp;

use crate::router::Now;

/// The current time as the router needs it.
pub(crate) fn now() -> Now {
    Now::current()
}
