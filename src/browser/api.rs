//! The JavaScript API: the `PosSync` class.
//!
//! Methods are camelCase and return Promises; data objects keep the wire contract's field
//! names (`coleccion`, `objeto_id`, ...), so what the page queues is what the hub lists.
//! Every failure rejects with a JS `Error` whose `name` is stable (see [`error_name`]).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use futures::FutureExt;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::{CustomEvent, CustomEventInit, EventTarget};

use super::env::{is_online, new_ids, now_ms, sleep, GlobalListener};
use super::http::FetchTransport;
use super::idb::IdbStore;
use super::js::{
    engine_error, error_name, invalid, js_error, report, to_js, JsNewOperation, Status,
};
use super::{convert, read};
use crate::core::engine::{EngineConfig, EngineError, NewOperation, SyncEngine, SyncSummary};
use crate::core::mirror::Mirrored;
use crate::core::model::rfc3339;

/// The engine a page gets: IndexedDB underneath, its own pending operations mirrored in
/// memory (see [`Mirrored`]), the hub over fetch.
type Engine = SyncEngine<Mirrored<IdbStore>, FetchTransport>;

struct Inner {
    engine: Engine,
    db_name: String,
    events: EventTarget,
    change_listeners: Cell<u32>,
    running: Cell<bool>,
    generation: Cell<u32>,
    wake: RefCell<Option<oneshot::Sender<()>>>,
    last_sync: RefCell<Option<(SyncSummary, String)>>,
    listeners: RefCell<Vec<GlobalListener>>,
}

impl Inner {
    async fn status(&self) -> Result<Status, EngineError> {
        let last = self.last_sync.borrow().clone();
        Ok(Status {
            store_id: self.engine.store_id(),
            db_name: self.db_name.clone(),
            online: is_online(),
            running: self.running.get(),
            syncing: self.engine.is_syncing(),
            pending: self.engine.pending_count().await?,
            cursor: self.engine.cursor(),
            last_sync_at: last.as_ref().map(|(_, at)| at.clone()),
            last_sync: last.map(|(s, _)| s),
            last_error: self.engine.last_error(),
        })
    }

    fn dispatch(&self, kind: &str, detail: &JsValue) {
        let init = CustomEventInit::new();
        init.set_detail(detail);
        if let Ok(event) = CustomEvent::new_with_event_init_dict(kind, &init) {
            let _ = self.events.dispatch_event(&event);
        }
    }

    /// Sends a "change" event with the current status, if anyone listens.
    async fn changed(&self) {
        if self.change_listeners.get() == 0 {
            return;
        }
        if let Ok(status) = self.status().await {
            if let Ok(detail) = report(&status) {
                self.dispatch("change", &detail);
            }
        }
    }

    async fn sync(&self) -> Result<SyncSummary, EngineError> {
        let before = self.engine.open_conflicts();
        let result = self.engine.sync_once().await;
        let after = self.engine.open_conflicts();
        let closed = before
            .iter()
            .filter(|c| !after.iter().any(|a| a.id == c.id))
            .map(|c| ("resuelto", c));
        let opened = after
            .iter()
            .filter(|c| !before.iter().any(|b| b.id == c.id))
            .map(|c| ("abierto", c));
        for (state, conflict) in closed.chain(opened) {
            if let Ok(detail) = report(&ConflictEvent {
                estado: state,
                conflicto: conflict,
            }) {
                self.dispatch("conflict", &detail);
            }
        }
        match &result {
            Ok(summary) => {
                *self.last_sync.borrow_mut() = Some((summary.clone(), rfc3339(now_ms())));
                if let Ok(detail) = report(summary) {
                    self.dispatch("sync", &detail);
                }
            }
            Err(e) => self.dispatch("syncerror", &js_error(error_name(e), &e.to_string())),
        }
        self.changed().await;
        result
    }

    fn wake(&self) {
        if let Some(tx) = self.wake.borrow_mut().take() {
            let _ = tx.send(());
        }
    }
}

/// The detail of a "conflict" event.
#[derive(serde::Serialize)]
struct ConflictEvent<'a> {
    estado: &'static str,
    conflicto: &'a crate::core::protocol::ConflictSummary,
}

/// Continuous sync: sync now, then every interval, and at once when woken (the device came
/// online, or something was queued). Ends when stopped or restarted.
async fn run_loop(weak: Weak<Inner>, generation: u32) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if !inner.running.get() || inner.generation.get() != generation {
            return;
        }
        if is_online() {
            let _ = inner.sync().await;
        }
        let (tx, rx) = oneshot::channel();
        *inner.wake.borrow_mut() = Some(tx);
        let interval = inner.engine.config().interval_ms;
        drop(inner);
        futures::select! {
            _ = sleep(interval).fuse() => {},
            _ = rx.fuse() => {},
        }
    }
}

/// The offline-first sync engine for one till.
#[wasm_bindgen]
pub struct PosSync {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl PosSync {
    /// Opens the engine: its IndexedDB database (created or upgraded) and its hub connection.
    #[wasm_bindgen(unchecked_return_type = "Promise<PosSync>")]
    pub fn open(#[wasm_bindgen(unchecked_param_type = "OpenOptions")] options: JsValue) -> Promise {
        future_to_promise(async move { PosSync::connect(options).await.map(JsValue::from) })
    }

    /// Deletes a database and everything queued in it. The engine on it must be closed first.
    #[wasm_bindgen(js_name = deleteDatabase, unchecked_return_type = "Promise<void>")]
    pub fn delete_database(
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> Promise {
        let name = text(&name, "the database name");
        future_to_promise(async move {
            IdbStore::delete(&name?)
                .await
                .map_err(|e| engine_error(e.into()))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// This engine's store id.
    #[wasm_bindgen(getter, js_name = storeId)]
    pub fn store_id(&self) -> f64 {
        self.inner.engine.store_id() as f64
    }

    /// Queues one operation; resolves once it is committed to IndexedDB.
    #[wasm_bindgen(unchecked_return_type = "Promise<Operation>")]
    pub fn enqueue(
        &self,
        #[wasm_bindgen(unchecked_param_type = "NewOperation")] op: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let queued = enqueue(&inner, new_operations(vec![parse_operation(&op)?])?).await?;
            to_js(&queued[0])
        })
    }

    /// Queues several operations atomically (all or none); resolves once committed.
    #[wasm_bindgen(js_name = enqueueMany, unchecked_return_type = "Promise<Operation[]>")]
    pub fn enqueue_many(
        &self,
        #[wasm_bindgen(unchecked_param_type = "NewOperation[]")] ops: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if !Array::is_array(&ops) {
                return Err(invalid("enqueueMany takes an array of operations".into()));
            }
            // Made plain data once; each element is then read in order, so an error names
            // the first bad one as `enqueue` would.
            let array: Array = convert::plain(&ops)
                .map_err(|e| invalid(format!("invalid operation: {e}")))?
                .unchecked_into();
            let ops = array
                .iter()
                .map(|op| read_operation(&op))
                .collect::<Result<Vec<_>, _>>()?;
            let queued = enqueue(&inner, new_operations(ops)?).await?;
            to_js(&queued)
        })
    }

    /// How many operations wait to be sent.
    #[wasm_bindgen(js_name = pendingCount, unchecked_return_type = "Promise<number>")]
    pub fn pending_count(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok((inner.engine.pending_count().await.map_err(engine_error)? as f64).into())
        })
    }

    /// Every operation in the queue: pending ones, and those the hub did not apply.
    #[wasm_bindgen(unchecked_return_type = "Promise<Operation[]>")]
    pub fn operations(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(
            async move { to_js(&inner.engine.operations().await.map_err(engine_error)?) },
        )
    }

    /// Pushes every pending operation and pulls the hub's changes, once.
    #[wasm_bindgen(js_name = syncNow, unchecked_return_type = "Promise<SyncSummary>")]
    pub fn sync_now(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { report(&inner.sync().await.map_err(engine_error)?) })
    }

    /// Starts continuous sync: now, every `syncIntervalMs`, and at once on `online`.
    pub fn start(&self) {
        if self.inner.running.get() {
            return;
        }
        self.inner.running.set(true);
        let generation = self.inner.generation.get().wrapping_add(1);
        self.inner.generation.set(generation);
        wasm_bindgen_futures::spawn_local(run_loop(Rc::downgrade(&self.inner), generation));
    }

    /// Stops continuous sync (a sync under way finishes).
    pub fn stop(&self) {
        self.inner.running.set(false);
        self.inner.wake();
    }

    /// The engine's state.
    #[wasm_bindgen(unchecked_return_type = "Promise<EngineStatus>")]
    pub fn status(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { report(&inner.status().await.map_err(engine_error)?) })
    }

    /// A document from the offline cache, with this store's pending operations applied;
    /// `undefined` when unknown or deleted.
    #[wasm_bindgen(unchecked_return_type = "Promise<CachedDocument | undefined>")]
    pub fn get(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] coleccion: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] objeto_id: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        let key =
            text(&coleccion, "coleccion").and_then(|c| Ok((c, text(&objeto_id, "objeto_id")?)));
        future_to_promise(async move {
            let (coleccion, objeto_id) = key?;
            match inner
                .engine
                .get(&coleccion, &objeto_id)
                .await
                .map_err(engine_error)?
            {
                Some(doc) => to_js(&doc),
                None => Ok(JsValue::UNDEFINED),
            }
        })
    }

    /// This store's open conflicts on the hub, as of the last sync.
    #[wasm_bindgen(unchecked_return_type = "Promise<ConflictSummary[]>")]
    pub fn conflicts(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { report(&inner.engine.open_conflicts()) })
    }

    /// Every live document of a collection from the offline cache, by id.
    #[wasm_bindgen(unchecked_return_type = "Promise<CachedDocument[]>")]
    pub fn list(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] coleccion: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        let coleccion = text(&coleccion, "coleccion");
        future_to_promise(async move {
            to_js(&inner.engine.list(&coleccion?).await.map_err(engine_error)?)
        })
    }

    /// Listens for "change", "sync" or "syncerror" (see `PosSyncEvent`).
    #[wasm_bindgen(js_name = addEventListener)]
    pub fn add_event_listener(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PosSyncEvent")] kind: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(event: CustomEvent) => void")] listener: JsValue,
    ) -> Result<(), JsValue> {
        let kind = text(&kind, "the event")?;
        let listener: Function = listener
            .dyn_into()
            .map_err(|_| invalid("the listener must be a function".into()))?;
        if !matches!(kind.as_str(), "change" | "sync" | "syncerror" | "conflict") {
            return Err(invalid(format!(
                "unknown event {kind:?}: use change, sync, syncerror or conflict"
            )));
        }
        self.inner
            .events
            .add_event_listener_with_callback(&kind, &listener)?;
        if kind == "change" {
            self.inner
                .change_listeners
                .set(self.inner.change_listeners.get() + 1);
        }
        Ok(())
    }

    /// Stops listening.
    #[wasm_bindgen(js_name = removeEventListener)]
    pub fn remove_event_listener(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PosSyncEvent")] kind: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(event: CustomEvent) => void")] listener: JsValue,
    ) -> Result<(), JsValue> {
        let kind = text(&kind, "the event")?;
        let listener: Function = listener
            .dyn_into()
            .map_err(|_| invalid("the listener must be a function".into()))?;
        self.inner
            .events
            .remove_event_listener_with_callback(&kind, &listener)?;
        if kind == "change" {
            self.inner
                .change_listeners
                .set(self.inner.change_listeners.get().saturating_sub(1));
        }
        Ok(())
    }

    /// Stops syncing, detaches from connectivity events and closes the database (so
    /// `deleteDatabase` can run). Queued operations stay in the database for the next `open`;
    /// this engine's later calls reject.
    pub fn close(&self) {
        self.stop();
        self.inner.listeners.borrow_mut().clear();
        self.inner.engine.store().inner().close();
    }
}

impl PosSync {
    /// `PosSync.open` for Rust callers: the same, without the Promise.
    pub async fn connect(options: JsValue) -> Result<PosSync, JsValue> {
        let options = convert::plain(&options)
            .and_then(|o| read::open_options(&o))
            .map_err(|e| invalid(format!("invalid options: {e}")))?;
        let db_name = options
            .db_name
            .clone()
            .unwrap_or_else(|| format!("pos-sync-{}", options.store_id));
        if db_name.is_empty() {
            return Err(invalid("invalid options: dbName must not be empty".into()));
        }
        let mut config = EngineConfig::new(options.store_id);
        if let Some(b) = options.batch_size {
            if !(1..=crate::core::protocol::MAX_BATCH).contains(&b) {
                return Err(invalid(format!(
                    "invalid options: batchSize must be 1 to {}",
                    crate::core::protocol::MAX_BATCH
                )));
            }
            config.batch_size = b;
        }
        if let Some(p) = options.pull_limit {
            config.pull_limit = p.clamp(1, crate::core::protocol::MAX_PULL);
        }
        config.cached_collections = options.cached_collections;
        config.priorities = options.priorities;
        config.interval_ms = options.sync_interval_ms.unwrap_or(10_000).max(100);
        let store = IdbStore::open(&db_name)
            .await
            .map_err(|e| engine_error(e.into()))?;
        let transport = FetchTransport::new(&options.hub_url);
        let engine = SyncEngine::open(Mirrored::new(store), transport, config, now_ms)
            .await
            .map_err(engine_error)?;
        let events = EventTarget::new()
            .map_err(|_| js_error("PosSyncStorageError", "cannot create an EventTarget"))?;
        let inner = Rc::new(Inner {
            engine,
            db_name,
            events,
            change_listeners: Cell::new(0),
            running: Cell::new(false),
            generation: Cell::new(0),
            wake: RefCell::new(None),
            last_sync: RefCell::new(None),
            listeners: RefCell::new(Vec::new()),
        });
        for event in ["online", "offline"] {
            let weak = Rc::downgrade(&inner);
            let listener = GlobalListener::new(event, move |_| {
                if let Some(inner) = weak.upgrade() {
                    if event == "online" {
                        inner.wake();
                    }
                    wasm_bindgen_futures::spawn_local(async move { inner.changed().await });
                }
            });
            inner.listeners.borrow_mut().extend(listener);
        }
        Ok(PosSync { inner })
    }
}

/// A string argument, or a `PosSyncInvalidError` naming `what` (a JS caller can pass anything).
fn text(value: &JsValue, what: &str) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| invalid(format!("{what} must be a string")))
}

/// One operation as the page gave it, or an error naming what is wrong with it.
fn parse_operation(op: &JsValue) -> Result<JsNewOperation, JsValue> {
    convert::plain(op)
        .map_err(|e| invalid(format!("invalid operation: {e}")))
        .and_then(|op| read_operation(&op))
}

/// One operation already made plain data (see [`convert::plain`]).
fn read_operation(op: &JsValue) -> Result<JsNewOperation, JsValue> {
    read::new_operation(op).map_err(|e| invalid(format!("invalid operation: {e}")))
}

/// Operations as the page gave them, each with an id (a new time-ordered one where none was given).
fn new_operations(ops: Vec<JsNewOperation>) -> Result<Vec<NewOperation>, JsValue> {
    let missing = ops.iter().filter(|op| op.id.is_none()).count();
    let mut fresh = new_ids(missing)
        .map_err(|e| js_error("PosSyncStorageError", &e))?
        .into_iter();
    Ok(ops
        .into_iter()
        .map(|op| NewOperation {
            id: op.id.or_else(|| fresh.next()).unwrap_or_default(),
            collection: op.coleccion,
            doc_id: op.objeto_id,
            kind: op.operacion,
            data: op.datos.unwrap_or_default(),
            base_version: op.version_base,
            priority: op.prioridad,
        })
        .collect())
}

async fn enqueue(
    inner: &Rc<Inner>,
    ops: Vec<NewOperation>,
) -> Result<Vec<crate::core::model::Operation>, JsValue> {
    let queued = inner.engine.enqueue(ops).await.map_err(engine_error)?;
    if inner.running.get() {
        inner.wake();
    }
    inner.changed().await;
    Ok(queued)
}
