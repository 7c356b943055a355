//! AMQP 0-9-1 with lapin against the real listener (the pika suite in
//! tests/interop/test_amqp.py covers the full behaviour list; these prove a Rust
//! client works too).

mod common;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::time::timeout;

use common::WAIT;

async fn connect(broker: &dwbroker::Broker) -> Connection {
    let uri = format!("amqp://guest:guest@{}/%2f", broker.amqp_addr().unwrap());
    timeout(
        WAIT,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .expect("connects in time")
    .expect("connects")
}

async fn channel(broker: &dwbroker::Broker) -> (Connection, Channel) {
    let conn = connect(broker).await;
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

async fn queue(ch: &Channel, args: FieldTable) -> ShortString {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
    q.name().clone()
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap();
}

async fn consume(ch: &Channel, q: &ShortString, no_ack: bool) -> Consumer {
    ch.basic_consume(
        q.clone(),
        "".into(),
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

async fn next(consumer: &mut Consumer) -> Delivery {
    timeout(WAIT, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("consumer open")
        .expect("delivery ok")
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

#[tokio::test]
async fn publish_consume_ack_round_trip_with_properties() {
    let (broker, _) = common::start().await;
    let (_c, ch) = channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    let mut consumer = consume(&ch, &q, false).await;
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("c-1".into())
        .with_headers(args(&[("n", AMQPValue::LongInt(-5))]));
    publish(&ch, "", q.as_str(), b"hello", props).await;
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"hello");
    assert_eq!(d.routing_key.as_str(), q.as_str());
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        d.properties.headers().as_ref().unwrap().inner().get("n"),
        Some(&AMQPValue::LongInt(-5))
    );
    d.acker.ack(BasicAckOptions::default()).await.unwrap();
    // Acked: nothing left to get.
    let got = ch
        .basic_get(q.clone(), BasicGetOptions::default())
        .await
        .unwrap();
    assert!(got.is_none());
}

#[tokio::test]
async fn prefetch_holds_the_next_message_until_ack_and_nack_requeues() {
    let (broker, _) = common::start().await;
    let (_c, ch) = channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consume(&ch, &q, false).await;
    publish(&ch, "", q.as_str(), b"1", BasicProperties::default()).await;
    publish(&ch, "", q.as_str(), b"2", BasicProperties::default()).await;
    let first = next(&mut consumer).await;
    assert_eq!(first.data, b"1");
    assert!(
        timeout(std::time::Duration::from_millis(300), consumer.next())
            .await
            .is_err()
    );
    first
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(again.data, b"1");
    assert!(again.redelivered);
    again.acker.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(next(&mut consumer).await.data, b"2");
}

#[tokio::test]
async fn confirms_ack_nack_on_reject_publish_and_return_unroutable() {
    let (broker, _) = common::start().await;
    let (_c, ch) = channel(&broker).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = queue(
        &ch,
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ]),
    )
    .await;
    let confirm = |body: &'static [u8], key: String, mandatory: bool| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "".into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory,
                    ..Default::default()
                },
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap()
        }
    };
    assert!(confirm(b"a", q.to_string(), false).await.is_ack());
    assert!(confirm(b"b", q.to_string(), false).await.is_nack());
    let returned = confirm(b"c", "no-such-queue".into(), true).await;
    assert!(returned.is_ack());
    let message = returned.take_message().expect("basic.return");
    assert_eq!(message.reply_code, 312);
    assert_eq!(message.data, b"c");
}

#[tokio::test]
async fn topic_exchange_and_dead_lettering_with_x_death() {
    let (broker, _) = common::start().await;
    let (_c, ch) = channel(&broker).await;
    ch.exchange_declare(
        "lapin-topic".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let dlq = queue(&ch, FieldTable::default()).await;
    let q = queue(
        &ch,
        args(&[
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(dlq.as_str().into()),
            ),
        ]),
    )
    .await;
    ch.queue_bind(
        q.clone(),
        "lapin-topic".into(),
        "orders.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(
        &ch,
        "lapin-topic",
        "orders.eu.new",
        b"o1",
        BasicProperties::default(),
    )
    .await;
    publish(
        &ch,
        "lapin-topic",
        "invoices.eu",
        b"skip",
        BasicProperties::default(),
    )
    .await;
    let mut consumer = consume(&ch, &q, false).await;
    let d = next(&mut consumer).await;
    assert_eq!(
        (d.data.as_slice(), d.routing_key.as_str()),
        (&b"o1"[..], "orders.eu.new")
    );
    d.acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let mut dead = consume(&ch, &dlq, true).await;
    let d = next(&mut dead).await;
    assert_eq!(d.data, b"o1");
    let headers = d.properties.headers().clone().unwrap();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("no x-death: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("x-death is empty");
    };
    assert_eq!(
        death.inner().get("reason"),
        Some(&AMQPValue::LongString("rejected".into()))
    );
    assert_eq!(
        death.inner().get("queue"),
        Some(&AMQPValue::LongString(q.as_str().into()))
    );
}

#[tokio::test]
async fn direct_reply_to_rpc() {
    let (broker, _) = common::start().await;
    let (_c, ch) = channel(&broker).await;
    let (_c2, server) = channel(&broker).await;
    let requests = queue(&server, FieldTable::default()).await;
    let mut replies = consume(&ch, &"amq.rabbitmq.reply-to".into(), true).await;
    publish(
        &ch,
        "",
        requests.as_str(),
        b"ping",
        BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
    )
    .await;
    let mut incoming = consume(&server, &requests, true).await;
    let req = next(&mut incoming).await;
    let reply_to = req.properties.reply_to().clone().unwrap();
    assert!(
        reply_to.as_str().starts_with("amq.rabbitmq.reply-to."),
        "{reply_to}"
    );
    publish(
        &server,
        "",
        reply_to.as_str(),
        b"pong",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(next(&mut replies).await.data, b"pong");
}

#[tokio::test]
async fn a_message_spanning_many_frames_round_trips() {
    let (broker, _) = common::start().await;
    let (_c, ch) = channel(&broker).await;
    let q = queue(&ch, FieldTable::default()).await;
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    publish(&ch, "", q.as_str(), &body, BasicProperties::default()).await;
    let mut consumer = consume(&ch, &q, true).await;
    assert_eq!(next(&mut consumer).await.data, body);
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_closes_only_the_channel() {
    let (broker, _) = common::start().await;
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            "no-such-queue".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("404") || format!("{err}").contains("NOT_FOUND"),
        "{err:?}"
    );
    let ch2 = conn.create_channel().await.unwrap();
    let q = queue(&ch2, FieldTable::default()).await;
    publish(&ch2, "", q.as_str(), b"after", BasicProperties::default()).await;
    let got = ch2
        .basic_get(q, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("message");
    assert_eq!(got.delivery.data, b"after");
}
