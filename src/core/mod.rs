//! The pure, target-independent core: no I/O, no JavaScript types, no async runtime.
//!
//! - [`model`]: operations and documents, with their wire names;
//! - [`clock`]: the hybrid logical clock;
//! - [`queue`]: which pending operation goes first;
//! - [`apply`]: how an operation changes a document;
//! - [`protocol`]: push and pull messages, and operation validation;
//! - [`store`] and [`transport`]: the traits the engine runs over, with an in-memory store;
//! - [`mirror`]: a store wrapper that keeps this engine's pending operations in memory;
//! - [`engine`]: the sync state machine.

pub mod apply;
pub mod clock;
pub mod config;
pub mod conflict;
pub mod engine;
pub mod mirror;
pub mod model;
pub mod protocol;
pub mod queue;
pub mod store;
pub mod transport;

#[cfg(test)]
pub(crate) mod testing;

pub use clock::Hlc;
pub use engine::{EngineConfig, EngineError, NewOperation, SyncEngine, SyncSummary};
pub use mirror::Mirrored;
pub use model::{DocKey, Document, Fields, OpKind, OpStatus, Operation, StoreId};
pub use store::{MemoryStore, Meta, Store, StoreError};
pub use transport::{Transport, TransportError};
