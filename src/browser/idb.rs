//! The IndexedDB [`Store`], over rexie.
//!
//! Schema (version [`SCHEMA_VERSION`]), one small function per version:
//! - `cola`: the operation queue, key `seq` (auto-increment: creation order), indexes `estado`,
//!   `documento` (the joined `(coleccion, objeto_id)` key) and `id` (unique);
//! - `cache`: hub documents, key `clave` (the joined key), index `coleccion`;
//! - `meta`: `{clave, valor}` records: `tienda`, `cursor`, `reloj`.
//!
//! Every write is one IndexedDB transaction, awaited until it commits; its requests are issued
//! together, so IndexedDB pipelines them. The transaction
//! durability is the browser's default (`relaxed` in Chromium 121+: the commit reaches the
//! operating system, which flushes it to disk within seconds).

use js_sys::Reflect;
use rexie::{Direction, Index, KeyRange, ObjectStore, Rexie, RexieBuilder, TransactionMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;

use super::convert;
use crate::core::clock::Hlc;
use crate::core::model::{DocKey, Document, OpStatus, Operation, StoreId};
use crate::core::protocol::Change;
use crate::core::store::{fill_base, needs_base, Meta, Store, StoreError};

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
    db: Rexie,
}

impl IdbStore {
    /// Opens (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        let builder = UPGRADES
            .iter()
            .fold(Rexie::builder(name).version(SCHEMA_VERSION), |b, up| up(b));
        let db = builder.build().await.map_err(backend)?;
        Ok(IdbStore { db })
    }

    /// Closes the database.
    pub fn close(self) {
        self.db.close();
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
        self.db.transaction(stores, mode).map_err(backend)
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

/// A record with its `clave` (index key) set beside the value's own fields.
fn with_key<T: Serialize>(value: &T, key: &str) -> Result<JsValue, StoreError> {
    let js = to_js(value)?;
    Reflect::set(&js, &"clave".into(), &key.into())
        .map_err(|_| StoreError::Backend("could not set a record key".into()))?;
    Ok(js)
}

async fn commit(tx: rexie::Transaction) -> Result<(), StoreError> {
    let result = tx.done().await.map_err(backend)?;
    if result.is_committed() {
        Ok(())
    } else {
        Err(StoreError::Backend(
            "the IndexedDB transaction was aborted".into(),
        ))
    }
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
        let tx = self.tx(&[META], TransactionMode::ReadWrite)?;
        tx.store(META)
            .map_err(backend)?
            .put(
                &meta_record("tienda", JsValue::from_f64(store as f64))?,
                None,
            )
            .await
            .map_err(backend)?;
        commit(tx).await
    }

    async fn append(&self, ops: Vec<Operation>) -> Result<Vec<Operation>, StoreError> {
        let mut ops = ops;
        let keys: Vec<String> = ops.iter().map(|o| o.doc_key().joined()).collect();
        // Only a transaction that must read base versions spans the cache too.
        let reads_cache = ops.iter().any(needs_base);
        let stores: &[&str] = if reads_cache {
            &[QUEUE, CACHE]
        } else {
            &[QUEUE]
        };
        let tx = self.tx(stores, TransactionMode::ReadWrite)?;
        let queue = tx.store(QUEUE).map_err(backend)?;
        // Every request is issued at once and awaited together: IndexedDB pipelines them in
        // one transaction instead of a round trip per operation.
        if reads_cache {
            let cache = tx.store(CACHE).map_err(backend)?;
            let wanted = ops.iter().zip(&keys).filter(|(o, _)| needs_base(o));
            let bases = all_in_order(wanted.map(|(_, k)| cache.get(k.as_str().into())))
                .await
                .map_err(backend)?;
            let mut bases = bases.into_iter();
            for op in ops.iter_mut().filter(|o| needs_base(o)) {
                let cached = bases
                    .next()
                    .flatten()
                    .map(from_js::<Document>)
                    .transpose()?;
                fill_base(op, cached.as_ref());
            }
        }
        for op in ops.iter_mut() {
            op.seq = None;
        }
        // All records cross into JS as one JSON text.
        let records: Vec<Record<'_, Operation>> = ops
            .iter()
            .zip(&keys)
            .map(|(value, clave)| Record { value, clave })
            .collect();
        let records: Vec<JsValue> = js_sys::Array::from(&to_js(&records)?).to_vec();
        let seqs = all_in_order(records.iter().map(|r| queue.add(r, None)))
            .await
            .map_err(backend)?;
        commit(tx).await?;
        for (op, seq) in ops.iter_mut().zip(seqs) {
            op.seq = seq.as_f64().map(|s| s as u64);
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
        let tx = self.tx(&[QUEUE], TransactionMode::ReadWrite)?;
        let queue = tx.store(QUEUE).map_err(backend)?;
        let records = update
            .iter()
            .map(|op| with_key(op, &op.doc_key().joined()))
            .collect::<Result<Vec<_>, _>>()?;
        all_in_order(
            remove
                .iter()
                .map(|seq| queue.delete(JsValue::from_f64(*seq as f64))),
        )
        .await
        .map_err(backend)?;
        all_in_order(records.iter().map(|r| queue.put(r, None)))
            .await
            .map_err(backend)?;
        commit(tx).await
    }

    async fn reset_cursor(&self, generation: u64) -> Result<(), StoreError> {
        let tx = self.tx(&[META], TransactionMode::ReadWrite)?;
        let meta = tx.store(META).map_err(backend)?;
        meta.put(&meta_record("cursor", JsValue::from_f64(0.0))?, None)
            .await
            .map_err(backend)?;
        meta.put(
            &meta_record("resync", JsValue::from_f64(generation as f64))?,
            None,
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn apply_changes(&self, changes: &[Change], cursor: u64) -> Result<(), StoreError> {
        let tx = self.tx(&[CACHE, META], TransactionMode::ReadWrite)?;
        let cache = tx.store(CACHE).map_err(backend)?;
        let records = changes
            .iter()
            .map(|c| {
                with_key(
                    &c.doc,
                    &DocKey::new(&c.doc.collection, &c.doc.doc_id).joined(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cursor_record = meta_record("cursor", JsValue::from_f64(cursor as f64))?;
        let meta = tx.store(META).map_err(backend)?;
        let (puts, cursor_put) = futures::join!(
            all_in_order(records.iter().map(|r| cache.put(r, None))),
            meta.put(&cursor_record, None)
        );
        puts.map_err(backend)?;
        cursor_put.map_err(backend)?;
        commit(tx).await
    }

    async fn save_clock(&self, clock: Hlc) -> Result<(), StoreError> {
        let tx = self.tx(&[META], TransactionMode::ReadWrite)?;
        tx.store(META)
            .map_err(backend)?
            .put(&meta_record("reloj", clock.to_string().into())?, None)
            .await
            .map_err(backend)?;
        commit(tx).await
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

/// Polls every future from the first poll on, in order, and returns their outputs in order:
/// each IndexedDB request is issued at once, so a transaction pipelines them. (A small
/// stand-in for `futures::future::try_join_all`, which costs the engine's wasm 10 KB gzipped.)
async fn all_in_order<T, F: std::future::Future<Output = Result<T, rexie::Error>>>(
    futures: impl IntoIterator<Item = F>,
) -> Result<Vec<T>, rexie::Error> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_some() {
                continue;
            }
            match future.as_mut().poll(cx) {
                std::task::Poll::Ready(Ok(value)) => *output = Some(value),
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Ok(()))
        }
    })
    .await?;
    Ok(outputs.into_iter().flatten().collect())
}
