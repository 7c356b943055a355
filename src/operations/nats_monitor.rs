//! nats-server's monitoring endpoints (`/varz`, `/connz`, `/subsz`, `/jsz`,
//! `/healthz`) in its JSON shapes, on their own listener (`--nats-monitor`, where
//! `nats-server -m 8222` serves them), so that NATS tools and client test suites
//! that read them work. They describe the NATS front: its connections and what
//! they moved; `/jsz` the streams JetStream sees.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use crate::connections::{Connection, Protocol};
use crate::server::Context;
use crate::transport::Duplex;

/// nats-server's default and largest `limit` of `/connz` and `/subsz`.
const DEFAULT_LIMIT: usize = 1024;

/// Serves one connection to the NATS monitoring listener.
pub(crate) async fn serve<S: Duplex>(stream: S, peer: SocketAddr, ctx: Arc<Context>) {
    let routes = axum::Router::new()
        .route("/", get(index))
        .route("/varz", get(varz))
        .route("/connz", get(connz))
        .route("/subsz", get(subsz))
        .route("/subscriptionsz", get(subsz))
        .route("/jsz", get(jsz))
        .route_layer(axum::middleware::from_fn(super::admin_only))
        .with_state(ctx.clone());
    let public = axum::Router::new()
        .route("/healthz", get(super::healthz))
        .with_state(ctx.clone());
    crate::protocols::http::serve(stream, peer, ctx, routes, public).await;
}

async fn index() -> Json<Value> {
    Json(json!({
        "varz": "/varz", "connz": "/connz", "subsz": "/subsz", "jsz": "/jsz", "healthz": "/healthz",
    }))
}

/// RFC 3339 with nanoseconds, as Go's time.Time marshals.
fn timestamp(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Go's duration rounded to seconds, as nats-server prints uptimes: `1d2h3m4s`.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    if days > 0 {
        out.push_str(&format!("{days}d"));
    }
    if days > 0 || hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if days > 0 || hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

fn nats_connections(ctx: &Context) -> Vec<Arc<Connection>> {
    ctx.clients
        .live()
        .into_iter()
        .filter(|c| c.protocol == Protocol::Nats)
        .collect()
}

async fn varz(State(ctx): State<Arc<Context>>) -> Json<Value> {
    let limits = &ctx.config.limits;
    let nats = ctx.clients.totals()[Protocol::Nats as usize].1;
    let live = nats_connections(&ctx);
    let (host, port) = ctx
        .listening_on("nats")
        .map_or((String::new(), 0), |a| (a.ip().to_string(), a.port()));
    let (http_host, http_port) = ctx
        .listening_on("nats-monitor")
        .map_or((String::new(), 0), |a| (a.ip().to_string(), a.port()));
    let subscriptions: u64 = live.iter().map(|c| c.recorded_subscriptions()).sum();
    let now = SystemTime::now();
    Json(json!({
        "server_id": ctx.server_id(),
        "server_name": ctx.server_id(),
        "version": super::NATS_VERSION,
        "proto": 1,
        "host": host,
        "port": port,
        "http_host": http_host,
        "http_port": http_port,
        "max_connections": limits.max_connections,
        "ping_interval": limits.nats_ping_interval.as_nanos() as u64,
        "ping_max": limits.nats_max_pings_out,
        "max_control_line": limits.nats_max_control_line,
        "max_payload": limits.nats_max_payload,
        "max_pending": limits.nats_max_pending,
        "tls_required": ctx.config.nats_tls == crate::config::NatsTls::Required,
        "auth_required": !ctx.access.is_open(),
        "start": timestamp(ctx.started),
        "now": timestamp(now),
        "uptime": uptime(now.duration_since(ctx.started).unwrap_or_default()),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "connections": live.len(),
        "total_connections": nats.opened,
        "routes": 0,
        "remotes": 0,
        "leafnodes": 0,
        "in_msgs": nats.counts.in_msgs,
        "out_msgs": nats.counts.out_msgs,
        "in_bytes": nats.counts.in_bytes,
        "out_bytes": nats.counts.out_bytes,
        "slow_consumers": ctx.nats_slow_consumers(),
        "subscriptions": subscriptions,
        "jetstream": { "config": { "max_memory": 0, "max_storage": 0 } },
    }))
}

/// `/connz`'s query, as nats-server reads it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ConnzQuery {
    offset: usize,
    limit: Option<usize>,
    sort: Option<String>,
    subs: Option<String>,
    state: Option<String>,
    cid: Option<u64>,
}

/// A flag query value as nats-server reads one (`1`, `true`, `detail`).
fn flag(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| matches!(v, "1" | "true" | "detail"))
}

async fn connz(
    State(ctx): State<Arc<Context>>,
    Query(q): Query<ConnzQuery>,
) -> Result<Json<Value>, (axum::http::StatusCode, String)> {
    let bad = |text: String| (axum::http::StatusCode::BAD_REQUEST, text);
    let mut live = nats_connections(&ctx);
    // Closed connections are not kept: `state=closed` lists none.
    match q.state.as_deref() {
        None | Some("open" | "any" | "all") => {}
        Some("closed") => live.clear(),
        Some(other) => return Err(bad(format!("Error parsing connection state: {other}"))),
    }
    if let Some(cid) = q.cid {
        live.retain(|c| c.id == cid);
    }
    let key = |c: &Connection| {
        let n = c.counts();
        match q.sort.as_deref().unwrap_or("cid") {
            "subs" => Some(c.recorded_subscriptions()),
            "msgs_to" => Some(n.out_msgs),
            "msgs_from" => Some(n.in_msgs),
            "bytes_to" => Some(n.out_bytes),
            "bytes_from" => Some(n.in_bytes),
            "uptime" => Some(c.uptime().as_nanos() as u64),
            _ => None,
        }
    };
    match q.sort.as_deref().unwrap_or("cid") {
        // Sorts on what is not kept here (idle time, pending bytes, closed
        // connections, round-trip time) leave connections in cid order.
        "cid" | "start" | "last" | "idle" | "pending" | "stop" | "reason" | "rtt" => {}
        // Each key read once: counters move while the list is sorted.
        "subs" | "msgs_to" | "msgs_from" | "bytes_to" | "bytes_from" | "uptime" => {
            live.sort_by_cached_key(|c| std::cmp::Reverse(key(c)))
        }
        other => return Err(bad(format!("Invalid sorting option: {other}"))),
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(DEFAULT_LIMIT);
    let total = live.len();
    let with_subs = flag(&q.subs);
    let page: Vec<Value> = live
        .iter()
        .skip(q.offset)
        .take(limit)
        .map(|c| connection_json(&ctx, c, with_subs))
        .collect();
    Ok(Json(json!({
        "server_id": ctx.server_id(),
        "now": timestamp(SystemTime::now()),
        "num_connections": page.len(),
        "total": total,
        "offset": q.offset,
        "limit": limit,
        "connections": page,
    })))
}

fn connection_json(ctx: &Context, c: &Connection, with_subs: bool) -> Value {
    let counts = c.counts();
    let who = c.identity();
    let mut v = json!({
        "cid": c.id,
        "kind": "Client",
        "type": "nats",
        "ip": c.peer.ip().to_string(),
        "port": c.peer.port(),
        "start": timestamp(c.since),
        "uptime": uptime(c.uptime()),
        "pending_bytes": 0,
        "in_msgs": counts.in_msgs,
        "out_msgs": counts.out_msgs,
        "in_bytes": counts.in_bytes,
        "out_bytes": counts.out_bytes,
        "subscriptions": c.recorded_subscriptions(),
        "name": who.name.unwrap_or_default(),
        "lang": who.lang.unwrap_or_default(),
        "version": who.version.unwrap_or_default(),
    });
    if let Some(user) = who.user {
        v["authorized_user"] = json!(user);
    }
    if with_subs {
        v["subscriptions_list"] = json!(subjects_of(ctx, c));
    }
    v
}

/// The subjects a connection is subscribed to (each once, whatever its sids).
fn subjects_of(ctx: &Context, c: &Connection) -> Vec<String> {
    c.session()
        .map(|s| ctx.router.subscriptions_of(s))
        .unwrap_or_default()
        .into_iter()
        .map(|(filter, _)| filter.syntax())
        .collect()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct SubszQuery {
    offset: usize,
    limit: Option<usize>,
    subs: Option<String>,
    test: Option<String>,
}

async fn subsz(State(ctx): State<Arc<Context>>, Query(q): Query<SubszQuery>) -> Json<Value> {
    let live = nats_connections(&ctx);
    let mut list = Vec::new();
    for c in &live {
        for (filter, group) in c
            .session()
            .map(|s| ctx.router.subscriptions_of(s))
            .unwrap_or_default()
        {
            let subject = filter.syntax();
            let matches = q
                .test
                .as_deref()
                .is_none_or(|t| crate::router::Subject::new(t).is_ok_and(|s| filter.matches(&s)));
            if matches {
                list.push(json!({ "subject": subject, "qgroup": group, "cid": c.id }));
            }
        }
    }
    let total = list.len();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(DEFAULT_LIMIT);
    let nats_subscriptions: u64 = live.iter().map(|c| c.recorded_subscriptions()).sum();
    let mut v = json!({
        "server_id": ctx.server_id(),
        "now": timestamp(SystemTime::now()),
        "num_subscriptions": nats_subscriptions,
        "num_cache": 0,
        "num_inserts": 0,
        "num_removes": 0,
        "num_matches": 0,
        "cache_hit_rate": 0,
        "max_fanout": 0,
        "avg_fanout": 0,
        "total": total,
        "offset": q.offset,
        "limit": limit,
    });
    if flag(&q.subs) || q.test.is_some() {
        let page: Vec<Value> = list.into_iter().skip(q.offset).take(limit).collect();
        v["subscriptions_list"] = json!(page);
    }
    Json(v)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct JszQuery {
    streams: Option<String>,
    consumers: Option<String>,
}

async fn jsz(State(ctx): State<Arc<Context>>, Query(q): Query<JszQuery>) -> Json<Value> {
    // What JetStream's API sees: not the Kafka partitions or the registry's log.
    let mut streams = ctx.router.streams();
    streams.retain(|s| crate::protocols::nats::jetstream::owned(s));
    let (mut messages, mut bytes, mut consumers) = (0u64, 0u64, 0usize);
    let mut details = Vec::new();
    for s in &streams {
        let st = s.stats();
        messages += st.messages;
        bytes += st.bytes;
        consumers += st.consumers;
        if flag(&q.streams) || flag(&q.consumers) {
            let mut d = json!({
                "name": s.name().as_ref(),
                "state": {
                    "messages": st.messages, "bytes": st.bytes,
                    "first_seq": st.first_seq, "last_seq": st.last_seq,
                    "consumer_count": st.consumers, "num_subjects": st.subjects,
                    "num_deleted": st.deleted,
                },
            });
            if flag(&q.consumers) {
                let list: Vec<Value> = s
                    .consumers()
                    .into_iter()
                    .map(|c| {
                        json!({
                            "stream_name": c.stream, "name": c.config.name,
                            "num_ack_pending": c.state.num_ack_pending,
                            "num_redelivered": c.state.num_redelivered,
                            "num_pending": c.state.num_pending,
                        })
                    })
                    .collect();
                d["consumer_detail"] = json!(list);
            }
            details.push(d);
        }
    }
    let mut accounts = HashMap::new();
    accounts.insert("name", json!("$G"));
    let mut v = json!({
        "server_id": ctx.server_id(),
        "now": timestamp(SystemTime::now()),
        "config": { "max_memory": 0, "max_storage": 0, "store_dir": "" },
        "memory": 0,
        "storage": ctx.router.stream_bytes(),
        "accounts": 1,
        "ha_assets": 0,
        "api": { "total": 0, "errors": 0 },
        "streams": streams.len(),
        "consumers": consumers,
        "messages": messages,
        "bytes": bytes,
    });
    if !details.is_empty() {
        accounts.insert("stream_detail", json!(details));
        v["account_details"] = json!([accounts]);
    }
    Json(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_read_as_nats_server_prints_them() {
        assert_eq!(uptime(Duration::from_secs(0)), "0s");
        assert_eq!(uptime(Duration::from_secs(61)), "1m1s");
        assert_eq!(uptime(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(uptime(Duration::from_secs(86_400 + 5)), "1d0h0m5s");
    }
}
