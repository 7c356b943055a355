//! `/metrics`: the broker's state and cumulative counters in the Prometheus
//! (OpenMetrics) text format, read from their owners at scrape time.
//!
//! Labels are bounded: per protocol (four values), and per queue or stream for at
//! most [`MAX_LABELLED`] of each (the deepest), never per subject or client.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::connections::Protocol;
use crate::server::Context;

/// The content type of the OpenMetrics text format.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Queues (and streams) with series of their own; the rest count in the totals
/// only.
const MAX_LABELLED: usize = 1000;

type Labels = Vec<(&'static str, String)>;

fn by_protocol() -> impl Iterator<Item = (Protocol, Labels)> {
    Protocol::ALL
        .into_iter()
        .map(|p| (p, vec![("protocol", p.name().to_owned())]))
}

/// A counter family to fill, registered under `name`.
fn counters(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

fn gauges(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

fn gauge(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(clamp(value));
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, g),
        None => registry.register(name, help, g),
    }
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64, AtomicU64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn clamp(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// The whole exposition.
pub(super) fn render(ctx: &Context) -> String {
    let mut registry = Registry::with_prefix("dwbroker");
    connections(&mut registry, ctx);
    router(&mut registry, ctx);
    queues(&mut registry, ctx);
    streams(&mut registry, ctx);
    if let Some(storage) = ctx.storage_metrics() {
        registry.register_with_unit(
            "storage_commit",
            "How long a group commit took to write (and fsync, with fsync = always)",
            Unit::Seconds,
            storage.latency.clone(),
        );
        registry.register(
            "storage_fsyncs",
            "fsyncs of the data dir",
            storage.fsyncs.clone(),
        );
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

fn connections(registry: &mut Registry, ctx: &Context) {
    let live = gauges(registry, "connections", "Client connections open now");
    let opened = counters(
        registry,
        "connections_opened",
        "Client connections accepted",
    );
    let refused = counters(
        registry,
        "connections_refused",
        "Connections refused at max_connections",
    );
    let received = counters(
        registry,
        "messages_received",
        "Messages received from clients",
    );
    let delivered = counters(
        registry,
        "messages_delivered",
        "Messages delivered to clients",
    );
    let received_bytes = counters(
        registry,
        "received_payload_bytes",
        "Payload bytes received from clients",
    );
    let delivered_bytes = counters(
        registry,
        "delivered_payload_bytes",
        "Payload bytes delivered to clients",
    );
    let totals = ctx.clients.totals();
    let mut open = [0i64; crate::connections::PROTOCOLS];
    for c in ctx.clients.live() {
        open[c.protocol as usize] += 1;
    }
    for ((protocol, labels), (_, t)) in by_protocol().zip(totals) {
        live.get_or_create(&labels).set(open[protocol as usize]);
        opened.get_or_create(&labels).inc_by(t.opened);
        refused.get_or_create(&labels).inc_by(ctx.refused(protocol));
        received.get_or_create(&labels).inc_by(t.counts.in_msgs);
        delivered.get_or_create(&labels).inc_by(t.counts.out_msgs);
        received_bytes
            .get_or_create(&labels)
            .inc_by(t.counts.in_bytes);
        delivered_bytes
            .get_or_create(&labels)
            .inc_by(t.counts.out_bytes);
    }
    let refused_logins = counters(
        registry,
        "login_failures",
        "Logins refused (bad credentials or not authorized)",
    );
    for via in Protocol::ALL {
        let labels = vec![("protocol", via.name().to_owned())];
        refused_logins
            .get_or_create(&labels)
            .inc_by(ctx.access.refused_logins(via));
    }
    let dropped = counters(
        registry,
        "messages_dropped",
        "Messages (copies) discarded: a full subscriber outbox, or expired, over a length \
         limit or rejected in a queue without a dead-letter exchange",
    );
    for (reason, n) in ctx.router.drops().counts() {
        dropped
            .get_or_create(&vec![("reason", reason.as_str().to_owned())])
            .inc_by(n);
    }
    if let Some(tls) = &ctx.tls {
        counter(
            registry,
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls.failed_handshakes(),
        );
    }
    counter(
        registry,
        "slow_consumer_disconnects",
        "NATS clients closed as slow consumers",
        ctx.nats_slow_consumers(),
    );
    let started = ctx
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    gauge(
        registry,
        "start_time",
        "When the broker started (Unix time)",
        Some(Unit::Seconds),
        started.as_secs(),
    );
}

fn router(registry: &mut Registry, ctx: &Context) {
    let router = &ctx.router;
    let memory = router.memory();
    gauge(
        registry,
        "memory_held",
        "Bytes of messages the broker holds (what memory_high_watermark bounds)",
        Some(Unit::Bytes),
        memory.held() as u64,
    );
    gauge(
        registry,
        "memory_high_watermark",
        "Above this, publishers are held back",
        Some(Unit::Bytes),
        memory.high_watermark() as u64,
    );
    gauge(
        registry,
        "memory_blocked",
        "1 while publishers are held back for memory",
        None,
        memory.is_blocked() as u64,
    );
    gauge(
        registry,
        "sessions",
        "Router sessions (connected clients and stored MQTT sessions)",
        None,
        router.session_count() as u64,
    );
    gauge(
        registry,
        "subscriptions",
        "Subject subscriptions (MQTT, NATS, STOMP topics, in-process)",
        None,
        router.subscription_count() as u64,
    );
    gauge(
        registry,
        "retained_messages",
        "MQTT retained messages",
        None,
        router.retained_count() as u64,
    );
}

fn queues(registry: &mut Registry, ctx: &Context) {
    let mut queues: Vec<_> = ctx
        .router
        .queues()
        .into_iter()
        .map(|q| (q.name().to_owned(), q.stats()))
        .collect();
    gauge(
        registry,
        "queues",
        "Queues declared",
        None,
        queues.len() as u64,
    );
    let ready = gauges(
        registry,
        "queue_messages_ready",
        "Messages ready for delivery",
    );
    let unacked = gauges(
        registry,
        "queue_messages_unacked",
        "Messages delivered and not yet acknowledged",
    );
    let consumers = gauges(registry, "queue_consumers", "Consumers of the queue");
    let bytes = gauges(
        registry,
        "queue_ready_bytes",
        "Body bytes of the ready messages",
    );
    queues.sort_by_key(|(_, s)| std::cmp::Reverse(s.ready));
    for (name, stats) in queues.into_iter().take(MAX_LABELLED) {
        let labels = vec![("queue", name)];
        ready.get_or_create(&labels).set(clamp(stats.ready));
        unacked.get_or_create(&labels).set(clamp(stats.unacked));
        consumers.get_or_create(&labels).set(clamp(stats.consumers));
        bytes.get_or_create(&labels).set(clamp(stats.ready_bytes));
    }
}

fn streams(registry: &mut Registry, ctx: &Context) {
    let mut streams: Vec<_> = ctx
        .router
        .streams()
        .into_iter()
        .map(|s| (s.name().to_string(), s.stats()))
        .collect();
    gauge(
        registry,
        "streams",
        "Streams (JetStream, Kafka partitions)",
        None,
        streams.len() as u64,
    );
    gauge(
        registry,
        "stream_bytes",
        "Bytes held by all streams",
        Some(Unit::Bytes),
        ctx.router.stream_bytes(),
    );
    let messages = gauges(registry, "stream_messages", "Messages held by the stream");
    let bytes = gauges(registry, "stream_message_bytes", "Bytes held by the stream");
    let consumers = gauges(registry, "stream_consumers", "Consumers of the stream");
    streams.sort_by_key(|(_, s)| std::cmp::Reverse(s.bytes));
    for (name, stats) in streams.into_iter().take(MAX_LABELLED) {
        let labels = vec![("stream", name)];
        messages.get_or_create(&labels).set(clamp(stats.messages));
        bytes.get_or_create(&labels).set(clamp(stats.bytes));
        consumers.get_or_create(&labels).set(clamp(stats.consumers));
    }
}
