//! The shell of the HTTP fronts (Kafka REST, the schema registry): one HTTP/1.1
//! connection served by hyper with a front's axum routes, ended gracefully when
//! the broker stops. The fronts own their routes; nothing here knows them.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tracing::debug;

use crate::server::Context;
use crate::transport::Duplex;

/// How long a client may take to send a request's body (a body that trickles
/// in would hold its connection and buffer for as long as it likes).
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Bigger than the limit.
    TooLarge,
    /// Not all there within [`BODY_READ_TIMEOUT`].
    TooSlow,
}

/// The request's body, refused past `limit` bytes before more than the limit is
/// read (a declared length over it is refused unread), or if it takes longer
/// than `within` to arrive.
pub(crate) async fn read_body(
    request: Request,
    limit: usize,
    within: Duration,
) -> Result<Bytes, BodyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(within, axum::body::to_bytes(request.into_body(), limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::TooSlow),
    }
}

/// The read buffer of an HTTP connection, hence the largest request head (with
/// one read's overshoot, under twice this); bodies stream through it.
const MAX_HEAD: usize = 64 * 1024;

/// Serves one HTTP connection with `routes` until it ends or the broker stops.
pub(crate) async fn serve<S: Duplex>(
    stream: S,
    peer: SocketAddr,
    ctx: Arc<Context>,
    routes: axum::Router,
) {
    let service = TowerToHyperService::new(routes);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // A request's headers have as long as any protocol's CONNECT: a client that
        // trickles them (slowloris) holds a socket no longer than one that sends nothing.
        .header_read_timeout(ctx.config.limits.connect_timeout)
        // A request head must fit in this (431 otherwise). hyper checks its buffer
        // between reads, so with its 400 KiB default a head of up to about twice
        // that passed when it came in large reads: whether a 500 KB header was
        // refused depended on timing.
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = ctx.shutdown.cancelled() => {
            // In-flight requests finish; the connection closes after them.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        debug!(%peer, error = %e, "http: connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[tokio::test]
    async fn a_body_is_bounded_in_size_and_in_time() {
        let small = Request::new(Body::from("{}"));
        assert_eq!(
            read_body(small, 16, Duration::from_secs(1)).await.unwrap(),
            "{}"
        );
        let big = Request::new(Body::from(vec![b'x'; 17]));
        assert_eq!(
            read_body(big, 16, Duration::from_secs(1)).await,
            Err(BodyError::TooLarge)
        );
        let never = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        let slow = Request::new(Body::from_stream(never));
        assert_eq!(
            read_body(slow, 16, Duration::from_millis(50)).await,
            Err(BodyError::TooSlow)
        );
    }
}
