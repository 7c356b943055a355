//! AMQP 0-9-1 codec throughput: decoding a basic.publish (method + content header + body) and
//! encoding a basic.deliver with verbatim (raw) properties and a body.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dwbroker_codecs::amqp::{
    encode_body, encode_content_header, encode_content_header_raw, encode_method, AmqpCodec,
    BasicDeliver, BasicProperties, BasicPublish, FieldTable, FieldValue, Frame, Method,
    FRAME_MIN_SIZE,
};
use tokio_util::codec::Decoder;

const FRAME_MAX: u32 = 131_072;

fn properties() -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-trace-id",
        FieldValue::LongString(Bytes::from_static(b"4bf92f3577b34da6")),
    );
    BasicProperties {
        content_type: Some("application/json".into()),
        delivery_mode: Some(2),
        headers: Some(headers),
        message_id: Some("order-42".into()),
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("amqp");
    for size in [64usize, 1024] {
        let body = vec![0xA5; size];
        let mut bytes = BytesMut::new();
        let publish = Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: "amq.topic".into(),
            routing_key: "sensors.building7.floor3.temperature".into(),
            mandatory: false,
            immediate: false,
        });
        encode_method(1, &publish, &mut bytes);
        encode_content_header(1, 60, size as u64, &properties(), &mut bytes);
        encode_body(1, &body, FRAME_MAX, &mut bytes);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("decode_publish_{size}B"), |b| {
            let mut codec = AmqpCodec::new(FRAME_MAX.max(FRAME_MIN_SIZE));
            b.iter_batched_ref(
                || bytes.clone(),
                |buf| {
                    let mut frames: [Option<Frame>; 3] = [None, None, None];
                    for slot in &mut frames {
                        *slot = codec.decode(buf).expect("decodes");
                    }
                    frames
                },
                BatchSize::SmallInput,
            )
        });

        let mut raw = BytesMut::new();
        properties().encode(&mut raw);
        let raw = raw.freeze();
        let deliver = Method::BasicDeliver(BasicDeliver {
            consumer_tag: "amq.ctag-Xa8_2b1".into(),
            delivery_tag: 1_000_001,
            redelivered: false,
            exchange: "amq.topic".into(),
            routing_key: "sensors.building7.floor3.temperature".into(),
        });
        let payload = Bytes::from(body);
        group.bench_function(format!("encode_deliver_{size}B"), |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                out.clear();
                encode_method(1, &deliver, &mut out);
                encode_content_header_raw(1, 60, payload.len() as u64, &raw, &mut out);
                encode_body(1, &payload, FRAME_MAX, &mut out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
