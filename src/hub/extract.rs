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
///
/// Text that is not JSON is a `parse_error` even where a field before the broken part has
/// the wrong shape: a shape error is reported with its field path only once the whole text
/// is known to be JSON (checked again, on that error path alone).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // Good bodies are read once, without tracking the path; only a refused one is read again
    // to name where it went wrong.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let syntax = |e: serde_json::Error| AppError::BadRequest {
        detail: format!("JSON parse error - {e}"),
        code: "parse_error",
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(syntax)?;
            Ok(value)
        }
        Err(e) if e.inner().is_data() => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(syntax)?;
            let path = e.path().to_string();
            let field = if path == "." {
                "non_field_errors".to_owned()
            } else {
                path
            };
            Err(AppError::field(&field, e.into_inner().to_string()))
        }
        Err(e) => Err(syntax(e.into_inner())),
    }
}
