//! The IndexedDB [`Store`]: rexie creates and upgrades the schema; the reads and writes go
//! through one plain web-sys connection.
//!
//! Schema (version [`SCHEMA_VERSION`]), one small function per version:
//! - `cola`: the operation queue, key `seq` (auto-increment: creation order), indexes `estado`,
//!   `documento` (the joined `(coleccion, objeto_id)` key) and `id` (unique);
//! - `cache`: hub documents, key `clave` (the joined key), index `coleccion`;
//! - `meta`: `{clave, valor}` records: `tienda`, `cursor`, `reloj`, `resync`.
//!
//! Every write is one IndexedDB transaction, awaited until it commits. Its requests are issued
//! together and the commit is asked for at once, so IndexedDB pipelines them; only the last
//! request is awaited. Records cross the JS boundary as JSON text, one crossing per call: a
//! write parses the whole batch with the browser's `JSON.parse`, a read hands back the whole
//! result with `JSON.stringify`, and serde reads and writes the text on the Rust side.
//!
//! Why web-sys rather than rexie for the traffic: an aborted transaction's reason (a full
//! quota must reject as `PosSyncQuotaError`, and rexie reports only "aborted"), one request
//! awaited per transaction instead of two JS closures per request, and whole results read at
//! once instead of element by element. The transaction durability is the browser's default
//! (`relaxed` in Chromium 121+: the commit reaches the operating system, which flushes it to
//! disk within seconds).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use js_sys::{Promise, Reflect};
use rexie::{Index, ObjectStore, Rexie, RexieBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbObjectStore, IdbRequest, IdbTransaction, IdbTransactionMode};

use super::convert;
use crate::core::clock::Hlc;
use crate::core::model::{DocKey, Document, OpStatus, Operation, StoreId};
use crate::core::protocol::Change;
use crate::core::store::{fill_base, needs_base, seq_runs, Meta, Store, StoreError};

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: u32 = 1;

const QUEUE: &str = "cola";
const CACHE: &str = "cache";
const META: &str = "meta";

/// Version 1: the queue, the cache and the metadata.
fn schema_v1(builder: RexieBuilder) -> RexieBuilder {
    builder
        .add_object_store(
            ObjectStore::new(QUEUE)
                .key_path("seq")
                .auto_increment(true)
                .add_index(Index::new("estado", "estado"))
                .add_index(Index::new("documento", "clave"))
                .add_index(Index::new("id", "id").unique(true)),
        )
        .add_object_store(
            ObjectStore::new(CACHE)
                .key_path("clave")
                .add_index(Index::new("coleccion", "coleccion")),
        )
        .add_object_store(ObjectStore::new(META).key_path("clave"))
}

/// The upgrades, in order; entry `n` brings a database to version `n + 1`.
const UPGRADES: [fn(RexieBuilder) -> RexieBuilder; SCHEMA_VERSION as usize] = [schema_v1];

/// A [`Store`] in one IndexedDB database.
pub struct IdbStore {
    /// `None` once closed.
    db: RefCell<Option<IdbDatabase>>,
}

impl IdbStore {
    /// Opens (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        let builder = UPGRADES
            .iter()
            .fold(Rexie::builder(name).version(SCHEMA_VERSION), |b, up| up(b));
        // The schema connection has done its work once the database is at this version.
        builder.build().await.map_err(backend)?.close();
        let factory: web_sys::IdbFactory = Reflect::get(&js_sys::global(), &"indexedDB".into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| StoreError::Backend("IndexedDB is not available here".into()))?;
        let request = factory.open(name).map_err(dom_error)?;
        let db = settled(request.into(), None).await?;
        Ok(IdbStore {
            db: RefCell::new(Some(db.unchecked_into())),
        })
    }

    /// Closes the connection (so the database can be deleted or upgraded); every later call
    /// fails with a storage error.
    pub fn close(&self) {
        if let Some(db) = self.db.borrow_mut().take() {
            db.close();
        }
    }

    /// Deletes the database `name` (every queued operation and cached document in it).
    pub async fn delete(name: &str) -> Result<(), StoreError> {
        Rexie::delete(name).await.map_err(backend)
    }

    fn tx(&self, stores: &[&str], mode: IdbTransactionMode) -> Result<IdbTransaction, StoreError> {
        let db = self.db.borrow();
        let db = db.as_ref().ok_or_else(|| {
            StoreError::Backend("the engine was closed; open it again to use it".into())
        })?;
        let names: js_sys::Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        db.transaction_with_str_sequence_and_mode(&names, mode)
            .map_err(dom_error)
    }

    fn read(&self, stores: &[&str]) -> Result<IdbTransaction, StoreError> {
        self.tx(stores, IdbTransactionMode::Readonly)
    }

    fn write(&self, stores: &[&str]) -> Result<IdbTransaction, StoreError> {
        self.tx(stores, IdbTransactionMode::Readwrite)
    }

    /// The records of `store` whose `index` equals `key`, in primary-key order, in one read.
    async fn rows_where<T: DeserializeOwned>(
        &self,
        store: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<T>, StoreError> {
        let tx = self.read(&[store])?;
        let request = store_of(&tx, store)?
            .index(index)
            .and_then(|i| i.get_all_with_key(&key.into()))
            .map_err(dom_error)?;
        decode(&settled(request, Some(&tx)).await?)
    }
}

/// A failure of rexie (opening, upgrading or deleting the database); a full quota is told
/// apart, as for the writes.
fn backend(e: rexie::Error) -> StoreError {
    // rexie displays only "idb error"; the debug form names the DOMException and its message.
    let text = format!("{e:?}");
    if text.contains("QuotaExceeded") {
        StoreError::QuotaExceeded(text)
    } else {
        StoreError::Backend(text)
    }
}

fn store_of(tx: &IdbTransaction, name: &str) -> Result<IdbObjectStore, StoreError> {
    tx.object_store(name).map_err(dom_error)
}

/// A JS value read back as `T` through its JSON text (one crossing for a whole result).
fn decode<T: DeserializeOwned>(value: &JsValue) -> Result<T, StoreError> {
    convert::from_js_json(value)
        .map_err(|e| StoreError::Backend(format!("could not decode a record: {e}")))
}

/// A record that may be missing (`undefined`).
fn decode_optional<T: DeserializeOwned>(value: &JsValue) -> Result<Option<T>, StoreError> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        decode(value).map(Some)
    }
}

/// A record as stored: the value's own fields and its `clave` (the index key).
#[derive(serde::Serialize)]
struct Record<'a, T> {
    #[serde(flatten)]
    value: &'a T,
    clave: &'a str,
}

/// Values as stored records, each with its `clave` (index key) beside its own fields; they
/// cross into JS as one JSON text.
fn keyed_records<T: Serialize>(items: &[(&T, String)]) -> Result<js_sys::Array, StoreError> {
    let records: Vec<Record<'_, T>> = items
        .iter()
        .map(|(value, clave)| Record {
            value: *value,
            clave,
        })
        .collect();
    let array = convert::to_js(&records)
        .map_err(|e| StoreError::Backend(format!("could not encode a record: {e}")))?;
    Ok(array.unchecked_into())
}

/// The `valor` of a metadata record, if there is one.
fn meta_value(record: &JsValue) -> Option<JsValue> {
    if record.is_undefined() {
        return None;
    }
    Reflect::get(record, &"valor".into())
        .ok()
        .filter(|v| !v.is_undefined())
}

fn meta_record(key: &str, value: JsValue) -> Result<JsValue, StoreError> {
    let record = js_sys::Object::new();
    Reflect::set(&record, &"clave".into(), &key.into())
        .and_then(|_| Reflect::set(&record, &"valor".into(), &value))
        .map_err(|_| StoreError::Backend("could not build a metadata record".into()))?;
    Ok(record.into())
}

/// A Promise-backed wait, boxed so its state machine exists once, not in every caller.
type Wait = Pin<Box<dyn Future<Output = Result<JsValue, StoreError>>>>;

/// A request's result, once it succeeds. Each request's events settle a Promise directly
/// (the Promise's own functions are the handlers), so no Rust closure is made per request. A
/// request in a transaction also fails when the transaction aborts: Chromium does not always
/// fire the request's own error event then.
fn settled(request: IdbRequest, tx: Option<&IdbTransaction>) -> Wait {
    let tx = tx.cloned();
    Box::pin(async move {
        let mut on_abort = None;
        let done = Promise::new(&mut |resolve, reject| {
            request.set_onsuccess(Some(&resolve));
            request.set_onerror(Some(&reject));
            if let Some(tx) = &tx {
                let _ = tx.add_event_listener_with_callback("abort", &reject);
            }
            on_abort = Some(reject);
        });
        let outcome = JsFuture::from(done).await;
        request.set_onsuccess(None);
        request.set_onerror(None);
        if let (Some(tx), Some(reject)) = (&tx, on_abort) {
            let _ = tx.remove_event_listener_with_callback("abort", &reject);
        }
        match outcome {
            Ok(_) => request.result().map_err(dom_error),
            Err(_) => Err(match (request.error(), tx.and_then(|t| t.error())) {
                (Ok(Some(e)), _) | (_, Some(e)) => dom_error(e.into()),
                _ => StoreError::Backend("an IndexedDB request failed".into()),
            }),
        }
    })
}

/// Commits a transaction whose requests are all issued, and waits until it is durable (in
/// the browser's default durability). An abort comes back with its reason.
fn finish(tx: IdbTransaction) -> Pin<Box<dyn Future<Output = Result<(), StoreError>>>> {
    Box::pin(async move {
        let done = Promise::new(&mut |resolve, reject| {
            tx.set_oncomplete(Some(&resolve));
            tx.set_onabort(Some(&reject));
        });
        // Committing now saves a round trip; where `commit` is missing, it commits on its own.
        // (web-sys marks it deprecated; it is in the IndexedDB 3.0 draft and in every engine.)
        #[allow(deprecated)]
        let _ = tx.commit();
        match JsFuture::from(done).await {
            Ok(_) => Ok(()),
            Err(_) => Err(match tx.error() {
                Some(e) => dom_error(e.into()),
                None => StoreError::Backend("the IndexedDB transaction was aborted".into()),
            }),
        }
    })
}

/// An IndexedDB failure by its DOMException name; a full quota is told apart.
fn dom_error(e: JsValue) -> StoreError {
    let (name, message) = if let Some(d) = e.dyn_ref::<web_sys::DomException>() {
        (d.name(), d.message())
    } else if let Some(e) = e.dyn_ref::<js_sys::Error>() {
        (String::from(e.name()), String::from(e.message()))
    } else {
        let text = e.as_string();
        (
            "Error".to_owned(),
            text.unwrap_or_else(|| "an IndexedDB call failed".into()),
        )
    };
    let text = if message.is_empty() {
        name.clone()
    } else {
        format!("{name}: {message}")
    };
    if name == "QuotaExceededError" {
        StoreError::QuotaExceeded(text)
    } else {
        StoreError::Backend(text)
    }
}

fn key_range(lo: u64, hi: u64) -> Result<JsValue, StoreError> {
    web_sys::IdbKeyRange::bound(&JsValue::from_f64(lo as f64), &JsValue::from_f64(hi as f64))
        .map(JsValue::from)
        .map_err(dom_error)
}

/// One metadata record written on its own.
async fn put_meta(store: &IdbStore, key: &str, value: JsValue) -> Result<(), StoreError> {
    let tx = store.write(&[META])?;
    store_of(&tx, META)?
        .put(&meta_record(key, value)?)
        .map_err(dom_error)?;
    finish(tx).await
}

impl Store for IdbStore {
    async fn load_meta(&self) -> Result<Meta, StoreError> {
        let tx = self.read(&[META, QUEUE])?;
        let meta = store_of(&tx, META)?;
        let requests = ["tienda", "cursor", "reloj", "resync"]
            .map(|key| meta.get(&key.into()).map_err(dom_error));
        // The newest queued operation's clock: appends do not write the clock themselves.
        let newest = store_of(&tx, QUEUE)?
            .open_cursor_with_range_and_direction(&JsValue::NULL, web_sys::IdbCursorDirection::Prev)
            .map_err(dom_error)?;
        let mut values = Vec::with_capacity(4);
        for request in requests {
            values.push(meta_value(&settled(request?, Some(&tx)).await?));
        }
        let cursor = settled(newest, Some(&tx)).await?;
        let last_clock = match cursor.dyn_into::<web_sys::IdbCursorWithValue>() {
            Ok(cursor) => Some(decode::<Operation>(&cursor.value().map_err(dom_error)?)?.clock),
            Err(_) => None,
        };
        let [tienda, cursor, reloj, resync]: [Option<JsValue>; 4] = values
            .try_into()
            .map_err(|_| StoreError::Backend("metadata read incomplete".into()))?;
        let number = |v: Option<JsValue>| v.and_then(|v| v.as_f64());
        let saved = reloj
            .and_then(|v| v.as_string())
            .and_then(|s| s.parse::<Hlc>().ok());
        Ok(Meta {
            store: number(tienda).map(|v| v as StoreId),
            cursor: number(cursor).map_or(0, |v| v as u64),
            clock: saved.max(last_clock),
            resync: number(resync).map_or(0, |v| v as u64),
        })
    }

    async fn set_store(&self, store: StoreId) -> Result<(), StoreError> {
        put_meta(self, "tienda", JsValue::from_f64(store as f64)).await
    }

    async fn append(&self, ops: Vec<Operation>) -> Result<Vec<Operation>, StoreError> {
        let mut ops = ops;
        if ops.is_empty() {
            return Ok(ops);
        }
        let keys: Vec<String> = ops.iter().map(|o| o.doc_key().joined()).collect();
        // Only a transaction that must read base versions spans the cache too.
        let reads_cache = ops.iter().any(needs_base);
        let stores: &[&str] = if reads_cache {
            &[QUEUE, CACHE]
        } else {
            &[QUEUE]
        };
        let tx = self.write(stores)?;
        let queue = store_of(&tx, QUEUE)?;
        if reads_cache {
            // Every read is issued at once; the results are read in order.
            let cache = store_of(&tx, CACHE)?;
            let reads = ops
                .iter()
                .zip(&keys)
                .filter(|(o, _)| needs_base(o))
                .map(|(_, k)| cache.get(&JsValue::from_str(k)).map_err(dom_error))
                .collect::<Result<Vec<_>, _>>()?;
            let mut bases = Vec::with_capacity(reads.len());
            for read in reads {
                bases.push(decode_optional::<Document>(
                    &settled(read, Some(&tx)).await?,
                )?);
            }
            let mut bases = bases.into_iter();
            for op in ops.iter_mut().filter(|o| needs_base(o)) {
                fill_base(op, bases.next().flatten().as_ref());
            }
        }
        for op in ops.iter_mut() {
            op.seq = None;
        }
        let records = keyed_records(&ops.iter().zip(keys).collect::<Vec<_>>())?;
        // Only the last add is awaited. The transaction holds the queue alone, so its keys are
        // consecutive: the last one gives them all. A failed add aborts the transaction, and
        // the whole append with it.
        let mut last = None;
        for record in records.iter() {
            last = Some(queue.add(&record).map_err(dom_error)?);
        }
        let last = last.ok_or_else(|| StoreError::Backend("no record to add".into()))?;
        finish(tx).await.map_err(|e| match e {
            // The queue's one unique index is on the operation id.
            StoreError::Backend(text) if text.starts_with("ConstraintError") => {
                StoreError::DuplicateId(match ops.as_slice() {
                    [only] => only.id.to_string(),
                    _ => format!("one of the {} in this call", ops.len()),
                })
            }
            other => other,
        })?;
        // The transaction committed, so every request is done and holds its result.
        let last_seq = last
            .result()
            .map_err(dom_error)?
            .as_f64()
            .map(|s| s as u64)
            .ok_or_else(|| StoreError::Backend("IndexedDB gave a non-numeric key".into()))?;
        let first_seq = last_seq + 1 - ops.len() as u64;
        for (op, seq) in ops.iter_mut().zip(first_seq..) {
            op.seq = Some(seq);
        }
        Ok(ops)
    }

    async fn pending(&self) -> Result<Vec<Operation>, StoreError> {
        self.rows_where(QUEUE, "estado", OpStatus::Pending.as_str())
            .await
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        let tx = self.read(&[QUEUE])?;
        let request = store_of(&tx, QUEUE)?
            .index("estado")
            .and_then(|i| i.count_with_key(&OpStatus::Pending.as_str().into()))
            .map_err(dom_error)?;
        let count = settled(request, Some(&tx)).await?;
        count
            .as_f64()
            .map(|n| n as u64)
            .ok_or_else(|| StoreError::Backend("IndexedDB gave a non-numeric count".into()))
    }

    async fn operations(&self) -> Result<Vec<Operation>, StoreError> {
        let tx = self.read(&[QUEUE])?;
        let request = store_of(&tx, QUEUE)?.get_all().map_err(dom_error)?;
        decode(&settled(request, Some(&tx)).await?)
    }

    async fn operations_for(&self, key: &DocKey) -> Result<Vec<Operation>, StoreError> {
        self.rows_where(QUEUE, "documento", &key.joined()).await
    }

    async fn settle(&self, remove: &[u64], update: &[Operation]) -> Result<(), StoreError> {
        let records = keyed_records(
            &update
                .iter()
                .map(|op| (op, op.doc_key().joined()))
                .collect::<Vec<_>>(),
        )?;
        let tx = self.write(&[QUEUE])?;
        let queue = store_of(&tx, QUEUE)?;
        // One request per run of consecutive sequence numbers: a pushed batch is one run.
        for (lo, hi) in seq_runs(remove) {
            queue.delete(&key_range(lo, hi)?).map_err(dom_error)?;
        }
        for record in records.iter() {
            queue.put(&record).map_err(dom_error)?;
        }
        finish(tx).await
    }

    async fn reset_cursor(&self, generation: u64) -> Result<(), StoreError> {
        let tx = self.write(&[META])?;
        let meta = store_of(&tx, META)?;
        meta.put(&meta_record("cursor", JsValue::from_f64(0.0))?)
            .map_err(dom_error)?;
        meta.put(&meta_record(
            "resync",
            JsValue::from_f64(generation as f64),
        )?)
        .map_err(dom_error)?;
        finish(tx).await
    }

    async fn apply_changes(&self, changes: &[Change], cursor: u64) -> Result<(), StoreError> {
        let records = keyed_records(
            &changes
                .iter()
                .map(|c| {
                    (
                        &c.doc,
                        DocKey::new(&c.doc.collection, &c.doc.doc_id).joined(),
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        let tx = self.write(&[CACHE, META])?;
        let cache = store_of(&tx, CACHE)?;
        for record in records.iter() {
            cache.put(&record).map_err(dom_error)?;
        }
        store_of(&tx, META)?
            .put(&meta_record("cursor", JsValue::from_f64(cursor as f64))?)
            .map_err(dom_error)?;
        finish(tx).await
    }

    async fn save_clock(&self, clock: Hlc) -> Result<(), StoreError> {
        put_meta(self, "reloj", clock.to_string().into()).await
    }

    async fn cached_with_operations(
        &self,
        key: &DocKey,
    ) -> Result<(Option<Document>, Vec<Operation>), StoreError> {
        // One transaction, both requests in flight at once.
        let tx = self.read(&[CACHE, QUEUE])?;
        let joined = JsValue::from_str(&key.joined());
        let doc = store_of(&tx, CACHE)?.get(&joined).map_err(dom_error)?;
        let ops = store_of(&tx, QUEUE)?
            .index("documento")
            .and_then(|i| i.get_all_with_key(&joined))
            .map_err(dom_error)?;
        let doc = decode_optional(&settled(doc, Some(&tx)).await?)?;
        let ops = decode(&settled(ops, Some(&tx)).await?)?;
        Ok((doc, ops))
    }

    async fn cached(&self, key: &DocKey) -> Result<Option<Document>, StoreError> {
        let tx = self.read(&[CACHE])?;
        let request = store_of(&tx, CACHE)?
            .get(&key.joined().into())
            .map_err(dom_error)?;
        decode_optional(&settled(request, Some(&tx)).await?)
    }

    async fn pending_seqs(&self) -> Result<Vec<u64>, StoreError> {
        // The keys alone: no record is read, which is what makes this cheap.
        let tx = self.read(&[QUEUE])?;
        let request = store_of(&tx, QUEUE)?
            .index("estado")
            .and_then(|i| i.get_all_keys_with_key(&OpStatus::Pending.as_str().into()))
            .map_err(dom_error)?;
        decode(&settled(request, Some(&tx)).await?)
    }

    async fn pending_among(&self, seqs: &[u64]) -> Result<Vec<Operation>, StoreError> {
        let runs = seq_runs(seqs);
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.read(&[QUEUE])?;
        let queue = store_of(&tx, QUEUE)?;
        // One read per run of consecutive numbers, all in flight at once.
        let reads = runs
            .iter()
            .map(|&(lo, hi)| {
                queue
                    .get_all_with_key(&key_range(lo, hi)?)
                    .map_err(dom_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut ops = Vec::new();
        for read in reads {
            let rows: Vec<Operation> = decode(&settled(read, Some(&tx)).await?)?;
            ops.extend(rows.into_iter().filter(|o| o.status == OpStatus::Pending));
        }
        Ok(ops)
    }

    async fn cached_collection(&self, collection: &str) -> Result<Vec<Document>, StoreError> {
        let mut docs: Vec<Document> = self.rows_where(CACHE, "coleccion", collection).await?;
        docs.retain(|d| !d.deleted);
        // In the index's order; the engine's `list` orders them by id.
        Ok(docs)
    }
}
