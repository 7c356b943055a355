//! A Confluent-compatible Schema Registry: subjects, versions and ids of Avro,
//! JSON Schema and Protobuf schemas, with compatibility checks, kept in the
//! stream `_schemas`. Served under its API paths on the Kafka REST listener and,
//! if configured, alone on `--schema-registry`; the Kafka REST front uses it to
//! produce and consume records in Confluent's wire format.

mod api;
mod avro_json;
pub(crate) mod schema;
pub(crate) mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub(crate) use api::routes;
pub(crate) use state::Registry;

use crate::server::Context;
use crate::transport::Duplex;

/// Serves one connection of the registry's own listener.
pub(crate) async fn serve<S: Duplex>(stream: S, peer: SocketAddr, ctx: Arc<Context>) {
    let routes = api::routes(ctx.clone(), true);
    super::http::serve(stream, peer, ctx, routes, axum::Router::new()).await;
}
