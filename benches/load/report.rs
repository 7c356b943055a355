//! What a run prints: a human summary and one `RESULT {json}` line per run; in
//! comparison mode the medians per broker and the ratios, and `SUMMARY {json}`.

use serde::Serialize;

use crate::brokers::Target;
use crate::cli::Scenario;
use crate::procstat::Meter;
use crate::stats::{median, quantile_us};
use crate::{Outcome, Params};

/// One run on one broker.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub scenario: &'static str,
    pub label: String,
    pub broker: &'static str,
    pub kind: &'static str,
    pub size: usize,
    pub subs: usize,
    pub rate: u64,
    pub confirms: bool,
    pub connections: usize,
    pub pinned: bool,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub nacked: u64,
    pub elapsed_s: f64,
    /// Messages received per second, first send to last receive.
    pub throughput: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub broker_cpu_s: f64,
    /// Per delivered message (mqtt-idle: per connection).
    pub broker_cpu_us_per_msg: Option<f64>,
    pub broker_rss_mib: f64,
    pub rss_per_conn_kib: Option<f64>,
    pub gen_cpu_s: f64,
    /// Generator CPU in percent of one core over the run.
    pub gen_cpu_pct: Option<f64>,
    pub gen_cpu_us_per_msg: Option<f64>,
    /// Whether any loss fails the run.
    pub strict: bool,
    pub ok: bool,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl RunResult {
    pub fn new(p: &Params, t: &Target, m: &Meter, o: Outcome, pinned: bool) -> RunResult {
        let lost = o.expected.saturating_sub(o.received);
        let per = |x: f64| (o.received > 0).then(|| x * 1e6 / o.received as f64);
        let active = o.last_ns.saturating_sub(m.t0_ns) as f64 / 1e9;
        let throughput = (p.scenario != Scenario::MqttIdle && active > 0.0 && o.received > 0)
            .then(|| o.received as f64 / active);
        let mut errors = o.errors;
        if m.started() && !m.broker_cpu().is_finite() {
            errors.push(format!("broker pid {} could not be sampled", t.pid));
        }
        let loss_fails = p.strict && (lost > 0 || o.nacked > 0);
        let ok = errors.is_empty() && !loss_fails && o.received > 0;
        RunResult {
            scenario: p.scenario.name(),
            label: p.label(),
            broker: t.name,
            kind: t.kind.as_str(),
            size: p.size,
            subs: p.subs,
            rate: p.rate,
            confirms: p.confirms,
            connections: p.connections,
            pinned,
            sent: o.sent,
            expected: o.expected,
            received: o.received,
            lost,
            // Per receiver (o.duplicates), and across competing consumers.
            duplicates: o.duplicates + o.received.saturating_sub(o.expected),
            nacked: o.nacked,
            elapsed_s: m.wall(),
            throughput,
            p50_us: quantile_us(&o.latencies, 0.5),
            p99_us: quantile_us(&o.latencies, 0.99),
            p999_us: quantile_us(&o.latencies, 0.999),
            broker_cpu_s: m.broker_cpu(),
            broker_cpu_us_per_msg: per(m.broker_cpu()).and_then(finite),
            broker_rss_mib: m.rss1_kib as f64 / 1024.0,
            rss_per_conn_kib: o.rss_per_conn_kib,
            gen_cpu_s: m.gen_cpu(),
            gen_cpu_pct: (m.wall() > 0.0)
                .then(|| m.gen_cpu() / m.wall() * 100.0)
                .and_then(finite),
            gen_cpu_us_per_msg: per(m.gen_cpu()).and_then(finite),
            strict: p.strict,
            ok,
            errors,
            notes: o.notes,
        }
    }

    pub fn print(&self) {
        let f = |x: Option<f64>, d: usize| x.map_or("-".to_string(), |v| format!("{v:.d$}"));
        let unit = if self.scenario == "mqtt-idle" {
            "connection"
        } else {
            "msg"
        };
        println!(
            "[{}] {}: sent {}, received {} of {}, lost {}{}{} in {:.2} s",
            self.broker,
            self.label,
            self.sent,
            self.received,
            self.expected,
            self.lost,
            if self.duplicates > 0 {
                format!(", {} duplicates", self.duplicates)
            } else {
                String::new()
            },
            if self.nacked > 0 {
                format!(", {} nacked", self.nacked)
            } else {
                String::new()
            },
            self.elapsed_s
        );
        if self.scenario == "mqtt-idle" {
            println!(
                "  broker RSS {:.1} MiB, {} KiB per idle connection",
                self.broker_rss_mib,
                f(self.rss_per_conn_kib, 2)
            );
        } else {
            println!(
                "  throughput {} msg/s; latency p50 {} us, p99 {} us, p999 {} us",
                f(self.throughput, 0),
                f(self.p50_us, 1),
                f(self.p99_us, 1),
                f(self.p999_us, 1)
            );
        }
        println!(
            "  broker: CPU {:.3} s = {} us/{unit}, RSS {:.1} MiB; generator: CPU {:.3} s = {} % \
             of one core, {} us/{unit}{}",
            self.broker_cpu_s,
            f(self.broker_cpu_us_per_msg, 2),
            self.broker_rss_mib,
            self.gen_cpu_s,
            f(self.gen_cpu_pct, 0),
            f(self.gen_cpu_us_per_msg, 2),
            match self.gen_cpu_pct {
                Some(x) if x >= 90.0 => " (generator-bound)",
                _ => "",
            }
        );
        for n in &self.notes {
            println!("  note: {n}");
        }
        for e in &self.errors {
            println!("  ERROR: {e}");
        }
        if self.strict && self.lost + self.nacked > 0 {
            println!("  FAILED: messages lost where none may be");
        }
        println!(
            "RESULT {}",
            serde_json::to_string(self).expect("serialisable")
        );
    }
}

/// Medians over one broker's runs of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub broker: &'static str,
    pub runs: usize,
    pub throughput: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub cpu_us_per_msg: Option<f64>,
    pub rss_mib: Option<f64>,
    pub rss_per_conn_kib: Option<f64>,
    pub gen_cpu_pct: Option<f64>,
    /// The most lost in one run.
    pub lost_max: u64,
    pub all_ok: bool,
}

impl Side {
    fn of(runs: &[RunResult]) -> Side {
        let m = |f: fn(&RunResult) -> Option<f64>| median(runs.iter().map(f));
        Side {
            broker: runs.first().map_or("-", |r| r.broker),
            runs: runs.len(),
            throughput: m(|r| r.throughput),
            p50_us: m(|r| r.p50_us),
            p99_us: m(|r| r.p99_us),
            p999_us: m(|r| r.p999_us),
            cpu_us_per_msg: m(|r| r.broker_cpu_us_per_msg),
            rss_mib: m(|r| Some(r.broker_rss_mib)),
            rss_per_conn_kib: m(|r| r.rss_per_conn_kib),
            gen_cpu_pct: m(|r| r.gen_cpu_pct),
            lost_max: runs.iter().map(|r| r.lost).max().unwrap_or(0),
            all_ok: runs.iter().all(|r| r.ok),
        }
    }
}

/// dwbroker / reference, per measure.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub throughput: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub cpu_per_msg: Option<f64>,
    pub rss_per_conn: Option<f64>,
}

/// A line of the comparison table: name, dwbroker, reference, ratio, decimals.
type Row<'a> = (&'a str, Option<f64>, Option<f64>, Option<f64>, usize);

/// A scenario in comparison mode.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub label: String,
    pub pairs: usize,
    pub pinned: bool,
    pub dwbroker: Side,
    pub reference: Side,
    pub ratio: Ratios,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => finite(a / b),
        _ => None,
    }
}

impl Summary {
    pub fn new(
        p: &Params,
        pairs: usize,
        pinned: bool,
        dw: &[RunResult],
        re: &[RunResult],
    ) -> Summary {
        let (d, r) = (Side::of(dw), Side::of(re));
        Summary {
            scenario: p.scenario.name(),
            label: p.label(),
            pairs,
            pinned,
            ratio: Ratios {
                throughput: ratio(d.throughput, r.throughput),
                p50: ratio(d.p50_us, r.p50_us),
                p99: ratio(d.p99_us, r.p99_us),
                cpu_per_msg: ratio(d.cpu_us_per_msg, r.cpu_us_per_msg),
                rss_per_conn: ratio(d.rss_per_conn_kib, r.rss_per_conn_kib),
            },
            dwbroker: d,
            reference: r,
        }
    }

    pub fn print(&self) {
        let f = |x: Option<f64>, d: usize| x.map_or("-".to_string(), |v| format!("{v:.d$}"));
        println!();
        println!(
            "== {}: median of {} pair(s){}",
            self.label,
            self.pairs,
            if self.pinned {
                "; pinned: broker on CPU 1, generator on CPU 0"
            } else {
                "; not pinned"
            }
        );
        println!(
            "   {:<24} {:>12} {:>12} {:>12}",
            "", "dwbroker", self.reference.broker, "dw / ref"
        );
        let (d, r, q) = (&self.dwbroker, &self.reference, &self.ratio);
        let rows: [Row; 8] = [
            (
                "throughput msg/s",
                d.throughput,
                r.throughput,
                q.throughput,
                0,
            ),
            ("latency p50 us", d.p50_us, r.p50_us, q.p50, 1),
            ("latency p99 us", d.p99_us, r.p99_us, q.p99, 1),
            ("latency p999 us", d.p999_us, r.p999_us, None, 1),
            (
                "broker CPU us/msg",
                d.cpu_us_per_msg,
                r.cpu_us_per_msg,
                q.cpu_per_msg,
                2,
            ),
            ("broker RSS MiB", d.rss_mib, r.rss_mib, None, 1),
            (
                "RSS KiB/idle conn",
                d.rss_per_conn_kib,
                r.rss_per_conn_kib,
                q.rss_per_conn,
                2,
            ),
            ("generator CPU %", d.gen_cpu_pct, r.gen_cpu_pct, None, 0),
        ];
        for (name, a, b, c, dec) in rows {
            if a.is_none() && b.is_none() {
                continue;
            }
            println!(
                "   {name:<24} {:>12} {:>12} {:>12}",
                f(a, dec),
                f(b, dec),
                f(c, 2)
            );
        }
        println!(
            "   {:<24} {:>12} {:>12}",
            "lost (max of runs)", d.lost_max, r.lost_max
        );
        println!(
            "SUMMARY {}",
            serde_json::to_string(self).expect("serialisable")
        );
    }
}
