//! AMQP 0-9-1 reply codes (the spec's `constants` with class `soft-error` / `hard-error`), as one
//! table.
//!
//! A reply code is what `connection.close` and `channel.close` carry. Hard errors close the
//! connection, soft errors only the channel (spec §1.2; reference reliability-security §2.2).

macro_rules! reply_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $name:literal, $hard:literal; )*) => {
        /// An AMQP 0-9-1 reply code. `Debug` prints the variant; [`ReplyCode::name`] the spec's
        /// upper-case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ReplyCode {
            $( $(#[doc = $doc])* #[doc = concat!("\n\nSpec name `", $name, "`, code ", stringify!($code), ".")] $variant, )*
        }

        impl ReplyCode {
            /// Every reply code, in table order.
            pub const ALL: &'static [ReplyCode] = &[$( ReplyCode::$variant, )*];

            /// The numeric code sent on the wire.
            pub fn code(self) -> u16 {
                match self { $( ReplyCode::$variant => $code, )* }
            }

            /// The spec's name, e.g. `"PRECONDITION_FAILED"`; RabbitMQ starts `reply-text` with it.
            pub fn name(self) -> &'static str {
                match self { $( ReplyCode::$variant => $name, )* }
            }

            /// Whether this is a connection-level ("hard") error: the connection must be closed,
            /// not just the channel.
            pub fn is_hard(self) -> bool {
                match self { $( ReplyCode::$variant => $hard, )* }
            }

            /// The reply code for a wire value, if the spec defines it.
            pub fn from_code(code: u16) -> Option<ReplyCode> {
                match code { $( $code => Some(ReplyCode::$variant), )* _ => None }
            }
        }
    };
}

reply_codes! {
    /// The method completed successfully (a normal close).
    Success = 200, "REPLY_SUCCESS", false;
    /// The message was too large for the server to accept.
    ContentTooLarge = 311, "CONTENT_TOO_LARGE", false;
    /// A mandatory message could not be routed (RabbitMQ uses it in `basic.return`).
    NoRoute = 312, "NO_ROUTE", false;
    /// An immediate message had no consumer ready.
    NoConsumers = 313, "NO_CONSUMERS", false;
    /// An operator closed the connection.
    ConnectionForced = 320, "CONNECTION_FORCED", true;
    /// The virtual host name is invalid.
    InvalidPath = 402, "INVALID_PATH", true;
    /// The client may not access the resource.
    AccessRefused = 403, "ACCESS_REFUSED", false;
    /// The named entity does not exist.
    NotFound = 404, "NOT_FOUND", false;
    /// The entity is held exclusively by another connection.
    ResourceLocked = 405, "RESOURCE_LOCKED", false;
    /// A precondition failed (inequivalent re-declare, unknown delivery tag, ...).
    PreconditionFailed = 406, "PRECONDITION_FAILED", false;
    /// Malformed framing: unknown frame type, bad frame end, oversized frame.
    FrameError = 501, "FRAME_ERROR", true;
    /// Undecodable method arguments (bad table, short string, truncated fields).
    SyntaxError = 502, "SYNTAX_ERROR", true;
    /// A method that is invalid in the current state.
    CommandInvalid = 503, "COMMAND_INVALID", true;
    /// A frame on a channel that is not open, or a bad channel number.
    ChannelError = 504, "CHANNEL_ERROR", true;
    /// A header or body frame out of sequence.
    UnexpectedFrame = 505, "UNEXPECTED_FRAME", true;
    /// The server ran out of a resource (e.g. channels).
    ResourceError = 506, "RESOURCE_ERROR", true;
    /// The operation is forbidden by policy.
    NotAllowed = 530, "NOT_ALLOWED", true;
    /// The method or feature is not implemented.
    NotImplemented = 540, "NOT_IMPLEMENTED", true;
    /// An internal server error.
    InternalError = 541, "INTERNAL_ERROR", true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_hardness_matches_the_spec() {
        for &rc in ReplyCode::ALL {
            assert_eq!(ReplyCode::from_code(rc.code()), Some(rc));
            let hard = matches!(rc.code(), 320 | 402 | 501..=506 | 530 | 540 | 541);
            assert_eq!(rc.is_hard(), hard, "{rc:?}");
        }
        assert_eq!(ReplyCode::ALL.len(), 19);
        assert_eq!(ReplyCode::PreconditionFailed.name(), "PRECONDITION_FAILED");
        assert_eq!(ReplyCode::from_code(201), None);
    }
}
