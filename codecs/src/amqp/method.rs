//! Every method of AMQP 0-9-1 as RabbitMQ speaks it (`amqp-rabbitmq-0.9.1.json`: the spec plus
//! RabbitMQ's extensions), as ONE table from which the types, the decoder and the encoder are
//! all generated, so a field can never be decoded one way and encoded another.
//!
//! Field names follow the JSON in snake case, reserved fields included under their historical
//! names (`ticket`, `capabilities`, `insist`, `known_hosts`, `out_of_band`, `channel_id`,
//! `cluster_id`) so they round-trip; `type` is spelled `kind`. Consecutive `bit` fields share an
//! octet, least significant bit first (§4.2.5.2).
//!
//! Decoding refuses arguments that end early (syntax error) and accepts bytes after the last
//! field, as RabbitMQ does (its generated decoder matches a prefix). Encoding never fails: a
//! short string over 255 bytes is truncated at a character boundary (see
//! [`wire::shortstr_prefix`](super::wire)); the front validates names before it encodes them.

use bytes::{Bytes, BytesMut};

use super::error::AmqpError;
use super::field_table::FieldTable;
use super::wire::{Reader, Writer};

/// The Rust type of a wire domain.
macro_rules! wire_ty {
    (octet) => {
        u8
    };
    (short) => {
        u16
    };
    (long) => {
        u32
    };
    (longlong) => {
        u64
    };
    (bit) => {
        bool
    };
    (shortstr) => {
        String
    };
    (longstr) => {
        Bytes
    };
    (table) => {
        FieldTable
    };
    (timestamp) => {
        u64
    };
}

macro_rules! methods {
    ($(
        $(#[doc = $doc:literal])*
        ($class:literal, $method:literal) $Variant:ident $name:literal content: $content:literal {
            $( $field:ident : $wire:ident ),* $(,)?
        }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[doc = concat!("\n\n`", $name, "` (", stringify!($class), ".", stringify!($method), ").")]
            #[derive(Debug, Clone, PartialEq, Default)]
            pub struct $Variant {
                $(
                    #[doc = concat!("`", stringify!($field), "` (", stringify!($wire), ").")]
                    pub $field: wire_ty!($wire),
                )*
            }

            impl From<$Variant> for Method {
                fn from(m: $Variant) -> Method {
                    Method::$Variant(m)
                }
            }
        )*

        /// A decoded method frame's method and arguments.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Method {
            $(
                #[doc = concat!("`", $name, "`.")]
                $Variant($Variant),
            )*
        }

        impl Method {
            /// Every (class id, method id, name) in the table, for tests and tooling.
            pub const ALL: &'static [(u16, u16, &'static str)] = &[$( ($class, $method, $name), )*];

            /// The method's class id.
            pub fn class_id(&self) -> u16 {
                match self { $( Method::$Variant(_) => $class, )* }
            }

            /// The method's id within its class.
            pub fn method_id(&self) -> u16 {
                match self { $( Method::$Variant(_) => $method, )* }
            }

            /// The spec's dotted name, e.g. `"basic.publish"`.
            pub fn name(&self) -> &'static str {
                match self { $( Method::$Variant(_) => $name, )* }
            }

            /// Whether a content header (and body) follows this method.
            pub fn has_content(&self) -> bool {
                match self { $( Method::$Variant(_) => $content, )* }
            }

            /// The dotted name of a (class id, method id) pair, if the table knows it.
            pub fn name_of(class_id: u16, method_id: u16) -> Option<&'static str> {
                match (class_id, method_id) {
                    $( ($class, $method) => Some($name), )*
                    _ => None,
                }
            }

            /// Decodes a method's arguments (the bytes after class id and method id).
            pub fn decode(class_id: u16, method_id: u16, args: &[u8]) -> Result<Method, AmqpError> {
                Self::decode_bytes(class_id, method_id, Bytes::copy_from_slice(args))
            }

            /// [`Method::decode`] on a frame slice; long strings stay zero-copy.
            #[allow(unused_mut, unused_variables)]
            pub(crate) fn decode_bytes(class_id: u16, method_id: u16, args: Bytes) -> Result<Method, AmqpError> {
                match (class_id, method_id) {
                    $(
                        ($class, $method) => {
                            let mut r = Reader::new(args, class_id, method_id, $name);
                            // Struct-expression fields are evaluated in the order written,
                            // which is wire order.
                            let m = $Variant { $( $field: r.$wire()?, )* };
                            // As RabbitMQ's and amq-protocol's parsers: nothing after the
                            // last argument.
                            if !r.is_empty() {
                                return Err(r.err("bytes after the arguments"));
                            }
                            Ok(Method::$Variant(m))
                        }
                    )*
                    _ => Err(AmqpError::UnknownMethod { class_id, method_id }),
                }
            }

            /// Writes the arguments (not class id and method id).
            #[allow(unused_variables, unused_mut)]
            pub fn encode_args(&self, dst: &mut BytesMut) {
                let mut w = Writer::new(dst);
                match self {
                    $( Method::$Variant(m) => { $( w.$wire(&m.$field); )* } )*
                }
            }
        }
    };
}

methods! {
    /// The server's greeting: version, properties (capabilities), SASL mechanisms, locales.
    (10, 10) ConnectionStart "connection.start" content: false {
        version_major: octet, version_minor: octet, server_properties: table,
        mechanisms: longstr, locales: longstr,
    }
    /// The client's properties, chosen mechanism and its initial response.
    (10, 11) ConnectionStartOk "connection.start-ok" content: false {
        client_properties: table, mechanism: shortstr, response: longstr, locale: shortstr,
    }
    /// A SASL challenge.
    (10, 20) ConnectionSecure "connection.secure" content: false { challenge: longstr }
    /// A SASL response.
    (10, 21) ConnectionSecureOk "connection.secure-ok" content: false { response: longstr }
    /// The server's limits offer.
    (10, 30) ConnectionTune "connection.tune" content: false {
        channel_max: short, frame_max: long, heartbeat: short,
    }
    /// The client's accepted limits.
    (10, 31) ConnectionTuneOk "connection.tune-ok" content: false {
        channel_max: short, frame_max: long, heartbeat: short,
    }
    /// Opens a virtual host; `capabilities` and `insist` are reserved.
    (10, 40) ConnectionOpen "connection.open" content: false {
        virtual_host: shortstr, capabilities: shortstr, insist: bit,
    }
    /// `known_hosts` is reserved.
    (10, 41) ConnectionOpenOk "connection.open-ok" content: false { known_hosts: shortstr }
    /// Closes the connection, naming the failing method if any.
    (10, 50) ConnectionClose "connection.close" content: false {
        reply_code: short, reply_text: shortstr, class_id: short, method_id: short,
    }
    /// Confirms a close.
    (10, 51) ConnectionCloseOk "connection.close-ok" content: false {}
    /// RabbitMQ extension: publishing is blocked by a resource alarm.
    (10, 60) ConnectionBlocked "connection.blocked" content: false { reason: shortstr }
    /// RabbitMQ extension: the alarm cleared.
    (10, 61) ConnectionUnblocked "connection.unblocked" content: false {}
    /// RabbitMQ extension: refresh the credentials (e.g. an expiring token).
    (10, 70) ConnectionUpdateSecret "connection.update-secret" content: false {
        new_secret: longstr, reason: shortstr,
    }
    /// RabbitMQ extension: the secret was accepted.
    (10, 71) ConnectionUpdateSecretOk "connection.update-secret-ok" content: false {}

    /// Opens a channel; `out_of_band` is reserved.
    (20, 10) ChannelOpen "channel.open" content: false { out_of_band: shortstr }
    /// `channel_id` is reserved (a long string).
    (20, 11) ChannelOpenOk "channel.open-ok" content: false { channel_id: longstr }
    /// Asks the peer to pause or resume content.
    (20, 20) ChannelFlow "channel.flow" content: false { active: bit }
    /// Confirms a flow change.
    (20, 21) ChannelFlowOk "channel.flow-ok" content: false { active: bit }
    /// Closes the channel, naming the failing method if any.
    (20, 40) ChannelClose "channel.close" content: false {
        reply_code: short, reply_text: shortstr, class_id: short, method_id: short,
    }
    /// Confirms a channel close.
    (20, 41) ChannelCloseOk "channel.close-ok" content: false {}

    /// Removed in 0-9-1; RabbitMQ still answers it as a no-op.
    (30, 10) AccessRequest "access.request" content: false {
        realm: shortstr, exclusive: bit, passive: bit, active: bit, write: bit, read: bit,
    }
    /// `ticket` is reserved.
    (30, 11) AccessRequestOk "access.request-ok" content: false { ticket: short }

    /// Declares (or, passively, checks) an exchange.
    (40, 10) ExchangeDeclare "exchange.declare" content: false {
        ticket: short, exchange: shortstr, kind: shortstr, passive: bit, durable: bit,
        auto_delete: bit, internal: bit, nowait: bit, arguments: table,
    }
    /// Confirms an exchange declare.
    (40, 11) ExchangeDeclareOk "exchange.declare-ok" content: false {}
    /// Deletes an exchange.
    (40, 20) ExchangeDelete "exchange.delete" content: false {
        ticket: short, exchange: shortstr, if_unused: bit, nowait: bit,
    }
    /// Confirms an exchange delete.
    (40, 21) ExchangeDeleteOk "exchange.delete-ok" content: false {}
    /// RabbitMQ extension: exchange-to-exchange binding.
    (40, 30) ExchangeBind "exchange.bind" content: false {
        ticket: short, destination: shortstr, source: shortstr, routing_key: shortstr,
        nowait: bit, arguments: table,
    }
    /// Confirms an exchange bind.
    (40, 31) ExchangeBindOk "exchange.bind-ok" content: false {}
    /// RabbitMQ extension: removes an exchange-to-exchange binding.
    (40, 40) ExchangeUnbind "exchange.unbind" content: false {
        ticket: short, destination: shortstr, source: shortstr, routing_key: shortstr,
        nowait: bit, arguments: table,
    }
    /// Confirms an exchange unbind: method id 51, not 41 (RabbitMQ's JSON).
    (40, 51) ExchangeUnbindOk "exchange.unbind-ok" content: false {}

    /// Declares (or, passively, checks) a queue; an empty name asks the server to pick one.
    (50, 10) QueueDeclare "queue.declare" content: false {
        ticket: short, queue: shortstr, passive: bit, durable: bit, exclusive: bit,
        auto_delete: bit, nowait: bit, arguments: table,
    }
    /// The queue's (possibly generated) name and counts.
    (50, 11) QueueDeclareOk "queue.declare-ok" content: false {
        queue: shortstr, message_count: long, consumer_count: long,
    }
    /// Binds a queue to an exchange.
    (50, 20) QueueBind "queue.bind" content: false {
        ticket: short, queue: shortstr, exchange: shortstr, routing_key: shortstr,
        nowait: bit, arguments: table,
    }
    /// Confirms a queue bind.
    (50, 21) QueueBindOk "queue.bind-ok" content: false {}
    /// Removes all ready messages from a queue.
    (50, 30) QueuePurge "queue.purge" content: false { ticket: short, queue: shortstr, nowait: bit }
    /// How many messages were purged.
    (50, 31) QueuePurgeOk "queue.purge-ok" content: false { message_count: long }
    /// Deletes a queue.
    (50, 40) QueueDelete "queue.delete" content: false {
        ticket: short, queue: shortstr, if_unused: bit, if_empty: bit, nowait: bit,
    }
    /// How many messages were deleted with the queue.
    (50, 41) QueueDeleteOk "queue.delete-ok" content: false { message_count: long }
    /// Unbinds a queue (no `nowait`: errata §24).
    (50, 50) QueueUnbind "queue.unbind" content: false {
        ticket: short, queue: shortstr, exchange: shortstr, routing_key: shortstr,
        arguments: table,
    }
    /// Confirms a queue unbind.
    (50, 51) QueueUnbindOk "queue.unbind-ok" content: false {}

    /// Prefetch limits (RabbitMQ: `global` false = per consumer, true = per channel).
    (60, 10) BasicQos "basic.qos" content: false {
        prefetch_size: long, prefetch_count: short, global: bit,
    }
    /// Confirms a qos change.
    (60, 11) BasicQosOk "basic.qos-ok" content: false {}
    /// Starts a consumer.
    (60, 20) BasicConsume "basic.consume" content: false {
        ticket: short, queue: shortstr, consumer_tag: shortstr, no_local: bit, no_ack: bit,
        exclusive: bit, nowait: bit, arguments: table,
    }
    /// The consumer's (possibly generated) tag.
    (60, 21) BasicConsumeOk "basic.consume-ok" content: false { consumer_tag: shortstr }
    /// Cancels a consumer (sent by the server too, for consumer-cancel notification).
    (60, 30) BasicCancel "basic.cancel" content: false { consumer_tag: shortstr, nowait: bit }
    /// Confirms a cancel.
    (60, 31) BasicCancelOk "basic.cancel-ok" content: false { consumer_tag: shortstr }
    /// Publishes a message; a content header and body follow.
    (60, 40) BasicPublish "basic.publish" content: true {
        ticket: short, exchange: shortstr, routing_key: shortstr, mandatory: bit, immediate: bit,
    }
    /// Returns an unroutable mandatory message; content follows.
    (60, 50) BasicReturn "basic.return" content: true {
        reply_code: short, reply_text: shortstr, exchange: shortstr, routing_key: shortstr,
    }
    /// Delivers a message to a consumer; content follows.
    (60, 60) BasicDeliver "basic.deliver" content: true {
        consumer_tag: shortstr, delivery_tag: longlong, redelivered: bit, exchange: shortstr,
        routing_key: shortstr,
    }
    /// Fetches one message synchronously.
    (60, 70) BasicGet "basic.get" content: false { ticket: short, queue: shortstr, no_ack: bit }
    /// The fetched message; content follows.
    (60, 71) BasicGetOk "basic.get-ok" content: true {
        delivery_tag: longlong, redelivered: bit, exchange: shortstr, routing_key: shortstr,
        message_count: long,
    }
    /// Nothing to fetch; `cluster_id` is reserved.
    (60, 72) BasicGetEmpty "basic.get-empty" content: false { cluster_id: shortstr }
    /// Acknowledges one or (`multiple`) all delivery tags up to this one; also a publisher
    /// confirm from the server.
    (60, 80) BasicAck "basic.ack" content: false { delivery_tag: longlong, multiple: bit }
    /// Rejects one delivery.
    (60, 90) BasicReject "basic.reject" content: false { delivery_tag: longlong, requeue: bit }
    /// Deprecated asynchronous recover.
    (60, 100) BasicRecoverAsync "basic.recover-async" content: false { requeue: bit }
    /// Redelivers unacknowledged messages.
    (60, 110) BasicRecover "basic.recover" content: false { requeue: bit }
    /// Confirms a recover.
    (60, 111) BasicRecoverOk "basic.recover-ok" content: false {}
    /// RabbitMQ extension: rejects one or many deliveries; also a negative publisher confirm.
    (60, 120) BasicNack "basic.nack" content: false {
        delivery_tag: longlong, multiple: bit, requeue: bit,
    }

    /// RabbitMQ extension: enables publisher confirms on the channel.
    (85, 10) ConfirmSelect "confirm.select" content: false { nowait: bit }
    /// Confirms confirm mode.
    (85, 11) ConfirmSelectOk "confirm.select-ok" content: false {}

    /// Enables transactions on the channel.
    (90, 10) TxSelect "tx.select" content: false {}
    /// Confirms tx mode.
    (90, 11) TxSelectOk "tx.select-ok" content: false {}
    /// Commits the current transaction.
    (90, 20) TxCommit "tx.commit" content: false {}
    /// Confirms a commit.
    (90, 21) TxCommitOk "tx.commit-ok" content: false {}
    /// Abandons the current transaction.
    (90, 30) TxRollback "tx.rollback" content: false {}
    /// Confirms a rollback.
    (90, 31) TxRollbackOk "tx.rollback-ok" content: false {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_every_method_once() {
        assert_eq!(Method::ALL.len(), 66);
        let mut seen = std::collections::HashSet::new();
        for &(c, m, name) in Method::ALL {
            assert!(seen.insert((c, m)), "{name} twice");
            assert_eq!(Method::name_of(c, m), Some(name));
        }
    }

    #[test]
    fn bits_pack_lsb_first_and_reset_on_other_fields() {
        let m = Method::QueueDeclare(QueueDeclare {
            ticket: 0,
            queue: "q".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: true,
            nowait: true,
            arguments: FieldTable::default(),
        });
        let mut out = BytesMut::new();
        m.encode_args(&mut out);
        assert_eq!(&out[..], &[0, 0, 1, b'q', 0b11010, 0, 0, 0, 0]);
        assert_eq!(Method::decode(50, 10, &out).unwrap(), m);
        // Two bit runs separated by a shortstr use two octets.
        let d = Method::BasicDeliver(BasicDeliver {
            consumer_tag: "c".into(),
            delivery_tag: 7,
            redelivered: true,
            exchange: "".into(),
            routing_key: "k".into(),
        });
        let mut out = BytesMut::new();
        d.encode_args(&mut out);
        assert_eq!(&out[..], &[1, b'c', 0, 0, 0, 0, 0, 0, 0, 7, 1, 0, 1, b'k']);
    }

    #[test]
    fn short_and_long_args() {
        let err = Method::decode(60, 40, &[0, 0, 1]).unwrap_err();
        assert!(matches!(
            err,
            AmqpError::Syntax {
                class_id: 60,
                method_id: 40,
                context: "basic.publish",
                ..
            }
        ));
        // Bytes after the last argument are refused, as RabbitMQ's generated decoder
        // (an exact binary match) and amq-protocol do.
        assert_eq!(
            Method::decode(90, 10, &[]).unwrap(),
            Method::TxSelect(TxSelect {})
        );
        assert!(matches!(
            Method::decode(90, 10, &[1, 2, 3]),
            Err(AmqpError::Syntax {
                class_id: 90,
                method_id: 10,
                ..
            })
        ));
        assert!(matches!(
            Method::decode(60, 41, &[]),
            Err(AmqpError::UnknownMethod {
                class_id: 60,
                method_id: 41
            })
        ));
    }
}
