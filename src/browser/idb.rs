//! The IndexedDB [`Store`]: rexie for the schema and the reads, web-sys for the writes.
//!
//! Schema (version [`SCHEMA_VERSION`]), one small function per version:
//! - `cola`: the operation queue, key `seq` (auto-increment: creation order), indexes `estado`,
//!   `documento` (the joined `(coleccion, objeto_id)` key) and `id` (unique);
//! - `cache`: hub documents, key `clave` (the joined key), index `coleccion`;
//! - `meta`: `{clave, valor}` records: `tienda`, `cursor`, `reloj`.
//!
//! Every write is one IndexedDB transaction, awaited until it commits. Its requests are issued
//! together and the commit is asked for at once, so IndexedDB pipelines them; only the last
//! request is awaited. Writes go through web-sys rather than rexie for two reasons rexie cannot
//! serve: an aborted transaction's reason (a full quota must reject as `PosSyncQuotaError`,
//! and rexie reports only "aborted"), and rexie's two JS closures per request, which a batched
//! enqueue paid for every record. The transaction durability is the browser's
//! default (`relaxed` in Chromium 121+: the commit reaches the operating system, which
//! flushes it to disk within seconds).

use js_sys::{Promise, Reflect};
use rexie::{Direction, Index, KeyRange, ObjectStore, Rexie, RexieBuilder, TransactionMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

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
///
/// Two connections to it: rexie's opens (creating or upgrading the schema) and serves every
/// read; writes go through a second, plain connection ([`Writer`]) that issues a
/// transaction's requests without a callback each, commits at once, and reports why a
/// transaction aborted (a full quota), which rexie does not expose.
pub struct IdbStore {
    /// `None` once closed.
    db: std::cell::RefCell<Option<Rexie>>,
    writer: Writer,
}

impl IdbStore {
    /// Opens (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        let builder = UPGRADES
            .iter()
            .fold(Rexie::builder(name).version(SCHEMA_VERSION), |b, up| up(b));
        let db = builder.build().await.map_err(backend)?;
        let writer = match Writer::open(name).await {
            Ok(w) => w,
            Err(e) => {
                db.close();
                return Err(e);
            }
        };
        Ok(IdbStore {
            db: std::cell::RefCell::new(Some(db)),
            writer,
        })
    }

    /// Closes both connections (so the database can be deleted or upgraded); every later call
    /// fails with a storage error.
    pub fn close(&self) {
        if let Some(db) = self.db.borrow_mut().take() {
            db.close();
        }
        self.writer.closed.set(true);
        self.writer.db.close();
    }

    /// Deletes the database `name` (every queued operation and cached document in it).
    pub async fn delete(name: &str) -> Result<(), StoreError> {
        Rexie::delete(name).await.map_err(backend)
    }

    /// The records of `store` whose `index` equals `key`, in primary-key order, in one read.
    async fn rows_where(
        &self,
        store: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<JsValue>, StoreError> {
        let tx = self.tx(&[store], TransactionMode::ReadOnly)?;
        let index = tx
            .store(store)
            .map_err(backend)?
            .index(index)
            .map_err(backend)?;
        let range = KeyRange::only(&key.into()).map_err(|e| backend(e.into()))?;
        index.get_all(Some(range), None).await.map_err(backend)
    }

    fn tx(&self, stores: &[&str], mode: TransactionMode) -> Result<rexie::Transaction, StoreError> {
        match self.db.borrow().as_ref() {
            Some(db) => db.transaction(stores, mode).map_err(backend),
            None => Err(closed()),
        }
    }
}

fn backend(e: rexie::Error) -> StoreError {
    let text = format!("{e:?}");
    if text.contains("QuotaExceeded") {
        StoreError::QuotaExceeded(text)
    } else {
        StoreError::Backend(text)
    }
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, StoreError> {
    convert::to_js(value)
        .map_err(|e| StoreError::Backend(format!("could not encode a record: {e}")))
}

fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, StoreError> {
    convert::from_record(value)
        .map_err(|e| StoreError::Backend(format!("could not decode a record: {e}")))
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
    Ok(js_sys::Array::from(&to_js(&records)?))
}

async fn meta_value(store: &rexie::Store, key: &str) -> Result<Option<JsValue>, StoreError> {
    let record = store.get(key.into()).await.map_err(backend)?;
    Ok(record
        .and_then(|r| Reflect::get(&r, &"valor".into()).ok())
        .filter(|v| !v.is_undefined()))
}

fn meta_record(key: &str, value: JsValue) -> Result<JsValue, StoreError> {
    let record = js_sys::Object::new();
    Reflect::set(&record, &"clave".into(), &key.into())
        .and_then(|_| Reflect::set(&record, &"valor".into(), &value))
        .map_err(|_| StoreError::Backend("could not build a metadata record".into()))?;
    Ok(record.into())
}

fn status_range(status: OpStatus) -> Result<KeyRange, StoreError> {
    KeyRange::only(&status.as_str().into()).map_err(|e| backend(e.into()))
}

/// The plain write connection. Each request's and transaction's events resolve a Promise
/// directly (the Promise's own functions are the handlers), so no Rust closure is made per
/// request.
struct Writer {
    db: web_sys::IdbDatabase,
    closed: std::cell::Cell<bool>,
}

fn closed() -> StoreError {
    StoreError::Backend("the engine was closed; open it again to use it".into())
}

impl Writer {
    async fn open(name: &str) -> Result<Self, StoreError> {
        let factory: web_sys::IdbFactory = Reflect::get(&js_sys::global(), &"indexedDB".into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| StoreError::Backend("IndexedDB is not available here".into()))?;
        // No version: the schema connection above has already created or upgraded it.
        let request = factory.open(name).map_err(dom_error)?;
        let db = request_result(&request, None).await?;
        Ok(Writer {
            db: db.unchecked_into(),
            closed: std::cell::Cell::new(false),
        })
    }

    fn tx(&self, stores: &[&str]) -> Result<web_sys::IdbTransaction, StoreError> {
        if self.closed.get() {
            return Err(closed());
        }
        let names: js_sys::Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        self.db
            .transaction_with_str_sequence_and_mode(&names, web_sys::IdbTransactionMode::Readwrite)
            .map_err(dom_error)
    }
}

fn store_of(
    tx: &web_sys::IdbTransaction,
    name: &str,
) -> Result<web_sys::IdbObjectStore, StoreError> {
    tx.object_store(name).map_err(dom_error)
}

/// A request's result, once it succeeds. A request in a transaction also fails when the
/// transaction aborts: Chromium does not always fire the request's own error event then.
async fn request_result(
    request: &web_sys::IdbRequest,
    tx: Option<&web_sys::IdbTransaction>,
) -> Result<JsValue, StoreError> {
    let mut on_abort = None;
    let done = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
        if let Some(tx) = tx {
            let _ = tx.add_event_listener_with_callback("abort", &reject);
        }
        on_abort = Some(reject);
    });
    let outcome = JsFuture::from(done).await;
    request.set_onsuccess(None);
    request.set_onerror(None);
    if let (Some(tx), Some(reject)) = (tx, on_abort) {
        let _ = tx.remove_event_listener_with_callback("abort", &reject);
    }
    match outcome {
        Ok(_) => request.result().map_err(dom_error),
        Err(_) => Err(match (request.error(), tx.and_then(|t| t.error())) {
            (Ok(Some(e)), _) | (_, Some(e)) => dom_error(e.into()),
            _ => StoreError::Backend("an IndexedDB request failed".into()),
        }),
    }
}

/// Commits a transaction whose requests are all issued, and waits until it is durable (in
/// the browser's default durability). An abort comes back with its reason.
async fn finish(tx: web_sys::IdbTransaction) -> Result<(), StoreError> {
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
}

/// An IndexedDB failure by its DOMException name; a full quota is told apart.
fn dom_error(e: JsValue) -> StoreError {
    let (name, message) = match e.dyn_ref::<web_sys::DomException>() {
        Some(d) => (d.name(), d.message()),
        None => (
            "Error".to_owned(),
            e.as_string().unwrap_or_else(|| format!("{e:?}")),
        ),
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

impl Store for IdbStore {
    async fn load_meta(&self) -> Result<Meta, StoreError> {
        let tx = self.tx(&[META, QUEUE], TransactionMode::ReadOnly)?;
        let store = tx.store(META).map_err(backend)?;
        let tienda = meta_value(&store, "tienda").await?;
        let cursor = meta_value(&store, "cursor").await?;
        let reloj = meta_value(&store, "reloj").await?;
        let resync = meta_value(&store, "resync").await?;
        // The newest queued operation's clock: appends do not write the clock themselves.
        let last = tx
            .store(QUEUE)
            .map_err(backend)?
            .scan(None, Some(1), None, Some(Direction::Prev))
            .await
            .map_err(backend)?;
        let last_clock = last
            .into_iter()
            .next()
            .map(|(_, v)| from_js::<Operation>(v))
            .transpose()?
            .map(|o| o.clock);
        let saved = reloj
            .and_then(|v| v.as_string())
            .and_then(|s| s.parse::<Hlc>().ok());
        Ok(Meta {
            store: tienda.and_then(|v| v.as_f64()).map(|v| v as StoreId),
            cursor: cursor.and_then(|v| v.as_f64()).map_or(0, |v| v as u64),
            clock: saved.max(last_clock),
            resync: resync.and_then(|v| v.as_f64()).map_or(0, |v| v as u64),
        })
    }

    async fn set_store(&self, store: StoreId) -> Result<(), StoreError> {
        let tx = self.writer.tx(&[META])?;
        store_of(&tx, META)?
            .put(&meta_record("tienda", JsValue::from_f64(store as f64))?)
            .map_err(dom_error)?;
        finish(tx).await
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
        let tx = self.writer.tx(stores)?;
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
            for read in &reads {
                let value = request_result(read, Some(&tx)).await?;
                bases.push(if value.is_undefined() {
                    None
                } else {
                    Some(from_js::<Document>(value)?)
                });
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
        let rows = self
            .rows_where(QUEUE, "estado", OpStatus::Pending.as_str())
            .await?;
        rows.into_iter().map(from_js).collect()
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        let tx = self.tx(&[QUEUE], TransactionMode::ReadOnly)?;
        let index = tx
            .store(QUEUE)
            .map_err(backend)?
            .index("estado")
            .map_err(backend)?;
        Ok(u64::from(
            index
                .count(Some(status_range(OpStatus::Pending)?))
                .await
                .map_err(backend)?,
        ))
    }

    async fn operations(&self) -> Result<Vec<Operation>, StoreError> {
        let tx = self.tx(&[QUEUE], TransactionMode::ReadOnly)?;
        let rows = tx
            .store(QUEUE)
            .map_err(backend)?
            .get_all(None, None)
            .await
            .map_err(backend)?;
        rows.into_iter().map(from_js).collect()
    }

    async fn operations_for(&self, key: &DocKey) -> Result<Vec<Operation>, StoreError> {
        let rows = self.rows_where(QUEUE, "documento", &key.joined()).await?;
        rows.into_iter().map(from_js).collect()
    }

    async fn settle(&self, remove: &[u64], update: &[Operation]) -> Result<(), StoreError> {
        let records = keyed_records(
            &update
                .iter()
                .map(|op| (op, op.doc_key().joined()))
                .collect::<Vec<_>>(),
        )?;
        let tx = self.writer.tx(&[QUEUE])?;
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
        let tx = self.writer.tx(&[META])?;
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
        let tx = self.writer.tx(&[CACHE, META])?;
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
        let tx = self.writer.tx(&[META])?;
        store_of(&tx, META)?
            .put(&meta_record("reloj", clock.to_string().into())?)
            .map_err(dom_error)?;
        finish(tx).await
    }

    async fn cached_with_operations(
        &self,
        key: &DocKey,
    ) -> Result<(Option<Document>, Vec<Operation>), StoreError> {
        // One transaction, both requests in flight at once.
        let tx = self.tx(&[CACHE, QUEUE], TransactionMode::ReadOnly)?;
        let cache = tx.store(CACHE).map_err(backend)?;
        let index = tx
            .store(QUEUE)
            .map_err(backend)?
            .index("documento")
            .map_err(backend)?;
        let joined = key.joined();
        let range = KeyRange::only(&joined.as_str().into()).map_err(|e| backend(e.into()))?;
        let (doc, ops) = futures::join!(
            cache.get(joined.as_str().into()),
            index.get_all(Some(range), None)
        );
        let doc = doc.map_err(backend)?.map(from_js).transpose()?;
        let ops = ops
            .map_err(backend)?
            .into_iter()
            .map(from_js)
            .collect::<Result<_, _>>()?;
        Ok((doc, ops))
    }

    async fn cached(&self, key: &DocKey) -> Result<Option<Document>, StoreError> {
        let tx = self.tx(&[CACHE], TransactionMode::ReadOnly)?;
        let record = tx
            .store(CACHE)
            .map_err(backend)?
            .get(key.joined().into())
            .await
            .map_err(backend)?;
        record.map(from_js).transpose()
    }

    async fn cached_collection(&self, collection: &str) -> Result<Vec<Document>, StoreError> {
        let rows = self.rows_where(CACHE, "coleccion", collection).await?;
        let mut docs = rows
            .into_iter()
            .map(from_js::<Document>)
            .collect::<Result<Vec<_>, _>>()?;
        docs.retain(|d| !d.deleted);
        docs.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
        Ok(docs)
    }
}
