//! dwbroker as a child process on a data dir of the test's, so that a test can
//! kill it with SIGKILL and start it again on the same directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running dwbroker process; killed (SIGKILL) when dropped.
pub struct Process {
    child: Child,
    /// Its log lines not read yet.
    lines: mpsc::Receiver<String>,
    pub mqtt: SocketAddr,
    pub amqp: SocketAddr,
    pub stomp: SocketAddr,
    pub nats: SocketAddr,
    pub kafka_rest: SocketAddr,
}

impl Process {
    /// Starts the `dwbroker` binary on `data_dir` with every listener on a free
    /// loopback port, and waits until all of them listen.
    pub fn start(data_dir: &Path) -> Process {
        Process::spawn(data_dir.as_os_str())
    }

    /// [`Process::start`] with `--data-dir none`.
    pub fn in_memory() -> Process {
        Process::spawn("none".as_ref())
    }

    /// [`Process::start`] with more arguments.
    pub fn start_with(data_dir: &Path, args: &[&std::ffi::OsStr]) -> Process {
        Process::spawn_with(data_dir.as_os_str(), args)
    }

    fn spawn(data_dir: &std::ffi::OsStr) -> Process {
        Process::spawn_with(data_dir, &[])
    }

    fn spawn_with(data_dir: &std::ffi::OsStr, args: &[&std::ffi::OsStr]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dwbroker"))
            .args(["--mqtt", "127.0.0.1:0", "--amqp", "127.0.0.1:0"])
            .args(["--stomp", "127.0.0.1:0", "--nats", "127.0.0.1:0"])
            .args(["--kafka-rest", "127.0.0.1:0", "--log", "info"])
            .args(["--mqtt-ws", "off", "--stomp-ws", "off"])
            .args(["--http", "127.0.0.1:0", "--nats-monitor", "off"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dwbroker starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so the pipe never fills.
                    continue;
                }
            }
        });
        let addr = |protocol: &str| -> SocketAddr {
            let marker = format!("listening protocol={protocol} addr=");
            loop {
                let line = rx
                    .recv_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|_| panic!("dwbroker did not listen for {protocol}"));
                if let Some(at) = line.find(&marker) {
                    let rest = &line[at + marker.len()..];
                    let text = rest.split_whitespace().next().unwrap_or_default();
                    return text.parse().expect("an address");
                }
            }
        };
        // The listeners start in this order (server.rs).
        let mqtt = addr("mqtt");
        let amqp = addr("amqp");
        let stomp = addr("stomp");
        let nats = addr("nats");
        let kafka_rest = addr("kafka-rest");
        Process {
            child,
            lines: rx,
            mqtt,
            amqp,
            stomp,
            nats,
            kafka_rest,
        }
    }

    /// Waits for a log line containing `needle` (later than those read so far).
    pub fn line_containing(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    /// The address a listener started after the five plain ones is bound to.
    pub fn listening(&self, protocol: &str) -> SocketAddr {
        let marker = format!("listening protocol={protocol} addr=");
        let line = self
            .line_containing(&marker, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("dwbroker did not listen for {protocol}"));
        let rest = &line[line.find(&marker).unwrap() + marker.len()..];
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .parse()
            .expect("an address")
    }

    /// Sends the process a signal (`kill -s NAME`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {name}");
    }

    /// SIGKILL: a crash, nothing flushed or closed.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status of a process that stopped by itself.
    pub fn wait_exit(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data dir for one test (removed when dropped).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary dir")
}

/// The AMQP URI of `addr`.
pub fn amqp_uri(addr: SocketAddr) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// The path of the largest `.jnl` journal file of the storage engine in `dir`.
pub fn journal_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jnl"))
        .max()
}
