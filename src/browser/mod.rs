//! The browser layer (wasm32 only), kept thin: it binds the core's sync engine to
//! IndexedDB ([`idb`]), `fetch` ([`http`]), the JS host ([`env`]) and JavaScript ([`api`]),
//! with a few steps done in JS itself ([`glue`]).

pub mod api;
pub mod convert;
pub mod env;
pub mod glue;
pub mod http;
pub mod idb;
pub mod js;
pub mod read;

pub use api::PosSync;
pub use idb::IdbStore;
