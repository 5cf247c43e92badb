//! The sync state machine, generic over a [`Store`] and a [`Transport`].
//!
//! The flow:
//! 1. [`SyncEngine::enqueue`] validates new operations, stamps them with the hybrid clock and
//!    appends them to the store's queue in one committed write.
//! 2. [`SyncEngine::sync_once`] reads the pending operations, orders them ([`queue::order`]),
//!    and pushes them in batches, two in flight: each batch is chained to the one before it
//!    (`despues_de`), so the hub applies it only after that one. The hub answers each
//!    operation; applied ones leave the queue, the others stay with the hub's verdict. A batch
//!    whose answer is lost stays pending and is sent again with the same ids, and the hub
//!    answers it with its first result, so every operation is applied exactly once.
//! 3. Then it pulls the hub's changes after its cursor into the cache, page by page, moving
//!    the cursor with each page in the same write.
//!
//! Reading a document ([`SyncEngine::get`]) shows the cached hub version with this store's own
//! pending operations applied on top, so a till sees its own sales before they sync.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use super::apply::apply;
use super::clock::Hlc;
use super::model::{rfc3339, DocKey, Document, Fields, OpKind, OpStatus, Operation, StoreId};
use super::protocol::{
    validate, ConflictSummary, InvalidOperation, PullQuery, DEFAULT_PULL, MAX_BATCH,
};
use super::queue;
use super::store::{Store, StoreError};
use super::transport::{Transport, TransportError};

/// How an engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This store's id.
    pub store: StoreId,
    /// Operations per push.
    pub batch_size: usize,
    /// Changes per pull page.
    pub pull_limit: u32,
    /// The collections cached for offline use (empty: all).
    pub cached_collections: Vec<String>,
    /// The priority of each collection's operations, when an operation does not set one.
    pub priorities: BTreeMap<String, i32>,
    /// How often continuous sync runs, in milliseconds.
    pub interval_ms: u32,
}

impl EngineConfig {
    /// Defaults for a store: batches of 500, pages of 500, every collection cached.
    pub fn new(store: StoreId) -> Self {
        EngineConfig {
            store,
            batch_size: 500,
            pull_limit: DEFAULT_PULL,
            cached_collections: Vec::new(),
            priorities: BTreeMap::new(),
            interval_ms: 10_000,
        }
    }
}

/// An operation as the POS asks for it; the engine fills in the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOperation {
    /// The idempotency key, made on the device.
    pub id: Uuid,
    /// The collection.
    pub collection: String,
    /// The document id.
    pub doc_id: String,
    /// What it does.
    pub kind: OpKind,
    /// Fields, or deltas for an increment.
    pub data: Fields,
    /// The version the POS based this change on; `None` takes the cached document's.
    pub base_version: Option<u64>,
    /// Overrides the collection's priority.
    pub priority: Option<i32>,
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSummary {
    /// Operations sent (a re-sent one counts again).
    pub pushed: u64,
    /// Operations the hub applied (including ones it had applied before).
    pub applied: u64,
    /// Of those, the ones the hub had already applied on an earlier attempt.
    pub duplicates: u64,
    /// Operations the hub deferred.
    pub deferred: u64,
    /// Operations in conflict.
    pub conflicts: u64,
    /// Operations the hub refused.
    pub rejected: u64,
    /// Pushes made.
    pub batches: u64,
    /// Changed documents pulled into the cache.
    pub pulled: u64,
    /// The cursor after the pull.
    pub cursor: u64,
    /// Operations still waiting to be sent.
    pub pending: u64,
    /// Held operations (deferred or in conflict) the hub has settled since the last sync.
    pub settled: u64,
    /// Open conflicts of this store on the hub.
    pub open_conflicts: u64,
}

/// Why an engine call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The operation is malformed; nothing was queued.
    #[error("invalid operation: {0}")]
    Invalid(#[from] InvalidOperation),
    /// The device storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub could not be reached or refused the request.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The hub's answer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// The sync state machine for one store.
pub struct SyncEngine<S, T> {
    store: S,
    transport: T,
    config: RefCell<EngineConfig>,
    now_ms: Box<dyn Fn() -> u64>,
    resync: Cell<u64>,
    conflicts: RefCell<Vec<ConflictSummary>>,
    clock: Cell<Hlc>,
    cursor: Cell<u64>,
    sync_lock: futures::lock::Mutex<()>,
    syncing: Cell<bool>,
    last_error: RefCell<Option<String>>,
}

impl<S: Store, T: Transport> SyncEngine<S, T> {
    /// Opens the engine on a store, claiming the store for `config.store` if it is new.
    /// `now_ms` is the wall clock in Unix milliseconds.
    pub async fn open(
        store: S,
        transport: T,
        mut config: EngineConfig,
        now_ms: impl Fn() -> u64 + 'static,
    ) -> Result<Self, EngineError> {
        let meta = store.load_meta().await?;
        match meta.store {
            Some(found) if found != config.store => {
                return Err(StoreError::WrongStore {
                    expected: config.store,
                    found,
                }
                .into())
            }
            Some(_) => {}
            None => store.set_store(config.store).await?,
        }
        config.batch_size = config.batch_size.clamp(1, MAX_BATCH);
        config.pull_limit = config.pull_limit.max(1);
        let clock = meta.clock.map_or(Hlc::new(config.store), |c| Hlc {
            node: config.store,
            ..c
        });
        Ok(SyncEngine {
            store,
            transport,
            config: RefCell::new(config),
            now_ms: Box::new(now_ms),
            resync: Cell::new(meta.resync),
            conflicts: RefCell::new(Vec::new()),
            clock: Cell::new(clock),
            cursor: Cell::new(meta.cursor),
            sync_lock: futures::lock::Mutex::new(()),
            syncing: Cell::new(false),
            last_error: RefCell::new(None),
        })
    }

    /// The engine's configuration (the hub's, once a sync fetched it).
    pub fn config(&self) -> EngineConfig {
        self.config.borrow().clone()
    }

    /// This engine's store id.
    pub fn store_id(&self) -> StoreId {
        self.config.borrow().store
    }

    /// The store's open conflicts on the hub, as of the last sync.
    pub fn open_conflicts(&self) -> Vec<ConflictSummary> {
        self.conflicts.borrow().clone()
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The transport underneath.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Validates and queues operations, all or none, and returns them as queued.
    /// It returns only after the store committed them.
    pub async fn enqueue(&self, new: Vec<NewOperation>) -> Result<Vec<Operation>, EngineError> {
        let now = (self.now_ms)();
        let mut clock = self.clock.get();
        let created_at = rfc3339(now);
        let mut ops = Vec::with_capacity(new.len());
        for n in new {
            let priority = n.priority.unwrap_or_else(|| {
                self.config
                    .borrow()
                    .priorities
                    .get(&n.collection)
                    .copied()
                    .unwrap_or(0)
            });
            let op = Operation {
                id: n.id,
                store: self.store_id(),
                collection: n.collection,
                doc_id: n.doc_id,
                kind: n.kind,
                data: n.data,
                base_version: n.base_version.unwrap_or(0),
                base_data: None,
                clock: clock.tick(now),
                priority,
                status: OpStatus::Pending,
                has_conflict: false,
                attempts: 0,
                error: None,
                created_at: created_at.clone(),
                processed_at: None,
                seq: None,
            };
            validate(&op)?;
            if ops.iter().any(|o: &Operation| o.id == op.id) {
                return Err(EngineError::Invalid(InvalidOperation {
                    field: "id",
                    message: format!("{} appears twice in this call", op.id),
                }));
            }
            ops.push(op);
        }
        let queued = self.store.append(ops).await?;
        self.clock.set(clock);
        Ok(queued)
    }

    /// How many operations wait to be sent.
    pub async fn pending_count(&self) -> Result<u64, EngineError> {
        Ok(self.store.pending_count().await?)
    }

    /// Every operation in the queue: pending ones, and those the hub did not apply.
    pub async fn operations(&self) -> Result<Vec<Operation>, EngineError> {
        Ok(self.store.operations().await?)
    }

    /// A document as this store sees it: the cached hub version with this store's pending
    /// operations applied on top. `None` when it does not exist (or was deleted).
    pub async fn get(
        &self,
        collection: &str,
        doc_id: &str,
    ) -> Result<Option<Document>, EngineError> {
        let key = DocKey::new(collection, doc_id);
        let (base, ops) = self.store.cached_with_operations(&key).await?;
        Ok(overlay(base, &ops).filter(|d| !d.deleted))
    }

    /// Every live document of a collection as this store sees it (see [`SyncEngine::get`]),
    /// by id: the cached ones, and those this store created and has not synced yet.
    pub async fn list(&self, collection: &str) -> Result<Vec<Document>, EngineError> {
        let mut by_doc: BTreeMap<String, (Option<Document>, Vec<Operation>)> = BTreeMap::new();
        // Inserted one by one: collecting would sort them again, and carry a sort's code.
        for d in self.store.cached_collection(collection).await? {
            by_doc.insert(d.doc_id.clone(), (Some(d), Vec::new()));
        }
        // One read of the queue for the whole collection, not one per document.
        for op in self
            .store
            .operations()
            .await?
            .into_iter()
            .filter(|o| o.collection == collection)
        {
            by_doc.entry(op.doc_id.clone()).or_default().1.push(op);
        }
        Ok(by_doc
            .into_values()
            .filter_map(|(base, ops)| overlay(base, &ops).filter(|d| !d.deleted))
            .collect())
    }

    /// Whether a sync is running now.
    pub fn is_syncing(&self) -> bool {
        self.syncing.get()
    }

    /// The error of the last sync, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.borrow().clone()
    }

    /// The pull cursor.
    pub fn cursor(&self) -> u64 {
        self.cursor.get()
    }

    /// Pushes every pending operation, then pulls the hub's changes. Calls made while a sync
    /// runs wait for it and then sync again.
    pub async fn sync_once(&self) -> Result<SyncSummary, EngineError> {
        let _guard = self.sync_lock.lock().await;
        self.syncing.set(true);
        let result = self.push_then_pull().await;
        self.syncing.set(false);
        *self.last_error.borrow_mut() = result.as_ref().err().map(|e| e.to_string());
        result
    }

    async fn push_then_pull(&self) -> Result<SyncSummary, EngineError> {
        let mut summary = SyncSummary::default();
        // The queue is read while the configuration travels; a failed fetch still comes first.
        let (configured, first) = futures::join!(self.obey_hub_config(), self.store.pending());
        configured?;
        let mut read = Some(first?);
        loop {
            let mut pending = match read.take() {
                Some(pending) => pending,
                None => self.store.pending().await?,
            };
            if pending.is_empty() {
                break;
            }
            let (batch_size, priorities) = {
                let config = self.config.borrow();
                (config.batch_size, config.priorities.clone())
            };
            for op in &mut pending {
                if let Some(p) = priorities.get(&op.collection) {
                    op.priority = *p;
                }
            }
            // Pipelined: each batch leaves before the answer to the one before it arrives,
            // chained to it (the hub applies it only once that one is recorded), and each
            // answer is written to the store while the next batch is in flight.
            let ordered = queue::order(pending);
            let mut settling = Settlement::default();
            let mut flying: Option<Flight<'_>> = None;
            for batch in ordered.chunks(batch_size) {
                let after = flying.as_ref().and_then(|f| f.batch.last()).map(|o| o.id);
                let next = self.send(batch, after).await;
                let Some(previous) = flying.replace(next) else {
                    continue;
                };
                let previous_answers = std::mem::take(&mut settling);
                match self.land(previous, previous_answers, &mut summary).await {
                    Ok(answers) => settling = answers,
                    Err(e) => {
                        // The next batch is already out: the hub applies it only if the one
                        // that failed was recorded there after all. Its answers are kept.
                        // (Not sent again unchained: the batch before it is not answered.)
                        if let Some(next) = flying.take() {
                            let (result, counts) = next.outcome().await;
                            summary.add(&counts);
                            if let Ok(answers) = result {
                                self.settle(answers).await?;
                            }
                        }
                        return Err(e);
                    }
                }
            }
            if let Some(last) = flying.take() {
                settling = self.land(last, settling, &mut summary).await?;
            }
            self.settle(settling).await?;
        }
        self.settle_held(&mut summary).await?;
        self.pull(&mut summary).await?;
        let conflicts = self.transport.conflicts(self.store_id()).await?;
        summary.open_conflicts = conflicts.len() as u64;
        *self.conflicts.borrow_mut() = conflicts;
        self.store.save_clock(self.clock.get()).await?;
        summary.cursor = self.cursor.get();
        summary.pending = self.store.pending_count().await?;
        Ok(summary)
    }

    /// Fetches the store's configuration from the hub and obeys it: batch size, priorities,
    /// cached collections, interval, and a full-resync order (drop the cursor).
    async fn obey_hub_config(&self) -> Result<(), EngineError> {
        let hub = self.transport.config(self.store_id()).await?;
        {
            let mut config = self.config.borrow_mut();
            config.batch_size = hub.tamano_lote.clamp(1, MAX_BATCH);
            config.priorities = hub.prioridades;
            config.cached_collections = hub.colecciones_cache;
            config.interval_ms = hub.intervalo_ms;
        }
        if hub.resync > self.resync.get() {
            self.store.reset_cursor(hub.resync).await?;
            self.cursor.set(0);
            self.resync.set(hub.resync);
        }
        Ok(())
    }

    /// Asks the hub about operations it holds (deferred or in conflict): settled ones leave
    /// the queue or take the hub's verdict.
    async fn settle_held(&self, summary: &mut SyncSummary) -> Result<(), EngineError> {
        let held: Vec<Operation> = self
            .store
            .operations()
            .await?
            .into_iter()
            .filter(|o| matches!(o.status, OpStatus::Deferred | OpStatus::Conflict))
            .collect();
        for chunk in held.chunks(100) {
            let ids: Vec<Uuid> = chunk.iter().map(|o| o.id).collect();
            let states = self.transport.states(self.store_id(), &ids).await?;
            let mut remove = Vec::new();
            let mut update = Vec::new();
            for op in chunk {
                let Some(state) = states.iter().find(|s| s.id == op.id) else {
                    continue;
                };
                if state.status == op.status && state.error == op.error {
                    continue;
                }
                summary.settled += 1;
                match (state.status, op.seq) {
                    (OpStatus::Applied, Some(seq)) => remove.push(seq),
                    _ => update.push(Operation {
                        status: state.status,
                        has_conflict: state.has_conflict,
                        error: state.error.clone(),
                        ..op.clone()
                    }),
                }
            }
            self.store.settle(&remove, &update).await?;
        }
        Ok(())
    }

    /// Orders later local clock ticks after every change seen.
    fn observe(&self, changes: &[crate::core::protocol::Change]) {
        let now = (self.now_ms)();
        let mut clock = self.clock.get();
        for c in changes.iter().filter_map(|c| c.clock) {
            clock.observe(c, now);
        }
        self.clock.set(Hlc {
            node: self.store_id(),
            ..clock
        });
    }

    async fn pull(&self, summary: &mut SyncSummary) -> Result<(), EngineError> {
        loop {
            let query = PullQuery {
                since: self.cursor.get(),
                limit: self.config.borrow().pull_limit,
                collections: self.config.borrow().cached_collections.clone(),
            };
            let page = self.transport.pull(&query).await?;
            if page.cursor < query.since || page.changes.iter().any(|c| c.seq <= query.since) {
                return Err(EngineError::Protocol(format!(
                    "the hub's cursor went back from {} to {}",
                    query.since, page.cursor
                )));
            }
            self.store.apply_changes(&page.changes, page.cursor).await?;
            self.observe(&page.changes);
            self.cursor.set(page.cursor);
            summary.pulled += page.changes.len() as u64;
            if !page.more {
                return Ok(());
            }
        }
    }
}

/// Applies a store's own not-yet-applied operations on top of the hub's document. Operations
/// the hub refused are skipped; one that no longer fits the document is skipped too.
pub fn overlay(base: Option<Document>, ops: &[Operation]) -> Option<Document> {
    let mut doc = base;
    for op in ops
        .iter()
        .filter(|o| matches!(o.status, OpStatus::Pending | OpStatus::Deferred))
    {
        if let Ok(next) = apply(doc.as_ref(), op) {
            doc = Some(next);
        }
    }
    doc
}

#[path = "engine_push.rs"]
mod push;
use push::{Flight, Settlement};

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
