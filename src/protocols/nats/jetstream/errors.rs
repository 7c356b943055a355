//! JetStream API errors: nats-server's HTTP-like code, its numeric `err_code`
//! (clients match on it: nats-py raises `NotFoundError` for 10059, async-nats
//! exposes the code) and its description text.

use serde::Serialize;

use crate::router::streams::{AppendError, StreamError};

/// One error as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) err_code: u32,
    pub(crate) description: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, err_code: u32, description: impl Into<String>) -> ApiError {
        ApiError {
            code,
            err_code,
            description: description.into(),
        }
    }

    pub(crate) fn invalid_json() -> ApiError {
        ApiError::new(400, 10025, "invalid JSON")
    }

    pub(crate) fn stream_not_found() -> ApiError {
        ApiError::new(404, 10059, "stream not found")
    }

    pub(crate) fn consumer_not_found() -> ApiError {
        ApiError::new(404, 10014, "consumer not found")
    }

    pub(crate) fn bad_request() -> ApiError {
        ApiError::new(400, 10003, "bad request")
    }
}

impl From<StreamError> for ApiError {
    fn from(e: StreamError) -> ApiError {
        let text = e.to_string();
        match e {
            StreamError::NotFound => ApiError::stream_not_found(),
            StreamError::NameInUse => ApiError::new(400, 10058, text),
            StreamError::SubjectsOverlap => ApiError::new(400, 10065, text),
            StreamError::BadSubject(_) => ApiError::new(500, 10052, "invalid subject"),
            StreamError::CannotChange(_) => ApiError::new(500, 10052, text),
            StreamError::Denied(_) => ApiError::new(400, 10052, text),
            StreamError::ConsumerNotFound => ApiError::consumer_not_found(),
            StreamError::ConsumerExists => ApiError::new(400, 10148, text),
            StreamError::MaxConsumers => ApiError::new(400, 10026, text),
            StreamError::WorkQueue(_) => ApiError::new(400, 10099, text),
            StreamError::NoMessage => ApiError::new(404, 10037, text),
        }
    }
}

impl From<&AppendError> for ApiError {
    fn from(e: &AppendError) -> ApiError {
        match e {
            AppendError::Sealed => ApiError::new(400, 10109, "invalid operation on sealed stream"),
            AppendError::WrongStream => ApiError::new(400, 10060, "expected stream does not match"),
            AppendError::WrongLastSequence(n) | AppendError::WrongLastSubjectSequence(n) => {
                ApiError::new(400, 10071, format!("wrong last sequence: {n}"))
            }
            AppendError::WrongLastMsgId(id) => {
                ApiError::new(400, 10070, format!("wrong last msg ID: {id}"))
            }
            AppendError::TooLarge => {
                ApiError::new(400, 10054, "message size exceeds maximum allowed")
            }
            AppendError::MaxMessages => ApiError::new(503, 10077, "maximum messages exceeded"),
            AppendError::MaxBytes => ApiError::new(503, 10077, "maximum bytes exceeded"),
            AppendError::Full => ApiError::new(503, 10023, "insufficient resources"),
        }
    }
}
