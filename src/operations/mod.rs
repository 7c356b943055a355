//! The operator's view of the broker over HTTP (`--http`): health for
//! orchestrators (`/healthz`, `/readyz`, answered without a login), Prometheus
//! `/metrics`, the JSON API (`/api/...`) and the dashboard (`/`, a page
//! compiled into the binary that polls the API), which need the `admin` permission
//! when permissions are configured; and nats-server's monitoring endpoints on a
//! listener of their own (`--nats-monitor`).
//!
//! Everything here reads the state its owners keep (the connection registry,
//! the router, access); nothing here is on a message's path.

mod api;
mod metrics;
pub(crate) mod nats_monitor;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::json;

use crate::access::Grant;
use crate::connections::{Connection, Protocol};
use crate::protocols::http_bus;
use crate::server::Context;
use crate::transport::Duplex;

/// The version `/varz` reports: the nats-server protocol level the NATS front
/// speaks.
const NATS_VERSION: &str = crate::protocols::nats::PROTOCOL_VERSION;

/// How often message rates are sampled.
const RATE_PERIOD: Duration = Duration::from_secs(1);

/// Serves one connection to the HTTP listener.
pub(crate) async fn serve<S: Duplex>(stream: S, peer: SocketAddr, ctx: Arc<Context>) {
    // The bus checks each request against its user's rules; the rest is the
    // operator's.
    let routes = api::routes()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn(admin_only))
        .merge(http_bus::routes())
        .layer(axum::middleware::from_fn(same_site_only))
        .with_state(ctx.clone());
    let public = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ctx.clone());
    crate::protocols::http::serve(stream, peer, ctx, routes, public).await;
}

/// Samples the connections' message rates until shutdown.
pub(crate) async fn sample_rates(ctx: Arc<Context>) {
    let mut last = std::time::Instant::now();
    crate::server::every(RATE_PERIOD, &ctx.shutdown, |_| {
        let now = std::time::Instant::now();
        ctx.clients.sample((now - last).as_secs_f64());
        last = now;
    })
    .await;
}

/// The process is up and serving HTTP.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Storage is recovered and every configured listener bound (503 before, and
/// while the broker stops).
async fn readyz(State(ctx): State<Arc<Context>>) -> Response {
    if ctx.is_ready() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        let status = if ctx.shutdown.is_cancelled() {
            "stopping"
        } else {
            "starting"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status })),
        )
            .into_response()
    }
}

/// The dashboard: one self-contained page (styles and script inline, nothing
/// fetched from elsewhere) that polls the JSON API.
async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything it needs is inline or under /api on this listener.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src data:",
            ),
        ],
        include_str!("dashboard.html"),
    )
        .into_response()
}

async fn metrics(State(ctx): State<Arc<Context>>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&ctx),
    )
        .into_response()
}

/// The subscriptions a connection holds: MQTT's are the router's; the other
/// fronts record theirs (NATS sids, AMQP consumers, STOMP subscriptions).
fn subscription_count(ctx: &Context, c: &Connection) -> u64 {
    match (c.protocol, c.session()) {
        (Protocol::Mqtt, Some(session)) => ctx.router.subscriptions_of(session).len() as u64,
        _ => c.recorded_subscriptions(),
    }
}

use crate::protocols::http::json_error as error;

/// Refuses what a browser sends for another site's page (`Sec-Fetch-Site`):
/// the bus's POSTs publish and its GETs on queues take messages, which such a
/// page could otherwise make a logged-in or loopback browser do. (It could not
/// read the answers: the listener sends no CORS headers.)
async fn same_site_only(request: Request, next: Next) -> Response {
    let foreign = request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| matches!(v.as_bytes(), b"cross-site" | b"same-site"));
    if foreign {
        return error(
            StatusCode::FORBIDDEN,
            "requests from other sites' pages are refused",
        );
    }
    next.run(request).await
}

/// Lets through only users with the `admin` permission (everyone while no
/// permissions are configured).
async fn admin_only(request: Request, next: Next) -> Response {
    let admin = request
        .extensions()
        .get::<Grant>()
        .is_some_and(Grant::is_admin);
    if !admin {
        return error(StatusCode::FORBIDDEN, "the admin permission is needed");
    }
    next.run(request).await
}
