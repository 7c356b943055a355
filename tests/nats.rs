//! The NATS front driven by the async-nats client, against the real listener
//! started in process on port 0.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;

async fn nothing(sub: &mut async_nats::Subscriber) {
    let got = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(got.is_err(), "unexpected message: {got:?}");
}

#[tokio::test]
async fn publish_subscribe_and_wildcards() {
    let (broker, _) = start().await;
    let c = nats_client(&broker).await;
    let mut exact = c.subscribe("n.a.b").await.unwrap();
    let mut one = c.subscribe("n.*.b").await.unwrap();
    let mut rest = c.subscribe("n.>").await.unwrap();
    c.flush().await.unwrap();
    c.publish("n.a.b", "hello".into()).await.unwrap();
    c.publish("n", "not for n.>".into()).await.unwrap();
    c.publish("n.a.b.c", "deep".into()).await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(nats_next(&mut exact).await.payload, "hello");
    assert_eq!(nats_next(&mut one).await.payload, "hello");
    assert_eq!(nats_next(&mut rest).await.payload, "hello");
    assert_eq!(nats_next(&mut rest).await.payload, "deep");
    nothing(&mut exact).await;
    nothing(&mut one).await;
    nothing(&mut rest).await;
}

#[tokio::test]
async fn each_subscription_of_a_connection_gets_its_own_copy() {
    let (broker, _) = start().await;
    let c = nats_client(&broker).await;
    let mut first = c.subscribe("dup").await.unwrap();
    let mut second = c.subscribe("dup").await.unwrap();
    c.flush().await.unwrap();
    c.publish("dup", "x".into()).await.unwrap();
    assert_eq!(nats_next(&mut first).await.payload, "x");
    assert_eq!(nats_next(&mut second).await.payload, "x");
    drop(first);
    c.flush().await.unwrap();
    c.publish("dup", "y".into()).await.unwrap();
    assert_eq!(nats_next(&mut second).await.payload, "y");
}

#[tokio::test]
async fn queue_group_gives_each_message_to_one_member() {
    let (broker, _) = start().await;
    let a = nats_client(&broker).await;
    let b = nats_client(&broker).await;
    let mut qa = a.queue_subscribe("work", "workers".into()).await.unwrap();
    let mut qb = b.queue_subscribe("work", "workers".into()).await.unwrap();
    let mut plain = a.subscribe("work").await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    let publisher = nats_client(&broker).await;
    for i in 0..20u8 {
        publisher
            .publish("work", Bytes::from(vec![i]))
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    let mut all = Vec::new();
    for _ in 0..20 {
        all.push(nats_next(&mut plain).await.payload[0]);
    }
    assert_eq!(all, (0..20).collect::<Vec<u8>>());
    let mut shared = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), qa.next()).await {
        shared.push(m.payload[0]);
    }
    let from_a = shared.len();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), qb.next()).await {
        shared.push(m.payload[0]);
    }
    shared.sort_unstable();
    assert_eq!(shared, (0..20).collect::<Vec<u8>>());
    assert!(
        from_a > 0 && from_a < 20,
        "spread across members: {from_a} of 20 to one"
    );
}

#[tokio::test]
async fn request_reply_and_no_responders() {
    let (broker, _) = start().await;
    let responder = nats_client(&broker).await;
    let mut service = responder.subscribe("svc.echo").await.unwrap();
    responder.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(m) = service.next().await {
            if let Some(reply) = m.reply {
                responder.publish(reply, m.payload).await.unwrap();
            }
        }
    });
    let requester = nats_client(&broker).await;
    let answer = tokio::time::timeout(WAIT, requester.request("svc.echo", "ping".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.payload, "ping");
    let err = tokio::time::timeout(WAIT, requester.request("svc.nobody", "x".into()))
        .await
        .expect("fails fast")
        .unwrap_err();
    assert_eq!(
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "{err}"
    );
}

#[tokio::test]
async fn headers_are_carried() {
    let (broker, _) = start().await;
    let c = nats_client(&broker).await;
    let mut sub = c.subscribe("h").await.unwrap();
    c.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-One", "1");
    headers.append("X-One", "2");
    headers.insert("Content-Type", "application/json");
    c.publish_with_headers("h", headers, "{}".into())
        .await
        .unwrap();
    let m = nats_next(&mut sub).await;
    let h = m.headers.expect("headers");
    let ones: Vec<&str> = h.get_all("X-One").map(|v| v.as_str()).collect();
    assert_eq!(ones, ["1", "2"]);
    assert_eq!(
        h.get("Content-Type").map(|v| v.as_str()),
        Some("application/json")
    );
}

#[tokio::test]
async fn auto_unsubscribe_after_max_messages() {
    let (broker, _) = start().await;
    let c = nats_client(&broker).await;
    let mut sub = c.subscribe("auto").await.unwrap();
    sub.unsubscribe_after(2).await.unwrap();
    c.flush().await.unwrap();
    for i in 0..4u8 {
        c.publish("auto", Bytes::from(vec![i])).await.unwrap();
    }
    c.flush().await.unwrap();
    assert_eq!(nats_next(&mut sub).await.payload[0], 0);
    assert_eq!(nats_next(&mut sub).await.payload[0], 1);
    let end = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn no_echo_connection_does_not_receive_its_own_messages() {
    let (broker, _) = start().await;
    let addr = broker.nats_addr().unwrap();
    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(format!("nats://{addr}"))
        .await
        .unwrap();
    let other = nats_client(&broker).await;
    let mut own = quiet.subscribe("echo").await.unwrap();
    quiet.flush().await.unwrap();
    quiet.publish("echo", "mine".into()).await.unwrap();
    quiet.flush().await.unwrap();
    nothing(&mut own).await;
    other.publish("echo", "theirs".into()).await.unwrap();
    assert_eq!(nats_next(&mut own).await.payload, "theirs");
}
