//! The JavaScript boundary: the TypeScript types of every payload, the shapes the JS API reads
//! and writes, and how a Rust error becomes a JS `Error` with a stable `name`.

use std::collections::BTreeMap;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::core::engine::{EngineError, SyncSummary};
use crate::core::model::{Fields, OpKind, StoreId};
use crate::core::store::StoreError;
use crate::core::transport::TransportError;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options for `PosSync.open`. */
export interface OpenOptions {
  /** This till's store id (an integer). Required. */
  storeId: number;
  /** The hub's base URL; "" (the default) is the page's own origin. */
  hubUrl?: string;
  /** The IndexedDB database name; default `pos-sync-<storeId>`. */
  dbName?: string;
  /** Operations per push (1 to 1000) until the hub's configuration says otherwise; default 500. */
  batchSize?: number;
  /** Changes per pull page; default 500. */
  pullLimit?: number;
  /** How often `start()` syncs, in milliseconds; default 10000. */
  syncIntervalMs?: number;
  /** The collections pulled into the offline cache; default all. */
  cachedCollections?: string[];
  /** Priority per collection (higher syncs first); default 0. */
  priorities?: Record<string, number>;
}
export type OperationKind = "crear" | "actualizar" | "eliminar" | "incrementar";
export type OperationStatus = "pendiente" | "aplicada" | "diferida" | "conflicto" | "rechazada";
/** An operation to queue. For "incrementar", `datos` holds integer deltas. */
export interface NewOperation {
  /** The idempotency key (any UUID); when absent, a new time-ordered one (UUID version 7). */
  id?: string;
  coleccion: string;
  objeto_id: string;
  operacion: OperationKind;
  datos?: Record<string, unknown>;
  /** The version this change is based on; default the cached document's. */
  version_base?: number;
  /** Overrides the collection's priority. */
  prioridad?: number;
}
/** A queued operation (the wire contract's shape). */
export interface Operation {
  id: string;
  tienda: number;
  coleccion: string;
  objeto_id: string;
  operacion: OperationKind;
  datos: Record<string, unknown>;
  version_base: number;
  reloj: string;
  prioridad: number;
  estado: OperationStatus;
  tiene_conflicto: boolean;
  intentos: number;
  error: string | null;
  fecha_creacion: string;
  fecha_procesamiento: string | null;
  /** Creation order in this device's queue. */
  seq?: number;
}
/** A document from the offline cache, with this store's pending operations applied. */
export interface CachedDocument {
  coleccion: string;
  objeto_id: string;
  version: number;
  datos: Record<string, unknown>;
  eliminado: boolean;
}
/** What one sync did. */
export interface SyncSummary {
  pushed: number;
  applied: number;
  duplicates: number;
  deferred: number;
  conflicts: number;
  rejected: number;
  batches: number;
  pulled: number;
  cursor: number;
  pending: number;
  /** Held operations (deferred or in conflict) the hub settled since the last sync. */
  settled: number;
  /** This store's open conflicts on the hub. */
  openConflicts: number;
}
/** An open conflict of this store on the hub. */
export interface ConflictSummary {
  id: number;
  operacion_id: string;
  tipo: "campos" | "integridad" | "inventario";
  coleccion: string;
  objeto_id: string;
  campos: string[];
  estado: "abierto" | "resuelto";
  fecha_creacion: string;
}
/** The engine's state; also the `detail` of every "change" event. */
export interface EngineStatus {
  storeId: number;
  dbName: string;
  online: boolean;
  running: boolean;
  syncing: boolean;
  pending: number;
  cursor: number;
  lastSync: SyncSummary | null;
  lastSyncAt: string | null;
  lastError: string | null;
}
/**
 * Events: "change" (detail: EngineStatus) after queueing, syncing and connectivity changes;
 * "sync" (detail: SyncSummary) after a successful sync; "syncerror" (detail: Error);
 * "conflict" (detail: { estado: "abierto" | "resuelto", conflicto: ConflictSummary }) when a
 * conflict of this store opens or closes on the hub.
 */
export type PosSyncEvent = "change" | "sync" | "syncerror" | "conflict";
"#;

/// `PosSync.open`'s options (see `OpenOptions` above; read by [`read::open_options`](super::read::open_options)).
pub(crate) struct OpenOptions {
    pub(crate) store_id: StoreId,
    pub(crate) hub_url: String,
    pub(crate) db_name: Option<String>,
    pub(crate) batch_size: Option<usize>,
    pub(crate) pull_limit: Option<u32>,
    pub(crate) sync_interval_ms: Option<u32>,
    pub(crate) cached_collections: Vec<String>,
    pub(crate) priorities: BTreeMap<String, i32>,
}

/// An operation the page queues (see `NewOperation` above; read by [`read::new_operation`](super::read::new_operation)).
pub(crate) struct JsNewOperation {
    pub(crate) id: Option<uuid::Uuid>,
    pub(crate) coleccion: String,
    pub(crate) objeto_id: String,
    pub(crate) operacion: OpKind,
    pub(crate) datos: Option<Fields>,
    pub(crate) version_base: Option<u64>,
    pub(crate) prioridad: Option<i32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    pub(crate) store_id: StoreId,
    pub(crate) db_name: String,
    pub(crate) online: bool,
    pub(crate) running: bool,
    pub(crate) syncing: bool,
    pub(crate) pending: u64,
    pub(crate) cursor: u64,
    pub(crate) last_sync: Option<SyncSummary>,
    pub(crate) last_sync_at: Option<String>,
    pub(crate) last_error: Option<String>,
}

/// The stable `name` of the JS `Error` for each failure.
pub fn error_name(e: &EngineError) -> &'static str {
    match e {
        EngineError::Invalid(_) | EngineError::Store(StoreError::DuplicateId(_)) => {
            "PosSyncInvalidError"
        }
        EngineError::Store(StoreError::QuotaExceeded(_)) => "PosSyncQuotaError",
        EngineError::Store(StoreError::WrongStore { .. }) => "PosSyncWrongStoreError",
        EngineError::Store(_) => "PosSyncStorageError",
        EngineError::Transport(TransportError::Offline) => "PosSyncOfflineError",
        EngineError::Transport(TransportError::Network(_)) => "PosSyncNetworkError",
        EngineError::Transport(TransportError::Http { .. }) => "PosSyncHubError",
        EngineError::Transport(TransportError::Decode(_)) | EngineError::Protocol(_) => {
            "PosSyncProtocolError"
        }
    }
}

pub(crate) fn js_error(name: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name(name);
    e.into()
}

pub(crate) fn engine_error(e: EngineError) -> JsValue {
    js_error(error_name(&e), &e.to_string())
}

pub(crate) fn invalid(message: String) -> JsValue {
    js_error("PosSyncInvalidError", &message)
}

pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    super::convert::to_js(value).map_err(|e| js_error("PosSyncProtocolError", &e))
}

/// An engine report (status, summary, conflict) as a JS object.
pub(crate) fn report<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    super::convert::to_object(value).map_err(|e| js_error("PosSyncProtocolError", &e))
}
