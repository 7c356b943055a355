//! One front per protocol. Each translates its wire packets to and from router
//! values and owns its protocol's policy; none of them knows about the others.

pub(crate) mod mqtt;
pub(crate) mod nats;
mod socket;
