//! The v2 resources: one handler per route, each checking media types, reading a
//! bounded body and answering in Confluent's shapes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router as Routes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::RestError;
use super::groups::{self, InstanceConfig, Reset, TopicPartition};
use super::media::{self, Format};
use super::topics::{self, RouterTopics};
use super::translate::{self, ProduceRequest};
use crate::access::{Grant, Kind};
use crate::config::Retention;
use crate::protocols::http::BODY_READ_TIMEOUT;
use crate::protocols::pressure::Pressure;
use crate::protocols::schema_registry::state::Candidate;
use crate::router::Subject;
use crate::server::Context;

type Ctx = State<Arc<Context>>;
type Answer = Result<Response, RestError>;

/// The most records one records request returns from one partition per pass
/// (the proxy's max.poll.records is 30; larger passes cost fewer wake-ups).
const RECORDS_PER_PASS: usize = 1000;
/// The most bytes one records request returns (the proxy's
/// consumer.request.max.bytes).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// How long a records request waits by default (consumer.request.timeout.ms).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);

pub(super) fn routes(ctx: Arc<Context>) -> Routes {
    let instance = "/consumers/{group}/instances/{instance}";
    Routes::new()
        .route("/", get(root).post(root))
        .route("/topics", get(list_topics))
        .route("/topics/{topic}", get(topic).post(produce_to_topic))
        .route("/topics/{topic}/partitions", get(partitions))
        .route(
            "/topics/{topic}/partitions/{partition}",
            get(partition).post(produce_to_partition),
        )
        .route(
            "/topics/{topic}/partitions/{partition}/offsets",
            get(partition_offsets),
        )
        .route("/brokers", get(brokers))
        .route("/consumers/{group}", post(create_instance))
        .route(instance, axum::routing::delete(delete_instance))
        .route(
            &format!("{instance}/subscription"),
            post(subscribe).get(subscription).delete(unsubscribe),
        )
        .route(
            &format!("{instance}/assignments"),
            post(assign).get(assignments),
        )
        .route(&format!("{instance}/positions"), post(seek))
        .route(
            &format!("{instance}/positions/beginning"),
            post(seek_beginning),
        )
        .route(&format!("{instance}/positions/end"), post(seek_end))
        .route(&format!("{instance}/records"), get(records))
        .route(&format!("{instance}/offsets"), post(commit).get(committed))
        .fallback(|| async { RestError::not_found() })
        .with_state(ctx.clone())
        .merge(crate::protocols::schema_registry::routes(ctx, false))
}

/// A JSON answer of the proxy's own type (or plain JSON, if that is all the
/// client accepts).
fn answer(kind: &'static str, status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, kind)], body.to_string()).into_response()
}

fn ok(headers: &HeaderMap, body: &Value) -> Answer {
    Ok(answer(media::accept_v2(headers)?, StatusCode::OK, body))
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The request body, refused with 413 past the configured limit before more
/// than the limit is read (a declared length over it is refused unread), and
/// with 408 if it does not arrive in time.
async fn body(ctx: &Context, request: Request) -> Result<Bytes, RestError> {
    let limit = ctx.config.limits.http_max_body;
    crate::protocols::http::read_body(request, limit, BODY_READ_TIMEOUT)
        .await
        .map_err(|e| RestError::body(e, limit))
}

/// A JSON body of type `T`, or `None` when there is none.
fn optional_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, RestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match translate::parse_body::<Value>(bytes)? {
        Value::Null => Ok(None),
        value => serde_json::from_value(value)
            .map(Some)
            .map_err(RestError::bad_request),
    }
}

/// A consumer request's JSON body of a v2 type, which must be there.
async fn required_json<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    request: Request,
) -> Result<T, RestError> {
    media::check_v2_body(request.headers())?;
    let bytes = body(ctx, request).await?;
    required_body(&bytes)
}

/// A JSON body that must be there (`@NotNull` in the proxy: 422 without it).
fn required_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RestError> {
    optional_body(bytes)?
        .ok_or_else(|| RestError::unprocessable("Request body is empty. Data is required."))
}

fn partition_number(text: &str) -> Result<u32, RestError> {
    text.parse::<u32>().map_err(|_| RestError::not_found())
}

async fn root(headers: HeaderMap) -> Answer {
    ok(&headers, &json!({}))
}

async fn list_topics(State(ctx): Ctx, headers: HeaderMap) -> Answer {
    media::accept_v2(&headers)?;
    ok(&headers, &json!(topics::names(&ctx.router)))
}

async fn topic(State(ctx): Ctx, Path(name): Path<String>, headers: HeaderMap) -> Answer {
    media::accept_v2(&headers)?;
    let topic = topics::find(&ctx.router, &name).ok_or_else(RestError::topic_not_found)?;
    ok(&headers, &topic.to_json())
}

/// The proxy answers the partition resources of a missing topic with a plain 404.
fn topic_of_partitions(ctx: &Context, name: &str) -> Result<topics::Topic, RestError> {
    topics::find(&ctx.router, name).ok_or_else(|| {
        RestError::new(
            StatusCode::NOT_FOUND,
            404,
            format!("Topic {name} cannot be found."),
        )
    })
}

async fn partitions(State(ctx): Ctx, Path(name): Path<String>, headers: HeaderMap) -> Answer {
    media::accept_v2(&headers)?;
    let topic = topic_of_partitions(&ctx, &name)?;
    let all: Vec<Value> = (0..topic.partitions.len() as u32)
        .map(topics::partition_json)
        .collect();
    ok(&headers, &json!(all))
}

async fn partition(
    State(ctx): Ctx,
    Path((name, p)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    media::accept_v2(&headers)?;
    let topic = topic_of_partitions(&ctx, &name)?;
    let p = partition_number(&p)?;
    topic
        .partition(p)
        .ok_or_else(RestError::partition_not_found)?;
    ok(&headers, &topics::partition_json(p))
}

async fn partition_offsets(
    State(ctx): Ctx,
    Path((name, p)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    media::accept_v2(&headers)?;
    let topic = topic_of_partitions(&ctx, &name)?;
    let p = partition_number(&p)?;
    let stream = topic
        .partition(p)
        .ok_or_else(RestError::partition_not_found)?;
    let b = topics::bounds(stream);
    ok(
        &headers,
        &json!({ "beginning_offset": b.beginning, "end_offset": b.end }),
    )
}

async fn brokers(headers: HeaderMap) -> Answer {
    ok(&headers, &json!({ "brokers": [0] }))
}

async fn produce_to_topic(
    State(ctx): Ctx,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    request: Request,
) -> Answer {
    may_produce(&ctx, &grant, &name)?;
    produce(&ctx, &name, None, request).await
}

async fn produce_to_partition(
    State(ctx): Ctx,
    Extension(grant): Extension<Grant>,
    Path((name, p)): Path<(String, String)>,
    request: Request,
) -> Answer {
    may_produce(&ctx, &grant, &name)?;
    let p = partition_number(&p)?;
    produce(&ctx, &name, Some(p), request).await
}

fn not_authorized(topics: &[&str]) -> RestError {
    RestError::forbidden(format!(
        "Not authorized to access topics: [{}]",
        topics.join(", ")
    ))
}

/// Records produced to topic `t` are messages on subject `t`: producing needs
/// the publish rule on it, and a produce that creates the topic (as Kafka's
/// auto.create.topics.enable) also configure on `stream:<t>`.
fn may_produce(ctx: &Context, grant: &Grant, name: &str) -> Result<(), RestError> {
    if grant.unrestricted() {
        return Ok(());
    }
    // A name that is no subject is refused as a bad topic name further on.
    let Ok(subject) = Subject::new(name) else {
        return Ok(());
    };
    let creates = topics::find(&ctx.router, name).is_none();
    if !grant.may_publish(&subject) || (creates && !grant.may_configure(Kind::Stream, name)) {
        return Err(not_authorized(&[name]));
    }
    Ok(())
}

/// Reading topic `t` needs the subscribe rule on `stream:<t>`, as reading a
/// JetStream stream does.
fn may_read(grant: &Grant, names: &[&str]) -> Result<(), RestError> {
    let refused: Vec<&str> = names
        .iter()
        .copied()
        .filter(|t| !grant.may_consume(Kind::Stream, t))
        .collect();
    match refused.is_empty() {
        true => Ok(()),
        false => Err(not_authorized(&refused)),
    }
}

/// One record's answer in a produce response.
fn offset_entry(
    partition: Option<u32>,
    offset: Option<u64>,
    error: Option<(u32, String)>,
) -> Value {
    let (code, message) = error.map_or((None, None), |(c, m)| (Some(c), Some(m)));
    json!({ "partition": partition, "offset": offset, "error_code": code, "error": message })
}

/// The schema a produce request names for its keys or values (`part`): by id, or
/// by its text, registered under `<topic>-<part>` as Confluent's default subject
/// name strategy does.
async fn schema_for(
    ctx: &Context,
    topic: &str,
    part: &str,
    format: Format,
    text: Option<String>,
    id: Option<u32>,
) -> Result<Option<translate::WithSchema>, RestError> {
    let Some(kind) = format.schema_type() else {
        return Ok(None);
    };
    let id = match (id, text) {
        (Some(id), _) => id,
        (None, Some(text)) => {
            let candidate = Candidate {
                kind,
                text,
                references: Vec::new(),
            };
            let (id, ticket) = ctx
                .registry
                .register(&format!("{topic}-{part}"), candidate)
                .map_err(|e| match e.code {
                    42201 => RestError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        42205,
                        format!("Invalid schema: {}", e.message),
                    ),
                    _ => e,
                })?;
            ticket.wait().await.map_err(|f| RestError::storage(f.0))?;
            // Registered by another request and maybe not stored yet: wait for it too.
            ctx.router
                .storage_barrier()
                .wait()
                .await
                .map_err(|f| RestError::storage(f.0))?;
            id
        }
        (None, None) => return Ok(None),
    };
    let schema = ctx.registry.schema(id)?;
    if schema.kind != kind {
        return Err(RestError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42205,
            format!(
                "Invalid schema: schema {id} is {}, not {}",
                schema.kind.name(),
                kind.name()
            ),
        ));
    }
    Ok(Some((id, schema.parsed.clone())))
}

/// Produces every record of the request; answers after the fsync that covers them.
async fn produce(
    ctx: &Context,
    name: &str,
    path_partition: Option<u32>,
    request: Request,
) -> Answer {
    let format = media::produce_format(request.headers())?;
    let kind = media::accept_v2(request.headers())?;
    // Under memory pressure a producer's body is not read (it waits in the
    // socket) until the router is below its watermark again.
    let mut pressure = Pressure::new(ctx.router.memory());
    tokio::select! {
        () = pressure.relieved() => {}
        () = ctx.shutdown.cancelled() => return Err(RestError::storage("the broker is shutting down")),
    }
    let bytes = body(ctx, request).await?;
    let req: ProduceRequest = translate::parse_body(&bytes)?;
    let records = req
        .records
        .filter(|r| !r.is_empty())
        .ok_or_else(|| RestError::unprocessable("records may not be empty"))?;
    let key_schema =
        schema_for(ctx, name, "key", format, req.key_schema, req.key_schema_id).await?;
    let value_schema = schema_for(
        ctx,
        name,
        "value",
        format,
        req.value_schema,
        req.value_schema_id,
    )
    .await?;
    if format.has_schema() {
        if key_schema.is_none() && records.iter().any(|r| !r.key.is_null()) {
            return Err(RestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42201,
                "Request includes keys but does not include key schema",
            ));
        }
        if value_schema.is_none() && records.iter().any(|r| !r.value.is_null()) {
            return Err(RestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42202,
                "Request includes values but does not include value schema",
            ));
        }
    }
    // Every record is checked before any is written: a bad one fails the request.
    let mut decoded = Vec::with_capacity(records.len());
    for r in &records {
        let key = translate::embedded_bytes(format, &r.key, key_schema.as_ref())?;
        let value = translate::embedded_bytes(format, &r.value, value_schema.as_ref())?;
        let partition = match r.partition {
            Some(p) => Some(u32::try_from(p).unwrap_or(u32::MAX)),
            None => path_partition,
        };
        decoded.push((key, value, partition));
    }
    let now = crate::protocols::now();
    let partitions = ctx.config.kafka_partitions;
    let topic = topics::find_or_create(
        &ctx.router,
        name,
        partitions,
        &[],
        Retention::default(),
        now,
    )?;
    let subject = Subject::new(name).map_err(|_| RestError::topic_not_found())?;
    let count = topic.partitions.len() as u32;
    let mut ticket = crate::router::Ticket::default();
    let mut offsets = Vec::with_capacity(decoded.len());
    for (key, value, partition) in decoded {
        if let Some(p) = partition.filter(|p| *p >= count) {
            let why = format!("Partition {p} of topic {name} with partition count {count} is not present in metadata.");
            offsets.push(offset_entry(None, None, Some((50003, why))));
            continue;
        }
        let msg = translate::record_message(&subject, format, key, value, partition, now);
        let routed = ctx.router.publish(msg, now);
        ticket.merge(routed.ticket);
        let mine = routed.appended.iter().find_map(|a| {
            let p = topic
                .partitions
                .iter()
                .position(|s| *s.name() == a.stream)?;
            Some((p as u32, &a.outcome))
        });
        offsets.push(match mine {
            Some((p, Ok(s))) => offset_entry(Some(p), Some(s.seq - 1), None),
            Some((_, Err(refused))) => offset_entry(
                None,
                None,
                Some((50002, format!("Kafka error: {refused:?}"))),
            ),
            None => offset_entry(
                None,
                None,
                Some((
                    50002,
                    format!("Kafka error: topic {name} did not take the record"),
                )),
            ),
        });
    }
    ticket.wait().await.map_err(|f| RestError::storage(f.0))?;
    let body = json!({
        "offsets": offsets,
        "key_schema_id": key_schema.map(|s| s.0),
        "value_schema_id": value_schema.map(|s| s.0),
    });
    Ok(answer(kind, StatusCode::OK, &body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInstance {
    name: Option<String>,
    id: Option<String>,
    format: Option<String>,
    #[serde(rename = "auto.offset.reset")]
    auto_offset_reset: Option<String>,
    #[serde(rename = "auto.commit.enable")]
    auto_commit_enable: Option<Value>,
    #[serde(rename = "fetch.min.bytes", alias = "responseMinBytes")]
    fetch_min_bytes: Option<Value>,
    #[serde(rename = "consumer.request.timeout.ms", alias = "requestWaitMs")]
    request_timeout_ms: Option<Value>,
}

/// A setting given as a JSON number or as text (the proxy takes both).
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn instance_config(req: &CreateInstance) -> Result<InstanceConfig, RestError> {
    let format = match &req.format {
        None => Format::Binary,
        Some(f) => {
            Format::named(f).ok_or_else(|| RestError::unprocessable("Invalid format type."))?
        }
    };
    let reset = match &req.auto_offset_reset {
        None => Reset::default(),
        Some(r) => Reset::parse(r).ok_or_else(|| {
            RestError::bad_consumer_config(format!(
                "Invalid value {r} for configuration auto.offset.reset: String must be one of: latest, earliest, none"
            ))
        })?,
    };
    let auto_commit = match &req.auto_commit_enable {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(RestError::bad_consumer_config(format!(
                "Invalid value {other} for configuration enable.auto.commit: Expected value to be either true or false"
            )))
        }
    };
    let fetch_min_bytes = match &req.fetch_min_bytes {
        None => None,
        Some(v) => match number(v) {
            Some(n) if (-1..=10_000_000).contains(&n) => u64::try_from(n).ok().filter(|n| *n > 0),
            _ => {
                return Err(RestError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    40001,
                    format!("Invalid consumer configuration. It does not abide by the constraints: fetch.min.bytes={v}"),
                ))
            }
        },
    };
    let request_timeout = match &req.request_timeout_ms {
        None => DEFAULT_REQUEST_TIMEOUT,
        Some(v) => number(v)
            .and_then(|n| u64::try_from(n).ok())
            .map(Duration::from_millis)
            .ok_or_else(|| {
                RestError::bad_consumer_config(format!("consumer.request.timeout.ms={v}"))
            })?,
    };
    Ok(InstanceConfig {
        format,
        reset,
        auto_commit,
        fetch_min_bytes,
        request_timeout,
    })
}

async fn create_instance(State(ctx): Ctx, Path(group): Path<String>, request: Request) -> Answer {
    media::check_v2_body(request.headers())?;
    let kind = media::accept_v2(request.headers())?;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let bytes = body(&ctx, request).await?;
    let req: CreateInstance = optional_body(&bytes)?.unwrap_or_default();
    let config = instance_config(&req)?;
    let name = req
        .id
        .clone()
        .or(req.name.clone())
        .unwrap_or_else(|| format!("rest-consumer-{}", ctx.assign_client_id()));
    ctx.kafka
        .groups()
        .create(&group, &name, config, Instant::now())?;
    let base = match host {
        Some(h) => format!("http://{h}"),
        None => String::new(),
    };
    let body = json!({
        "instance_id": name,
        "base_uri": format!("{base}/consumers/{group}/instances/{name}"),
    });
    Ok(answer(kind, StatusCode::OK, &body))
}

async fn delete_instance(
    State(ctx): Ctx,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    media::check_v2_body(&headers)?;
    ctx.kafka.groups().delete(&group, &instance)?;
    no_content()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeRequest {
    topics: Option<Vec<String>>,
    topic_pattern: Option<String>,
}

async fn subscribe(
    State(ctx): Ctx,
    Extension(grant): Extension<Grant>,
    Path((group, instance)): Path<(String, String)>,
    request: Request,
) -> Answer {
    let req: SubscribeRequest = required_json(&ctx, request).await?;
    if let Some(topics) = &req.topics {
        may_read(
            &grant,
            &topics.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
    }
    let now = Instant::now();
    let pattern = match (&req.topics, &req.topic_pattern) {
        (None, Some(p)) => Some(groups::pattern(p)?),
        _ => None,
    };
    let mut groups = ctx.kafka.groups();
    match (req.topics, pattern) {
        (Some(topics), _) => groups.subscribe(&group, &instance, topics, now)?,
        (None, Some(pattern)) => groups.subscribe_pattern(&group, &instance, pattern, now)?,
        (None, None) => {
            groups.config(&group, &instance, now)?;
        }
    }
    no_content()
}

async fn subscription(
    State(ctx): Ctx,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let topics = RouterTopics::of(&ctx, &group);
    let names = ctx
        .kafka
        .groups()
        .subscription(&group, &instance, &topics, Instant::now())?;
    ok(&headers, &json!({ "topics": names }))
}

async fn unsubscribe(State(ctx): Ctx, Path((group, instance)): Path<(String, String)>) -> Answer {
    ctx.kafka
        .groups()
        .unsubscribe(&group, &instance, Instant::now())?;
    no_content()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionRef {
    topic: String,
    partition: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionsRequest {
    partitions: Vec<PartitionRef>,
}

impl PartitionsRequest {
    fn into_list(self) -> Vec<TopicPartition> {
        self.partitions
            .into_iter()
            .map(|p| TopicPartition {
                topic: p.topic,
                partition: p.partition,
            })
            .collect()
    }
}

fn partitions_json(tps: &[TopicPartition]) -> Value {
    json!(tps
        .iter()
        .map(|tp| json!({ "topic": tp.topic, "partition": tp.partition }))
        .collect::<Vec<_>>())
}

async fn assign(
    State(ctx): Ctx,
    Extension(grant): Extension<Grant>,
    Path((group, instance)): Path<(String, String)>,
    request: Request,
) -> Answer {
    let req: PartitionsRequest = required_json(&ctx, request).await?;
    let topics: Vec<&str> = req.partitions.iter().map(|p| p.topic.as_str()).collect();
    may_read(&grant, &topics)?;
    ctx.kafka
        .groups()
        .assign(&group, &instance, req.into_list(), Instant::now())?;
    no_content()
}

async fn assignments(
    State(ctx): Ctx,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let topics = RouterTopics::of(&ctx, &group);
    let tps = ctx
        .kafka
        .groups()
        .assignment(&group, &instance, &topics, Instant::now())?;
    ok(&headers, &json!({ "partitions": partitions_json(&tps) }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffsetRef {
    topic: String,
    partition: u32,
    offset: u64,
    /// Kafka's commit metadata: accepted, not kept.
    #[serde(default, rename = "metadata")]
    _metadata: Option<String>,
}

impl OffsetRef {
    /// The partition and the offset, which Kafka keeps as a non-negative i64.
    fn checked(self) -> Result<(TopicPartition, u64), RestError> {
        if self.offset > i64::MAX as u64 {
            return Err(RestError::unprocessable(format!(
                "offset {} is out of range",
                self.offset
            )));
        }
        let tp = TopicPartition {
            topic: self.topic,
            partition: self.partition,
        };
        Ok((tp, self.offset))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffsetsRequest {
    #[serde(default)]
    offsets: Vec<OffsetRef>,
}

/// A seek to the first record at or after a time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampRef {
    topic: String,
    partition: u32,
    /// An ISO 8601 instant (RFC 3339).
    timestamp: String,
    /// Kafka's metadata: accepted, not kept.
    #[serde(default, rename = "metadata")]
    _metadata: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionsRequest {
    #[serde(default)]
    offsets: Vec<OffsetRef>,
    #[serde(default)]
    timestamps: Vec<TimestampRef>,
}

async fn seek(
    State(ctx): Ctx,
    Path((group, instance)): Path<(String, String)>,
    request: Request,
) -> Answer {
    let req: PositionsRequest = required_json(&ctx, request).await?;
    let topics = RouterTopics::of(&ctx, &group);
    let now = Instant::now();
    let mut offsets = req
        .offsets
        .into_iter()
        .map(OffsetRef::checked)
        .collect::<Result<Vec<_>, _>>()?;
    // A time seeks to the first record stored at or after it; past the last, to the end.
    for t in req.timestamps {
        let ns = crate::protocols::parse_time(&t.timestamp).ok_or_else(|| {
            RestError::unprocessable(format!(
                "timestamp {} is not an ISO 8601 instant",
                t.timestamp
            ))
        })?;
        let tp = TopicPartition {
            topic: t.topic,
            partition: t.partition,
        };
        let stream = topics
            .stream(&tp)
            .ok_or_else(RestError::partition_not_found)?;
        let offset = match stream.first_at_or_after(ns) {
            Some(seq) => seq - 1,
            None => topics::bounds(&stream).end,
        };
        offsets.push((tp, offset));
    }
    let mut groups = ctx.kafka.groups();
    for (tp, offset) in offsets {
        groups.seek(&group, &instance, &tp, offset, &topics, now)?;
    }
    no_content()
}

async fn seek_beginning(state: Ctx, path: Path<(String, String)>, request: Request) -> Answer {
    seek_to(state, path, request, true).await
}

async fn seek_end(state: Ctx, path: Path<(String, String)>, request: Request) -> Answer {
    seek_to(state, path, request, false).await
}

async fn seek_to(
    State(ctx): Ctx,
    Path((group, instance)): Path<(String, String)>,
    request: Request,
    beginning: bool,
) -> Answer {
    let req: PartitionsRequest = required_json(&ctx, request).await?;
    let topics = RouterTopics::of(&ctx, &group);
    let now = Instant::now();
    let mut groups = ctx.kafka.groups();
    for tp in req.into_list() {
        let stream = topics
            .stream(&tp)
            .ok_or_else(RestError::partition_not_found)?;
        let b = topics::bounds(&stream);
        let to = if beginning { b.beginning } else { b.end };
        groups.seek(&group, &instance, &tp, to, &topics, now)?;
    }
    no_content()
}

#[derive(Debug, Deserialize)]
struct RecordsQuery {
    timeout: Option<i64>,
    max_bytes: Option<i64>,
}

/// The longest a records request waits for records (a consumer may ask for more
/// with consumer.request.timeout.ms).
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// One pass over the instance's partitions: the records after its positions, up
/// to `budget` bytes. The positions are read under the groups lock, the records
/// read and rendered without it, and the positions move afterwards only where
/// nothing moved them meanwhile (a seek wins over a read in flight).
/// Every topic read must be readable by the requester's `grant` (an instance is
/// shared by whoever knows its URL, and a pattern subscription picks up topics
/// as they appear).
fn fetch_pass(
    ctx: &Context,
    (group, instance): (&str, &str),
    grant: &Grant,
    format: Format,
    budget: u64,
) -> Result<(Vec<Value>, u64), RestError> {
    let topics = RouterTopics::of(ctx, group);
    let positions = ctx
        .kafka
        .groups()
        .positions(group, instance, &topics, Instant::now())?;
    if !grant.unrestricted() {
        let mut names: Vec<&str> = positions.iter().map(|(tp, _)| tp.topic.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        may_read(grant, &names)?;
    }
    let mut records = Vec::new();
    let mut bytes = 0u64;
    let mut moved = Vec::new();
    for (tp, next) in positions {
        if bytes >= budget {
            break;
        }
        let Some(stream) = topics.stream(&tp) else {
            continue;
        };
        let read = stream.read(next.saturating_add(1), RECORDS_PER_PASS, budget - bytes);
        let Some(last) = read.last() else { continue };
        let mut rendered = Vec::with_capacity(read.len());
        let mut size = 0;
        for m in &read {
            size += translate::record_size(m);
            rendered.push(translate::record_json(
                &tp.topic,
                tp.partition,
                m,
                format,
                &ctx.registry,
            )?);
        }
        moved.push((tp, next, last.seq, rendered, size));
    }
    let mut groups = ctx.kafka.groups();
    for (tp, from, to, rendered, size) in moved {
        if groups.advance_from(group, instance, &tp, from, to, Instant::now())? {
            records.extend(rendered);
            bytes += size;
        }
    }
    Ok((records, bytes))
}

async fn records(
    State(ctx): Ctx,
    Extension(grant): Extension<Grant>,
    Path((group, instance)): Path<(String, String)>,
    Query(q): Query<RecordsQuery>,
    headers: HeaderMap,
) -> Answer {
    let asked = media::records_format(&headers)?;
    let start = Instant::now();
    let config = ctx.kafka.groups().config(&group, &instance, start)?;
    if !config.format.reads_as(asked) {
        return Err(RestError::format_mismatch());
    }
    if config.auto_commit {
        // As Kafka's poll does: what the previous requests returned is committed
        // now, so a response lost on its way does not skip records.
        let consumed = ctx.kafka.groups().consumed(&group, &instance, start)?;
        store_commits(&ctx, &group, consumed)?;
    }
    let wait = match q
        .timeout
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
    {
        Some(ms) => Duration::from_millis(ms).min(config.request_timeout),
        None => config.request_timeout,
    }
    .min(MAX_REQUEST_TIMEOUT);
    let max_bytes = q
        .max_bytes
        .and_then(|b| u64::try_from(b).ok())
        .filter(|b| *b > 0)
        .map_or(MAX_RESPONSE_BYTES, |b| b.min(MAX_RESPONSE_BYTES));
    let deadline = tokio::time::Instant::from_std(start + wait);
    let mut changes = ctx.router.stream_changes();
    let mut out = Vec::new();
    let mut bytes = 0u64;
    loop {
        changes.borrow_and_update();
        let (records, read) = fetch_pass(
            &ctx,
            (&group, &instance),
            &grant,
            config.format,
            max_bytes - bytes,
        )?;
        out.extend(records);
        bytes += read;
        // The proxy waits for fetch.min.bytes or the timeout; without a minimum,
        // the first records there are go out at once instead of after the timeout.
        let enough = match config.fetch_min_bytes {
            Some(min) => bytes >= min,
            None => !out.is_empty(),
        };
        if enough || bytes >= max_bytes {
            break;
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(deadline) => break,
            _ = ctx.shutdown.cancelled() => break,
        }
    }
    let kind = config.format.media_type();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, kind)],
        Value::Array(out).to_string(),
    )
        .into_response())
}

/// Writes the commits (next offsets) of `group`.
fn store_commits(
    ctx: &Context,
    group: &str,
    commits: Vec<(TopicPartition, u64)>,
) -> Result<(), RestError> {
    let topics = RouterTopics::of(ctx, group);
    let now = crate::protocols::now();
    for (tp, next) in commits {
        let stream = topics
            .stream(&tp)
            .ok_or_else(RestError::partition_not_found)?;
        topics::commit(&stream, group, next, now)?;
    }
    Ok(())
}

async fn commit(
    State(ctx): Ctx,
    Path((group, instance)): Path<(String, String)>,
    request: Request,
) -> Answer {
    media::check_v2_body(request.headers())?;
    let kind = media::accept_v2(request.headers())?;
    let bytes = body(&ctx, request).await?;
    let commits = match optional_body::<OffsetsRequest>(&bytes)? {
        None => ctx
            .kafka
            .groups()
            .consumed(&group, &instance, Instant::now())?,
        Some(req) => {
            ctx.kafka
                .groups()
                .config(&group, &instance, Instant::now())?;
            // The proxy commits the offset after the one named.
            req.offsets
                .into_iter()
                .map(|o| o.checked().map(|(tp, offset)| (tp, offset + 1)))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    store_commits(&ctx, &group, commits)?;
    ctx.router
        .storage_barrier()
        .wait()
        .await
        .map_err(|f| RestError::storage(f.0))?;
    Ok(answer(kind, StatusCode::OK, &json!([])))
}

async fn committed(
    State(ctx): Ctx,
    Path((group, instance)): Path<(String, String)>,
    request: Request,
) -> Answer {
    media::check_v2_body(request.headers())?;
    let kind = media::accept_v2(request.headers())?;
    let bytes = body(&ctx, request).await?;
    ctx.kafka
        .groups()
        .config(&group, &instance, Instant::now())?;
    let req: PartitionsRequest =
        optional_body(&bytes)?.ok_or_else(RestError::partition_not_found)?;
    let topics = RouterTopics::of(&ctx, &group);
    let offsets: Vec<Value> = req
        .into_list()
        .into_iter()
        .filter_map(|tp| {
            let stream = topics.stream(&tp)?;
            let offset = topics::committed(&stream, &group)?;
            Some(json!({ "topic": tp.topic, "partition": tp.partition, "offset": offset, "metadata": "" }))
        })
        .collect();
    Ok(answer(kind, StatusCode::OK, &json!({ "offsets": offsets })))
}
