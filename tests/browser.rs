//! Browser tests in headless Chromium (wasm-bindgen-test): the IndexedDB store passes the
//! store conformance suite, operations survive a reopen, and `syncNow` drains the queue
//! against a real hub. The hub's URL comes from `POS_SYNC_TEST_HUB` at build time
//! (`scripts/test.sh` starts a hub and sets it). Every test uses its own database.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Promise, Reflect};
use pos_sync::browser::{IdbStore, PosSync};
use pos_sync::core::store::conformance;
use pos_sync::core::Mirrored;
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn hub_url() -> &'static str {
    match option_env!("POS_SYNC_TEST_HUB") {
        Some(url) => url,
        None => panic!("build the browser tests with POS_SYNC_TEST_HUB set to a running hub (scripts/test.sh does)"),
    }
}

fn fresh_name(label: &str) -> String {
    format!(
        "test-{label}-{}-{}",
        js_sys::Date::now(),
        (js_sys::Math::random() * 1e9) as u64
    )
}

/// A plain JS object (not a `Map`), as a page would pass.
fn js(v: Value) -> JsValue {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap()
}

use serde::Serialize;

fn rust(v: JsValue) -> Value {
    serde_wasm_bindgen::from_value(v).unwrap()
}

async fn wait(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

async fn open(store: u64, db: &str, hub: &str) -> PosSync {
    let options = js(json!({"storeId": store, "dbName": db, "hubUrl": hub, "batchSize": 3}));
    PosSync::connect(options).await.unwrap()
}

fn error_name(e: &JsValue) -> String {
    Reflect::get(e, &"name".into())
        .unwrap()
        .as_string()
        .unwrap()
}

fn error_message(e: &JsValue) -> String {
    Reflect::get(e, &"message".into())
        .unwrap()
        .as_string()
        .unwrap()
}

/// A unique product id, so tests sharing one hub never touch each other's documents.
fn unique(label: &str) -> String {
    format!("{label}-{}", (js_sys::Math::random() * 1e12) as u64)
}

async fn hub_push(ops: Value) {
    let body = json!({"tienda": 0, "operaciones": ops}).to_string();
    let response =
        gloo_net::http::Request::post(&format!("{}/api/sincronizacion/cola/", hub_url()))
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
            .send()
            .await
            .unwrap();
    assert!(
        response.ok(),
        "seeding the hub failed: {}",
        response.status()
    );
}

async fn hub_get(path: &str) -> Value {
    let response = gloo_net::http::Request::get(&format!("{}{path}", hub_url()))
        .send()
        .await
        .unwrap();
    assert!(response.ok(), "GET {path}: {}", response.status());
    response.json().await.unwrap()
}

#[wasm_bindgen_test]
async fn indexeddb_store_passes_the_store_conformance_suite() {
    conformance::run_all(async || IdbStore::open(&fresh_name("conformance")).await.unwrap()).await;
}

#[wasm_bindgen_test]
async fn mirrored_indexeddb_store_passes_the_store_conformance_suite() {
    conformance::run_all(async || {
        Mirrored::new(IdbStore::open(&fresh_name("mirrored")).await.unwrap())
    })
    .await;
}

#[wasm_bindgen_test]
async fn operations_survive_closing_and_reopening_the_engine() {
    let db = fresh_name("reopen");
    let engine = open(7, &db, "http://127.0.0.1:9").await;
    let one = wait(engine.enqueue(js(json!({"coleccion": "ventas", "objeto_id": "v1", "operacion": "crear", "datos": {"importe": "10.50", "cantidad": 1}})))).await.unwrap();
    let many = wait(engine.enqueue_many(js(json!([
        {"coleccion": "ventas", "objeto_id": "v2", "operacion": "crear", "datos": {"importe": "3.25"}},
        {"coleccion": "productos", "objeto_id": "P1", "operacion": "incrementar", "datos": {"stock": -2}}
    ])))).await.unwrap();
    let one = rust(one);
    assert_eq!(one["estado"], "pendiente");
    assert_eq!(one["tienda"], 7);
    assert_eq!(Array::from(&many).length(), 2);
    // The engine's ids are time-ordered (UUID version 7): those of one call in order, and
    // after the ids made before them.
    let many = rust(many);
    let ids: Vec<&str> = [&one, &many[0], &many[1]]
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.as_bytes()[14] == b'7'), "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let made = u64::from_str_radix(&ids[0][..13].replace('-', ""), 16).unwrap();
    let now = js_sys::Date::now() as u64;
    assert!(
        made <= now && now - made < 60_000,
        "{made} ms against {now}"
    );
    engine.close();
    drop(engine);

    let again = open(7, &db, "http://127.0.0.1:9").await;
    assert_eq!(
        wait(again.pending_count()).await.unwrap().as_f64(),
        Some(3.0)
    );
    let ops = rust(wait(again.operations()).await.unwrap());
    let ops = ops.as_array().unwrap();
    assert_eq!(ops[0]["id"], one["id"]);
    assert_eq!(ops[0]["datos"]["importe"], "10.50");
    assert_eq!(ops[2]["operacion"], "incrementar");
    assert_eq!(ops[2]["datos"]["stock"], -2);
    assert!(ops[0]["reloj"].as_str().unwrap() < ops[2]["reloj"].as_str().unwrap());

    // The database belongs to store 7; opening it as another store is refused.
    let options = js(json!({"storeId": 8, "dbName": db}));
    let err = PosSync::connect(options).await.err().unwrap();
    assert_eq!(error_name(&err), "PosSyncWrongStoreError");
    again.close();
}

#[wasm_bindgen_test]
async fn bad_input_rejects_with_a_named_error_and_queues_nothing() {
    let db = fresh_name("bad-input");
    let engine = open(3, &db, "http://127.0.0.1:9").await;
    let err = wait(engine.enqueue(js(
        json!({"coleccion": "ventas", "objeto_id": "v1", "operacion": "borrar"}),
    )))
    .await
    .unwrap_err();
    assert_eq!(error_name(&err), "PosSyncInvalidError");
    assert!(
        error_message(&err).contains("borrar"),
        "{}",
        error_message(&err)
    );
    // One bad operation in a batch: none of the batch is queued.
    let err = wait(engine.enqueue_many(js(json!([
        {"coleccion": "ventas", "objeto_id": "v1", "operacion": "crear", "datos": {}},
        {"coleccion": "productos", "objeto_id": "P1", "operacion": "incrementar", "datos": {"stock": "-1"}}
    ])))).await.unwrap_err();
    assert_eq!(error_name(&err), "PosSyncInvalidError");
    assert!(
        error_message(&err).contains("datos"),
        "{}",
        error_message(&err)
    );
    assert_eq!(
        wait(engine.pending_count()).await.unwrap().as_f64(),
        Some(0.0)
    );
    // An id is queued once: a page retrying an enqueue it is unsure of gets a clear refusal.
    let id = "8d9e4a52-7a63-4c1e-9b0a-3f1f0c2d4e5a";
    let sale = json!({"id": id, "coleccion": "ventas", "objeto_id": "v2", "operacion": "crear", "datos": {}});
    wait(engine.enqueue(js(sale.clone()))).await.unwrap();
    let err = wait(engine.enqueue(js(sale.clone()))).await.unwrap_err();
    assert_eq!(error_name(&err), "PosSyncInvalidError");
    assert!(error_message(&err).contains(id), "{}", error_message(&err));
    let err = wait(engine.enqueue_many(js(json!([
        {"coleccion": "ventas", "objeto_id": "v3", "operacion": "crear", "datos": {}},
        sale
    ]))))
    .await
    .unwrap_err();
    assert!(
        error_message(&err).contains("already queued"),
        "{}",
        error_message(&err)
    );
    assert_eq!(
        wait(engine.pending_count()).await.unwrap().as_f64(),
        Some(1.0)
    );
    wait(engine.enqueue(js(
        json!({"coleccion": "ventas", "objeto_id": "v3", "operacion": "crear", "datos": {}}),
    )))
    .await
    .unwrap();
    let queued = rust(wait(engine.operations()).await.unwrap());
    let docs: Vec<&str> = queued
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["objeto_id"].as_str().unwrap())
        .collect();
    assert_eq!(docs, vec!["v2", "v3"]);
    // The auto-increment keys of refused calls were rolled back with them: each call is one
    // page of the queue, and an operation's number is its page's times 4,096 plus its place.
    let seqs: Vec<u64> = queued
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs[1],
        seqs[0] + 4096,
        "the refused calls used no page numbers: {queued}"
    );
    engine.close();
    // A fresh database for the cases below.
    let engine = open(3, &fresh_name("bad-input-2"), "http://127.0.0.1:9").await;
    let err = PosSync::connect(js(json!({"storeId": 3, "dbname": "typo"})))
        .await
        .err()
        .unwrap();
    assert_eq!(error_name(&err), "PosSyncInvalidError");
    assert!(
        error_message(&err).contains("dbname"),
        "{}",
        error_message(&err)
    );

    // A dead hub: the sync rejects and the operations stay pending.
    wait(engine.enqueue(js(json!({"coleccion": "ventas", "objeto_id": "v9", "operacion": "crear", "datos": {"importe": "1.00"}})))).await.unwrap();
    let err = wait(engine.sync_now()).await.unwrap_err();
    assert_eq!(error_name(&err), "PosSyncNetworkError");
    assert_eq!(
        wait(engine.pending_count()).await.unwrap().as_f64(),
        Some(1.0)
    );
    // Nothing reached the hub (the configuration fetch failed first), so no attempt is counted,
    // and the status says why.
    let ops = rust(wait(engine.operations()).await.unwrap());
    assert_eq!(ops[0]["intentos"], 0);
    assert_eq!(ops[0]["estado"], "pendiente");
    let status = rust(wait(engine.status()).await.unwrap());
    assert!(
        status["lastError"].as_str().unwrap().contains("network"),
        "{status}"
    );
    engine.close();
}

#[wasm_bindgen_test]
async fn sync_now_empties_the_queue_against_a_real_hub_exactly_once() {
    let product = unique("P");
    hub_push(json!([{
        "id": uuid_str(), "tienda": 0, "coleccion": "productos", "objeto_id": product, "operacion": "crear",
        "datos": {"nombre": "Silla", "precio": "49.90", "stock": 10}, "reloj": "1733240000000-00000-0"
    }]))
    .await;

    // The hub's configuration for this store: batches of 3 (the engine obeys it).
    let config =
        gloo_net::http::Request::post(&format!("{}/api/sincronizacion/configuracion/", hub_url()))
            .header("content-type", "application/json")
            .body(json!({"tienda": 11, "tamano_lote": 3}).to_string())
            .unwrap()
            .send()
            .await
            .unwrap();
    assert!(config.ok(), "configuring store 11: {}", config.status());
    let db = fresh_name("sync");
    let engine = open(11, &db, hub_url()).await;
    // First sync pulls the catalog into the cache.
    let first = rust(wait(engine.sync_now()).await.unwrap());
    assert!(first["pulled"].as_u64().unwrap() >= 1);
    let cached = rust(
        wait(engine.get("productos".into(), product.as_str().into()))
            .await
            .unwrap(),
    );
    assert_eq!(cached["datos"]["stock"], 10);

    // Sell 3, then 4, in separate sales; the cache shows the sales before they sync.
    for (n, qty) in [(1, 3), (2, 4)] {
        wait(engine.enqueue_many(js(json!([
            {"coleccion": "ventas", "objeto_id": format!("{product}-v{n}"), "operacion": "crear", "datos": {"producto": product, "cantidad": qty, "importe": "49.90"}},
            {"coleccion": "productos", "objeto_id": product, "operacion": "incrementar", "datos": {"stock": -qty}}
        ])))).await.unwrap();
    }
    assert_eq!(
        wait(engine.pending_count()).await.unwrap().as_f64(),
        Some(4.0)
    );
    let local = rust(
        wait(engine.get("productos".into(), product.as_str().into()))
            .await
            .unwrap(),
    );
    assert_eq!(local["datos"]["stock"], 3);

    let summary = rust(wait(engine.sync_now()).await.unwrap());
    assert_eq!(summary["pushed"], 4);
    assert_eq!(summary["applied"], 4);
    assert_eq!(
        summary["batches"], 2,
        "batchSize 3 means two pushes for four operations"
    );
    assert_eq!(summary["pending"], 0);
    assert_eq!(
        wait(engine.pending_count()).await.unwrap().as_f64(),
        Some(0.0)
    );
    assert_eq!(rust(wait(engine.operations()).await.unwrap()), json!([]));

    // The hub has each operation once, and the stock moved by the deltas.
    let doc = hub_get(&format!(
        "/api/sincronizacion/documentos/productos/{product}/"
    ))
    .await;
    assert_eq!(doc["datos"]["stock"], 3);
    assert_eq!(doc["version"], 3);
    let ops = hub_get("/api/sincronizacion/cola/?tienda=11&limit=1000").await;
    let mine: Vec<&Value> = ops["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["datos"]["producto"] == product || o["objeto_id"] == product)
        .collect();
    assert_eq!(mine.len(), 4);
    assert!(mine.iter().all(|o| o["estado"] == "aplicada"));

    // The cache now holds the hub's version, and a second sync sends nothing.
    let cached = rust(
        wait(engine.get("productos".into(), product.as_str().into()))
            .await
            .unwrap(),
    );
    assert_eq!(cached["version"], 3);
    assert_eq!(cached["datos"]["stock"], 3);
    let again = rust(wait(engine.sync_now()).await.unwrap());
    assert_eq!(again["pushed"], 0);
    let status_js = wait(engine.status()).await.unwrap();
    // Absent values are JS null, as the TypeScript types say (not undefined).
    let last_error = js_sys::Reflect::get(&status_js, &"lastError".into()).unwrap();
    assert!(last_error.is_null(), "lastError is {last_error:?}");
    let pushed = js_sys::Reflect::get(&status_js, &"lastSync".into())
        .and_then(|s| js_sys::Reflect::get(&s, &"pushed".into()))
        .unwrap();
    assert_eq!(pushed.as_f64(), Some(0.0));
    let status = rust(status_js);
    assert_eq!(status["pending"], 0);
    assert_eq!(status["storeId"], 11);
    assert_eq!(status["lastError"], Value::Null);
    assert_eq!(status["lastSync"]["pushed"], 0);
    engine.close();
}

fn uuid_str() -> String {
    let global = js_sys::global();
    let crypto: web_sys::Crypto = Reflect::get(&global, &"crypto".into())
        .unwrap()
        .unchecked_into();
    crypto.random_uuid()
}

async fn hub_post(path: &str, body: Value) -> Value {
    let response = gloo_net::http::Request::post(&format!("{}{path}", hub_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap()
        .send()
        .await
        .unwrap();
    assert!(response.ok(), "POST {path}: {}", response.status());
    response.json().await.unwrap()
}

#[wasm_bindgen_test]
async fn a_conflict_opens_and_closes_with_events_and_the_cache_shows_the_resolution() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;

    let customer = unique("C");
    hub_post("/api/sincronizacion/configuracion/", json!({"tienda": 12, "estrategias": {"clientes": "manual"}, "colecciones_cache": ["clientes"]})).await;
    hub_post("/api/sincronizacion/cola/", json!({"tienda": 0, "operaciones": [{
        "id": uuid_str(), "tienda": 0, "coleccion": "clientes", "objeto_id": customer, "operacion": "crear",
        "datos": {"nombre": "Ana", "telefono": "1"}, "reloj": "1733240000000-00000-0"}]}))
    .await;
    let engine = open(12, &fresh_name("conflict"), hub_url()).await;
    let events: Rc<RefCell<Vec<Value>>> = Rc::default();
    let sink = events.clone();
    let listener =
        Closure::<dyn FnMut(web_sys::CustomEvent)>::new(move |e: web_sys::CustomEvent| {
            sink.borrow_mut()
                .push(serde_wasm_bindgen::from_value(e.detail()).unwrap());
        });
    engine
        .add_event_listener("conflict".into(), listener.as_ref().clone())
        .unwrap();
    wait(engine.sync_now()).await.unwrap();

    // Another store changes the phone; this till changes it too, from the version it saw.
    hub_post("/api/sincronizacion/cola/", json!({"tienda": 13, "operaciones": [{
        "id": uuid_str(), "tienda": 13, "coleccion": "clientes", "objeto_id": customer, "operacion": "actualizar",
        "datos": {"telefono": "13"}, "version_base": 1, "reloj": "1733240001000-00000-13"}]}))
    .await;
    let mine = rust(wait(engine.enqueue(js(json!({"coleccion": "clientes", "objeto_id": customer, "operacion": "actualizar", "datos": {"telefono": "12"}})))).await.unwrap());
    assert_eq!(mine["version_base"], 1);
    assert_eq!(mine["datos_base"], json!({"telefono": "1"}));
    let summary = rust(wait(engine.sync_now()).await.unwrap());
    assert_eq!(summary["conflicts"], 1);
    assert_eq!(summary["openConflicts"], 1);
    let open = rust(wait(engine.conflicts()).await.unwrap());
    assert_eq!(open[0]["objeto_id"], customer.as_str());
    assert_eq!(open[0]["campos"], json!(["telefono"]));
    assert_eq!(
        rust(wait(engine.operations()).await.unwrap())[0]["estado"],
        "conflicto"
    );
    assert_eq!(events.borrow().len(), 1);
    assert_eq!(events.borrow()[0]["estado"], "abierto");

    // An admin keeps this till's data; the next sync closes it here too.
    hub_post(
        &format!(
            "/api/sincronizacion/cola/{}/resolver/",
            mine["id"].as_str().unwrap()
        ),
        json!({"resolucion": "local", "usuario": "test"}),
    )
    .await;
    let summary = rust(wait(engine.sync_now()).await.unwrap());
    assert_eq!(summary["settled"], 1);
    assert_eq!(summary["openConflicts"], 0);
    assert_eq!(rust(wait(engine.conflicts()).await.unwrap()), json!([]));
    assert_eq!(rust(wait(engine.operations()).await.unwrap()), json!([]));
    assert_eq!(events.borrow().len(), 2);
    assert_eq!(events.borrow()[1]["estado"], "resuelto");
    let cached = rust(
        wait(engine.get("clientes".into(), customer.as_str().into()))
            .await
            .unwrap(),
    );
    assert_eq!(cached["datos"]["telefono"], "12");
    engine.close();
}

#[wasm_bindgen_test]
async fn close_releases_the_database_so_it_can_be_deleted_and_later_calls_reject() {
    let db = fresh_name("close");
    let engine = open(4, &db, "http://127.0.0.1:9").await;
    wait(engine.enqueue(js(
        json!({"coleccion": "ventas", "objeto_id": "v1", "operacion": "crear", "datos": {}}),
    )))
    .await
    .unwrap();
    engine.close();
    let err = wait(engine.enqueue(js(
        json!({"coleccion": "ventas", "objeto_id": "v2", "operacion": "crear", "datos": {}}),
    )))
    .await
    .unwrap_err();
    assert_eq!(error_name(&err), "PosSyncStorageError");
    assert!(
        error_message(&err).contains("closed"),
        "{}",
        error_message(&err)
    );
    // With both connections closed, the deletion completes (it waits forever otherwise).
    wait(PosSync::delete_database(db.as_str().into()))
        .await
        .unwrap();
    let again = open(4, &db, "http://127.0.0.1:9").await;
    assert_eq!(
        wait(again.pending_count()).await.unwrap().as_f64(),
        Some(0.0)
    );
    again.close();
    wait(PosSync::delete_database(db.as_str().into()))
        .await
        .unwrap();
}

/// Makes a database as version 1 of the schema left it (the queue one record per operation,
/// in `cola`), holding `ops` for store `store`. With `keep_open`, its connection stays open,
/// as a tab of an older build would hold it (no `versionchange` handler), and is returned.
async fn version_1_database(name: &str, store: u64, ops: Value, keep_open: bool) -> JsValue {
    let make = js_sys::Function::new_with_args(
        "name, store, ops, keepOpen",
        r#"return new Promise((resolve, reject) => {
          const r = indexedDB.open(name, 1);
          r.onupgradeneeded = () => {
            const d = r.result;
            const q = d.createObjectStore('cola', { keyPath: 'seq', autoIncrement: true });
            q.createIndex('estado', 'estado');
            q.createIndex('documento', 'clave');
            q.createIndex('id', 'id', { unique: true });
            d.createObjectStore('cache', { keyPath: 'clave' }).createIndex('coleccion', 'coleccion');
            d.createObjectStore('meta', { keyPath: 'clave' });
          };
          r.onerror = () => reject(r.error);
          r.onsuccess = () => {
            const d = r.result;
            const tx = d.transaction(['cola', 'meta'], 'readwrite');
            tx.objectStore('meta').put({ clave: 'tienda', valor: store });
            for (const op of ops) tx.objectStore('cola').add(op);
            tx.oncomplete = () => { if (keepOpen) { resolve(d); } else { d.close(); resolve(); } };
            tx.onabort = () => reject(tx.error);
          };
        });"#,
    );
    let args = Array::of4(
        &name.into(),
        &(store as f64).into(),
        &js(ops),
        &keep_open.into(),
    );
    let made = make.apply(&JsValue::NULL, &args).unwrap();
    wait(made.unchecked_into()).await.unwrap()
}

/// How many records the object store `store` of database `name` holds.
async fn records_in(name: &str, store: &str) -> f64 {
    let count = js_sys::Function::new_with_args(
        "name, store",
        r#"return new Promise((resolve, reject) => {
          const r = indexedDB.open(name);
          r.onerror = () => reject(r.error);
          r.onsuccess = () => {
            const d = r.result;
            const q = d.transaction(store).objectStore(store).count();
            q.onsuccess = () => { d.close(); resolve(q.result); };
            q.onerror = () => reject(q.error);
          };
        });"#,
    );
    let counted = count
        .call2(&JsValue::NULL, &name.into(), &store.into())
        .unwrap();
    wait(counted.unchecked_into())
        .await
        .unwrap()
        .as_f64()
        .unwrap()
}

#[wasm_bindgen_test]
async fn a_version_1_queue_is_moved_into_pages_in_order_when_the_engine_opens_it() {
    let db = fresh_name("version-1");
    let record = |id: &str, doc: &str, estado: &str, intentos: u32, reloj: &str| {
        json!({"id": id, "tienda": 5, "coleccion": "ventas", "objeto_id": doc,
               "operacion": "crear", "datos": {"importe": "4.50"}, "version_base": 0,
               "reloj": reloj, "prioridad": 0, "estado": estado, "tiene_conflicto": false,
               "intentos": intentos, "error": null, "fecha_creacion": "2026-12-01T10:00:00Z",
               "fecha_procesamiento": null, "clave": format!("ventas\u{1f}{doc}")})
    };
    let ids = [uuid_str(), uuid_str(), uuid_str()];
    version_1_database(
        &db,
        5,
        json!([
            record(&ids[0], "v1", "pendiente", 0, "1764583200000-00000-5"),
            record(&ids[1], "v2", "diferida", 1, "1764583200001-00000-5"),
            record(&ids[2], "v3", "pendiente", 2, "1764583200002-00000-5"),
        ]),
        false,
    )
    .await;

    let engine = open(5, &db, "http://127.0.0.1:9").await;
    let listed = rust(wait(engine.operations()).await.unwrap());
    let listed = listed.as_array().unwrap();
    let seen: Vec<(&str, &str, u64)> = listed
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap(),
                o["estado"].as_str().unwrap(),
                o["intentos"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (ids[0].as_str(), "pendiente", 0),
            (ids[1].as_str(), "diferida", 1),
            (ids[2].as_str(), "pendiente", 2)
        ]
    );
    assert_eq!(listed[2]["datos"]["importe"], "4.50");
    assert_eq!(
        wait(engine.pending_count()).await.unwrap().as_f64(),
        Some(2.0)
    );
    assert_eq!(
        records_in(&db, "cola").await,
        0.0,
        "the old queue is emptied"
    );
    // Still queued once: the same id is refused, and a new operation comes after them.
    let again = json!({"id": ids[0], "coleccion": "ventas", "objeto_id": "v1", "operacion": "crear", "datos": {}});
    let err = wait(engine.enqueue(js(again))).await.unwrap_err();
    assert_eq!(error_name(&err), "PosSyncInvalidError");
    wait(engine.enqueue(js(
        json!({"coleccion": "ventas", "objeto_id": "v4", "operacion": "crear", "datos": {}}),
    )))
    .await
    .unwrap();
    engine.close();

    // Opened again, nothing is moved twice.
    let engine = open(5, &db, "http://127.0.0.1:9").await;
    let listed = rust(wait(engine.operations()).await.unwrap());
    let docs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["objeto_id"].as_str().unwrap())
        .collect();
    assert_eq!(docs, vec!["v1", "v2", "v3", "v4"]);
    assert_eq!(
        records_in(&db, "lotes").await,
        2.0,
        "one page moved, one appended"
    );
    engine.close();
}

#[wasm_bindgen_test]
async fn a_tab_of_an_older_build_holding_the_database_fails_open_clearly_and_this_build_never_blocks_an_upgrade(
) {
    let db = fresh_name("held");
    // A tab of an older build: the database at version 1, its connection open, and no
    // `versionchange` handler to let go of it.
    let held = version_1_database(&db, 5, json!([]), true).await;
    let started = js_sys::Date::now();
    let err = PosSync::connect(js(json!({"storeId": 5, "dbName": db})))
        .await
        .err()
        .unwrap();
    assert_eq!(error_name(&err), "PosSyncStorageError");
    assert!(
        error_message(&err).contains("another tab"),
        "{}",
        error_message(&err)
    );
    assert!(js_sys::Date::now() - started < 20_000.0);
    // Once that tab lets go, the database opens (upgraded).
    let close: js_sys::Function = Reflect::get(&held, &"close".into())
        .unwrap()
        .unchecked_into();
    close.call0(&held).unwrap();
    let engine = open(5, &db, "http://127.0.0.1:9").await;
    wait(engine.enqueue(js(
        json!({"coleccion": "ventas", "objeto_id": "v1", "operacion": "crear", "datos": {}}),
    )))
    .await
    .unwrap();

    // A newer build upgrading the database is not kept waiting by this engine: its
    // connection lets go, and its later calls fail as storage errors.
    let upgrade = js_sys::Function::new_with_args(
        "name",
        r#"return new Promise((resolve, reject) => {
          const r = indexedDB.open(name, 9);
          r.onsuccess = () => { r.result.close(); resolve(true); };
          r.onerror = () => reject(r.error);
        });"#,
    );
    let upgraded = upgrade.call1(&JsValue::NULL, &db.as_str().into()).unwrap();
    assert_eq!(
        wait(upgraded.unchecked_into()).await.unwrap(),
        JsValue::TRUE
    );
    let err = wait(engine.pending_count()).await.unwrap_err();
    assert_eq!(error_name(&err), "PosSyncStorageError");
}
