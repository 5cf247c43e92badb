//! The hub's error type and how it becomes an HTTP answer.
//!
//! Every error body has DRF's shape: `{"detail": "...", "code": "..."}`, or per-field
//! `{"field": ["message"]}` with a 400. Internal causes are logged, never sent.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::core::protocol::ErrorBody;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is wrong as a whole.
    #[error("{detail}")]
    BadRequest {
        /// For people.
        detail: String,
        /// For programs.
        code: &'static str,
    },
    /// Named fields are wrong.
    #[error("invalid fields: {0:?}")]
    Fields(BTreeMap<String, Vec<String>>),
    /// The body or the batch is larger than the hub takes.
    #[error("{0}")]
    TooLarge(String),
    /// The body is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Nothing at that path.
    #[error("{0}")]
    NotFound(String),
    /// The endpoint does not take this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request does not fit the resource's state (a conflict already resolved, say).
    #[error("{detail}")]
    Conflict {
        /// For people.
        detail: String,
        /// For programs.
        code: &'static str,
    },
    /// The hub cannot serve now (its database file is gone, say); the message says why.
    #[error("{0}")]
    Unavailable(String),
    /// The database failed; the cause is logged and hidden.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database migration failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl AppError {
    /// A 400 that names one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        AppError::Fields(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }

    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } | AppError::Fields(_) => StatusCode::BAD_REQUEST,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Database(e) if is_busy(e) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(_) | AppError::Migrate(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut)
        || e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "5" || c == "6" || c == "13")
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = |detail: String, code: &str| {
            Json(ErrorBody {
                detail,
                code: code.to_owned(),
            })
            .into_response()
        };
        let response = match self {
            AppError::BadRequest { detail, code } => body(detail, code),
            AppError::Fields(fields) => Json(fields).into_response(),
            AppError::TooLarge(detail) => body(detail, "lote_demasiado_grande"),
            AppError::UnsupportedMediaType => body(
                "Unsupported media type: send Content-Type: application/json.".into(),
                "unsupported_media_type",
            ),
            AppError::NotFound(detail) => body(detail, "not_found"),
            AppError::MethodNotAllowed(detail) => body(detail, "method_not_allowed"),
            AppError::Unavailable(detail) => {
                tracing::error!(%detail, "hub unavailable");
                body(detail, "no_disponible")
            }
            AppError::Conflict { detail, code } => body(detail, code),
            e @ (AppError::Database(_) | AppError::Migrate(_)) => {
                tracing::error!(error = %e, "request failed inside the hub");
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    body("The hub is busy; try again shortly.".into(), "ocupado")
                } else {
                    body(
                        "The hub failed to process the request; nothing was applied.".into(),
                        "error_interno",
                    )
                }
            }
        };
        (status, response).into_response()
    }
}
