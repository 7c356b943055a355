//! The registry's subjects, versions, ids and compatibility levels, kept as a
//! log of changes in the stream `_schemas` (as Confluent keeps them in a Kafka
//! topic of that name): replayed at start, appended before a change is answered.
//!
//! Owns: registering (the same schema again is the same version; the same schema
//! under another subject keeps its id), lookups, soft and permanent deletes, the
//! global and per-subject compatibility and the checks it asks for.
//! Refuses: parsing and compatibility rules (schema.rs) and HTTP (api.rs).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::schema::{self, Compatibility, Parsed, SchemaType};
use crate::protocols::kafka_rest::RestError;
use crate::router::streams::config::StreamConfig;
use crate::router::streams::Stream;
use crate::router::{Delivery, Message, Now, Router, Subject, Ticket};

/// The stream the registry's changes are kept in.
pub(crate) const LOG_STREAM: &str = "_schemas";

/// A reference of one schema to another (`import` in Protobuf, a named type in Avro).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Reference {
    pub(crate) name: String,
    pub(crate) subject: String,
    pub(crate) version: u32,
}

/// One change, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Change {
    Register {
        subject: String,
        version: u32,
        id: u32,
        #[serde(rename = "schemaType")]
        kind: String,
        schema: String,
        references: Vec<Reference>,
    },
    Delete {
        subject: String,
        /// `None`: every version.
        version: Option<u32>,
        permanent: bool,
    },
    Config {
        subject: Option<String>,
        /// `None`: back to the global level.
        compatibility: Option<String>,
    },
}

/// A schema by id.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub(crate) id: u32,
    pub(crate) kind: SchemaType,
    pub(crate) text: String,
    pub(crate) references: Vec<Reference>,
    pub(crate) parsed: Parsed,
}

/// A version of a subject.
#[derive(Debug, Clone, Copy)]
struct Version {
    version: u32,
    id: u32,
    deleted: bool,
}

/// A subject's version, as the API shows it.
#[derive(Debug, Clone)]
pub(crate) struct SubjectVersion {
    pub(crate) subject: String,
    pub(crate) version: u32,
    pub(crate) schema: Arc<Schema>,
}

#[derive(Debug)]
struct State {
    schemas: BTreeMap<u32, Arc<Schema>>,
    by_canonical: HashMap<(SchemaType, String, Vec<Reference>), u32>,
    subjects: BTreeMap<String, Vec<Version>>,
    global: Compatibility,
    per_subject: BTreeMap<String, Compatibility>,
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Latest,
    Number(u32),
}

impl Which {
    /// `latest`, `-1` or 1..=2^31-1; else the registry's 42202.
    pub(crate) fn parse(text: &str) -> Result<Which, RestError> {
        if text == "latest" || text == "-1" {
            return Ok(Which::Latest);
        }
        match text.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(Which::Number(n)),
            _ => Err(RestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42202,
                format!("The specified version '{text}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
            )),
        }
    }
}

fn subject_not_found(subject: &str) -> RestError {
    RestError::new(
        StatusCode::NOT_FOUND,
        40401,
        format!("Subject '{subject}' not found."),
    )
}

fn version_not_found(which: Which) -> RestError {
    let v = match which {
        Which::Latest => "latest".to_owned(),
        Which::Number(n) => n.to_string(),
    };
    RestError::new(
        StatusCode::NOT_FOUND,
        40402,
        format!("Version {v} not found."),
    )
}

pub(crate) fn schema_not_found(what: impl std::fmt::Display) -> RestError {
    RestError::new(
        StatusCode::NOT_FOUND,
        40403,
        format!("Schema {what} not found"),
    )
}

fn invalid_schema(why: impl std::fmt::Display) -> RestError {
    RestError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
        format!("Invalid schema {why}"),
    )
}

pub(crate) fn invalid_compatibility(level: &str) -> RestError {
    RestError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        42203,
        format!("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive ({level})"),
    )
}

/// The schema registry.
#[derive(Debug)]
pub(crate) struct Registry {
    state: Mutex<State>,
    log: Option<Arc<Stream>>,
}

/// A registration request, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) kind: SchemaType,
    pub(crate) text: String,
    pub(crate) references: Vec<Reference>,
}

impl Registry {
    /// The registry of `router`, rebuilt from its log (created if missing).
    pub(crate) fn open(router: &Router) -> Registry {
        let config = StreamConfig {
            name: LOG_STREAM.to_owned(),
            front: Bytes::from_static(b"schema-registry"),
            ..StreamConfig::default()
        };
        let log = match router.create_stream(config, Now::current()) {
            Ok(log) => Some(log),
            Err(e) => {
                warn!(error = %e, "schema registry: its log stream could not be opened; schemas are not kept");
                None
            }
        };
        let mut state = State {
            schemas: BTreeMap::new(),
            by_canonical: HashMap::new(),
            subjects: BTreeMap::new(),
            global: Compatibility::Backward,
            per_subject: BTreeMap::new(),
        };
        if let Some(log) = &log {
            let mut next = 1;
            loop {
                let batch = log.read(next, 1024, u64::MAX);
                let Some(last) = batch.last() else { break };
                next = last.seq + 1;
                for m in &batch {
                    match serde_json::from_slice::<Change>(&m.message.payload) {
                        Ok(change) => {
                            if let Err(e) = state.apply(change) {
                                warn!(seq = m.seq, error = %e.message, "schema registry: a stored change was not applied");
                            }
                        }
                        Err(e) => {
                            warn!(seq = m.seq, error = %e, "schema registry: a stored change is unreadable")
                        }
                    }
                }
            }
        }
        Registry {
            state: Mutex::new(state),
            log,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `change` and applies it; the ticket covers its record.
    fn commit(&self, state: &mut State, change: Change) -> Result<Ticket, RestError> {
        let log = self.log.as_ref().ok_or_else(|| {
            RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                50001,
                "Error in the backend data store - the registry's log stream is not open",
            )
        })?;
        let payload = serde_json::to_vec(&change).map_err(RestError::storage)?;
        let msg = Message {
            subject: Subject::new(LOG_STREAM).map_err(|_| RestError::storage("log subject"))?,
            payload: Bytes::from(payload),
            qos: Delivery::AtLeastOnce,
            ..Message::default()
        };
        let (outcome, ticket) = log.append_direct(msg, Now::current());
        outcome.map_err(|e| RestError::storage(format!("{e:?}")))?;
        state.apply(change)?;
        Ok(ticket)
    }

    /// Registers `candidate` under `subject`: its id, and the ticket to wait for
    /// before answering.
    pub(crate) fn register(
        &self,
        subject: &str,
        candidate: Candidate,
    ) -> Result<(u32, Ticket), RestError> {
        let mut state = self.lock();
        let parsed = state.parse(&candidate)?;
        let canonical = parsed.canonical(&candidate.text);
        let key = (candidate.kind, canonical, candidate.references.clone());
        if let Some(found) = state.find_in_subject(subject, &key) {
            return Ok((found.schema.id, Ticket::default()));
        }
        let problems = state.check(subject, &parsed);
        if !problems.is_empty() {
            return Err(RestError::new(
                StatusCode::CONFLICT,
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                    problems.join(", ")
                ),
            ));
        }
        let id = state
            .by_canonical
            .get(&key)
            .copied()
            .map_or_else(
                || match state.schemas.keys().next_back() {
                    None => Some(1),
                    Some(last) => last.checked_add(1),
                },
                Some,
            )
            .ok_or_else(|| RestError::storage("no schema id is left"))?;
        let version = state
            .subjects
            .get(subject)
            .and_then(|vs| vs.iter().map(|v| v.version).max())
            .map_or(1, |v| v + 1);
        let change = Change::Register {
            subject: subject.to_owned(),
            version,
            id,
            kind: candidate.kind.name().to_owned(),
            schema: candidate.text,
            references: candidate.references,
        };
        let ticket = self.commit(&mut state, change)?;
        Ok((id, ticket))
    }

    /// The version of `subject` that is `candidate`.
    pub(crate) fn lookup(
        &self,
        subject: &str,
        candidate: &Candidate,
        deleted: bool,
    ) -> Result<SubjectVersion, RestError> {
        let state = self.lock();
        let any = state
            .subjects
            .get(subject)
            .is_some_and(|vs| vs.iter().any(|v| deleted || !v.deleted));
        if !any {
            return Err(subject_not_found(subject));
        }
        let parsed = state.parse(candidate)?;
        let key = (
            candidate.kind,
            parsed.canonical(&candidate.text),
            candidate.references.clone(),
        );
        state
            .find_in_subject_with(subject, &key, deleted)
            .ok_or_else(|| schema_not_found(""))
    }

    /// Subjects with a live version (or any, with `deleted`).
    pub(crate) fn subjects(&self, deleted: bool) -> Vec<String> {
        let state = self.lock();
        state
            .subjects
            .iter()
            .filter(|(_, vs)| vs.iter().any(|v| deleted || !v.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// The version numbers of `subject`.
    pub(crate) fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, RestError> {
        let state = self.lock();
        let vs: Vec<u32> = state
            .subjects
            .get(subject)
            .map(|vs| {
                vs.iter()
                    .filter(|v| deleted || !v.deleted)
                    .map(|v| v.version)
                    .collect()
            })
            .unwrap_or_default();
        if vs.is_empty() {
            return Err(subject_not_found(subject));
        }
        Ok(vs)
    }

    /// Version `which` of `subject`.
    pub(crate) fn version(
        &self,
        subject: &str,
        which: Which,
        deleted: bool,
    ) -> Result<SubjectVersion, RestError> {
        let state = self.lock();
        state.version(subject, which, deleted)
    }

    /// The schema `id`.
    pub(crate) fn schema(&self, id: u32) -> Result<Arc<Schema>, RestError> {
        self.lock()
            .schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| schema_not_found(id))
    }

    /// Deletes `which` (all: `None`) of `subject`; the versions deleted.
    pub(crate) fn delete(
        &self,
        subject: &str,
        which: Option<Which>,
        permanent: bool,
    ) -> Result<(Vec<u32>, Ticket), RestError> {
        let mut state = self.lock();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| subject_not_found(subject))?
            .clone();
        let chosen: Vec<Version> = match which {
            None => versions.clone(),
            Some(w) => vec![state.version_entry(subject, w, true)?],
        };
        if permanent {
            if let Some(live) = chosen.iter().find(|v| !v.deleted) {
                return Err(match which {
                    None => RestError::new(
                        StatusCode::NOT_FOUND,
                        40405,
                        format!("Subject '{subject}' was not deleted first before being permanently deleted"),
                    ),
                    Some(_) => RestError::new(
                        StatusCode::NOT_FOUND,
                        40407,
                        format!("Subject '{subject}' Version {} was not deleted first before being permanently deleted", live.version),
                    ),
                });
            }
        } else if chosen.iter().all(|v| v.deleted) {
            return Err(match which {
                None => RestError::new(StatusCode::NOT_FOUND, 40404, format!("Subject '{subject}' was soft deleted.Set permanent=true to delete permanently")),
                Some(_) => RestError::new(StatusCode::NOT_FOUND, 40406, format!("Subject '{subject}' Version {} was soft deleted.Set permanent=true to delete permanently", chosen[0].version)),
            });
        }
        // A version another schema refers to stays (Confluent's 42206).
        for v in &chosen {
            let referrer = state.subjects.iter().find_map(|(s, vs)| {
                vs.iter().filter(|x| !x.deleted).find_map(|x| {
                    let refs = &state.schemas.get(&x.id)?.references;
                    refs.iter()
                        .any(|r| r.subject == subject && r.version == v.version)
                        .then(|| format!("{{subject={s},version={}}}", x.version))
                })
            });
            if let Some(referrer) = referrer {
                return Err(RestError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42206,
                    format!("One or more references exist to the schema {{subject={subject},version={}}}: {referrer}", v.version),
                ));
            }
        }
        let numbers: Vec<u32> = chosen
            .iter()
            .filter(|v| permanent || !v.deleted)
            .map(|v| v.version)
            .collect();
        let change = Change::Delete {
            subject: subject.to_owned(),
            version: which.map(|_| chosen[0].version),
            permanent,
        };
        let ticket = self.commit(&mut state, change)?;
        Ok((numbers, ticket))
    }

    /// The compatibility level of `subject` (`None`: the global one), if set.
    pub(crate) fn compatibility(&self, subject: Option<&str>) -> Option<Compatibility> {
        let state = self.lock();
        match subject {
            None => Some(state.global),
            Some(s) => state.per_subject.get(s).copied(),
        }
    }

    /// Sets (or, with `None`, removes) a compatibility level.
    pub(crate) fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Option<Compatibility>,
    ) -> Result<Ticket, RestError> {
        let mut state = self.lock();
        let change = Change::Config {
            subject: subject.map(str::to_owned),
            compatibility: level.map(|l| l.name().to_owned()),
        };
        self.commit(&mut state, change)
    }

    /// The problems registering `candidate` would have: against version `which`
    /// alone, or (`None`) as registering would check. The latest of a subject
    /// without versions is compatible with anything.
    pub(crate) fn is_compatible(
        &self,
        subject: &str,
        which: Option<Which>,
        candidate: &Candidate,
    ) -> Result<Vec<String>, RestError> {
        let state = self.lock();
        let parsed = state.parse(candidate)?;
        let level = state.level(subject);
        match which {
            None => Ok(state.check(subject, &parsed)),
            Some(which) => match state.version(subject, which, false) {
                Ok(_) if level == Compatibility::None => Ok(Vec::new()),
                Ok(against) => {
                    // One version, whatever the level's transitivity.
                    let both = if level.transitive() {
                        level.latest_only()
                    } else {
                        level
                    };
                    Ok(schema::check(both, &parsed, &[&against.schema.parsed]))
                }
                Err(e) if which == Which::Latest && e.code == 40401 => Ok(Vec::new()),
                Err(e) => Err(e),
            },
        }
    }
}

impl State {
    fn parse(&self, c: &Candidate) -> Result<Parsed, RestError> {
        let mut refs = Vec::with_capacity(c.references.len());
        for r in &c.references {
            let v = self
                .version(&r.subject, Which::Number(r.version), false)
                .map_err(|_| {
                    invalid_schema(format!(
                        "reference {} to {} version {} not found",
                        r.name, r.subject, r.version
                    ))
                })?;
            refs.push((r.name.clone(), v.schema.text.clone()));
        }
        schema::parse(c.kind, &c.text, &refs).map_err(invalid_schema)
    }

    fn version_entry(
        &self,
        subject: &str,
        which: Which,
        deleted: bool,
    ) -> Result<Version, RestError> {
        let vs = self
            .subjects
            .get(subject)
            .ok_or_else(|| subject_not_found(subject))?;
        let mut live = vs.iter().filter(|v| deleted || !v.deleted);
        let found = match which {
            Which::Latest => live.max_by_key(|v| v.version),
            Which::Number(n) => live.find(|v| v.version == n),
        };
        if found.is_none() && !vs.iter().any(|v| deleted || !v.deleted) {
            return Err(subject_not_found(subject));
        }
        found.copied().ok_or_else(|| version_not_found(which))
    }

    fn version(
        &self,
        subject: &str,
        which: Which,
        deleted: bool,
    ) -> Result<SubjectVersion, RestError> {
        let v = self.version_entry(subject, which, deleted)?;
        let schema = self
            .schemas
            .get(&v.id)
            .cloned()
            .ok_or_else(|| schema_not_found(v.id))?;
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version: v.version,
            schema,
        })
    }

    fn find_in_subject(
        &self,
        subject: &str,
        key: &(SchemaType, String, Vec<Reference>),
    ) -> Option<SubjectVersion> {
        self.find_in_subject_with(subject, key, false)
    }

    fn find_in_subject_with(
        &self,
        subject: &str,
        key: &(SchemaType, String, Vec<Reference>),
        deleted: bool,
    ) -> Option<SubjectVersion> {
        let id = *self.by_canonical.get(key)?;
        let v = self
            .subjects
            .get(subject)?
            .iter()
            .rev()
            .find(|v| v.id == id && (deleted || !v.deleted))?;
        self.version(subject, Which::Number(v.version), true).ok()
    }

    fn level(&self, subject: &str) -> Compatibility {
        self.per_subject
            .get(subject)
            .copied()
            .unwrap_or(self.global)
    }

    /// The problems registering `parsed` in `subject` would have.
    fn check(&self, subject: &str, parsed: &Parsed) -> Vec<String> {
        let level = self.level(subject);
        if level == Compatibility::None {
            return Vec::new();
        }
        let mut live: Vec<&Version> = self
            .subjects
            .get(subject)
            .map(|vs| vs.iter().filter(|v| !v.deleted).collect())
            .unwrap_or_default();
        live.sort_by_key(|v| v.version);
        if !level.transitive() {
            live = live.split_off(live.len().saturating_sub(1));
        }
        let olds: Vec<&Parsed> = live
            .iter()
            .filter_map(|v| self.schemas.get(&v.id).map(|s| &s.parsed))
            .collect();
        schema::check(level, parsed, &olds)
    }

    fn apply(&mut self, change: Change) -> Result<(), RestError> {
        match change {
            Change::Register {
                subject,
                version,
                id,
                kind,
                schema,
                references,
            } => {
                let kind = SchemaType::named(&kind)
                    .ok_or_else(|| invalid_schema(format!("type {kind}")))?;
                if !self.schemas.contains_key(&id) {
                    let candidate = Candidate {
                        kind,
                        text: schema.clone(),
                        references: references.clone(),
                    };
                    let parsed = self.parse(&candidate)?;
                    let canonical = parsed.canonical(&schema);
                    self.by_canonical
                        .insert((kind, canonical, references.clone()), id);
                    self.schemas.insert(
                        id,
                        Arc::new(Schema {
                            id,
                            kind,
                            text: schema,
                            references,
                            parsed,
                        }),
                    );
                }
                let versions = self.subjects.entry(subject).or_default();
                versions.retain(|v| v.version != version);
                versions.push(Version {
                    version,
                    id,
                    deleted: false,
                });
                versions.sort_by_key(|v| v.version);
            }
            Change::Delete {
                subject,
                version,
                permanent,
            } => {
                if let Some(vs) = self.subjects.get_mut(&subject) {
                    let hit = |v: &Version| version.is_none_or(|n| v.version == n);
                    if permanent {
                        vs.retain(|v| !hit(v));
                    } else {
                        vs.iter_mut()
                            .filter(|v| hit(v))
                            .for_each(|v| v.deleted = true);
                    }
                    if vs.is_empty() {
                        self.subjects.remove(&subject);
                        self.per_subject.remove(&subject);
                    }
                }
            }
            Change::Config {
                subject,
                compatibility,
            } => {
                let level = match compatibility {
                    Some(name) => Some(
                        Compatibility::named(&name).ok_or_else(|| invalid_compatibility(&name))?,
                    ),
                    None => None,
                };
                match (subject, level) {
                    (None, Some(l)) => self.global = l,
                    (None, None) => self.global = Compatibility::Backward,
                    (Some(s), Some(l)) => {
                        self.per_subject.insert(s, l);
                    }
                    (Some(s), None) => {
                        self.per_subject.remove(&s);
                    }
                }
            }
        }
        Ok(())
    }
}
