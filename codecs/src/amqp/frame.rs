//! Frames (§4.2.3): `type(1) channel(2) size(4) payload(size) 0xCE`.
//!
//! [`AmqpCodec`] owns only the negotiated maximum frame size. The size check counts the
//! payload only (`size > max` is refused), so a peer may send `max + 8` bytes in all: that is
//! RabbitMQ's `FRAME_SIZE_FUDGE`, which tolerates clients that forget the 8 framing bytes. It is
//! applied to every frame type; the front chooses the value (at least [`FRAME_MIN_SIZE`] before
//! tune). It does not check which channel a frame may use, frame order (method, header, body),
//! or content classes: that is the front's state machine.
//!
//! [`FRAME_MIN_SIZE`]: super::FRAME_MIN_SIZE

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::content::{BasicProperties, ContentHeader};
use super::error::AmqpError;
use super::method::Method;
use super::wire::{len_since, patch_u32};
use super::FRAME_END;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
/// type, channel, size.
const HEADER_LEN: usize = 7;
/// The most a partial frame makes the decoder reserve ahead of the bytes arriving.
const MAX_RESERVE: usize = 1 << 20;

/// One decoded frame.
///
/// `Header` is much larger than the other variants (14 optional properties); it is not boxed
/// because frames are moved once, from the decoder to the front, and a box per header would cost
/// an allocation on the publish path.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Frame {
    /// A method frame (type 1).
    Method {
        /// The channel (0 = the connection).
        channel: u16,
        /// The method and its arguments.
        method: Method,
    },
    /// A content header frame (type 2).
    Header {
        /// The channel.
        channel: u16,
        /// Class, body size and properties.
        header: ContentHeader,
    },
    /// A content body frame (type 3): a zero-copy slice of the received bytes.
    Body {
        /// The channel.
        channel: u16,
        /// This frame's share of the body.
        payload: bytes::Bytes,
    },
    /// A heartbeat frame (type 8). Decoded whatever its channel and payload; the spec wants
    /// channel 0 and no payload, and the front decides what to do otherwise.
    Heartbeat {
        /// The channel it arrived on (0 when well-formed).
        channel: u16,
    },
}

impl Frame {
    /// The frame's channel.
    pub fn channel(&self) -> u16 {
        match *self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => channel,
        }
    }

    /// Writes the frame. A header frame is encoded from `properties`, not `raw_properties`;
    /// a body frame is written as one frame whatever its size (use [`encode_body`] to split).
    /// A heartbeat keeps its channel.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Frame::Method { channel, method } => encode_method(*channel, method, dst),
            Frame::Header { channel, header } => encode_content_header(
                *channel,
                header.class_id,
                header.body_size,
                &header.properties,
                dst,
            ),
            Frame::Body { channel, payload } => {
                let at = begin(FRAME_BODY, *channel, dst);
                dst.put_slice(payload);
                finish(at, dst);
            }
            Frame::Heartbeat { channel } => {
                let at = begin(FRAME_HEARTBEAT, *channel, dst);
                finish(at, dst);
            }
        }
    }
}

/// Writes the frame header with a placeholder size; returns where the size sits.
fn begin(kind: u8, channel: u16, dst: &mut BytesMut) -> usize {
    dst.put_u8(kind);
    dst.put_u16(channel);
    let at = dst.len();
    dst.put_u32(0);
    at
}

/// Patches the size in and writes the frame end.
fn finish(size_at: usize, dst: &mut BytesMut) {
    let size = len_since(dst, size_at + 4);
    patch_u32(dst, size_at, size);
    dst.put_u8(FRAME_END);
}

/// Writes a method frame.
pub fn encode_method(channel: u16, method: &Method, dst: &mut BytesMut) {
    let at = begin(FRAME_METHOD, channel, dst);
    dst.put_u16(method.class_id());
    dst.put_u16(method.method_id());
    method.encode_args(dst);
    finish(at, dst);
}

/// Writes a content header frame from decoded properties (weight 0).
pub fn encode_content_header(
    channel: u16,
    class_id: u16,
    body_size: u64,
    properties: &BasicProperties,
    dst: &mut BytesMut,
) {
    let at = begin(FRAME_HEADER, channel, dst);
    dst.put_u16(class_id);
    dst.put_u16(0);
    dst.put_u64(body_size);
    properties.encode(dst);
    finish(at, dst);
}

/// Writes a content header frame whose flags and property list are `raw_properties` verbatim
/// (as received in [`ContentHeader::raw_properties`]), so forwarding never re-encodes them.
pub fn encode_content_header_raw(
    channel: u16,
    class_id: u16,
    body_size: u64,
    raw_properties: &[u8],
    dst: &mut BytesMut,
) {
    let at = begin(FRAME_HEADER, channel, dst);
    dst.put_u16(class_id);
    dst.put_u16(0);
    dst.put_u64(body_size);
    dst.put_slice(raw_properties);
    finish(at, dst);
}

/// Writes `payload` as body frames of at most `max_frame_size - 8` payload bytes each (the
/// negotiated frame_max counts the 8 framing bytes); nothing for an empty payload. A
/// `max_frame_size` of 0 means no limit (as in `connection.tune`); values of 8 or less still
/// make progress with one byte per frame.
pub fn encode_body(channel: u16, payload: &[u8], max_frame_size: u32, dst: &mut BytesMut) {
    let chunk = if max_frame_size == 0 {
        u32::MAX as usize
    } else {
        (max_frame_size.saturating_sub(8) as usize).max(1)
    };
    dst.reserve(payload.len() + payload.len().div_ceil(chunk) * 8);
    for piece in payload.chunks(chunk) {
        let at = begin(FRAME_BODY, channel, dst);
        dst.put_slice(piece);
        finish(at, dst);
    }
}

/// Writes a heartbeat frame: `08 0000 00000000 CE`.
pub fn encode_heartbeat(dst: &mut BytesMut) {
    dst.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Frames bytes into [`Frame`]s (decode) and back (encode). Symmetric: the same codec serves
/// the server and, in tests and benches, the client side.
#[derive(Debug, Clone)]
pub struct AmqpCodec {
    max_frame_size: u32,
}

impl AmqpCodec {
    /// A codec refusing frames whose payload exceeds `max_frame_size` bytes (0 = no limit,
    /// as in `connection.tune`).
    pub fn new(max_frame_size: u32) -> Self {
        Self { max_frame_size }
    }

    /// Changes the limit, e.g. after `connection.tune-ok`.
    pub fn set_max_frame_size(&mut self, n: u32) {
        self.max_frame_size = n;
    }

    /// The current limit (0 = no limit).
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }
}

impl Decoder for AmqpCodec {
    type Item = Frame;
    type Error = AmqpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, AmqpError> {
        let Some(&[kind, c0, c1, s0, s1, s2, s3]) = src.get(..HEADER_LEN) else {
            // A wrong type octet is fatal however little of the frame arrived.
            if let Some(&kind) = src.first() {
                check_kind(kind)?;
            }
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        };
        check_kind(kind)?;
        let channel = u16::from_be_bytes([c0, c1]);
        let size = u32::from_be_bytes([s0, s1, s2, s3]);
        if self.max_frame_size != 0 && size > self.max_frame_size {
            return Err(AmqpError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        let total = HEADER_LEN + size as usize + 1;
        if src.len() < total {
            // The reservation is a hint: capped so that an announced size alone (with no
            // limit configured, or a large one) never makes us allocate; the buffer still grows
            // as the bytes actually arrive.
            src.reserve((total - src.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        let end = src.get(total - 1).copied().unwrap_or(0);
        if end != FRAME_END {
            return Err(AmqpError::BadFrameEnd(end));
        }
        src.advance(HEADER_LEN);
        let mut payload = src.split_to(size as usize).freeze();
        src.advance(1);
        let frame = match kind {
            FRAME_METHOD => {
                if payload.len() < 4 {
                    return Err(AmqpError::Syntax {
                        class_id: 0,
                        method_id: 0,
                        context: "method frame",
                        reason: "shorter than class id and method id",
                    });
                }
                let class_id = payload.get_u16();
                let method_id = payload.get_u16();
                Frame::Method {
                    channel,
                    method: Method::decode_bytes(class_id, method_id, payload)?,
                }
            }
            FRAME_HEADER => Frame::Header {
                channel,
                header: ContentHeader::decode_bytes(payload)?,
            },
            FRAME_BODY => Frame::Body { channel, payload },
            _ if !payload.is_empty() => return Err(AmqpError::HeartbeatPayload(size)),
            _ => Frame::Heartbeat { channel },
        };
        Ok(Some(frame))
    }
}

fn check_kind(kind: u8) -> Result<(), AmqpError> {
    match kind {
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT => Ok(()),
        other => Err(AmqpError::UnknownFrameType(other)),
    }
}

impl Encoder<Frame> for AmqpCodec {
    type Error = AmqpError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), AmqpError> {
        frame.encode(dst);
        Ok(())
    }
}

impl Encoder<&Frame> for AmqpCodec {
    type Error = AmqpError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), AmqpError> {
        frame.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::ReplyCode;

    #[test]
    fn heartbeat_vector() {
        let mut out = BytesMut::new();
        encode_heartbeat(&mut out);
        assert_eq!(&out[..], b"\x08\x00\x00\x00\x00\x00\x00\xCE");
        let f = AmqpCodec::new(8192).decode(&mut out).unwrap();
        assert_eq!(f, Some(Frame::Heartbeat { channel: 0 }));
        assert!(out.is_empty());
    }

    #[test]
    fn a_heartbeat_with_a_payload_is_a_frame_error() {
        let mut buf = BytesMut::from(&b"\x08\x00\x00\x00\x00\x00\x01\x07\xCE"[..]);
        let e = AmqpCodec::new(8192).decode(&mut buf).unwrap_err();
        assert!(matches!(e, AmqpError::HeartbeatPayload(1)), "{e}");
        assert_eq!(e.reply_code(), ReplyCode::FrameError);
    }

    #[test]
    fn body_splitting() {
        let mut out = BytesMut::new();
        encode_body(3, &[7u8; 25], 18, &mut out);
        let mut codec = AmqpCodec::new(10);
        let mut sizes = Vec::new();
        while let Some(Frame::Body { channel, payload }) = codec.decode(&mut out).unwrap() {
            assert_eq!(channel, 3);
            sizes.push(payload.len());
        }
        assert_eq!(sizes, [10, 10, 5]);
        let mut out = BytesMut::new();
        encode_body(3, &[], 18, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn oversize_is_refused_on_the_header() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x20, 0x01][..]);
        let err = AmqpCodec::new(8192).decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            AmqpError::FrameTooLarge {
                size: 8193,
                max: 8192
            }
        ));
    }
}
