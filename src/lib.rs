//! # pos-sync
//!
//! An offline-first sync engine for browser point-of-sale systems.
//!
//! The crate has three layers, chosen by target:
//!
//! - [`core`]: pure and target-independent. Operations, the hybrid logical clock, queue
//!   ordering, how an operation changes a document, the wire protocol, and the sync state
//!   machine generic over a [`core::Store`] and a [`core::Transport`].
//! - `browser` (wasm32 only): the IndexedDB store (rexie), the fetch transport (gloo-net),
//!   connectivity and the wasm-bindgen JavaScript API.
//! - `hub` (native only): the axum server with SQLite storage that holds the authoritative data.
//!
//! Because the state machine lives in [`core`], the whole system runs natively in tests:
//! simulated stores with [`core::MemoryStore`] push to an in-process hub.
#![deny(missing_docs)]

pub mod core;

#[cfg(target_arch = "wasm32")]
pub mod browser;

#[cfg(not(target_arch = "wasm32"))]
pub mod hub;
