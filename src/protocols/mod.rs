//! One front per protocol. Each translates its wire packets to and from router
//! values and owns its protocol's policy; none of them knows about the others.

mod acks;
pub(crate) mod amqp;
mod delivery;
mod frames;
pub(crate) mod http;
pub(crate) mod http_bus;
pub(crate) mod kafka_rest;
pub(crate) mod mqtt;
pub(crate) mod nats;
mod pressure;
pub(crate) mod schema_registry;
mod socket;
pub(crate) mod stomp;

use crate::router::Now;

/// ns since the Unix epoch of an RFC 3339 time (JetStream's and Kafka REST's
/// times on the wire).
pub(crate) fn parse_time(text: &str) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

/// The current time as the router needs it.
pub(crate) fn now() -> Now {
    Now::current()
}
