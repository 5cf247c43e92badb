//! The fetch [`Transport`], over gloo-net.

use gloo_net::http::{Request, Response};
use serde::de::DeserializeOwned;

use crate::core::config::SyncSettings;
use crate::core::model::StoreId;
use crate::core::protocol::{
    path, ConflictSummary, ErrorBody, OpState, Page, PullQuery, PullResponse, PushRequest,
    PushResponse,
};
use crate::core::transport::{Transport, TransportError};

use super::env::is_online;

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

async fn answer<T: DeserializeOwned>(
    response: Result<Response, gloo_net::Error>,
) -> Result<T, TransportError> {
    let response = response.map_err(|e| TransportError::Network(e.to_string()))?;
    if !response.ok() {
        let body = response.json::<ErrorBody>().await.ok();
        return Err(TransportError::Http {
            status: response.status(),
            body,
        });
    }
    response
        .json::<T>()
        .await
        .map_err(|e| TransportError::Decode(e.to_string()))
}

impl Transport for FetchTransport {
    async fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        if !is_online() {
            return Err(TransportError::Offline);
        }
        let request = Request::post(&format!("{}{}", self.base, path::PUSH))
            .json(request)
            .map_err(|e| TransportError::Decode(e.to_string()))?;
        answer(request.send().await).await
    }

    async fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.get(&path::pull(query)).await
    }

    async fn config(&self, store: StoreId) -> Result<SyncSettings, TransportError> {
        self.get(&path::config(store)).await
    }

    async fn conflicts(&self, store: StoreId) -> Result<Vec<ConflictSummary>, TransportError> {
        let page: Page<ConflictSummary> = self.get(&path::open_conflicts(store)).await?;
        Ok(page.results)
    }

    async fn states(
        &self,
        store: StoreId,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<OpState>, TransportError> {
        let page: Page<OpState> = self.get(&path::states(store, ids)).await?;
        Ok(page.results)
    }
}

impl FetchTransport {
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, TransportError> {
        if !is_online() {
            return Err(TransportError::Offline);
        }
        answer(Request::get(&format!("{}{path}", self.base)).send().await).await
    }
}
