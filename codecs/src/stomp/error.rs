//! Decode errors. Every one is fatal for the connection: the front answers with an
//! ERROR frame whose `message` header is [`StompError::summary`] and whose body is the
//! error's text, then closes (spec, "ERROR").

/// Why bytes from the peer could not be decoded into a [`Frame`](super::Frame).
///
/// Partial input is never an error: the decoder returns `Ok(None)` until a whole frame
/// arrived.
#[derive(Debug, thiserror::Error)]
pub enum StompError {
    /// The command line is not a STOMP command.
    #[error("Could not interpret command \"{0}\"")]
    UnknownCommand(String),
    /// The frame's structure is wrong (a header line without `:`, a header that is not
    /// UTF-8, no NUL after a `content-length` body).
    #[error("{0}")]
    Malformed(&'static str),
    /// An escape sequence the frame's version does not define (a fatal error, spec
    /// "Value Encoding").
    #[error("undefined escape sequence {0} in a header")]
    BadEscape(String),
    /// A command or header line longer than the limit.
    #[error("a header line is longer than {max} bytes")]
    HeaderLineTooLong {
        /// The limit.
        max: usize,
    },
    /// More headers than the limit.
    #[error("a frame has more than {max} headers")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// A body larger than the limit: refused when `content-length` announces it, or when
    /// that many bytes arrived without the terminating NUL. A `content-length` over the
    /// limit is reported at the end of the headers (so that the frame's receipt is known),
    /// before any of the body is buffered.
    #[error("a body of {size} bytes exceeds the maximum message size of {max} bytes")]
    BodyTooLarge {
        /// The announced size, or the bytes received so far.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A `content-length` header that is not a decimal number of octets.
    #[error("invalid content-length '{0}'")]
    BadContentLength(String),
    /// A body on a frame other than SEND, MESSAGE or ERROR.
    #[error("{0} frames cannot have a body")]
    UnexpectedBody(&'static str),
    /// An I/O error from the transport (tokio-util's `Decoder` requires this conversion).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl StompError {
    /// A short text for the ERROR frame's `message` header.
    pub fn summary(&self) -> &'static str {
        match self {
            StompError::UnknownCommand(_) => "Bad command",
            StompError::BadEscape(_) => "Invalid header escape",
            StompError::HeaderLineTooLong { .. }
            | StompError::TooManyHeaders { .. }
            | StompError::BodyTooLarge { .. } => "Frame too large",
            StompError::Malformed(_)
            | StompError::BadContentLength(_)
            | StompError::UnexpectedBody(_)
            | StompError::Io(_) => "Malformed frame",
        }
    }
}
