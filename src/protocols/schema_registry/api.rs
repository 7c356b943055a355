//! The registry's resources, in Confluent's paths, shapes and error codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, FromRequestParts, Path, Query, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router as Routes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::schema::{Compatibility, SchemaType};
use super::state::{self, Candidate, Reference, SubjectVersion, Which};
use crate::access::{Grant, Kind};
use crate::protocols::kafka_rest::RestError;
use crate::router::Ticket;
use crate::server::Context;

type Ctx = State<Arc<Context>>;
type Params = Query<HashMap<String, String>>;

/// The registry's response type.
const V1_JSON: &str = "application/vnd.schemaregistry.v1+json";

/// An answer, or an error in the registry's type.
struct Answer(Result<Response, RestError>);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(r) => r,
            Err(e) => e.into_response_as(V1_JSON),
        }
    }
}

/// The registry's routes; `root`: also `GET /` (not on the Kafka REST listener,
/// whose root is the proxy's).
pub(crate) fn routes(ctx: Arc<Context>, root: bool) -> Routes {
    let mut r = Routes::new()
        .route("/schemas/types", get(types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/config",
            get(global_config)
                .put(set_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route("/mode", get(mode))
        .route_layer(axum::middleware::from_fn(may_use_subject));
    if root {
        r = r.route("/", get(|| async { ok(&json!({})) }));
    }
    r.with_state(ctx)
}

/// Requests that name a subject need the user's rules on `schema:<subject>`:
/// reading it (versions, lookup, compatibility checks) subscribe, changing it
/// (register, delete, its config) configure; changing the global config needs
/// configure on `schema:*`. Schemas by id are for every user who logged in.
async fn may_use_subject(request: Request, next: Next) -> Response {
    let grant = request
        .extensions()
        .get::<Grant>()
        .cloned()
        .unwrap_or_else(Grant::nothing);
    if grant.unrestricted() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    let subject = params.as_ref().and_then(|p| {
        p.iter()
            .find(|(k, _)| *k == "subject")
            .map(|(_, v)| v.to_owned())
    });
    let path = parts.uri.path();
    let writes = match parts.method {
        axum::http::Method::GET | axum::http::Method::HEAD => false,
        axum::http::Method::POST => path.starts_with("/subjects/") && path.ends_with("/versions"),
        _ => true,
    };
    let allowed = match (&subject, writes) {
        (None, false) => true,
        (None, true) => grant.may_configure(Kind::Schema, "*"),
        (Some(s), false) => grant.may_consume(Kind::Schema, s),
        (Some(s), true) => grant.may_configure(Kind::Schema, s),
    };
    if !allowed {
        let operation = if writes { "Write" } else { "Read" };
        let name = subject.as_deref().unwrap_or("*");
        return RestError::forbidden(format!(
            "User is denied operation {operation} on Subject: {name}"
        ))
        .into_response_as(V1_JSON);
    }
    next.run(Request::from_parts(parts, body)).await
}

fn ok(body: &Value) -> Answer {
    Answer(Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, V1_JSON)],
        body.to_string(),
    )
        .into_response()))
}

fn raw(text: String) -> Answer {
    Answer(Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, V1_JSON)],
        text,
    )
        .into_response()))
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Checks the request's type: the registry's JSON types, plain JSON or octet-stream.
fn check_body_type(headers: &HeaderMap) -> Result<(), RestError> {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        V1_JSON
        | "application/vnd.schemaregistry+json"
        | "application/json"
        | "application/octet-stream" => Ok(()),
        _ => Err(RestError::unsupported_media_type()),
    }
}

/// A bounded JSON body (413 past the configured limit).
async fn body<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    request: Request,
) -> Result<T, RestError> {
    check_body_type(request.headers())?;
    let limit = ctx.config.limits.http_max_body;
    let bytes = crate::protocols::http::read_body(
        request,
        limit,
        crate::protocols::http::BODY_READ_TIMEOUT,
    )
    .await
    .map_err(|e| RestError::body(e, limit))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        RestError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
            format!("Unrecognized request body: {e}"),
        )
    })
}

async fn stored(ticket: Ticket) -> Result<(), RestError> {
    ticket.wait().await.map_err(|f| {
        RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("Error in the backend data store - {}", f.0),
        )
    })
}

fn parse_id(text: &str) -> Result<u32, RestError> {
    text.parse().map_err(|_| state::schema_not_found(text))
}

/// A schema's text in the asked `format` (`serialized`: Protobuf as base64 of
/// its FileDescriptorProto, as Confluent's Python deserializer reads it).
fn text_in(schema: &state::Schema, params: &HashMap<String, String>) -> String {
    let serialized = params
        .get("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("serialized"));
    match schema.parsed.serialized().filter(|_| serialized) {
        Some(text) => text,
        None => schema.text.clone(),
    }
}

/// A subject version as the registry shows it (`schemaType` always, as since 8.0).
fn version_json(v: &SubjectVersion, params: &HashMap<String, String>) -> Value {
    let mut out = json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.schema.id,
        "schema": text_in(&v.schema, params),
    });
    decorate(&mut out, v.schema.kind, &v.schema.references);
    out
}

fn decorate(out: &mut Value, kind: SchemaType, references: &[Reference]) {
    out["schemaType"] = json!(kind.name());
    if !references.is_empty() {
        out["references"] = json!(references);
    }
}

async fn types() -> Answer {
    ok(&json!(["JSON", "PROTOBUF", "AVRO"]))
}

async fn mode() -> Answer {
    ok(&json!({ "mode": "READWRITE" }))
}

async fn schema_by_id(State(ctx): Ctx, Path(id): Path<String>, Query(params): Params) -> Answer {
    Answer((|| {
        let s = ctx.registry.schema(parse_id(&id)?)?;
        let mut out = json!({ "schema": text_in(&s, &params) });
        decorate(&mut out, s.kind, &s.references);
        ok(&out).0
    })())
}

async fn raw_schema_by_id(
    State(ctx): Ctx,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    Answer((|| {
        raw(text_in(
            ctx.registry.schema(parse_id(&id)?)?.as_ref(),
            &params,
        ))
        .0
    })())
}

/// Every (subject, version) that is schema `id`.
fn uses_of(ctx: &Context, id: &str) -> Result<Vec<(String, u32)>, RestError> {
    let id = parse_id(id)?;
    ctx.registry.schema(id)?;
    let mut out = Vec::new();
    for subject in ctx.registry.subjects(false) {
        for v in ctx.registry.versions(&subject, false).unwrap_or_default() {
            if let Ok(sv) = ctx.registry.version(&subject, Which::Number(v), false) {
                if sv.schema.id == id {
                    out.push((subject.clone(), v));
                }
            }
        }
    }
    Ok(out)
}

async fn versions_of_id(State(ctx): Ctx, Path(id): Path<String>) -> Answer {
    Answer(uses_of(&ctx, &id).and_then(|uses| {
        let out: Vec<Value> = uses
            .iter()
            .map(|(s, v)| json!({ "subject": s, "version": v }))
            .collect();
        ok(&json!(out)).0
    }))
}

async fn subjects_of_id(State(ctx): Ctx, Path(id): Path<String>) -> Answer {
    Answer(uses_of(&ctx, &id).and_then(|uses| {
        let mut subjects: Vec<String> = uses.into_iter().map(|(s, _)| s).collect();
        subjects.dedup();
        ok(&json!(subjects)).0
    }))
}

/// The subjects the user may read.
async fn subjects(
    State(ctx): Ctx,
    Extension(grant): Extension<Grant>,
    Query(params): Params,
) -> Answer {
    let mut subjects = ctx.registry.subjects(flag(&params, "deleted"));
    subjects.retain(|s| grant.may_consume(Kind::Schema, s));
    ok(&json!(subjects))
}

#[derive(Debug, Deserialize)]
struct SchemaRequest {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

impl SchemaRequest {
    fn candidate(self) -> Result<Candidate, RestError> {
        let kind = match &self.schema_type {
            None => SchemaType::Avro,
            Some(t) => SchemaType::named(t).ok_or_else(|| {
                RestError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42201,
                    format!("Invalid schema type {t}"),
                )
            })?,
        };
        Ok(Candidate {
            kind,
            text: self.schema,
            references: self.references,
        })
    }
}

async fn register(State(ctx): Ctx, Path(subject): Path<String>, request: Request) -> Answer {
    Answer(
        async {
            let req: SchemaRequest = body(&ctx, request).await?;
            let (id, ticket) = ctx.registry.register(&subject, req.candidate()?)?;
            stored(ticket).await?;
            // A schema registered already may still be on its way to storage
            // (another request's): what is answered has been stored.
            stored(ctx.router.storage_barrier()).await?;
            ok(&json!({ "id": id })).0
        }
        .await,
    )
}

async fn lookup(
    State(ctx): Ctx,
    Path(subject): Path<String>,
    Query(params): Params,
    request: Request,
) -> Answer {
    Answer(
        async {
            let req: SchemaRequest = body(&ctx, request).await?;
            let found =
                ctx.registry
                    .lookup(&subject, &req.candidate()?, flag(&params, "deleted"))?;
            ok(&version_json(&found, &params)).0
        }
        .await,
    )
}

async fn versions(State(ctx): Ctx, Path(subject): Path<String>, Query(params): Params) -> Answer {
    Answer(
        ctx.registry
            .versions(&subject, flag(&params, "deleted"))
            .and_then(|v| ok(&json!(v)).0),
    )
}

async fn version(
    State(ctx): Ctx,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    Answer(
        find_version(&ctx, &subject, &v, &params)
            .and_then(|found| ok(&version_json(&found, &params)).0),
    )
}

/// The version a path and its `deleted` query name.
fn find_version(
    ctx: &Context,
    subject: &str,
    v: &str,
    params: &HashMap<String, String>,
) -> Result<SubjectVersion, RestError> {
    ctx.registry
        .version(subject, Which::parse(v)?, flag(params, "deleted"))
}

async fn raw_version(
    State(ctx): Ctx,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    Answer(
        find_version(&ctx, &subject, &v, &params)
            .and_then(|found| raw(text_in(&found.schema, &params)).0),
    )
}

async fn delete_subject(
    State(ctx): Ctx,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    Answer(
        async {
            let (deleted, ticket) =
                ctx.registry
                    .delete(&subject, None, flag(&params, "permanent"))?;
            stored(ticket).await?;
            ok(&json!(deleted)).0
        }
        .await,
    )
}

async fn delete_version(
    State(ctx): Ctx,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    Answer(
        async {
            let which = Which::parse(&v)?;
            let (deleted, ticket) =
                ctx.registry
                    .delete(&subject, Some(which), flag(&params, "permanent"))?;
            stored(ticket).await?;
            ok(&json!(deleted.first())).0
        }
        .await,
    )
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

async fn global_config(State(ctx): Ctx) -> Answer {
    let level = ctx
        .registry
        .compatibility(None)
        .unwrap_or(Compatibility::Backward);
    ok(&json!({ "compatibilityLevel": level.name() }))
}

async fn subject_config(
    State(ctx): Ctx,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let level = ctx.registry.compatibility(Some(&subject)).or_else(|| {
        flag(&params, "defaultToGlobal")
            .then(|| ctx.registry.compatibility(None))
            .flatten()
    });
    match level {
        Some(l) => ok(&json!({ "compatibilityLevel": l.name() })),
        None => Answer(Err(RestError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        ))),
    }
}

async fn set_config(
    ctx: &Context,
    subject: Option<&str>,
    request: Request,
) -> Result<Response, RestError> {
    let req: ConfigRequest = body(ctx, request).await?;
    let level = Compatibility::named(&req.compatibility)
        .ok_or_else(|| state::invalid_compatibility(&req.compatibility))?;
    stored(ctx.registry.set_compatibility(subject, Some(level))?).await?;
    ok(&json!({ "compatibility": level.name() })).0
}

async fn set_global_config(State(ctx): Ctx, request: Request) -> Answer {
    Answer(set_config(&ctx, None, request).await)
}

async fn set_subject_config(
    State(ctx): Ctx,
    Path(subject): Path<String>,
    request: Request,
) -> Answer {
    Answer(set_config(&ctx, Some(&subject), request).await)
}

async fn delete_global_config(State(ctx): Ctx) -> Answer {
    Answer(
        async {
            let before = ctx
                .registry
                .compatibility(None)
                .unwrap_or(Compatibility::Backward);
            stored(ctx.registry.set_compatibility(None, None)?).await?;
            ok(&json!({ "compatibilityLevel": before.name() })).0
        }
        .await,
    )
}

async fn delete_subject_config(State(ctx): Ctx, Path(subject): Path<String>) -> Answer {
    Answer(
        async {
            let before = ctx.registry.compatibility(Some(&subject)).ok_or_else(|| {
                RestError::new(
                    StatusCode::NOT_FOUND,
                    40401,
                    format!("Subject '{subject}' not found."),
                )
            })?;
            stored(ctx.registry.set_compatibility(Some(&subject), None)?).await?;
            ok(&json!({ "compatibilityLevel": before.name() })).0
        }
        .await,
    )
}

async fn compatibility(
    State(ctx): Ctx,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
    request: Request,
) -> Answer {
    let which = match Which::parse(&v) {
        Ok(w) => Some(w),
        Err(e) => return Answer(Err(e)),
    };
    check_compatibility(&ctx, &subject, which, &params, request).await
}

async fn compatibility_all(
    State(ctx): Ctx,
    Path(subject): Path<String>,
    Query(params): Params,
    request: Request,
) -> Answer {
    check_compatibility(&ctx, &subject, None, &params, request).await
}

/// Whether a schema could be registered next: against version `which`, or (`None`)
/// against the versions the subject's level names.
async fn check_compatibility(
    ctx: &Context,
    subject: &str,
    which: Option<Which>,
    params: &HashMap<String, String>,
    request: Request,
) -> Answer {
    Answer(
        async {
            let req: SchemaRequest = body(ctx, request).await?;
            let problems = ctx
                .registry
                .is_compatible(subject, which, &req.candidate()?)?;
            let mut out = json!({ "is_compatible": problems.is_empty() });
            if flag(params, "verbose") {
                out["messages"] = json!(problems);
            }
            ok(&out).0
        }
        .await,
    )
}
