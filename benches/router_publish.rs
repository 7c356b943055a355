//! Router fan-out: one publish matched against a subscribed filter and queued for
//! one session (the path every protocol front's publish takes).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use dwbroker::router::{
    Delivery, Filter, Message, Now, OutboxLimits, RetainedLimits, Router, SubOptions, Subject,
    DEFAULT_VHOST_LIMITS,
};

fn bench(c: &mut Criterion) {
    let router = Router::new(
        OutboxLimits {
            max_messages: 1_000_000,
            max_bytes: usize::MAX,
        },
        RetainedLimits {
            max_messages: 16,
            max_bytes: 1 << 20,
        },
        DEFAULT_VHOST_LIMITS,
    );
    let session = router.open_session();
    let opts = SubOptions {
        qos: Delivery::AtMostOnce,
        no_local: false,
        retain_as_published: false,
        subscription_id: None,
        share_group: None,
        withheld: None,
    };
    router.subscribe(
        session.id(),
        Filter::mqtt("site/+/temp").expect("valid"),
        opts,
    );
    let subject = Subject::from_mqtt_topic("site/b1/temp").expect("valid");
    let payload = Bytes::from(vec![0u8; 64]);
    c.bench_function("router_publish_64b_1_subscriber", |b| {
        b.iter(|| {
            let msg = Message {
                subject: subject.clone(),
                payload: payload.clone(),
                ..Message::default()
            };
            let routed = router.publish(msg, Now::current());
            while session.pop().is_some() {}
            routed
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
