//! The JSON API under `/api`: an overview, connections, subscriptions, queues,
//! streams and consumers (lists paginated with `?offset=&limit=`, answered as
//! `{"total", "offset", "limit", "items"}`), closing a connection and purging a
//! queue.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Json;
use serde_json::{json, Value};

use super::error;
use crate::connections::{Connection, Protocol};
use crate::server::Context;

/// The default and largest page.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub(super) fn routes() -> axum::Router<Arc<Context>> {
    axum::Router::new()
        .route("/api/overview", get(overview))
        .route("/api/connections", get(connections))
        .route("/api/connections/{id}", delete(close_connection))
        .route("/api/subscriptions", get(subscriptions))
        .route("/api/queues", get(queues))
        .route("/api/queues/{name}/contents", delete(purge_queue))
        .route("/api/streams", get(streams))
        .route("/api/consumers", get(consumers))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Page {
    offset: usize,
    limit: Option<usize>,
}

impl Page {
    /// One page of `items` in the API's list shape.
    fn of(&self, items: impl ExactSizeIterator<Item = Value>) -> Json<Value> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let total = items.len();
        let items: Vec<Value> = items.skip(self.offset).take(limit).collect();
        Json(json!({ "total": total, "offset": self.offset, "limit": limit, "items": items }))
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn overview(State(ctx): State<Arc<Context>>) -> Json<Value> {
    let router = &ctx.router;
    let memory = router.memory();
    let live = ctx.clients.live();
    let rates = ctx.clients.rates();
    let protocols: serde_json::Map<String, Value> = ctx
        .clients
        .totals()
        .into_iter()
        .zip(rates)
        .map(|((protocol, t), (_, r))| {
            let open = live.iter().filter(|c| c.protocol == protocol).count();
            let v = json!({
                "connections": open,
                "connections_opened": t.opened,
                "connections_refused": ctx.refused(protocol),
                "messages_received": t.counts.in_msgs,
                "messages_delivered": t.counts.out_msgs,
                "received_per_sec": r.in_per_sec,
                "delivered_per_sec": r.out_per_sec,
            });
            (protocol.name().to_owned(), v)
        })
        .collect();
    let listeners: serde_json::Map<String, Value> = ctx
        .listening()
        .iter()
        .map(|(name, at)| ((*name).to_owned(), json!(at.to_string())))
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_ms": unix_ms(ctx.started),
        "ready": ctx.is_ready(),
        "protocols": protocols,
        "connections": live.len(),
        "sessions": router.session_count(),
        "subscriptions": router.subscription_count(),
        "retained_messages": router.retained_count(),
        "queues": router.queue_count(),
        "streams": router.streams().len(),
        "memory": {
            "held_bytes": memory.held(),
            "high_watermark_bytes": memory.high_watermark(),
            "blocked": memory.is_blocked(),
        },
        "login_failures": Protocol::ALL
            .into_iter()
            .map(|via| ctx.access.refused_logins(via))
            .sum::<u64>(),
        "listeners": listeners,
    }))
}

fn connection_json(ctx: &Context, c: &Connection) -> Value {
    let who = c.identity();
    let counts = c.counts();
    let (in_rate, out_rate) = c.rates();
    json!({
        "id": c.id,
        "protocol": c.protocol.name(),
        "peer": c.peer.to_string(),
        "user": who.user,
        "client_id": who.name,
        "client": who.lang.map(|lang| match who.version {
            Some(v) => format!("{lang} {v}"),
            None => lang,
        }),
        "since_ms": unix_ms(c.since),
        "messages_received": counts.in_msgs,
        "bytes_received": counts.in_bytes,
        "messages_delivered": counts.out_msgs,
        "bytes_delivered": counts.out_bytes,
        "received_per_sec": in_rate,
        "delivered_per_sec": out_rate,
        "subscriptions": super::subscription_count(ctx, c),
    })
}

async fn connections(State(ctx): State<Arc<Context>>, Query(page): Query<Page>) -> Json<Value> {
    let live = ctx.clients.live();
    page.of(live.iter().map(|c| connection_json(&ctx, c)))
}

/// Closes connection `id` with its protocol's goodbye (as for shutdown).
async fn close_connection(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(id) if ctx.clients.close(id) => StatusCode::NO_CONTENT.into_response(),
        Ok(id) => error(StatusCode::NOT_FOUND, format!("no connection {id}")),
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a connection id"),
        ),
    }
}

async fn subscriptions(State(ctx): State<Arc<Context>>, Query(page): Query<Page>) -> Json<Value> {
    let mut items = Vec::new();
    for c in ctx.clients.live() {
        let Some(session) = c.session() else { continue };
        for (filter, group) in ctx.router.subscriptions_of(session) {
            items.push(json!({
                "connection": c.id,
                "protocol": c.protocol.name(),
                "filter": filter.syntax(),
                "group": group,
            }));
        }
    }
    page.of(items.into_iter())
}

async fn queues(State(ctx): State<Arc<Context>>, Query(page): Query<Page>) -> Json<Value> {
    let queues = ctx.router.queues();
    page.of(queues.iter().map(|q| {
        let stats = q.stats();
        let spec = q.spec();
        json!({
            "name": q.name(),
            "durable": spec.durable,
            "exclusive": spec.exclusive_owner.is_some(),
            "auto_delete": spec.auto_delete,
            "messages_ready": stats.ready,
            "messages_unacked": stats.unacked,
            "ready_bytes": stats.ready_bytes,
            "consumers": stats.consumers,
        })
    }))
}

/// Drops every ready message of a queue (even an exclusive one: the operator
/// may), as RabbitMQ's management API does.
async fn purge_queue(State(ctx): State<Arc<Context>>, Path(name): Path<String>) -> Response {
    let owner = ctx
        .router
        .queues()
        .into_iter()
        .find(|q| q.name() == name)
        .map(|q| q.spec().exclusive_owner.unwrap_or(0));
    let Some(owner) = owner else {
        return error(StatusCode::NOT_FOUND, format!("no queue {name:?}"));
    };
    match ctx.router.purge_queue(&name, owner) {
        Ok(purged) => Json(json!({ "purged": purged })).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn streams(State(ctx): State<Arc<Context>>, Query(page): Query<Page>) -> Json<Value> {
    let streams = ctx.router.streams();
    page.of(streams.iter().map(|s| {
        let st = s.stats();
        json!({
            "name": s.name().as_ref(),
            "messages": st.messages,
            "bytes": st.bytes,
            "first_seq": st.first_seq,
            "last_seq": st.last_seq,
            "consumers": st.consumers,
            "subjects": st.subjects,
        })
    }))
}

async fn consumers(State(ctx): State<Arc<Context>>, Query(page): Query<Page>) -> Json<Value> {
    let mut items = Vec::new();
    for s in ctx.router.streams() {
        for c in s.consumers() {
            items.push(json!({
                "stream": c.stream,
                "name": c.config.name,
                "durable": c.config.durable,
                "num_pending": c.state.num_pending,
                "num_ack_pending": c.state.num_ack_pending,
                "num_redelivered": c.state.num_redelivered,
            }));
        }
    }
    page.of(items.into_iter())
}
