//! The NATS front's I/O shell: INFO first, then ops through the codec into the
//! state machine, queued messages out in one write per wake-up, server PINGs on a
//! timer, and the connection's ending (-ERR where nats-server sends one).

pub(crate) mod jetstream;
mod session;

pub(crate) use session::valid_publish_subject;
mod translate;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use dwbroker_codecs::nats::{ClientOp, DecodeError, Limits, ServerCodec, ServerOp};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use session::{Connection, Exit};

use crate::access::{Grant, Login, Peer};
use crate::config::{ClientAuth, NatsTls};
use crate::connections::{Identity, Protocol, Registration};
use crate::protocols::acks;
use crate::protocols::frames::FrameReader;
use crate::protocols::pressure::Pressure;
use crate::protocols::socket;
use crate::router::OutboxLimits;
use crate::server::Context;
use crate::transport::tls::Certificates;
use crate::transport::{Duplex, Goodbye, ReadHalf, WriteHalf};

/// At most this many queued messages are encoded per wake-up, so that a busy
/// subscriber still reads its own socket.
const PUMP_BUDGET: usize = 256;
/// The version announced in INFO. Clients pick features by it (nats-py chooses its
/// JetStream consumer API for 2.9 and later), so it names the nats-server protocol
/// level dwbroker speaks, not dwbroker's own version.
pub(crate) const PROTOCOL_VERSION: &str = "2.10.0";
/// A rough per-message overhead, to turn the pending-bytes limit into a message
/// count for the outbox.
const MESSAGE_OVERHEAD: usize = 64;

/// Serves one NATS connection in plain text, over any byte stream, until it ends;
/// `local` is the listener's address the client reached (INFO names it).
pub(crate) async fn serve<S: Duplex>(
    stream: S,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    ctx: Arc<Context>,
) {
    let registration = ctx.register(Protocol::Nats, peer);
    let info = info_json(&ctx, registration.id(), peer, local, TlsOffer::None);
    serve_after(stream, peer, registration, Some(info), ctx).await;
}

/// What INFO says of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsOffer {
    None,
    /// `tls_required`: the client upgrades after INFO (or started with TLS).
    Required,
    /// `tls_available`: the client may upgrade.
    Available,
}

/// Serves one NATS connection on a listener offering TLS as nats-server does
/// (`--nats-tls`): INFO in plain text, then a TLS handshake if the client starts
/// one (required or optional), or the handshake first (`first`).
pub(crate) async fn serve_negotiated(
    mut stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    tls: Arc<Certificates>,
    ctx: Arc<Context>,
) {
    let registration = ctx.register(Protocol::Nats, peer);
    let conn_id = registration.id();
    let timeout = ctx.config.limits.connect_timeout;
    let upgrade = |stream| crate::transport::tls::handshake(&tls, stream, peer, &"nats", timeout);
    let mode = ctx.config.nats_tls;
    if mode == NatsTls::First {
        let info = info_json(&ctx, conn_id, peer, local, TlsOffer::Required);
        if let Some(stream) = upgrade(stream).await {
            serve_after(stream, peer, registration, Some(info), ctx).await;
        }
        return;
    }
    let offer = match mode {
        NatsTls::Optional => TlsOffer::Available,
        _ => TlsOffer::Required,
    };
    let mut line = bytes::BytesMut::new();
    ServerOp::Info(info_json(&ctx, conn_id, peer, local, offer)).encode(&mut line);
    if socket::write(&mut stream, &line, ctx.router.memory())
        .await
        .is_err()
    {
        return;
    }
    // A TLS client's next bytes are a handshake record; a plain one's are CONNECT.
    let mut first = [0u8; 1];
    let starts_tls = match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == crate::transport::tls::HANDSHAKE_RECORD,
        Ok(_) => return debug!(%peer, "nats: closed after INFO"),
        // Neither a handshake nor CONNECT within the connect timeout: the same end
        // as a plain client's that never sends CONNECT (nats-server's auth_timeout),
        // not a second wait for it.
        Err(_) => {
            info!(%peer, "nats: nothing received after INFO in time");
            return refuse(stream, "Authentication Timeout").await;
        }
    };
    if starts_tls {
        if let Some(stream) = upgrade(stream).await {
            serve_after(stream, peer, registration, None, ctx).await;
        }
    } else if offer == TlsOffer::Required {
        info!(%peer, "nats: a plain-text client on a listener that requires TLS");
        refuse(stream, "Secure Connection - TLS Required").await;
    } else {
        serve_after(stream, peer, registration, None, ctx).await;
    }
}

/// Ends a connection before it is served: `-ERR '<text>'`, then close.
async fn refuse(stream: TcpStream, text: &str) {
    let mut last = bytes::BytesMut::new();
    ServerOp::Err(text.into()).encode(&mut last);
    let (reader, writer) = stream.halves();
    socket::farewell(reader, writer, &last).await;
}

/// Serves a connection from INFO on (`None`: INFO went out before a TLS upgrade).
async fn serve_after<S: Duplex>(
    stream: S,
    peer: SocketAddr,
    registration: Registration,
    info: Option<Bytes>,
    ctx: Arc<Context>,
) {
    let conn_id = registration.id();
    let certificate_user = ctx.access.certificate_user(stream.client_certificate());
    let (read_half, mut writer) = stream.halves();
    let limits = &ctx.config.limits;
    let mut reader = FrameReader::new(
        read_half,
        ServerCodec::new(Limits {
            max_control_line: limits.nats_max_control_line as usize,
            max_payload: limits.nats_max_payload as usize,
        }),
    );
    let session = ctx.router.open_session_with(OutboxLimits {
        max_messages: (limits.nats_max_pending / MESSAGE_OVERHEAD).max(1),
        max_bytes: limits.nats_max_pending,
    });
    let mut conn = Connection::new(
        conn_id,
        session,
        ctx.router.clone(),
        limits.max_subscriptions_per_session,
        limits.nats_max_pending,
        limits.nats_max_pings_out,
        info,
    );
    info!(%peer, conn = conn_id, "nats: connection opened");
    registration.set_session(conn.session().id());
    let client = (peer, conn_id, certificate_user.as_deref());
    let exit = match run(
        &mut conn,
        &mut reader,
        &mut writer,
        client,
        &registration,
        &ctx,
    )
    .await
    {
        Ok(never) => match never {},
        Err(exit) => exit,
    };
    registration.record(conn.counts);
    let name = conn.opts.name.clone().unwrap_or_default();
    let mut last = std::mem::take(&mut conn.out);
    match &exit {
        Exit::Err(text) => {
            warn!(%peer, name = %name, error = text, "nats: protocol error");
            ServerOp::Err((*text).to_owned()).encode(&mut last);
        }
        Exit::Network(why) => info!(%peer, name = %name, why = %why, "nats: connection closed"),
        Exit::SlowConsumer => {
            let total = ctx.count_nats_slow_consumer();
            warn!(%peer, name = %name, slow_consumers = total, "nats: slow consumer disconnected")
        }
        Exit::Shutdown => info!(%peer, name = %name, "nats: closed for shutdown"),
    }
    conn.close();
    if let Some(goodbye) = goodbye(&exit) {
        writer.goodbye(goodbye);
        socket::farewell(reader.into_inner(), writer, &last).await;
    }
}

/// What a WebSocket close frame says when the broker ends a connection for `exit`
/// (as nats-server's status codes do); `None`: the connection is already gone.
fn goodbye(exit: &Exit) -> Option<Goodbye> {
    Some(match exit {
        Exit::Network(_) => return None,
        Exit::Shutdown => Goodbye::GoingAway,
        Exit::SlowConsumer => Goodbye::Policy("Slow Consumer".into()),
        Exit::Err(text @ ("Authorization Violation" | "Authentication Timeout")) => {
            Goodbye::Policy((*text).into())
        }
        Exit::Err(text @ "Maximum Payload Violation") => Goodbye::TooBig((*text).into()),
        Exit::Err(text) => Goodbye::ProtocolError((*text).into()),
    })
}

/// The connected loop; it ends only with an `Exit`.
async fn run<R: ReadHalf, W: WriteHalf>(
    conn: &mut Connection,
    reader: &mut FrameReader<R, ServerCodec>,
    writer: &mut W,
    (peer, conn_id, certificate_user): (SocketAddr, u64, Option<&str>),
    registration: &Registration,
    ctx: &Context,
) -> Result<std::convert::Infallible, Exit> {
    let session = conn.session().clone();
    let period = ctx.config.limits.nats_ping_interval;
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut more = false;
    let mut pressure = Pressure::new(ctx.router.memory());
    let connect_deadline = tokio::time::sleep(ctx.config.limits.connect_timeout);
    tokio::pin!(connect_deadline);
    let mut reloads = ctx.access.reloads();
    loop {
        if !conn.out.is_empty() {
            let written = socket::write(writer, &conn.out, ctx.router.memory()).await;
            // Whatever was not written is not written again at the farewell.
            conn.out.clear();
            written.map_err(|e| match e {
                // nats-server treats a stalled write as a slow consumer.
                socket::WriteError::TimedOut => Exit::SlowConsumer,
                socket::WriteError::Io(e) => Exit::Network(e.to_string()),
            })?;
            // Keep an idle connection small: drop a buffer that grew for a burst.
            if conn.out.capacity() > 64 * 1024 {
                conn.out = bytes::BytesMut::new();
            }
        }
        let pub_acks = conn.pub_acks_head();
        // Under memory pressure a publisher is not read from: its ops wait in the
        // socket. Its PONGs wait too, so no PING is sent or counted meanwhile.
        // Core NATS acknowledges nothing (JetStream acks are publishes).
        let held_back = pressure.holds(conn.publisher, || false);
        tokio::select! {
            biased;
            _ = registration.closing().cancelled() => return Err(Exit::Shutdown),
            // Before the client's input: what it sends after a reload is judged by
            // the new rules.
            Ok(()) = reloads.changed() => conn.reauthorize(ctx.access.regrant(conn.grant()))?,
            op = reader.next(), if !held_back => match op {
                None => return Err(Exit::Network("closed by the client".into())),
                Some(Err(e)) => return Err(decode_exit(e)),
                Some(Ok(op)) => {
                    // CONNECT comes first (anything else before it is refused),
                    // so it is always the op read here, never a buffered one.
                    let connecting = !conn.is_connected();
                    if let (ClientOp::Connect(json), true) = (&op, connecting) {
                        let client = (peer, conn_id, certificate_user);
                        conn.authorize(log_in(ctx, client, json).await?);
                    }
                    let now = crate::protocols::now();
                    // What was delivered to this connection before an op was read
                    // goes out before the op takes effect (clients flush with PING
                    // and expect it before the PONG), as when every op had its own
                    // wake-up.
                    let mut step = |op: ClientOp| {
                        if !matches!(op, ClientOp::Pub { .. } | ClientOp::HPub { .. }) {
                            conn.pump(now, PUMP_BUDGET)?;
                        }
                        conn.handle(op, now)
                    };
                    step(op)?;
                    reader.handle_buffered(|op| step(op.map_err(decode_exit)?))?;
                    if connecting && conn.is_connected() {
                        registration.identify(Identity {
                            user: conn.grant().user().map(str::to_owned),
                            name: conn.opts.name.clone(),
                            lang: conn.opts.lang.clone(),
                            version: conn.opts.version.clone(),
                        });
                    }
                }
            },
            // nats-server's auth_timeout: a client that never sends CONNECT
            // does not keep its connection.
            _ = &mut connect_deadline, if !conn.is_connected() => {
                return Err(Exit::Err("Authentication Timeout"));
            }
            _ = pings.tick() => if !held_back {
                conn.ping()?;
            },
            _ = pressure.relieved(), if held_back => pings.reset(),
            _ = acks::committed(&pub_acks) => {}
            _ = session.wait(), if !more => {}
            _ = std::future::ready(()), if more => {}
        }
        let now = crate::protocols::now();
        conn.release_pub_acks(now);
        let pumped = conn.pump(now, PUMP_BUDGET);
        registration.record(conn.counts);
        registration.set_subscriptions(conn.subscription_count());
        more = pumped?;
    }
}

/// The credentials of a CONNECT (the session reads the other options).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Credentials {
    user: Option<String>,
    pass: Option<String>,
    auth_token: Option<String>,
    nkey: Option<String>,
    sig: Option<String>,
}

/// Authenticates a CONNECT's nkey and signature of the nonce, user and password,
/// or token, or the client certificate's user (all ignored while the broker has no
/// users, as nats-server without authorization); a CONNECT that is not JSON is
/// left to the session to refuse.
async fn log_in(
    ctx: &Context,
    (peer, conn_id, certificate_user): (SocketAddr, u64, Option<&str>),
    json: &[u8],
) -> Result<Grant, Exit> {
    let creds: Credentials = serde_json::from_slice(json).unwrap_or_default();
    let nonce = creds.nkey.as_ref().map(|_| ctx.nats_nonce(conn_id));
    let login = match &creds {
        Credentials {
            nkey: Some(key), ..
        } => Login::Nkey {
            key,
            nonce: nonce.as_deref().unwrap_or_default(),
            signature: creds.sig.as_deref().unwrap_or_default(),
        },
        Credentials {
            user: Some(user), ..
        } => Login::Password {
            user,
            password: creds.pass.as_deref().unwrap_or_default().as_bytes(),
        },
        Credentials {
            auth_token: Some(token),
            ..
        } => Login::Token(token),
        _ => Login::Anonymous,
    };
    ctx.access
        .authenticate_optional(
            Peer {
                ip: peer.ip(),
                via: Protocol::Nats,
            },
            login.or_certificate(certificate_user),
        )
        .await
        .map_err(|_| Exit::Err("Authorization Violation"))
}

/// The exit for input the codec refused, with nats-server's -ERR text.
fn decode_exit(e: DecodeError) -> Exit {
    match e {
        DecodeError::Io(io) => Exit::Network(io.to_string()),
        other => Exit::Err(other.err_message()),
    }
}

/// The INFO a client reads first, with the fields clients rely on.
fn info_json(
    ctx: &Context,
    conn_id: u64,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    tls: TlsOffer,
) -> Bytes {
    let mut info = serde_json::json!({
        "server_id": ctx.server_id(),
        "server_name": "dwbroker",
        "version": PROTOCOL_VERSION,
        "proto": 1,
        "go": "dwbroker",
        "host": local.map(|a| a.ip().to_string()).unwrap_or_default(),
        "port": local.map(|a| a.port()).unwrap_or_default(),
        "headers": true,
        "jetstream": true,
        "max_payload": ctx.config.limits.nats_max_payload,
        "client_id": conn_id,
        "client_ip": peer.ip().to_string(),
    });
    if !ctx.access.is_open() {
        info["auth_required"] = true.into();
    }
    if ctx.access.has_nkeys() {
        info["nonce"] = ctx.nats_nonce(conn_id).into();
    }
    let verify = ctx
        .config
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca.is_some() && t.client_auth == ClientAuth::Required);
    match tls {
        TlsOffer::None => {}
        TlsOffer::Required => {
            info["tls_required"] = true.into();
            info["tls_verify"] = verify.into();
        }
        TlsOffer::Available => {
            info["tls_available"] = true.into();
            info["tls_verify"] = verify.into();
        }
    }
    Bytes::from(info.to_string())
}
