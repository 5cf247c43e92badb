//! The hub-side queue and configuration: deferral of missing references, integrity
//! conflicts after the allowed attempts, per-store configuration, and the `sincronizar` command.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use axum::http::StatusCode;
use common::hubops::*;
use common::{call, hub};
use serde_json::{json, Value};

#[tokio::test]
async fn a_sale_of_an_unknown_product_is_deferred_then_applied_when_the_product_arrives() {
    let router = hub().await;
    let sale = vec![
        op(
            10,
            1,
            "ventas",
            "V1",
            "crear",
            json!({"producto": "NEW", "cantidad": 2, "importe": "5.00"}),
            0,
            1_000,
        ),
        op(
            11,
            1,
            "productos",
            "NEW",
            "incrementar",
            json!({"stock": -2}),
            0,
            1_001,
        ),
    ];
    let r = push(&router, 1, sale).await;
    assert_eq!(r[0]["estado"], "diferida");
    assert_eq!(r[0]["codigo"], "referencia_pendiente");
    assert_eq!(r[1]["estado"], "diferida");
    assert_eq!(
        get(&router, "/api/sincronizacion/cambios/?coleccion=ventas").await["cambios"],
        json!([])
    );
    // The product arrives from the central office: both wait no more.
    push(
        &router,
        0,
        vec![op(
            12,
            0,
            "productos",
            "NEW",
            "crear",
            json!({"nombre": "Nuevo", "stock": 10}),
            0,
            2_000,
        )],
    )
    .await;
    let ops = get(&router, &format!("{PUSH}?tienda=1")).await;
    let states: Vec<&str> = ops["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["estado"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["aplicada", "aplicada"]);
    assert_eq!(ops["results"][0]["intentos"], 2);
    assert_eq!(doc(&router, "productos", "NEW").await["datos"]["stock"], 8);
    assert_eq!(doc(&router, "ventas", "V1").await["datos"]["cantidad"], 2);
}

#[tokio::test]
async fn after_the_allowed_attempts_a_deferred_operation_becomes_an_integrity_conflict() {
    let db = pos_sync::hub::Db::memory().await.unwrap();
    let state = pos_sync::hub::AppState::new(db);
    let router = pos_sync::hub::app(state.clone(), &Default::default());
    configure(&router, json!({"tienda": 1, "intentos_integridad": 3})).await;
    push(
        &router,
        1,
        vec![op(
            20,
            1,
            "clientes",
            "GONE",
            "actualizar",
            json!({"telefono": "9"}),
            4,
            1_000,
        )],
    )
    .await;
    // `procesar` processes one operation now (attempt 2).
    let (status, one) = call(
        &router,
        "POST",
        &format!("{PUSH}{}/procesar/", id(20)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["estado"], "diferida");
    assert_eq!(one["intentos"], 2);
    // The hub-side queue (what `pos-sync-hub sincronizar` runs): attempt 3 is the last.
    let run = state.db.process_queue(None, 0).await.unwrap();
    assert_eq!((run.procesadas, run.conflictos), (1, 1));
    let held = get(&router, &format!("{PUSH}?tiene_conflicto=true")).await;
    assert_eq!(held["results"][0]["estado"], "conflicto");
    let c = get(&router, "/api/sincronizacion/conflictos/?tipo=integridad").await;
    assert_eq!(c["count"], 1);
    // Processing a conflict is refused: only deferred operations are processed.
    let (status, refused) = call(
        &router,
        "POST",
        &format!("{PUSH}{}/procesar/", id(20)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    // The admin writes the store's data anyway (the customer was re-registered).
    let body = json!({"conflicto": c["results"][0]["id"], "resolucion": "personalizado", "datos": {"nombre": "Luis", "telefono": "9"}, "usuario": "marta"});
    let (status, resolved) = call(
        &router,
        "POST",
        "/api/sincronizacion/conflictos/",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(
        doc(&router, "clientes", "GONE").await["datos"],
        json!({"nombre": "Luis", "telefono": "9"})
    );
}

#[tokio::test]
async fn invalid_configuration_gets_a_400_naming_the_field_and_nothing_is_saved() {
    let router = hub().await;
    configure(&router, json!({"tienda": 4, "tamano_lote": 50})).await;
    for (bad, field) in [
        (json!({"tienda": 4, "tamano_lote": 0}), "tamano_lote"),
        (
            json!({"tienda": 4, "estrategias": {"productos": "gana"}}),
            "estrategias.productos",
        ),
        (
            json!({"tienda": 4, "prioridades": {"Bad Name": 1}}),
            "prioridades",
        ),
        (json!({"tamano_lote": 5}), "tienda"),
        (json!({"tienda": 4, "inventado": 1}), "inventado"),
        (json!({"tienda": 4, "resync": 9}), "resync"),
    ] {
        let (status, body) = call(
            &router,
            "POST",
            "/api/sincronizacion/configuracion/",
            Some(&bad.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.get(field).is_some(), "{bad}: {body}");
    }
    let saved = get(&router, "/api/sincronizacion/configuracion/4/").await;
    assert_eq!(saved["tamano_lote"], 50);
    assert_eq!(saved["estrategias"]["productos"], "campos");
    assert_eq!(
        get(&router, "/api/sincronizacion/configuracion/").await["count"],
        1
    );
    assert_eq!(
        get(&router, "/api/sincronizacion/configuracion/9/").await["tamano_lote"],
        500,
        "defaults for an unknown store"
    );
}

#[tokio::test]
async fn the_sincronizar_command_processes_the_queue_and_orders_full_resyncs() {
    let dir = std::env::temp_dir().join(format!("pos-sync-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.db");
    {
        let state = pos_sync::hub::AppState::new(pos_sync::hub::Db::open(&path).await.unwrap());
        // Closed before the command opens the file, and before its directory is removed.
        let db = state.db.clone();
        let router = pos_sync::hub::app(state, &Default::default());
        push(
            &router,
            1,
            vec![op(
                1,
                1,
                "productos",
                "LATE",
                "incrementar",
                json!({"stock": -1}),
                0,
                1_000,
            )],
        )
        .await;
        db.close().await;
    }
    let bin = env!("CARGO_BIN_EXE_pos-sync-hub");
    let out = std::process::Command::new(bin)
        .args(["sincronizar", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        run,
        json!({"procesadas": 1, "aplicadas": 0, "diferidas": 1, "conflictos": 0, "rechazadas": 0})
    );
    let out = std::process::Command::new(bin)
        .args(["sincronizar", "--completa", "--tienda=3", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"tienda": 3, "resync": 1})
    );
    let missing = std::process::Command::new(bin)
        .args(["sincronizar", "--db"])
        .arg(dir.join("nope.db"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_configuration_update_merges_into_the_maps_and_inconsistent_or_huge_ones_are_refused() {
    let router = hub().await;
    configure(
        &router,
        json!({"tienda": 3, "estrategias": {"clientes": "manual"}}),
    )
    .await;
    let c = get(&router, "/api/sincronizacion/configuracion/3/").await;
    assert_eq!(
        c["estrategias"],
        json!({"clientes": "manual", "productos": "campos", "ventas": "servidor"}),
        "the defaults stay"
    );
    configure(&router, json!({"tienda": 3, "estrategias": {"clientes": null}, "reglas": {"productos": {"precio": null}}})).await;
    let c = get(&router, "/api/sincronizacion/configuracion/3/").await;
    assert_eq!(
        c["estrategias"],
        json!({"productos": "campos", "ventas": "servidor"}),
        "null removes a key"
    );
    assert_eq!(
        c["reglas"]["productos"],
        json!({"nombre": "ultimo", "stock": "suma"})
    );
    let many: serde_json::Map<String, Value> =
        (0..201).map(|i| (format!("c{i}"), json!(1))).collect();
    for (bad, field) in [
        (
            json!({"tienda": 3, "reglas": {"prodcutos": {"stock": "max"}}}),
            "reglas",
        ),
        (
            json!({"tienda": 3, "colecciones_cache": ["a", "a"]}),
            "colecciones_cache",
        ),
        (json!({"tienda": 3, "prioridades": many}), "prioridades"),
        (
            json!({"tienda": 3, "referencias": {"ventas": {"venta": "ventas"}}}),
            "referencias",
        ),
    ] {
        let (status, body) = call(
            &router,
            "POST",
            "/api/sincronizacion/configuracion/",
            Some(&bad.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.get(field).is_some(), "{body}");
    }
    let huge = json!({"tienda": 3, "x": "a".repeat(70_000)}).to_string();
    let (status, body) = call(
        &router,
        "POST",
        "/api/sincronizacion/configuracion/",
        Some(&huge),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        get(&router, "/api/sincronizacion/configuracion/3/").await,
        c,
        "nothing changed"
    );
}

#[tokio::test]
async fn one_allowed_attempt_makes_the_push_an_integrity_conflict_that_keeps_its_cause() {
    let router = hub().await;
    configure(&router, json!({"tienda": 1, "intentos_integridad": 1})).await;
    let r = push(
        &router,
        1,
        vec![op(
            30,
            1,
            "productos",
            "GHOST",
            "incrementar",
            json!({"stock": -3}),
            0,
            1_000,
        )],
    )
    .await;
    assert_eq!(r[0]["estado"], "conflicto");
    assert!(
        r[0]["error"].as_str().unwrap().contains("does not exist"),
        "{}",
        r[0]
    );
    // Keeping the store's data would create the product at -3, below its floor: refused.
    let c = get(&router, "/api/sincronizacion/conflictos/?tipo=integridad").await;
    let body = json!({"conflicto": c["results"][0]["id"], "resolucion": "local", "usuario": "ana"});
    let (status, answer) = call(
        &router,
        "POST",
        "/api/sincronizacion/conflictos/",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["resolucion"][0].as_str().unwrap().contains("floor"));
    // Malformed resolutions name their field.
    let id = c["results"][0]["id"].clone();
    for (bad, field) in [
        (
            json!({"conflicto": id, "resolucion": "servidor", "datos": {"stock": 0}, "usuario": "ana"}),
            "datos",
        ),
        (
            json!({"conflicto": id, "resolucion": "personalizado", "datos": {}, "usuario": "ana"}),
            "datos",
        ),
        (
            json!({"conflicto": id, "resolucion": "servidor"}),
            "usuario",
        ),
        (
            json!({"conflicto": id, "resolucion": "servidor", "usuario": "x".repeat(151)}),
            "usuario",
        ),
    ] {
        let (status, answer) = call(
            &router,
            "POST",
            "/api/sincronizacion/conflictos/",
            Some(&bad.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert!(answer.get(field).is_some(), "{answer}");
    }
    // Bad path parameters answer in the JSON error shape.
    for path in [
        "/api/sincronizacion/conflictos/abc/",
        "/api/sincronizacion/configuracion/abc/",
    ] {
        let (status, answer) = call(&router, "GET", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(answer["code"], "not_found", "{answer}");
    }
    let (status, answer) = call(
        &router,
        "POST",
        &format!("{PUSH}not-a-uuid/procesar/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sincronizar_waits_for_a_busy_hub_instead_of_failing() {
    let dir = std::env::temp_dir().join(format!("pos-sync-busy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.db");
    let state = pos_sync::hub::AppState::new(pos_sync::hub::Db::open(&path).await.unwrap());
    // Closed before its directory is removed.
    let db = state.db.clone();
    let router = pos_sync::hub::app(state, &Default::default());
    push(
        &router,
        0,
        vec![op(
            1,
            0,
            "productos",
            "P",
            "crear",
            json!({"stock": 1_000_000}),
            0,
            1,
        )],
    )
    .await;
    let writer = {
        let router = router.clone();
        tokio::spawn(async move {
            for round in 0..40u32 {
                let ops = (0..50)
                    .map(|i| {
                        op(
                            1000 + round * 50 + i,
                            1,
                            "productos",
                            "P",
                            "incrementar",
                            json!({"stock": -1}),
                            0,
                            2 + u64::from(i),
                        )
                    })
                    .collect();
                push(&router, 1, ops).await;
            }
        })
    };
    let bin = env!("CARGO_BIN_EXE_pos-sync-hub");
    for _ in 0..5 {
        let db = path.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin)
                .args(["sincronizar", "--db"])
                .arg(&db)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    writer.await.unwrap();
    assert_eq!(
        doc(&router, "productos", "P").await["datos"]["stock"],
        1_000_000 - 2000
    );
    db.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sale names its product: the push reads only whether each product exists, and a deleted
/// one counts as missing, as a live one counts as there.
#[tokio::test]
async fn a_sale_of_a_deleted_product_waits_and_one_of_a_live_product_applies() {
    let router = hub().await;
    push(
        &router,
        0,
        vec![
            op(
                1,
                0,
                "productos",
                "VIVO",
                "crear",
                json!({"stock": 5}),
                0,
                1_000,
            ),
            op(
                2,
                0,
                "productos",
                "BAJA",
                "crear",
                json!({"stock": 5}),
                0,
                1_001,
            ),
            op(3, 0, "productos", "BAJA", "eliminar", json!({}), 1, 1_002),
        ],
    )
    .await;
    let sale = |n: u32, product: &str| {
        op(
            n,
            1,
            "ventas",
            &format!("V{n}"),
            "crear",
            json!({"producto": product, "cantidad": 1, "importe": "1.00"}),
            0,
            2_000 + u64::from(n),
        )
    };
    let r = push(&router, 1, vec![sale(10, "BAJA"), sale(11, "VIVO")]).await;
    assert_eq!(
        (r[0]["estado"].as_str(), r[0]["codigo"].as_str()),
        (Some("diferida"), Some("referencia_pendiente")),
        "{r:?}"
    );
    assert_eq!(r[1]["estado"], "aplicada", "{r:?}");
    assert_eq!(
        doc(&router, "ventas", "V11").await["datos"]["producto"],
        "VIVO"
    );
}
