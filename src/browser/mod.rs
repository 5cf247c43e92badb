//! The browser layer (wasm32 only), kept thin: it binds the core's sync engine to
//! IndexedDB ([`idb`]), `fetch` ([`http`]), the JS host ([`env`]) and JavaScript ([`api`]).

pub mod api;
pub mod convert;
pub mod env;
pub mod http;
pub mod idb;
pub mod js;
pub mod read;

pub use api::PosSync;
pub use idb::IdbStore;
