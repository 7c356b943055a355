//! CPU time and RSS of a process, from /proc: the broker's and the generator's own.

use std::sync::OnceLock;

use crate::stats::now_ns;

/// Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`, 100 on Linux).
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of `pid` (every thread, dead ones included), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// Resident set size (VmRSS) of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Broker CPU/RSS and generator CPU at the start and the end of a run.
#[derive(Debug, Default, Clone)]
pub struct Meter {
    pid: u32,
    pub t0_ns: u64,
    pub t1_ns: u64,
    broker_cpu0: f64,
    broker_cpu1: f64,
    pub rss0_kib: u64,
    pub rss1_kib: u64,
    gen_cpu0: f64,
    gen_cpu1: f64,
}

impl Meter {
    pub fn new(pid: u32) -> Meter {
        Meter {
            pid,
            ..Meter::default()
        }
    }

    /// Samples before the measured part (connections are set up by now).
    pub fn start(&mut self) {
        let me = std::process::id();
        self.broker_cpu0 = cpu_seconds(self.pid).unwrap_or(f64::NAN);
        self.rss0_kib = rss_kib(self.pid).unwrap_or(0);
        self.gen_cpu0 = cpu_seconds(me).unwrap_or(f64::NAN);
        self.t0_ns = now_ns();
    }

    /// Samples after the last delivery (or the end of waiting for it).
    pub fn stop(&mut self) {
        let me = std::process::id();
        self.t1_ns = now_ns();
        self.broker_cpu1 = cpu_seconds(self.pid).unwrap_or(f64::NAN);
        self.rss1_kib = rss_kib(self.pid).unwrap_or(0);
        self.gen_cpu1 = cpu_seconds(me).unwrap_or(f64::NAN);
    }

    pub fn started(&self) -> bool {
        self.t0_ns != 0
    }

    /// Broker CPU seconds over the run.
    pub fn broker_cpu(&self) -> f64 {
        self.broker_cpu1 - self.broker_cpu0
    }

    /// Generator CPU seconds over the run.
    pub fn gen_cpu(&self) -> f64 {
        self.gen_cpu1 - self.gen_cpu0
    }

    /// Wall seconds from start to stop.
    pub fn wall(&self) -> f64 {
        self.t1_ns.saturating_sub(self.t0_ns) as f64 / 1e9
    }
}
