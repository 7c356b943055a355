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
use tokio::net::TcpStream;
use tracing::debug;

use crate::server::Context;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A request body bigger than the limit.
#[derive(Debug)]
pub(crate) struct TooLarge;

/// The request's body, refused past `limit` bytes before more than the limit is
/// read (a declared length over it is refused unread).
pub(crate) async fn read_body(request: Request, limit: usize) -> Result<Bytes, TooLarge> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(TooLarge);
    }
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| TooLarge)
}

/// Serves one HTTP connection with `routes` until it ends or the broker stops.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    routes: axum::Router,
) {
    let service = TowerToHyperService::new(routes);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
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
