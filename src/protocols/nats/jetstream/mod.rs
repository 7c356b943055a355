//! JetStream: the JSON API on `$JS.API.>` and the ack protocol on `$JS.ACK.>`,
//! served by one in-process task over the router's streams.
//!
//! The service is a router subscriber like any client: requests reach it from
//! whichever connection published them, and its replies and deliveries are
//! router publishes to the requester's reply subject (a pull request's inbox, a
//! push consumer's deliver subject). Delivered messages keep their stream
//! subject in an extension that the NATS front writes as the MSG subject.
//! Publish acknowledgements (`{"stream":..,"seq":..}`) are the NATS front's,
//! given when the storage ticket of the append completes ([`pub_ack`]).
//!
//! The task's loop: wake on a request, on a stream append (the router's
//! notification) or on the earliest deadline (pull expiry, redelivery, max_age,
//! heartbeat, inactive threshold); handle the requests, then deliver.

mod api;
mod errors;
mod json;
mod service;
#[cfg(test)]
mod tests;

pub(crate) use api::owned;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::protocols::acks;
use crate::router::streams::Appended;
use crate::router::{Filter, Now, OutboxLimits, Router, StoreFailure, SubOptions};
use errors::ApiError;
use service::Service;

/// The API's subjects.
pub(crate) const API_PREFIX: &str = "$JS.API.";
/// The ack subjects deliveries carry.
pub(crate) const ACK_PREFIX: &str = "$JS.ACK.";
/// The subjects push consumers' flow control requests are answered on.
pub(crate) const FC_PREFIX: &str = "$JS.FC.";

/// What a JetStream API request does with a stream, for the permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamUse<'a> {
    /// Creates, changes or deletes the stream or one of its consumers, or its
    /// messages (`configure` on `stream:<name>`).
    Configure(&'a str),
    /// Reads its messages (`subscribe` on `stream:<name>`).
    Read(&'a str),
}

/// The stream an API request on `subject` configures or reads, if any (account
/// and stream info and the name lists need only the publish rule on the subject).
pub(crate) fn stream_use(subject: &str) -> Option<StreamUse<'_>> {
    let rest = subject.strip_prefix(API_PREFIX)?;
    let tokens: Vec<&str> = rest.split('.').collect();
    match tokens.as_slice() {
        ["STREAM", "CREATE" | "UPDATE" | "DELETE" | "PURGE", name]
        | ["STREAM", "MSG", "DELETE", name]
        | ["CONSUMER", "CREATE", name, ..]
        | ["CONSUMER", "DURABLE", "CREATE", name, _]
        | ["CONSUMER", "DELETE", name, _] => Some(StreamUse::Configure(name)),
        ["STREAM", "MSG", "GET", name] | ["CONSUMER", "MSG", "NEXT", name, _] => {
            Some(StreamUse::Read(name))
        }
        _ => None,
    }
}

/// Requests and acks queued for the service before the router drops them (a
/// client then times out, as with a lost request).
const INBOX_LIMITS: OutboxLimits = OutboxLimits {
    max_messages: 64 * 1024,
    max_bytes: 64 * 1024 * 1024,
};

/// Serves the JetStream API until `shutdown`.
pub(crate) async fn serve(router: Arc<Router>, shutdown: CancellationToken) {
    let session = router.open_session_with(INBOX_LIMITS);
    for filter in ["$JS.API.>", "$JS.ACK.>", "$JS.FC.>"] {
        let filter = Filter::nats(filter).expect("a valid filter");
        router.subscribe(session.id(), filter, SubOptions::default());
    }
    let mut service = Service::new(router.clone(), Now::current().at);
    let mut next = tokio::time::Instant::now();
    let mut changes = router.stream_changes();
    loop {
        let stored = service.replies_head();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = session.wait() => {}
            _ = changes.changed() => {}
            _ = acks::committed(&stored) => {}
            _ = tokio::time::sleep_until(next) => {}
        }
        let now = Now::current();
        service.release_replies(now);
        while let Some(d) = session.pop() {
            service.handle(&d.message, now);
        }
        let dropped = session.take_drop_stats().messages;
        if dropped > 0 {
            warn!(
                dropped,
                "jetstream: requests dropped, the service is behind"
            );
        }
        next = tokio::time::Instant::from_std(service.run(Now::current()));
    }
    router.close_session(session.id());
}

/// The publish acknowledgement for a publish a stream captured, or its error,
/// as nats-server writes it; `stored` is the storage outcome of the append.
pub(crate) fn pub_ack(appended: &Appended, stored: &Result<(), StoreFailure>) -> Bytes {
    let stream = &*appended.stream;
    let body = match (&appended.outcome, stored) {
        (Ok(s), Ok(())) if s.duplicate => {
            json!({ "stream": stream, "seq": s.seq, "duplicate": true })
        }
        (Ok(s), Ok(())) => json!({ "stream": stream, "seq": s.seq }),
        (Ok(_), Err(failure)) => {
            let e = ApiError::new(503, 10077, format!("storage failure: {}", failure.0));
            json!({ "error": e, "stream": stream, "seq": 0 })
        }
        (Err(refused), _) => {
            json!({ "error": ApiError::from(refused), "stream": stream, "seq": 0 })
        }
    };
    Bytes::from(body.to_string())
}
