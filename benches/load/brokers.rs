//! The brokers under test: dwbroker (started and stopped here) and the reference brokers
//! (started by ../shared/tools/reference-brokers.sh; found by their pid files).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio_rustls::rustls::ClientConfig;

use crate::cli::Protocol;
use crate::pki::Pki;
use crate::Res;

/// dwbroker's fixed ports (MQTT, AMQP, STOMP, NATS, Kafka REST, MQTT over TLS): clear
/// of its defaults and of the reference brokers', and below the ephemeral port range
/// (32768-60999) that client sockets take theirs from.
const DW_PORTS: [u16; 6] = [11883, 15675, 16613, 14222, 18082, 18883];

/// The reference brokers' ports (reference-brokers.sh).
const MOSQUITTO: u16 = 21883;
const NATS_SERVER: u16 = 24222;
const RABBIT_AMQP: u16 = 25673;
const RABBIT_STOMP: u16 = 26614;
/// The harness's own mosquitto for mqtt-idle.
const PRIVATE_MOSQUITTO: u16 = 21893;
/// The harness's own mosquitto and nats-server with TLS listeners (`--tls`).
const TLS_MOSQUITTO: u16 = 28883;
const TLS_NATS_SERVER: u16 = 24223;

/// dwbroker's per-session queue limits, raised to what the reference mosquitto is given
/// (max_queued_messages 1000000, max_queued_bytes unlimited) so that neither drops
/// what the other would hold.
/// The user `--acl` logs the clients in as.
const ACL_USER: &str = "load";
const ACL_PASSWORD: &str = "load-password";

/// The `[auth]` part of dwbroker's configuration for `--acl n`: a password file
/// with [`ACL_USER`] (written by `dwbroker passwd`) and n publish and n subscribe
/// rules, the one that allows the scenarios' `load.>` subjects last, so that a
/// decision not yet cached goes through all of them.
fn acl_config(bin: &Path, n: usize) -> Res<String> {
    let file = std::env::temp_dir().join(format!("dwbroker-load-{}.pw", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let status = Command::new(bin)
        .arg("passwd")
        .arg(&file)
        .args([ACL_USER, "--password", ACL_PASSWORD])
        .status()?;
    if !status.success() {
        return Err(format!("dwbroker passwd failed: {status}").into());
    }
    let mut rules: Vec<String> = (1..n).map(|i| format!("\"other.{i}.>\"")).collect();
    rules.push("\"load.>\"".into());
    let rules = rules.join(", ");
    Ok(format!(
        "\n[auth]\npassword_file = \"{}\"\n[auth.permissions.{ACL_USER}]\npublish = [{rules}]\nsubscribe = [{rules}]\n",
        file.display()
    ))
}

const DW_CONFIG: &str = "\
# written by benches/load: per-session queue limits like the reference mosquitto's
[limits]
max_queued_messages = 1000000
max_queued_bytes = 1073741824
";

/// Whether a broker is ours or the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dwbroker,
    Reference,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dwbroker => "dwbroker",
            Kind::Reference => "reference",
        }
    }
}

/// One broker as a scenario sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    /// dwbroker, mosquitto, nats-server or rabbitmq.
    pub name: &'static str,
    /// The process whose CPU and RSS are sampled.
    pub pid: u32,
    /// The scenario's protocol listener.
    pub addr: SocketAddr,
    /// The same broker's AMQP listener (STOMP queues are deleted through it).
    pub amqp: SocketAddr,
    /// Set when `addr` is a TLS listener.
    pub tls: Option<TlsClient>,
    /// User and password the clients log in with (`--acl`).
    pub login: Option<(String, String)>,
}

/// What a client needs to reach the TLS listeners: trust in the harness's CA.
#[derive(Clone)]
pub struct TlsClient {
    /// For rustls clients (rumqttc).
    pub config: Arc<ClientConfig>,
    /// For async-nats, which builds its own configuration from the file.
    pub ca_file: PathBuf,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient(CA {})", self.ca_file.display())
    }
}

impl TlsClient {
    pub fn new(pki: &Pki) -> TlsClient {
        TlsClient {
            config: pki.client(),
            ca_file: pki.ca_file.clone(),
        }
    }
}

/// How long a started dwbroker may take to listen.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `addr` accepts a connection.
fn wait_port(addr: SocketAddr, within: Duration, child: Option<&mut Child>) -> Res<()> {
    let deadline = Instant::now() + within;
    let mut child = child;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(c) = child.as_deref_mut() {
            if let Some(status) = c.try_wait()? {
                return Err(
                    format!("the broker exited before listening on {addr}: {status}").into(),
                );
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on {addr}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The fixed ports if all are free, else ones the kernel picks.
fn pick_ports() -> Res<[u16; 6]> {
    let free = DW_PORTS
        .iter()
        .all(|p| TcpListener::bind(loopback(*p)).is_ok());
    if free {
        return Ok(DW_PORTS);
    }
    let ls: Vec<TcpListener> = (0..DW_PORTS.len())
        .map(|_| TcpListener::bind(loopback(0)))
        .collect::<Result<_, _>>()?;
    let mut ports = [0u16; 6];
    for (p, l) in ports.iter_mut().zip(&ls) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// The flags an earlier build (in an A/B run) may not know, if `bin` knows them:
/// `--data-dir DIR`, and the WebSocket listeners (fixed default ports) switched off.
fn optional_args(bin: &Path, data_dir: &Path) -> Vec<std::ffi::OsString> {
    let help = Command::new(bin)
        .arg("--help")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if help.contains("--data-dir") {
        args.extend(["--data-dir".into(), data_dir.into()]);
    }
    if help.contains("--mqtt-ws") {
        args.extend(["--mqtt-ws", "off", "--stomp-ws", "off"].map(Into::into));
    }
    if help.contains("--nats-monitor") {
        args.extend(["--http", "off", "--nats-monitor", "off"].map(Into::into));
    }
    args
}

/// A dwbroker process started by the harness; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Dwbroker {
    child: Child,
    config: PathBuf,
    /// Its data dir, removed when it stops if `own_data_dir`.
    data_dir: PathBuf,
    own_data_dir: bool,
    mqtt: SocketAddr,
    amqp: SocketAddr,
    stomp: SocketAddr,
    nats: SocketAddr,
    kafka_rest: SocketAddr,
    /// With `--tls`: its MQTT-over-TLS listener; NATS then requires TLS.
    tls: Option<(SocketAddr, TlsClient)>,
    /// With `--acl`: the user the clients log in as.
    login: Option<(String, String)>,
}

impl Dwbroker {
    /// Starts dwbroker on a data dir of its own, removed when it stops; with `tls`,
    /// MQTT on `--mqtts` and NATS with `--nats-tls` (required) using its certificate.
    pub fn start(bin: &Path, tls: Option<&Pki>, acl: usize) -> Res<Dwbroker> {
        let data_dir =
            std::env::temp_dir().join(format!("dwbroker-load-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut config = DW_CONFIG.to_owned();
        let login = if acl > 0 {
            config.push_str(&acl_config(bin, acl)?);
            Some((ACL_USER.to_owned(), ACL_PASSWORD.to_owned()))
        } else {
            None
        };
        let mut b = Dwbroker::start_with_config(bin, &data_dir, &config, tls)?;
        b.own_data_dir = true;
        b.login = login;
        Ok(b)
    }

    /// Starts dwbroker on `data_dir` (kept when it stops: another start on it
    /// recovers what it stored).
    pub fn start_on(bin: &Path, data_dir: &Path) -> Res<Dwbroker> {
        Dwbroker::start_with_limits(bin, data_dir, "")
    }

    /// [`Dwbroker::start_on`] with `limits` (TOML lines) added to the config's
    /// `[limits]`.
    pub fn start_with_limits(bin: &Path, data_dir: &Path, limits: &str) -> Res<Dwbroker> {
        Dwbroker::start_with_config(bin, data_dir, &format!("{DW_CONFIG}{limits}"), None)
    }

    /// [`Dwbroker::start_on`] with `extra` (TOML) after the harness's configuration.
    pub fn start_on_with(bin: &Path, data_dir: &Path, extra: &str) -> Res<Dwbroker> {
        Dwbroker::start_with_config(bin, data_dir, &format!("{DW_CONFIG}{extra}"), None)
    }

    /// [`Dwbroker::start_on`] with the broker's own default limits but for `limits`
    /// (TOML lines of `[limits]`), not the harness's generous session queues.
    pub fn start_with_default_limits(bin: &Path, data_dir: &Path, limits: &str) -> Res<Dwbroker> {
        Dwbroker::start_with_config(bin, data_dir, &format!("[limits]\n{limits}"), None)
    }

    fn start_with_config(
        bin: &Path,
        data_dir: &Path,
        config_text: &str,
        tls: Option<&Pki>,
    ) -> Res<Dwbroker> {
        if !bin.exists() {
            return Err(format!(
                "{} not found: build it with `cargo build --release --bin dwbroker`",
                bin.display()
            )
            .into());
        }
        let [mqtt, amqp, stomp, nats, kafka_rest, mqtts] = pick_ports()?.map(loopback);
        let mut tls_args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(pki) = tls {
            tls_args.extend(["--tls-cert".into(), pki.cert.clone().into_os_string()]);
            tls_args.extend(["--tls-key".into(), pki.key.clone().into_os_string()]);
            tls_args.extend(["--mqtts", &mqtts.to_string(), "--nats-tls"].map(Into::into));
        }
        let config =
            std::env::temp_dir().join(format!("dwbroker-load-{}.toml", std::process::id()));
        std::fs::write(&config, config_text)?;
        // With --pin the generator has already pinned itself to one CPU, and a child
        // inherits that mask; tokio sizes its worker pool from the CPUs it may use.
        // Start dwbroker on every online CPU, as the reference brokers were started,
        // so that it gets its usual thread count before it is pinned like them.
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")?;
        let mut child = Command::new("taskset")
            .args(["-c", online.trim()])
            .arg(bin)
            .arg("--config")
            .arg(&config)
            .args(["--mqtt", &mqtt.to_string()])
            .args(["--amqp", &amqp.to_string()])
            .args(["--stomp", &stomp.to_string()])
            .args(["--nats", &nats.to_string()])
            .args(["--kafka-rest", &kafka_rest.to_string(), "--log", "warn"])
            .args(optional_args(bin, data_dir))
            .args(tls_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        // Listening comes after recovery, which a large data dir on a busy machine
        // can make take tens of seconds (the soak's restarts).
        let listeners = [mqtt, amqp, stomp, nats].into_iter();
        for addr in listeners.chain(tls.map(|_| mqtts)) {
            if let Err(e) = wait_port(addr, RECOVERY_TIMEOUT, Some(&mut child)) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
        println!(
            "dwbroker {} (pid {}): MQTT {mqtt}, AMQP {amqp}, STOMP {stomp}, NATS {nats}",
            bin.display(),
            child.id()
        );
        Ok(Dwbroker {
            child,
            config,
            data_dir: data_dir.to_owned(),
            own_data_dir: false,
            mqtt,
            amqp,
            stomp,
            nats,
            kafka_rest,
            tls: tls.map(|pki| (mqtts, TlsClient::new(pki))),
            login: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn target(&self, protocol: Protocol) -> Target {
        let tls = self.tls.as_ref();
        Target {
            kind: Kind::Dwbroker,
            name: "dwbroker",
            pid: self.pid(),
            addr: match protocol {
                Protocol::Mqtt => tls.map_or(self.mqtt, |(mqtts, _)| *mqtts),
                Protocol::Nats => self.nats,
                Protocol::Amqp => self.amqp,
                Protocol::Stomp => self.stomp,
                Protocol::Kafka => self.kafka_rest,
            },
            amqp: self.amqp,
            tls: tls
                .filter(|_| matches!(protocol, Protocol::Mqtt | Protocol::Nats))
                .map(|(_, client)| client.clone()),
            login: self.login.clone(),
        }
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed or closed).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Res<()> {
        match self.child.try_wait()? {
            Some(status) => Err(format!("dwbroker exited: {status}").into()),
            None => Ok(()),
        }
    }
}

/// Stops a child of ours: SIGTERM, up to 5 s to exit, then SIGKILL.
fn stop_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

impl Drop for Dwbroker {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        let _ = std::fs::remove_file(&self.config);
        if self.own_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// A mosquitto of the harness's own, with the reference configuration (from
/// reference-brokers.sh) on another port: mqtt-idle measures RSS growth in a fresh
/// process, and the shared reference mosquitto is not ours to restart. With `--tls`
/// its listener takes TLS.
pub struct PrivateMosquitto {
    child: Child,
    config: PathBuf,
    addr: SocketAddr,
    tls: Option<TlsClient>,
}

/// `preferred` if it is free, else a port the kernel picks.
fn free_port(preferred: u16) -> Res<u16> {
    if TcpListener::bind(loopback(preferred)).is_ok() {
        return Ok(preferred);
    }
    Ok(TcpListener::bind(loopback(0))?.local_addr()?.port())
}

/// Starts `command`, waiting up to 10 s for it to listen on `addr`.
fn start_listening(mut command: Command, addr: SocketAddr) -> Res<Child> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", command.get_program()))?;
    if let Err(e) = wait_port(addr, Duration::from_secs(10), Some(&mut child)) {
        stop_child(&mut child);
        return Err(e);
    }
    Ok(child)
}

/// A Debian package's binary, wherever it is installed (else found on the PATH).
fn installed(name: &str) -> String {
    ["/usr/sbin/", "/usr/bin/"]
        .into_iter()
        .map(|dir| format!("{dir}{name}"))
        .find(|b| Path::new(b).exists())
        .unwrap_or_else(|| name.to_owned())
}

impl PrivateMosquitto {
    pub fn start(tls: Option<&Pki>) -> Res<PrivateMosquitto> {
        let port = free_port(if tls.is_some() {
            TLS_MOSQUITTO
        } else {
            PRIVATE_MOSQUITTO
        })?;
        let config = std::env::temp_dir().join(format!(
            "dwbroker-load-mosquitto-{}-{port}.conf",
            std::process::id()
        ));
        let certificate = tls.map_or(String::new(), |pki| {
            format!(
                "certfile {}\nkeyfile {}\n",
                pki.cert.display(),
                pki.key.display()
            )
        });
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\n{certificate}allow_anonymous true\npersistence false\n\
                 max_queued_messages 1000000\nmax_queued_bytes 0\nlog_dest stderr\n\
                 log_type error\nlog_type warning\nconnection_messages false\n"
            ),
        )?;
        let addr = loopback(port);
        let mut command = Command::new(installed("mosquitto"));
        command.arg("-c").arg(&config);
        let child = start_listening(command, addr)?;
        Ok(PrivateMosquitto {
            child,
            config,
            addr,
            tls: tls.map(TlsClient::new),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn target(&self) -> Target {
        Target {
            kind: Kind::Reference,
            name: "mosquitto",
            pid: self.pid(),
            addr: self.addr,
            amqp: loopback(RABBIT_AMQP),
            tls: self.tls.clone(),
            login: None,
        }
    }
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        let _ = std::fs::remove_file(&self.config);
    }
}

/// The reference side of `--tls`: a mosquitto and a nats-server of the harness's own,
/// each with a TLS listener on the harness's certificate (nats-server as
/// reference-brokers.sh starts it, but without JetStream, which core NATS runs do
/// not use).
pub struct TlsReference {
    mosquitto: PrivateMosquitto,
    nats: Child,
    nats_addr: SocketAddr,
    tls: TlsClient,
}

impl TlsReference {
    pub fn start(pki: &Pki) -> Res<TlsReference> {
        let mosquitto = PrivateMosquitto::start(Some(pki))?;
        let nats_addr = loopback(free_port(TLS_NATS_SERVER)?);
        // Its log (lines at start, one for the harness's port probe, which connects
        // without a handshake) goes to a file.
        let log = pki.path("nats-server.log");
        let port = nats_addr.port().to_string();
        let mut command = Command::new(installed("nats-server"));
        command
            .args(["-a", "127.0.0.1", "-p", &port, "--tls", "--tlscert"])
            .arg(&pki.cert)
            .arg("--tlskey")
            .arg(&pki.key)
            .arg("-l")
            .arg(&log);
        let nats = start_listening(command, nats_addr)?;
        println!(
            "reference brokers with TLS of our own: mosquitto pid {} ({}), nats-server pid {} \
             ({nats_addr}, log {})",
            mosquitto.pid(),
            mosquitto.addr,
            nats.id(),
            log.display()
        );
        Ok(TlsReference {
            mosquitto,
            nats,
            nats_addr,
            tls: TlsClient::new(pki),
        })
    }

    pub fn pids(&self) -> [u32; 2] {
        [self.mosquitto.pid(), self.nats.id()]
    }

    pub fn target(&self, protocol: Protocol) -> Res<Target> {
        match protocol {
            Protocol::Mqtt => Ok(self.mosquitto.target()),
            Protocol::Nats => Ok(Target {
                kind: Kind::Reference,
                name: "nats-server",
                pid: self.nats.id(),
                addr: self.nats_addr,
                amqp: loopback(RABBIT_AMQP),
                tls: Some(self.tls.clone()),
                login: None,
            }),
            _ => Err("--tls runs cover MQTT and NATS".into()),
        }
    }
}

impl Drop for TlsReference {
    fn drop(&mut self) {
        stop_child(&mut self.nats);
    }
}

/// The running reference brokers.
pub struct Reference {
    pub mosquitto: u32,
    pub nats: u32,
    pub rabbitmq: u32,
}

fn read_pid(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

impl Reference {
    /// Finds the brokers by the pid files reference-brokers.sh writes in `ref_dir`
    /// (rabbit/rabbit.pid is the Erlang VM, beam.smp).
    pub fn find(ref_dir: &Path) -> Res<Reference> {
        let hint = "start them with `bash ../shared/tools/reference-brokers.sh start`";
        let pid = |f: &str| {
            read_pid(&ref_dir.join(f)).ok_or_else(|| {
                format!(
                    "reference broker not running ({} has no live pid): {hint}",
                    ref_dir.join(f).display()
                )
            })
        };
        let r = Reference {
            mosquitto: pid("mosquitto.pid")?,
            nats: pid("nats.pid")?,
            rabbitmq: pid("rabbit/rabbit.pid")?,
        };
        println!(
            "reference brokers: mosquitto pid {} (127.0.0.1:{MOSQUITTO}), nats-server pid {} \
             (127.0.0.1:{NATS_SERVER}), rabbitmq beam.smp pid {} (AMQP 127.0.0.1:{RABBIT_AMQP}, \
             STOMP 127.0.0.1:{RABBIT_STOMP})",
            r.mosquitto, r.nats, r.rabbitmq
        );
        Ok(r)
    }

    pub fn pids(&self) -> [u32; 3] {
        [self.mosquitto, self.nats, self.rabbitmq]
    }

    pub fn target(&self, protocol: Protocol) -> Res<Target> {
        let (name, pid, port) = match protocol {
            Protocol::Mqtt => ("mosquitto", self.mosquitto, MOSQUITTO),
            Protocol::Nats => ("nats-server", self.nats, NATS_SERVER),
            Protocol::Amqp => ("rabbitmq", self.rabbitmq, RABBIT_AMQP),
            Protocol::Stomp => ("rabbitmq", self.rabbitmq, RABBIT_STOMP),
            Protocol::Kafka => {
                return Err("there is no reference Kafka REST proxy on this machine".into())
            }
        };
        let addr = loopback(port);
        wait_port(addr, Duration::from_secs(2), None)?;
        Ok(Target {
            kind: Kind::Reference,
            name,
            pid,
            addr,
            amqp: loopback(RABBIT_AMQP),
            tls: None,
            login: None,
        })
    }
}

/// The CPU affinity list of `pid` (`taskset -cp`), e.g. "0,1" or "0-1".
pub fn affinity(pid: u32) -> Option<String> {
    let out = Command::new("taskset")
        .args(["-cp", &pid.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.rsplit(':').next()?.trim().to_string())
}

/// Sets the CPU affinity of every thread of `pid` to `cpus` (`taskset -a -cp`).
pub fn pin(pid: u32, cpus: &str) -> Res<()> {
    let status = Command::new("taskset")
        .args(["-a", "-cp", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("taskset -a -cp {cpus} {pid} failed: {status}").into());
    }
    Ok(())
}
