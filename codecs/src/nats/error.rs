//! Decode errors. Each one knows the `-ERR` text nats-server sends before closing, so the front
//! answers exactly what clients already recognise (reference §1.5).

/// Why bytes from the peer could not be decoded into an operation.
///
/// Partial input is never an error: the decoder returns `Ok(None)` until a whole operation
/// (control line, and payload if any) arrived. Every variant is fatal to the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An unknown operation, a wrong argument count, a non-numeric, negative or overflowing
    /// size, non-UTF-8 fields, or an empty line (nats-server `parseErr` for all of these).
    #[error("unknown protocol operation")]
    UnknownOperation,
    /// No line terminator within the maximum control-line length; detected as soon as the buffer
    /// holds more than `max` bytes of one line, so a peer cannot make us buffer an endless line.
    #[error("control line exceeds {max} bytes")]
    ControlLineTooLong {
        /// The configured maximum.
        max: usize,
    },
    /// The announced payload size is over the limit; detected on the control line, before the
    /// payload is buffered.
    #[error("payload of {size} bytes exceeds the maximum payload of {max} bytes")]
    MaxPayloadExceeded {
        /// The announced size (`#bytes`, or `#total bytes` for HPUB/HMSG).
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The payload is not followed by exactly `\r\n`, i.e. the announced size was wrong.
    #[error("payload not followed by CRLF")]
    BadPayloadTerminator,
    /// An HPUB/HMSG header block is malformed (ADR-4), or `#hdr bytes` > `#total bytes`.
    #[error("invalid header block")]
    InvalidHeaders,
    /// An I/O error from the transport (tokio-util's `Decoder` requires this conversion).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// The text nats-server puts in `-ERR '<text>'` for this error before closing the
    /// connection (server/client.go, parser.go; reference §1.5).
    pub fn err_message(&self) -> &'static str {
        match self {
            Self::ControlLineTooLong { .. } => "maximum control line exceeded",
            Self::MaxPayloadExceeded { .. } => "Maximum Payload Violation",
            // nats-server answers every parse failure, header and terminator errors
            // included, with the generic parse error.
            Self::UnknownOperation
            | Self::BadPayloadTerminator
            | Self::InvalidHeaders
            | Self::Io(_) => "Unknown Protocol Operation",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_messages_are_the_servers_spelling() {
        assert_eq!(
            DecodeError::UnknownOperation.err_message(),
            "Unknown Protocol Operation"
        );
        assert_eq!(
            DecodeError::MaxPayloadExceeded { size: 2, max: 1 }.err_message(),
            "Maximum Payload Violation"
        );
        assert_eq!(
            DecodeError::ControlLineTooLong { max: 1 }.err_message(),
            "maximum control line exceeded"
        );
    }
}
