//! Chained pushes (`despues_de`): a store sends its next batch before the answer to the one
//! before it; the hub applies it only once that one is recorded, so the order holds.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use common::call;
use common::hubops::{doc, get, id, op, Op, PUSH};
use pos_sync::hub::{app, AppState, Db, HubOptions};
use serde_json::json;

async fn hub_waiting(wait: Duration) -> Router {
    let mut state = AppState::new(Db::memory().await.unwrap());
    state.predecessor_wait = wait;
    app(state, &HubOptions::default())
}

fn body(store: u64, ops: Vec<Op>, after: Option<u32>) -> String {
    let ops: Vec<_> = ops.into_iter().map(|o| o.0).collect();
    let mut b = json!({"tienda": store, "operaciones": ops});
    if let Some(n) = after {
        b["despues_de"] = json!(id(n));
    }
    b.to_string()
}

/// Operation 1 of store 3: it creates customer C1.
fn create_c1() -> Op {
    op(
        1,
        3,
        "clientes",
        "C1",
        "crear",
        json!({"nombre": "Ana"}),
        0,
        1_000,
    )
}

/// The second batch updates the document the first creates: applied first, it would be
/// deferred (no such document yet) instead of applied as version 2.
fn batches() -> (String, String) {
    let first = body(3, vec![create_c1()], None);
    let second = body(
        3,
        vec![op(
            2,
            3,
            "clientes",
            "C1",
            "actualizar",
            json!({"telefono": "555"}),
            1,
            1_001,
        )],
        Some(1),
    );
    (first, second)
}

#[tokio::test]
async fn a_chained_push_waits_for_the_operation_it_names_then_applies_after_it() {
    let router = hub_waiting(Duration::from_secs(20)).await;
    let (first, second) = batches();
    // The chained batch arrives first.
    let early = tokio::spawn({
        let router = router.clone();
        async move { call(&router, "POST", PUSH, Some(&second)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!early.is_finished(), "it must wait for operation 1");
    assert_eq!(
        get(&router, &format!("{PUSH}?tienda=3")).await["count"],
        0,
        "nothing of it is applied while it waits"
    );

    let (status, answer) = call(&router, "POST", PUSH, Some(&first)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, late) = tokio::time::timeout(Duration::from_secs(10), early)
        .await
        .expect("it follows as soon as operation 1 is recorded")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{late}");
    assert_eq!(late["resultados"][0]["estado"], "aplicada", "{late}");
    assert_eq!(late["resultados"][0]["version"], 2);
    assert!(
        late["registro"].as_i64() > answer["registro"].as_i64(),
        "recorded after the batch it waited for: {answer} {late}"
    );
    let c1 = doc(&router, "clientes", "C1").await;
    assert_eq!(c1["datos"], json!({"nombre": "Ana", "telefono": "555"}));

    // Once the predecessor is there, a chained push goes straight through; a re-sent one is
    // answered as a duplicate.
    let (status, again) = call(&router, "POST", PUSH, Some(&batches().1)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["resultados"][0]["duplicada"], true, "{again}");
}

#[tokio::test]
async fn a_chained_push_whose_predecessor_never_arrives_is_refused_with_nothing_applied() {
    let router = hub_waiting(Duration::from_millis(150)).await;
    let (first, second) = batches();
    let (status, refused) = call(&router, "POST", PUSH, Some(&second)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "predecesor_ausente");
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains(&id(1)) && detail.contains("150 ms"),
        "{detail}"
    );
    let listed = get(&router, &format!("{PUSH}?tienda=3")).await;
    assert_eq!(listed["count"], 0, "{listed}");

    // An operation of another store does not count as this store's predecessor.
    let other = body(
        4,
        vec![op(7, 4, "clientes", "C9", "crear", json!({}), 0, 1_000)],
        None,
    );
    let (status, answer) = call(&router, "POST", PUSH, Some(&other)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let foreign = body(
        3,
        vec![op(8, 3, "clientes", "C2", "crear", json!({}), 0, 1_002)],
        Some(7),
    );
    let (status, refused) = call(&router, "POST", PUSH, Some(&foreign)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    // Sent again once the batch before it is recorded, it is applied.
    let (status, answer) = call(&router, "POST", PUSH, Some(&first)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, late) = call(&router, "POST", PUSH, Some(&second)).await;
    assert_eq!(status, StatusCode::OK, "{late}");
    assert_eq!(late["resultados"][0]["estado"], "aplicada", "{late}");
}

#[tokio::test]
async fn a_push_chained_to_one_that_failed_here_is_refused_at_once() {
    // A wait far longer than the test may take: an answer inside it did not wait it out.
    let mut state = AppState::new(Db::memory().await.unwrap());
    state.predecessor_wait = Duration::from_secs(60);
    state.max_batch = 2;
    let router = app(state, &HubOptions::default());
    let (_, second) = batches();
    let waiting = tokio::spawn({
        let router = router.clone();
        let second = second.clone();
        async move { call(&router, "POST", PUSH, Some(&second)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "it waits for operation 1");

    // The batch ending with operation 1 is refused as too large: nothing of it is recorded.
    let too_large = body(
        3,
        vec![
            op(10, 3, "clientes", "C8", "crear", json!({}), 0, 990),
            op(11, 3, "clientes", "C9", "crear", json!({}), 0, 991),
            create_c1(),
        ],
        None,
    );
    let (status, refused) = call(&router, "POST", PUSH, Some(&too_large)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{refused}");
    let (status, refused) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("refused as soon as its predecessor's push failed, not after 60 s")
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "predecesor_ausente");
    assert!(
        refused["detail"].as_str().unwrap().contains("failed"),
        "{refused}"
    );
    // One chained to it later is refused at once too; nothing of either is applied.
    let (status, refused) = tokio::time::timeout(
        Duration::from_secs(20),
        call(&router, "POST", PUSH, Some(&second)),
    )
    .await
    .expect("refused at once");
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(get(&router, &format!("{PUSH}?tienda=3")).await["count"], 0);

    // Sent again (itself chained, to an operation still to come), operation 1 is waited for
    // once more: a push chained to it waits, and follows it.
    let resent = body(3, vec![create_c1()], Some(99));
    let resent = tokio::spawn({
        let router = router.clone();
        async move { call(&router, "POST", PUSH, Some(&resent)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chained_again = tokio::spawn({
        let router = router.clone();
        async move { call(&router, "POST", PUSH, Some(&second)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !chained_again.is_finished(),
        "it waits for operation 1 again"
    );
    let ninety_nine = body(
        3,
        vec![op(99, 3, "clientes", "C7", "crear", json!({}), 0, 999)],
        None,
    );
    let (status, answer) = call(&router, "POST", PUSH, Some(&ninety_nine)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = resent.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, late) = chained_again.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{late}");
    assert_eq!(late["resultados"][0]["estado"], "aplicada", "{late}");
    assert_eq!(late["resultados"][0]["version"], 2, "{late}");
}
