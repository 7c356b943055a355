//! Pure codecs: no sockets, no clocks, no runtime; every decoder is bounded by its limits.
//!
//! Each protocol module turns bytes into typed packets and back. Decoders follow the
//! [`tokio_util::codec::Decoder`] contract: an incomplete frame reserves the missing bytes and
//! returns `Ok(None)` without consuming anything, and a frame larger than the configured maximum
//! is rejected as soon as its length is known, before its body is buffered. Nothing here panics
//! on wire input, allocates from an unchecked length, or decides policy: what to answer to a
//! decode error is the front's job (every error carries the wire code to answer with).
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod amqp;
pub mod mqtt;
pub mod nats;
pub mod stomp;
