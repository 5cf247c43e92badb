//! The hub's conflict cases: detection, resolution by rule, deferral, floors, manual
//! resolution, configuration and the `sincronizar` command.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use axum::http::StatusCode;
use axum::Router;
use common::{call, hub};
use serde_json::{json, Value};

const PUSH: &str = "/api/sincronizacion/cola/";

struct Op(Value);

/// An operation: `n` makes the id, `clock` is the store's hybrid clock in ms.
#[allow(clippy::too_many_arguments)]
fn op(
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

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

async fn push(router: &Router, store: u64, ops: Vec<Op>) -> Vec<Value> {
    let body =
        json!({"tienda": store, "operaciones": ops.into_iter().map(|o| o.0).collect::<Vec<_>>()})
            .to_string();
    let (status, answer) = call(router, "POST", PUSH, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["resultados"].as_array().unwrap().clone()
}

async fn get(router: &Router, path: &str) -> Value {
    let (status, body) = call(router, "GET", path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

async fn doc(router: &Router, coll: &str, id: &str) -> Value {
    get(
        router,
        &format!("/api/sincronizacion/documentos/{coll}/{id}/"),
    )
    .await
}

async fn configure(router: &Router, config: Value) {
    let (status, body) = call(
        router,
        "POST",
        "/api/sincronizacion/configuracion/",
        Some(&config.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn catalog(router: &Router) {
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

#[tokio::test]
async fn concurrent_edits_to_different_fields_merge_without_a_conflict() {
    let router = hub().await;
    catalog(&router).await;
    let a = push(
        &router,
        1,
        vec![op(
            2,
            1,
            "productos",
            "P1",
            "actualizar",
            json!({"precio": "12.00"}),
            1,
            2_000,
        )],
    )
    .await;
    let b = push(
        &router,
        2,
        vec![op(
            3,
            2,
            "productos",
            "P1",
            "actualizar",
            json!({"nombre": "Silla roja"}),
            1,
            2_001,
        )],
    )
    .await;
    assert_eq!(
        (a[0]["estado"].as_str(), b[0]["estado"].as_str()),
        (Some("aplicada"), Some("aplicada"))
    );
    assert!(b[0].get("conflicto").is_none(), "{}", b[0]);
    let p = doc(&router, "productos", "P1").await;
    assert_eq!(
        p["datos"],
        json!({"nombre": "Silla roja", "precio": "12.00", "stock": 5})
    );
    assert_eq!(p["version"], 3);
    assert_eq!(
        get(&router, "/api/sincronizacion/conflictos/").await["count"],
        0
    );
}

#[tokio::test]
async fn edits_to_the_same_field_conflict_and_wait_for_an_admin_under_manual() {
    let router = hub().await;
    configure(
        &router,
        json!({"tienda": 2, "estrategias": {"clientes": "manual"}}),
    )
    .await;
    push(
        &router,
        0,
        vec![op(
            1,
            0,
            "clientes",
            "C1",
            "crear",
            json!({"nombre": "Ana", "telefono": "1"}),
            0,
            1_000,
        )],
    )
    .await;
    push(
        &router,
        1,
        vec![op(
            2,
            1,
            "clientes",
            "C1",
            "actualizar",
            json!({"telefono": "222"}),
            1,
            2_000,
        )],
    )
    .await;
    let r = push(
        &router,
        2,
        vec![op(
            3,
            2,
            "clientes",
            "C1",
            "actualizar",
            json!({"telefono": "333", "nombre": "Ana"}),
            1,
            2_500,
        )],
    )
    .await;
    assert_eq!(r[0]["estado"], "conflicto");
    assert_eq!(
        r[0]["conflicto"]["campos"],
        json!(["telefono"]),
        "nombre was not changed on the hub since version 1"
    );
    // The document is untouched while the conflict is open, and the queue lists it.
    assert_eq!(
        doc(&router, "clientes", "C1").await["datos"]["telefono"],
        "222"
    );
    let listed = get(&router, "/api/sincronizacion/cola/?tiene_conflicto=true").await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["id"], id(3));
    let open = get(
        &router,
        "/api/sincronizacion/conflictos/?estado=abierto&tienda=2",
    )
    .await;
    assert_eq!(open["count"], 1);
    let c = &open["results"][0];
    assert_eq!(c["tipo"], "campos");
    assert_eq!(c["datos_servidor"]["telefono"], "222");
    assert_eq!(c["datos_tienda"]["telefono"], "333");

    // The admin keeps the store's data.
    let body = json!({"resolucion": "local", "usuario": "marta"}).to_string();
    let (status, resolved) = call(
        &router,
        "POST",
        &format!("{PUSH}{}/resolver/", id(3)),
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["estado"], "resuelto");
    assert_eq!(resolved["resuelto_por"], "marta");
    assert_eq!(resolved["resolucion"], "local");
    assert_eq!(resolved["datos_antes"]["telefono"], "222");
    assert_eq!(resolved["datos_despues"]["telefono"], "333");
    assert!(resolved["fecha_resolucion"]
        .as_str()
        .unwrap()
        .starts_with("20"));
    let c1 = doc(&router, "clientes", "C1").await;
    assert_eq!(c1["datos"], json!({"nombre": "Ana", "telefono": "333"}));
    assert_eq!(c1["version"], 3);
    // The operation is applied now, and the change is in the feed for every store.
    let op3 = get(&router, &format!("{PUSH}?tienda=2")).await;
    assert_eq!(op3["results"][0]["estado"], "aplicada");
    assert_eq!(op3["results"][0]["tiene_conflicto"], false);
    let feed = get(&router, "/api/sincronizacion/cambios/?coleccion=clientes").await;
    assert_eq!(feed["cambios"][0]["version"], 3);
    // A second resolution is refused.
    let (status, again) = call(
        &router,
        "POST",
        &format!("{PUSH}{}/resolver/", id(3)),
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{again}");
    let body =
        json!({"conflicto": c["id"], "resolucion": "servidor", "usuario": "marta"}).to_string();
    let (status, again) = call(
        &router,
        "POST",
        "/api/sincronizacion/conflictos/",
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["code"], "ya_resuelto");
}

#[tokio::test]
async fn rules_resolve_at_once_server_wins_and_per_field_sum() {
    let router = hub().await;
    catalog(&router).await;
    // productos: per field; stock sums both sides' changes, precio keeps the hub's.
    push(
        &router,
        1,
        vec![op(
            2,
            1,
            "productos",
            "P1",
            "actualizar",
            json!({"stock": 3, "precio": "11.00"}),
            1,
            2_000,
        )],
    )
    .await;
    let mut late = op(
        3,
        2,
        "productos",
        "P1",
        "actualizar",
        json!({"stock": 9, "precio": "9.00"}),
        1,
        3_000,
    );
    late.0["datos_base"] = json!({"stock": 5, "precio": "10.00"});
    let r = push(&router, 2, vec![late]).await;
    assert_eq!(r[0]["estado"], "aplicada");
    assert_eq!(r[0]["conflicto"]["resuelto"], true);
    assert_eq!(r[0]["conflicto"]["estrategia"], "campos");
    let p = doc(&router, "productos", "P1").await;
    assert_eq!(p["datos"]["stock"], 7, "3 + (9 - 5)");
    assert_eq!(p["datos"]["precio"], "11.00");
    let done = get(&router, "/api/sincronizacion/conflictos/?estado=resuelto").await;
    assert_eq!(done["count"], 1);
    assert_eq!(done["results"][0]["resolucion"], "automatica");

    // ventas: server wins; a second create of the same sale changes nothing.
    push(
        &router,
        1,
        vec![op(
            4,
            1,
            "ventas",
            "V1",
            "crear",
            json!({"producto": "P1", "cantidad": 1, "importe": "10.00"}),
            0,
            4_000,
        )],
    )
    .await;
    let r = push(
        &router,
        2,
        vec![op(
            5,
            2,
            "ventas",
            "V1",
            "crear",
            json!({"producto": "P1", "cantidad": 7, "importe": "70.00"}),
            0,
            5_000,
        )],
    )
    .await;
    assert_eq!(r[0]["conflicto"]["estrategia"], "servidor");
    assert_eq!(doc(&router, "ventas", "V1").await["datos"]["cantidad"], 1);
}

#[tokio::test]
async fn last_writer_wins_by_the_hybrid_clock_even_with_a_store_clock_ten_minutes_fast() {
    let router = hub().await;
    push(
        &router,
        0,
        vec![op(
            1,
            0,
            "clientes",
            "C1",
            "crear",
            json!({"telefono": "0"}),
            0,
            1_000_000,
        )],
    )
    .await;
    let ten_minutes = 600_000;
    // Store 1's clock runs ten minutes fast. It writes first in real time.
    push(
        &router,
        1,
        vec![op(
            2,
            1,
            "clientes",
            "C1",
            "actualizar",
            json!({"telefono": "fast"}),
            1,
            1_060_000 + ten_minutes,
        )],
    )
    .await;
    // Store 2 writes a minute later in real time, without having seen store 1's write:
    // by the hybrid clock store 1's write is later, and it stands.
    let r = push(
        &router,
        2,
        vec![op(
            3,
            2,
            "clientes",
            "C1",
            "actualizar",
            json!({"telefono": "slow"}),
            1,
            1_120_000,
        )],
    )
    .await;
    assert_eq!(r[0]["conflicto"]["estrategia"], "ultimo");
    assert_eq!(
        doc(&router, "clientes", "C1").await["datos"]["telefono"],
        "fast"
    );
    // Store 2 pulls, and the pull carries the clock of the change, which store 2 observes...
    let feed = get(&router, "/api/sincronizacion/cambios/?coleccion=clientes").await;
    let seen: pos_sync::core::Hlc = feed["cambios"][0]["reloj"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut store2 = pos_sync::core::Hlc::new(2);
    store2.observe(seen, 1_180_000);
    // ...so its next write orders after store 1's, though its wall clock is ten minutes behind.
    let next = store2.tick(1_181_000);
    let mut write = op(
        4,
        2,
        "clientes",
        "C1",
        "actualizar",
        json!({"telefono": "after-seeing"}),
        2,
        0,
    );
    write.0["reloj"] = json!(next.to_string());
    push(&router, 2, vec![write]).await;
    assert_eq!(
        doc(&router, "clientes", "C1").await["datos"]["telefono"],
        "after-seeing"
    );
    // And a write based on the current version is no conflict at all.
    let (_, open) = call(&router, "GET", "/api/sincronizacion/conflictos/", None).await;
    assert_eq!(open["count"], 1);
}

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
async fn two_stores_selling_the_last_unit_keep_both_sales_and_open_one_inventory_conflict() {
    let router = hub().await;
    push(
        &router,
        0,
        vec![op(
            1,
            0,
            "productos",
            "P1",
            "crear",
            json!({"stock": 1}),
            0,
            1_000,
        )],
    )
    .await;
    for (store, n) in [(1u64, 2u32), (2, 4)] {
        let r = push(
            &router,
            store,
            vec![
                op(
                    n,
                    store,
                    "ventas",
                    &format!("V{store}"),
                    "crear",
                    json!({"producto": "P1", "cantidad": 1, "importe": "3.00"}),
                    0,
                    2_000,
                ),
                op(
                    n + 1,
                    store,
                    "productos",
                    "P1",
                    "incrementar",
                    json!({"stock": -1}),
                    1,
                    2_001,
                ),
            ],
        )
        .await;
        assert!(r.iter().all(|x| x["estado"] == "aplicada"), "{r:?}");
    }
    assert_eq!(doc(&router, "productos", "P1").await["datos"]["stock"], -1);
    assert_eq!(
        get(&router, "/api/sincronizacion/cambios/?coleccion=ventas").await["cambios"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let open = get(
        &router,
        "/api/sincronizacion/conflictos/?estado=abierto&tipo=inventario",
    )
    .await;
    assert_eq!(open["count"], 1);
    let c = open["results"][0].clone();
    assert_eq!(c["objeto_id"], "P1");
    assert_eq!(c["datos_actuales"]["stock"], -1);
    assert_eq!(
        get(&router, &format!("{PUSH}?tiene_conflicto=true")).await["count"],
        1
    );

    // A third sale while it is open keeps one conflict.
    push(
        &router,
        3,
        vec![op(
            9,
            3,
            "productos",
            "P1",
            "incrementar",
            json!({"stock": -1}),
            1,
            3_000,
        )],
    )
    .await;
    assert_eq!(
        get(&router, "/api/sincronizacion/conflictos/?estado=abierto").await["count"],
        1
    );

    // Resolving: the store's side is no answer; a count below the floor is refused; a count is saved.
    let resolve = |how: Value| {
        json!({"conflicto": c["id"], "usuario": "ines"})
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .chain(how.as_object().unwrap().clone())
            .collect::<serde_json::Map<_, _>>()
    };
    for (how, field) in [
        (json!({"resolucion": "local"}), "resolucion"),
        (
            json!({"resolucion": "personalizado", "datos": {"stock": -2}}),
            "datos",
        ),
        (
            json!({"resolucion": "personalizado", "datos": {"nombre": "x"}}),
            "datos",
        ),
    ] {
        let (status, body) = call(
            &router,
            "POST",
            "/api/sincronizacion/conflictos/",
            Some(&Value::Object(resolve(how)).to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.get(field).is_some(), "{body}");
    }
    let (status, body) = call(
        &router,
        "POST",
        "/api/sincronizacion/conflictos/",
        Some(
            &Value::Object(resolve(
                json!({"resolucion": "personalizado", "datos": {"stock": 0}}),
            ))
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["datos_antes"]["stock"], -2);
    assert_eq!(body["datos_despues"]["stock"], 0);
    assert_eq!(doc(&router, "productos", "P1").await["datos"]["stock"], 0);
    assert_eq!(
        get(&router, &format!("{PUSH}?tiene_conflicto=true")).await["count"],
        0
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
        100,
        "defaults for an unknown store"
    );
}

#[tokio::test]
async fn the_sincronizar_command_processes_the_queue_and_orders_full_resyncs() {
    let dir = std::env::temp_dir().join(format!("pos-sync-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.db");
    {
        let db = pos_sync::hub::Db::open(&path).await.unwrap();
        let router = pos_sync::hub::app(pos_sync::hub::AppState::new(db), &Default::default());
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
