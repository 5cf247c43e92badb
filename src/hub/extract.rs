//! A JSON body extractor that answers bad input in the hub's own error shape.
//!
//! - a body past the size limit: 413;
//! - a content type other than JSON: 415;
//! - text that is not JSON: 400 `parse_error`;
//! - JSON of the wrong shape: 400 naming the field path (`{"operaciones[0].operacion": [...]}`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::error::AppError;

/// A JSON body of type `T`, of at most `LIMIT` bytes.
pub struct JsonBody<T, const LIMIT: usize = { super::BODY_LIMIT }>(pub T);

impl<T: DeserializeOwned, S: Send + Sync, const LIMIT: usize> FromRequest<S>
    for JsonBody<T, LIMIT>
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge("The request body is larger than the hub accepts.".into())
            } else {
                AppError::BadRequest {
                    detail: format!("Could not read the request body: {e}"),
                    code: "parse_error",
                }
            }
        })?;
        if bytes.len() > LIMIT {
            return Err(AppError::TooLarge(format!(
                "The request body is larger than the {LIMIT} bytes this endpoint accepts."
            )));
        }
        parse(&bytes).map(JsonBody)
    }
}

/// Parses JSON text into `T` with the hub's error shapes.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| AppError::BadRequest {
            detail: format!("JSON parse error - {e}"),
            code: "parse_error",
        })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "non_field_errors".to_owned()
        } else {
            path
        };
        AppError::field(&field, e.into_inner().to_string())
    })
}
