//! The bus's STOMP rows, on RabbitMQ's STOMP destinations as the STOMP front
//! reads them (`/stomp/topic/<key>`, `/stomp/queue/<name>`,
//! `/stomp/amq/queue/<name>`, `/stomp/exchange/<x>/<key>`):
//!
//! - `POST` is SEND (`X-Persistent: true` for a persistent message; a
//!   `/queue/` destination is declared on use, as STOMP's SEND does).
//! - `GET` on `/topic/<key>` subscribes as MQTT's and NATS's GET do (held for an
//!   `X-Client-Id`); on a queue it takes messages as AMQP's GET does (`?count=`).
//! - `DELETE` on `/topic/<key>` ends an `X-Client-Id` subscription.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;

use super::amqp::{declare_on_use, publish_via, take_from_queue};
use super::translate::Dialect;
use super::{bad_request, receive, unsubscribe, Poll};
use crate::access::Grant;
use crate::protocols::stomp::{parse_destination, send_route, Destination};
use crate::server::Context;

fn unknown(destination: &str) -> Response {
    bad_request(format!(
        "{destination:?} is not a destination: /topic/<key>, /queue/<name>, \
         /amq/queue/<name> or /exchange/<name>/<key>"
    ))
}

/// POST: SEND to the destination.
pub(super) async fn send(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    let destination = format!("/{path}");
    let Some((exchange, key, declare)) = parse_destination(&destination).and_then(send_route)
    else {
        return unknown(&destination);
    };
    if declare {
        if let Some(refused) = declare_on_use(&ctx, &grant, key) {
            return refused;
        }
    }
    publish_via(&ctx, &grant, Dialect::Stomp, (exchange, key), request).await
}

/// Both GET queries: a topic's (`wait_ms`, `max`) and a queue's (`count`).
/// (Not two flattened structs: URL query values are text to serde then.)
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Take {
    wait_ms: u64,
    max: Option<usize>,
    count: Option<usize>,
}

/// GET: a topic's messages, or a queue's.
pub(super) async fn take(
    ctx: State<Arc<Context>>,
    grant: Extension<Grant>,
    Path(path): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Take>,
) -> Response {
    let destination = format!("/{path}");
    match parse_destination(&destination) {
        Some(Destination::Topic(key)) => {
            let key = key.to_owned();
            let poll = Poll {
                wait_ms: q.wait_ms,
                max: q.max,
            };
            receive(Dialect::Stomp, ctx, grant, Path(key), headers, Query(poll)).await
        }
        Some(Destination::Queue(name)) => {
            if let Some(refused) = declare_on_use(&ctx, &grant, name) {
                return refused;
            }
            take_from_queue(&ctx, &grant, name, q.count)
        }
        Some(Destination::AmqQueue(name)) => take_from_queue(&ctx, &grant, name, q.count),
        _ => unknown(&destination),
    }
}

/// DELETE: ends a topic subscription.
pub(super) async fn forget(
    ctx: State<Arc<Context>>,
    grant: Extension<Grant>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let destination = format!("/{path}");
    match parse_destination(&destination) {
        Some(Destination::Topic(key)) => {
            let key = key.to_owned();
            unsubscribe(Dialect::Stomp, ctx, grant, Path(key), headers).await
        }
        _ => bad_request("only /topic/ subscriptions are held over HTTP"),
    }
}
