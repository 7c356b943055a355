//! The MQTT front's I/O shell: reads packets with the codec, runs them through the
//! session state machine, writes what it produced in one batch per wake-up, and
//! applies the connection's ending (DISCONNECT, will, session parking, takeover).
//!
//! Policy lives in `session.rs` and `registry.rs`; this file only moves bytes and
//! waits on the socket, the session's queue, timers, takeover and shutdown.

mod alias;
mod registry;
mod session;
mod translate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dwbroker_codecs::mqtt::{
    Auth, Codec, DecodeError, Disconnect, Packet, Properties, ProtocolVersion, ReasonCode,
};
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

pub(crate) use registry::Registry;
use registry::{Handoff, Prior, SessionState};
use session::{Connection, Exit};

use crate::access::{scram, Grant, Guard, Login, Peer, Refused};
use crate::connections::{Identity, Protocol, Registration};
use crate::protocols::acks;
use crate::protocols::frames::FrameReader;
use crate::protocols::pressure::Pressure;
use crate::protocols::socket;
use crate::router::Subject;
use crate::server::Context;
use crate::transport::{Duplex, Goodbye, ReadHalf, WriteHalf};

/// At most this many queued messages are moved to the socket per wake-up, so that
/// one busy subscriber cannot starve reading its own socket.
const PUMP_BUDGET: usize = 256;
/// Queued messages become packets and then bytes this many at a time: packets are
/// large (MQTT 5 properties inline, 840 bytes each), and a connection keeps its
/// packet list's capacity between wake-ups, also while its client does not read.
const PUMP_CHUNK: usize = 16;
/// A wake-up stops moving messages once this many bytes are encoded for the socket.
const PUMP_BYTES: usize = 64 * 1024;
/// Packets an ending connection still handles when it is taken over: the client's
/// last words, bounded so that a flood cannot delay the new holder.
const TAKEOVER_INPUT: usize = 64;
/// How long a new connection waits for the previous holder of its client id: longer
/// than a write can block that holder (`socket::WRITE_TIMEOUT`).
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest packet accepted before CONNECT is accepted (RabbitMQ's MQTT plugin
/// allows 64 KiB before authentication): unauthenticated sockets cannot make the
/// broker buffer a full-size message each.
const MAX_CONNECT_PACKET: u32 = 64 * 1024;
/// How often parked sessions are checked for expiry and delayed wills.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A connection whose CONNECT was accepted.
struct Connected<R, W> {
    conn: Connection,
    reader: FrameReader<R, Codec>,
    writer: W,
    wbuf: BytesMut,
    kick: oneshot::Receiver<Handoff>,
}

/// Serves one MQTT connection, over any byte stream, until it ends.
pub(crate) async fn serve<S: Duplex>(stream: S, peer: SocketAddr, ctx: Arc<Context>) {
    let certificate_user = ctx.access.certificate_user(stream.client_certificate());
    let (reader, writer) = stream.halves();
    let registration = ctx.register(Protocol::Mqtt, peer);
    // Boxed, as every step that runs once: the task keeps only what the connected
    // loop needs, which is what an idle client costs.
    let client = (peer, certificate_user, registration.id());
    let Some(Connected {
        mut conn,
        mut reader,
        mut writer,
        mut wbuf,
        kick,
    }) = Box::pin(handshake(reader, writer, client, &ctx)).await
    else {
        return;
    };
    registration.set_session(conn.session().id());
    registration.identify(Identity {
        user: conn.grant().user().map(str::to_owned),
        name: Some(conn.client_id.clone()),
        lang: None,
        version: Some(
            match conn.version {
                ProtocolVersion::V5 => "MQTT 5.0",
                _ => "MQTT 3.1.1",
            }
            .into(),
        ),
    });
    let mut kick = Some(kick);
    let exit = match run(
        &mut conn,
        &mut reader,
        &mut writer,
        &mut wbuf,
        &mut kick,
        (&registration, &ctx),
    )
    .await
    {
        Ok(never) => match never {},
        Err(exit) => exit,
    };
    registration.record(conn.counts);
    let client_id = &conn.client_id;
    match &exit {
        Exit::ClientDisconnect(code) => {
            info!(%peer, client_id = %client_id, %code, "mqtt: client disconnected")
        }
        Exit::Normal | Exit::TakenOver(_) | Exit::ServerShutdown | Exit::Administrative => {
            info!(%peer, client_id = %client_id, ?exit, "mqtt: client disconnected")
        }
        Exit::Network(why) => {
            info!(%peer, client_id = %client_id, why = %why, "mqtt: connection lost")
        }
        Exit::KeepAliveTimeout => info!(%peer, client_id = %client_id, "mqtt: keep alive timeout"),
        Exit::Protocol(code, why) => {
            warn!(%peer, client_id = %client_id, %code, why = %why, "mqtt: protocol error")
        }
    }
    let version = conn.version;
    let mut last = std::mem::take(&mut conn.out);
    if let (ProtocolVersion::V5, Some(code)) = (version, exit.disconnect_code()) {
        let reason_string = match &exit {
            Exit::Protocol(_, why) => Some(why.clone()),
            // Also what lets paho-mqtt read the reason: it takes a DISCONNECT's
            // reason code only when properties follow it.
            Exit::Administrative => Some("closed by an operator".into()),
            _ => None,
        };
        last.push(Packet::Disconnect(Disconnect {
            code,
            properties: Properties {
                reason_string,
                ..Properties::default()
            },
        }));
    }
    let network_failed = matches!(exit, Exit::Network(_));
    let goodbye = match &exit {
        Exit::Protocol(code, why) => goodbye(Some(*code), why),
        other => {
            let code = other.disconnect_code();
            goodbye(code, code.map_or("", |c| c.name()))
        }
    };
    // The session (and a takeover waiting for it) comes first; saying goodbye to a
    // client that may not be reading comes last, bounded.
    // Boxed, as every step that runs once (see `farewell`): what a task holds while
    // connected is what an idle client costs.
    Box::pin(end_session(conn, exit, kick, &ctx)).await;
    if !network_failed {
        farewell(reader, writer, &mut wbuf, version, &last, goodbye).await;
    }
}

/// Reads and answers CONNECT, takes over or resumes the session; `None` once the
/// connection was refused or lost.
/// `peer`: the client's address and the user its certificate names, if any.
async fn handshake<R: ReadHalf, W: WriteHalf>(
    read_half: R,
    mut writer: W,
    (peer, certificate_user, conn_id): (SocketAddr, Option<String>, u64),
    ctx: &Arc<Context>,
) -> Option<Connected<R, W>> {
    let limits = &ctx.config.limits;
    let pre_connect_max = limits.max_message_size.min(MAX_CONNECT_PACKET);
    let mut reader = FrameReader::new(read_half, Codec::server(pre_connect_max));
    let mut wbuf = BytesMut::new();

    // [MQTT-3.1.0-1] The first packet MUST be CONNECT; wait for it a bounded time.
    let first = tokio::select! {
        r = tokio::time::timeout(limits.connect_timeout, reader.next()) => r,
        _ = ctx.shutdown.cancelled() => return None,
    };
    let connect = match first {
        Err(_) => {
            debug!(%peer, "mqtt: no CONNECT in time");
            return None;
        }
        Ok(None) => return None,
        Ok(Some(Ok(Packet::Connect(c)))) => c,
        Ok(Some(Ok(other))) => {
            warn!(%peer, packet = ?other.packet_type(), "mqtt: first packet is not CONNECT");
            return None;
        }
        Ok(Some(Err(DecodeError::UnsupportedProtocolVersion { level }))) => {
            // [MQTT-3.1.2-2] CONNACK 0x84 (v5 form) / return code 0x01 (3.1.1 form),
            // in the form the client's level can read, then close.
            let version = if level > 5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V311
            };
            let code = ReasonCode::UNSUPPORTED_PROTOCOL_VERSION;
            let bye = goodbye(Some(code), code.name());
            let packet = session::refusal_connack(code);
            farewell(reader, writer, &mut wbuf, version, &[packet], bye).await;
            warn!(%peer, level, "mqtt: unsupported protocol level");
            return None;
        }
        Ok(Some(Err(e))) => {
            // A 5.0 client learns why (§4.13.1); a 3.1.1 one is just closed [MQTT-3.1.4-1].
            if reader.decoder().refused_connect() == Some(ProtocolVersion::V5) {
                let bye = goodbye(Some(e.reason_code()), &e.to_string());
                let packet = session::refusal_connack(e.reason_code());
                farewell(
                    reader,
                    writer,
                    &mut wbuf,
                    ProtocolVersion::V5,
                    &[packet],
                    bye,
                )
                .await;
            }
            warn!(%peer, error = %e, "mqtt: bad first packet");
            return None;
        }
    };
    let version = connect.version;
    let mut codec = Codec::server(limits.max_message_size);
    codec.set_version(version);
    *reader.decoder_mut() = codec;

    let refuse = |code| [session::refusal_connack(code)];
    let mut connect = connect;
    let (username, password) = (connect.username.take(), connect.password.take());
    let mut accepted = match session::accept_connect(connect, limits, || ctx.assign_client_id()) {
        Ok(a) => a,
        Err(refusal) => {
            let bye = goodbye(Some(refusal.code), refusal.why);
            farewell(
                reader,
                writer,
                &mut wbuf,
                version,
                &refuse(refusal.code),
                bye,
            )
            .await;
            warn!(%peer, code = %refusal.code, why = refusal.why, "mqtt: CONNECT refused");
            return None;
        }
    };
    let logged_in = match accepted.scram_first.take() {
        Some(first) => {
            let io = (&mut reader, &mut writer, &mut wbuf);
            scram_log_in(ctx, peer, io, first, &mut accepted).await
        }
        None => {
            let login =
                Login::password(username.as_deref(), password.as_deref().unwrap_or_default())
                    .or_certificate(certificate_user.as_deref());
            log_in(ctx, peer, login, &accepted).await
        }
    };
    let grant = match logged_in {
        Ok(grant) => grant,
        Err((code, why)) => {
            let bye = goodbye(Some(code), why);
            farewell(reader, writer, &mut wbuf, version, &refuse(code), bye).await;
            warn!(%peer, client_id = %accepted.client_id, %code, why, "mqtt: CONNECT refused");
            return None;
        }
    };
    let client_id = accepted.client_id.clone();
    let (kick_tx, kick_rx) = oneshot::channel::<Handoff>();
    let prior = match ctx.mqtt.claim(
        &client_id,
        conn_id,
        kick_tx,
        Instant::now(),
        limits.max_sessions,
    ) {
        Prior::Fresh => None,
        Prior::Parked(state) => Some(state),
        Prior::Expired(state, will) => {
            state.end(&ctx.router);
            if let Some(will) = will {
                ctx.router.publish(*will, crate::protocols::now());
            }
            None
        }
        Prior::Full => {
            let code = ReasonCode::QUOTA_EXCEEDED;
            let bye = goodbye(Some(code), "max_sessions reached");
            farewell(reader, writer, &mut wbuf, version, &refuse(code), bye).await;
            warn!(%peer, client_id = %client_id, max = limits.max_sessions, "mqtt: CONNECT refused: max_sessions reached");
            return None;
        }
        Prior::Online(kick) => {
            let (tx, rx) = oneshot::channel();
            if kick.send(tx).is_ok() {
                tokio::time::timeout(TAKEOVER_TIMEOUT, rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            } else {
                None
            }
        }
    };
    // [MQTT-3.1.2-4] Clean Start discards any existing session.
    let expiry = accepted.session_expiry;
    let (state, session_present) = match prior {
        Some(old) if accepted.clean_start => {
            old.end(&ctx.router);
            (SessionState::open(&ctx.router, &client_id, expiry), false)
        }
        Some(old) => {
            ctx.router
                .store_session_expiry(&old.session, &client_id, expiry);
            (old, true)
        }
        None => (SessionState::open(&ctx.router, &client_id, expiry), false),
    };
    let keep_alive = accepted.keep_alive;
    let mut conn = Connection::start(
        accepted,
        state,
        session_present,
        conn_id,
        ctx.router.clone(),
        limits,
        Guard::new(grant),
    );
    conn.refuse_subscriptions_with(ReasonCode(ctx.config.auth.mqtt5_refused_subscription));
    info!(%peer, client_id = %client_id, ?version, keep_alive, session_present, "mqtt: client connected");

    if session_present {
        let dropped = conn.session().take_drop_stats();
        if dropped.messages > 0 {
            warn!(%peer, client_id = %client_id, dropped = dropped.messages, "mqtt: messages were dropped while the session was offline (queue full)");
        }
    }
    Some(Connected {
        conn,
        reader,
        writer,
        wbuf,
        kick: kick_rx,
    })
}

/// Authenticates a CONNECT's user name and password, or the client certificate's
/// user (ignored while the broker has no users, as mosquitto without a password
/// file) and checks that the user may publish its will; the CONNACK code and why
/// if not.
async fn log_in(
    ctx: &Context,
    peer: SocketAddr,
    login: Login<'_>,
    accepted: &session::Accepted,
) -> Result<Grant, (ReasonCode, &'static str)> {
    let grant = ctx
        .access
        .authenticate_optional(
            Peer {
                ip: peer.ip(),
                via: Protocol::Mqtt,
            },
            login,
        )
        .await
        .map_err(|refused| match refused {
            Refused::BadCredentials => (
                ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                "bad user name or password",
            ),
            Refused::NotAuthorized => (ReasonCode::NOT_AUTHORIZED, "not authorized"),
        })?;
    may_publish_will(&grant, accepted)?;
    Ok(grant)
}

/// Whether the user may publish the CONNECT's will (CONNACK 0x87 if not).
fn may_publish_will(
    grant: &Grant,
    accepted: &session::Accepted,
) -> Result<(), (ReasonCode, &'static str)> {
    match accepted.will_topic() {
        Some(topic) if !Subject::from_mqtt_topic(topic).is_ok_and(|s| grant.may_publish(&s)) => {
            Err((
                ReasonCode::NOT_AUTHORIZED,
                "not authorized to publish the will",
            ))
        }
        _ => Ok(()),
    }
}

/// MQTT 5 enhanced authentication with SCRAM-SHA-256 (§4.12), the CONNECT having
/// carried the client's first message: AUTH (Continue) with the server's first
/// message, the client's AUTH with its final one, then the grant; CONNACK will
/// carry the server's final message. Bounded by the connect timeout.
async fn scram_log_in<R: ReadHalf, W: WriteHalf>(
    ctx: &Context,
    peer: SocketAddr,
    (reader, writer, wbuf): (&mut FrameReader<R, Codec>, &mut W, &mut BytesMut),
    client_first: bytes::Bytes,
    accepted: &mut session::Accepted,
) -> Result<Grant, (ReasonCode, &'static str)> {
    if ctx.access.is_open() {
        // Without users there is nobody to authenticate (mosquitto without an
        // authentication plugin answers the same).
        return Err((
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            "no users: no authentication method is configured",
        ));
    }
    let refused = (
        ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        "SCRAM-SHA-256 refused",
    );
    let exchange = ctx.access.scram_start(&client_first).ok_or(refused)?;
    let challenge = Packet::Auth(Auth {
        code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(scram::METHOD.into()),
            authentication_data: Some(exchange.server_first().to_owned().into()),
            ..Properties::default()
        },
    });
    encode_packets(wbuf, ProtocolVersion::V5, &[challenge]);
    let written = socket::write(writer, wbuf, ctx.router.memory()).await;
    wbuf.clear();
    written.map_err(|_| {
        (
            ReasonCode::UNSPECIFIED_ERROR,
            "closed during authentication",
        )
    })?;
    let answer = tokio::time::timeout(ctx.config.limits.connect_timeout, reader.next()).await;
    let client_final = match answer {
        Ok(Some(Ok(Packet::Auth(auth))))
            if auth.code == ReasonCode::CONTINUE_AUTHENTICATION
                && auth.properties.authentication_method.as_deref() == Some(scram::METHOD) =>
        {
            auth.properties.authentication_data.unwrap_or_default()
        }
        Ok(Some(Ok(_))) => {
            return Err((
                ReasonCode::PROTOCOL_ERROR,
                "expected AUTH continuing SCRAM-SHA-256",
            ))
        }
        Ok(_) => return Err((ReasonCode::PROTOCOL_ERROR, "no AUTH after the challenge")),
        Err(_) => return Err((ReasonCode::NOT_AUTHORIZED, "no AUTH in time")),
    };
    let (grant, server_final) = ctx
        .access
        .scram_finish(
            Peer {
                ip: peer.ip(),
                via: Protocol::Mqtt,
            },
            &exchange,
            &client_final,
        )
        .await
        .map_err(|_| refused)?;
    accepted.scram_succeeded(server_final);
    may_publish_will(&grant, accepted)?;
    Ok(grant)
}

/// Writes the last packets of a connection and closes it (see `socket::farewell`).
async fn farewell<R: ReadHalf, W: WriteHalf>(
    reader: FrameReader<R, Codec>,
    mut writer: W,
    wbuf: &mut BytesMut,
    version: ProtocolVersion,
    packets: &[Packet],
    goodbye: Goodbye,
) {
    writer.goodbye(goodbye);
    // What is left of a failed write is not sent after all.
    wbuf.clear();
    encode_packets(wbuf, version, packets);
    Box::pin(socket::farewell(reader.into_inner(), writer, wbuf)).await;
}

/// What a WebSocket close frame says when the broker ends a connection with the
/// reason `code` (`None`: a normal end), `why` its reason text.
fn goodbye(code: Option<ReasonCode>, why: &str) -> Goodbye {
    match code.filter(|c| c.is_error()) {
        None => Goodbye::Normal,
        Some(ReasonCode::SERVER_SHUTTING_DOWN) => Goodbye::GoingAway,
        Some(ReasonCode::PACKET_TOO_LARGE) => Goodbye::TooBig(why.into()),
        Some(
            ReasonCode::MALFORMED_PACKET
            | ReasonCode::PROTOCOL_ERROR
            | ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            | ReasonCode::TOPIC_NAME_INVALID
            | ReasonCode::TOPIC_FILTER_INVALID
            | ReasonCode::TOPIC_ALIAS_INVALID
            | ReasonCode::RECEIVE_MAXIMUM_EXCEEDED
            | ReasonCode::PACKET_IDENTIFIER_IN_USE,
        ) => Goodbye::ProtocolError(why.into()),
        // Refusals: credentials, authorization, quotas, a takeover, keep alive.
        Some(_) => Goodbye::Policy(why.into()),
    }
}

/// The connected loop. `Ok` never happens: the loop ends only with an `Exit`.
async fn run<R: ReadHalf, W: WriteHalf>(
    conn: &mut Connection,
    reader: &mut FrameReader<R, Codec>,
    writer: &mut W,
    wbuf: &mut BytesMut,
    kick: &mut Option<oneshot::Receiver<Handoff>>,
    (registration, ctx): (&Registration, &Context),
) -> Result<std::convert::Infallible, Exit> {
    let session = conn.session().clone();
    let mut deadline = conn.keep_alive_deadline(Instant::now());
    let keep_alive = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into());
    tokio::pin!(keep_alive);
    let mut more = pump(conn, wbuf);
    let mut writes = socket::Pace::default();
    let mut pressure = Pressure::new(ctx.router.memory());
    let mut was_held_back = false;
    let mut reloads = ctx.access.reloads();
    loop {
        if !wbuf.is_empty() {
            // An idle client does not keep the packet list its few packets
            // (CONNACK, PINGRESPs) needed.
            writes.tick();
            if !writes.busy() {
                conn.out = Vec::new();
            }
            socket::write(writer, wbuf, ctx.router.memory())
                .await
                .map_err(|e| Exit::Network(e.to_string()))?;
            wbuf.clear();
            // Keep an idle connection small: drop a buffer that grew for a large message.
            if wbuf.capacity() > 64 * 1024 {
                *wbuf = BytesMut::new();
            }
        }
        // Order matters (biased): shutdown and takeover first, then the client's
        // packets, then keep alive, which must fire even while messages keep coming.
        let deferred = conn.deferred_head();
        let held_back = pressure.holds(conn.publisher, || conn.awaiting_acks());
        // Keep alive starts again from the end of a hold, however it was noticed.
        if was_held_back && !held_back {
            if let Some(d) = conn.keep_alive_deadline(Instant::now()) {
                deadline = Some(d);
                keep_alive.as_mut().reset(d.into());
            }
        }
        was_held_back = held_back;
        tokio::select! {
            biased;
            _ = registration.closing().cancelled() => {
                return Err(if registration.closed_by_operator(&ctx.shutdown) {
                    Exit::Administrative
                } else {
                    Exit::ServerShutdown
                });
            }
            handoff = kicked(kick) => if let Some(handoff) = handoff {
                // What the client sent before the new connection arrived counts
                // first: a DISCONNECT there means no will (a single-threaded broker
                // would have read it before the new CONNECT).
                let now = crate::protocols::now();
                for _ in 0..TAKEOVER_INPUT {
                    let Some(Ok(packet)) = reader.next_ready().await else { break };
                    if !conn.handle_before_takeover(packet, now) {
                        break;
                    }
                }
                return Err(Exit::TakenOver(handoff));
            },
            // Before the client's input: what it sends after a reload is judged by
            // the new rules.
            Ok(()) = reloads.changed() => conn.reauthorize(ctx.access.regrant(conn.grant()))?,
            // Under memory pressure a publisher is not read from: its packets
            // wait in the socket and its in-flight window (Receive Maximum) fills.
            frame = reader.next(), if !held_back => {
                let now = crate::protocols::now();
                match frame {
                    None => return Err(Exit::Network("closed by the client".into())),
                    Some(Err(e)) => return Err(decode_exit(e)),
                    Some(Ok(packet)) => {
                        conn.handle(packet, now)?;
                        reader.handle_buffered(|packet| {
                            conn.handle(packet.map_err(decode_exit)?, now)
                        })?;
                        if let Some(d) = conn.keep_alive_deadline(now.at) {
                            deadline = Some(d);
                            keep_alive.as_mut().reset(d.into());
                        }
                    }
                }
            }
            // Unread input is not silence: keep alive waits while the client is
            // held back, and starts again from its relief.
            _ = &mut keep_alive, if deadline.is_some() && !held_back => return Err(Exit::KeepAliveTimeout),
            _ = pressure.relieved(), if held_back => {}
            _ = session.wait(), if conn.window_open() && !more => {}
            _ = std::future::ready(()), if more => {}
            _ = acks::committed(&deferred) => {}
        }
        conn.release_deferred()?;
        more = pump(conn, wbuf);
        registration.record(conn.counts);
    }
}

/// Encodes the packets the connection has to send into `wbuf`, with up to
/// [`PUMP_BUDGET`] queued messages (or [`PUMP_BYTES`]) a chunk at a time; returns
/// true if messages are left for the next wake-up.
fn pump(conn: &mut Connection, wbuf: &mut BytesMut) -> bool {
    let now = crate::protocols::now();
    for _ in 0..PUMP_BUDGET / PUMP_CHUNK {
        let more = conn.pump(now, PUMP_CHUNK);
        encode_packets(wbuf, conn.version, &conn.out);
        conn.out.clear();
        if !more {
            return false;
        }
        if wbuf.len() >= PUMP_BYTES {
            return true;
        }
    }
    true
}

/// Waits for a takeover request; pends forever once the channel is gone.
async fn kicked(kick: &mut Option<oneshot::Receiver<Handoff>>) -> Option<Handoff> {
    let Some(rx) = kick.as_mut() else {
        return std::future::pending().await;
    };
    let handoff = rx.await.ok();
    // A completed receiver must not be polled again.
    *kick = None;
    handoff
}

/// The exit for an undecodable packet, with the reason code the codec chose.
fn decode_exit(e: DecodeError) -> Exit {
    match e {
        DecodeError::Io(io) => Exit::Network(io.to_string()),
        other => Exit::Protocol(other.reason_code(), other.to_string()),
    }
}

/// Appends `packets`, encoded, to `buf`. A packet that cannot be encoded is logged
/// and skipped; nothing half-encoded is kept.
fn encode_packets(buf: &mut BytesMut, version: ProtocolVersion, packets: &[Packet]) {
    for packet in packets {
        let mark = buf.len();
        if let Err(e) = packet.encode(version, buf) {
            buf.truncate(mark);
            warn!(error = %e, packet = ?packet.packet_type(), "mqtt: packet not encodable, dropped");
        }
    }
}

/// Applies the end of a connection to its will and its session.
async fn end_session(
    conn: Connection,
    exit: Exit,
    mut kick: Option<oneshot::Receiver<Handoff>>,
    ctx: &Context,
) {
    let client_id = conn.client_id.clone();
    let conn_id = conn.conn_id;
    let now = crate::protocols::now();
    let finish = conn.finish(&exit, now);
    if let Some(will) = finish.will_now {
        ctx.router.publish(will, now);
    }
    if let Exit::TakenOver(handoff) = exit {
        // The new holder decides (Clean Start) what to keep; a session that ends
        // with this connection is not handed over.
        match finish.park {
            Some(_) => hand_over(handoff, finish.state, ctx),
            None => {
                finish.state.end(&ctx.router);
                let _ = handoff.send(None);
            }
        }
        return;
    }
    let Some((expires_at, will)) = finish.park else {
        ctx.mqtt.release(&client_id, conn_id, None);
        finish.state.end(&ctx.router);
        return;
    };
    if let Some(state) =
        ctx.mqtt
            .release(&client_id, conn_id, Some((finish.state, expires_at, will)))
    {
        // Taken over while ending: the new holder's kick is on its way.
        debug!(client_id = %client_id, "mqtt: session handed over while closing");
        match tokio::time::timeout(TAKEOVER_TIMEOUT, kicked(&mut kick)).await {
            Ok(Some(handoff)) => hand_over(handoff, state, ctx),
            _ => state.end(&ctx.router),
        }
    }
}

/// Gives the session to the connection that took the client id over; if it gave
/// up waiting, the session ends here instead of lingering unowned.
fn hand_over(handoff: Handoff, state: SessionState, ctx: &Context) {
    if let Err(Some(state)) = handoff.send(Some(state)) {
        state.end(&ctx.router);
    }
}

/// Publishes delayed wills and ends expired sessions until shutdown.
pub(crate) async fn sweeper(ctx: Arc<Context>) {
    crate::server::every(SWEEP_INTERVAL, &ctx.shutdown, |now| {
        let due = ctx.mqtt.sweep(now.at);
        for will in due.wills {
            ctx.router.publish(will, now);
        }
        for (client_id, state) in due.expired {
            debug!(client_id = %client_id, "mqtt: session expired");
            let dropped = state.session.take_drop_stats();
            if dropped.messages > 0 {
                info!(client_id = %client_id, dropped = dropped.messages, "mqtt: expired session had dropped messages");
            }
            state.end(&ctx.router);
        }
    })
    .await;
}
