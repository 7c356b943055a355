//! The bus's AMQP rows, on the router's exchanges and queues as an AMQP client
//! would use them (and under the same permissions):
//!
//! - `POST /amqp/exchanges/<x>/<routing key>` publishes (`amq.default` names the
//!   default exchange; `X-Delivery-Mode: 2` makes it persistent, answered after
//!   storage).
//! - `GET /amqp/queues/<q>?count=` is basic.get, acknowledged on return.
//! - `PUT` declares `/amqp/exchanges/<x>?type=&durable=&auto_delete=`,
//!   `/amqp/queues/<q>?durable=&auto_delete=` and binds
//!   `/amqp/bindings/<x>/<q>/<routing key>`; `DELETE` deletes each.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::translate::{self, Dialect};
use super::{bad_request, body, forbidden};
use crate::access::{Grant, Kind};
use crate::connections::{Counts, Protocol};
use crate::protocols::http::json_error;
use crate::router::{
    BindArgs, Delivery, Dest, ExchangeKind, ExchangeSpec, QueueSpec, Subject, VhostError,
};
use crate::server::Context;

/// The name the default exchange ("") goes by in a path, as in RabbitMQ's HTTP
/// API.
const DEFAULT_EXCHANGE: &str = "amq.default";
/// The most messages one GET takes.
const MAX_COUNT: usize = 1000;

pub(super) fn routes() -> axum::Router<Arc<Context>> {
    axum::Router::new()
        .route("/amqp/exchanges/{exchange}/{*routing_key}", post(publish))
        .route(
            "/amqp/exchanges/{exchange}",
            put(declare_exchange).delete(delete_exchange),
        )
        .route(
            "/amqp/queues/{queue}",
            get(get_messages).put(declare_queue).delete(delete_queue),
        )
        .route(
            "/amqp/bindings/{exchange}/{queue}/{*routing_key}",
            put(bind).delete(unbind),
        )
}

fn exchange_name(path: &str) -> &str {
    if path == DEFAULT_EXCHANGE {
        ""
    } else {
        path
    }
}

/// The HTTP answer to a refusal of the router's AMQP model.
fn vhost_error(e: VhostError) -> Response {
    let status = match &e {
        VhostError::NotFound { .. } => StatusCode::NOT_FOUND,
        VhostError::AccessRefused(_) | VhostError::ExclusiveConsumer(_) => StatusCode::FORBIDDEN,
        VhostError::Locked(_)
        | VhostError::Inequivalent { .. }
        | VhostError::InUse { .. }
        | VhostError::NotEmpty(_)
        | VhostError::Precondition(_) => StatusCode::CONFLICT,
        VhostError::TooMany(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_error(status, e.to_string())
}

async fn publish(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path((exchange, routing_key)): Path<(String, String)>,
    request: Request,
) -> Response {
    let exchange = exchange_name(&exchange);
    publish_via(
        &ctx,
        &grant,
        Dialect::Amqp,
        (exchange, &routing_key),
        request,
    )
    .await
}

/// Publishes the body to `exchange` with `routing_key` (AMQP's and STOMP's
/// SEND); a persistent message is answered after storage.
pub(super) async fn publish_via(
    ctx: &Context,
    grant: &Grant,
    dialect: Dialect,
    (exchange, routing_key): (&str, &str),
    request: Request,
) -> Response {
    if !grant.may_publish_via(exchange, routing_key) {
        return forbidden("publish to", &format!("{exchange}/{routing_key}"));
    }
    let Ok(subject) = Subject::new(routing_key) else {
        return bad_request(format!("{routing_key:?} is not a routing key"));
    };
    let headers = request.headers().clone();
    let payload = match body(ctx, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let message =
        match translate::message(dialect, subject, &headers, payload, Delivery::AtMostOnce) {
            Ok(m) => m,
            Err(why) => return bad_request(why),
        };
    let persistent = message.qos != Delivery::AtMostOnce;
    super::count_received(ctx, &message);
    let routed =
        match ctx
            .router
            .publish_to_exchange(exchange, routing_key, message, super::super::now())
        {
            Ok(r) => r,
            Err(e) => return vhost_error(e),
        };
    if persistent && routed.ticket.wait().await.is_err() {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the message could not be stored",
        );
    }
    Json(json!({ "routed": routed.queued > 0, "queued": routed.queued })).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Count {
    count: Option<usize>,
}

async fn get_messages(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    Query(q): Query<Count>,
) -> Response {
    take_from_queue(&ctx, &grant, &name, q.count)
}

/// basic.get, `count` times at most (1 if `None`); what is returned is
/// acknowledged.
pub(super) fn take_from_queue(
    ctx: &Context,
    grant: &Grant,
    name: &str,
    count: Option<usize>,
) -> Response {
    if !grant.may_consume(Kind::Queue, name) {
        return forbidden("consume from", name);
    }
    let queue = match ctx.router.queue(name, 0) {
        Ok(q) => q,
        Err(e) => return vhost_error(e),
    };
    let now = super::super::now();
    let mut out: Vec<Value> = Vec::new();
    let mut counts = Counts::default();
    for _ in 0..count.unwrap_or(1).clamp(1, MAX_COUNT) {
        let Some((entry, _)) = ctx.router.get(&queue, now) else {
            break;
        };
        counts.delivered(entry.message.payload.len());
        out.push(translate::entry_json(&entry));
        ctx.router.ack(&queue, entry, now);
    }
    ctx.clients.count(Protocol::Http, counts);
    Json(Value::Array(out)).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Declare {
    #[serde(rename = "type")]
    kind: Option<String>,
    durable: Option<bool>,
    auto_delete: Option<bool>,
}

async fn declare_exchange(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    Query(q): Query<Declare>,
) -> Response {
    if !grant.may_configure(Kind::Exchange, &name) {
        return forbidden("configure exchange", &name);
    }
    let kind_name = q.kind.as_deref().unwrap_or("direct");
    let Some(kind) = ExchangeKind::parse(kind_name) else {
        return bad_request(format!("unknown exchange type {kind_name:?}"));
    };
    let spec = ExchangeSpec {
        kind,
        durable: q.durable.unwrap_or(true),
        auto_delete: q.auto_delete.unwrap_or(false),
        internal: false,
        alternate_exchange: None,
    };
    match ctx
        .router
        .declare_exchange(exchange_name(&name), spec, false)
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => vhost_error(e),
    }
}

async fn delete_exchange(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
) -> Response {
    if !grant.may_configure(Kind::Exchange, &name) {
        return forbidden("configure exchange", &name);
    }
    match ctx.router.delete_exchange(exchange_name(&name), false) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => vhost_error(e),
    }
}

async fn declare_queue(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    Query(q): Query<Declare>,
) -> Response {
    if !grant.may_configure(Kind::Queue, &name) {
        return forbidden("configure queue", &name);
    }
    let spec = QueueSpec {
        durable: q.durable.unwrap_or(true),
        auto_delete: q.auto_delete.unwrap_or(false),
        ..QueueSpec::default()
    };
    match ctx
        .router
        .declare_queue(&name, spec, false, 0, super::super::now())
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => vhost_error(e),
    }
}

/// STOMP's `/queue/<name>`: the durable queue declared on first use (which
/// needs configure on it), as a STOMP client's SEND or SUBSCRIBE declares it.
pub(super) fn declare_on_use(ctx: &Context, grant: &Grant, name: &str) -> Option<Response> {
    if ctx.router.has_queue(name) {
        return None;
    }
    if !grant.may_configure(Kind::Queue, name) {
        return Some(forbidden("configure queue", name));
    }
    let spec = QueueSpec {
        durable: true,
        ..QueueSpec::default()
    };
    let declared = ctx
        .router
        .declare_queue(name, spec, false, 0, super::super::now());
    declared.err().map(vhost_error)
}

async fn delete_queue(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
) -> Response {
    if !grant.may_configure(Kind::Queue, &name) {
        return forbidden("configure queue", &name);
    }
    match ctx.router.delete_queue(&name, 0, false, false) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => vhost_error(e),
    }
}

/// A binding's permission, as queue.bind's: configure the queue, and bind what
/// the exchange routes by the key.
fn may_bind(grant: &Grant, exchange: &str, queue: &str, key: &str) -> bool {
    grant.may_configure(Kind::Queue, queue) && grant.may_bind(exchange, key)
}

async fn bind(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path((exchange, queue, key)): Path<(String, String, String)>,
) -> Response {
    if !may_bind(&grant, &exchange, &queue, &key) {
        return forbidden("bind", &format!("{exchange}/{queue}/{key}"));
    }
    // Another connection's exclusive queue is locked (405 in AMQP).
    if let Err(e) = ctx.router.queue(&queue, 0) {
        return vhost_error(e);
    }
    let dest = Dest::Queue(queue);
    match ctx
        .router
        .bind(exchange_name(&exchange), dest, &key, BindArgs::default())
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => vhost_error(e),
    }
}

async fn unbind(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path((exchange, queue, key)): Path<(String, String, String)>,
) -> Response {
    if !may_bind(&grant, &exchange, &queue, &key) {
        return forbidden("unbind", &format!("{exchange}/{queue}/{key}"));
    }
    if let Err(e) = ctx.router.queue(&queue, 0) {
        return vhost_error(e);
    }
    let dest = Dest::Queue(queue);
    match ctx
        .router
        .unbind(exchange_name(&exchange), dest, &key, &BindArgs::default())
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => vhost_error(e),
    }
}
