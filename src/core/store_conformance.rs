//! One test suite for every [`Store`](super::Store) implementation. Each function takes a
//! fresh, empty store and panics on the first broken promise.

use serde_json::json;
use uuid::Uuid;

use super::*;

fn op(n: u128, coll: &str, doc: &str, kind: OpKind, data: serde_json::Value) -> Operation {
    Operation {
        id: Uuid::from_u128(n),
        store: 1,
        collection: coll.into(),
        doc_id: doc.into(),
        kind,
        data: data.as_object().cloned().unwrap_or_default(),
        base_version: 0,
        base_data: None,
        clock: Hlc {
            millis: 1_000,
            counter: n as u32,
            node: 1,
        },
        priority: 0,
        status: OpStatus::Pending,
        has_conflict: false,
        attempts: 0,
        error: None,
        created_at: "2026-12-03T16:00:00Z".into(),
        processed_at: None,
        seq: None,
    }
}

/// Queues sales 1 to `n` (ids 1 to `n`), one call.
async fn queue_sales<S: Store>(s: &S, n: u128) -> Vec<Operation> {
    s.append(
        (1..=n)
            .map(|n| op(n, "ventas", &format!("v{n}"), OpKind::Create, json!({})))
            .collect(),
    )
    .await
    .unwrap()
}

/// The ids in the queue, in order.
async fn queued_ids<S: Store>(s: &S) -> Vec<u128> {
    let ops = s.operations().await.unwrap();
    ops.iter().map(|o| o.id.as_u128()).collect()
}

fn change(seq: u64, doc: &str, version: u64, stock: i64, deleted: bool) -> Change {
    Change {
        clock: None,
        seq,
        doc: Document {
            collection: "productos".into(),
            doc_id: doc.into(),
            version,
            data: json!({"stock": stock}).as_object().unwrap().clone(),
            deleted,
        },
    }
}

/// Runs every check below on the stores `fresh` makes (one fresh store per check).
pub async fn run_all<S: Store, F: AsyncFn() -> S>(fresh: F) {
    queue_keeps_creation_order_and_counts(fresh().await).await;
    settle_removes_and_rewrites(fresh().await).await;
    settle_removes_runs_with_gaps(fresh().await).await;
    a_queued_id_cannot_be_queued_again(fresh().await).await;
    cache_and_cursor_move_together(fresh().await).await;
    base_version_comes_from_the_cache(fresh().await).await;
    meta_remembers_store_and_clock(fresh().await).await;
    queue_writes_count_every_committed_write(fresh().await).await;
    a_long_queue_settles_in_parts(fresh().await).await;
}

/// A call of 250 operations, then another of 3, settled in parts: the first 150 leave, one
/// of the rest is deferred, one gets its attempt recorded. The others keep their numbers and
/// order, and the count follows.
pub async fn a_long_queue_settles_in_parts<S: Store>(s: S) {
    let first = queue_sales(&s, 250).await;
    let second = s
        .append(
            (251..=253)
                .map(|n| op(n, "ventas", &format!("v{n}"), OpKind::Create, json!({})))
                .collect(),
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = first
        .iter()
        .chain(&second)
        .map(|o| o.seq.unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "creation order");
    let remove: Vec<u64> = seqs[..150].iter().rev().copied().collect();
    let mut deferred = first[200].clone();
    deferred.status = OpStatus::Deferred;
    let mut retried = first[160].clone();
    retried.attempts = 1;
    retried.error = Some("network".into());
    s.settle(&remove, &[deferred, retried]).await.unwrap();
    let pending = s.pending().await.unwrap();
    let ids: Vec<u128> = pending.iter().map(|o| o.id.as_u128()).collect();
    let expected: Vec<u128> = (151..=253).filter(|&n| n != 201).collect();
    assert_eq!(ids, expected);
    assert_eq!(s.pending_count().await.unwrap(), 102);
    let kept: Vec<u64> = pending.iter().map(|o| o.seq.unwrap()).collect();
    let expected_seqs: Vec<u64> = seqs[150..]
        .iter()
        .copied()
        .filter(|&q| q != seqs[200])
        .collect();
    assert_eq!(kept, expected_seqs, "the numbers stay as they were");
    assert_eq!(pending[10].attempts, 1);
    assert_eq!(pending[10].error.as_deref(), Some("network"));
    let all = s.operations().await.unwrap();
    assert_eq!(all.len(), 103);
    assert_eq!(all[50].status, OpStatus::Deferred);
    assert_eq!(all[50].seq, Some(seqs[200]));
    // What remains settles too, and an id that left can be queued again.
    let rest: Vec<u64> = all.iter().map(|o| o.seq.unwrap()).collect();
    s.settle(&rest, &[]).await.unwrap();
    assert!(s.operations().await.unwrap().is_empty());
    assert_eq!(s.pending_count().await.unwrap(), 0);
    s.append(vec![first[0].clone()]).await.unwrap();
    assert_eq!(queued_ids(&s).await, vec![1]);
}

/// Every committed queue write (an append, a settle) moves the count on; a refused one, a read
/// or a cache write does not; the handle knows the counts around its own last write.
pub async fn queue_writes_count_every_committed_write<S: Store>(s: S) {
    assert_eq!(s.own_write(), None, "nothing written yet");
    let start = s.queue_writes().await.unwrap();
    let ops = queue_sales(&s, 3).await;
    let after_append = s.queue_writes().await.unwrap();
    assert!(after_append > start);
    assert_eq!(s.own_write(), Some((start, after_append)));
    let mut held = ops[1].clone();
    held.status = OpStatus::Deferred;
    s.settle(&[ops[0].seq.unwrap()], &[held]).await.unwrap();
    let after_settle = s.queue_writes().await.unwrap();
    assert!(after_settle > after_append);
    assert_eq!(s.own_write(), Some((after_append, after_settle)));
    // Refused (a queued id again): nothing written, nothing counted.
    assert!(s.append(vec![ops[2].clone()]).await.is_err());
    s.pending().await.unwrap();
    s.apply_changes(&[change(1, "P1", 1, 5, false)], 1)
        .await
        .unwrap();
    assert_eq!(s.queue_writes().await.unwrap(), after_settle);
    assert_eq!(s.own_write(), Some((after_append, after_settle)));
    let pending: Vec<u128> = s
        .pending()
        .await
        .unwrap()
        .iter()
        .map(|o| o.id.as_u128())
        .collect();
    assert_eq!(pending, vec![3]);
}

/// Appended operations get increasing sequence numbers and stay pending.
pub async fn queue_keeps_creation_order_and_counts<S: Store>(s: S) {
    let a = s
        .append(vec![op(
            1,
            "ventas",
            "v1",
            OpKind::Create,
            json!({"cantidad": 1}),
        )])
        .await
        .unwrap();
    let b = s
        .append(vec![
            op(
                2,
                "productos",
                "p1",
                OpKind::Increment,
                json!({"stock": -1}),
            ),
            op(3, "ventas", "v2", OpKind::Create, json!({"cantidad": 2})),
        ])
        .await
        .unwrap();
    let seqs: Vec<u64> = a.iter().chain(&b).map(|o| o.seq.unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers must grow: {seqs:?}"
    );
    assert_eq!(s.pending_count().await.unwrap(), 3);
    let pending = s.pending().await.unwrap();
    let ids: Vec<u128> = pending.iter().map(|o| o.id.as_u128()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(pending[1].data["stock"], json!(-1));
    assert_eq!(pending[1].kind, OpKind::Increment);
    let on_p1 = s
        .operations_for(&DocKey::new("productos", "p1"))
        .await
        .unwrap();
    assert_eq!(on_p1.len(), 1);
    assert_eq!(on_p1[0].id.as_u128(), 2);
}

/// Settling removes applied operations and keeps the others with their new state.
pub async fn settle_removes_and_rewrites<S: Store>(s: S) {
    let ops = queue_sales(&s, 3).await;
    let mut rejected = ops[1].clone();
    rejected.status = OpStatus::Rejected;
    rejected.error = Some("ya_existe".into());
    rejected.attempts = 1;
    s.settle(&[ops[0].seq.unwrap()], &[rejected]).await.unwrap();
    assert_eq!(s.pending_count().await.unwrap(), 1);
    let all = s.operations().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, OpStatus::Rejected);
    assert_eq!(all[0].error.as_deref(), Some("ya_existe"));
    assert_eq!(all[0].attempts, 1);
    assert_eq!(all[1].id.as_u128(), 3);
    assert_eq!(all[1].status, OpStatus::Pending);
}

/// An id is queued once: appending it again, alone or inside a batch, or twice in one
/// batch, fails and writes nothing.
pub async fn a_queued_id_cannot_be_queued_again<S: Store>(s: S) {
    let first = op(1, "ventas", "v1", OpKind::Create, json!({}));
    s.append(vec![first.clone()]).await.unwrap();
    for batch in [
        vec![first.clone()],
        vec![
            op(2, "ventas", "v2", OpKind::Create, json!({})),
            first.clone(),
        ],
        vec![
            op(3, "ventas", "v3", OpKind::Create, json!({})),
            op(3, "ventas", "v3", OpKind::Create, json!({})),
        ],
    ] {
        match s.append(batch).await {
            Err(StoreError::DuplicateId(_)) => {}
            other => panic!("expected DuplicateId, got {other:?}"),
        }
    }
    assert_eq!(queued_ids(&s).await, vec![1]);
}

/// Removing many operations at once, unsorted and with gaps, removes exactly those.
pub async fn settle_removes_runs_with_gaps<S: Store>(s: S) {
    let ops = queue_sales(&s, 8).await;
    let seq = |i: usize| ops[i].seq.unwrap();
    // Keep the 4th and the 7th; remove the rest, given out of order and one twice.
    let remove = [seq(5), seq(0), seq(2), seq(1), seq(7), seq(4), seq(2)];
    s.settle(&remove, &[]).await.unwrap();
    assert_eq!(queued_ids(&s).await, vec![4, 7]);
    assert_eq!(s.pending_count().await.unwrap(), 2);
}

/// Pulled documents land in the cache with the cursor; deletions hide a document.
pub async fn cache_and_cursor_move_together<S: Store>(s: S) {
    s.apply_changes(
        &[change(1, "p1", 1, 5, false), change(2, "p2", 1, 3, false)],
        2,
    )
    .await
    .unwrap();
    assert_eq!(s.load_meta().await.unwrap().cursor, 2);
    let p1 = s
        .cached(&DocKey::new("productos", "p1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p1.version, 1);
    assert_eq!(p1.data["stock"], json!(5));
    s.apply_changes(
        &[change(3, "p1", 2, 4, false), change(4, "p2", 2, 0, true)],
        4,
    )
    .await
    .unwrap();
    let live = s.cached_collection("productos").await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].doc_id, "p1");
    assert_eq!(live[0].data["stock"], json!(4));
    assert!(
        s.cached(&DocKey::new("productos", "p2"))
            .await
            .unwrap()
            .unwrap()
            .deleted
    );
    assert!(s
        .cached(&DocKey::new("productos", "p3"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.load_meta().await.unwrap().cursor, 4);
}

/// An operation on a cached document records the version the store last saw.
pub async fn base_version_comes_from_the_cache<S: Store>(s: S) {
    s.apply_changes(&[change(7, "p1", 6, 5, false)], 7)
        .await
        .unwrap();
    let out = s
        .append(vec![
            op(
                1,
                "productos",
                "p1",
                OpKind::Increment,
                json!({"stock": -1}),
            ),
            op(2, "productos", "p9", OpKind::Update, json!({"stock": 1})),
        ])
        .await
        .unwrap();
    assert_eq!(out[0].base_version, 6);
    assert_eq!(
        out[0].base_data,
        Some(json!({"stock": 5}).as_object().unwrap().clone())
    );
    assert_eq!(out[1].base_version, 0);
    assert_eq!(out[1].base_data, None);
    let stored = s
        .operations_for(&DocKey::new("productos", "p1"))
        .await
        .unwrap();
    assert_eq!(stored[0].base_data, out[0].base_data);
}

/// The store id and the clock survive in the metadata: the clock is the later of the saved
/// one and the newest queued operation's.
pub async fn meta_remembers_store_and_clock<S: Store>(s: S) {
    assert_eq!(s.load_meta().await.unwrap(), Meta::default());
    s.set_store(42).await.unwrap();
    let queued = op(7, "ventas", "v", OpKind::Create, json!({}));
    let queued_clock = queued.clock;
    s.append(vec![queued]).await.unwrap();
    let meta = s.load_meta().await.unwrap();
    assert_eq!(meta.store, Some(42));
    assert_eq!(meta.clock, Some(queued_clock));
    // A settle after it (of another operation) leaves the newest queued clock in sight.
    let other = s
        .append(vec![op(8, "ventas", "w", OpKind::Create, json!({}))])
        .await
        .unwrap();
    s.settle(&[other[0].seq.unwrap()], &[]).await.unwrap();
    assert_eq!(s.load_meta().await.unwrap().clock, Some(queued_clock));
    let later = Hlc {
        millis: 99_999,
        counter: 3,
        node: 42,
    };
    s.save_clock(later).await.unwrap();
    assert_eq!(s.load_meta().await.unwrap().clock, Some(later));
    s.apply_changes(&[], 17).await.unwrap();
    s.reset_cursor(3).await.unwrap();
    let meta = s.load_meta().await.unwrap();
    assert_eq!((meta.cursor, meta.resync), (0, 3));
    // Reading a document with its operations at once.
    let (doc, ops) = s
        .cached_with_operations(&DocKey::new("ventas", "v"))
        .await
        .unwrap();
    assert!(doc.is_none());
    assert_eq!(ops.len(), 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes() {
        futures::executor::block_on(run_all(async || MemoryStore::new()));
    }
}
