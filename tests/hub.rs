//! In-process tests of the hub's HTTP API (`app()` + `oneshot`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use axum::http::StatusCode;
use common::{call, call_with_type, hub};
use serde_json::{json, Value};

const PUSH: &str = "/api/sincronizacion/cola/";

fn op(id: u32, store: u64, coll: &str, doc: &str, kind: &str, datos: Value) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{id:012}"),
        "tienda": store, "coleccion": coll, "objeto_id": doc, "operacion": kind,
        "datos": datos, "version_base": 0, "reloj": format!("0001733240000000-{id:05}-{store}"),
        "prioridad": 0, "fecha_creacion": "2026-12-03T10:00:00Z"
    })
}

fn batch(store: u64, ops: &[Value]) -> String {
    json!({"tienda": store, "operaciones": ops}).to_string()
}

async fn push(router: &axum::Router, store: u64, ops: &[Value]) -> Value {
    let (status, body) = call(router, "POST", PUSH, Some(&batch(store, ops))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn doc(router: &axum::Router, coll: &str, id: &str) -> Value {
    let (status, body) = call(
        router,
        "GET",
        &format!("/api/sincronizacion/documentos/{coll}/{id}/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn count(router: &axum::Router, query: &str) -> u64 {
    let (status, body) = call(router, "GET", &format!("{PUSH}?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["count"].as_u64().unwrap()
}

#[tokio::test]
async fn a_repushed_batch_changes_nothing_and_gets_its_first_answer() {
    let router = hub().await;
    let ops = [
        op(
            1,
            0,
            "productos",
            "P1",
            "crear",
            json!({"nombre": "Silla", "stock": 5}),
        ),
        op(2, 0, "productos", "P1", "incrementar", json!({"stock": -2})),
        op(3, 0, "productos", "P1", "actualizar", json!({"stock": 1})),
    ];
    let first = push(&router, 0, &ops).await;
    assert_eq!(first["resultados"][0]["estado"], "aplicada");
    assert_eq!(first["resultados"][1]["version"], 2);
    assert_eq!(first["resultados"][2]["estado"], "aplicada");
    let before = doc(&router, "productos", "P1").await;
    assert_eq!(before["datos"]["stock"], 1);
    assert_eq!(before["version"], 3);

    let second = push(&router, 0, &ops).await;
    for (a, b) in first["resultados"]
        .as_array()
        .unwrap()
        .iter()
        .zip(second["resultados"].as_array().unwrap())
    {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["estado"], b["estado"]);
        assert_eq!(a["version"], b["version"]);
        assert_eq!(b["duplicada"], true);
    }
    assert_eq!(doc(&router, "productos", "P1").await, before);
    assert_eq!(count(&router, "").await, 3);
    let (_, logs) = call(&router, "GET", "/api/sincronizacion/registros/", None).await;
    assert_eq!(logs["count"], 2);
    assert_eq!(logs["results"][0]["duplicadas"], 3);
    assert_eq!(logs["results"][0]["aplicadas"], 0);
    assert_eq!(logs["results"][1]["aplicadas"], 3);
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_gets_the_original_result_even_mixed_with_new_work() {
    let router = hub().await;
    push(
        &router,
        0,
        &[op(1, 0, "productos", "P1", "crear", json!({"stock": 10}))],
    )
    .await;
    // The store sends a sale; the hub applies it, but the answer never arrives.
    let sale = op(2, 4, "productos", "P1", "incrementar", json!({"stock": -3}));
    let lost = push(&router, 4, std::slice::from_ref(&sale)).await;
    // Later it sends the same operation again together with a new one.
    let retry = push(
        &router,
        4,
        &[
            sale,
            op(3, 4, "productos", "P1", "incrementar", json!({"stock": -1})),
        ],
    )
    .await;
    assert_eq!(
        retry["resultados"][0]["estado"],
        lost["resultados"][0]["estado"]
    );
    assert_eq!(
        retry["resultados"][0]["version"],
        lost["resultados"][0]["version"]
    );
    assert_eq!(retry["resultados"][0]["duplicada"], true);
    assert!(retry["resultados"][1].get("duplicada").is_none());
    assert_eq!(retry["resultados"][1]["version"], 3);
    assert_eq!(doc(&router, "productos", "P1").await["datos"]["stock"], 6);
}

#[tokio::test]
async fn stock_moves_by_deltas_so_two_stores_selling_2_and_1_of_5_leave_2() {
    let router = hub().await;
    push(
        &router,
        0,
        &[op(1, 0, "productos", "P1", "crear", json!({"stock": 5}))],
    )
    .await;
    push(
        &router,
        1,
        &[op(
            2,
            1,
            "productos",
            "P1",
            "incrementar",
            json!({"stock": -2}),
        )],
    )
    .await;
    push(
        &router,
        2,
        &[op(
            3,
            2,
            "productos",
            "P1",
            "incrementar",
            json!({"stock": -1}),
        )],
    )
    .await;
    let p = doc(&router, "productos", "P1").await;
    assert_eq!(p["datos"]["stock"], 2);
    assert_eq!(p["version"], 3);
}

#[tokio::test]
async fn a_reused_id_with_other_content_is_refused_and_the_first_stands() {
    let router = hub().await;
    push(
        &router,
        0,
        &[op(1, 0, "productos", "P1", "crear", json!({"stock": 5}))],
    )
    .await;
    let forged = op(1, 0, "productos", "P1", "crear", json!({"stock": 500}));
    let answer = push(&router, 0, &[forged]).await;
    assert_eq!(answer["resultados"][0]["estado"], "rechazada");
    assert_eq!(answer["resultados"][0]["codigo"], "id_reutilizado");
    assert_eq!(doc(&router, "productos", "P1").await["datos"]["stock"], 5);
    let (_, listed) = call(&router, "GET", PUSH, None).await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["estado"], "aplicada");
}

#[tokio::test]
async fn repeats_inside_one_batch_are_answered_like_repeats_across_batches() {
    let router = hub().await;
    let create = op(1, 0, "productos", "P1", "crear", json!({"stock": 5}));
    let sale = op(2, 0, "ventas", "V1", "crear", json!({"producto": "P1"}));
    let take = op(3, 0, "productos", "P1", "incrementar", json!({"stock": -2}));
    let forged = op(
        3,
        0,
        "productos",
        "P1",
        "incrementar",
        json!({"stock": -200}),
    );
    // The sale before its product (deferred, then applied once the product exists), the
    // same operation twice, and a reused id, all in one batch.
    let answer = push(
        &router,
        0,
        &[
            sale.clone(),
            create.clone(),
            take.clone(),
            create,
            take,
            forged,
        ],
    )
    .await;
    let results = answer["resultados"].as_array().unwrap();
    let states: Vec<(&str, bool)> = results
        .iter()
        .map(|r| (r["estado"].as_str().unwrap(), r["duplicada"] == true))
        .collect();
    assert_eq!(
        states,
        vec![
            ("diferida", false),
            ("aplicada", false),
            ("aplicada", false),
            ("aplicada", true),
            ("aplicada", true),
            ("rechazada", false),
        ]
    );
    assert_eq!(results[5]["codigo"], "id_reutilizado");
    let p1 = doc(&router, "productos", "P1").await;
    assert_eq!(
        (p1["datos"]["stock"].as_i64(), p1["version"].as_u64()),
        (Some(3), Some(2))
    );
    // The deferred sale was retried before the commit; three operations are recorded once.
    assert_eq!(count(&router, "estado=aplicada").await, 3);
    assert_eq!(count(&router, "").await, 3);
    let (status, page) = call(&router, "GET", "/api/sincronizacion/cambios/?desde=0", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let changes = page["cambios"].as_array().unwrap();
    let ids: Vec<&str> = changes
        .iter()
        .map(|c| c["objeto_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["P1", "V1"], "{page}");
}

#[tokio::test]
async fn operations_that_do_not_fit_are_refused_one_by_one_with_a_reason() {
    let router = hub().await;
    let answer = push(
        &router,
        3,
        &[
            op(1, 3, "productos", "P1", "eliminar", json!({})),
            op(2, 9, "productos", "P2", "crear", json!({"stock": 1})),
            op(3, 3, "productos", "P3", "crear", json!({"stock": 1})),
            op(4, 3, "productos", "P3", "actualizar", json!({})),
            op(
                5,
                3,
                "productos",
                "P3",
                "incrementar",
                json!({"stock": 1.5}),
            ),
        ],
    )
    .await;
    let codes: Vec<&Value> = answer["resultados"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["codigo"])
        .collect();
    assert_eq!(
        codes,
        [
            &json!("no_encontrado"),
            &json!("tienda_incorrecta"),
            &Value::Null,
            &json!("invalida"),
            &json!("invalida")
        ]
    );
    assert_eq!(answer["resultados"][2]["estado"], "aplicada");
    assert!(answer["resultados"][0]["error"]
        .as_str()
        .unwrap()
        .contains("productos/P1"));
    assert_eq!(count(&router, "estado=rechazada").await, 4);
    assert_eq!(count(&router, "estado=aplicada&tienda=3").await, 1);
    assert_eq!(doc(&router, "productos", "P3").await["datos"]["stock"], 1);
}

#[tokio::test]
async fn an_operation_nested_too_deep_is_refused_alone_and_the_rest_of_its_push_applies() {
    let router = hub().await;
    // 33 levels counting `datos` itself: one past the limit, far inside what the hub's JSON
    // reader takes, so the push is read and only that operation is refused.
    let deep = (0..32).fold(json!(1), |inner, _| json!({ "a": inner }));
    let answer = push(
        &router,
        3,
        &[
            op(1, 3, "ventas", "V1", "crear", json!({"a": deep})),
            op(2, 3, "ventas", "V2", "crear", json!({"cantidad": 1})),
        ],
    )
    .await;
    let results = &answer["resultados"];
    assert_eq!(results[0]["estado"], "rechazada");
    assert_eq!(results[0]["codigo"], "invalida");
    assert_eq!(
        results[0]["error"],
        "datos: nests objects and arrays more than 32 levels deep"
    );
    assert_eq!(results[1]["estado"], "aplicada");
    assert_eq!(count(&router, "estado=aplicada&tienda=3").await, 1);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_nothing_is_applied() {
    let router = hub().await;
    // Malformed JSON.
    let (status, body) = call(
        &router,
        "POST",
        PUSH,
        Some(r#"{"tienda": 1, "operaciones": [ "#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "parse_error");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .starts_with("JSON parse error"));
    // Text that is not JSON stays a parse error even when a field before the break has the
    // wrong shape, and so does JSON followed by anything else.
    for text in [
        r#"{"tienda": "uno", "operaciones": [ "#,
        r#"{"tienda": 1, "operaciones": [{"id": 5}, ]}"#,
        r#"{"tienda": 1, "operaciones": []} {"#,
    ] {
        let (status, body) = call(&router, "POST", PUSH, Some(text)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert_eq!(body["code"], "parse_error", "{text}: {body}");
    }
    // The wrong shape names the field; the good operation beside it is not applied.
    let good = op(1, 1, "productos", "P1", "crear", json!({}));
    let mut bad = op(2, 1, "productos", "P2", "borrar", json!({}));
    bad["operacion"] = json!("borrar");
    let (status, body) = call(&router, "POST", PUSH, Some(&batch(1, &[good.clone(), bad]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["operaciones[1].operacion"][0].as_str().unwrap();
    assert!(message.contains("borrar"), "{body}");
    // A missing field.
    let (status, body) = call(&router, "POST", PUSH, Some(r#"{"operaciones": []}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["non_field_errors"][0]
            .as_str()
            .unwrap()
            .contains("tienda"),
        "{body}"
    );
    // An oversized batch.
    let many: Vec<Value> = (0..1001)
        .map(|i| op(10 + i, 1, "ventas", &format!("v{i}"), "crear", json!({})))
        .collect();
    let (status, body) = call(&router, "POST", PUSH, Some(&batch(1, &many))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "lote_demasiado_grande");
    assert!(body["detail"].as_str().unwrap().contains("1000"));
    // A body that is not JSON at all.
    let (status, body) = call_with_type(
        &router,
        "POST",
        PUSH,
        Some("tienda=1"),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "unsupported_media_type");
    // A body past the byte limit.
    let huge = format!(
        r#"{{"tienda": 1, "operaciones": [], "x": "{}"}}"#,
        "a".repeat(17 * 1024 * 1024)
    );
    let (status, _) = call(&router, "POST", PUSH, Some(&huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(count(&router, "").await, 0);
    let (_, logs) = call(&router, "GET", "/api/sincronizacion/registros/", None).await;
    assert_eq!(logs["count"], 0);
    let (status, _) = call(
        &router,
        "GET",
        "/api/sincronizacion/documentos/productos/P1/",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pulling_page_by_page_sees_every_change_once_including_deletes() {
    let router = hub().await;
    let mut ops: Vec<Value> = (0..7)
        .map(|i| {
            op(
                i + 1,
                0,
                "productos",
                &format!("P{i}"),
                "crear",
                json!({"stock": i}),
            )
        })
        .collect();
    ops.push(op(
        20,
        0,
        "clientes",
        "C1",
        "crear",
        json!({"nombre": "Ana"}),
    ));
    push(&router, 0, &ops).await;
    push(
        &router,
        0,
        &[
            op(21, 0, "productos", "P3", "eliminar", json!({})),
            op(22, 0, "productos", "P5", "incrementar", json!({"stock": 1})),
        ],
    )
    .await;

    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let (status, page) = call(
            &router,
            "GET",
            &format!("/api/sincronizacion/cambios/?desde={cursor}&limite=3&coleccion=productos"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for c in page["cambios"].as_array().unwrap() {
            assert!(c["seq"].as_u64().unwrap() > cursor);
            seen.push((
                c["objeto_id"].as_str().unwrap().to_owned(),
                c["eliminado"].as_bool().unwrap(),
                c["datos"]["stock"].clone(),
            ));
        }
        cursor = page["cursor"].as_u64().unwrap();
        if !page["hay_mas"].as_bool().unwrap() {
            break;
        }
    }
    // Seven products, each once, in their latest state; the deleted one as a tombstone.
    assert_eq!(seen.len(), 7);
    assert!(seen.contains(&("P3".into(), true, Value::Null)));
    assert!(seen.contains(&("P5".into(), false, json!(6))));
    assert!(!seen.iter().any(|(id, _, _)| id == "C1"));
    assert_eq!(
        cursor, 10,
        "the cursor ends at the hub's last commit, past the filtered-out customer"
    );

    let (_, rest) = call(
        &router,
        "GET",
        &format!("/api/sincronizacion/cambios/?desde={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest, json!({"cambios": [], "cursor": 10, "hay_mas": false}));
    let (status, body) = call(
        &router,
        "GET",
        "/api/sincronizacion/cambios/?desde=-1",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.get("desde").is_some());
}

#[tokio::test]
async fn the_queue_list_filters_and_pages_like_drf() {
    let router = hub().await;
    push(
        &router,
        0,
        &[op(1, 0, "productos", "P1", "crear", json!({"stock": 1}))],
    )
    .await;
    for store in 1..=3u64 {
        let ops: Vec<Value> = (0..4)
            .map(|i| {
                op(
                    100 * store as u32 + i,
                    store,
                    "ventas",
                    &format!("v{store}-{i}"),
                    "crear",
                    json!({"cantidad": 1}),
                )
            })
            .collect();
        push(&router, store, &ops).await;
    }
    assert_eq!(count(&router, "tienda=2").await, 4);
    assert_eq!(count(&router, "tiene_conflicto=true").await, 0);
    assert_eq!(count(&router, "tiene_conflicto=False").await, 13);
    assert_eq!(count(&router, "coleccion=productos").await, 1);
    let (_, page) = call(&router, "GET", &format!("{PUSH}?tienda=3&limit=3"), None).await;
    assert_eq!(page["results"].as_array().unwrap().len(), 3);
    assert_eq!(
        page["next"],
        "http://hub.test/api/sincronizacion/cola/?tienda=3&limit=3&offset=3"
    );
    assert_eq!(page["previous"], Value::Null);
    assert_eq!(page["results"][0]["objeto_id"], "v3-0");
    assert_eq!(page["results"][0]["tienda"], 3);
    assert_eq!(page["results"][0]["intentos"], 1);
    let (_, last) = call(
        &router,
        "GET",
        &format!("{PUSH}?tienda=3&limit=3&offset=3"),
        None,
    )
    .await;
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert_eq!(last["next"], Value::Null);
    assert_eq!(
        last["previous"],
        "http://hub.test/api/sincronizacion/cola/?tienda=3&limit=3"
    );
    let (status, body) = call(
        &router,
        "GET",
        &format!("{PUSH}?tiene_conflicto=quizas"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["tiene_conflicto"][0]
        .as_str()
        .unwrap()
        .contains("quizas"));
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let router = hub().await;
    let (status, body) = call(&router, "GET", "/api/salud/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["estado"], "ok");
    push(
        &router,
        0,
        &[
            op(1, 0, "productos", "P1", "crear", json!({})),
            op(2, 0, "productos", "P2", "eliminar", json!({})),
        ],
    )
    .await;
    let (_, m) = call(&router, "GET", "/api/metricas/", None).await;
    assert_eq!(m["operaciones"], json!({"aplicada": 1, "rechazada": 1}));
    assert_eq!(m["documentos"], 1);
    assert_eq!(m["registros"], 1);
}

#[tokio::test]
async fn the_server_shuts_down_gracefully_on_a_real_socket() {
    use pos_sync::hub::{app, run, AppState, Db, HubOptions};
    let dir = std::env::temp_dir().join(format!("pos-sync-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("graceful.db");
    let _ = std::fs::remove_file(&path);
    let db = Db::open(&path).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(db);
    // Kept to close the database before its directory is removed: a pool dropped with the
    // server closes its connections in the background, writing as it goes.
    let db = state.db.clone();
    let server = tokio::spawn(run(listener, app(state, &HubOptions::default()), async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /api/salud/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(path.exists());
    db.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_database_file_deleted_under_the_hub_fails_writes_and_health_instead_of_losing_them() {
    use pos_sync::hub::{app, AppState, Db, HubOptions};
    let dir = std::env::temp_dir().join(format!("pos-sync-deleted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.db");
    let state = AppState::new(Db::open(&path).await.unwrap());
    let db = state.db.clone();
    let router = app(state, &HubOptions::default());
    push(
        &router,
        0,
        &[op(1, 0, "productos", "P1", "crear", json!({"stock": 5}))],
    )
    .await;
    for f in ["hub.db", "hub.db-wal", "hub.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let body = batch(
        0,
        &[op(2, 0, "productos", "P2", "crear", json!({"stock": 1}))],
    );
    let (status, answer) = call(&router, "POST", PUSH, Some(&body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["code"], "no_disponible");
    assert!(answer["detail"]
        .as_str()
        .unwrap()
        .contains("removed or replaced"));
    let (status, health) = call(&router, "GET", "/api/salud/", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["estado"], "error");
    // A new empty file at the same path is not the database either.
    std::fs::write(&path, b"").unwrap();
    let (status, _) = call(&router, "POST", PUSH, Some(&body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    db.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_shape() {
    let router = hub().await;
    let (status, body) = call(&router, "DELETE", PUSH, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed");
    assert!(body["detail"].as_str().unwrap().contains("DELETE"));
    let (status, body) = call(&router, "GET", "/api/salud", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["detail"],
        "No API endpoint at /api/salud. API paths end with a slash."
    );
}
