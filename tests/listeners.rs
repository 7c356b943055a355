//! Starting the listeners: all of them or none.

mod common;

use std::net::TcpListener;

use dwbroker::config::Listen;

/// When one listener cannot bind, the ones bound before it are released, not left
/// running and holding their ports.
#[tokio::test]
async fn a_listener_that_cannot_bind_releases_the_others() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let mqtt_port = free.local_addr().unwrap();
    drop(free);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();

    let mut c = common::config();
    // MQTT binds first (listener order), then STOMP fails on the taken port.
    c.listeners.mqtt = Listen::parse(&mqtt_port.to_string()).unwrap();
    c.listeners.stomp = Listen::parse(&taken_addr.to_string()).unwrap();
    let err = dwbroker::Broker::start(c).await.unwrap_err();
    assert!(
        matches!(
            err,
            dwbroker::Error::Bind {
                protocol: "stomp",
                ..
            }
        ),
        "{err}"
    );
    TcpListener::bind(mqtt_port).expect("the MQTT port is free again");
    assert!(
        std::net::TcpStream::connect(mqtt_port).is_err(),
        "nothing serves MQTT"
    );
}
