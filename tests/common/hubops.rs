//! Helpers for the hub's conflict and queue tests: operations as JSON, pushes and reads
//! through the router.

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};

use super::call;

pub const PUSH: &str = "/api/sincronizacion/cola/";

pub struct Op(pub Value);

/// An operation: `n` makes the id, `clock` is the store's hybrid clock in ms.
#[allow(clippy::too_many_arguments)]
pub fn op(
    n: u32,
    store: u64,
    coll: &str,
    doc: &str,
    kind: &str,
    datos: Value,
    base: u64,
    clock: u64,
) -> Op {
    Op(json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "tienda": store, "coleccion": coll, "objeto_id": doc, "operacion": kind,
        "datos": datos, "version_base": base, "reloj": format!("{clock:013}-00000-{store}"),
    }))
}

pub fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

pub async fn push(router: &Router, store: u64, ops: Vec<Op>) -> Vec<Value> {
    let body =
        json!({"tienda": store, "operaciones": ops.into_iter().map(|o| o.0).collect::<Vec<_>>()})
            .to_string();
    let (status, answer) = call(router, "POST", PUSH, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["resultados"].as_array().unwrap().clone()
}

pub async fn get(router: &Router, path: &str) -> Value {
    let (status, body) = call(router, "GET", path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

pub async fn doc(router: &Router, coll: &str, id: &str) -> Value {
    get(
        router,
        &format!("/api/sincronizacion/documentos/{coll}/{id}/"),
    )
    .await
}

pub async fn configure(router: &Router, config: Value) {
    let (status, body) = call(
        router,
        "POST",
        "/api/sincronizacion/configuracion/",
        Some(&config.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

pub async fn catalog(router: &Router) {
    let r = push(
        router,
        0,
        vec![op(
            1,
            0,
            "productos",
            "P1",
            "crear",
            json!({"nombre": "Silla", "precio": "10.00", "stock": 5}),
            0,
            1_000,
        )],
    )
    .await;
    assert_eq!(r[0]["estado"], "aplicada");
}
