//! API errors, answered as `meta.k8s.io/v1` Status objects like the real server.

use crate::resource::Gvr;
use http::StatusCode;
use serde_json::{Value, json};

/// A failed request: the HTTP status, the Status `reason` and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status: the object's name and resource, when known.
    pub details: Option<Box<(Gvr, String)>>,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    pub fn not_found(gvr: &Gvr, name: &str) -> Self {
        let e = ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{gvr} \"{name}\" not found"));
        e.about(gvr, name)
    }

    pub fn already_exists(gvr: &Gvr, name: &str) -> Self {
        let e = ApiError::new(StatusCode::CONFLICT, "AlreadyExists", format!("{gvr} \"{name}\" already exists"));
        e.about(gvr, name)
    }

    /// The real server's words for a stale `resourceVersion`.
    pub fn conflict(gvr: &Gvr, name: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {gvr} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        ApiError::new(StatusCode::CONFLICT, "Conflict", message).about(gvr, name)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn invalid(gvr: &Gvr, name: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message).about(gvr, name)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::GONE, "Expired", message)
    }

    fn about(mut self, gvr: &Gvr, name: &str) -> Self {
        self.details = Some(Box::new((gvr.clone(), name.into())));
        self
    }

    /// The Status object the real server sends for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some((gvr, name)) = self.details.as_deref() {
            status["details"] = json!({ "name": name, "group": gvr.group, "kind": gvr.plural });
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code.as_u16(), self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}
