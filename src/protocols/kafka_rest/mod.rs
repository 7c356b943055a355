//! The Confluent Kafka REST Proxy v2 front: topics, produce, consumer groups and
//! offsets over HTTP, on the router's partitioned streams.
//!
//! The shell serves one HTTP/1.1 connection with hyper (the routes are axum's);
//! `groups` is the consumer-group state machine (sans-I/O), `translate` turns
//! records into messages and back, `topics` maps topics onto streams, `media`
//! negotiates content types, `errors` speaks Confluent's error codes, and `api`
//! holds the handlers.

mod api;
mod errors;
mod groups;
mod media;
mod topics;
mod translate;

pub(crate) use errors::RestError;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{info, warn};

use crate::server::Context;
use crate::transport::Duplex;

/// How often idle consumer instances are looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// What the Kafka REST front keeps across connections.
#[derive(Debug, Default)]
pub(crate) struct State {
    groups: Mutex<groups::Groups>,
}

impl State {
    fn groups(&self) -> MutexGuard<'_, groups::Groups> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves one HTTP connection until it ends or the broker stops.
pub(crate) async fn serve<S: Duplex>(stream: S, peer: SocketAddr, ctx: Arc<Context>) {
    let routes = api::routes(ctx.clone());
    super::http::serve(stream, peer, ctx, routes, axum::Router::new()).await;
}

/// Creates the topics the configuration declares (those that exist are kept as
/// they are).
pub(crate) fn declare_topics(ctx: &Context) {
    let now = crate::protocols::now();
    for t in &ctx.config.kafka_topics {
        let retention = t.retention();
        match topics::find_or_create(
            &ctx.router,
            &t.name,
            t.partitions,
            &t.subjects,
            retention,
            now,
        ) {
            Ok(topic) if topic.partitions.len() != t.partitions as usize => warn!(
                topic = %t.name,
                partitions = topic.partitions.len(),
                configured = t.partitions,
                "kafka-rest: a declared topic exists with another partition count; kept as it is"
            ),
            Ok(_) => {}
            Err(e) => {
                warn!(topic = %t.name, error = %e.message, "kafka-rest: a declared topic was not created")
            }
        }
    }
}

/// Removes consumer instances idle past the configured timeout, until shutdown.
pub(crate) async fn expire_instances(ctx: Arc<Context>) {
    let timeout = ctx.config.limits.kafka_instance_timeout;
    crate::server::every(EXPIRY_INTERVAL, &ctx.shutdown, |now| {
        for (group, instance) in ctx.kafka.groups().expire(timeout, now.at) {
            info!(%group, %instance, "kafka-rest: consumer instance expired");
        }
    })
    .await;
}
