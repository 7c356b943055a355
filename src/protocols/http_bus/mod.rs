//! The HTTP bus interface: plain HTTP requests onto the bus, for programs that
//! speak none of the wire protocols (the table in DESIGN.md's "HTTP surface").
//! Served on the `--http` listener, behind its login; each request is checked
//! against its user's publish and subscribe rules.
//!
//! - `POST /mqtt/<topic>` (`X-QoS` 0/1/2, `X-Retain`) and `POST /nats/<subject>`
//!   publish the body; at-least-once messages are answered after the storage that
//!   covers them.
//! - `GET` subscribes and answers the messages as a JSON array (long poll:
//!   `?wait_ms=`, `?max=`); with `X-Client-Id` the subscription stays between polls
//!   (`subscriptions`), without it it lives for one poll.
//! - `PUT /nats/<subject>` makes a request and answers the reply's body (504 on
//!   timeout, 503 when nobody listens).
//! - `DELETE` ends an `X-Client-Id` subscription.
//! - `/amqp/...`: publish to exchanges, get from queues, declare and delete
//!   exchanges, queues and bindings (`amqp`).
//! - `/stomp/<destination>`: SEND, and GET from a topic or a queue (`stomp`).
//!
//! `translate` turns requests into messages and messages into JSON.

mod amqp;
mod stomp;
mod subscriptions;
mod translate;

pub(crate) use subscriptions::Subscriptions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json};
use serde_json::{json, Value};

use self::subscriptions::{Closer, Full, Held, Key, MAX_SUBSCRIPTIONS};
use self::translate::Dialect;
use super::http::{json_error, read_body, BodyError, BODY_READ_TIMEOUT};
use super::pressure::Pressure;
use crate::access::{Grant, Guard};
use crate::connections::{Counts, Protocol};
use crate::router::{Delivery, Filter, SubOptions, Subject};
use crate::server::Context;

/// How often idle subscriptions are looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a GET waits for messages (`wait_ms`) and a request for its reply
/// (`timeout_ms`).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A request's timeout unless `timeout_ms` says otherwise.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages per GET unless `max` says otherwise, and the most `max` may ask.
const DEFAULT_MAX: usize = 100;
const MAX_MAX: usize = 1000;
const CLIENT_ID: &str = "x-client-id";
/// The longest `X-Client-Id`, and name (topic, subject) a held subscription
/// keeps.
const MAX_CLIENT_ID: usize = 256;
const MAX_HELD_NAME: usize = 4096;

/// The bus's routes (their state is the broker's context).
pub(crate) fn routes() -> axum::Router<Arc<Context>> {
    axum::Router::new()
        .route(
            "/mqtt/{*topic}",
            post(mqtt_publish)
                .get(mqtt_receive)
                .delete(mqtt_unsubscribe),
        )
        .route(
            "/nats/{*subject}",
            post(nats_publish)
                .get(nats_receive)
                .put(request)
                .delete(nats_unsubscribe),
        )
        .route(
            "/stomp/{*destination}",
            post(stomp::send).get(stomp::take).delete(stomp::forget),
        )
        .merge(amqp::routes())
}

type Ctx = State<Arc<Context>>;
type User = Extension<Grant>;
type Name = Path<String>;

async fn mqtt_publish(s: Ctx, g: User, p: Name, r: Request) -> Response {
    publish(Dialect::Mqtt, s, g, p, r).await
}

async fn nats_publish(s: Ctx, g: User, p: Name, r: Request) -> Response {
    publish(Dialect::Nats, s, g, p, r).await
}

async fn mqtt_receive(s: Ctx, g: User, p: Name, h: HeaderMap, q: Query<Poll>) -> Response {
    receive(Dialect::Mqtt, s, g, p, h, q).await
}

async fn nats_receive(s: Ctx, g: User, p: Name, h: HeaderMap, q: Query<Poll>) -> Response {
    receive(Dialect::Nats, s, g, p, h, q).await
}

async fn mqtt_unsubscribe(s: Ctx, g: User, p: Name, h: HeaderMap) -> Response {
    unsubscribe(Dialect::Mqtt, s, g, p, h).await
}

async fn nats_unsubscribe(s: Ctx, g: User, p: Name, h: HeaderMap) -> Response {
    unsubscribe(Dialect::Nats, s, g, p, h).await
}

/// Removes subscriptions not polled within `http_subscription_timeout`, until
/// shutdown.
pub(crate) async fn expire_subscriptions(ctx: Arc<Context>) {
    let timeout = ctx.config.limits.http_subscription_timeout;
    crate::server::every(EXPIRY_INTERVAL, &ctx.shutdown, |now| {
        let n = ctx.http_bus.expire(now.at, timeout, &ctx.router);
        if n > 0 {
            tracing::debug!(expired = n, "http: idle subscriptions removed");
        }
    })
    .await;
}

fn bad_request(text: impl Into<String>) -> Response {
    json_error(StatusCode::BAD_REQUEST, text)
}

fn forbidden(what: &str, name: &str) -> Response {
    json_error(
        StatusCode::FORBIDDEN,
        format!("not allowed to {what} {name:?}"),
    )
}

fn name_error(dialect: Dialect, name: &str) -> Response {
    let kind = match dialect {
        Dialect::Mqtt => "topic",
        Dialect::Nats => "subject",
        Dialect::Amqp | Dialect::Stomp => "routing key",
    };
    bad_request(format!("{name:?} is not a valid {kind}"))
}

/// `X-QoS` (MQTT only; NATS is at most once); `None` if it is not 0, 1 or 2.
fn qos_of(dialect: Dialect, headers: &HeaderMap) -> Option<Delivery> {
    let Some(value) = headers.get("x-qos").filter(|_| dialect == Dialect::Mqtt) else {
        return Some(Delivery::AtMostOnce);
    };
    match value.as_bytes() {
        b"0" => Some(Delivery::AtMostOnce),
        b"1" => Some(Delivery::AtLeastOnce),
        b"2" => Some(Delivery::ExactlyOnce),
        _ => None,
    }
}

/// The body, refused past `max_message_size` before it is read whole; read only
/// while the broker is below its memory watermark.
async fn body(ctx: &Context, request: Request) -> Result<bytes::Bytes, Response> {
    let mut pressure = Pressure::new(ctx.router.memory());
    tokio::select! {
        () = pressure.relieved() => {}
        () = ctx.shutdown.cancelled() => {
            return Err(json_error(StatusCode::SERVICE_UNAVAILABLE, "the broker is shutting down"));
        }
    }
    let limit = ctx.config.limits.max_message_size as usize;
    read_body(request, limit, BODY_READ_TIMEOUT)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than max_message_size ({limit} bytes)"),
            ),
            BodyError::TooSlow => {
                json_error(StatusCode::REQUEST_TIMEOUT, "the body came too slowly")
            }
        })
}

/// POST: publishes the body.
async fn publish(
    dialect: Dialect,
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let Some(subject) = dialect.subject(&name) else {
        return name_error(dialect, &name);
    };
    if !grant.may_publish(&subject) {
        return forbidden("publish to", &name);
    }
    let headers = request.headers().clone();
    let Some(qos) = qos_of(dialect, &headers) else {
        return bad_request("X-QoS is 0, 1 or 2");
    };
    let retain = dialect == Dialect::Mqtt
        && headers
            .get("x-retain")
            .is_some_and(|v| matches!(v.as_bytes(), b"1" | b"true"));
    let payload = match body(&ctx, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut message = match translate::message(dialect, subject, &headers, payload, qos) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    message.retain = retain;
    count_received(&ctx, &message);
    let routed = ctx.router.publish(message, super::now());
    // As for any publisher: an at-least-once message is acknowledged once stored.
    if qos != Delivery::AtMostOnce && routed.ticket.wait().await.is_err() {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the message could not be stored",
        );
    }
    Json(json!({ "matched": routed.matched, "queued": routed.queued })).into_response()
}

/// Counts a message published over HTTP.
fn count_received(ctx: &Context, message: &crate::router::Message) {
    let mut counts = Counts::default();
    counts.received(message.payload.len());
    ctx.clients.count(Protocol::Http, counts);
}

/// `GET`'s query.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Poll {
    wait_ms: u64,
    max: Option<usize>,
}

/// GET: the messages the subscription holds (waiting up to `wait_ms` for the
/// first), as a JSON array.
async fn receive(
    dialect: Dialect,
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(poll): Query<Poll>,
) -> Response {
    let Some(filter) = dialect.filter(&name) else {
        return name_error(dialect, &name);
    };
    let Some(withheld) = grant.may_subscribe(&filter).withheld() else {
        return forbidden("subscribe to", &name);
    };
    let key = match key_of(dialect, &grant, &name, &headers) {
        Ok(key) => key,
        Err(why) => return bad_request(why),
    };
    let generation = ctx.access.generation();
    let make = || {
        let session = ctx.router.open_session();
        let opts = SubOptions {
            qos: Delivery::ExactlyOnce,
            withheld: withheld.clone(),
            ..SubOptions::default()
        };
        ctx.router.subscribe(session.id(), filter.clone(), opts);
        Held::new(
            session,
            Guard::new(grant.clone()),
            generation,
            Instant::now(),
        )
    };
    let (held, new, _closer) = match &key {
        Some(key) => {
            // Made under rules a reload has replaced: made again under the new ones.
            let made = ctx.http_bus.get_or_make(key, make).and_then(|(held, new)| {
                if held.generation == generation {
                    return Ok((held, new));
                }
                ctx.http_bus.remove(key, &ctx.router);
                ctx.http_bus.get_or_make(key, make)
            });
            match made {
                Ok((held, new)) => (held, new, None),
                Err(Full) => {
                    return json_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("{MAX_SUBSCRIPTIONS} HTTP subscriptions are held already"),
                    )
                }
            }
        }
        None => {
            let held = make();
            let closer = Closer {
                router: ctx.router.clone(),
                session: held.session.id(),
            };
            (Arc::new(held), true, Some(closer))
        }
    };
    // A new MQTT subscription gets the retained messages first, as MQTT's does
    // (those its user may receive).
    let mut out: Vec<Value> = Vec::new();
    let mut counts = Counts::default();
    if new && dialect == Dialect::Mqtt {
        let now = super::now();
        let guard = &mut *held.guard.lock().unwrap_or_else(|p| p.into_inner());
        for m in ctx.router.retained(&filter, now) {
            if guard.may_receive(&m.subject) {
                counts.delivered(m.payload.len());
                out.push(translate::message_json(dialect, &m, m.qos, true));
            }
        }
    }
    let max = poll.max.unwrap_or(DEFAULT_MAX).clamp(1, MAX_MAX);
    let wait = Duration::from_millis(poll.wait_ms).min(MAX_WAIT);
    take(&ctx, dialect, &held, max, wait, (&mut out, &mut counts)).await;
    ctx.clients.count(Protocol::Http, counts);
    if key.is_some() {
        held.touch(Instant::now());
    }
    Json(Value::Array(out)).into_response()
}

/// The held subscription a request names by its `X-Client-Id` (`None`: it has
/// none, and its subscription lasts one poll); a client id or a name too long to
/// keep is refused.
fn key_of(
    dialect: Dialect,
    grant: &Grant,
    name: &str,
    headers: &HeaderMap,
) -> Result<Option<Key>, String> {
    let id = match headers.get(CLIENT_ID).map(|v| v.to_str()) {
        None => return Ok(None),
        Some(Ok(id)) if !id.is_empty() && id.len() <= MAX_CLIENT_ID => id,
        Some(_) => return Err(format!("X-Client-Id is text of 1 to {MAX_CLIENT_ID} bytes")),
    };
    if name.len() > MAX_HELD_NAME {
        return Err(format!(
            "a held subscription's name is at most {MAX_HELD_NAME} bytes"
        ));
    }
    Ok(Some(Key {
        user: grant.user().map(str::to_owned),
        client_id: id.to_owned(),
        path: format!("{dialect:?}/{name}"),
    }))
}

/// Moves up to `max` messages from `held` into `out`, waiting up to `wait` for
/// the first.
async fn take(
    ctx: &Context,
    dialect: Dialect,
    held: &Held,
    max: usize,
    wait: Duration,
    (out, counts): (&mut Vec<Value>, &mut Counts),
) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = super::now();
        {
            let guard = &mut *held.guard.lock().unwrap_or_else(|p| p.into_inner());
            while out.len() < max {
                let Some(d) = held.session.pop() else { break };
                if d.message.is_expired(now.unix_ms) || !guard.may_receive(&d.message.subject) {
                    continue;
                }
                counts.delivered(d.message.payload.len());
                out.push(translate::message_json(
                    dialect, &d.message, d.qos, d.retain,
                ));
            }
        }
        if !out.is_empty() || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::select! {
            () = held.session.wait() => {}
            () = tokio::time::sleep_until(deadline) => return,
            () = ctx.shutdown.cancelled() => return,
        }
    }
}

/// DELETE: ends the `X-Client-Id` subscription on the path.
async fn unsubscribe(
    dialect: Dialect,
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let key = match key_of(dialect, &grant, &name, &headers) {
        Ok(Some(key)) => key,
        Ok(None) => return bad_request("DELETE needs the X-Client-Id of the subscription"),
        Err(why) => return bad_request(why),
    };
    if ctx.http_bus.remove(&key, &ctx.router) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let id = &key.client_id;
        json_error(
            StatusCode::NOT_FOUND,
            format!("no subscription of {id:?} on {name:?}"),
        )
    }
}

/// `PUT /nats/...`'s query.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RequestQuery {
    timeout_ms: Option<u64>,
}

/// PUT /nats/<subject>: publishes the body with a reply subject of its own and
/// answers the first reply's body.
async fn request(
    State(ctx): State<Arc<Context>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    Query(q): Query<RequestQuery>,
    request: Request,
) -> Response {
    let Some(subject) = Dialect::Nats.subject(&name) else {
        return name_error(Dialect::Nats, &name);
    };
    if !grant.may_publish(&subject) {
        return forbidden("publish to", &name);
    }
    let headers = request.headers().clone();
    let payload = match body(&ctx, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut message = match translate::message(
        Dialect::Nats,
        subject,
        &headers,
        payload,
        Delivery::AtMostOnce,
    ) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    let inbox = format!("_INBOX.http.{}", ctx.assign_client_id().replace('-', ""));
    let (Ok(reply_to), Ok(filter)) = (Subject::new(&inbox), Filter::nats(&inbox)) else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "no reply subject");
    };
    message.reply_to = Some(reply_to);
    count_received(&ctx, &message);
    // The reply subject is the broker's own, private to this request: no
    // subscribe rule is asked for it (as nats-server's allow_responses lets a
    // service answer whoever asked).
    let session = ctx.router.open_session();
    let _closer = Closer {
        router: ctx.router.clone(),
        session: session.id(),
    };
    ctx.router
        .subscribe(session.id(), filter, SubOptions::default());
    let timeout = q
        .timeout_ms
        .map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_millis)
        .min(MAX_WAIT);
    let routed = ctx.router.publish(message, super::now());
    let answer = if routed.matched == 0 {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no responders on {name:?}"),
        )
    } else {
        let reply = tokio::time::timeout(timeout, async {
            loop {
                if let Some(d) = session.pop() {
                    return Some(d.message);
                }
                tokio::select! {
                    () = session.wait() => {}
                    () = ctx.shutdown.cancelled() => return None,
                }
            }
        });
        match reply.await {
            Ok(Some(m)) => {
                let mut counts = Counts::default();
                counts.delivered(m.payload.len());
                ctx.clients.count(Protocol::Http, counts);
                let kind = m
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into());
                let mut response = Body::from(m.payload.clone()).into_response();
                if let Ok(value) = kind.parse() {
                    response.headers_mut().insert(header::CONTENT_TYPE, value);
                }
                response
            }
            Ok(None) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the broker is shutting down",
            ),
            Err(_) => json_error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("no reply within {timeout:?}"),
            ),
        }
    };
    answer
}
