//! The one error shape of the POS API: `{"error": {"code", "message", "field"}}`
//! ([`ErrorBody`]), for handler errors and for everything axum or a layer
//! answers on its own (unknown route, wrong method, oversized body, timeout).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loja_protocol::{ErrorBody, FieldError};
use loja_replica::ReplicaError;

use crate::intake::IntakeError;

/// An error answer: a status and the JSON error body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    /// 422 naming the field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    pub fn with_field(mut self, field: &str) -> Self {
        self.body = self.body.with_field(field);
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token: send `Authorization: Bearer <token>` with a token of [pos] tokens",
        )
    }

    /// A replica read failed (the replica file is damaged or gone).
    pub fn replica(e: &ReplicaError) -> Self {
        tracing::error!(error = %e, "replica read failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "replica_error",
            format!("replica read failed: {e}"),
        )
    }

    /// The outbox could not take a document.
    pub fn intake(e: &IntakeError) -> Self {
        match e {
            IntakeError::Replica(ReplicaError::Invalid(fe)) => fe.into(),
            IntakeError::Replica(e @ ReplicaError::IdTaken { .. }) => {
                tracing::warn!(error = %e, "a document id was reused with another body: refused");
                ApiError::new(StatusCode::CONFLICT, "id_conflict", e.to_string()).with_field("id")
            }
            IntakeError::Replica(ReplicaError::DiskFull { .. }) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                format!(
                    "{e}. The document was NOT accepted: keep it on the POS and post it again."
                ),
            ),
            IntakeError::Replica(ReplicaError::ReadOnly { .. }) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "read_only",
                format!(
                    "{e}. The document was NOT accepted: keep it on the POS and post it again."
                ),
            ),
            IntakeError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "outbox_stopped",
                "the outbox writer has stopped (lojad is shutting down): the document was NOT accepted; retry",
            ),
            IntakeError::Replica(other) => {
                tracing::error!(error = %other, "outbox write failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "outbox_error",
                    format!(
                        "the outbox could not store the document ({other}): it was NOT accepted; retry"
                    ),
                )
            }
        }
    }
}

impl From<&FieldError> for ApiError {
    fn from(e: &FieldError) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody::from(e),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::from(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

/// Serializes `value` as the JSON body of a response with `status`.
pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(e) => {
            let body = format!(
                r#"{{"error":{{"code":"internal","message":"serializing the answer failed: {e}"}}}}"#
            );
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    }
}

/// `bytes`, already JSON, as the body of a response with `status`.
pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The stable code of an error status that axum or a layer produced.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "id_conflict",
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_field",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::INSUFFICIENT_STORAGE => "disk_full",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}
