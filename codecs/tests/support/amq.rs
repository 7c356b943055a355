//! Conversions from our AMQP frames to amq-protocol's, shared by the differential tests
//! (tests/amqp_differential.rs) and the differential fuzz target
//! (fuzz/fuzz_targets/differential_amqp.rs). The differences they paper over are listed
//! in tests/amqp_differential.rs.
#![allow(dead_code)]

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, connection, exchange, queue, AMQPClass};
use amq_protocol::types as t;
use bytes::BytesMut;
use dwbroker_codecs::amqp::*;

pub fn ss(s: &str) -> t::ShortString {
    s.into()
}

pub fn amq_value(v: &FieldValue) -> t::AMQPValue {
    use t::AMQPValue as A;
    match v {
        FieldValue::Bool(b) => A::Boolean(*b),
        FieldValue::I8(n) => A::ShortShortInt(*n),
        FieldValue::U8(n) => A::ShortShortUInt(*n),
        FieldValue::I16(n) => A::ShortInt(*n),
        FieldValue::U16(n) => A::ShortUInt(*n),
        FieldValue::I32(n) => A::LongInt(*n),
        FieldValue::U32(n) => A::LongUInt(*n),
        FieldValue::I64(n) => A::LongLongInt(*n),
        FieldValue::F32(n) => A::Float(*n),
        FieldValue::F64(n) => A::Double(*n),
        FieldValue::Decimal { scale, value } => A::DecimalValue(t::DecimalValue {
            scale: *scale,
            value: *value as u32,
        }),
        FieldValue::LongString(b) => A::LongString(b.to_vec().into()),
        FieldValue::Bytes(b) => A::ByteArray(b.to_vec().into()),
        FieldValue::Array(items) => {
            A::FieldArray(items.iter().map(amq_value).collect::<Vec<_>>().into())
        }
        FieldValue::Timestamp(ts) => A::Timestamp(*ts),
        FieldValue::Table(tb) => A::FieldTable(amq_table(tb)),
        FieldValue::Void => A::Void,
    }
}

pub fn amq_table(tb: &FieldTable) -> t::FieldTable {
    let mut out = t::FieldTable::default();
    for (k, v) in tb.iter() {
        out.insert(ss(k), amq_value(v));
    }
    out
}

pub fn amq_props(p: &BasicProperties) -> basic::AMQPProperties {
    let mut a = basic::AMQPProperties::default();
    if let Some(v) = &p.content_type {
        a = a.with_content_type(ss(v));
    }
    if let Some(v) = &p.content_encoding {
        a = a.with_content_encoding(ss(v));
    }
    if let Some(v) = &p.headers {
        a = a.with_headers(amq_table(v));
    }
    if let Some(v) = p.delivery_mode {
        a = a.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        a = a.with_priority(v);
    }
    if let Some(v) = &p.correlation_id {
        a = a.with_correlation_id(ss(v));
    }
    if let Some(v) = &p.reply_to {
        a = a.with_reply_to(ss(v));
    }
    if let Some(v) = &p.expiration {
        a = a.with_expiration(ss(v));
    }
    if let Some(v) = &p.message_id {
        a = a.with_message_id(ss(v));
    }
    if let Some(v) = p.timestamp {
        a = a.with_timestamp(v);
    }
    if let Some(v) = &p.kind {
        a = a.with_type(ss(v));
    }
    if let Some(v) = &p.user_id {
        a = a.with_user_id(ss(v));
    }
    if let Some(v) = &p.app_id {
        a = a.with_app_id(ss(v));
    }
    if let Some(v) = &p.cluster_id {
        a = a.with_cluster_id(ss(v));
    }
    a
}

/// The amq-protocol value of one of our methods (the ones this file exercises).
pub fn amq_method(m: &Method) -> Option<AMQPClass> {
    Some(match m {
        Method::ConnectionStart(x) => {
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: x.version_major,
                version_minor: x.version_minor,
                server_properties: amq_table(&x.server_properties),
                mechanisms: x.mechanisms.to_vec().into(),
                locales: x.locales.to_vec().into(),
            }))
        }
        Method::ConnectionStartOk(x) => {
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: amq_table(&x.client_properties),
                mechanism: ss(&x.mechanism),
                response: x.response.to_vec().into(),
                locale: ss(&x.locale),
            }))
        }
        Method::ConnectionTune(x) => {
            AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                channel_max: x.channel_max,
                frame_max: x.frame_max,
                heartbeat: x.heartbeat,
            }))
        }
        Method::ConnectionClose(x) => {
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: x.reply_code,
                reply_text: ss(&x.reply_text),
                class_id: x.class_id,
                method_id: x.method_id,
            }))
        }
        Method::ConnectionBlocked(x) => {
            AMQPClass::Connection(connection::AMQPMethod::Blocked(connection::Blocked {
                reason: ss(&x.reason),
            }))
        }
        Method::ExchangeUnbindOk(_) => {
            AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}))
        }
        Method::ExchangeDeclare(x) => {
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: ss(&x.exchange),
                kind: ss(&x.kind),
                passive: x.passive,
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                nowait: x.nowait,
                arguments: amq_table(&x.arguments),
            }))
        }
        Method::QueueDeclare(x) => AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: ss(&x.queue),
            passive: x.passive,
            durable: x.durable,
            exclusive: x.exclusive,
            auto_delete: x.auto_delete,
            nowait: x.nowait,
            arguments: amq_table(&x.arguments),
        })),
        Method::QueueDeclareOk(x) => {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: ss(&x.queue),
                message_count: x.message_count,
                consumer_count: x.consumer_count,
            }))
        }
        Method::BasicQos(x) => AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: x.prefetch_count,
            global: x.global,
        })),
        Method::BasicConsume(x) => AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: ss(&x.queue),
            consumer_tag: ss(&x.consumer_tag),
            no_local: x.no_local,
            no_ack: x.no_ack,
            exclusive: x.exclusive,
            nowait: x.nowait,
            arguments: amq_table(&x.arguments),
        })),
        Method::BasicPublish(x) => AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
            mandatory: x.mandatory,
            immediate: x.immediate,
        })),
        Method::BasicDeliver(x) => AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: ss(&x.consumer_tag),
            delivery_tag: x.delivery_tag,
            redelivered: x.redelivered,
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
        })),
        Method::BasicGetOk(x) => AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: x.delivery_tag,
            redelivered: x.redelivered,
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
            message_count: x.message_count,
        })),
        Method::BasicNack(x) => AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: x.delivery_tag,
            multiple: x.multiple,
            requeue: x.requeue,
        })),
        Method::BasicGetEmpty(_) => {
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {}))
        }
        _ => return None,
    })
}

/// `None` for a method amq-protocol's model has no mapping for here.
pub fn amq_frame(f: &Frame) -> Option<AMQPFrame> {
    Some(match f {
        Frame::Method { channel, method } => AMQPFrame::Method(*channel, amq_method(method)?),
        Frame::Header { channel, header } => AMQPFrame::Header(
            *channel,
            AMQPContentHeader {
                class_id: header.class_id,
                body_size: header.body_size,
                properties: amq_props(&header.properties),
            },
        ),
        Frame::Body { channel, payload } => AMQPFrame::Body(*channel, payload.to_vec()),
        Frame::Heartbeat { channel: 0 } => AMQPFrame::Heartbeat,
        Frame::Heartbeat { channel } => AMQPFrame::InvalidHeartbeat(*channel),
    })
}

/// `f` with raw_properties set to what encoding its properties gives (as decoding would).
pub fn normalized(f: &Frame) -> Frame {
    match f {
        Frame::Header { channel, header } => {
            let mut raw = BytesMut::new();
            header.properties.encode(&mut raw);
            Frame::Header {
                channel: *channel,
                header: ContentHeader {
                    raw_properties: raw.freeze(),
                    ..header.clone()
                },
            }
        }
        other => other.clone(),
    }
}
