//! The shell of the HTTP fronts (Kafka REST, the schema registry, the operator's
//! listeners): one HTTP/1.1
//! connection served by hyper with a front's axum routes, ended gracefully when
//! the broker stops, each request authenticated by its Basic credentials (the
//! [`Grant`] is in its extensions for the routes to check). The fronts own their
//! routes; nothing here knows them.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tracing::debug;

use crate::access::{Grant, Login, Peer};
use crate::connections::{Identity, Protocol, Registration};
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

/// Serves one HTTP connection with `routes` (behind the login) and `public`
/// (answered without one: health checks) until it ends or the broker stops.
pub(crate) async fn serve<S: Duplex>(
    stream: S,
    peer: SocketAddr,
    ctx: Arc<Context>,
    routes: axum::Router,
    public: axum::Router,
) {
    let registration = Arc::new(ctx.register(Protocol::Http, peer));
    let door = Door {
        certificate_user: ctx
            .access
            .certificate_user(stream.client_certificate())
            .map(Arc::from),
        ctx: ctx.clone(),
        peer,
        registration: registration.clone(),
        known: Arc::default(),
    };
    let routes = routes
        .layer(axum::middleware::from_fn_with_state(door, log_in))
        .merge(public);
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
        _ = registration.closing().cancelled() => {
            // In-flight requests finish; the connection closes after them.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        debug!(%peer, error = %e, "http: connection ended with an error");
    }
}

/// An HTTP connection's logins: the credentials it last sent and what they
/// were granted, so that a client sending the same Authorization on every
/// request pays for one password check (argon2 takes tens of milliseconds), not
/// one per request.
#[derive(Clone)]
struct Door {
    ctx: Arc<Context>,
    peer: SocketAddr,
    /// The user the client's TLS certificate names, for requests without
    /// credentials.
    certificate_user: Option<Arc<str>>,
    /// The connection in the operator's view: its user is recorded at login.
    registration: Arc<Registration>,
    known: Arc<Mutex<Option<Known>>>,
}

struct Known {
    authorization: Option<HeaderValue>,
    /// The reload the grant was made under: after another, it is checked again.
    generation: u64,
    grant: Grant,
}

/// Authenticates a request's Basic credentials (none: the client certificate's
/// user, or an anonymous client; ignored while the broker has no users) and
/// hands its grant to the routes;
/// a refusal is 401 with a Basic challenge, in the fronts' error shape.
async fn log_in(State(door): State<Door>, mut request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let generation = door.ctx.access.generation();
    let cached = door
        .known
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .filter(|k| k.generation == generation && k.authorization == authorization)
        .map(|k| k.grant.clone());
    let grant = match cached {
        Some(grant) => grant,
        None => {
            // Another scheme, or Basic that does not decode, names nobody.
            let credentials = authorization
                .as_ref()
                .map(|value| basic_credentials(value).unwrap_or_default());
            let login = match &credentials {
                Some((user, password)) => Login::Password { user, password },
                None => Login::Anonymous,
            };
            let login = login.or_certificate(door.certificate_user.as_deref());
            let Ok(grant) = door
                .ctx
                .access
                .authenticate_optional(
                    Peer {
                        ip: door.peer.ip(),
                        via: Protocol::Http,
                    },
                    login,
                )
                .await
            else {
                return unauthorized();
            };
            door.registration.identify(Identity {
                user: grant.user().map(str::to_owned),
                ..Identity::default()
            });
            *door.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(Known {
                authorization,
                generation,
                grant: grant.clone(),
            });
            grant
        }
    };
    request.extensions_mut().insert(grant);
    next.run(request).await
}

/// The user and password of `Basic <base64(user:password)>`.
fn basic_credentials(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// An error in the operator's and the bus's shape: `{"error": "...", "code": N}`.
pub(crate) fn json_error(status: StatusCode, text: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": text.into(), "code": status.as_u16() });
    (status, axum::Json(body)).into_response()
}

fn unauthorized() -> Response {
    let body = serde_json::json!({ "error_code": 40101, "message": "Unauthorized" });
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"dwbroker\""),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[test]
    fn basic_credentials_are_read_from_the_header() {
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        // "alice:pa:ss" in base64: the password may hold colons.
        assert_eq!(
            basic_credentials(&header("Basic YWxpY2U6cGE6c3M=")),
            Some(("alice".into(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            basic_credentials(&header("basic YWxpY2U6")),
            Some(("alice".into(), Vec::new()))
        );
        for bad in [
            "Bearer YWxpY2U6cGE=",
            "Basic !!!",
            "Basic YWxpY2U=",
            "Basic",
        ] {
            assert_eq!(basic_credentials(&header(bad)), None, "{bad}");
        }
    }

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
