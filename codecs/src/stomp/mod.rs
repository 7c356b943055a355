//! STOMP 1.0, 1.1 and 1.2 wire codec (the STOMP 1.2 specification; 1.0 and 1.1 differ only
//! in header escaping and end-of-line rules here).
//!
//! [`StompCodec`] decodes a client's byte stream into [`Received`] items (frames and the
//! heart-beat end-of-lines between them); [`FrameWriter`] and [`Frame::encode`] write
//! frames. The codec owns framing, escaping per [`Version`] and the frame limits
//! ([`StompLimits`]); it does not negotiate versions, check required headers or decide
//! what to answer: every [`StompError`] is fatal and the front answers it with an ERROR
//! frame.

mod command;
mod error;
mod frame;
mod header;

pub use command::Command;
pub use error::StompError;
pub use frame::{encode_heartbeat, Frame, FrameWriter, Headers, Received, StompCodec, StompLimits};
pub use header::Version;
