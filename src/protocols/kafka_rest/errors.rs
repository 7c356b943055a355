//! The proxy's errors: an HTTP status and Confluent's `{"error_code", "message"}`.
//!
//! Owns: the error codes and messages of Confluent's REST Proxy v2 (Errors.java
//! and the exception mappers), so that a client's error handling works unchanged.
//! Refuses: deciding when an error applies (the handlers do).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::media::V2_JSON;
use crate::protocols::http::{BodyError, BODY_READ_TIMEOUT};

/// An error answered as Confluent's proxy answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestError {
    pub(crate) status: StatusCode,
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl RestError {
    pub(crate) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> RestError {
        RestError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 403: the user may not use these topics (or schema subjects).
    pub(crate) fn forbidden(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::FORBIDDEN, 40301, message)
    }

    pub(crate) fn topic_not_found() -> RestError {
        RestError::new(StatusCode::NOT_FOUND, 40401, "Topic not found.")
    }

    pub(crate) fn partition_not_found() -> RestError {
        RestError::new(StatusCode::NOT_FOUND, 40402, "Partition not found.")
    }

    pub(crate) fn instance_not_found() -> RestError {
        RestError::new(StatusCode::NOT_FOUND, 40403, "Consumer instance not found.")
    }

    pub(crate) fn format_mismatch() -> RestError {
        RestError::new(
            StatusCode::NOT_ACCEPTABLE,
            40601,
            "The requested embedded data format does not match the deserializer for this consumer instance",
        )
    }

    pub(crate) fn not_json(why: impl std::fmt::Display) -> RestError {
        RestError::new(StatusCode::REQUEST_TIMEOUT, 40801, why.to_string())
    }

    pub(crate) fn instance_exists() -> RestError {
        RestError::new(
            StatusCode::CONFLICT,
            40902,
            "Consumer with specified consumer ID already exists in the specified consumer group.",
        )
    }

    pub(crate) fn illegal_state(why: impl std::fmt::Display) -> RestError {
        RestError::new(StatusCode::CONFLICT, 40903, format!("Illegal state: {why}"))
    }

    pub(crate) fn bad_consumer_config(why: impl std::fmt::Display) -> RestError {
        RestError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42204,
            format!("Invalid consumer configuration: {why}"),
        )
    }

    /// A body that is not JSON, or JSON of the wrong shape (Jackson's 400).
    pub(crate) fn bad_request(why: impl std::fmt::Display) -> RestError {
        RestError::new(StatusCode::BAD_REQUEST, 400, why.to_string())
    }

    /// A body that breaks a constraint (bean validation's 422).
    pub(crate) fn unprocessable(why: impl std::fmt::Display) -> RestError {
        RestError::new(StatusCode::UNPROCESSABLE_ENTITY, 422, why.to_string())
    }

    pub(crate) fn unsupported_media_type() -> RestError {
        RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            "HTTP 415 Unsupported Media Type",
        )
    }

    pub(crate) fn not_acceptable() -> RestError {
        RestError::new(StatusCode::NOT_ACCEPTABLE, 406, "HTTP 406 Not Acceptable")
    }

    /// A body that was not read: too large (413) or too slow (408).
    pub(crate) fn body(why: BodyError, limit: usize) -> RestError {
        match why {
            BodyError::TooLarge => RestError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                413,
                format!("The request body is larger than {limit} bytes."),
            ),
            BodyError::TooSlow => RestError::new(
                StatusCode::REQUEST_TIMEOUT,
                408,
                format!(
                    "The request body did not arrive within {} s.",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ),
        }
    }

    pub(crate) fn not_found() -> RestError {
        RestError::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
    }

    pub(crate) fn storage(why: impl std::fmt::Display) -> RestError {
        RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50002,
            format!("Kafka error: {why}"),
        )
    }
}

impl RestError {
    /// The error as a response of media type `kind` (the registry answers in its own).
    pub(crate) fn into_response_as(self, kind: &'static str) -> Response {
        let body = json!({ "error_code": self.code, "message": self.message }).to_string();
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, kind)],
            body,
        )
            .into_response()
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        self.into_response_as(V2_JSON)
    }
}
