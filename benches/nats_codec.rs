//! NATS codec throughput: PUB and HPUB parsing, MSG encoding.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dwbroker_codecs::nats::{ClientOp, Headers, Limits, ServerCodec, ServerOp};
use tokio_util::codec::Decoder;

fn encoded(op: &ClientOp) -> BytesMut {
    let mut buf = BytesMut::new();
    op.encode(&mut buf);
    buf
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("nats");
    for size in [64usize, 1024] {
        let publish = ClientOp::Pub {
            subject: "sensors.building7.floor3.temperature".into(),
            reply_to: None,
            payload: Bytes::from(vec![0xA5; size]),
        };
        let bytes = encoded(&publish);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("decode_pub_{size}B"), |b| {
            let mut codec = ServerCodec::new(Limits::default());
            b.iter_batched_ref(
                || bytes.clone(),
                |buf| codec.decode(buf).expect("decodes").expect("whole op"),
                BatchSize::SmallInput,
            )
        });
        let msg = ServerOp::Msg {
            subject: "sensors.building7.floor3.temperature".into(),
            sid: "17".into(),
            reply_to: None,
            payload: Bytes::from(vec![0xA5; size]),
        };
        group.bench_function(format!("encode_msg_{size}B"), |b| {
            let mut out = BytesMut::with_capacity(2048);
            b.iter(|| {
                out.clear();
                msg.encode(&mut out);
            })
        });
    }
    let hpub = ClientOp::HPub {
        subject: "orders.eu.created".into(),
        reply_to: Some("_INBOX.abc.1".into()),
        headers: Headers {
            status: None,
            description: None,
            entries: vec![
                ("Nats-Msg-Id".into(), "order-42".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
        },
        payload: Bytes::from(vec![b'{'; 64]),
    };
    let bytes = encoded(&hpub);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode_hpub_64B", |b| {
        let mut codec = ServerCodec::new(Limits::default());
        b.iter_batched_ref(
            || bytes.clone(),
            |buf| codec.decode(buf).expect("decodes").expect("whole op"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
