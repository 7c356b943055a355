//! The MQTT connection state machine: what CONNECT is accepted, what each packet of a
//! connected client does, and what the server sends back.
//!
//! No I/O: `handle` and `pump` only append packets to `out`, which the I/O shell in
//! `mod.rs` writes. Time is passed in as `now`.
//!
//! ```text
//!  TCP accepted --CONNECT ok--> Connected --DISCONNECT / error / timeout / takeover--> Closing
//!       |                          ^  |
//!       +--anything else: close    +--+ PUBLISH, SUBSCRIBE, acks, PINGREQ
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dwbroker_codecs::mqtt::{
    Ack, ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS,
    ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe,
};

use super::alias;
use super::registry::{OutFlight, PendingWill, SessionState, StateKey};
use super::translate;
use crate::access::{scram, FilterVerdict, Grant, Guard};
use crate::config::Limits;
use crate::connections::Counts;
use crate::protocols::acks::Deferred;
use crate::router::{
    ConnId, Delivery, Dispatch, Filter, LastSubject, Now, Router, StoreFailure, SubOptions, Ticket,
};

/// Roughly how many payload bytes one write gathers before the shell writes them
/// (the write buffer copies payloads, so this bounds it per connection).
const BATCH_BYTES: usize = 64 * 1024;

/// Why a connection ends; decides the will, the session and the last packet sent.
#[derive(Debug)]
pub(crate) enum Exit {
    /// DISCONNECT with reason 0x00: the will is discarded.
    Normal,
    /// MQTT 5 DISCONNECT with another reason (0x04 asks for the will).
    ClientDisconnect(ReasonCode),
    /// The network connection failed or the client closed it.
    Network(String),
    /// Nothing arrived for 1.5 x Keep Alive ([MQTT-3.1.2-22]).
    KeepAliveTimeout,
    /// The client broke the protocol; MQTT 5 clients get DISCONNECT with the code.
    Protocol(ReasonCode, String),
    /// Another connection took the client id; it waits for the session on `Handoff`.
    TakenOver(super::registry::Handoff),
    /// The broker is stopping.
    ServerShutdown,
    /// An operator closed the connection.
    Administrative,
}

impl Exit {
    fn protocol(code: ReasonCode, why: impl Into<String>) -> Exit {
        Exit::Protocol(code, why.into())
    }

    /// The reason code of the DISCONNECT an MQTT 5 client is sent, if any.
    pub(crate) fn disconnect_code(&self) -> Option<ReasonCode> {
        match self {
            Exit::Protocol(code, _) => Some(*code),
            Exit::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            Exit::TakenOver(_) => Some(ReasonCode::SESSION_TAKEN_OVER),
            Exit::ServerShutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            Exit::Administrative => Some(ReasonCode::ADMINISTRATIVE_ACTION),
            Exit::Normal | Exit::ClientDisconnect(_) | Exit::Network(_) => None,
        }
    }

    /// Whether this ending publishes the will ([MQTT-3.1.2-8], MQTT 5 §3.1.2.5).
    fn publishes_will(&self) -> bool {
        match self {
            Exit::Normal | Exit::ServerShutdown => false,
            Exit::ClientDisconnect(_)
            | Exit::Network(_)
            | Exit::KeepAliveTimeout
            | Exit::Protocol(..)
            | Exit::Administrative
            | Exit::TakenOver(_) => true,
        }
    }
}

/// A CONNECT refused before any session is touched: the CONNACK code to answer with.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: ReasonCode,
    pub(crate) why: &'static str,
}

/// The will of a connection, turned into a message only when published (its
/// expiry interval starts then).
#[derive(Debug)]
struct WillSpec {
    publish: Publish,
    delay: u32,
}

/// A CONNECT that passed validation, before the session is claimed.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) version: ProtocolVersion,
    pub(crate) client_id: String,
    pub(crate) assigned_id: bool,
    pub(crate) clean_start: bool,
    /// Seconds the session outlives the connection (0: it ends with it).
    pub(crate) session_expiry: u32,
    session_expiry_changed: bool,
    /// Keep alive in force, in seconds (0: none).
    pub(crate) keep_alive: u16,
    keep_alive_changed: bool,
    will: Option<Box<WillSpec>>,
    client_receive_max: u16,
    client_max_packet: u32,
    client_topic_alias_max: u16,
    wants_response_information: bool,
    /// The client's first SCRAM-SHA-256 message, when CONNECT names that
    /// method (the shell carries on the exchange).
    pub(crate) scram_first: Option<Bytes>,
    /// The server's final SCRAM message, for CONNACK's Authentication Data.
    scram_final: Option<String>,
}

/// Validates a CONNECT against the protocol and the server's limits.
pub(crate) fn accept_connect(
    connect: Connect,
    limits: &Limits,
    next_id: impl FnOnce() -> String,
) -> Result<Accepted, Refusal> {
    let v5 = connect.version == ProtocolVersion::V5;
    let props = &connect.properties;
    if props.authentication_data.is_some() && props.authentication_method.is_none() {
        // MQTT 5 §3.1.2.11.10: Authentication Data without an Authentication
        // Method is a Protocol Error.
        return Err(Refusal {
            code: ReasonCode::PROTOCOL_ERROR,
            why: "authentication data without an authentication method",
        });
    }
    let scram_first = match props.authentication_method.as_deref() {
        None => None,
        Some(scram::METHOD) => Some(props.authentication_data.clone().unwrap_or_default()),
        // The only enhanced authentication method there is (MQTT 5 §4.12).
        Some(_) => {
            return Err(Refusal {
                code: ReasonCode::BAD_AUTHENTICATION_METHOD,
                why: "the only authentication method is SCRAM-SHA-256",
            })
        }
    };
    let (client_id, assigned_id) = if connect.client_id.is_empty() {
        // [MQTT-3.1.3-8] (3.1.1) A zero-byte ClientId with CleanSession 0 MUST be
        // answered with return code 0x02 (Identifier rejected).
        if !v5 && !connect.clean_start {
            return Err(Refusal {
                code: ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                why: "empty client id needs clean session",
            });
        }
        (next_id(), true)
    } else {
        (connect.client_id, false)
    };
    let (keep_alive, keep_alive_changed) =
        if connect.keep_alive == 0 || connect.keep_alive > limits.max_keep_alive {
            if limits.max_keep_alive == u16::MAX {
                (connect.keep_alive, false)
            } else if v5 {
                // MQTT 5 §3.2.2.3.14: the server imposes its own Server Keep Alive.
                (limits.max_keep_alive, true)
            } else {
                // A 3.1.1 client cannot be told another keep alive (mosquitto refuses too).
                return Err(Refusal {
                    code: ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                    why: "keep alive above the server's maximum",
                });
            }
        } else {
            (connect.keep_alive, false)
        };
    let requested_expiry = if v5 {
        props.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        // A 3.1.1 persistent session has no expiry of its own; bound it by the limit.
        limits.max_session_expiry
    };
    let session_expiry = requested_expiry.min(limits.max_session_expiry);
    let will = match connect.will {
        None => None,
        Some(w) => {
            if crate::router::Subject::from_mqtt_topic(&w.topic).is_err() {
                return Err(Refusal {
                    code: ReasonCode::TOPIC_NAME_INVALID,
                    why: "invalid will topic",
                });
            }
            if let Some(t) = &w.properties.response_topic {
                // [MQTT-3.1.3-11] The Will Response Topic is a topic name.
                if crate::router::Subject::from_mqtt_topic(t).is_err() {
                    return Err(Refusal {
                        code: ReasonCode::PROTOCOL_ERROR,
                        why: "invalid will response topic",
                    });
                }
            }
            if w.properties.payload_format_indicator == Some(1)
                && std::str::from_utf8(&w.payload).is_err()
            {
                return Err(Refusal {
                    code: ReasonCode::PAYLOAD_FORMAT_INVALID,
                    why: "will payload is not UTF-8",
                });
            }
            let delay = w.properties.will_delay_interval.unwrap_or(0);
            Some(Box::new(WillSpec {
                publish: Publish {
                    dup: false,
                    qos: w.qos,
                    retain: w.retain,
                    topic: w.topic,
                    packet_id: 0,
                    properties: w.properties,
                    payload: w.payload,
                },
                delay,
            }))
        }
    };
    Ok(Accepted {
        version: connect.version,
        client_id,
        assigned_id,
        clean_start: connect.clean_start,
        session_expiry,
        session_expiry_changed: v5 && session_expiry != requested_expiry,
        keep_alive,
        keep_alive_changed,
        will,
        client_receive_max: props.receive_maximum.unwrap_or(u16::MAX),
        client_max_packet: props.maximum_packet_size.unwrap_or(u32::MAX),
        client_topic_alias_max: props.topic_alias_maximum.unwrap_or(0),
        wants_response_information: props.request_response_information == Some(1),
        scram_first,
        scram_final: None,
    })
}

impl Accepted {
    /// Notes the server's final SCRAM message, which CONNACK carries.
    pub(crate) fn scram_succeeded(&mut self, server_final: String) {
        self.scram_final = Some(server_final);
    }

    /// The will's topic, if the CONNECT has a will.
    pub(crate) fn will_topic(&self) -> Option<&str> {
        self.will.as_ref().map(|w| w.publish.topic.as_str())
    }
}

/// The CONNACK refusing a CONNECT (3.1.1 clients get the matching return code).
pub(crate) fn refusal_connack(code: ReasonCode) -> Packet {
    Packet::ConnAck(ConnAck {
        session_present: false,
        code,
        properties: Properties::default(),
    })
}

/// A connected client.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) version: ProtocolVersion,
    pub(crate) client_id: String,
    pub(crate) conn_id: ConnId,
    /// Seconds the session outlives the connection (0: it ends with it).
    session_expiry: u32,
    /// The expiry storage has for the session (DISCONNECT may change it).
    stored_expiry: u32,
    keep_alive: u16,
    /// Boxed: most clients have none, and a connection's size is an idle client's cost.
    will: Option<Box<WillSpec>>,
    state: SessionState,
    router: Arc<Router>,
    max_session_expiry: u32,
    max_subscriptions: usize,
    /// How many QoS 2 messages a client may have in flight towards us.
    server_receive_max: u16,
    /// How many QoS 1/2 messages we may have in flight towards the client.
    send_window: usize,
    client_max_packet: u32,
    /// How many in-flight entries are `OutFlight::Resend`.
    resend_pending: usize,
    inbound_aliases: alias::Inbound,
    last_subject: LastSubject,
    outbound_aliases: alias::Outbound,
    /// Packets waiting for storage, in order: PUBACKs and PUBRECs of stored
    /// messages, in the order of their PUBLISHes ([MQTT-4.6.0-2], [MQTT-4.6.0-3]);
    /// a stored session's QoS 2 PUBLISHes, PUBRELs and PUBCOMPs once the state
    /// they change is recorded.
    deferred: Deferred<Packet>,
    /// Packets to write, in order.
    pub(crate) out: Vec<Packet>,
    /// The client has published (only publishers are held back under memory
    /// pressure).
    pub(crate) publisher: bool,
    /// What the client's user may do.
    guard: Guard,
    /// The client logged in with an enhanced authentication method.
    enhanced_auth: bool,
    /// SUBACK's code for a filter the rules refuse (MQTT 5; 3.1.1 has 0x80 only).
    refused_subscription: ReasonCode,
    /// Messages and payload bytes in and out, for the operator's view.
    pub(crate) counts: Counts,
}

impl Connection {
    /// Starts the connection on `state` (resumed when `session_present`) and queues
    /// the CONNACK, then any unacknowledged messages of a resumed session
    /// ([MQTT-4.4.0-1]: resent with their original packet identifiers, DUP set).
    pub(crate) fn start(
        accepted: Accepted,
        state: SessionState,
        session_present: bool,
        conn_id: ConnId,
        router: Arc<Router>,
        limits: &Limits,
        guard: Guard,
    ) -> Connection {
        state.session.set_connection(conn_id);
        let mut properties = Properties::default();
        if accepted.version == ProtocolVersion::V5 {
            properties.receive_maximum = Some(limits.max_inflight);
            properties.maximum_packet_size = Some(limits.max_message_size);
            if accepted.assigned_id {
                properties.assigned_client_identifier = Some(accepted.client_id.clone());
            }
            if accepted.session_expiry_changed {
                properties.session_expiry_interval = Some(accepted.session_expiry);
            }
            if accepted.keep_alive_changed {
                properties.server_keep_alive = Some(accepted.keep_alive);
            }
            if limits.max_topic_alias > 0 {
                properties.topic_alias_maximum = Some(limits.max_topic_alias);
            }
            if accepted.wants_response_information {
                // MQTT 5 §4.10: the basis the client builds its response topics on.
                properties.response_information = Some(response_information(&accepted.client_id));
            }
            if let Some(server_final) = &accepted.scram_final {
                properties.authentication_method = Some(scram::METHOD.into());
                properties.authentication_data = Some(Bytes::from(server_final.clone()));
            }
        }
        let mut conn = Connection {
            version: accepted.version,
            client_id: accepted.client_id,
            conn_id,
            session_expiry: accepted.session_expiry,
            stored_expiry: accepted.session_expiry,
            keep_alive: accepted.keep_alive,
            will: accepted.will,
            state,
            router,
            max_session_expiry: limits.max_session_expiry,
            max_subscriptions: limits.max_subscriptions_per_session,
            server_receive_max: limits.max_inflight,
            send_window: usize::from(accepted.client_receive_max.min(limits.max_inflight)),
            client_max_packet: accepted.client_max_packet,
            resend_pending: 0,
            inbound_aliases: alias::Inbound::new(limits.max_topic_alias),
            last_subject: LastSubject::default(),
            outbound_aliases: alias::Outbound::new(accepted.client_topic_alias_max),
            deferred: Deferred::default(),
            out: vec![Packet::ConnAck(ConnAck {
                session_present,
                code: ReasonCode::SUCCESS,
                properties,
            })],
            publisher: false,
            guard,
            enhanced_auth: accepted.scram_final.is_some(),
            refused_subscription: ReasonCode::NOT_AUTHORIZED,
            counts: Counts::default(),
        };
        // Every PUBLISH still unacknowledged was sent on an earlier connection: pump
        // resends them first, within the new client's Receive Maximum. PUBRELs are
        // not PUBLISHes and go at once.
        for (packet_id, flight) in &mut conn.state.inflight {
            *flight = match std::mem::replace(flight, OutFlight::Released) {
                OutFlight::Sent(p) | OutFlight::Resend(p) => {
                    conn.resend_pending += 1;
                    OutFlight::Resend(p)
                }
                OutFlight::Released => {
                    conn.out
                        .push(Packet::PubRel(ack(*packet_id, ReasonCode::SUCCESS)));
                    OutFlight::Released
                }
            };
        }
        conn
    }

    /// The router subscriber of this connection's session.
    pub(crate) fn session(&self) -> &Arc<crate::router::Session> {
        &self.state.session
    }

    /// The keep-alive deadline after a packet received at `now` (1.5 x Keep Alive).
    pub(crate) fn keep_alive_deadline(&self, now: Instant) -> Option<Instant> {
        (self.keep_alive > 0)
            .then(|| now + Duration::from_millis(u64::from(self.keep_alive) * 1500))
    }

    /// Whether a QoS 1/2 delivery to the client awaits its acknowledgement.
    pub(crate) fn awaiting_acks(&self) -> bool {
        !self.state.inflight.is_empty()
    }

    /// Whether outgoing QoS 1/2 messages may be sent now (flow control: the
    /// client's Receive Maximum counts every PUBLISH not yet fully acknowledged).
    pub(crate) fn window_open(&self) -> bool {
        self.state.inflight.len() - self.resend_pending < self.send_window
    }

    /// Handles one packet from the client.
    /// Handles a packet the client sent before another connection took its id over
    /// (it was already on its way): `false` once the connection has ended. A
    /// DISCONNECT among them is a normal end, so the will is not published.
    pub(crate) fn handle_before_takeover(&mut self, packet: Packet, now: Now) -> bool {
        match self.handle(packet, now) {
            Ok(()) => true,
            Err(exit) => {
                if !exit.publishes_will() {
                    self.will = None;
                }
                false
            }
        }
    }

    pub(crate) fn handle(&mut self, packet: Packet, now: Now) -> Result<(), Exit> {
        match packet {
            Packet::Publish(p) => self.on_publish(p, now),
            Packet::PubAck(a) => {
                if let Some(OutFlight::Sent(d)) = self.complete(
                    a.packet_id,
                    |f| matches!(f, OutFlight::Sent(d) if d.qos == Delivery::AtLeastOnce),
                ) {
                    self.state.session.settle(d.seq);
                }
                Ok(())
            }
            Packet::PubRec(a) => self.on_pubrec(a),
            Packet::PubRel(a) => {
                // [MQTT-4.3.3-11] Release the packet id; answer PUBCOMP even for an
                // unknown id (v5: with 0x92 Packet Identifier not found).
                let (code, ticket) = if self.state.awaiting_rel.remove(&a.packet_id) {
                    let key = StateKey::AwaitingRel(a.packet_id).bytes();
                    (
                        ReasonCode::SUCCESS,
                        self.state.session.record_state(&key, None),
                    )
                } else {
                    (ReasonCode::PACKET_IDENTIFIER_NOT_FOUND, Ticket::default())
                };
                // Once PUBCOMP is out the client may reuse the id: its release must
                // be stored first, or a new PUBLISH under it would be taken for a
                // resend after a restart.
                self.send_when(ticket, Packet::PubComp(ack(a.packet_id, code)));
                Ok(())
            }
            Packet::PubComp(a) => {
                if self
                    .complete(a.packet_id, |f| matches!(f, OutFlight::Released))
                    .is_some()
                {
                    let key = StateKey::Released(a.packet_id).bytes();
                    self.state.session.record_state(&key, None);
                }
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(s, now),
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.out.push(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => Err(self.on_disconnect(d)),
            // [MQTT-3.1.0-2] A second CONNECT is a Protocol Error.
            Packet::Connect(_) => Err(Exit::protocol(ReasonCode::PROTOCOL_ERROR, "second CONNECT")),
            // MQTT 5 §4.12: AUTH without an authentication method in CONNECT is a
            // Protocol Error.
            Packet::Auth(_) if !self.enhanced_auth => Err(Exit::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH without an authentication method",
            )),
            // §4.12.1: a failed re-authentication ends the connection; this
            // broker does not re-authenticate a connection it has let in.
            Packet::Auth(_) => Err(Exit::protocol(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                "re-authentication is not supported",
            )),
            other => Err(Exit::protocol(
                ReasonCode::PROTOCOL_ERROR,
                format!("{:?} may not be sent by a client", other.packet_type()),
            )),
        }
    }

    fn on_publish(&mut self, mut p: Publish, now: Now) -> Result<(), Exit> {
        self.publisher = true;
        self.counts.received(p.payload.len());
        let v5 = self.version == ProtocolVersion::V5;
        self.inbound_aliases
            .resolve(&mut p)
            .map_err(|(code, why)| Exit::protocol(code, why))?;
        if !p.properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6] A PUBLISH sent to a Server MUST NOT contain a
            // Subscription Identifier.
            return Err(Exit::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "subscription identifier in a client PUBLISH",
            ));
        }
        if v5
            && p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            // MQTT 5 §3.3.2.3.2: the receiver may refuse a payload that is not the
            // UTF-8 it claims to be with 0x99 Payload format invalid.
            if p.qos == QoS::AtMostOnce {
                return Err(Exit::protocol(
                    ReasonCode::PAYLOAD_FORMAT_INVALID,
                    "payload is not UTF-8",
                ));
            }
            self.push_publish_ack(&p, ReasonCode::PAYLOAD_FORMAT_INVALID, Ticket::default());
            return Ok(());
        }
        if p.qos == QoS::ExactlyOnce && self.state.awaiting_rel.contains(&p.packet_id) {
            // A resent QoS 2 PUBLISH before PUBREL: already routed once (method B of
            // MQTT 5 §4.3.3), so only acknowledge again (after the first PUBREC,
            // which may still wait for storage).
            self.push_publish_ack(&p, ReasonCode::SUCCESS, Ticket::default());
            return Ok(());
        }
        if p.qos == QoS::ExactlyOnce
            && self.state.awaiting_rel.len() >= usize::from(self.server_receive_max)
        {
            // MQTT 5 §3.3.4: more unacknowledged QoS 2 PUBLISHes than Receive Maximum.
            return Err(Exit::protocol(
                ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                "more QoS 2 messages in flight than Receive Maximum",
            ));
        }
        let message =
            translate::message_from_publish(&mut self.last_subject, &p, self.conn_id, now)
                .map_err(|code| Exit::protocol(code, "invalid topic name or response topic"))?;
        if !self.guard.may_publish(&message.subject, now.unix_ms) {
            tracing::info!(client_id = %self.client_id, topic = %p.topic, "mqtt: publish not authorized, dropped");
            // MQTT 5 says why; a 3.1.1 client has no way to hear it, so its message
            // is acknowledged (else it would resend forever) and dropped.
            if v5 {
                self.push_publish_ack(&p, ReasonCode::NOT_AUTHORIZED, Ticket::default());
            } else {
                if p.qos == QoS::ExactlyOnce {
                    self.state.awaiting_rel.insert(p.packet_id);
                }
                self.push_publish_ack(&p, ReasonCode::SUCCESS, Ticket::default());
            }
            return Ok(());
        }
        let mut routed = self.router.publish(message, now);
        let code = if routed.matched == 0 && v5 {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        } else {
            ReasonCode::SUCCESS
        };
        if p.qos == QoS::ExactlyOnce {
            self.state.awaiting_rel.insert(p.packet_id);
            let key = StateKey::AwaitingRel(p.packet_id).bytes();
            routed
                .ticket
                .merge(self.state.session.record_state(&key, Some(&[])));
        }
        self.push_publish_ack(&p, code, routed.ticket);
        Ok(())
    }

    /// Acknowledges a QoS 1/2 PUBLISH once `ticket` (its stored copies) has
    /// completed, in order with the acknowledgements before it.
    fn push_publish_ack(&mut self, p: &Publish, code: ReasonCode, ticket: Ticket) {
        let packet = match p.qos {
            QoS::AtMostOnce => return,
            QoS::AtLeastOnce => Packet::PubAck(ack(p.packet_id, code)),
            QoS::ExactlyOnce => Packet::PubRec(ack(p.packet_id, code)),
        };
        self.send_when(ticket, packet);
    }

    /// Sends `packet` once `ticket` has completed, in order with the packets
    /// waiting before it.
    fn send_when(&mut self, ticket: Ticket, packet: Packet) {
        if let Some(packet) = self.deferred.defer(ticket, packet) {
            self.out.push(packet);
        }
    }

    /// The ticket the next waiting acknowledgement waits for.
    pub(crate) fn deferred_head(&self) -> Option<Ticket> {
        self.deferred.head()
    }

    /// Sends the waiting packets whose storage commit has completed. A message
    /// that could not be stored is refused: MQTT 5 with 0x80 (Unspecified error;
    /// a QoS 2 exchange ends there), MQTT 3.1.1, which has no negative
    /// acknowledgement, by closing the connection unacknowledged so that the
    /// client sends it again. A stored session whose state could not be recorded
    /// is disconnected.
    pub(crate) fn release_deferred(&mut self) -> Result<(), Exit> {
        for (packet, outcome) in self.deferred.ready() {
            let Err(StoreFailure(why)) = outcome else {
                self.out.push(packet);
                continue;
            };
            let refused = match (&packet, self.version) {
                (Packet::PubAck(a), ProtocolVersion::V5) => {
                    Packet::PubAck(ack(a.packet_id, ReasonCode::UNSPECIFIED_ERROR))
                }
                (Packet::PubRec(a), ProtocolVersion::V5) => {
                    self.state.awaiting_rel.remove(&a.packet_id);
                    Packet::PubRec(ack(a.packet_id, ReasonCode::UNSPECIFIED_ERROR))
                }
                _ => {
                    return Err(Exit::protocol(
                        ReasonCode::UNSPECIFIED_ERROR,
                        format!("not stored: {why}"),
                    ))
                }
            };
            self.out.push(refused);
        }
        Ok(())
    }

    fn on_pubrec(&mut self, a: Ack) -> Result<(), Exit> {
        // A repeated PUBREC for a message already released is answered again.
        let awaits_rec = |f: &OutFlight| match f {
            OutFlight::Sent(d) => d.qos == Delivery::ExactlyOnce,
            OutFlight::Released => true,
            OutFlight::Resend(_) => false,
        };
        let pos = self
            .state
            .inflight
            .iter()
            .position(|(id, f)| *id == a.packet_id && awaits_rec(f));
        match pos {
            Some(i) if a.code.is_error() => {
                // MQTT 5 §4.3.3: a PUBREC with an error code ends the exchange.
                if let Some((_, OutFlight::Sent(d))) = self.state.inflight.remove(i) {
                    self.state.session.settle(d.seq);
                    let key = StateKey::Sent(d.seq).bytes();
                    self.state.session.record_state(&key, None);
                }
            }
            Some(i) => {
                let mut ticket = Ticket::default();
                if let Some(slot) = self.state.inflight.get_mut(i) {
                    if let OutFlight::Sent(d) = std::mem::replace(&mut slot.1, OutFlight::Released)
                    {
                        // The message is delivered; what is left is the release.
                        // PUBREL goes out once that is stored: a resend after a
                        // restart must not follow a PUBREL the client has seen.
                        let session = &self.state.session;
                        ticket = self.router.atomically(|| {
                            let mut t = session.settle(d.seq);
                            t.merge(session.record_state(&StateKey::Sent(d.seq).bytes(), None));
                            let released = StateKey::Released(a.packet_id).bytes();
                            t.merge(session.record_state(&released, Some(&[])));
                            t
                        });
                    }
                }
                self.send_when(
                    ticket,
                    Packet::PubRel(ack(a.packet_id, ReasonCode::SUCCESS)),
                );
            }
            None => {
                self.out.push(Packet::PubRel(ack(
                    a.packet_id,
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                )));
            }
        }
        Ok(())
    }

    /// Removes the in-flight entry `packet_id` if it is in the state `expected`.
    fn complete(
        &mut self,
        packet_id: u16,
        expected: impl Fn(&OutFlight) -> bool,
    ) -> Option<OutFlight> {
        let i = self
            .state
            .inflight
            .iter()
            .position(|(id, f)| *id == packet_id && expected(f))?;
        self.state.inflight.remove(i).map(|(_, f)| f)
    }

    fn on_subscribe(&mut self, s: Subscribe, now: Now) -> Result<(), Exit> {
        let v5 = self.version == ProtocolVersion::V5;
        let subscription_id = s.properties.subscription_identifiers.first().copied();
        let parsed: Vec<_> = s
            .filters
            .iter()
            .map(|(text, opts)| (translate::topic_filter(text), opts))
            .collect();
        // [MQTT-3.8.3-4] No Local on a Shared Subscription is a Protocol Error;
        // checked for every filter before any of them takes effect.
        if parsed.iter().any(|(tf, opts)| {
            opts.no_local && tf.as_ref().is_some_and(|tf| tf.share_group.is_some())
        }) {
            return Err(Exit::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "no local on a shared subscription",
            ));
        }
        let mut codes = Vec::with_capacity(parsed.len());
        for (tf, opts) in parsed {
            let Some(tf) = tf else {
                codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            };
            let Some(withheld) = self.guard.grant().may_subscribe(&tf.filter).withheld() else {
                codes.push(self.refused_subscription);
                continue;
            };
            let session = self.state.session.id();
            let group = tf.share_group.as_deref();
            if !self
                .router
                .may_subscribe(session, &tf.filter, group, self.max_subscriptions)
            {
                codes.push(ReasonCode::QUOTA_EXCEEDED);
                continue;
            }
            let sub = SubOptions {
                qos: translate::delivery(opts.qos),
                no_local: v5 && opts.no_local,
                retain_as_published: v5 && opts.retain_as_published,
                subscription_id,
                share_group: tf.share_group.clone(),
                withheld: withheld.clone(),
            };
            let replaced = self
                .router
                .subscribe(self.state.session.id(), tf.filter.clone(), sub);
            // [MQTT-3.3.1-9], MQTT 5 §3.3.1.3: retained messages are sent on a new
            // subscription per Retain Handling, never on a shared subscription
            // ([MQTT-3.8.4-4] 3.1.1 sends them on every SUBSCRIBE).
            let send_retained = tf.share_group.is_none()
                && match opts.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !replaced,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.router.retained(&tf.filter, now) {
                    if v5 && opts.no_local && message.origin == self.conn_id {
                        continue;
                    }
                    let withheld: &[Filter] = withheld.as_deref().unwrap_or_default();
                    if withheld.iter().any(|f| f.matches(&message.subject)) {
                        continue;
                    }
                    let qos = message.qos.min(translate::delivery(opts.qos));
                    self.state.session.push(Dispatch {
                        message,
                        qos,
                        retain: true,
                        subscription_ids: subscription_id.into_iter().collect(),
                        share: None,
                        seq: 0,
                    });
                }
            }
            codes.push(ReasonCode(opts.qos as u8));
        }
        self.out.push(Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Properties::default(),
            codes,
        }));
        Ok(())
    }

    /// Answers filters the rules refuse with `code` in SUBACK instead of Not
    /// authorized (`[auth] mqtt5_refused_subscription`).
    pub(crate) fn refuse_subscriptions_with(&mut self, code: ReasonCode) {
        self.refused_subscription = code;
    }

    /// What the client's user may do.
    pub(crate) fn grant(&self) -> &Grant {
        self.guard.grant()
    }

    /// Applies the user's permissions after a reload (`None`: the user is gone,
    /// and the client is disconnected with Not Authorized). Subscriptions no
    /// longer allowed at all are dropped (MQTT has no way to tell the client);
    /// deliveries are checked against the new rules, so partly allowed ones
    /// deliver only what is still allowed.
    pub(crate) fn reauthorize(&mut self, grant: Option<Grant>) -> Result<(), Exit> {
        let grant = grant.ok_or_else(|| {
            Exit::protocol(
                ReasonCode::NOT_AUTHORIZED,
                "the user's access was withdrawn",
            )
        })?;
        self.guard = Guard::new(grant);
        let session = self.state.session.id();
        for (filter, group) in self.router.subscriptions_of(session) {
            if self.guard.grant().may_subscribe(&filter) == FilterVerdict::Denied {
                tracing::info!(conn = self.conn_id, %filter, "mqtt: subscription withdrawn");
                self.router.unsubscribe(session, &filter, group.as_deref());
            }
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let codes = u
            .filters
            .iter()
            .map(|text| match translate::topic_filter(text) {
                None => ReasonCode::TOPIC_FILTER_INVALID,
                Some(tf) => {
                    let existed = self.router.unsubscribe(
                        self.state.session.id(),
                        &tf.filter,
                        tf.share_group.as_deref(),
                    );
                    if existed {
                        ReasonCode::SUCCESS
                    } else {
                        ReasonCode::NO_SUBSCRIPTION_EXISTED
                    }
                }
            })
            .collect();
        self.out.push(Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Properties::default(),
            codes,
        }));
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Exit {
        if let Some(expiry) = d.properties.session_expiry_interval {
            // [MQTT-3.14.2-2] Setting a non-zero Session Expiry Interval on DISCONNECT
            // after CONNECT had 0 is a Protocol Error.
            if self.session_expiry == 0 && expiry != 0 {
                return Exit::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry set on DISCONNECT after 0 in CONNECT",
                );
            }
            self.session_expiry = expiry.min(self.max_session_expiry);
        }
        if d.code == ReasonCode::SUCCESS {
            Exit::Normal
        } else {
            Exit::ClientDisconnect(d.code)
        }
    }

    /// Moves messages into `out` while flow control allows: first those to resend
    /// from an earlier connection, then the session's queue. Stops after `budget`
    /// messages or about [`BATCH_BYTES`] of payload; returns true if it stopped
    /// for that reason (more may be ready).
    pub(crate) fn pump(&mut self, now: Now, budget: usize) -> bool {
        let mut bytes = 0;
        for _ in 0..budget {
            if bytes >= BATCH_BYTES || !self.window_open() {
                return bytes >= BATCH_BYTES;
            }
            if self.resend_pending > 0 {
                bytes += self.resend_one(now);
                continue;
            }
            let Some(dispatch) = self.state.session.pop() else {
                return false;
            };
            let packet_id = match dispatch.qos {
                Delivery::AtMostOnce => 0,
                Delivery::AtLeastOnce | Delivery::ExactlyOnce => self.next_packet_id(),
            };
            match self.send(&dispatch, packet_id, false, now) {
                Some(size) => {
                    bytes += size;
                    if packet_id != 0 {
                        self.state
                            .inflight
                            .push_back((packet_id, OutFlight::Sent(dispatch)));
                    }
                }
                None => {
                    self.state.session.settle(dispatch.seq);
                }
            }
        }
        true
    }

    /// Resends the oldest message sent on an earlier connection, with DUP set and
    /// its packet identifier ([MQTT-4.4.0-1]); returns its payload size. One that
    /// has expired meanwhile, or no longer fits the client's maximum packet size,
    /// is dropped instead.
    fn resend_one(&mut self, now: Now) -> usize {
        let Some(i) = self
            .state
            .inflight
            .iter()
            .position(|(_, f)| matches!(f, OutFlight::Resend(_)))
        else {
            self.resend_pending = 0;
            return 0;
        };
        self.resend_pending -= 1;
        let Some((packet_id, OutFlight::Resend(dispatch))) = self.state.inflight.remove(i) else {
            return 0;
        };
        let size = self.send(&dispatch, packet_id, true, now);
        if size.is_some() {
            self.state
                .inflight
                .insert(i, (packet_id, OutFlight::Sent(dispatch)));
        } else {
            self.state.session.settle(dispatch.seq);
            let key = StateKey::Sent(dispatch.seq).bytes();
            self.state.session.record_state(&key, None);
        }
        size.unwrap_or(0)
    }

    /// Queues `dispatch` as a PUBLISH for this client (with a topic alias where
    /// one applies); returns its payload size, or `None` if it was discarded
    /// because it expired or exceeds the client's Maximum Packet Size. A stored
    /// QoS 2 message goes out once its packet id is recorded: resent after a
    /// restart, it must carry the id the client may already hold.
    fn send(&mut self, dispatch: &Dispatch, packet_id: u16, dup: bool, now: Now) -> Option<usize> {
        if !self.guard.may_receive(&dispatch.message.subject) {
            tracing::debug!(client_id = %self.client_id, "message on a subject the user may not read dropped");
            return None;
        }
        let mut publish = translate::publish_from_dispatch(dispatch, now)?;
        // MQTT 5 request/response: the receiver may answer on the Response Topic.
        if let Some(reply) = &dispatch.message.reply_to {
            self.guard.expect_response(reply, now.unix_ms);
        }
        publish.packet_id = packet_id;
        publish.dup = dup;
        let new_alias = self.outbound_aliases.apply(&mut publish);
        let packet = Packet::Publish(publish);
        // [MQTT-3.1.2-25] A packet above the client's Maximum Packet Size is
        // discarded as if it had been sent.
        if self.client_max_packet != u32::MAX
            && packet.encoded_len(self.version) > self.client_max_packet as usize
        {
            if let Some(topic) = new_alias {
                self.outbound_aliases.forget(&topic);
            }
            tracing::debug!(client_id = %self.client_id, "message above the client's maximum packet size dropped");
            return None;
        }
        let ticket = if dispatch.qos == Delivery::ExactlyOnce && dispatch.seq != 0 && !dup {
            let key = StateKey::Sent(dispatch.seq).bytes();
            let id = packet_id.to_be_bytes();
            self.state.session.record_state(&key, Some(&id))
        } else {
            Ticket::default()
        };
        self.send_when(ticket, packet);
        self.counts.delivered(dispatch.message.payload.len());
        Some(dispatch.message.payload.len())
    }

    fn next_packet_id(&mut self) -> u16 {
        // The window is smaller than 65535, so a free identifier always exists.
        loop {
            let id = self.state.last_packet_id.checked_add(1).unwrap_or(1);
            self.state.last_packet_id = id;
            if !self.state.inflight.iter().any(|(used, _)| *used == id) {
                return id;
            }
        }
    }

    /// Ends the connection: decides what becomes of the will and the session.
    pub(crate) fn finish(self, exit: &Exit, now: Now) -> Finish {
        let session_ends = self.session_expiry == 0;
        let mut will_now = None;
        let mut will_later = None;
        if let Some(will) = self.will.filter(|_| exit.publishes_will()) {
            match translate::message_from_publish(
                &mut LastSubject::default(),
                &will.publish,
                self.conn_id,
                now,
            ) {
                Ok(message) if will.delay == 0 || session_ends => will_now = Some(message),
                // A new connection took over before the delay passed: the will is
                // not published (MQTT 5 §3.1.2.5).
                Ok(_) if matches!(exit, Exit::TakenOver(_)) => {}
                Ok(message) => {
                    will_later = Some(PendingWill {
                        message,
                        due: now.at + Duration::from_secs(u64::from(will.delay)),
                    })
                }
                Err(_) => {}
            }
        }
        self.state.session.set_connection(0);
        if !session_ends && self.session_expiry != self.stored_expiry {
            self.router.store_session_expiry(
                &self.state.session,
                &self.client_id,
                self.session_expiry,
            );
        }
        let expires_at = now.at + Duration::from_secs(u64::from(self.session_expiry));
        Finish {
            will_now,
            state: self.state,
            park: (!session_ends).then_some((expires_at, will_later)),
        }
    }
}

/// What remains to do when a connection ends.
#[derive(Debug)]
pub(crate) struct Finish {
    /// A will to publish now.
    pub(crate) will_now: Option<crate::router::Message>,
    /// The session.
    pub(crate) state: SessionState,
    /// `Some` if the session persists: until when, and a will waiting for its delay.
    pub(crate) park: Option<(Instant, Option<PendingWill>)>,
}

/// The Response Information offered to a client that asks for it: topics under
/// `reply/<client id>/` are the client's to use for responses.
pub(crate) fn response_information(client_id: &str) -> String {
    format!("reply/{client_id}/")
}

/// An acknowledgement; 3.1.1 acks carry no reason code, the encoder drops it.
fn ack(packet_id: u16, code: ReasonCode) -> Ack {
    Ack {
        packet_id,
        code,
        properties: Properties::default(),
    }
}
