//! STOMP codec throughput: decoding a SEND (destination, content-type, content-length, receipt
//! and two custom headers) and encoding a MESSAGE (destination, message-id, subscription, ack,
//! redelivered, content-type, content-length and two custom headers) with `FrameWriter`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dwbroker_codecs::stomp::{Command, FrameWriter, Received, StompCodec, StompLimits, Version};
use tokio_util::codec::Decoder;

const LIMITS: StompLimits = StompLimits {
    max_header_line: 8192,
    max_headers: 64,
    max_body: 1 << 20,
};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stomp");
    for size in [64usize, 1024] {
        let body = vec![0xA5; size];
        let length = size.to_string();

        let mut bytes = BytesMut::new();
        let mut w = FrameWriter::start(&mut bytes, Command::Send, Version::V1_2);
        w.header("destination", "/topic/sensors.building7.floor3.temperature")
            .header("content-type", "application/json")
            .header("content-length", &length)
            .header("receipt", "receipt-1000001")
            .header("x-trace-id", "4bf92f3577b34da6")
            .header("x-tenant", "acme:eu-west");
        w.finish(&body);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("decode_send_{size}B"), |b| {
            let mut codec = StompCodec::new(LIMITS);
            codec.set_version(Version::V1_2);
            b.iter_batched_ref(
                || bytes.clone(),
                |buf| match codec.decode(buf).expect("decodes") {
                    Some(Received::Frame(frame)) => frame,
                    other => panic!("expected a frame, got {other:?}"),
                },
                BatchSize::SmallInput,
            )
        });

        group.bench_function(format!("encode_message_{size}B"), |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                out.clear();
                let mut w = FrameWriter::start(&mut out, Command::Message, Version::V1_2);
                w.header("destination", "/topic/sensors.building7.floor3.temperature")
                    .header("message-id", "T_sub-0@@session-Xa8_2b1@@1000001")
                    .header("subscription", "sub-0")
                    .header("ack", "T_sub-0@@session-Xa8_2b1@@1000001")
                    .header("redelivered", "false")
                    .header("content-type", "application/json")
                    .header("content-length", &length)
                    .header("x-trace-id", "4bf92f3577b34da6")
                    .header("x-tenant", "acme:eu-west");
                w.finish(&body);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
