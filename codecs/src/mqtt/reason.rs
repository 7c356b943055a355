//! MQTT 5 Reason Codes (§2.4), as one table.
//!
//! A `ReasonCode` is a plain byte so that codes this table does not know still round-trip;
//! `Debug` and `Display` print the spec's name.

use std::fmt;

/// An MQTT 5 Reason Code: a one-byte result carried by CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP,
/// SUBACK, UNSUBACK, DISCONNECT and AUTH. Values of 0x80 and above are failures (§2.4).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReasonCode(pub u8);

macro_rules! reason_codes {
    ($( $(#[doc = $doc:literal])* $name:ident = $value:literal, $text:literal; )*) => {
        impl ReasonCode {
            $(
                $(#[doc = $doc])*
                #[doc = concat!("\n\nSpec name: \"", $text, "\".")]
                pub const $name: Self = Self($value);
            )*

            /// The spec's name for this code (§2.4 Table 2-6), or `"Unknown"`.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $( $value => $text, )*
                    _ => "Unknown",
                }
            }
        }
    };
}

reason_codes! {
    /// Success; also Normal disconnection and Granted QoS 0 (see the aliases).
    SUCCESS = 0x00, "Success";
    /// SUBACK: the subscription is accepted with maximum QoS 1.
    GRANTED_QOS_1 = 0x01, "Granted QoS 1";
    /// SUBACK: the subscription is accepted with maximum QoS 2.
    GRANTED_QOS_2 = 0x02, "Granted QoS 2";
    /// DISCONNECT: the Client wishes to disconnect but requires the Will Message to be published.
    DISCONNECT_WITH_WILL = 0x04, "Disconnect with Will Message";
    /// PUBACK/PUBREC: accepted, but there are no matching subscribers.
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers";
    /// UNSUBACK: no matching Topic Filter is being used by the Client.
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed";
    /// AUTH: continue the authentication with another step.
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication";
    /// AUTH: initiate a re-authentication.
    RE_AUTHENTICATE = 0x19, "Re-authenticate";
    /// The sender does not wish to reveal the reason, or none of the other codes apply.
    UNSPECIFIED_ERROR = 0x80, "Unspecified error";
    /// The received packet does not conform to this specification.
    MALFORMED_PACKET = 0x81, "Malformed Packet";
    /// An unexpected or out-of-order packet was received.
    PROTOCOL_ERROR = 0x82, "Protocol Error";
    /// The packet is valid but is not accepted by this implementation.
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error";
    /// CONNACK: the Server does not support the requested protocol version.
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version";
    /// CONNACK: the Client Identifier is valid but not allowed by this Server.
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid";
    /// CONNACK: the user name or password is not accepted.
    BAD_USER_NAME_OR_PASSWORD = 0x86, "Bad User Name or Password";
    /// The request is not authorized.
    NOT_AUTHORIZED = 0x87, "Not authorized";
    /// CONNACK: the MQTT Server is not available.
    SERVER_UNAVAILABLE = 0x88, "Server unavailable";
    /// The Server is busy; try again later.
    SERVER_BUSY = 0x89, "Server busy";
    /// CONNACK: this Client has been banned by administrative action.
    BANNED = 0x8A, "Banned";
    /// DISCONNECT: the Server is shutting down.
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down";
    /// The authentication method is not supported or does not match the one in use.
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method";
    /// DISCONNECT: nothing was received for 1.5 times the Keep Alive.
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout";
    /// DISCONNECT: another connection using the same ClientID has connected.
    SESSION_TAKEN_OVER = 0x8E, "Session taken over";
    /// The Topic Filter is correctly formed but is not allowed.
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid";
    /// The Topic Name is correctly formed but is not accepted.
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid";
    /// The Packet Identifier is already in use.
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use";
    /// The Packet Identifier is not known.
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found";
    /// More QoS > 0 publications in flight than the Receive Maximum allows.
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded";
    /// The Topic Alias is 0 or above the Topic Alias Maximum.
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid";
    /// The packet size is greater than the Maximum Packet Size.
    PACKET_TOO_LARGE = 0x95, "Packet too large";
    /// The received data rate is too high.
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high";
    /// An implementation or administrative imposed limit has been exceeded.
    QUOTA_EXCEEDED = 0x97, "Quota exceeded";
    /// The connection is closed due to an administrative action.
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action";
    /// The payload does not match the Payload Format Indicator.
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid";
    /// The Server does not support retained messages.
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported";
    /// The QoS is greater than the Maximum QoS the Server supports.
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported";
    /// The Client should temporarily use another server.
    USE_ANOTHER_SERVER = 0x9C, "Use another server";
    /// The Client should permanently use another server.
    SERVER_MOVED = 0x9D, "Server moved";
    /// The Server does not support Shared Subscriptions.
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported";
    /// The connection rate limit has been exceeded.
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded";
    /// The maximum connection time authorized for this connection has been exceeded.
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time";
    /// The Server does not support Subscription Identifiers.
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported";
    /// The Server does not support Wildcard Subscriptions.
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported";
}

impl ReasonCode {
    /// DISCONNECT 0x00: close the connection normally; do not send the Will Message.
    pub const NORMAL_DISCONNECTION: Self = Self::SUCCESS;
    /// SUBACK 0x00: the subscription is accepted with maximum QoS 0.
    pub const GRANTED_QOS_0: Self = Self::SUCCESS;

    /// Whether this code reports a failure: 0x80 and above (§2.4).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.0)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<u8> for ReasonCode {
    fn from(b: u8) -> Self {
        Self(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_errors() {
        assert_eq!(ReasonCode::PROTOCOL_ERROR.0, 0x82);
        assert_eq!(ReasonCode::PACKET_TOO_LARGE.name(), "Packet too large");
        assert_eq!(
            format!("{}", ReasonCode::MALFORMED_PACKET),
            "Malformed Packet"
        );
        assert_eq!(format!("{:?}", ReasonCode(0x87)), "Not authorized (0x87)");
        assert_eq!(ReasonCode(0x07).name(), "Unknown");
        assert!(ReasonCode::UNSPECIFIED_ERROR.is_error());
        assert!(!ReasonCode::NO_SUBSCRIPTION_EXISTED.is_error());
        assert_eq!(ReasonCode::GRANTED_QOS_0, ReasonCode::NORMAL_DISCONNECTION);
        assert_eq!(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED.0, 0xA2);
    }
}
