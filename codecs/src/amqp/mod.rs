//! AMQP 0-9-1 wire codec, RabbitMQ dialect (spec 0-9-1 plus RabbitMQ's errata and extensions,
//! `amqp-rabbitmq-0.9.1.json`).
//!
//! [`AmqpCodec`] frames bytes into [`Frame`]s and back; [`Method`] is one generated table of
//! every method; [`BasicProperties`] and [`FieldTable`] are the content properties and field
//! tables with RabbitMQ's type tags. The codec owns only framing and the negotiated frame size
//! limit. It does not read the protocol header from the stream (the front checks it with
//! [`check_protocol_header`] before installing the codec), track channels, enforce frame order
//! (method → header → body), assemble content, or decide what to answer: every [`AmqpError`]
//! is fatal and carries its reply code ([`AmqpError::reply_code`]).

mod content;
mod error;
mod field_table;
mod frame;
mod method;
mod reply_code;
mod wire;

pub use content::{BasicProperties, ContentHeader};
pub use error::AmqpError;
pub use field_table::{FieldTable, FieldValue, MAX_DEPTH};
pub use frame::{
    encode_body, encode_content_header, encode_content_header_raw, encode_heartbeat, encode_method,
    AmqpCodec, Frame,
};
pub use method::*;
pub use reply_code::ReplyCode;

/// What a 0-9-1 client sends first (§4.2.2); also what the server answers to a wrong header.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// The smallest frame_max a peer may ask for, and the largest frame it must accept
/// before tune: the spec's frame-min-size (RabbitMQ accepts a tune-ok of 4096).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// Whether the first eight bytes are the 0-9-1 protocol header. Anything else (other AMQP
/// versions, HTTP, TLS) is refused: the server then writes [`PROTOCOL_HEADER`] and closes.
pub fn check_protocol_header(first8: &[u8; 8]) -> bool {
    *first8 == PROTOCOL_HEADER
}
