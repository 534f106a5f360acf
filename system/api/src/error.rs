//! The one HTTP error type. Each variant maps to its status and a JSON body; a 5xx body says
//! nothing internal, its cause chain goes to the log.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("campaign `{0}` not found")]
    CampaignNotFound(String),
    #[error("campaign `{0}` already exists")]
    CampaignExists(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("admin endpoints are disabled: start the api with ADMIN_TOKEN (or --admin-token) set")]
    AdminDisabled,
    /// A dependency is down and the request had no effect.
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: &'static str,
        #[source]
        source: anyhow::Error,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn unavailable(dependency: &'static str, source: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable {
            dependency,
            source: source.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": self.to_string() }),
            ),
            Self::Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": self.to_string() }),
            ),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": self.to_string() }),
            ),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({ "error": self.to_string() }),
            ),
            Self::CampaignNotFound(_) => (
                StatusCode::NOT_FOUND,
                json!({ "result": "not_found", "error": self.to_string() }),
            ),
            Self::CampaignExists(_) => (StatusCode::CONFLICT, json!({ "error": self.to_string() })),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({ "error": self.to_string() }),
            ),
            Self::AdminDisabled => (StatusCode::FORBIDDEN, json!({ "error": self.to_string() })),
            Self::Unavailable { dependency, source } => {
                tracing::warn!(
                    dependency,
                    error = format!("{source:#}"),
                    "dependency unavailable"
                );
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "result": "unavailable", "error": self.to_string() }),
                )
            }
            Self::Internal(source) => {
                tracing::error!(error = format!("{source:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error" }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => Self::Unprocessable(message),
            JsonRejection::JsonSyntaxError(_) => Self::BadRequest(message),
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected `Content-Type: application/json`".to_owned())
            }
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::PayloadTooLarge(message)
            }
            _ => Self::BadRequest(message),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}
