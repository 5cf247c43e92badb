//! A [`Store`] wrapper that keeps, in memory, the pending operations this engine appended,
//! so a sync need not read every queued record back from the device's storage.
//!
//! A till sells offline for hours, then comes back online: reading ten thousand records out
//! of IndexedDB takes longer than pushing them. Through [`Mirrored`], a sync reads only the
//! pending operations' sequence numbers ([`Store::pending_seqs`], no records) and the records
//! of the ones it has not seen ([`Store::pending_among`]): those another tab or a service
//! worker queued, or all of them after a reload. Sequence numbers that are no longer pending
//! (another engine on the same database settled them) leave the mirror. What the mirror
//! holds therefore matches the store's pending set exactly; only a pending record's
//! bookkeeping (`intentos`, `error`) rewritten by another engine may be older in memory, and
//! the hub answers a re-sent operation with its first answer, so nothing is applied twice.
//!
//! Every write goes to the store first and reaches the mirror only once it committed. Reads
//! other than [`Store::pending`] go to the store.

use std::cell::RefCell;

use super::clock::Hlc;
use super::model::{DocKey, Document, OpStatus, Operation, StoreId};
use super::protocol::Change;
use super::store::{Meta, Store, StoreError};

/// The most operations the mirror holds; past it, the rest are read from the store.
pub const MIRROR_LIMIT: usize = 20_000;

/// A store with this engine's pending operations mirrored in memory.
pub struct Mirrored<S> {
    inner: S,
    /// By sequence number, ascending. (A sorted vector: the wasm build already carries the
    /// code for vectors of operations, and an ordered map of them would add its own.)
    pending: RefCell<Vec<Operation>>,
}

impl<S: Store> Mirrored<S> {
    /// Wraps a store; the mirror starts empty and fills as operations are appended or read.
    pub fn new(inner: S) -> Self {
        Mirrored {
            inner,
            pending: RefCell::new(Vec::new()),
        }
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many operations the mirror holds now.
    pub fn mirrored(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Adds pending operations (each with its sequence number) that the mirror lacks, while
    /// it has room; returns the ones it had no room for.
    fn remember(&self, ops: Vec<Operation>) -> Vec<Operation> {
        let mut pending = self.pending.borrow_mut();
        let mut beyond = Vec::new();
        for op in ops.into_iter().filter(|o| o.status == OpStatus::Pending) {
            let Some(seq) = op.seq else { continue };
            match position(&pending, seq) {
                Ok(_) => {}
                // New operations have the highest numbers: this is a push at the end.
                Err(at) if pending.len() < MIRROR_LIMIT => pending.insert(at, op),
                Err(_) => beyond.push(op),
            }
        }
        beyond
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
        let queued = self.inner.append(ops).await?;
        self.remember(queued.clone());
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
        if self.pending.borrow().is_empty() {
            // Nothing mirrored (a reopened engine): one read of the records, kept from now on.
            let ops = self.inner.pending().await?;
            // Past the limit, the rest is returned without being kept.
            self.remember(ops.clone());
            return Ok(ops);
        }
        // Ascending, as the store lists them.
        let seqs = self.inner.pending_seqs().await?;
        let missing: Vec<u64> = {
            let pending = self.pending.borrow();
            seqs.iter()
                .filter(|&&s| position(&pending, s).is_err())
                .copied()
                .collect()
        };
        let fetched = if missing.is_empty() {
            Vec::new()
        } else {
            self.inner.pending_among(&missing).await?
        };
        self.pending
            .borrow_mut()
            .retain(|o| o.seq.is_some_and(|s| seqs.binary_search(&s).is_ok()));
        let beyond = self.remember(fetched);
        let mut out = self.pending.borrow().clone();
        // Read past the limit: returned in order, not kept.
        for op in beyond {
            let at = op
                .seq
                .map_or(out.len(), |seq| position(&out, seq).unwrap_or_else(|at| at));
            out.insert(at, op);
        }
        Ok(out)
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

    async fn pending_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.inner.pending_seqs().await
    }

    async fn pending_among(&self, seqs: &[u64]) -> Result<Vec<Operation>, StoreError> {
        self.inner.pending_among(seqs).await
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
