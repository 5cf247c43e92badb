//! The engine against the in-process hub, for what conflicts, deferral and configuration mean
//! to a store: it learns the outcome of held operations on its next sync, sees the resolved
//! data in its cache, lists its open conflicts, and obeys the hub's configuration.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{call, hub, Faults, LocalTransport};

use pos_sync::core::{EngineConfig, MemoryStore, NewOperation, OpKind, OpStatus, SyncEngine};
use serde_json::{json, Value};
use uuid::Uuid;

type Engine = SyncEngine<MemoryStore, LocalTransport>;

async fn engine(router: &axum::Router, store: u64, memory: MemoryStore) -> Engine {
    let clock = Rc::new(Cell::new(1_733_240_000_000u64));
    let transport = LocalTransport::new(router.clone(), Faults::default(), store);
    SyncEngine::open(memory, transport, EngineConfig::new(store), move || {
        clock.set(clock.get() + 10);
        clock.get()
    })
    .await
    .unwrap()
}

fn new(coll: &str, doc: &str, kind: OpKind, data: Value) -> NewOperation {
    NewOperation {
        id: Uuid::from_u128(rand::random()),
        collection: coll.into(),
        doc_id: doc.into(),
        kind,
        data: data.as_object().unwrap().clone(),
        base_version: None,
        priority: None,
    }
}

async fn post(router: &axum::Router, path: &str, body: Value) -> Value {
    let (status, answer) = call(router, "POST", path, Some(&body.to_string())).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

#[tokio::test]
async fn a_store_learns_how_its_conflict_was_resolved_on_its_next_sync() {
    let router = hub().await;
    post(
        &router,
        "/api/sincronizacion/configuracion/",
        json!({"tienda": 2, "estrategias": {"clientes": "manual"}}),
    )
    .await;
    let central = engine(&router, 0, MemoryStore::new()).await;
    central
        .enqueue(vec![new(
            "clientes",
            "C1",
            OpKind::Create,
            json!({"nombre": "Ana", "telefono": "1"}),
        )])
        .await
        .unwrap();
    central.sync_once().await.unwrap();
    let one = engine(&router, 1, MemoryStore::new()).await;
    let two = engine(&router, 2, MemoryStore::new()).await;
    one.sync_once().await.unwrap();
    two.sync_once().await.unwrap();
    assert_eq!(
        two.get("clientes", "C1").await.unwrap().unwrap().data["telefono"],
        "1"
    );

    one.enqueue(vec![new(
        "clientes",
        "C1",
        OpKind::Update,
        json!({"telefono": "111"}),
    )])
    .await
    .unwrap();
    one.sync_once().await.unwrap();
    let queued = two
        .enqueue(vec![new(
            "clientes",
            "C1",
            OpKind::Update,
            json!({"telefono": "222"}),
        )])
        .await
        .unwrap();
    assert_eq!(queued[0].base_version, 1);
    let s = two.sync_once().await.unwrap();
    assert_eq!((s.conflicts, s.open_conflicts, s.pending), (1, 1, 0));
    let held = two.operations().await.unwrap();
    assert_eq!(held[0].status, OpStatus::Conflict);
    assert!(held[0].has_conflict);
    let open = two.open_conflicts();
    assert_eq!(open[0].objeto_id, "C1");
    assert_eq!(open[0].campos, vec!["telefono".to_owned()]);
    // Meanwhile the store sees the hub's data for the field in conflict.
    assert_eq!(
        two.get("clientes", "C1").await.unwrap().unwrap().data["telefono"],
        "111"
    );

    // An admin merges by hand.
    post(&router, &format!("/api/sincronizacion/cola/{}/resolver/", queued[0].id), json!({"resolucion": "personalizado", "datos": {"nombre": "Ana", "telefono": "111 / 222"}, "usuario": "admin"})).await;
    let s = two.sync_once().await.unwrap();
    assert_eq!((s.settled, s.open_conflicts), (1, 0));
    assert!(
        two.operations().await.unwrap().is_empty(),
        "the resolved operation leaves the queue"
    );
    assert!(two.open_conflicts().is_empty());
    assert_eq!(
        two.get("clientes", "C1").await.unwrap().unwrap().data["telefono"],
        "111 / 222"
    );
    one.sync_once().await.unwrap();
    assert_eq!(
        one.get("clientes", "C1").await.unwrap().unwrap().data["telefono"],
        "111 / 222"
    );
}

#[tokio::test]
async fn a_deferred_sale_leaves_the_queue_once_the_hub_applies_it() {
    let router = hub().await;
    let till = engine(&router, 1, MemoryStore::new()).await;
    till.enqueue(vec![new(
        "ventas",
        "V1",
        OpKind::Create,
        json!({"producto": "NEW", "cantidad": 1, "importe": "2.00"}),
    )])
    .await
    .unwrap();
    let s = till.sync_once().await.unwrap();
    assert_eq!(s.deferred, 1);
    assert_eq!(
        till.operations().await.unwrap()[0].status,
        OpStatus::Deferred
    );
    let central = engine(&router, 0, MemoryStore::new()).await;
    central
        .enqueue(vec![new(
            "productos",
            "NEW",
            OpKind::Create,
            json!({"stock": 3}),
        )])
        .await
        .unwrap();
    central.sync_once().await.unwrap();
    let s = till.sync_once().await.unwrap();
    assert_eq!(s.settled, 1);
    assert!(till.operations().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_engine_obeys_the_hubs_configuration_and_full_resync_orders() {
    let state = pos_sync::hub::AppState::new(pos_sync::hub::Db::memory().await.unwrap());
    let router = pos_sync::hub::app(state.clone(), &Default::default());
    post(&router, "/api/sincronizacion/configuracion/", json!({"tienda": 3, "tamano_lote": 4, "prioridades": {"ventas": 1, "clientes": 9}, "colecciones_cache": ["productos"]})).await;
    let central = engine(&router, 0, MemoryStore::new()).await;
    central
        .enqueue(
            (0..3)
                .map(|i| {
                    new(
                        "productos",
                        &format!("P{i}"),
                        OpKind::Create,
                        json!({"stock": 1}),
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
    central.sync_once().await.unwrap();

    let memory = MemoryStore::new();
    let till = engine(&router, 3, memory.clone()).await;
    let mut ops: Vec<NewOperation> = (0..6)
        .map(|i| {
            new(
                "ventas",
                &format!("V{i}"),
                OpKind::Create,
                json!({"cantidad": 1}),
            )
        })
        .collect();
    ops.push(new(
        "clientes",
        "C9",
        OpKind::Create,
        json!({"nombre": "Eva"}),
    ));
    till.enqueue(ops).await.unwrap();
    let s = till.sync_once().await.unwrap();
    assert_eq!(s.batches, 2, "7 operations in batches of 4");
    assert_eq!(till.config().batch_size, 4);
    // Priorities: the customer (9) went before the sales (1) though it was queued last.
    let (_, listed) = call(&router, "GET", "/api/sincronizacion/cola/?tienda=3", None).await;
    assert_eq!(listed["results"][0]["objeto_id"], "C9");
    // Only the cached collections were pulled: the 3 products, not the customer or the sales.
    assert_eq!(s.pulled, 3);
    assert!(
        till.get("clientes", "C9").await.unwrap().is_none(),
        "customers are not cached for this store"
    );
    assert_eq!(till.list("productos").await.unwrap().len(), 3);
    assert_eq!(till.list("ventas").await.unwrap().len(), 0);

    // A full resync: the next sync drops the cursor and pulls everything again.
    let again = till.sync_once().await.unwrap();
    assert_eq!(again.pulled, 0);
    assert_eq!(state.db.order_full_resync(3).await.unwrap(), 1);
    let resynced = till.sync_once().await.unwrap();
    assert_eq!(resynced.pulled, 3);
    assert_eq!(resynced.cursor, again.cursor);
    // Once obeyed, it is not obeyed again, even after a reopen.
    let reopened = engine(&router, 3, memory).await;
    assert_eq!(reopened.sync_once().await.unwrap().pulled, 0);
    let (status, _) = call(
        &router,
        "POST",
        "/api/sincronizacion/configuracion/",
        Some(&json!({"tienda": 3, "resync": 1}).to_string()),
    )
    .await;
    assert_eq!(
        status.as_u16(),
        400,
        "resync is ordered by the CLI, not by configuration"
    );
}
