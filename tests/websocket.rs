//! WebSocket listeners: MQTT on `/mqtt` and STOMP on `/ws` (RabbitMQ Web-STOMP) with
//! packets split across messages and several in one, pings answered, close frames
//! sent with the protocol's reason, the upgrade refused for a wrong path (404), an
//! unknown subprotocol (400) and a foreign Origin (403), the secure variant over
//! TLS, and rumqttc's WebSocket transport against a rumqttc TCP client.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::tls::Pki;
use common::WAIT;
use dwbroker::config::{Config, Listen};
use dwbroker::Broker;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

async fn start(tweak: impl FnOnce(&mut Config)) -> Broker {
    let mut c = common::config();
    c.listeners.mqtt_ws = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.stomp_ws = Listen::parse("127.0.0.1:0").unwrap();
    tweak(&mut c);
    Broker::start(c).await.expect("broker starts")
}

/// Opens a WebSocket to `path` on `addr` with `headers`; the upgrade's error if refused.
async fn open_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<WebSocketStream<S>, WsError> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("an answer in time")?;
    Ok(ws)
}

async fn open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<WebSocketStream<TcpStream>, WsError> {
    open_on(TcpStream::connect(addr).await.unwrap(), addr, path, headers).await
}

/// The next data message's bytes (pings and pongs skipped).
async fn next_data<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Bytes {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        match m {
            Message::Binary(b) => return b,
            Message::Text(t) => return Bytes::from(t),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads data messages until `want` bytes arrived (a packet may span messages).
async fn read_bytes<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    want: usize,
) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        got.extend_from_slice(&next_data(ws).await);
    }
    got
}

const CONNECT: &[u8] = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00";

#[tokio::test]
async fn mqtt_over_websocket_with_packets_split_and_joined() {
    let broker = start(|_| {}).await;
    let addr = broker.mqtt_ws_addr().expect("mqtt-ws listener");
    let mut ws = open(addr, "/mqtt", &[("sec-websocket-protocol", "mqtt")])
        .await
        .expect("upgrade");
    // CONNECT in two messages.
    ws.send(Message::binary(CONNECT[..5].to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(CONNECT[5..].to_vec()))
        .await
        .unwrap();
    assert_eq!(read_bytes(&mut ws, 4).await, [0x20, 0x02, 0x00, 0x00]);
    // SUBSCRIBE ws/# QoS 0 and two PINGREQs in one message.
    let mut joined = b"\x82\x09\x00\x01\x00\x04ws/#\x00".to_vec();
    joined.extend_from_slice(&[0xC0, 0x00, 0xC0, 0x00]);
    ws.send(Message::binary(joined)).await.unwrap();
    assert_eq!(
        read_bytes(&mut ws, 9).await,
        [0x90, 0x03, 0x00, 0x01, 0x00, 0xD0, 0x00, 0xD0, 0x00]
    );
    // A plain TCP client's publish reaches the WebSocket subscriber.
    let (plain, _) = common::v4(broker.mqtt_addr().unwrap(), |_| {}, "ws-feeder").await;
    plain
        .client
        .publish("ws/a", rumqttc::QoS::AtMostOnce, false, "over websocket")
        .await
        .unwrap();
    let publish = read_bytes(&mut ws, 2 + 2 + 4 + 14).await;
    assert_eq!(&publish[..2], [0x30, 20]);
    assert_eq!(&publish[4..8], b"ws/a");
    assert_eq!(&publish[8..], b"over websocket");
    // A WebSocket ping is answered.
    ws.send(Message::Ping(Bytes::from_static(b"hi")))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Pong(p) => break assert_eq!(&p[..], b"hi"),
            Message::Binary(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // DISCONNECT: the broker closes with a normal close frame.
    ws.send(Message::binary(vec![0xE0, 0x00])).await.unwrap();
    assert_eq!(
        close_frame(&mut ws).await,
        (CloseCode::Normal, String::new())
    );
    broker.shutdown().await;
}

/// The status code and reason of the close frame the broker sends next (data
/// messages before it skipped).
async fn close_frame<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> (CloseCode, String) {
    let frame = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("a close frame, not {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time")
    .expect("a status code");
    (frame.code, frame.reason.to_string())
}

#[tokio::test]
async fn close_frames_say_why_the_broker_closed() {
    let broker = start(|c| c.listeners.nats_ws = Listen::parse("127.0.0.1:0").unwrap()).await;
    // MQTT 5: a second CONNECT is a protocol error (DISCONNECT 0x82, then 1002).
    let mqtt = broker.mqtt_ws_addr().unwrap();
    let mut ws = open(mqtt, "/mqtt", &[("sec-websocket-protocol", "mqtt")])
        .await
        .unwrap();
    let connect_v5 = b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x1e\x00\x00\x00";
    ws.send(Message::binary(connect_v5.to_vec())).await.unwrap();
    ws.send(Message::binary(connect_v5.to_vec())).await.unwrap();
    let (code, reason) = close_frame(&mut ws).await;
    assert_eq!(code, CloseCode::Protocol, "{reason}");
    // STOMP: a frame that is not a command gets ERROR, then 1002 with its message.
    let stomp = broker.stomp_ws_addr().unwrap();
    let mut ws = open(stomp, "/ws", &[]).await.unwrap();
    ws.send(Message::text("BOGUS\n\n\0")).await.unwrap();
    let (code, reason) = close_frame(&mut ws).await;
    assert_eq!(code, CloseCode::Protocol);
    assert!(!reason.is_empty());
    // NATS: an unknown operation (-ERR, then 1002 with its text).
    let nats = broker.nats_ws_addr().unwrap();
    let mut ws = open(nats, "/", &[]).await.unwrap();
    ws.send(Message::text("BOGUS\r\n")).await.unwrap();
    let closed = close_frame(&mut ws).await;
    assert_eq!(
        closed,
        (CloseCode::Protocol, "Unknown Protocol Operation".into())
    );
    // Shutdown: every connected client is told the server is going away.
    let mut ws = open(nats, "/", &[]).await.unwrap();
    assert!(next_data(&mut ws).await.starts_with(b"INFO "));
    let stopping = tokio::spawn(broker.shutdown());
    assert_eq!(close_frame(&mut ws).await.0, CloseCode::Away);
    stopping.await.unwrap();
}

#[tokio::test]
async fn stomp_over_websocket_as_web_stomp() {
    let broker = start(|_| {}).await;
    let addr = broker.stomp_ws_addr().expect("stomp-ws listener");
    let mut ws = open(
        addr,
        "/ws",
        &[("sec-websocket-protocol", "v10.stomp, v12.stomp")],
    )
    .await
    .expect("upgrade");
    ws.send(Message::text("CONNECT\naccept-version:1.2\nhost:/\n\n\0"))
        .await
        .unwrap();
    let connected = String::from_utf8(next_data(&mut ws).await.to_vec()).unwrap();
    assert!(connected.starts_with("CONNECTED\n"), "{connected}");
    ws.send(Message::text(
        "SUBSCRIBE\nid:0\ndestination:/topic/ws.news\nreceipt:r\n\n\0",
    ))
    .await
    .unwrap();
    let receipt = String::from_utf8(next_data(&mut ws).await.to_vec()).unwrap();
    assert!(receipt.starts_with("RECEIPT\n"), "{receipt}");
    let (mut plain, _) = common::stomp_raw::StompRaw::handshake(
        broker.stomp_addr().unwrap(),
        common::stomp_raw::connect_frame(dwbroker_codecs::stomp::Version::V1_2),
    )
    .await;
    plain
        .send_to_sync("/topic/ws.news", b"to the browser")
        .await;
    let message = String::from_utf8(next_data(&mut ws).await.to_vec()).unwrap();
    assert!(message.starts_with("MESSAGE\n"), "{message}");
    assert!(message.ends_with("to the browser\0"), "{message}");
    broker.shutdown().await;
}

/// The HTTP status of a refused upgrade.
fn status(e: WsError) -> u16 {
    match e {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn upgrades_are_refused_for_a_wrong_path_subprotocol_or_origin() {
    let broker = start(|c| c.websocket_origins = Vec::new()).await;
    let mqtt = broker.mqtt_ws_addr().unwrap();
    let stomp = broker.stomp_ws_addr().unwrap();
    let err = open(mqtt, "/other", &[]).await.expect_err("wrong path");
    assert_eq!(status(err), 404);
    let err = open(mqtt, "/mqtt", &[("sec-websocket-protocol", "v12.stomp")])
        .await
        .expect_err("a STOMP subprotocol on the MQTT endpoint");
    assert_eq!(status(err), 400);
    let err = open(stomp, "/ws", &[("origin", "http://evil.example")])
        .await
        .expect_err("a page of another host");
    assert_eq!(status(err), 403);
    // Same host (ports aside), and no Origin at all (not a browser): served.
    open(stomp, "/ws", &[("origin", "http://127.0.0.1:8080")])
        .await
        .expect("same host");
    open(mqtt, "/mqtt", &[])
        .await
        .expect("no origin, no subprotocol");
    broker.shutdown().await;

    let broker = start(|c| c.websocket_origins = vec!["https://app.example".into()]).await;
    let stomp = broker.stomp_ws_addr().unwrap();
    open(stomp, "/ws", &[("origin", "https://app.example")])
        .await
        .expect("an allowed origin");
    let err = open(stomp, "/ws", &[("origin", "http://127.0.0.1")])
        .await
        .expect_err("not in the list");
    assert_eq!(status(err), 403);
    broker.shutdown().await;
}

#[tokio::test]
async fn mqtt_over_secure_websocket() {
    let pki = Pki::new();
    let broker = start(|c| {
        c.listeners.mqtt_wss = Listen::parse("127.0.0.1:0").unwrap();
        c.tls = Some(pki.config());
    })
    .await;
    let addr = broker.mqtt_wss_addr().expect("mqtt-wss listener");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client())
        .connect(name, tcp)
        .await
        .expect("TLS");
    let mut ws = open_on(tls, addr, "/mqtt", &[("sec-websocket-protocol", "mqtt")])
        .await
        .expect("upgrade over TLS");
    ws.send(Message::binary(CONNECT.to_vec())).await.unwrap();
    assert_eq!(read_bytes(&mut ws, 4).await, [0x20, 0x02, 0x00, 0x00]);
    broker.shutdown().await;
}

#[tokio::test]
async fn nats_over_websocket_as_nats_server() {
    let broker = start(|c| c.listeners.nats_ws = Listen::parse("127.0.0.1:0").unwrap()).await;
    let addr = broker.nats_ws_addr().expect("nats-ws listener");
    let mut ws = open(addr, "/", &[]).await.expect("upgrade");
    let info = String::from_utf8(next_data(&mut ws).await.to_vec()).unwrap();
    assert!(info.starts_with("INFO {"), "{info}");
    // CONNECT and SUB in one message, the PUB split across two.
    ws.send(Message::text(
        "CONNECT {\"verbose\":false}\r\nSUB ws.> 1\r\n",
    ))
    .await
    .unwrap();
    ws.send(Message::text("PUB ws.a 5\r\nhel")).await.unwrap();
    ws.send(Message::text("lo\r\nPING\r\n")).await.unwrap();
    let mut got = String::new();
    while !got.contains("PONG\r\n") {
        got.push_str(std::str::from_utf8(&next_data(&mut ws).await).unwrap());
    }
    assert_eq!(got, "MSG ws.a 1 5\r\nhello\r\nPONG\r\n");
    // And from a plain TCP client.
    let nats = async_nats::connect(broker.nats_addr().unwrap().to_string())
        .await
        .unwrap();
    nats.publish("ws.b", "from tcp".into()).await.unwrap();
    nats.flush().await.unwrap();
    let msg = String::from_utf8(read_bytes(&mut ws, 24).await).unwrap();
    assert_eq!(msg, "MSG ws.b 1 8\r\nfrom tcp\r\n");
    broker.shutdown().await;
}

#[tokio::test]
async fn rumqttc_over_websocket_exchanges_messages_with_a_tcp_client() {
    let broker = start(|_| {}).await;
    let ws = broker.mqtt_ws_addr().expect("mqtt-ws listener");
    let tcp = broker.mqtt_addr().expect("mqtt listener");
    let mut o = rumqttc::MqttOptions::new("rumqttc-ws", format!("ws://{ws}/mqtt"), ws.port());
    o.set_transport(rumqttc::Transport::Ws);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    client
        .subscribe("ws/in", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Some(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) =
            next_event(&mut events).await
        {
            break;
        }
    }
    let (mut tcp_client, _) = common::v4(
        tcp,
        |o| {
            o.set_max_packet_size(1 << 20, 1 << 20);
        },
        "rumqttc-tcp",
    )
    .await;
    tcp_client
        .subscribe("ws/out", rumqttc::QoS::AtLeastOnce)
        .await;
    let big = vec![7u8; 200_000];
    tcp_client
        .client
        .publish("ws/in", rumqttc::QoS::AtLeastOnce, false, big.clone())
        .await
        .unwrap();
    let got = loop {
        if let Some(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) =
            next_event(&mut events).await
        {
            break p;
        }
    };
    assert_eq!(got.topic, "ws/in");
    assert_eq!(
        got.payload.len(),
        big.len(),
        "a message larger than a WebSocket frame"
    );
    client
        .publish("ws/out", rumqttc::QoS::AtLeastOnce, false, "from ws")
        .await
        .unwrap();
    let back = tcp_client.publish().await;
    assert_eq!(&back.payload[..], b"from ws");
    broker.shutdown().await;
}

async fn next_event(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<rumqttc::Event>,
) -> Option<rumqttc::Event> {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
}
