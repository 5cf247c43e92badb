//! The transport trait: how the engine reaches the hub.
//!
//! The browser implements it with `fetch`; tests implement it with an in-process hub.

use super::config::SyncSettings;
use super::model::StoreId;
use super::protocol::{
    ConflictSummary, ErrorBody, OpState, PullQuery, PullResponse, PushRequest, PushResponse,
};
use uuid::Uuid;

/// Why a request to the hub did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The device is offline; nothing was sent.
    #[error("offline")]
    Offline,
    /// The request failed on the network (hub down, connection cut). It may or may not
    /// have reached the hub, so the same operations are sent again later.
    #[error("network error: {0}")]
    Network(String),
    /// The hub answered with an error status.
    #[error("hub answered {status}: {}", .body.as_ref().map_or("(no detail)", |b| b.detail.as_str()))]
    Http {
        /// The HTTP status.
        status: u16,
        /// The hub's error body, when it sent one.
        body: Option<ErrorBody>,
    },
    /// The hub's answer did not decode.
    #[error("could not read the hub's answer: {0}")]
    Decode(String),
}

impl TransportError {
    /// Whether trying again later may succeed (network trouble, a busy or failing hub),
    /// as opposed to a request the hub refuses as it stands.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Offline | TransportError::Network(_) | TransportError::Decode(_) => {
                true
            }
            TransportError::Http { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
        }
    }
}

/// A way to send pushes and pulls to the hub.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Sends a batch of operations.
    async fn push(&self, request: &PushRequest) -> Result<PushResponse, TransportError>;
    /// Fetches changes after a cursor.
    async fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError>;
    /// Fetches the part of the store's configuration the engine obeys.
    async fn config(&self, store: StoreId) -> Result<SyncSettings, TransportError>;
    /// Fetches the store's open conflicts.
    async fn conflicts(&self, store: StoreId) -> Result<Vec<ConflictSummary>, TransportError>;
    /// Fetches where the given operations (at most 100) stand on the hub.
    async fn states(&self, store: StoreId, ids: &[Uuid]) -> Result<Vec<OpState>, TransportError>;
}
