//! A multi-frame AMQP stream decoded whole, split in two at every offset, and fed one byte at a
//! time: all must yield the same frames, and a call that returns `Ok(None)` must leave the
//! buffer exactly as it was.

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::amqp::*;
use tokio_util::codec::Decoder;

fn feed(bytes: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut codec = AmqpCodec::new(FRAME_MIN_SIZE);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for end in cuts.iter().copied().chain(std::iter::once(bytes.len())) {
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        loop {
            let before = buf.clone();
            match codec.decode(&mut buf).expect("valid stream") {
                Some(f) => frames.push(f),
                None => {
                    assert_eq!(buf, before, "an incomplete buffer was advanced");
                    break;
                }
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    frames
}

fn stream() -> (Vec<u8>, usize) {
    let mut out = BytesMut::new();
    let mut args = FieldTable::default();
    args.insert("x-max-length", FieldValue::I64(10));
    let mut nested = FieldTable::default();
    nested.insert("count", FieldValue::I64(1));
    args.insert(
        "x-death",
        FieldValue::Array(vec![FieldValue::Table(nested)]),
    );
    encode_method(
        0,
        &Method::ConnectionTune(ConnectionTune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        }),
        &mut out,
    );
    encode_method(
        1,
        &Method::QueueDeclare(QueueDeclare {
            queue: "tasks".into(),
            durable: true,
            arguments: args.clone(),
            ..Default::default()
        }),
        &mut out,
    );
    encode_heartbeat(&mut out);
    encode_method(
        1,
        &Method::BasicPublish(BasicPublish {
            exchange: "".into(),
            routing_key: "tasks".into(),
            mandatory: true,
            ..Default::default()
        }),
        &mut out,
    );
    let body = vec![0x5A; 300];
    let props = BasicProperties {
        content_type: Some("text/plain".into()),
        headers: Some(args),
        delivery_mode: Some(2),
        ..Default::default()
    };
    encode_content_header(1, 60, body.len() as u64, &props, &mut out);
    encode_body(1, &body, 128, &mut out);
    encode_method(
        1,
        &Method::BasicAck(BasicAck {
            delivery_tag: 1,
            multiple: false,
        }),
        &mut out,
    );
    (out.to_vec(), 9)
}

#[test]
fn every_split_yields_the_same_frames() {
    let (bytes, count) = stream();
    let whole = feed(&bytes, &[]);
    assert_eq!(whole.len(), count);
    assert!(matches!(&whole[4], Frame::Header { header, .. } if header.body_size == 300));
    let body: Vec<u8> = whole
        .iter()
        .filter_map(|f| match f {
            Frame::Body { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect::<Vec<Bytes>>()
        .concat();
    assert_eq!(body, vec![0x5A; 300]);
    for cut in 0..=bytes.len() {
        assert_eq!(feed(&bytes, &[cut]), whole, "split at {cut}");
    }
    let every: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(feed(&bytes, &every), whole, "byte at a time");
}
