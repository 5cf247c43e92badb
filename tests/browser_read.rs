//! Browser tests of the engine's readers (`pos_sync::browser::read`), in headless Chromium.
//!
//! The readers take the engine's records and the hub's answers field by field from JS values.
//! Their reference is what the engine read before them: the value written out by the
//! browser's `JSON.stringify` and read by serde's derived impls. Every case here is a JSON
//! text as the hub or IndexedDB would hand it over; a reader must give exactly what that
//! reference gives, and fail exactly where it fails.
#![cfg(target_arch = "wasm32")]

use std::fmt::Debug;

use pos_sync::browser::read;
use pos_sync::core::clock::Hlc;
use pos_sync::core::config::SyncSettings;
use pos_sync::core::model::{Document, OpKind, OpStatus, Operation};
use pos_sync::core::protocol::{
    ConflictSummary, ErrorBody, OpState, Page, PullResponse, PushResponse,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// `text` as the browser hands it to a reader: parsed by `JSON.parse`.
fn parsed(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap()
}

/// What serde reads from `text` once the browser has parsed it and written it out again.
fn reference<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let again = String::from(js_sys::JSON::stringify(&parsed(text)).unwrap());
    serde_json::from_str(&again).map_err(|e| e.to_string())
}

/// The reader agrees with the reference on `value`, read or refused alike; returns what it read.
fn agrees<T: DeserializeOwned + PartialEq + Debug>(
    value: &Value,
    reader: impl Fn(&JsValue) -> read::Result<T>,
) -> Option<T> {
    let text = value.to_string();
    let expected = reference::<T>(&text);
    let got = reader(&parsed(&text));
    match (&expected, &got) {
        (Ok(e), Ok(g)) => assert_eq!(g, e, "read differently: {text}"),
        (Err(_), Err(_)) => {}
        _ => panic!("reference {expected:?}, reader {got:?}, for {text}"),
    }
    got.ok()
}

/// An operation's JSON as the engine writes it, varied by `i` over every field.
fn operation(i: u64) -> Operation {
    let kinds = [
        OpKind::Create,
        OpKind::Update,
        OpKind::Delete,
        OpKind::Increment,
    ];
    let states = [
        OpStatus::Pending,
        OpStatus::Applied,
        OpStatus::Deferred,
        OpStatus::Conflict,
        OpStatus::Rejected,
    ];
    let data = json!({
        "producto": format!("P{i}"),
        "cantidad": i as i64 - 50,
        "importe": "957.5775",
        "peso": (i as f64) * 0.25 + 0.5,
        "nota": "ñandú \"entre comillas\" \u{1f} \n fin",
        "lista": [1, -2, 3.5, null, true, {"a": [ ]}],
        "vacio": {},
        "nada": null,
        "grande": 9_007_199_254_740_991_u64,
        "negativo": -9_007_199_254_740_991_i64,
        "real": 1e300,
    });
    Operation {
        id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(i)),
        store: i % 7,
        collection: ["ventas", "productos", "clientes_vip"][(i % 3) as usize].into(),
        doc_id: format!("doc-{i} con espacio/ñ"),
        kind: kinds[(i % 4) as usize],
        data: if i % 5 == 0 {
            Default::default()
        } else {
            data.as_object().unwrap().clone()
        },
        base_version: [0, 1, 9_007_199_254_740_991][(i % 3) as usize],
        base_data: (i % 2 == 0).then(|| json!({"stock": i}).as_object().unwrap().clone()),
        clock: Hlc {
            millis: 1_733_240_000_000 + i,
            counter: (i % 3) as u32,
            node: i % 11,
        },
        priority: [0, 10, -5, i32::MAX, i32::MIN][(i % 5) as usize],
        status: states[(i % 5) as usize],
        has_conflict: i % 5 == 3,
        attempts: [0, 1, u32::MAX][(i % 3) as usize],
        error: (i % 3 == 1).then(|| format!("error {i}: \"why\"")),
        created_at: if i % 4 == 0 {
            String::new()
        } else {
            "2026-12-04T10:00:00.5Z".into()
        },
        processed_at: (i % 2 == 1).then(|| "2026-12-04T10:00:01Z".into()),
        seq: (i % 3 != 0).then_some(i * 4096 + i % 100),
    }
}

#[wasm_bindgen_test]
fn operations_read_as_serde_reads_them_and_back_to_what_was_written() {
    let ops: Vec<Operation> = (0..60).map(operation).collect();
    for op in &ops {
        let value = serde_json::to_value(op).unwrap();
        let read = agrees(&value, read::operation).expect("a written operation reads");
        // Whole numbers stay integers and fractions floats, so the operation reads back as
        // it was written (the one float here that is whole, 0.5 * k for even k, is the case
        // JSON.stringify itself writes as an integer).
        assert_eq!(read.id, op.id);
        assert_eq!(read.clock, op.clock);
        assert_eq!(read.seq, op.seq);
        assert_eq!(read.base_data, op.base_data);
        assert_eq!(read.data.get("grande"), op.data.get("grande"));
        assert_eq!(read.data.get("negativo"), op.data.get("negativo"));
        assert_eq!(read.data.get("nota"), op.data.get("nota"));
    }
    let all = serde_json::to_value(&ops).unwrap();
    assert_eq!(agrees(&all, read::operations).unwrap().len(), 60);
}

#[wasm_bindgen_test]
fn defaults_apply_only_where_serde_applies_them() {
    // The fewest fields an operation can have.
    let least = json!({"id": "01900000-0000-7000-8000-000000000001", "tienda": 1,
        "coleccion": "ventas", "objeto_id": "v1", "operacion": "crear", "reloj": "1-0-1"});
    let op = agrees(&least, read::operation).unwrap();
    assert_eq!(op.status, OpStatus::Pending);
    assert!(op.data.is_empty() && op.error.is_none() && op.seq.is_none());
    // Nulls: absent for the optional fields, refused for the others; extra fields are skipped.
    let mut cases = Vec::new();
    for (field, value) in [
        ("error", Value::Null),
        ("fecha_procesamiento", Value::Null),
        ("seq", Value::Null),
        ("datos_base", Value::Null),
        ("otro", json!({"x": 1})),
        ("datos", Value::Null),
        ("version_base", Value::Null),
        ("tiene_conflicto", Value::Null),
        ("estado", Value::Null),
        ("prioridad", Value::Null),
        ("fecha_creacion", Value::Null),
        ("intentos", Value::Null),
    ] {
        let mut v = least.clone();
        v[field] = value;
        cases.push((field, agrees(&v, read::operation).is_some()));
    }
    let read: Vec<&str> = cases.iter().filter(|c| c.1).map(|c| c.0).collect();
    assert_eq!(
        read,
        ["error", "fecha_procesamiento", "seq", "datos_base", "otro"]
    );
}

#[wasm_bindgen_test]
fn malformed_records_and_answers_are_refused_as_serde_refuses_them() {
    let good = serde_json::to_value(operation(7)).unwrap();
    let mut refused = 0;
    for (field, bad) in [
        ("id", json!("not-a-uuid")),
        ("id", json!(7)),
        ("tienda", json!(-1)),
        ("tienda", json!(1.5)),
        ("tienda", json!("1")),
        ("coleccion", json!(5)),
        ("operacion", json!("borrar")),
        ("estado", json!("perdida")),
        ("reloj", json!("ayer")),
        ("reloj", json!(17)),
        ("intentos", json!(4_294_967_296_u64)),
        ("prioridad", json!(2_147_483_648_u64)),
        ("prioridad", json!(-2_147_483_649_i64)),
        ("version_base", json!(-3)),
        ("datos", json!([1, 2])),
        ("datos", json!("x")),
        ("datos_base", json!(3)),
        ("tiene_conflicto", json!("si")),
        ("error", json!(false)),
        ("seq", json!(0.5)),
    ] {
        let mut v = good.clone();
        v[field] = bad;
        assert!(
            agrees(&v, read::operation).is_none(),
            "{field} = {} was read",
            v[field]
        );
        refused += 1;
    }
    for missing in [
        "id",
        "tienda",
        "coleccion",
        "objeto_id",
        "operacion",
        "reloj",
    ] {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(missing);
        assert!(
            agrees(&v, read::operation).is_none(),
            "read without {missing}"
        );
        refused += 1;
    }
    for not_an_object in [json!(null), json!([]), json!("op"), json!(3)] {
        assert!(agrees(&not_an_object, read::operation).is_none());
        refused += 1;
    }
    assert_eq!(refused, 30);
    // The reader's refusal names the field.
    let mut v = good.clone();
    v["estado"] = json!("perdida");
    let err = read::operation(&parsed(&v.to_string())).unwrap_err();
    assert!(err.contains("estado") && err.contains("perdida"), "{err}");
}

#[wasm_bindgen_test]
fn documents_read_as_serde_reads_them() {
    for (i, doc) in [
        json!({"coleccion": "productos", "objeto_id": "P1", "version": 3,
               "datos": {"nombre": "Silla", "precio": "49.90", "stock": -2}, "clave": "productos\u{1f}P1"}),
        json!({"coleccion": "productos", "objeto_id": "P2", "version": 9, "datos": {}, "eliminado": true}),
        json!({"coleccion": "productos", "objeto_id": "P3", "version": 1}),
        json!({"coleccion": "productos", "objeto_id": "P4", "version": -1, "datos": {}}),
        json!({"coleccion": "productos", "objeto_id": "P5", "version": 1, "datos": {}, "eliminado": 1}),
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(agrees(doc, read::document).is_some(), i < 2, "{doc}");
    }
    let docs = json!([{"coleccion": "c", "objeto_id": "a", "version": 1, "datos": {"x": [1.25]}}]);
    let read: Vec<Document> = agrees(&docs, read::documents).unwrap();
    assert_eq!(read[0].data["x"], json!([1.25]));
}

#[wasm_bindgen_test]
fn nesting_is_read_to_serdes_limit_and_refused_past_it_without_overrunning_the_stack() {
    // `levels` objects inside a document's `datos`, as text (a value thousands of levels deep
    // would overrun the stack of serde's own writer here before the reader saw it).
    let doc = |levels: usize| {
        format!(
            r#"{{"coleccion":"c","objeto_id":"a","version":1,"datos":{{"x":{}1{}}}}}"#,
            r#"{"a":"#.repeat(levels),
            "}".repeat(levels)
        )
    };
    let shallow = doc(100);
    assert!(reference::<Document>(&shallow).is_ok());
    let read = read::document(&parsed(&shallow)).unwrap();
    assert_eq!(
        read.data["x"].to_string(),
        serde_json::from_str::<Value>(&shallow).unwrap()["datos"]["x"].to_string()
    );
    for levels in [200, 20_000] {
        let deep = doc(levels);
        assert!(
            reference::<Document>(&deep).is_err(),
            "serde refuses {levels} levels"
        );
        let err = read::document(&parsed(&deep)).unwrap_err();
        assert_eq!(
            err,
            "`datos` nests objects and arrays more than 128 levels deep"
        );
    }
    // The reader still works after refusing one.
    assert!(read::document(&parsed(&doc(3))).is_ok());
}

#[wasm_bindgen_test]
fn the_hubs_answers_read_as_serde_reads_them() {
    let push = json!({"tienda": 3, "registro": 41, "resultados": [
        {"id": "01900000-0000-7000-8000-000000000001", "estado": "aplicada", "version": 2},
        {"id": "01900000-0000-7000-8000-000000000002", "estado": "aplicada", "version": 5, "duplicada": true},
        {"id": "01900000-0000-7000-8000-000000000003", "estado": "conflicto", "error": "campos",
         "codigo": "conflicto", "conflicto": {"campos": ["precio"], "id": 7}},
        {"id": "01900000-0000-7000-8000-000000000004", "estado": "rechazada", "error": "no", "codigo": "no_encontrado"},
        {"id": "01900000-0000-7000-8000-000000000005", "estado": "diferida", "conflicto": null}
    ]});
    let read: PushResponse = agrees(&push, read::push_response).unwrap();
    assert_eq!(read.results.len(), 5);
    assert!(read.results[1].duplicate);
    let pull = json!({"cambios": [
        {"seq": 10, "coleccion": "productos", "objeto_id": "P1", "version": 2,
         "datos": {"stock": 7}, "eliminado": false, "reloj": "1733240000000-00001-4"},
        {"seq": 11, "coleccion": "productos", "objeto_id": "P2", "version": 3, "datos": {}, "eliminado": true}
    ], "cursor": 11, "hay_mas": false});
    let read: PullResponse = agrees(&pull, read::pull_response).unwrap();
    assert_eq!(read.changes[0].doc.data["stock"], 7);
    assert_eq!(read.changes[1].clock, None);
    let config = json!({"tienda": 4, "intervalo_ms": 2500, "tamano_lote": 100,
        "prioridades": {"ventas": 10, "productos": -5}, "colecciones_cache": ["productos"], "resync": 2,
        "estrategias": {"productos": "campos"}, "reglas": {}, "intentos_integridad": 5});
    let read: SyncSettings = agrees(&config, read::sync_settings).unwrap();
    assert_eq!((read.tamano_lote, read.resync), (100, 2));
    // A store never configured: every default.
    let read: SyncSettings = agrees(&json!({"tienda": 9}), read::sync_settings).unwrap();
    assert_eq!(read, SyncSettings::default());
    let conflicts = json!({"count": 1, "next": null, "previous": null, "results": [
        {"id": 5, "operacion_id": "01900000-0000-7000-8000-000000000003", "tipo": "inventario",
         "coleccion": "productos", "objeto_id": "P1", "campos": ["stock"], "estado": "abierto",
         "fecha_creacion": "2026-12-04T10:00:00Z", "datos_servidor": {"stock": -1}}]});
    let read: Page<ConflictSummary> =
        agrees(&conflicts, |v| read::page(v, read::conflict_summary)).unwrap();
    assert_eq!(read.results[0].campos, ["stock"]);
    let states = json!({"count": 2, "results": [
        {"id": "01900000-0000-7000-8000-000000000003", "estado": "aplicada", "tiene_conflicto": false},
        {"id": "01900000-0000-7000-8000-000000000005", "estado": "conflicto", "tiene_conflicto": true, "error": "x"}]});
    let read: Page<OpState> = agrees(&states, |v| read::page(v, read::op_state)).unwrap();
    assert_eq!(read.results[1].status, OpStatus::Conflict);
    let error = json!({"detail": "El lote tiene más de 1000 operaciones.", "code": "lote_demasiado_grande"});
    let read: ErrorBody = agrees(&error, read::error_body).unwrap();
    assert_eq!(read.code, "lote_demasiado_grande");

    // Broken answers: refused by both.
    for bad in [
        json!({"tienda": 3, "resultados": [{"id": "01900000-0000-7000-8000-000000000001"}]}),
        json!({"tienda": 3, "resultados": [{"id": "01900000-0000-7000-8000-000000000001", "estado": "pendienteX"}]}),
        json!({"tienda": 3, "resultados": {}}),
        json!({"tienda": 3}),
        json!({"tienda": 3, "registro": 1.5, "resultados": []}),
    ] {
        assert!(agrees(&bad, read::push_response).is_none(), "{bad}");
    }
    for bad in [
        json!({"cambios": [], "cursor": 1}),
        json!({"cambios": [{"seq": 1, "coleccion": "p", "objeto_id": "a", "version": 1}], "cursor": 1, "hay_mas": false}),
        json!({"cambios": [], "cursor": -1, "hay_mas": false}),
        json!({"cambios": [], "cursor": 1, "hay_mas": "no"}),
    ] {
        assert!(agrees(&bad, read::pull_response).is_none(), "{bad}");
    }
    for bad in [
        json!({"tamano_lote": -1}),
        json!({"prioridades": {"ventas": 1.5}}),
        json!({"colecciones_cache": "productos"}),
        json!({"intervalo_ms": 4_294_967_296_u64}),
    ] {
        assert!(agrees(&bad, read::sync_settings).is_none(), "{bad}");
    }
    assert!(agrees(&json!({"detail": "x"}), read::error_body).is_none());
}

/// Resolves a Promise the engine returned.
async fn wait(p: js_sys::Promise) -> Result<JsValue, JsValue> {
    wasm_bindgen_futures::JsFuture::from(p).await
}

/// A JS value built by JavaScript itself (`new Date`, `undefined` members, which JSON cannot
/// carry from Rust).
fn js_eval(source: &str) -> JsValue {
    js_sys::Function::new_no_args(&format!("return {source};"))
        .call0(&JsValue::NULL)
        .unwrap()
}

#[wasm_bindgen_test]
async fn the_pages_inputs_mean_what_they_would_mean_as_json() {
    let db = format!("test-read-inputs-{}", js_sys::Math::random());
    // `undefined` options are absent, as in JSON.
    let options = js_eval(&format!(
        "{{ storeId: 4, dbName: {db:?}, hubUrl: 'http://127.0.0.1:9', priorities: undefined }}"
    ));
    let engine = pos_sync::browser::PosSync::connect(options).await.unwrap();
    let op = js_eval(
        "{ coleccion: 'ventas', objeto_id: 'v1', operacion: 'crear', prioridad: undefined,
           datos: { fecha: new Date(Date.UTC(2026, 11, 4, 10, 30)), nada: undefined,
                    lista: [1, undefined, 2.5], importe: '9.99', f: function () {} } }",
    );
    let queued = wait(engine.enqueue(op)).await.unwrap();
    let queued: Value = serde_wasm_bindgen::from_value(queued).unwrap();
    assert_eq!(
        queued["datos"],
        json!({"fecha": "2026-12-04T10:30:00.000Z", "lista": [1, null, 2.5], "importe": "9.99"})
    );
    // A misspelt key of an operation is named, and nothing is queued.
    let err = wait(engine.enqueue(js_eval(
        "{ coleccion: 'ventas', objeto_id: 'v2', operacion: 'crear', dato: {} }",
    )))
    .await
    .unwrap_err();
    let message = js_sys::Reflect::get(&err, &"message".into())
        .unwrap()
        .as_string()
        .unwrap();
    assert!(message.contains("`dato`"), "{message}");
    let count = wait(engine.pending_count()).await.unwrap();
    assert_eq!(count.as_f64(), Some(1.0));
    engine.close();
    wait(pos_sync::browser::PosSync::delete_database(
        db.as_str().into(),
    ))
    .await
    .unwrap();
}

/// The `name` and `message` of a JS error.
fn named(err: &JsValue) -> (String, String) {
    let field = |f: &str| {
        js_sys::Reflect::get(err, &f.into())
            .unwrap()
            .as_string()
            .unwrap_or_default()
    };
    (field("name"), field("message"))
}

#[wasm_bindgen_test]
async fn arguments_of_the_wrong_type_reject_with_a_named_error_instead_of_trapping() {
    use pos_sync::browser::PosSync;
    let db = format!("test-read-args-{}", js_sys::Math::random());
    let engine = PosSync::connect(js_eval(&format!(
        "{{ storeId: 4, dbName: {db:?}, hubUrl: 'http://127.0.0.1:9' }}"
    )))
    .await
    .unwrap();
    let not_strings = [
        JsValue::from(5),
        JsValue::NULL,
        JsValue::UNDEFINED,
        js_eval("{}"),
    ];
    for bad in &not_strings {
        let err = wait(engine.get(bad.clone(), "x".into())).await.unwrap_err();
        assert_eq!(
            named(&err),
            (
                "PosSyncInvalidError".into(),
                "coleccion must be a string".into()
            )
        );
        let err = wait(engine.get("productos".into(), bad.clone()))
            .await
            .unwrap_err();
        assert_eq!(named(&err).1, "objeto_id must be a string");
        let err = wait(engine.list(bad.clone())).await.unwrap_err();
        assert_eq!(named(&err).0, "PosSyncInvalidError");
        let err = wait(PosSync::delete_database(bad.clone()))
            .await
            .unwrap_err();
        assert_eq!(named(&err).1, "the database name must be a string");
        let listener = js_eval("() => {}");
        let err = engine
            .add_event_listener(bad.clone(), listener)
            .unwrap_err();
        assert_eq!(named(&err).1, "the event must be a string");
        let err = engine
            .add_event_listener("change".into(), bad.clone())
            .unwrap_err();
        assert_eq!(named(&err).1, "the listener must be a function");
    }
    // The engine is unharmed: it still queues and reads.
    let op = js_eval("{ coleccion: 'ventas', objeto_id: 'v1', operacion: 'crear' }");
    wait(engine.enqueue(op)).await.unwrap();
    assert_eq!(
        wait(engine.pending_count()).await.unwrap().as_f64(),
        Some(1.0)
    );
    assert!(wait(engine.get("ventas".into(), "v1".into()))
        .await
        .unwrap()
        .is_object());
    engine.close();
    wait(PosSync::delete_database(db.as_str().into()))
        .await
        .unwrap();
    // A number past what a JS number holds exactly is refused with the limit that applies.
    let err = PosSync::connect(js_eval("{ storeId: 2 ** 53 }"))
        .await
        .err()
        .unwrap();
    assert!(
        named(&err).1.contains("from 0 to 9007199254740991"),
        "{:?}",
        named(&err)
    );
}

#[wasm_bindgen_test]
async fn a_real_hubs_answers_and_error_bodies_are_read_through_the_transport() {
    use pos_sync::browser::http::FetchTransport;
    use pos_sync::core::protocol::PushRequest;
    use pos_sync::core::transport::{Transport, TransportError};
    let Some(hub) = option_env!("POS_SYNC_TEST_HUB") else {
        panic!("build the browser tests with POS_SYNC_TEST_HUB set to a running hub (scripts/test.sh does)")
    };
    let transport = FetchTransport::new(hub);
    // A store never configured: the hub's defaults, read from its answer.
    let settings = transport.config(990_001).await.unwrap();
    assert_eq!(settings.tamano_lote, 500);
    // Too many operations: the hub's 413, its code read from the error body.
    let operations = (0..1001)
        .map(|i| Operation {
            store: 1,
            ..operation(i)
        })
        .collect();
    let request = PushRequest {
        store: 1,
        operations,
        after: None,
    };
    match transport.push(&request).await {
        Err(TransportError::Http {
            status: 413,
            body: Some(body),
        }) => assert_eq!(body.code, "lote_demasiado_grande"),
        other => panic!("expected the hub's 413 with its code, got {other:?}"),
    }
}
