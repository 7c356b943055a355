//! The JetStream API (`$JS.API.>`): JSON requests in, JSON replies out, shaped
//! as nats-server 2.10 shapes them (`type`, then either the result's fields or
//! `error`).
//!
//! Owns: which request does what, request bodies, reply bodies, list paging.
//! Refuses: the meaning of configurations (json.rs), delivery (service.rs) and
//! the streams themselves (the router).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::json::{format_time, ConsumerJson, CreateConsumer, StreamJson};
use super::service::{parse_pull, Front, Key, Pull, Service};
use crate::protocols::nats::translate;
use crate::router::streams::config::StorageKind;
use crate::router::streams::log::StreamMessage;
use crate::router::streams::{filters_overlap, parse_filters, ConsumerInfo, Stream};
use crate::router::{Filter, Message, Now};

/// Pull requests one consumer holds at most, whatever its max_waiting says: they
/// are held in memory.
const MAX_WAITING: i64 = 16 * 1024;
/// nats-server's page sizes.
const NAMES_PAGE: usize = 1024;
const LIST_PAGE: usize = 256;

type Reply = Result<Map<String, Value>, ApiError>;

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A request body, where an empty one (or JSON `null`, which async-nats sends
/// for "no options") means "all defaults".
fn body_of<T: for<'a> Deserialize<'a> + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())
}

impl Service {
    /// One API request; the reply goes to its reply subject (a request without
    /// one is dropped, as nats-server does).
    pub(crate) fn on_request(&mut self, rest: &str, msg: &Message, now: Now) {
        let Some(reply) = msg.reply_to.clone() else {
            return;
        };
        self.api_total += 1;
        let tokens: Vec<&str> = rest.split('.').collect();
        let body = &msg.payload[..];
        let (kind, result) = match tokens.as_slice() {
            ["INFO"] => ("account_info_response", Ok(self.account_info())),
            ["STREAM", "CREATE", name] => (
                "stream_create_response",
                self.put_stream(name, body, now, false),
            ),
            ["STREAM", "UPDATE", name] => (
                "stream_update_response",
                self.put_stream(name, body, now, true),
            ),
            ["STREAM", "INFO", name] => ("stream_info_response", self.stream_info(name, body)),
            ["STREAM", "DELETE", name] => ("stream_delete_response", self.delete_stream(name)),
            ["STREAM", "PURGE", name] => ("stream_purge_response", self.purge(name, body)),
            ["STREAM", "NAMES"] => ("stream_names_response", self.stream_names(body, false)),
            ["STREAM", "LIST"] => ("stream_list_response", self.stream_names(body, true)),
            ["STREAM", "MSG", "GET", name] => ("stream_msg_get_response", self.get_msg(name, body)),
            ["STREAM", "MSG", "DELETE", name] => {
                ("stream_msg_delete_response", self.delete_msg(name, body))
            }
            ["CONSUMER", "CREATE", stream] => (
                "consumer_create_response",
                self.create_consumer(stream, None, None, body, now),
            ),
            ["CONSUMER", "CREATE", stream, name, filter @ ..] => (
                "consumer_create_response",
                self.create_consumer(
                    stream,
                    Some(name),
                    (!filter.is_empty()).then(|| filter.join(".")),
                    body,
                    now,
                ),
            ),
            ["CONSUMER", "DURABLE", "CREATE", stream, name] => (
                "consumer_create_response",
                self.create_consumer(stream, Some(name), None, body, now),
            ),
            ["CONSUMER", "INFO", stream, name] => {
                ("consumer_info_response", self.consumer_info(stream, name))
            }
            ["CONSUMER", "DELETE", stream, name] => (
                "consumer_delete_response",
                self.delete_consumer(stream, name),
            ),
            ["CONSUMER", "NAMES", stream] => (
                "consumer_names_response",
                self.consumer_names(stream, body, false),
            ),
            ["CONSUMER", "LIST", stream] => (
                "consumer_list_response",
                self.consumer_names(stream, body, true),
            ),
            ["CONSUMER", "MSG", "NEXT", stream, name] => {
                self.on_next(stream, name, reply, body, now);
                return;
            }
            _ => ("api_response", Err(ApiError::bad_request())),
        };
        let mut out = Map::new();
        out.insert(
            "type".into(),
            Value::String(format!("io.nats.jetstream.api.v1.{kind}")),
        );
        match result {
            Ok(fields) => out.extend(fields),
            Err(e) => {
                self.api_errors += 1;
                out.insert("error".into(), serde_json::to_value(&e).unwrap_or_default());
            }
        }
        let text = serde_json::to_vec(&Value::Object(out)).unwrap_or_default();
        self.reply(&reply, Bytes::from(text), now);
    }

    fn account_info(&self) -> Map<String, Value> {
        let (mut memory, mut storage, mut consumers) = (0, 0, 0);
        let streams: Vec<Arc<Stream>> = self
            .router
            .streams()
            .into_iter()
            .filter(|s| owned(s))
            .collect();
        for s in &streams {
            let stats = s.stats();
            match s.config().storage {
                StorageKind::Memory => memory += stats.bytes,
                StorageKind::File => storage += stats.bytes,
            }
            consumers += stats.consumers;
        }
        object(json!({
            "memory": memory,
            "storage": storage,
            "reserved_memory": 0,
            "reserved_storage": 0,
            "streams": streams.len(),
            "consumers": consumers,
            "limits": {
                "max_memory": -1,
                "max_storage": -1,
                "max_streams": -1,
                "max_consumers": -1,
                "max_ack_pending": -1,
                "memory_max_stream_bytes": -1,
                "storage_max_stream_bytes": -1,
                "max_bytes_required": false,
            },
            "api": { "total": self.api_total, "errors": self.api_errors },
        }))
    }

    /// Stream `name`, if it is a JetStream stream (not a Kafka topic's partition
    /// or the schema registry's log, which their own fronts own).
    fn stream(&self, name: &str) -> Result<Arc<Stream>, ApiError> {
        self.router
            .stream(name)
            .filter(|s| owned(s))
            .ok_or_else(ApiError::stream_not_found)
    }

    fn put_stream(&mut self, name: &str, body: &[u8], now: Now, update: bool) -> Reply {
        let json = StreamJson::parse(body)?.normalize(name)?;
        if !update && json.sealed {
            return Err(ApiError::new(
                500,
                10052,
                "stream configuration for create can not be sealed",
            ));
        }
        let config = json.to_router();
        let (stream, created) = if update {
            self.stream(name)?;
            (self.router.update_stream(config, now)?, false)
        } else {
            let existed = self.router.stream(name).is_some();
            (self.router.create_stream(config, now)?, !existed)
        };
        let mut out = stream_info(&stream, None);
        if !update {
            out.insert("did_create".into(), Value::Bool(created));
        }
        Ok(out)
    }

    fn stream_info(&self, name: &str, body: &[u8]) -> Reply {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Req {
            subjects_filter: Option<String>,
        }
        let req: Req = body_of(body)?;
        let stream = self.stream(name)?;
        let filter = match req.subjects_filter.as_deref() {
            Some(f) if !f.is_empty() => {
                Some(Filter::nats(f).map_err(|_| ApiError::new(400, 10052, "invalid subject"))?)
            }
            _ => None,
        };
        Ok(stream_info(&stream, filter.as_ref()))
    }

    fn delete_stream(&mut self, name: &str) -> Reply {
        self.stream(name)?;
        self.router.delete_stream(name)?;
        self.fronts.retain(|(s, _), _| &**s != name);
        Ok(object(json!({ "success": true })))
    }

    fn purge(&self, name: &str, body: &[u8]) -> Reply {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Req {
            filter: Option<String>,
            seq: Option<u64>,
            keep: Option<u64>,
        }
        let req: Req = body_of(body)?;
        let stream = self.stream(name)?;
        if req.seq.is_some() && req.keep.is_some() {
            return Err(ApiError::new(
                400,
                10052,
                "purge request can not contain both sequence and keep",
            ));
        }
        let filter = match req.filter.as_deref() {
            Some(f) if !f.is_empty() => {
                Some(Filter::nats(f).map_err(|_| ApiError::new(400, 10052, "invalid subject"))?)
            }
            _ => None,
        };
        let purged = stream.purge(filter.as_ref(), req.seq, req.keep)?;
        self.router.wake_streams();
        Ok(object(json!({ "success": true, "purged": purged })))
    }

    fn stream_names(&self, body: &[u8], full: bool) -> Reply {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Req {
            offset: usize,
            subject: Option<String>,
        }
        let req: Req = body_of(body)?;
        let wanted = match req.subject.as_deref() {
            Some(s) if !s.is_empty() => {
                Some(Filter::nats(s).map_err(|_| ApiError::new(400, 10052, "invalid subject"))?)
            }
            _ => None,
        };
        let streams: Vec<Arc<Stream>> = self
            .router
            .streams()
            .into_iter()
            .filter(|s| owned(s))
            .filter(|s| {
                wanted.as_ref().is_none_or(|w| {
                    parse_filters(&s.config().subjects)
                        .unwrap_or_default()
                        .iter()
                        .any(|f| filters_overlap(f, w))
                })
            })
            .collect();
        let total = streams.len();
        let page = if full { LIST_PAGE } else { NAMES_PAGE };
        let items: Vec<Value> = streams
            .iter()
            .skip(req.offset)
            .take(page)
            .map(|s| {
                if full {
                    Value::Object(stream_info(s, None))
                } else {
                    Value::String(s.name().to_string())
                }
            })
            .collect();
        Ok(object(json!({
            "total": total,
            "offset": req.offset,
            "limit": page,
            // nats-server writes a nil list as null.
            "streams": if items.is_empty() { Value::Null } else { Value::Array(items) },
        })))
    }

    fn get_msg(&self, name: &str, body: &[u8]) -> Reply {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Req {
            seq: Option<u64>,
            last_by_subj: Option<String>,
            next_by_subj: Option<String>,
        }
        let req: Req = serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())?;
        let stream = self.stream(name)?;
        let subject_filter =
            |s: &str| Filter::nats(s).map_err(|_| ApiError::new(400, 10052, "invalid subject"));
        let found = match (&req.seq, &req.last_by_subj, &req.next_by_subj) {
            (Some(seq), None, None) => stream.get(*seq),
            (None, Some(s), None) => stream.last_matching(&subject_filter(s)?),
            (seq, None, Some(s)) => stream.next_matching(seq.unwrap_or(1), &subject_filter(s)?),
            _ => return Err(ApiError::new(400, 10003, "bad request")),
        };
        let m = found.ok_or_else(|| ApiError::new(404, 10037, "no message found"))?;
        Ok(object(json!({ "message": stored_message(&m) })))
    }

    fn delete_msg(&mut self, name: &str, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct Req {
            seq: u64,
        }
        let req: Req = serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())?;
        let stream = self.stream(name)?;
        match stream.delete_message(req.seq) {
            Ok(()) => {
                self.router.wake_streams();
                Ok(object(json!({ "success": true })))
            }
            Err(crate::router::streams::StreamError::NoMessage) => {
                Err(ApiError::new(500, 10057, "no message found"))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn create_consumer(
        &mut self,
        stream_name: &str,
        subject_name: Option<&str>,
        subject_filter: Option<String>,
        body: &[u8],
        now: Now,
    ) -> Reply {
        let req: CreateConsumer =
            serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())?;
        if !req.stream_name.is_empty() && req.stream_name != stream_name {
            return Err(ApiError::new(
                400,
                10056,
                "stream name in subject does not match request",
            ));
        }
        let stream = self.stream(stream_name)?;
        let mut config = req.config;
        let name = match subject_name {
            Some(n) => n.to_owned(),
            None => match (&config.durable_name, &config.name) {
                (Some(d), _) if !d.is_empty() => d.clone(),
                (_, Some(n)) if !n.is_empty() => n.clone(),
                _ => random_name(),
            },
        };
        if let Some(f) = subject_filter {
            if config.filter_subject.as_deref().is_some_and(|c| c != f) {
                return Err(ApiError::new(
                    400,
                    10131,
                    "consumer create request did not match filtered subject from create subject",
                ));
            }
            config.filter_subject = Some(f);
        }
        let config = config.normalize(&name)?;
        let stream_filters = parse_filters(&stream.config().subjects).unwrap_or_default();
        for f in config.filters() {
            let f = Filter::nats(&f).map_err(|_| ApiError::invalid_json())?;
            if !stream_filters.iter().any(|s| filters_overlap(s, &f)) {
                return Err(ApiError::new(
                    400,
                    10093,
                    "consumer filter subject is not a valid subset of the interest subjects",
                ));
            }
        }
        match stream.consumer_info(&name) {
            Some(existing) => {
                let old = ConsumerJson::of(&existing.config);
                if req.action == "create" && old != config {
                    return Err(ApiError::new(400, 10148, "consumer already exists"));
                }
                check_update(&old, &config)?;
            }
            None if req.action == "update" => {
                return Err(ApiError::new(404, 10149, "consumer does not exist"));
            }
            None => {}
        }
        let info = stream.add_consumer(config.to_router(&name), now, true)?;
        let key: Key = (stream.name().clone(), name);
        match self.fronts.get_mut(&key) {
            Some(front) => {
                let waiting = std::mem::take(&mut front.waiting);
                *front = Front::new(config, now.at);
                front.waiting = waiting;
            }
            None => {
                self.fronts.insert(key.clone(), Front::new(config, now.at));
            }
        }
        self.router.wake_streams();
        Ok(self.consumer_json(&info, &key))
    }

    fn consumer_json(&self, info: &ConsumerInfo, key: &Key) -> Map<String, Value> {
        let front = self.fronts.get(key);
        let json = front.map_or_else(|| ConsumerJson::of(&info.config), |f| f.json.clone());
        let s = &info.state;
        let mut out = object(json!({
            "stream_name": info.stream,
            "name": info.config.name,
            "created": format_time(info.created_ns),
            "config": json,
            "delivered": {
                "consumer_seq": s.delivered.consumer_seq,
                "stream_seq": s.delivered.stream_seq,
            },
            "ack_floor": {
                "consumer_seq": s.ack_floor.consumer_seq,
                "stream_seq": s.ack_floor.stream_seq,
            },
            "num_ack_pending": s.num_ack_pending,
            "num_redelivered": s.num_redelivered,
            "num_waiting": front.map_or(0, |f| f.waiting.len()),
            "num_pending": s.num_pending,
        }));
        if let Some(to) = front.and_then(|f| f.deliver.as_ref()) {
            if self.router.has_interest(to) {
                out.insert("push_bound".into(), Value::Bool(true));
            }
        }
        out
    }

    fn consumer_info(&self, stream: &str, name: &str) -> Reply {
        let stream = self.stream(stream)?;
        let info = stream
            .consumer_info(name)
            .ok_or_else(ApiError::consumer_not_found)?;
        Ok(self.consumer_json(&info, &(stream.name().clone(), name.to_owned())))
    }

    fn delete_consumer(&mut self, stream: &str, name: &str) -> Reply {
        let stream = self.stream(stream)?;
        stream.delete_consumer(name)?;
        self.fronts
            .remove(&(stream.name().clone(), name.to_owned()));
        self.router.wake_streams();
        Ok(object(json!({ "success": true })))
    }

    fn consumer_names(&self, stream: &str, body: &[u8], full: bool) -> Reply {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Req {
            offset: usize,
        }
        let req: Req = body_of(body)?;
        let stream = self.stream(stream)?;
        let consumers = stream.consumers();
        let page = if full { LIST_PAGE } else { NAMES_PAGE };
        let items: Vec<Value> = consumers
            .iter()
            .skip(req.offset)
            .take(page)
            .map(|c| {
                if full {
                    let key = (stream.name().clone(), c.config.name.clone());
                    Value::Object(self.consumer_json(c, &key))
                } else {
                    Value::String(c.config.name.clone())
                }
            })
            .collect();
        Ok(object(json!({
            "total": consumers.len(),
            "offset": req.offset,
            "limit": page,
            "consumers": items,
        })))
    }

    /// `CONSUMER.MSG.NEXT`: queues a pull request; statuses for the ones
    /// nats-server refuses.
    fn on_next(
        &mut self,
        stream: &str,
        name: &str,
        reply: crate::router::Subject,
        body: &[u8],
        now: Now,
    ) {
        let key: Key = (Arc::from(stream), name.to_owned());
        let Some(front) = self.fronts.get_mut(&key) else {
            // nats-server has no subscription for a consumer that does not exist.
            self.status(&reply, "503", Vec::new(), now);
            return;
        };
        if front.deliver.is_some() {
            self.status(&reply, "409 Consumer is push based", Vec::new(), now);
            return;
        }
        let Some(request) = parse_pull(body) else {
            self.status(&reply, "400 Bad Request", Vec::new(), now);
            return;
        };
        let json = &front.json;
        let refusal = if json.max_batch > 0 && request.batch > json.max_batch {
            Some(format!(
                "409 Exceeded MaxRequestBatch of {}",
                json.max_batch
            ))
        } else if json.max_bytes > 0 && request.max_bytes > json.max_bytes {
            Some(format!(
                "409 Exceeded MaxRequestMaxBytes of {}",
                json.max_bytes
            ))
        } else if json.max_expires > 0 && request.expires > json.max_expires {
            Some("409 Exceeded MaxRequestExpires".to_owned())
        } else if front.waiting.len() as i64 >= json.max_waiting.clamp(1, MAX_WAITING) {
            Some("409 Exceeded MaxWaiting".to_owned())
        } else {
            None
        };
        match refusal {
            Some(status) => self.status(&reply, &status, Vec::new(), now),
            None => front.waiting.push_back(Pull::new(reply, &request, now.at)),
        }
    }
}

/// What an existing consumer may not change (nats-server's rules).
fn check_update(old: &ConsumerJson, new: &ConsumerJson) -> Result<(), ApiError> {
    let refuse = |what: &str| {
        Err(ApiError::new(
            500,
            10012,
            format!("{what} can not be updated"),
        ))
    };
    if old.ack_policy != new.ack_policy {
        return refuse("ack policy");
    }
    if old.deliver_policy != new.deliver_policy {
        return refuse("deliver policy");
    }
    if old.opt_start_seq != new.opt_start_seq || old.opt_start_time != new.opt_start_time {
        return refuse("start sequence");
    }
    if old.filters() != new.filters() {
        return refuse("filter subject");
    }
    if old.is_push() != new.is_push() {
        return refuse("push or pull mode");
    }
    if old.durable_name.is_some() != new.durable_name.is_some() {
        return refuse("durable name");
    }
    Ok(())
}

/// A stream's info (config, created, state), as STREAM.INFO and friends answer.
fn stream_info(stream: &Stream, subjects: Option<&Filter>) -> Map<String, Value> {
    let stats = stream.stats();
    let mut state = object(json!({
        "messages": stats.messages,
        "bytes": stats.bytes,
        "first_seq": if stats.last_seq == 0 { 0 } else { stats.first_seq },
        "first_ts": format_time(stats.first_ns),
        "last_seq": stats.last_seq,
        "last_ts": format_time(stats.last_ns),
        "consumer_count": stats.consumers,
    }));
    if stats.subjects > 0 {
        state.insert("num_subjects".into(), json!(stats.subjects));
    }
    if stats.deleted > 0 {
        state.insert("num_deleted".into(), json!(stats.deleted));
    }
    if let Some(filter) = subjects {
        let counts = stream.subject_counts(filter);
        if !counts.is_empty() {
            state.insert("subjects".into(), json!(counts));
        }
    }
    object(json!({
        "config": StreamJson::of(&stream.config()),
        "created": format_time(stream.created_ns()),
        "state": state,
    }))
}

/// A stored message as MSG.GET returns it (headers and data in base64).
fn stored_message(m: &StreamMessage) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = object(json!({
        "subject": m.message.subject.as_str(),
        "seq": m.seq,
        "time": format_time(m.time_ns),
    }));
    if let Some(headers) = translate::headers_of(&m.message) {
        let mut block = BytesMut::new();
        headers.encode(&mut block);
        out.insert("hdrs".into(), Value::String(b64.encode(&block)));
    }
    if !m.message.payload.is_empty() {
        out.insert("data".into(), Value::String(b64.encode(&m.message.payload)));
    }
    Value::Object(out)
}

/// An ephemeral consumer's name: 8 characters, unique enough within a stream.
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut n = h.finish();
    (0..8)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

/// Whether the JetStream API owns `stream`: it keeps its JSON declaration there
/// (the other fronts' streams carry their own names instead).
pub(crate) fn owned(stream: &Stream) -> bool {
    stream.config().front.first() == Some(&b'{')
}
