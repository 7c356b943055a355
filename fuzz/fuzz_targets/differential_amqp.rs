//! Differential fuzzing of the AMQP 0-9-1 frame decoder against amq-protocol's
//! (lapin's codec): whatever frame ours accepts, amq-protocol must parse from the same
//! bytes to the equivalent value (for every method its model has a mapping for here).
//! The differences that are intended (RabbitMQ's behaviour over amq-protocol's) are
//! listed in codecs/tests/amqp_differential.rs; the conversion papers over them.
#![no_main]

use amq_protocol::frame::parse_frame;
use bytes::BytesMut;
use dwbroker_codecs::amqp::{AmqpCodec, Frame};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

#[path = "../../codecs/tests/support/amq.rs"]
mod convert;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let Ok(Some(frame)) = AmqpCodec::new(0).decode(&mut buf) else {
        return;
    };
    let bytes = &data[..data.len() - buf.len()];
    // Intended: a content header of a class other than basic decodes (the front refuses
    // it against the method it follows, 505); amq-protocol's parser refuses it.
    if matches!(&frame, Frame::Header { header, .. } if header.class_id != 60) {
        return;
    }
    let Some(expected) = convert::amq_frame(&frame) else {
        return;
    };
    match parse_frame(bytes) {
        Ok((rest, theirs)) => {
            assert!(
                rest.is_empty(),
                "amq-protocol left {} bytes of {bytes:02x?}",
                rest.len()
            );
            // Compared as text, so that a NaN float equals itself.
            assert_eq!(
                format!("{theirs:?}"),
                format!("{expected:?}"),
                "amq-protocol reads {bytes:02x?} differently"
            );
        }
        Err(e) => panic!("amq-protocol refuses {bytes:02x?} which we accept as {frame:?}: {e:?}"),
    }
});
