//! Decode errors. Each one maps to the reply code the front puts in `connection.close`
//! ([`AmqpError::reply_code`]); every decode error is a hard (connection-level) error.

use super::reply_code::ReplyCode;

/// Why bytes from the peer could not be decoded into a [`Frame`](super::Frame).
///
/// Partial input is never an error: the decoder returns `Ok(None)` until a whole frame arrived.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The frame type octet is not method (1), header (2), body (3) or heartbeat (8).
    #[error("frame type {0} is not 1, 2, 3 or 8")]
    UnknownFrameType(u8),
    /// The octet after the payload is not `0xCE`: the size was wrong or the stream is garbage.
    #[error("frame end byte {0:#04x} is not 0xCE")]
    BadFrameEnd(u8),
    /// A heartbeat frame with a payload (spec 4.2.7: heartbeat frames are empty).
    #[error("a heartbeat frame carries {0} bytes")]
    HeartbeatPayload(u32),
    /// The announced payload size is over the codec's maximum; detected on the 7-byte frame
    /// header, before the payload is buffered.
    #[error("frame of {size} bytes exceeds frame_max {max}")]
    FrameTooLarge {
        /// The announced payload size.
        size: u32,
        /// The codec's maximum.
        max: u32,
    },
    /// Undecodable method arguments or content header: truncated fields, a length beyond the
    /// frame, invalid UTF-8 in a short string, an unknown field-value tag, nesting too deep.
    #[error("malformed {context}: {reason}")]
    Syntax {
        /// The method's class id (0 when not inside a method, e.g. a content header).
        class_id: u16,
        /// The method's id (0 when not inside a method).
        method_id: u16,
        /// What was being decoded, e.g. `"basic.publish"` or `"content header"`.
        context: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A class/method pair this codec does not know.
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod {
        /// The class id read from the frame.
        class_id: u16,
        /// The method id read from the frame.
        method_id: u16,
    },
    /// An I/O error from the transport (tokio-util's `Decoder` requires this conversion).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl AmqpError {
    /// The reply code to close the connection with (spec constants; reference §2.2).
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::UnknownFrameType(_)
            | Self::BadFrameEnd(_)
            | Self::HeartbeatPayload(_)
            | Self::FrameTooLarge { .. } => ReplyCode::FrameError,
            Self::Syntax { .. } => ReplyCode::SyntaxError,
            Self::UnknownMethod { .. } => ReplyCode::NotImplemented,
            Self::Io(_) => ReplyCode::InternalError,
        }
    }

    /// The class and method ids to put in `connection.close` (0, 0 when not in a method).
    pub fn class_method(&self) -> (u16, u16) {
        match self {
            Self::Syntax {
                class_id,
                method_id,
                ..
            }
            | Self::UnknownMethod {
                class_id,
                method_id,
            } => (*class_id, *method_id),
            _ => (0, 0),
        }
    }
}
