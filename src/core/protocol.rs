//! The wire protocol between engine and hub (see "The wire contract" in DESIGN.md).
//!
//! Push: `POST /api/sincronizacion/cola/` with a [`PushRequest`]; the hub answers a
//! [`PushResponse`] with one [`OpResult`] per operation, in order. Pull:
//! `GET /api/sincronizacion/cambios/?desde=&limite=&coleccion=` answers a [`PullResponse`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::model::{Document, OpKind, OpStatus, Operation, StoreId};

/// The most operations one push may carry.
pub const MAX_BATCH: usize = 1000;
/// The most changes one pull returns.
pub const MAX_PULL: u32 = 5000;
/// How many changes a pull returns when it does not say.
pub const DEFAULT_PULL: u32 = 500;
/// The error code of a chained push the hub did not apply because it never recorded the
/// operation the push waited for ([`PushRequest::after`]).
pub const PREDECESSOR_MISSING: &str = "predecesor_ausente";
/// The longest collection name.
pub const MAX_COLLECTION_LEN: usize = 64;
/// The longest document id.
pub const MAX_DOC_ID_LEN: usize = 256;
/// How deep an operation's `datos` may nest objects and arrays, `datos` itself being the
/// first level. A till's data is nearly flat; the bound keeps every request well inside the
/// 128 levels the hub's JSON reader takes for a whole body, so no operation can make a push
/// unreadable and hold up the queue behind it.
pub const MAX_DATA_DEPTH: usize = 32;

/// Whether `value` nests objects or arrays more than `levels` deep (a scalar: 0 levels).
pub fn nested_deeper(value: &Value, levels: usize) -> bool {
    let deeper = |v: &Value| nested_deeper(v, levels - 1);
    match value {
        Value::Object(map) => levels == 0 || map.values().any(deeper),
        Value::Array(items) => levels == 0 || items.iter().any(deeper),
        _ => false,
    }
}

/// A batch of operations from one store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The store sending them.
    #[serde(rename = "tienda")]
    pub store: StoreId,
    /// The operations, in the order the hub must apply them.
    #[serde(rename = "operaciones")]
    pub operations: Vec<Operation>,
    /// An operation the hub must have recorded before it applies this batch: the last one of
    /// the batch sent before it, so a store can send its next batch without waiting for the
    /// answer to the previous one. The hub holds the batch until then (briefly), and answers
    /// 409 `predecesor_ausente`, applying nothing, if it never arrives.
    #[serde(
        rename = "despues_de",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub after: Option<Uuid>,
}

/// The hub's answer for one operation. Re-sending the operation returns the same answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    /// The operation's id.
    pub id: Uuid,
    /// Where it stands on the hub.
    #[serde(rename = "estado")]
    pub status: OpStatus,
    /// The document's version after it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The conflict's details, when in conflict.
    #[serde(rename = "conflicto", default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Value>,
    /// Why it was not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A stable code for `error` (`no_encontrado`, `ya_existe`, `id_reutilizado`, ...).
    #[serde(rename = "codigo", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// True when this answer is a replay of an earlier one (the operation was sent before).
    #[serde(
        rename = "duplicada",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub duplicate: bool,
}

/// The hub's answer to a push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// The store that pushed.
    #[serde(rename = "tienda")]
    pub store: StoreId,
    /// One result per operation, in the request's order.
    #[serde(rename = "resultados")]
    pub results: Vec<OpResult>,
    /// The sync-history row written for this push.
    #[serde(rename = "registro", default)]
    pub log_id: i64,
}

/// What a pull asks for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PullQuery {
    /// Changes after this cursor (0: everything).
    pub since: u64,
    /// At most this many.
    pub limit: u32,
    /// Only these collections (empty: all).
    pub collections: Vec<String>,
}

impl PullQuery {
    /// The query string, without the `?`.
    pub fn to_query_string(&self) -> String {
        let mut q = format!("desde={}&limite={}", self.since, self.limit);
        if !self.collections.is_empty() {
            q.push_str("&coleccion=");
            q.push_str(&self.collections.join(","));
        }
        q
    }
}

/// The largest integer a JavaScript number holds exactly (2^53 − 1): deltas beyond it would
/// reach the hub rounded, as floats.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// One changed document in a pull, with the hub's commit sequence. On the wire the document's
/// fields sit beside `seq` and `reloj`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ChangeWire")]
pub struct Change {
    /// The hub's commit sequence of this change; unique and increasing.
    pub seq: u64,
    /// The document as it now stands.
    #[serde(flatten)]
    pub doc: Document,
    /// The clock of the change, so the store's clock orders its next writes after it.
    #[serde(rename = "reloj", default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<super::clock::Hlc>,
}

/// A [`Change`] as read from the wire: flat fields, read directly (serde's `flatten` would
/// buffer every change first, which is slower and costs the engine's wasm the buffering code).
#[derive(Deserialize)]
struct ChangeWire {
    seq: u64,
    coleccion: String,
    objeto_id: String,
    version: u64,
    datos: super::model::Fields,
    #[serde(default)]
    eliminado: bool,
    #[serde(default)]
    reloj: Option<super::clock::Hlc>,
}

impl From<ChangeWire> for Change {
    fn from(w: ChangeWire) -> Self {
        Change {
            seq: w.seq,
            doc: Document {
                collection: w.coleccion,
                doc_id: w.objeto_id,
                version: w.version,
                data: w.datos,
                deleted: w.eliminado,
            },
            clock: w.reloj,
        }
    }
}

/// The hub's answer to a pull.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// The changes, by `seq`.
    #[serde(rename = "cambios")]
    pub changes: Vec<Change>,
    /// Where the next pull starts.
    pub cursor: u64,
    /// Whether more changes wait past `cursor`.
    #[serde(rename = "hay_mas")]
    pub more: bool,
}

/// An open conflict as a store sees it (`GET /api/sincronizacion/conflictos/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictSummary {
    /// The conflict's id on the hub.
    pub id: i64,
    /// The operation it concerns.
    pub operacion_id: String,
    /// `campos`, `integridad` or `inventario`.
    pub tipo: String,
    /// The document's collection.
    pub coleccion: String,
    /// The document's id.
    pub objeto_id: String,
    /// The fields in conflict.
    #[serde(default)]
    pub campos: Vec<String>,
    /// `abierto` or `resuelto`.
    pub estado: String,
    /// When it was detected.
    pub fecha_creacion: String,
}

/// Where one operation stands on the hub (a row of `GET /api/sincronizacion/cola/?id=...`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpState {
    /// The operation.
    pub id: Uuid,
    /// Its state on the hub.
    #[serde(rename = "estado")]
    pub status: OpStatus,
    /// Whether a conflict is attached.
    #[serde(rename = "tiene_conflicto", default)]
    pub has_conflict: bool,
    /// Its last error.
    #[serde(default)]
    pub error: Option<String>,
}

/// A DRF list page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// How many in all.
    pub count: u64,
    /// This page's rows.
    pub results: Vec<T>,
}

/// The error body every hub error uses (DRF's shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub detail: String,
    /// A stable code, for programs.
    pub code: String,
}

pub mod path {
    //! The hub's API paths, in one place, for every transport.

    use super::PullQuery;
    use crate::core::model::StoreId;
    use uuid::Uuid;

    /// Push a batch (`POST`).
    pub const PUSH: &str = "/api/sincronizacion/cola/";

    /// The change feed after a cursor.
    pub fn pull(query: &PullQuery) -> String {
        format!("/api/sincronizacion/cambios/?{}", query.to_query_string())
    }

    /// A store's configuration.
    pub fn config(store: StoreId) -> String {
        format!("/api/sincronizacion/configuracion/{store}/")
    }

    /// A store's open conflicts.
    pub fn open_conflicts(store: StoreId) -> String {
        format!("/api/sincronizacion/conflictos/?tienda={store}&estado=abierto&limit=1000")
    }

    /// Where some of a store's operations stand (at most 100 ids).
    pub fn states(store: StoreId, ids: &[Uuid]) -> String {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        format!(
            "/api/sincronizacion/cola/?tienda={store}&id={}&limit=1000",
            ids.join(",")
        )
    }
}

/// An operation whose shape breaks the protocol, whatever the hub holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidOperation {
    /// The wire name of the offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Whether a collection name is 1 to 64 lowercase ASCII letters, digits, `_` or `-`.
pub fn valid_collection(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COLLECTION_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks an operation's shape: names, sizes, and integer deltas for increments.
pub fn validate(op: &Operation) -> Result<(), InvalidOperation> {
    let bad = |field, message: String| Err(InvalidOperation { field, message });
    if !valid_collection(&op.collection) {
        return bad(
            "coleccion",
            format!(
                "{:?} must be 1 to {MAX_COLLECTION_LEN} lowercase letters, digits, '_' or '-'",
                op.collection
            ),
        );
    }
    if op.doc_id.is_empty() || op.doc_id.len() > MAX_DOC_ID_LEN {
        return bad("objeto_id", format!("must be 1 to {MAX_DOC_ID_LEN} bytes"));
    }
    if op.doc_id.chars().any(char::is_control) {
        return bad("objeto_id", "must not contain control characters".into());
    }
    if op
        .data
        .values()
        .any(|v| nested_deeper(v, MAX_DATA_DEPTH - 1))
    {
        return bad(
            "datos",
            format!("nests objects and arrays more than {MAX_DATA_DEPTH} levels deep"),
        );
    }
    match op.kind {
        OpKind::Increment => {
            if op.data.is_empty() {
                return bad(
                    "datos",
                    "an increment needs at least one {field: delta}".into(),
                );
            }
            let exact = |v: &Value| v.as_i64().is_some_and(|d| d.abs() <= MAX_SAFE_INTEGER);
            if let Some((k, _)) = op.data.iter().find(|(_, v)| !exact(v)) {
                return bad(
                    "datos",
                    format!(
                        "the delta of {k:?} must be an integer within ±{MAX_SAFE_INTEGER} \
                         (what a browser holds exactly)"
                    ),
                );
            }
        }
        OpKind::Update if op.data.is_empty() => {
            return bad("datos", "an update needs at least one field".into());
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::Hlc;
    use crate::core::testing::op;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn an_operation_uses_the_contract_field_names() {
        let mut o = op(OpKind::Increment, json!({"stock": -2}));
        o.seq = Some(7);
        let v = serde_json::to_value(&o).unwrap();
        for field in [
            "id",
            "tienda",
            "coleccion",
            "objeto_id",
            "operacion",
            "datos",
            "version_base",
            "reloj",
            "prioridad",
            "estado",
            "tiene_conflicto",
            "intentos",
            "error",
            "fecha_creacion",
            "fecha_procesamiento",
        ] {
            assert!(v.get(field).is_some(), "missing {field} in {v}");
        }
        assert_eq!(v["operacion"], "incrementar");
        assert_eq!(v["estado"], "pendiente");
        assert_eq!(v["datos"], json!({"stock": -2}));
    }

    /// `{"a": {"a": ... 1}}` with `levels` objects, the outermost included.
    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn datos_may_nest_32_levels_and_no_more() {
        let nested_data = |levels: usize| match nested(levels) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let mut o = op(OpKind::Create, json!({}));
        o.data = nested_data(MAX_DATA_DEPTH);
        assert_eq!(validate(&o), Ok(()));
        o.data = nested_data(MAX_DATA_DEPTH + 1);
        let e = validate(&o).unwrap_err();
        assert_eq!(e.field, "datos");
        assert_eq!(
            e.message,
            "nests objects and arrays more than 32 levels deep"
        );
        // Arrays count as objects do; scalars do not.
        assert!(!nested_deeper(&json!([[1], {"b": [2]}]), 3));
        assert!(nested_deeper(&json!([[1], {"b": [2]}]), 2));
        assert!(!nested_deeper(&json!("text"), 0));
        assert!(nested_deeper(&json!([]), 0));
    }

    #[test]
    fn a_change_flattens_the_document() {
        let c: Change = serde_json::from_value(json!({
            "seq": 9, "coleccion": "productos", "objeto_id": "P1", "version": 3,
            "datos": {"stock": 1}, "eliminado": false
        }))
        .unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.doc.version, 3);
        assert_eq!(c.clock, None);
        assert_eq!(serde_json::to_value(&c).unwrap()["objeto_id"], "P1");
        // What the hub writes reads back the same, clock and tombstone included.
        let mut c2 = c.clone();
        c2.doc.deleted = true;
        c2.clock = Some("0001733240000000-00002-4".parse().unwrap());
        let back: Change = serde_json::from_str(&serde_json::to_string(&c2).unwrap()).unwrap();
        assert_eq!(back, c2);
    }

    #[test]
    fn validation_names_the_field() {
        let mut o = op(OpKind::Increment, json!({"stock": 1.5}));
        assert_eq!(validate(&o).unwrap_err().field, "datos");
        o.data = json!({"stock": -1}).as_object().unwrap().clone();
        assert!(validate(&o).is_ok());
        for (delta, ok) in [
            (json!(MAX_SAFE_INTEGER), true),
            (json!(-MAX_SAFE_INTEGER), true),
            (json!(MAX_SAFE_INTEGER + 1), false),
            (json!(-MAX_SAFE_INTEGER - 1), false),
            (json!(u64::MAX), false),
        ] {
            o.data = json!({ "stock": delta }).as_object().unwrap().clone();
            assert_eq!(validate(&o).is_ok(), ok, "{delta}");
        }
        o.collection = "Productos".into();
        assert_eq!(validate(&o).unwrap_err().field, "coleccion");
        o.collection = "productos".into();
        o.doc_id = String::new();
        assert_eq!(validate(&o).unwrap_err().field, "objeto_id");
        let empty_update = op(OpKind::Update, json!({}));
        assert_eq!(validate(&empty_update).unwrap_err().field, "datos");
    }

    #[test]
    fn pull_query_string() {
        let q = PullQuery {
            since: 5,
            limit: 100,
            collections: vec!["productos".into(), "ventas".into()],
        };
        assert_eq!(
            q.to_query_string(),
            "desde=5&limite=100&coleccion=productos,ventas"
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z0-9 .]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_op() -> impl Strategy<Value = Operation> {
        (
            any::<u128>(),
            0u64..1000,
            "[a-z_]{1,12}",
            "[A-Za-z0-9-]{1,20}",
            prop_oneof![
                Just(OpKind::Create),
                Just(OpKind::Update),
                Just(OpKind::Delete),
                Just(OpKind::Increment)
            ],
            prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..5),
            any::<u64>(),
            (0u64..9_999_999_999_999, any::<u32>(), any::<u64>()),
            any::<i32>(),
            any::<u32>(),
            proptest::option::of("[ -~]{0,20}"),
        )
            .prop_map(
                |(id, store, coll, doc, kind, data, base, (m, c, n), prio, attempts, error)| {
                    Operation {
                        id: Uuid::from_u128(id),
                        store,
                        collection: coll,
                        doc_id: doc,
                        kind,
                        data: data.into_iter().collect(),
                        base_version: base,
                        base_data: None,
                        clock: Hlc {
                            millis: m,
                            counter: c,
                            node: n,
                        },
                        priority: prio,
                        status: OpStatus::Pending,
                        has_conflict: false,
                        attempts,
                        error,
                        created_at: "2026-12-03T16:00:00Z".into(),
                        processed_at: None,
                        seq: None,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn push_requests_round_trip_through_json(ops in prop::collection::vec(arb_op(), 0..5), store in any::<u32>(), after in proptest::option::of(any::<u128>())) {
            let req = PushRequest { store: store.into(), operations: ops, after: after.map(Uuid::from_u128) };
            let text = serde_json::to_string(&req).unwrap();
            let back: PushRequest = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, req);
        }

        #[test]
        fn results_round_trip_through_json(id in any::<u128>(), version in proptest::option::of(any::<u64>()), dup in any::<bool>()) {
            let r = OpResult { id: Uuid::from_u128(id), status: OpStatus::Applied, version, conflict: None, error: None, code: None, duplicate: dup };
            let back: OpResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            prop_assert_eq!(back, r);
        }
    }
}
