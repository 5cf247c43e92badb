//! A [`Store`] wrapper that keeps, in memory, the pending operations this engine appended,
//! so a sync need not read every queued record back from the device's storage.
//!
//! A till sells offline for hours, then comes back online: reading ten thousand records out
//! of IndexedDB takes longer than pushing them. The mirror is exact as of one count of the
//! queue's writes ([`Store::queue_writes`]). A sync reads that count alone; while it is the
//! mirror's, the mirror is the store's pending set. Each write of this engine that starts at
//! the count it knew ([`Store::own_write`]) keeps the mirror exact; a write by another
//! tab or a service worker in between, a reload, or more than [`MIRROR_LIMIT`] pending
//! operations makes the next sync read the pending records from the store once, and keep them
//! from then on.
//!
//! Every write goes to the store first and reaches the mirror only once it committed. Reads
//! other than [`Store::pending`] go to the store.

use std::cell::{Cell, RefCell};

use super::clock::Hlc;
use super::model::{DocKey, Document, OpStatus, Operation, StoreId};
use super::protocol::Change;
use super::store::{Meta, Store, StoreError};

/// The most operations the mirror holds; past it, every sync reads them from the store.
pub const MIRROR_LIMIT: usize = 20_000;

/// A store with this engine's pending operations mirrored in memory.
pub struct Mirrored<S> {
    inner: S,
    /// By sequence number, ascending. (A sorted vector: the wasm build already carries the
    /// code for vectors of operations, and an ordered map of them would add its own.)
    pending: RefCell<Vec<Operation>>,
    /// The queue's write count at which `pending` is exactly the store's pending set; `None`:
    /// unknown, read it again.
    exact: Cell<Option<u64>>,
}

impl<S: Store> Mirrored<S> {
    /// Wraps a store; the mirror starts unknown and is read or built on first use.
    pub fn new(inner: S) -> Self {
        Mirrored {
            inner,
            pending: RefCell::new(Vec::new()),
            exact: Cell::new(None),
        }
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many operations the mirror holds now (0 while it is unknown).
    pub fn mirrored(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Makes the mirror known before this engine's first write when that is cheap: a store
    /// with nothing pending mirrors as empty. (With operations pending, the next sync reads
    /// them.)
    async fn prime(&self) -> Result<(), StoreError> {
        if self.exact.get().is_some() {
            return Ok(());
        }
        let writes = self.inner.queue_writes().await?;
        if self.inner.pending_count().await? == 0 && self.inner.queue_writes().await? == writes {
            self.pending.borrow_mut().clear();
            self.exact.set(Some(writes));
        }
        Ok(())
    }

    /// After a write of this engine: whether the mirror is still exact (it was, and no other
    /// engine wrote between it and this write). If not, it is forgotten.
    fn follows(&self) -> bool {
        match (self.exact.get(), self.inner.own_write()) {
            (Some(known), Some((before, after))) if before == known => {
                self.exact.set(Some(after));
                true
            }
            _ => {
                self.forget();
                false
            }
        }
    }

    fn forget(&self) {
        self.exact.set(None);
        self.pending.borrow_mut().clear();
    }
}

/// Where `seq` is (or would be) in a mirror sorted by sequence number.
fn position(pending: &[Operation], seq: u64) -> Result<usize, usize> {
    pending.binary_search_by_key(&Some(seq), |o| o.seq)
}

impl<S: Store> Store for Mirrored<S> {
    async fn load_meta(&self) -> Result<Meta, StoreError> {
        self.inner.load_meta().await
    }

    async fn set_store(&self, store: StoreId) -> Result<(), StoreError> {
        self.inner.set_store(store).await
    }

    async fn append(&self, ops: Vec<Operation>) -> Result<Vec<Operation>, StoreError> {
        self.prime().await?;
        let queued = self.inner.append(ops).await?;
        if self.follows() {
            let mut pending = self.pending.borrow_mut();
            // New operations have the highest numbers: they go at the end.
            pending.extend(
                queued
                    .iter()
                    .filter(|o| o.status == OpStatus::Pending)
                    .cloned(),
            );
            let over = pending.len() > MIRROR_LIMIT;
            drop(pending);
            if over {
                self.forget();
            }
        }
        Ok(queued)
    }

    async fn save_clock(&self, clock: Hlc) -> Result<(), StoreError> {
        self.inner.save_clock(clock).await
    }

    async fn cached_with_operations(
        &self,
        key: &DocKey,
    ) -> Result<(Option<Document>, Vec<Operation>), StoreError> {
        self.inner.cached_with_operations(key).await
    }

    async fn pending(&self) -> Result<Vec<Operation>, StoreError> {
        let writes = self.inner.queue_writes().await?;
        if self.exact.get() == Some(writes) {
            return Ok(self.pending.borrow().clone());
        }
        let ops = self.inner.pending().await?;
        // Kept if nobody wrote while it was read, and it fits.
        if self.inner.queue_writes().await? == writes && ops.len() <= MIRROR_LIMIT {
            *self.pending.borrow_mut() = ops.clone();
            self.exact.set(Some(writes));
        } else {
            self.forget();
        }
        Ok(ops)
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.inner.pending_count().await
    }

    async fn operations(&self) -> Result<Vec<Operation>, StoreError> {
        self.inner.operations().await
    }

    async fn operations_for(&self, key: &DocKey) -> Result<Vec<Operation>, StoreError> {
        self.inner.operations_for(key).await
    }

    async fn settle(&self, remove: &[u64], update: &[Operation]) -> Result<(), StoreError> {
        self.inner.settle(remove, update).await?;
        if !self.follows() {
            return Ok(());
        }
        let mut removed = remove.to_vec();
        removed.sort_unstable();
        let mut pending = self.pending.borrow_mut();
        pending.retain(|o| o.seq.is_none_or(|s| removed.binary_search(&s).is_err()));
        for op in update {
            let Some(seq) = op.seq else { continue };
            if let Ok(at) = position(&pending, seq) {
                if op.status == OpStatus::Pending {
                    pending[at] = op.clone();
                } else {
                    pending.remove(at);
                }
            }
        }
        Ok(())
    }

    async fn reset_cursor(&self, generation: u64) -> Result<(), StoreError> {
        self.inner.reset_cursor(generation).await
    }

    async fn apply_changes(&self, changes: &[Change], cursor: u64) -> Result<(), StoreError> {
        self.inner.apply_changes(changes, cursor).await
    }

    async fn cached(&self, key: &DocKey) -> Result<Option<Document>, StoreError> {
        self.inner.cached(key).await
    }

    async fn cached_collection(&self, collection: &str) -> Result<Vec<Document>, StoreError> {
        self.inner.cached_collection(collection).await
    }

    async fn queue_writes(&self) -> Result<u64, StoreError> {
        self.inner.queue_writes().await
    }

    fn own_write(&self) -> Option<(u64, u64)> {
        self.inner.own_write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::{conformance, MemoryStore};
    use crate::core::testing::op;
    use crate::core::OpKind;
    use futures::executor::block_on;
    use serde_json::json;
    use uuid::Uuid;

    fn sale(n: u128) -> Operation {
        let mut o = op(OpKind::Create, json!({"cantidad": 1}));
        o.id = Uuid::from_u128(n);
        o.collection = "ventas".into();
        o.doc_id = format!("v{n}");
        o
    }

    fn ids(ops: &[Operation]) -> Vec<u128> {
        ops.iter().map(|o| o.id.as_u128()).collect()
    }

    #[test]
    fn a_mirrored_memory_store_passes_the_conformance_suite() {
        block_on(conformance::run_all(async || {
            Mirrored::new(MemoryStore::new())
        }));
    }

    /// Two engines on one database (two tabs): each sees what the other queued and settled.
    #[test]
    fn the_mirror_follows_what_another_engine_did_to_the_same_store() {
        block_on(async {
            let shared = MemoryStore::new();
            let a = Mirrored::new(shared.clone());
            let b = Mirrored::new(shared.clone());
            let mine = a.append(vec![sale(1), sale(2), sale(3)]).await.unwrap();
            assert_eq!(a.mirrored(), 3);
            b.append(vec![sale(4)]).await.unwrap();
            assert_eq!(ids(&a.pending().await.unwrap()), vec![1, 2, 3, 4]);
            assert_eq!(
                a.mirrored(),
                4,
                "what another engine queued is read once, then kept"
            );
            // The other engine settles two of mine: one applied, one deferred by the hub.
            let mut deferred = mine[2].clone();
            deferred.status = OpStatus::Deferred;
            b.settle(&[mine[0].seq.unwrap()], &[deferred])
                .await
                .unwrap();
            assert_eq!(ids(&a.pending().await.unwrap()), vec![2, 4]);
            assert_eq!(a.mirrored(), 2);
            // A fresh engine (a reload) reads the pending records from the store.
            let reloaded = Mirrored::new(shared.clone());
            assert_eq!(ids(&reloaded.pending().await.unwrap()), vec![2, 4]);
            assert_eq!(reloaded.mirrored(), 2);
        });
    }

    /// The mirror follows this engine's own writes without reading the store again, and is
    /// read once when another engine wrote in between or after a reload with work pending.
    #[test]
    fn the_mirror_is_read_only_when_someone_else_wrote() {
        block_on(async {
            let shared = MemoryStore::new();
            let a = Mirrored::new(shared.clone());
            // Nothing pending: the mirror is known at once, and follows a's appends.
            a.append(vec![sale(1)]).await.unwrap();
            a.append(vec![sale(2), sale(3)]).await.unwrap();
            assert_eq!(a.mirrored(), 3);
            assert_eq!(a.exact.get(), Some(2));
            // Another engine writes: a's next write cannot know the queue, so the mirror
            // goes until the next sync reads it.
            let b = Mirrored::new(shared.clone());
            b.append(vec![sale(4)]).await.unwrap();
            assert_eq!(b.mirrored(), 0, "b opened on a queue with work pending");
            a.append(vec![sale(5)]).await.unwrap();
            assert_eq!((a.mirrored(), a.exact.get()), (0, None));
            assert_eq!(ids(&a.pending().await.unwrap()), vec![1, 2, 3, 4, 5]);
            assert_eq!((a.mirrored(), a.exact.get()), (5, Some(4)));
            let queued = a.pending().await.unwrap();
            a.settle(&[queued[0].seq.unwrap()], &[]).await.unwrap();
            assert_eq!((a.mirrored(), a.exact.get()), (4, Some(5)));
        });
    }

    /// An operation that failed to reach the hub stays pending with its new bookkeeping.
    #[test]
    fn a_settled_update_that_stays_pending_replaces_the_mirrored_copy() {
        block_on(async {
            let s = Mirrored::new(MemoryStore::new());
            let queued = s.append(vec![sale(1)]).await.unwrap();
            let mut retried = queued[0].clone();
            retried.attempts = 1;
            retried.error = Some("network error".into());
            s.settle(&[], &[retried]).await.unwrap();
            let pending = s.pending().await.unwrap();
            assert_eq!(pending[0].attempts, 1);
            assert_eq!(pending[0].error.as_deref(), Some("network error"));
        });
    }
}
