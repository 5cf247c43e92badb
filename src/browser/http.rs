//! The fetch [`Transport`], over gloo-net.

use std::future::Future;
use std::pin::Pin;

use gloo_net::http::Request;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::core::config::SyncSettings;
use crate::core::model::StoreId;
use crate::core::protocol::{
    path, ConflictSummary, OpState, Page, PullQuery, PullResponse, PushRequest, PushResponse,
};
use crate::core::transport::{Transport, TransportError};

use super::env::is_online;
use super::read;

/// Talks to a hub at a base URL (`""` for the page's own origin).
pub struct FetchTransport {
    base: String,
}

impl FetchTransport {
    /// A transport for the hub at `base` (`http://host:port`, no trailing slash needed).
    pub fn new(base: &str) -> Self {
        FetchTransport {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// One request and its answer, parsed by the browser (`Response.json()`, so the answer's text
/// never crosses into the wasm). Every call of the transport goes through this one boxed
/// future, so the engine's wasm holds one copy of the fetch machinery, not one per answer
/// type; the answer is then read by the caller's reader alone.
fn exchange(request: Result<Request, gloo_net::Error>) -> Exchange {
    Box::pin(async move {
        if !is_online() {
            return Err(TransportError::Offline);
        }
        let request = request.map_err(|e| TransportError::Decode(e.to_string()))?;
        let response = request
            .send()
            .await
            .map_err(|e| TransportError::Network(e.to_string()))?;
        let (ok, status) = (response.ok(), response.status());
        let raw: web_sys::Response = response.into();
        let body = match raw.json() {
            Ok(parsing) => JsFuture::from(parsing).await,
            Err(e) => Err(e),
        };
        if !ok {
            return Err(TransportError::Http {
                status,
                body: body.ok().and_then(|b| read::error_body(&b).ok()),
            });
        }
        body.map_err(|e| {
            if e.is_instance_of::<js_sys::SyntaxError>() {
                TransportError::Decode("the hub's answer is not JSON".into())
            } else {
                TransportError::Network("the hub's answer was cut off".into())
            }
        })
    })
}

type Exchange = Pin<Box<dyn Future<Output = Result<JsValue, TransportError>>>>;

/// The parsed answer read by `reader`.
fn read<T>(value: &JsValue, reader: fn(&JsValue) -> read::Result<T>) -> Result<T, TransportError> {
    reader(value).map_err(TransportError::Decode)
}

impl Transport for FetchTransport {
    async fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        let body =
            serde_json::to_string(request).map_err(|e| TransportError::Decode(e.to_string()))?;
        let request = Request::post(&format!("{}{}", self.base, path::PUSH))
            .header("content-type", "application/json")
            .body(body);
        read(&exchange(request).await?, read::push_response)
    }

    async fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        read(&self.get(&path::pull(query)).await?, read::pull_response)
    }

    async fn config(&self, store: StoreId) -> Result<SyncSettings, TransportError> {
        read(&self.get(&path::config(store)).await?, read::sync_settings)
    }

    async fn conflicts(&self, store: StoreId) -> Result<Vec<ConflictSummary>, TransportError> {
        let page: Page<ConflictSummary> =
            read(&self.get(&path::open_conflicts(store)).await?, |v| {
                read::page(v, read::conflict_summary)
            })?;
        Ok(page.results)
    }

    async fn states(
        &self,
        store: StoreId,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<OpState>, TransportError> {
        let page: Page<OpState> = read(&self.get(&path::states(store, ids)).await?, |v| {
            read::page(v, read::op_state)
        })?;
        Ok(page.results)
    }
}

impl FetchTransport {
    fn get(&self, path: &str) -> Exchange {
        exchange(Request::get(&format!("{}{path}", self.base)).build())
    }
}
