//! Reading the engine's records, the hub's answers and the page's inputs from JS values.
//!
//! The browser has already parsed every value the engine reads: IndexedDB hands back records
//! as JS objects, the hub's answers go through the engine's native `JSON.parse`, and the
//! page's options and operations are JS objects to begin with. So the engine reads each
//! type's fields from the JS object directly, one small function per type, instead of
//! through serde's derived `Deserialize` impls and a JSON reader.
//!
//! Why by hand: the derived impls, instantiated for a JSON reader and inlined into the
//! engine's async state machines, were about 45 KB of the 149.6 KB gzipped wasm (measured by
//! building with them stubbed out), and the same impls over `serde_json::Value` or
//! serde-wasm-bindgen's walker cost nearly as much (they saved 2.6 KB and 1.5 KB). With these
//! functions instead the wasm came to 119.2 KB, under the 120 KB the engine is held to. The
//! core's types keep their serde impls, which the hub and the tests use; the browser tests
//! check these readers against serde on the same JSON.
//!
//! The rules follow serde_json's for the same JSON: a missing field takes its default where
//! the type has one and is an error where it has none; `null` is absent only for optional
//! fields; integers must be whole, in range and, for JS numbers, at most 2^53 − 1; unknown
//! fields are skipped, except in the page's inputs ([`open_options`], [`new_operation`]),
//! where a misspelt key is an error naming it.

use std::collections::BTreeMap;

use js_sys::{Array, Object, Reflect};
use serde_json::{Map, Number, Value};
use wasm_bindgen::{JsCast, JsValue};

use super::js::{JsNewOperation, OpenOptions};
use crate::core::clock::Hlc;
use crate::core::config::SyncSettings;
use crate::core::model::{Document, Fields, OpKind, OpStatus, Operation};
use crate::core::protocol::{
    Change, ConflictSummary, ErrorBody, OpResult, OpState, Page, PullResponse, PushResponse,
    MAX_SAFE_INTEGER,
};

/// A failure to read a value, saying which field and why.
pub type Result<T> = std::result::Result<T, String>;

/// A JS object whose fields are read by name.
struct Obj<'a>(&'a JsValue);

thread_local! {
    /// The field names read so far, each made a JS string once rather than once per record
    /// (a queue read back takes the same seventeen names from ten thousand operations).
    static NAMES: std::cell::RefCell<Vec<(&'static str, JsValue)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<'a> Obj<'a> {
    /// `value` as an object, or an error naming `what` it should have been.
    fn new(value: &'a JsValue, what: &str) -> Result<Self> {
        if value.is_object() && !Array::is_array(value) {
            Ok(Obj(value))
        } else {
            Err(format!("expected {what} (an object)"))
        }
    }

    /// The field, `None` when absent (undefined).
    fn get(&self, key: &'static str) -> Option<JsValue> {
        NAMES
            .with(|names| {
                let mut names = names.borrow_mut();
                let at = match names.iter().position(|(name, _)| *name == key) {
                    Some(at) => at,
                    None => {
                        names.push((key, JsValue::from_str(key)));
                        names.len() - 1
                    }
                };
                Reflect::get(self.0, &names[at].1)
            })
            .ok()
            .filter(|v| !v.is_undefined())
    }

    /// A required field.
    fn req(&self, key: &'static str) -> Result<JsValue> {
        self.get(key)
            .ok_or_else(|| format!("missing field `{key}`"))
    }

    /// An optional field: absent and `null` are both `None`.
    fn opt(&self, key: &'static str) -> Option<JsValue> {
        self.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &'static str) -> Result<String> {
        string(&self.req(key)?, key)
    }

    fn opt_string(&self, key: &'static str) -> Result<Option<String>> {
        self.opt(key).map(|v| string(&v, key)).transpose()
    }

    fn uint(&self, key: &'static str, max: u64) -> Result<u64> {
        uint(&self.req(key)?, key, max)
    }

    fn opt_uint(&self, key: &'static str, max: u64) -> Result<Option<u64>> {
        self.opt(key).map(|v| uint(&v, key, max)).transpose()
    }

    /// An integer field that defaults to `default` when absent.
    fn uint_or(&self, key: &'static str, max: u64, default: u64) -> Result<u64> {
        self.get(key).map_or(Ok(default), |v| uint(&v, key, max))
    }

    fn bool_or(&self, key: &'static str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("`{key}` must be true or false")),
        }
    }

    /// A JSON object field (an operation's `datos`, a document's fields).
    fn fields(&self, key: &'static str) -> Result<Fields> {
        fields(&self.req(key)?, key)
    }

    fn opt_fields(&self, key: &'static str) -> Result<Option<Fields>> {
        self.opt(key).map(|v| fields(&v, key)).transpose()
    }

    /// An array field, each element read by `item`; absent is an empty array when `optional`.
    fn list<T>(
        &self,
        key: &'static str,
        optional: bool,
        item: impl Fn(&JsValue) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self.get(key) {
            None if optional => Ok(Vec::new()),
            None => Err(format!("missing field `{key}`")),
            Some(v) => list(&v, key, item),
        }
    }

    fn uuid(&self, key: &'static str) -> Result<uuid::Uuid> {
        uuid(&self.req(key)?, key)
    }

    fn status_or_pending(&self, key: &'static str) -> Result<OpStatus> {
        match self.get(key) {
            None => Ok(OpStatus::Pending),
            Some(v) => {
                let s = string(&v, key)?;
                OpStatus::parse(&s).ok_or_else(|| format!("unknown `{key}` {s:?}"))
            }
        }
    }

    fn kind(&self, key: &'static str) -> Result<OpKind> {
        let s = self.string(key)?;
        OpKind::parse(&s).ok_or_else(|| {
            format!("unknown `{key}` {s:?}: expected crear, actualizar, eliminar or incrementar")
        })
    }

    /// Fails on a key not in `known` (the page's inputs, made plain data first, so every key
    /// has a value: a misspelt option is an error).
    fn only(&self, known: &[&str]) -> Result<()> {
        let keys = Object::keys(self.0.unchecked_ref::<Object>());
        for key in keys.iter() {
            let key = key.as_string().unwrap_or_default();
            if !known.contains(&key.as_str()) {
                return Err(format!(
                    "unknown field `{key}`, expected one of {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn string(v: &JsValue, key: &str) -> Result<String> {
    v.as_string()
        .ok_or_else(|| format!("`{key}` must be a string"))
}

/// A whole number from 0 to `max` (and at most 2^53 − 1, what a JS number holds exactly).
fn uint(v: &JsValue, key: &str, max: u64) -> Result<u64> {
    let max = max.min(MAX_SAFE_INTEGER as u64);
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= max as f64 => Ok(n as u64),
        _ => Err(format!("`{key}` must be a whole number from 0 to {max}")),
    }
}

/// A whole number a JS number holds exactly, negative ones too (row ids).
fn int64(v: &JsValue, key: &str) -> Result<i64> {
    let limit = MAX_SAFE_INTEGER as f64;
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() <= limit => Ok(n as i64),
        _ => Err(format!("`{key}` must be a whole number")),
    }
}

/// A whole number in `i32`'s range.
fn int32(v: &JsValue, key: &str) -> Result<i32> {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= i32::MIN as f64 && n <= i32::MAX as f64 => Ok(n as i32),
        _ => Err(format!(
            "`{key}` must be a whole number from {} to {}",
            i32::MIN,
            i32::MAX
        )),
    }
}

fn uuid(v: &JsValue, key: &str) -> Result<uuid::Uuid> {
    let s = string(v, key)?;
    uuid::Uuid::parse_str(&s).map_err(|_| format!("`{key}` must be a UUID, not {s:?}"))
}

fn hlc(v: &JsValue, key: &str) -> Result<Hlc> {
    let s = string(v, key)?;
    s.parse()
        .map_err(|_| format!("`{key}` must be a clock (millis-counter-node), not {s:?}"))
}

fn list<T>(v: &JsValue, key: &str, item: impl Fn(&JsValue) -> Result<T>) -> Result<Vec<T>> {
    if !Array::is_array(v) {
        return Err(format!("`{key}` must be an array"));
    }
    Array::from(v).iter().map(|x| item(&x)).collect()
}

fn strings(v: &JsValue, key: &str) -> Result<Vec<String>> {
    list(v, key, |x| string(x, key))
}

/// An object of whole numbers by name (priorities).
fn int_map(v: &JsValue, key: &str) -> Result<BTreeMap<String, i32>> {
    Obj::new(v, key)?;
    let mut map = BTreeMap::new();
    for name in Object::keys(v.unchecked_ref::<Object>()).iter() {
        let n = Reflect::get(v, &name).unwrap_or(JsValue::UNDEFINED);
        if !n.is_undefined() {
            let name = name.as_string().unwrap_or_default();
            let n = int32(&n, &format!("{key}.{name}"))?;
            map.insert(name, n);
        }
    }
    Ok(map)
}

fn fields(v: &JsValue, key: &str) -> Result<Fields> {
    match json(v, key)? {
        Value::Object(map) => Ok(map),
        _ => Err(format!("`{key}` must be an object")),
    }
}

/// How deep a value read here may nest objects and arrays: serde_json's own limit. It bounds
/// the reader's recursion, which shares the wasm's stack (a value thousands of levels deep
/// overran it and broke the engine until a reload).
const READ_DEPTH: usize = 128;

/// Any JSON value, as `JSON.stringify` then serde_json would read it: `undefined` members are
/// left out, whole numbers up to 2^53 − 1 are integers, other finite numbers floats; nesting
/// past [`READ_DEPTH`] is an error.
fn json(v: &JsValue, key: &str) -> Result<Value> {
    json_within(v, key, READ_DEPTH)
}

/// [`json`], with `levels` of nesting left.
fn json_within(v: &JsValue, key: &str, levels: usize) -> Result<Value> {
    if v.is_null() || v.is_undefined() {
        return Ok(Value::Null);
    }
    if let Some(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(s) = v.as_string() {
        return Ok(Value::String(s));
    }
    if let Some(n) = v.as_f64() {
        let limit = MAX_SAFE_INTEGER as f64;
        return if n.fract() == 0.0 && n.abs() <= limit {
            Ok(if n >= 0.0 {
                Value::from(n as u64)
            } else {
                Value::from(n as i64)
            })
        } else {
            Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| format!("`{key}` holds a number JSON cannot write"))
        };
    }
    // An array is an object too; checked only where the levels have run out, so a value read
    // within them costs no extra call.
    if levels == 0 && v.is_object() {
        return Err(format!(
            "`{key}` nests objects and arrays more than {READ_DEPTH} levels deep"
        ));
    }
    if Array::is_array(v) {
        return list(v, key, |x| json_within(x, key, levels - 1)).map(Value::Array);
    }
    if v.is_object() {
        let mut map = Map::new();
        for name in Object::keys(v.unchecked_ref::<Object>()).iter() {
            let value = Reflect::get(v, &name).unwrap_or(JsValue::UNDEFINED);
            if !value.is_undefined() {
                let value = json_within(&value, key, levels - 1)?;
                map.insert(name.as_string().unwrap_or_default(), value);
            }
        }
        return Ok(Value::Object(map));
    }
    Err(format!("`{key}` holds a value JSON cannot write"))
}

/// A queued operation, as a queue page or the page's own record holds it.
pub fn operation(v: &JsValue) -> Result<Operation> {
    let o = Obj::new(v, "an operation")?;
    Ok(Operation {
        id: o.uuid("id")?,
        store: o.uint("tienda", u64::MAX)?,
        collection: o.string("coleccion")?,
        doc_id: o.string("objeto_id")?,
        kind: o.kind("operacion")?,
        data: match o.get("datos") {
            None => Fields::new(),
            Some(d) => fields(&d, "datos")?,
        },
        base_version: o.uint_or("version_base", u64::MAX, 0)?,
        base_data: o.opt_fields("datos_base")?,
        clock: hlc(&o.req("reloj")?, "reloj")?,
        priority: match o.get("prioridad") {
            None => 0,
            Some(p) => int32(&p, "prioridad")?,
        },
        status: o.status_or_pending("estado")?,
        has_conflict: o.bool_or("tiene_conflicto", false)?,
        attempts: o.uint_or("intentos", u32::MAX.into(), 0)? as u32,
        error: o.opt_string("error")?,
        created_at: match o.get("fecha_creacion") {
            None => String::new(),
            Some(s) => string(&s, "fecha_creacion")?,
        },
        processed_at: o.opt_string("fecha_procesamiento")?,
        seq: o.opt_uint("seq", u64::MAX)?,
    })
}

/// An array of operations.
pub fn operations(v: &JsValue) -> Result<Vec<Operation>> {
    list(v, "operations", operation)
}

/// A cached document.
pub fn document(v: &JsValue) -> Result<Document> {
    let o = Obj::new(v, "a document")?;
    Ok(Document {
        collection: o.string("coleccion")?,
        doc_id: o.string("objeto_id")?,
        version: o.uint("version", u64::MAX)?,
        data: o.fields("datos")?,
        deleted: o.bool_or("eliminado", false)?,
    })
}

/// An array of cached documents.
pub fn documents(v: &JsValue) -> Result<Vec<Document>> {
    list(v, "documents", document)
}

/// The hub's answer to a push.
pub fn push_response(v: &JsValue) -> Result<PushResponse> {
    let o = Obj::new(v, "a push answer")?;
    Ok(PushResponse {
        store: o.uint("tienda", u64::MAX)?,
        results: o.list("resultados", false, op_result)?,
        log_id: o.get("registro").map_or(Ok(0), |r| int64(&r, "registro"))?,
    })
}

fn op_result(v: &JsValue) -> Result<OpResult> {
    let o = Obj::new(v, "an operation's result")?;
    Ok(OpResult {
        id: o.uuid("id")?,
        status: match o.get("estado") {
            None => return Err("missing field `estado`".into()),
            Some(_) => o.status_or_pending("estado")?,
        },
        version: o.opt_uint("version", u64::MAX)?,
        conflict: o
            .opt("conflicto")
            .map(|c| json(&c, "conflicto"))
            .transpose()?,
        error: o.opt_string("error")?,
        code: o.opt_string("codigo")?,
        duplicate: o.bool_or("duplicada", false)?,
    })
}

/// The hub's answer to a pull.
pub fn pull_response(v: &JsValue) -> Result<PullResponse> {
    let o = Obj::new(v, "a pull answer")?;
    Ok(PullResponse {
        changes: o.list("cambios", false, change)?,
        cursor: o.uint("cursor", u64::MAX)?,
        more: o
            .req("hay_mas")?
            .as_bool()
            .ok_or("`hay_mas` must be true or false")?,
    })
}

fn change(v: &JsValue) -> Result<Change> {
    let o = Obj::new(v, "a change")?;
    Ok(Change {
        seq: o.uint("seq", u64::MAX)?,
        doc: document(v)?,
        clock: o.opt("reloj").map(|c| hlc(&c, "reloj")).transpose()?,
    })
}

/// The part of the store's configuration the engine obeys.
pub fn sync_settings(v: &JsValue) -> Result<SyncSettings> {
    let o = Obj::new(v, "a configuration")?;
    let defaults = SyncSettings::default();
    Ok(SyncSettings {
        intervalo_ms: o.uint_or(
            "intervalo_ms",
            u32::MAX.into(),
            defaults.intervalo_ms.into(),
        )? as u32,
        prioridades: match o.get("prioridades") {
            None => defaults.prioridades,
            Some(p) => int_map(&p, "prioridades")?,
        },
        tamano_lote: o.uint_or("tamano_lote", u32::MAX.into(), defaults.tamano_lote as u64)?
            as usize,
        colecciones_cache: match o.get("colecciones_cache") {
            None => defaults.colecciones_cache,
            Some(c) => strings(&c, "colecciones_cache")?,
        },
        resync: o.uint_or("resync", u64::MAX, 0)?,
    })
}

/// A DRF list page, each row read by `row`.
pub fn page<T>(v: &JsValue, row: impl Fn(&JsValue) -> Result<T>) -> Result<Page<T>> {
    let o = Obj::new(v, "a list page")?;
    Ok(Page {
        count: o.uint("count", u64::MAX)?,
        results: o.list("results", false, row)?,
    })
}

/// An open conflict of this store.
pub fn conflict_summary(v: &JsValue) -> Result<ConflictSummary> {
    let o = Obj::new(v, "a conflict")?;
    Ok(ConflictSummary {
        id: int64(&o.req("id")?, "id")?,
        operacion_id: o.string("operacion_id")?,
        tipo: o.string("tipo")?,
        coleccion: o.string("coleccion")?,
        objeto_id: o.string("objeto_id")?,
        campos: o.list("campos", true, |c| string(c, "campos"))?,
        estado: o.string("estado")?,
        fecha_creacion: o.string("fecha_creacion")?,
    })
}

/// Where one held operation stands on the hub.
pub fn op_state(v: &JsValue) -> Result<OpState> {
    let o = Obj::new(v, "an operation's state")?;
    o.req("estado")?;
    Ok(OpState {
        id: o.uuid("id")?,
        status: o.status_or_pending("estado")?,
        has_conflict: o.bool_or("tiene_conflicto", false)?,
        error: o.opt_string("error")?,
    })
}

/// The hub's error body, when it is one.
pub fn error_body(v: &JsValue) -> Result<ErrorBody> {
    let o = Obj::new(v, "an error")?;
    Ok(ErrorBody {
        detail: o.string("detail")?,
        code: o.string("code")?,
    })
}

/// `PosSync.open`'s options.
pub(crate) fn open_options(v: &JsValue) -> Result<OpenOptions> {
    let o = Obj::new(v, "the options")?;
    o.only(&[
        "storeId",
        "hubUrl",
        "dbName",
        "batchSize",
        "pullLimit",
        "syncIntervalMs",
        "cachedCollections",
        "priorities",
    ])?;
    Ok(OpenOptions {
        store_id: o.uint("storeId", u64::MAX)?,
        hub_url: match o.get("hubUrl") {
            None => String::new(),
            Some(u) => string(&u, "hubUrl")?,
        },
        db_name: o.opt_string("dbName")?,
        batch_size: o.opt_uint("batchSize", u64::MAX)?.map(|b| b as usize),
        pull_limit: o.opt_uint("pullLimit", u32::MAX.into())?.map(|p| p as u32),
        sync_interval_ms: o
            .opt_uint("syncIntervalMs", u32::MAX.into())?
            .map(|p| p as u32),
        cached_collections: o.list("cachedCollections", true, |c| {
            string(c, "cachedCollections")
        })?,
        priorities: match o.get("priorities") {
            None => BTreeMap::new(),
            Some(p) => int_map(&p, "priorities")?,
        },
    })
}

/// One operation the page queues.
pub(crate) fn new_operation(v: &JsValue) -> Result<JsNewOperation> {
    let o = Obj::new(v, "an operation")?;
    o.only(&[
        "id",
        "coleccion",
        "objeto_id",
        "operacion",
        "datos",
        "version_base",
        "prioridad",
    ])?;
    Ok(JsNewOperation {
        id: o.opt("id").map(|i| uuid(&i, "id")).transpose()?,
        coleccion: o.string("coleccion")?,
        objeto_id: o.string("objeto_id")?,
        operacion: o.kind("operacion")?,
        datos: o.opt_fields("datos")?,
        version_base: o.opt_uint("version_base", u64::MAX)?,
        prioridad: o
            .opt("prioridad")
            .map(|p| int32(&p, "prioridad"))
            .transpose()?,
    })
}
