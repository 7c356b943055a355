//! NATS with async-nats: 1 -> N fan-out, queue group, request/reply.

use std::net::SocketAddr;

use async_nats::{Client, ConnectOptions, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::timeout;

use crate::brokers::{Target, TlsClient};
use crate::procstat::Meter;
use crate::stats::{payload, round_trips, run_id, Pacer, Receivers, Tasks};
use crate::{Outcome, Params, Res, SETUP};

pub async fn connect(
    addr: SocketAddr,
    tls: Option<&TlsClient>,
    login: Option<&(String, String)>,
) -> Res<Client> {
    // Messages a slow subscriber may hold in the client before it drops them.
    let mut options = ConnectOptions::new().subscription_capacity(1 << 20);
    if let Some((user, password)) = login {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(tls) = tls {
        options = options
            .add_root_certificates(tls.ca_file.clone())
            .require_tls(true);
    }
    let c = timeout(SETUP, options.connect(format!("nats://{addr}")))
        .await
        .map_err(|_| format!("NATS connect to {addr} timed out"))??;
    Ok(c)
}

/// 1 publisher -> `p.subs` subscribers, or a queue group of `p.subs` members.
pub async fn pubsub(p: &Params, t: &Target, meter: &mut Meter, queue: bool) -> Res<Outcome> {
    let id = run_id();
    let subject = Subject::from(format!("load.{id}"));
    let rx = Receivers::new(p.subs);
    let mut clients = Vec::new();
    let mut tasks = Tasks::default();
    for rec in &rx.list {
        let c = connect(t.addr, t.tls.as_ref(), t.login.as_ref()).await?;
        let mut sub = if queue {
            c.queue_subscribe(subject.clone(), "load".into()).await?
        } else {
            c.subscribe(subject.clone()).await?
        };
        c.flush().await?;
        let rec = rec.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                rec.record(&m.payload);
            }
        }));
        clients.push(c);
    }
    let pc = connect(t.addr, t.tls.as_ref(), t.login.as_ref()).await?;

    meter.start();
    let mut pacer = Pacer::new(p);
    let publishing = async {
        while let Some(seq) = pacer.next().await {
            pc.publish(subject.clone(), Bytes::from(payload(seq, p.size)))
                .await?;
        }
        pc.flush().await?;
        Res::Ok(())
    };
    let published = timeout(p.publish_cap(), publishing).await;
    let sent = pacer.sent;
    let expected = if queue { sent } else { sent * p.subs as u64 };
    rx.drain(expected, p.drain, p.drain_cap()).await;
    meter.stop();

    let mut out = Outcome::from_receivers(sent, expected, &rx);
    out.note_publisher(published);
    drop(tasks);
    drop(clients);
    Ok(out)
}

/// Request/reply round trips, one at a time, through a responder on its own connection.
pub async fn reqrep(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let id = run_id();
    let subject = Subject::from(format!("load.{id}.rpc"));
    let responder = connect(t.addr, t.tls.as_ref(), t.login.as_ref()).await?;
    let mut sub = responder.subscribe(subject.clone()).await?;
    responder.flush().await?;
    let r = responder.clone();
    let mut task = Tasks::default();
    task.push(tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                if r.publish(reply, m.payload).await.is_err() {
                    return;
                }
            }
        }
    }));
    let requester = connect(t.addr, t.tls.as_ref(), t.login.as_ref()).await?;
    // The first request sets up the requester's reply subscription.
    timeout(
        SETUP,
        requester.request(subject.clone(), Bytes::from(payload(0, p.size))),
    )
    .await
    .map_err(|_| "first request timed out")??;

    let out = round_trips(p, meter, async |body: &[u8]| {
        let reply = requester.request(subject.clone(), Bytes::copy_from_slice(body));
        Res::Ok(reply.await?.payload)
    })
    .await;
    drop(task);
    Ok(out)
}
