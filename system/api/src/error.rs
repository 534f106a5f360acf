//! The one HTTP error type. Each variant maps to its status and a JSON body; a 5xx body says
//! nothing internal, its cause chain goes to the log.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use coupon_domain::{history::ResultClass, wire::ErrorBody};
use coupon_store::StoreError;

use crate::issuance::IssuanceError;

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
    /// The apply reached a dependency that did not answer in time: it may have taken effect.
    #[error(
        "{dependency} did not answer in time, so whether this apply took a slot is unknown; a slot taken with no event to follow is released by the reconciler within about a minute, after which applying again competes afresh (before that it answers 409 already_applied)"
    )]
    OutcomeUnknown {
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
        let (status, result) = match &self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, None),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
            Self::CampaignNotFound(_) => (StatusCode::NOT_FOUND, Some(ResultClass::NotFound)),
            Self::CampaignExists(_) => (StatusCode::CONFLICT, None),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, None),
            Self::AdminDisabled => (StatusCode::FORBIDDEN, None),
            Self::Unavailable { dependency, source } => {
                tracing::warn!(dependency, error = %coupon_runtime::chain(&**source), "dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(ResultClass::Unavailable),
                )
            }
            Self::OutcomeUnknown { dependency, source } => {
                tracing::warn!(dependency, error = %coupon_runtime::chain(&**source), "apply outcome unknown");
                (StatusCode::GATEWAY_TIMEOUT, Some(ResultClass::Unknown))
            }
            Self::Internal(source) => {
                tracing::error!(error = %coupon_runtime::chain(&**source), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        };
        let body = ErrorBody {
            result,
            error: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

impl From<IssuanceError> for ApiError {
    fn from(error: IssuanceError) -> Self {
        match error.dependency() {
            Some(dependency) if matches!(error, IssuanceError::AdmitInDoubt(_)) => {
                Self::OutcomeUnknown {
                    dependency,
                    source: error.into(),
                }
            }
            Some(dependency) => Self::unavailable(dependency, error),
            None if matches!(error, IssuanceError::NoGate { .. }) => {
                Self::Unprocessable(error.to_string())
            }
            None => Self::Internal(error.into()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::unavailable("mysql", error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection {
            // Two values for one key is malformed JSON, not a wrong value.
            JsonRejection::JsonDataError(_)
                if message.contains(crate::routes::apply::DUPLICATE_KEY) =>
            {
                Self::BadRequest(message)
            }
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
