//! The error body every Loja HTTP endpoint answers with, and field errors.

use serde::{Deserialize, Serialize};

/// A value that failed validation, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field with its parent path (`items[2].` + `qty`).
    pub fn within(mut self, parent: impl std::fmt::Display) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// `{"error": {"code": …, "message": …, "field": …, "line": …}}`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Stable machine code: `invalid_field`, `unauthorized`, `not_found`, …
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based line of a JSON-lines request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
                line: None,
            },
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.error.field = Some(field.into());
        self
    }

    pub fn with_line(mut self, line: u64) -> Self {
        self.error.line = Some(line);
        self
    }
}

impl From<&FieldError> for ErrorBody {
    fn from(e: &FieldError) -> Self {
        ErrorBody::new("invalid_field", e.to_string()).with_field(e.field.clone())
    }
}
