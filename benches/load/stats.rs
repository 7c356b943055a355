//! Payload stamps, per-receiver counters and latencies, percentiles, pacing, and the
//! request/reply loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::time::timeout;

use crate::procstat::Meter;
use crate::{Outcome, Params, Res};

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process (the clock of every stamp).
pub fn now_ns() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Bytes every payload starts with: sequence number and send time (little endian).
pub const STAMP: usize = 16;

/// A payload of `size` bytes (at least [`STAMP`]) stamped with `seq` and the time now.
pub fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size.max(STAMP)];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v[8..16].copy_from_slice(&now_ns().to_le_bytes());
    v
}

/// The send time stamped into `payload`.
pub fn sent_at(payload: &[u8]) -> Option<u64> {
    let b: [u8; 8] = payload.get(8..16)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// The sequence number stamped into `payload`.
fn seq_of(payload: &[u8]) -> Option<u64> {
    let b: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// What one receiver (subscriber, consumer, requester) saw.
#[derive(Default)]
pub struct Recorder {
    /// Distinct messages (by sequence number).
    count: AtomicU64,
    duplicates: AtomicU64,
    last_ns: AtomicU64,
    seen: Mutex<Seen>,
    errors: Mutex<Vec<String>>,
}

/// Which sequence numbers arrived (one bit each) and their latencies.
#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    latencies: Vec<u64>,
}

impl Recorder {
    /// Counts a received payload and its latency; a sequence number seen before
    /// counts as a duplicate only, so that a duplicate cannot hide a loss.
    pub fn record(&self, payload: &[u8]) {
        let now = now_ns();
        let Some(seq) = seq_of(payload) else {
            return self.fail(format!("a payload of {} bytes has no stamp", payload.len()));
        };
        let mut seen = self.seen.lock().unwrap();
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if seen.bits.len() <= word {
            seen.bits.resize(word + 1, 0);
        }
        if seen.bits[word] & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        seen.bits[word] |= bit;
        if let Some(t) = sent_at(payload) {
            seen.latencies.push(now.saturating_sub(t));
        }
        drop(seen);
        self.last_ns.store(now, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Notes a failure (the run reports it and stops waiting).
    pub fn fail(&self, error: String) {
        self.errors.lock().unwrap().push(error);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

/// Every receiver of a run.
pub struct Receivers {
    pub list: Vec<Arc<Recorder>>,
}

impl Receivers {
    pub fn new(n: usize) -> Receivers {
        Receivers {
            list: (0..n).map(|_| Arc::new(Recorder::default())).collect(),
        }
    }

    pub fn total(&self) -> u64 {
        self.list.iter().map(|r| r.count()).sum()
    }

    /// Messages a receiver got again (not counted in [`Receivers::total`]).
    pub fn duplicates(&self) -> u64 {
        self.list
            .iter()
            .map(|r| r.duplicates.load(Ordering::Relaxed))
            .sum()
    }

    pub fn failed(&self) -> bool {
        self.list
            .iter()
            .any(|r| !r.errors.lock().unwrap().is_empty())
    }

    /// When the last message arrived ([`now_ns`] clock), 0 if none did.
    pub fn last_ns(&self) -> u64 {
        self.list
            .iter()
            .map(|r| r.last_ns.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Every latency, sorted, in nanoseconds.
    pub fn latencies(&self) -> Vec<u64> {
        let mut all = Vec::new();
        for r in &self.list {
            all.extend_from_slice(&r.seen.lock().unwrap().latencies);
        }
        all.sort_unstable();
        all
    }

    pub fn errors(&self) -> Vec<String> {
        self.list.iter().flat_map(|r| r.errors()).collect()
    }

    /// Waits until `expected` messages arrived, a receiver failed, none arrived for
    /// `idle`, or `cap` passed.
    pub async fn drain(&self, expected: u64, idle: Duration, cap: Duration) {
        let hard = Instant::now() + cap;
        let mut seen = self.total();
        let mut changed = Instant::now();
        loop {
            let n = self.total();
            if n >= expected || self.failed() {
                return;
            }
            let now = Instant::now();
            if now >= hard {
                return;
            }
            if n != seen {
                seen = n;
                changed = now;
            } else if now - changed >= idle {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The `q` quantile (0..1) of sorted nanoseconds, in microseconds.
pub fn quantile_us(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 1000.0)
}

/// The median of `values` (None ignored; None if there are none).
pub fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Hands out sequence numbers until --messages are sent or --seconds passed, on the
/// --rate schedule when there is one.
pub struct Pacer {
    start: Instant,
    deadline: Instant,
    max: u64,
    rate: u64,
    pub sent: u64,
}

impl Pacer {
    pub fn new(p: &Params) -> Pacer {
        let start = Instant::now();
        Pacer {
            start,
            deadline: start + Duration::from_secs_f64(p.seconds),
            max: p.messages,
            rate: p.rate,
            sent: 0,
        }
    }

    fn due(&self, seq: u64) -> Instant {
        self.start + Duration::from_nanos(seq.saturating_mul(1_000_000_000) / self.rate.max(1))
    }

    /// True when the next message would have to wait for its slot (flush what is
    /// buffered before waiting).
    pub fn ahead(&self) -> bool {
        self.rate > 0 && self.due(self.sent) > Instant::now()
    }

    /// The next sequence number, after waiting for its slot; None when done.
    pub async fn next(&mut self) -> Option<u64> {
        if self.sent >= self.max {
            return None;
        }
        if self.rate > 0 {
            let due = self.due(self.sent);
            if due >= self.deadline {
                return None;
            }
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        if Instant::now() >= self.deadline {
            return None;
        }
        self.sent += 1;
        Some(self.sent - 1)
    }
}

/// How long a requester waits for each reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Request/reply round trips, one at a time, on the --rate schedule: `trip` sends one
/// request with the given stamped payload and returns the reply's payload, which must be
/// the request's own (the latency recorded is the round trip). A failed, late or wrong
/// reply ends the run with an error.
pub async fn round_trips<B: AsRef<[u8]>>(
    p: &Params,
    meter: &mut Meter,
    mut trip: impl AsyncFnMut(&[u8]) -> Res<B>,
) -> Outcome {
    let rx = Receivers::new(1);
    let mut failure = None;
    meter.start();
    let mut pacer = Pacer::new(p);
    while let Some(seq) = pacer.next().await {
        let request = payload(seq, p.size);
        let error = match timeout(REPLY_TIMEOUT, trip(&request)).await {
            Ok(Ok(reply)) if reply.as_ref() == request => {
                rx.list[0].record(reply.as_ref());
                continue;
            }
            Ok(Ok(reply)) => format!(
                "the reply is not the request ({} bytes)",
                reply.as_ref().len()
            ),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no reply within {REPLY_TIMEOUT:?}"),
        };
        failure = Some(format!("request {seq}: {error}"));
        break;
    }
    meter.stop();
    let mut out = Outcome::from_receivers(pacer.sent, pacer.sent, &rx);
    out.errors.extend(failure);
    out
}

/// Tasks of a run (subscriber loops), aborted when the run ends or is abandoned (a run
/// that times out is dropped, and its tasks with it).
#[derive(Default)]
pub struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    pub fn push(&mut self, t: tokio::task::JoinHandle<()>) {
        self.0.push(t);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A short id unique to this run, for topics, queues and client ids.
pub fn run_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
