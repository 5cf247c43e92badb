//! The hub's conflict cases: detection, resolution by rule and by an admin, floors.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use axum::http::StatusCode;
use common::hubops::*;
use common::{call, hub};
use serde_json::{json, Value};

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
async fn keeping_a_held_operations_data_does_not_undo_a_later_write_to_the_same_field() {
    let router = hub().await;
    configure(
        &router,
        json!({"tienda": 3, "estrategias": {"clientes": "manual"}}),
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
            json!({"nombre": "Ana", "tel": "0"}),
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
            json!({"nombre": "hub"}),
            1,
            2_000,
        )],
    )
    .await;
    let held = push(
        &router,
        3,
        vec![op(
            3,
            3,
            "clientes",
            "C1",
            "actualizar",
            json!({"nombre": "old", "tel": "3"}),
            1,
            3_000,
        )],
    )
    .await;
    assert_eq!(held[0]["estado"], "conflicto");
    // The same store writes the name again, from the current version: no conflict.
    let later = push(
        &router,
        3,
        vec![op(
            4,
            3,
            "clientes",
            "C1",
            "actualizar",
            json!({"nombre": "new"}),
            2,
            4_000,
        )],
    )
    .await;
    assert_eq!(later[0]["estado"], "aplicada");
    let body = json!({"resolucion": "local", "usuario": "ana"}).to_string();
    let (status, resolved) = call(
        &router,
        "POST",
        &format!("{PUSH}{}/resolver/", id(3)),
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let c1 = doc(&router, "clientes", "C1").await;
    assert_eq!(c1["datos"]["nombre"], "new", "the later write stands");
    assert_eq!(
        c1["datos"]["tel"], "3",
        "the held operation's other field lands"
    );
}
