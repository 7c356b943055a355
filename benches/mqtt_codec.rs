//! MQTT codec throughput: PUBLISH 64 B and 1 KiB decode/encode, SUBSCRIBE decode.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dwbroker_codecs::mqtt::{
    Codec, Packet, Properties, ProtocolVersion, Publish, QoS, RetainHandling, Subscribe,
    SubscriptionOptions,
};
use tokio_util::codec::Decoder;

fn publish(size: usize) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/building-7/floor-3/temperature".into(),
        packet_id: 42,
        properties: Properties::default(),
        payload: Bytes::from(vec![0xA5; size]),
    })
}

fn subscribe() -> Packet {
    let opts = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: false,
        retain_as_published: false,
        retain_handling: RetainHandling::SendAtSubscribe,
    };
    Packet::Subscribe(Subscribe {
        packet_id: 7,
        properties: Properties::default(),
        filters: vec![
            ("sensors/+/floor-3/#".into(), opts),
            ("alarms/#".into(), opts),
            ("$SYS/broker/load".into(), opts),
        ],
    })
}

fn encoded(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).expect("encodes");
    buf
}

fn bench(c: &mut Criterion) {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut group = c.benchmark_group(format!("mqtt_{version:?}"));
        for size in [64usize, 1024] {
            let packet = publish(size);
            let bytes = encoded(&packet, version);
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_function(format!("decode_publish_{size}B"), |b| {
                let mut codec = Codec::server(1 << 24);
                codec.set_version(version);
                b.iter_batched_ref(
                    || bytes.clone(),
                    |buf| codec.decode(buf).expect("decodes").expect("whole packet"),
                    BatchSize::SmallInput,
                )
            });
            group.bench_function(format!("encode_publish_{size}B"), |b| {
                let mut out = BytesMut::with_capacity(2048);
                b.iter(|| {
                    out.clear();
                    packet.encode(version, &mut out).expect("encodes");
                })
            });
        }
        let bytes = encoded(&subscribe(), version);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("decode_subscribe", |b| {
            let mut codec = Codec::server(1 << 24);
            codec.set_version(version);
            b.iter_batched_ref(
                || bytes.clone(),
                |buf| codec.decode(buf).expect("decodes").expect("whole packet"),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
