//! Shared helpers for the native tests: an in-process hub and a transport that reaches it
//! through the real router, with injectable faults.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};

pub mod hubops;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pos_sync::core::config::SyncSettings;
use pos_sync::core::protocol::{
    path, ConflictSummary, ErrorBody, OpState, Page, PullQuery, PullResponse, PushRequest,
    PushResponse,
};
use pos_sync::core::StoreId;
use pos_sync::core::{Transport, TransportError};
use pos_sync::hub::{app, AppState, Db, HubOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tower::ServiceExt;

/// A hub over a fresh in-memory database.
pub async fn hub() -> Router {
    let mut state = AppState::new(Db::memory().await.unwrap());
    // A chained push whose predecessor a fault dropped gives up quickly here.
    state.predecessor_wait = std::time::Duration::from_millis(200);
    app(state, &HubOptions::default())
}

/// Sends one request to the router and returns the status and the JSON body.
pub async fn call(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    call_with_type(router, method, path, body, "application/json").await
}

/// Like [`call`], with a chosen content type.
pub async fn call_with_type(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<&str>,
    content_type: &str,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "hub.test")
        .header("content-type", content_type)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// Faults a [`LocalTransport`] injects, as probabilities.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// The request never reaches the hub.
    pub drop_request: f64,
    /// The hub applies the request, but the answer is lost.
    pub lose_response: f64,
    /// The request reaches the hub twice (a retrying proxy).
    pub duplicate: f64,
}

/// A transport that calls the hub's router in process, with seeded faults and an
/// online switch.
pub struct LocalTransport {
    pub router: Router,
    pub online: Cell<bool>,
    pub faults: Faults,
    rng: RefCell<StdRng>,
    pub pushes: Cell<u64>,
}

impl LocalTransport {
    pub fn new(router: Router, faults: Faults, seed: u64) -> Self {
        LocalTransport {
            router,
            online: Cell::new(true),
            faults,
            rng: RefCell::new(StdRng::seed_from_u64(seed)),
            pushes: Cell::new(0),
        }
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.rng.borrow_mut().random_bool(p)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, TransportError> {
        let (status, value) = call(&self.router, method, path, body.as_deref()).await;
        if status.is_success() {
            Ok(value)
        } else {
            Err(TransportError::Http {
                status: status.as_u16(),
                body: serde_json::from_value::<ErrorBody>(value).ok(),
            })
        }
    }
}

impl Transport for LocalTransport {
    async fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        if !self.online.get() {
            return Err(TransportError::Offline);
        }
        if self.roll(self.faults.drop_request) {
            return Err(TransportError::Network(
                "connection reset before the hub read it".into(),
            ));
        }
        let body = serde_json::to_string(request).unwrap();
        self.pushes.set(self.pushes.get() + 1);
        let mut value = self.send("POST", path::PUSH, Some(body.clone())).await?;
        if self.roll(self.faults.duplicate) {
            value = self.send("POST", path::PUSH, Some(body)).await?;
        }
        if self.roll(self.faults.lose_response) {
            return Err(TransportError::Network(
                "connection reset before the answer arrived".into(),
            ));
        }
        serde_json::from_value(value).map_err(|e| TransportError::Decode(e.to_string()))
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

impl LocalTransport {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, TransportError> {
        if !self.online.get() {
            return Err(TransportError::Offline);
        }
        if self.roll(self.faults.drop_request) {
            return Err(TransportError::Network("connection reset".into()));
        }
        let value = self.send("GET", path, None).await?;
        serde_json::from_value(value).map_err(|e| TransportError::Decode(e.to_string()))
    }
}
