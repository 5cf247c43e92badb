//! The engine against a scripted transport: no hub, just the answers a hub could give.

use std::cell::RefCell;
use std::collections::VecDeque;

use futures::executor::block_on;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::core::config::{StoreConfig, SyncSettings};
use crate::core::model::Document;
use crate::core::protocol::{
    Change, ConflictSummary, ErrorBody, OpResult, OpState, PullResponse, PushRequest, PushResponse,
    PREDECESSOR_MISSING,
};
use crate::core::store::MemoryStore;

/// Answers pushes from a script (or applies everything when the script is empty), records
/// what it was sent, and serves one pull page.
#[derive(Default)]
struct Scripted {
    pushes: RefCell<VecDeque<Result<Option<PushResponse>, TransportError>>>,
    sent: RefCell<Vec<Vec<Uuid>>>,
    /// The operation each push was chained to (`despues_de`).
    chained: RefCell<Vec<Option<Uuid>>>,
    max_batch: Option<usize>,
    pull: RefCell<Option<PullResponse>>,
    config: RefCell<Option<StoreConfig>>,
    batch: std::cell::Cell<Option<usize>>,
    open: RefCell<Vec<ConflictSummary>>,
    states: RefCell<Vec<OpState>>,
}

fn applied(req: &PushRequest) -> PushResponse {
    PushResponse {
        store: req.store,
        results: req
            .operations
            .iter()
            .map(|o| OpResult {
                id: o.id,
                status: OpStatus::Applied,
                version: Some(1),
                conflict: None,
                error: None,
                code: None,
                duplicate: false,
            })
            .collect(),
        log_id: 1,
    }
}

impl Transport for Scripted {
    async fn push(&self, req: &PushRequest) -> Result<PushResponse, TransportError> {
        self.sent
            .borrow_mut()
            .push(req.operations.iter().map(|o| o.id).collect());
        self.chained.borrow_mut().push(req.after);
        if let Some(max) = self.max_batch {
            if req.operations.len() > max {
                let body = ErrorBody {
                    detail: format!("at most {max}"),
                    code: "lote_demasiado_grande".into(),
                };
                return Err(TransportError::Http {
                    status: 413,
                    body: Some(body),
                });
            }
        }
        match self.pushes.borrow_mut().pop_front() {
            Some(Ok(Some(r))) => Ok(r),
            Some(Ok(None)) | None => Ok(applied(req)),
            Some(Err(e)) => Err(e),
        }
    }

    async fn pull(&self, query: &PullQuery) -> Result<PullResponse, TransportError> {
        Ok(self.pull.borrow_mut().take().unwrap_or(PullResponse {
            changes: vec![],
            cursor: query.since,
            more: false,
        }))
    }

    async fn config(&self, store: StoreId) -> Result<SyncSettings, TransportError> {
        let mut c = self
            .config
            .borrow()
            .clone()
            .unwrap_or_else(|| StoreConfig::new(store));
        c.tamano_lote = self.batch.get().unwrap_or(c.tamano_lote);
        Ok(SyncSettings::from(&c))
    }

    async fn conflicts(&self, _store: StoreId) -> Result<Vec<ConflictSummary>, TransportError> {
        Ok(self.open.borrow().clone())
    }

    async fn states(&self, _store: StoreId, ids: &[Uuid]) -> Result<Vec<OpState>, TransportError> {
        Ok(self
            .states
            .borrow()
            .iter()
            .filter(|s| ids.contains(&s.id))
            .cloned()
            .collect())
    }
}

fn sale(n: u128, doc: &str) -> NewOperation {
    NewOperation {
        id: Uuid::from_u128(n),
        collection: "ventas".into(),
        doc_id: doc.into(),
        kind: OpKind::Create,
        data: json!({"importe": "1.00"}).as_object().unwrap().clone(),
        base_version: None,
        priority: None,
    }
}

fn engine(transport: Scripted, batch: usize) -> SyncEngine<MemoryStore, Scripted> {
    transport.batch.set(Some(batch));
    let mut config = EngineConfig::new(5);
    config.batch_size = batch;
    block_on(SyncEngine::open(
        MemoryStore::new(),
        transport,
        config,
        || 1_733_240_000_000,
    ))
    .unwrap()
}

#[test]
fn a_lost_answer_keeps_the_batch_pending_with_the_attempt_recorded_and_the_same_ids() {
    let t = Scripted::default();
    t.pushes
        .borrow_mut()
        .push_back(Err(TransportError::Network("reset".into())));
    let e = engine(t, 10);
    block_on(e.enqueue(vec![sale(1, "a"), sale(2, "b")])).unwrap();
    let err = block_on(e.sync_once()).unwrap_err();
    assert_eq!(
        err,
        EngineError::Transport(TransportError::Network("reset".into()))
    );
    assert_eq!(e.last_error().as_deref(), Some("network error: reset"));
    let ops = block_on(e.operations()).unwrap();
    assert_eq!(
        ops.iter()
            .map(|o| (o.attempts, o.status))
            .collect::<Vec<_>>(),
        vec![(1, OpStatus::Pending); 2]
    );
    assert_eq!(ops[0].error.as_deref(), Some("network error: reset"));

    let summary = block_on(e.sync_once()).unwrap();
    assert_eq!(summary.applied, 2);
    assert_eq!(summary.pending, 0);
    let sent = e.transport().sent.borrow().clone();
    assert_eq!(
        sent,
        vec![vec![Uuid::from_u128(1), Uuid::from_u128(2)]; 2],
        "the retry re-sends the same ids"
    );
    assert_eq!(e.last_error(), None);
}

#[test]
fn a_413_splits_the_batch_in_order_and_a_single_oversized_operation_is_refused_locally() {
    let t = Scripted {
        max_batch: Some(2),
        ..Default::default()
    };
    let e = engine(t, 5);
    block_on(e.enqueue((1..=5).map(|n| sale(n, &format!("v{n}"))).collect())).unwrap();
    let summary = block_on(e.sync_once()).unwrap();
    assert_eq!(summary.applied, 5);
    let sent: Vec<Vec<u128>> = e
        .transport()
        .sent
        .borrow()
        .iter()
        .map(|b| b.iter().map(|u| u.as_u128()).collect())
        .collect();
    assert_eq!(
        sent,
        vec![
            vec![1, 2, 3, 4, 5],
            vec![1, 2],
            vec![3, 4, 5],
            vec![3],
            vec![4, 5]
        ]
    );

    let t = Scripted {
        max_batch: Some(0),
        ..Default::default()
    };
    let e = engine(t, 5);
    block_on(e.enqueue(vec![sale(9, "huge")])).unwrap();
    let summary = block_on(e.sync_once()).unwrap();
    assert_eq!(summary.rejected, 1);
    assert_eq!(summary.pending, 0);
    let ops = block_on(e.operations()).unwrap();
    assert_eq!(ops[0].status, OpStatus::Rejected);
    assert_eq!(ops[0].error.as_deref(), Some("at most 0"));
}

#[test]
fn the_hubs_verdicts_are_kept_and_applied_operations_leave_the_queue() {
    let t = Scripted::default();
    let verdict = |id: u128, status: OpStatus, code: Option<&str>| OpResult {
        id: Uuid::from_u128(id),
        status,
        version: None,
        conflict: None,
        error: code.map(|c| format!("because {c}")),
        code: code.map(str::to_owned),
        duplicate: false,
    };
    t.pushes.borrow_mut().push_back(Ok(Some(PushResponse {
        store: 5,
        results: vec![
            verdict(1, OpStatus::Applied, None),
            verdict(2, OpStatus::Rejected, Some("ya_existe")),
            verdict(3, OpStatus::Conflict, Some("conflicto")),
            OpResult {
                duplicate: true,
                ..verdict(4, OpStatus::Applied, None)
            },
        ],
        log_id: 1,
    })));
    let e = engine(t, 10);
    block_on(e.enqueue((1..=4).map(|n| sale(n, &format!("v{n}"))).collect())).unwrap();
    let s = block_on(e.sync_once()).unwrap();
    assert_eq!(
        (s.applied, s.duplicates, s.rejected, s.conflicts, s.pending),
        (2, 1, 1, 1, 0)
    );
    let left: Vec<(u128, OpStatus, bool)> = block_on(e.operations())
        .unwrap()
        .iter()
        .map(|o| (o.id.as_u128(), o.status, o.has_conflict))
        .collect();
    assert_eq!(
        left,
        vec![
            (2, OpStatus::Rejected, false),
            (3, OpStatus::Conflict, true)
        ]
    );
}

#[test]
fn answers_that_break_the_protocol_are_errors_and_nothing_is_lost() {
    let t = Scripted::default();
    t.pushes.borrow_mut().push_back(Ok(Some(PushResponse {
        store: 5,
        results: vec![],
        log_id: 1,
    })));
    let e = engine(t, 10);
    block_on(e.enqueue(vec![sale(1, "a")])).unwrap();
    assert!(matches!(
        block_on(e.sync_once()),
        Err(EngineError::Protocol(_))
    ));
    assert_eq!(block_on(e.pending_count()).unwrap(), 1);

    let t = Scripted::default();
    *t.pull.borrow_mut() = Some(PullResponse {
        changes: vec![],
        cursor: 0,
        more: false,
    });
    let e = engine(t, 10);
    block_on(e.store().apply_changes(&[], 10)).unwrap();
    let e = block_on(SyncEngine::open(
        e.store().clone(),
        Scripted::default(),
        EngineConfig::new(5),
        || 0,
    ))
    .unwrap();
    assert_eq!(e.cursor(), 10);
    *e.transport().pull.borrow_mut() = Some(PullResponse {
        changes: vec![],
        cursor: 3,
        more: false,
    });
    assert!(
        matches!(block_on(e.sync_once()), Err(EngineError::Protocol(m)) if m.contains("went back"))
    );
}

#[test]
fn reads_show_the_cache_with_this_stores_pending_operations_on_top() {
    let t = Scripted::default();
    let doc = Document {
        collection: "productos".into(),
        doc_id: "P1".into(),
        version: 4,
        data: json!({"stock": 10, "nombre": "Mesa"})
            .as_object()
            .unwrap()
            .clone(),
        deleted: false,
    };
    *t.pull.borrow_mut() = Some(PullResponse {
        changes: vec![Change {
            seq: 1,
            doc,
            clock: None,
        }],
        cursor: 1,
        more: false,
    });
    let e = engine(t, 10);
    block_on(e.sync_once()).unwrap();
    let mut sell = sale(1, "P1");
    sell.collection = "productos".into();
    sell.kind = OpKind::Increment;
    sell.data = json!({"stock": -3}).as_object().unwrap().clone();
    let queued = block_on(e.enqueue(vec![sell])).unwrap();
    assert_eq!(
        queued[0].base_version, 4,
        "the base version is the cached one"
    );
    let seen = block_on(e.get("productos", "P1")).unwrap().unwrap();
    assert_eq!(seen.data["stock"], json!(7));
    assert_eq!(seen.data["nombre"], json!("Mesa"));
    assert_eq!(
        block_on(e.list("productos")).unwrap()[0].data["stock"],
        json!(7)
    );
    assert!(block_on(e.get("productos", "P2")).unwrap().is_none());
}

#[test]
fn a_database_of_another_store_is_refused_and_invalid_operations_queue_nothing() {
    let store = MemoryStore::new();
    block_on(SyncEngine::open(
        store.clone(),
        Scripted::default(),
        EngineConfig::new(1),
        || 0,
    ))
    .unwrap();
    let err = block_on(SyncEngine::open(
        store,
        Scripted::default(),
        EngineConfig::new(2),
        || 0,
    ))
    .err()
    .unwrap();
    assert_eq!(
        err,
        EngineError::Store(StoreError::WrongStore {
            expected: 2,
            found: 1
        })
    );

    let e = engine(Scripted::default(), 10);
    let mut bad = sale(2, "x");
    bad.collection = "Ventas!".into();
    assert!(matches!(
        block_on(e.enqueue(vec![sale(1, "ok"), bad])),
        Err(EngineError::Invalid(_))
    ));
    assert_eq!(block_on(e.pending_count()).unwrap(), 0);
    // One id twice in a call is named, and nothing of the call is queued.
    match block_on(e.enqueue(vec![sale(1, "a"), sale(3, "b"), sale(1, "c")])) {
        Err(EngineError::Invalid(i)) => {
            assert_eq!(i.field, "id");
            assert!(
                i.message.contains(&Uuid::from_u128(1).to_string()),
                "{}",
                i.message
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(block_on(e.pending_count()).unwrap(), 0);
}

fn predecessor_missing() -> TransportError {
    TransportError::Http {
        status: 409,
        body: Some(ErrorBody {
            detail: "waits for an operation the hub has not received".into(),
            code: PREDECESSOR_MISSING.into(),
        }),
    }
}

fn ids(ns: &[u128]) -> Vec<Uuid> {
    ns.iter().map(|&n| Uuid::from_u128(n)).collect()
}

#[test]
fn each_batch_is_chained_to_the_last_operation_of_the_batch_sent_before_it() {
    let e = engine(Scripted::default(), 2);
    block_on(e.enqueue((1..=5).map(|n| sale(n, &format!("v{n}"))).collect())).unwrap();
    let summary = block_on(e.sync_once()).unwrap();
    assert_eq!(
        (summary.applied, summary.batches, summary.pending),
        (5, 3, 0)
    );
    let t = e.transport();
    assert_eq!(
        *t.sent.borrow(),
        vec![ids(&[1, 2]), ids(&[3, 4]), ids(&[5])]
    );
    assert_eq!(
        *t.chained.borrow(),
        vec![None, Some(Uuid::from_u128(2)), Some(Uuid::from_u128(4))]
    );
}

#[test]
fn a_chained_batch_the_hub_never_saw_the_predecessor_of_is_sent_again_unchained() {
    let t = Scripted::default();
    t.pushes.borrow_mut().push_back(Ok(None));
    t.pushes.borrow_mut().push_back(Err(predecessor_missing()));
    let e = engine(t, 2);
    block_on(e.enqueue((1..=4).map(|n| sale(n, &format!("v{n}"))).collect())).unwrap();
    let summary = block_on(e.sync_once()).unwrap();
    assert_eq!((summary.applied, summary.pending), (4, 0));
    let t = e.transport();
    assert_eq!(
        *t.sent.borrow(),
        vec![ids(&[1, 2]), ids(&[3, 4]), ids(&[3, 4])]
    );
    assert_eq!(
        *t.chained.borrow(),
        vec![None, Some(Uuid::from_u128(2)), None]
    );
    assert!(block_on(e.operations()).unwrap().is_empty());
}

#[test]
fn when_a_batch_fails_the_one_chained_to_it_is_not_sent_again_and_both_stay_pending() {
    let t = Scripted::default();
    t.pushes
        .borrow_mut()
        .push_back(Err(TransportError::Network("reset".into())));
    t.pushes.borrow_mut().push_back(Err(predecessor_missing()));
    let e = engine(t, 2);
    block_on(e.enqueue((1..=6).map(|n| sale(n, &format!("v{n}"))).collect())).unwrap();
    let err = block_on(e.sync_once()).unwrap_err();
    assert_eq!(
        err,
        EngineError::Transport(TransportError::Network("reset".into())),
        "the first failure is the one told"
    );
    assert_eq!(
        *e.transport().sent.borrow(),
        vec![ids(&[1, 2]), ids(&[3, 4])],
        "nothing after the failed batch and the one already chained to it"
    );
    let ops = block_on(e.operations()).unwrap();
    assert_eq!(
        ops.iter()
            .map(|o| (o.id.as_u128(), o.status, o.attempts))
            .collect::<Vec<_>>(),
        vec![
            (1, OpStatus::Pending, 1),
            (2, OpStatus::Pending, 1),
            (3, OpStatus::Pending, 1),
            (4, OpStatus::Pending, 1),
            (5, OpStatus::Pending, 0),
            (6, OpStatus::Pending, 0),
        ]
    );

    // A chained batch that was applied (the failed one had reached the hub after all) keeps
    // its answers although the sync fails.
    let t = Scripted::default();
    t.pushes
        .borrow_mut()
        .push_back(Err(TransportError::Network("answer lost".into())));
    t.pushes.borrow_mut().push_back(Ok(None));
    let e = engine(t, 2);
    block_on(e.enqueue((1..=4).map(|n| sale(n, &format!("v{n}"))).collect())).unwrap();
    assert!(block_on(e.sync_once()).is_err());
    let left: Vec<u128> = block_on(e.operations())
        .unwrap()
        .iter()
        .map(|o| o.id.as_u128())
        .collect();
    assert_eq!(left, vec![1, 2]);
    let summary = block_on(e.sync_once()).unwrap();
    assert_eq!((summary.applied, summary.pending), (2, 0));
}
