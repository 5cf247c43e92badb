//! The device-side storage trait and its in-memory implementation.
//!
//! A [`Store`] keeps three things: the operation queue, the cache of hub documents, and the
//! engine's metadata (store id, pull cursor, clock). The browser implements it over IndexedDB;
//! [`MemoryStore`] implements it for tests and simulations. [`conformance`] is one test suite
//! that every implementation must pass.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::clock::Hlc;
use super::model::{DocKey, Document, OpKind, OpStatus, Operation, StoreId};
use super::protocol::Change;

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed; the message says how.
    #[error("storage failed: {0}")]
    Backend(String),
    /// The backend is out of space; nothing was written.
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),
    /// An operation's id is already in the queue (or twice in one call); nothing was written.
    #[error("operation id already queued: {0}")]
    DuplicateId(String),
    /// The database already belongs to another store.
    #[error("this database belongs to store {found}, not store {expected}")]
    WrongStore {
        /// The store the caller opened it for.
        expected: StoreId,
        /// The store it belongs to.
        found: StoreId,
    },
}

/// The engine's own metadata, kept beside the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// The store this database belongs to, once set.
    pub store: Option<StoreId>,
    /// The hub cursor the next pull starts from.
    pub cursor: u64,
    /// The last clock value issued, so a reopened engine never goes back in time.
    pub clock: Option<Hlc>,
    /// The last full-resync generation obeyed.
    pub resync: u64,
}

/// Device-side storage. Every method that writes is atomic: all of it lands or none of it.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Reads the metadata; its clock is the later of the saved one and the newest queued
    /// operation's.
    async fn load_meta(&self) -> Result<Meta, StoreError>;
    /// Records which store this database belongs to.
    async fn set_store(&self, store: StoreId) -> Result<(), StoreError>;
    /// Appends operations to the queue in one transaction and returns them with their queue
    /// sequence numbers. It returns only after the write is committed. An operation other than
    /// a create whose `base_version` is 0 gets the cached document's version, read in the same
    /// transaction. [`Store::load_meta`] must then report a clock at least as late as theirs.
    async fn append(&self, ops: Vec<Operation>) -> Result<Vec<Operation>, StoreError>;
    /// Saves the engine's clock (the engine does so after each sync).
    async fn save_clock(&self, clock: Hlc) -> Result<(), StoreError>;
    /// A cached document and the queued operations on it, read together.
    async fn cached_with_operations(
        &self,
        key: &DocKey,
    ) -> Result<(Option<Document>, Vec<Operation>), StoreError> {
        Ok((self.cached(key).await?, self.operations_for(key).await?))
    }
    /// The operations still waiting to be sent, in creation order.
    async fn pending(&self) -> Result<Vec<Operation>, StoreError>;
    /// How many operations wait to be sent.
    async fn pending_count(&self) -> Result<u64, StoreError>;
    /// Every operation in the queue (pending, and those the hub did not apply), in creation order.
    async fn operations(&self) -> Result<Vec<Operation>, StoreError>;
    /// The queued operations on one document, in creation order.
    async fn operations_for(&self, key: &DocKey) -> Result<Vec<Operation>, StoreError>;
    /// Removes the operations with sequence numbers `remove` and rewrites `update`, at once.
    async fn settle(&self, remove: &[u64], update: &[Operation]) -> Result<(), StoreError>;
    /// Obeys a full-resync order: sets the cursor to 0 and records `generation`, at once.
    async fn reset_cursor(&self, generation: u64) -> Result<(), StoreError>;
    /// Writes pulled documents into the cache and moves the cursor, at once.
    async fn apply_changes(&self, changes: &[Change], cursor: u64) -> Result<(), StoreError>;
    /// One cached document as the hub last sent it (deleted ones too).
    async fn cached(&self, key: &DocKey) -> Result<Option<Document>, StoreError>;
    /// Every live cached document of one collection, in no promised order.
    async fn cached_collection(&self, collection: &str) -> Result<Vec<Document>, StoreError>;
    /// How many times the queue has been written so far (an append or a settle that
    /// committed), by any engine on this storage: while it is unchanged, the queue is as it
    /// was. It starts at 0.
    async fn queue_writes(&self) -> Result<u64, StoreError>;
    /// The [`Store::queue_writes`] counts just before and just after this handle's own last
    /// queue write, if it wrote the queue yet (one write may count more than once). A write
    /// that starts at the count an engine last knew means no other engine wrote in between
    /// (see [`super::mirror`]).
    fn own_write(&self) -> Option<(u64, u64)>;
}

/// Whether `append` must fill the operation's base from the cache: it names no base version
/// and is not a create.
pub fn needs_base(op: &Operation) -> bool {
    op.base_version == 0 && op.kind != OpKind::Create
}

/// Sets an operation's base version, and the base values of the fields it changes, from the
/// cached document (if any).
pub fn fill_base(op: &mut Operation, cached: Option<&Document>) {
    let Some(doc) = cached.filter(|d| !d.deleted) else {
        return;
    };
    op.base_version = doc.version;
    if op.kind == OpKind::Update || op.kind == OpKind::Increment {
        let base = op
            .data
            .keys()
            .filter_map(|k| doc.data.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        op.base_data = Some(base);
    }
}

#[derive(Default)]
struct Inner {
    meta: Meta,
    next_seq: u64,
    queue: BTreeMap<u64, Operation>,
    cache: HashMap<DocKey, Document>,
    writes: u64,
}

/// An in-memory [`Store`]. Clones share the same data, so dropping an engine and opening a
/// new one on a clone behaves like reopening a database.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Rc<RefCell<Inner>>,
    /// The write counts before and after this handle's last queue write.
    own: std::cell::Cell<Option<(u64, u64)>>,
}

impl MemoryStore {
    /// Counts a queue write as this handle's.
    fn wrote(&self, inner: &mut Inner) {
        inner.writes += 1;
        self.own.set(Some((inner.writes - 1, inner.writes)));
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    async fn load_meta(&self) -> Result<Meta, StoreError> {
        let inner = self.inner.borrow();
        let last = inner.queue.values().next_back().map(|o| o.clock);
        Ok(Meta {
            clock: inner.meta.clock.max(last),
            ..inner.meta.clone()
        })
    }

    async fn set_store(&self, store: StoreId) -> Result<(), StoreError> {
        self.inner.borrow_mut().meta.store = Some(store);
        Ok(())
    }

    async fn append(&self, ops: Vec<Operation>) -> Result<Vec<Operation>, StoreError> {
        let mut inner = self.inner.borrow_mut();
        let mut ids: std::collections::HashSet<_> = inner.queue.values().map(|o| o.id).collect();
        if let Some(dup) = ops.iter().find(|o| !ids.insert(o.id)) {
            return Err(StoreError::DuplicateId(dup.id.to_string()));
        }
        let mut out = Vec::with_capacity(ops.len());
        for mut op in ops {
            if needs_base(&op) {
                let key = op.doc_key();
                fill_base(&mut op, inner.cache.get(&key));
            }
            inner.next_seq += 1;
            op.seq = Some(inner.next_seq);
            let seq = inner.next_seq;
            inner.queue.insert(seq, op.clone());
            out.push(op);
        }
        self.wrote(&mut inner);
        Ok(out)
    }

    async fn save_clock(&self, clock: Hlc) -> Result<(), StoreError> {
        self.inner.borrow_mut().meta.clock = Some(clock);
        Ok(())
    }

    async fn pending(&self) -> Result<Vec<Operation>, StoreError> {
        let inner = self.inner.borrow();
        Ok(inner
            .queue
            .values()
            .filter(|o| o.status == OpStatus::Pending)
            .cloned()
            .collect())
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        let inner = self.inner.borrow();
        Ok(inner
            .queue
            .values()
            .filter(|o| o.status == OpStatus::Pending)
            .count() as u64)
    }

    async fn operations(&self) -> Result<Vec<Operation>, StoreError> {
        Ok(self.inner.borrow().queue.values().cloned().collect())
    }

    async fn operations_for(&self, key: &DocKey) -> Result<Vec<Operation>, StoreError> {
        let inner = self.inner.borrow();
        Ok(inner
            .queue
            .values()
            .filter(|o| o.collection == key.collection && o.doc_id == key.doc_id)
            .cloned()
            .collect())
    }

    async fn settle(&self, remove: &[u64], update: &[Operation]) -> Result<(), StoreError> {
        let mut inner = self.inner.borrow_mut();
        for seq in remove {
            inner.queue.remove(seq);
        }
        for op in update {
            if let Some(seq) = op.seq {
                inner.queue.insert(seq, op.clone());
            }
        }
        self.wrote(&mut inner);
        Ok(())
    }

    async fn reset_cursor(&self, generation: u64) -> Result<(), StoreError> {
        let mut inner = self.inner.borrow_mut();
        inner.meta.cursor = 0;
        inner.meta.resync = generation;
        Ok(())
    }

    async fn apply_changes(&self, changes: &[Change], cursor: u64) -> Result<(), StoreError> {
        let mut inner = self.inner.borrow_mut();
        for c in changes {
            let key = DocKey::new(&c.doc.collection, &c.doc.doc_id);
            inner.cache.insert(key, c.doc.clone());
        }
        inner.meta.cursor = cursor;
        Ok(())
    }

    async fn cached(&self, key: &DocKey) -> Result<Option<Document>, StoreError> {
        Ok(self.inner.borrow().cache.get(key).cloned())
    }

    async fn cached_collection(&self, collection: &str) -> Result<Vec<Document>, StoreError> {
        let inner = self.inner.borrow();
        let mut docs: Vec<Document> = inner
            .cache
            .values()
            .filter(|d| d.collection == collection && !d.deleted)
            .cloned()
            .collect();
        docs.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
        Ok(docs)
    }

    async fn queue_writes(&self) -> Result<u64, StoreError> {
        Ok(self.inner.borrow().writes)
    }

    fn own_write(&self) -> Option<(u64, u64)> {
        self.own.get()
    }
}

#[path = "store_conformance.rs"]
pub mod conformance;
