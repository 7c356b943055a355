//! `dwbroker`: command line -> `Config` -> `server::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dwbroker::config::{parse_fsync, ClientAuth, Config, DataDir, Listen, NatsTls};

/// dwbroker, the DataWarehouse message broker: MQTT 3.1.1/5.0, AMQP 0-9-1, STOMP,
/// NATS and Kafka REST on one in-process bus.
///
/// Every listener flag takes HOST:PORT (port 0 picks a free port) or `off`.
/// Defaults bind to loopback. Flags override the config file, which overrides the
/// defaults. Listeners of protocols not built yet are not started.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (see README.md for every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// MQTT listener [default: 127.0.0.1:1883].
    #[arg(long, value_name = "ADDR")]
    mqtt: Option<String>,
    /// AMQP 0-9-1 listener [default: 127.0.0.1:5672].
    #[arg(long, value_name = "ADDR")]
    amqp: Option<String>,
    /// STOMP listener [default: 127.0.0.1:61613].
    #[arg(long, value_name = "ADDR")]
    stomp: Option<String>,
    /// NATS listener [default: 127.0.0.1:4222].
    #[arg(long, value_name = "ADDR")]
    nats: Option<String>,
    /// Kafka REST Proxy v2 listener [default: 127.0.0.1:8082].
    #[arg(long = "kafka-rest", value_name = "ADDR")]
    kafka_rest: Option<String>,
    /// The schema registry alone (it is also served on the Kafka REST
    /// listener) [default: off].
    #[arg(long = "schema-registry", value_name = "ADDR")]
    schema_registry: Option<String>,
    /// MQTT over TLS, e.g. 127.0.0.1:8883 (needs --tls-cert and --tls-key)
    /// [default: off].
    #[arg(long, value_name = "ADDR")]
    mqtts: Option<String>,
    /// AMQP 0-9-1 over TLS, e.g. 127.0.0.1:5671 [default: off].
    #[arg(long, value_name = "ADDR")]
    amqps: Option<String>,
    /// STOMP over TLS, e.g. 127.0.0.1:61614 [default: off].
    #[arg(long, value_name = "ADDR")]
    stomps: Option<String>,
    /// MQTT over WebSocket, path /mqtt [default: 127.0.0.1:8083].
    #[arg(long = "mqtt-ws", value_name = "ADDR")]
    mqtt_ws: Option<String>,
    /// MQTT over secure WebSocket [default: off].
    #[arg(long = "mqtt-wss", value_name = "ADDR")]
    mqtt_wss: Option<String>,
    /// STOMP over WebSocket, path /ws (RabbitMQ Web-STOMP) [default: 127.0.0.1:15674].
    #[arg(long = "stomp-ws", value_name = "ADDR")]
    stomp_ws: Option<String>,
    /// STOMP over secure WebSocket [default: off].
    #[arg(long = "stomp-wss", value_name = "ADDR")]
    stomp_wss: Option<String>,
    /// NATS over WebSocket (nats.ws; nats-server's `websocket` block) [default: off].
    #[arg(long = "nats-ws", value_name = "ADDR")]
    nats_ws: Option<String>,
    /// NATS over secure WebSocket [default: off].
    #[arg(long = "nats-wss", value_name = "ADDR")]
    nats_wss: Option<String>,
    /// Health (/healthz, /readyz), Prometheus /metrics, the JSON API (/api/...)
    /// and the dashboard (/) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// nats-server's monitoring endpoints (/varz, /connz, /subsz, /jsz,
    /// /healthz) [default: 127.0.0.1:8222].
    #[arg(long = "nats-monitor", value_name = "ADDR")]
    nats_monitor: Option<String>,
    /// PEM certificate chain the TLS listeners present (the server's first).
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA(s) that TLS clients' certificates must chain to; clients are asked
    /// for a certificate.
    #[arg(long = "tls-client-ca", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: `required` (no certificate, no connection) or
    /// `optional` [default: required].
    #[arg(long = "tls-client-auth", value_name = "MODE")]
    tls_client_auth: Option<String>,
    /// TLS on the NATS listener, as nats-server: `required` (INFO says
    /// tls_required and the client upgrades), `optional` (tls_available) or
    /// `first` (the client starts with a TLS handshake) [default: off; the flag
    /// alone: required].
    #[arg(long = "nats-tls", value_name = "MODE", num_args = 0..=1, default_missing_value = "required")]
    nats_tls: Option<String>,
    /// The HTTP listeners (Kafka REST, schema registry, HTTP, NATS monitoring)
    /// serve HTTPS only.
    #[arg(long = "http-tls")]
    http_tls: bool,
    /// Accept anonymous clients on listeners that are not on loopback.
    #[arg(long)]
    allow_anonymous: bool,
    /// The password file (`dwbroker passwd` writes it): with users, every client
    /// must log in (see [auth] in README.md).
    #[arg(long = "password-file", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Log filter, e.g. `info`, `debug` or `dwbroker=trace` [default: info (the
    /// storage engine: warn), or RUST_LOG].
    #[arg(long, value_name = "LEVEL")]
    log: Option<String>,
    /// Where durable state lives (created on first start), or `none` to keep
    /// everything in memory [default: ./dwbroker-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// When stored state is fsynced: `always` (before any publisher is
    /// acknowledged), `batch` (written before, fsynced within 100 ms) or `never`
    /// (written before; the kernel decides) [default: always].
    #[arg(long, value_name = "MODE")]
    fsync: Option<String>,
    /// Partitions of a Kafka topic created by its first produce [default: 1].
    #[arg(long = "kafka-partitions", value_name = "N")]
    kafka_partitions: Option<u32>,
}

/// Commands other than running the broker.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Creates or updates a user in a password file (argon2id; the file is
    /// created with mode 0600).
    Passwd {
        /// The password file.
        file: PathBuf,
        /// The user.
        user: String,
        /// The password (without it, asked for on the terminal).
        #[arg(long)]
        password: Option<String>,
    },
}

/// `dwbroker passwd FILE USER [--password P]`.
fn passwd(file: &std::path::Path, user: &str, password: Option<String>) -> Result<(), String> {
    let password = match password {
        Some(p) => p,
        None => {
            let first = rpassword::prompt_password(format!("password for {user}: "))
                .map_err(|e| format!("cannot read the password: {e}"))?;
            let again = rpassword::prompt_password("again: ")
                .map_err(|e| format!("cannot read the password: {e}"))?;
            if first != again {
                return Err("the passwords differ".into());
            }
            first
        }
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    dwbroker::set_password(file, user, password.as_bytes())
}

fn build_config(cli: Cli) -> Result<Config, dwbroker::config::ConfigError> {
    let mut config = Config::default();
    if let Some(path) = &cli.config {
        config.merge_file(path)?;
    }
    let flags = [
        (&mut config.listeners.mqtt, cli.mqtt),
        (&mut config.listeners.amqp, cli.amqp),
        (&mut config.listeners.stomp, cli.stomp),
        (&mut config.listeners.nats, cli.nats),
        (&mut config.listeners.kafka_rest, cli.kafka_rest),
        (&mut config.listeners.schema_registry, cli.schema_registry),
        (&mut config.listeners.mqtts, cli.mqtts),
        (&mut config.listeners.amqps, cli.amqps),
        (&mut config.listeners.stomps, cli.stomps),
        (&mut config.listeners.mqtt_ws, cli.mqtt_ws),
        (&mut config.listeners.mqtt_wss, cli.mqtt_wss),
        (&mut config.listeners.stomp_ws, cli.stomp_ws),
        (&mut config.listeners.stomp_wss, cli.stomp_wss),
        (&mut config.listeners.nats_ws, cli.nats_ws),
        (&mut config.listeners.nats_wss, cli.nats_wss),
        (&mut config.listeners.http, cli.http),
        (&mut config.listeners.nats_monitor, cli.nats_monitor),
    ];
    for (slot, value) in flags {
        if let Some(text) = value {
            *slot = Listen::parse(&text)?;
        }
    }
    if let (Some(cert), Some(key)) = (cli.tls_cert, cli.tls_key) {
        config.tls = Some(dwbroker::config::Tls::new(cert, key));
    }
    if let Some(tls) = &mut config.tls {
        if let Some(ca) = cli.tls_client_ca {
            tls.client_ca = Some(ca);
        }
        if let Some(mode) = &cli.tls_client_auth {
            tls.client_auth = ClientAuth::parse(mode)?;
        }
    } else if cli.tls_client_ca.is_some() || cli.tls_client_auth.is_some() {
        return Err(dwbroker::config::ConfigError::Invalid(
            "--tls-client-ca and --tls-client-auth need --tls-cert and --tls-key".into(),
        ));
    }
    if let Some(mode) = &cli.nats_tls {
        config.nats_tls = NatsTls::parse(mode)?;
    }
    if cli.http_tls {
        config.http_tls = true;
    }
    if cli.allow_anonymous {
        config.allow_anonymous = true;
    }
    if cli.password_file.is_some() {
        config.auth.password_file = cli.password_file;
    }
    if cli.log.is_some() {
        config.log = cli.log;
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = DataDir::parse(dir);
    }
    if let Some(n) = cli.kafka_partitions {
        config.kafka_partitions = dwbroker::config::check_partitions(n)?;
    }
    if let Some(mode) = &cli.fsync {
        config.fsync = parse_fsync(mode)?;
    }
    config.validate()?;
    Ok(config)
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let given = level
        .map(str::to_owned)
        .or_else(|| std::env::var(EnvFilter::DEFAULT_ENV).ok())
        .unwrap_or_else(|| "info".to_owned());
    // The storage engine's own info lines (flushes, compactions) are noise; its
    // warnings and errors are not. A filter that names it decides for itself.
    let directives = if given.contains("fjall") || given.contains("lsm_tree") {
        given
    } else {
        format!("{given},fjall=warn,lsm_tree=warn")
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(directives))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(Command::Passwd {
        file,
        user,
        password,
    }) = cli.command.take()
    {
        return match passwd(&file, &user, password) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dwbroker passwd: {e}");
                ExitCode::from(2)
            }
        };
    }
    let config = match build_config(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dwbroker: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dwbroker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dwbroker::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("dwbroker: {e}");
            ExitCode::FAILURE
        }
    }
}
