//! The IndexedDB [`Store`]: rexie creates and upgrades the schema; the reads and writes go
//! through one plain web-sys connection.
//!
//! Schema (version [`SCHEMA_VERSION`]), one small function per version:
//! - `lotes` (version 2): the operation queue in pages of up to 100 operations, one or more
//!   per append: `{n, ops, lugares, ids, claves, retenidas}`, key `n` (auto-increment:
//!   creation order). `ops` are the page's operations still queued, in order, and `lugares`
//!   their places in it, so an operation's sequence number is `n * 4096 + its place`; a page
//!   whose operations have all left is deleted. Unique multi-entry index `id` over `ids`,
//!   multi-entry `documento` over `claves` (the joined `(coleccion, objeto_id)` keys) and
//!   `retenida` over `retenidas` (the ids of those the hub held: deferred, in conflict,
//!   rejected). A call that queues a hundred sales writes one record instead of a hundred,
//!   and a reload reads them back as one. Each settle adds an empty page marked `marca`
//!   (index `marca`) and deletes the older ones, so the newest key counts the queue's writes
//!   (see [`Store::queue_writes`]) with no extra record for an append;
//! - `cola` (version 1): the queue before version 2, one record per operation; opening a
//!   version-1 database moves its operations into `lotes`, in order, and leaves it empty;
//! - `cache`: hub documents, key `clave` (the joined key), index `coleccion`;
//! - `meta`: `{clave, valor}` records: `tienda`, `cursor`, `reloj`, `resync`.
//!
//! Every write is one IndexedDB transaction, awaited until it commits. Its requests are issued
//! together and the commit is asked for at once, so IndexedDB pipelines them; only the last
//! request is awaited. A write crosses the JS boundary as JSON text, one crossing per call
//! (serde writes it, the browser's `JSON.parse` reads it); a read is taken field by field
//! from the records IndexedDB hands back ([`read`](super::read)).
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
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbObjectStore, IdbRequest, IdbTransaction, IdbTransactionMode};

use super::{convert, glue, read};
use crate::core::clock::Hlc;
use crate::core::model::{DocKey, Document, OpStatus, Operation, StoreId};
use crate::core::protocol::Change;
use crate::core::store::{fill_base, needs_base, Meta, Store, StoreError};

/// How long opening waits for another tab to let go of a database it must upgrade.
const OPEN_WAIT_MS: u32 = 5_000;

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: u32 = 2;

/// The version-1 queue, read once to move its operations into [`PAGES`].
const QUEUE: &str = "cola";
const PAGES: &str = "lotes";
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

/// Version 2: the queue in pages, one per append. (Version 1's `cola` stays, so rexie keeps
/// its records until [`IdbStore::open`] has moved them.)
fn schema_v2(builder: RexieBuilder) -> RexieBuilder {
    builder.add_object_store(
        ObjectStore::new(PAGES)
            .key_path("n")
            .auto_increment(true)
            .add_index(Index::new("id", "ids").unique(true).multi_entry(true))
            .add_index(Index::new("documento", "claves").multi_entry(true))
            .add_index(Index::new("retenida", "retenidas").multi_entry(true))
            .add_index(Index::new("marca", "marca")),
    )
}

/// The upgrades, in order; entry `n` brings a database to version `n + 1`.
const UPGRADES: [fn(RexieBuilder) -> RexieBuilder; SCHEMA_VERSION as usize] =
    [schema_v1, schema_v2];

/// Sequence numbers are `n * PAGE_SPAN + place`.
const PAGE_SPAN: u64 = 4096;
/// The most operations one page holds. A pushed batch (100, 500 or 1,000 operations) of
/// operations queued a hundred at a time then leaves whole pages, deleted unread.
const PAGE_OPS: usize = 100;

/// A page record for `ops`, at `places` (each operation's place in the page); `n` is absent
/// on a page about to be added (IndexedDB gives it). The operations and their places cross
/// as one JSON text; the index keys are taken from them in JS ([`glue::queue_page`]).
fn page_record(
    n: Option<u64>,
    ops: &[Operation],
    places: impl Iterator<Item = u64>,
) -> Result<JsValue, StoreError> {
    let places: Vec<u64> = places.collect();
    let text = serde_json::to_string(&(ops, places))
        .map_err(|e| StoreError::Backend(format!("could not encode a record: {e}")))?;
    Ok(glue::queue_page(&text, n.map(|n| n as f64)))
}

/// A page's key and its operations, each with its sequence number.
fn read_page(page: &JsValue) -> Result<(u64, Vec<Operation>), StoreError> {
    let field = |name: &str| Reflect::get(page, &name.into()).unwrap_or(JsValue::UNDEFINED);
    let n = field("n")
        .as_f64()
        .ok_or_else(|| StoreError::Backend("a queue page without its key".into()))?
        as u64;
    if field("marca").is_truthy() {
        return Ok((n, Vec::new()));
    }
    let mut ops = decode(&field("ops"), read::operations)?;
    let places = js_sys::Array::from(&field("lugares"));
    if places.length() as usize != ops.len() {
        return Err(StoreError::Backend(format!("queue page {n} is damaged")));
    }
    for (op, place) in ops.iter_mut().zip(places.iter()) {
        op.seq = Some(n * PAGE_SPAN + place.as_f64().unwrap_or_default() as u64);
    }
    Ok((n, ops))
}

/// The queued operations of an array of pages, in creation order.
fn read_pages(pages: &JsValue) -> Result<Vec<Operation>, StoreError> {
    let mut ops = Vec::new();
    for page in js_sys::Array::from(pages).iter() {
        ops.extend(read_page(&page)?.1);
    }
    Ok(ops)
}

/// A [`Store`] in one IndexedDB database.
pub struct IdbStore {
    /// `None` once closed.
    db: RefCell<Option<IdbDatabase>>,
    /// The queue's write counts before and after this handle's last queue write.
    own: std::cell::Cell<Option<(u64, u64)>>,
}

impl IdbStore {
    /// Opens (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        let builder = UPGRADES
            .iter()
            .fold(Rexie::builder(name).version(SCHEMA_VERSION), |b, up| up(b));
        // The schema connection has done its work once the database is at this version. An
        // upgrade waits while another tab holds the database at an older version; a tab of
        // this build lets go at once (below), but one of an older build may not, so the wait
        // is bounded.
        let upgrade = Box::pin(builder.build());
        let waited = Box::pin(super::env::sleep(OPEN_WAIT_MS));
        match futures::future::select(upgrade, waited).await {
            futures::future::Either::Left((built, _)) => built.map_err(backend)?.close(),
            futures::future::Either::Right((_, upgrade)) => {
                // The upgrade still happens once that tab lets go; its connection is closed
                // then, so it holds up nothing in turn.
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(db) = upgrade.await {
                        db.close();
                    }
                });
                return Err(StoreError::Backend(format!(
                    "the database \"{name}\" could not be opened within {} s: another tab \
                     keeps it open at an older version (an older build of this till); close \
                     or reload that tab",
                    OPEN_WAIT_MS / 1000
                )));
            }
        }
        let factory: web_sys::IdbFactory = Reflect::get(&js_sys::global(), &"indexedDB".into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| StoreError::Backend("IndexedDB is not available here".into()))?;
        let request = factory.open(name).map_err(dom_error)?;
        let db: IdbDatabase = settled(request.into(), None).await?.unchecked_into();
        // A newer build in another tab that must upgrade the database is not kept waiting:
        // this connection closes, and this engine's later calls fail with a storage error.
        if let Ok(close) = Reflect::get(&db, &"close".into()) {
            if let Some(close) = close.dyn_ref::<js_sys::Function>() {
                db.set_onversionchange(Some(&close.bind0(&db)));
            }
        }
        let store = IdbStore {
            db: RefCell::new(Some(db)),
            own: Default::default(),
        };
        store.move_version_1_queue().await?;
        Ok(store)
    }

    /// Moves the operations of a version-1 queue (`cola`, one record each) into pages, in
    /// their order, in one transaction; a database that has none is left as it is.
    async fn move_version_1_queue(&self) -> Result<(), StoreError> {
        let tx = self.write(&[QUEUE, PAGES])?;
        let old = store_of(&tx, QUEUE)?;
        let rows = old.get_all().map_err(dom_error)?;
        let ops = decode(&settled(rows, Some(&tx)).await?, read::operations)?;
        if !ops.is_empty() {
            let pages = store_of(&tx, PAGES)?;
            for chunk in ops.chunks(PAGE_OPS) {
                let page = page_record(None, chunk, 0..chunk.len() as u64)?;
                pages.add(&page).map_err(dom_error)?;
            }
            old.clear().map_err(dom_error)?;
        }
        finish(tx).await
    }

    /// Records the write counts around a committed queue write: the keys of its first and
    /// last new page (a page key is the count of queue writes up to it).
    fn wrote(&self, first: &IdbRequest, last: &IdbRequest) {
        let key = |r: &IdbRequest| r.result().ok().and_then(|k| k.as_f64()).map(|k| k as u64);
        self.own.set(
            key(first)
                .zip(key(last))
                .map(|(f, l)| (f.saturating_sub(1), l)),
        );
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
    async fn rows_where<T>(
        &self,
        store: &str,
        index: &str,
        key: &str,
        reader: fn(&JsValue) -> read::Result<Vec<T>>,
    ) -> Result<Vec<T>, StoreError> {
        let tx = self.read(&[store])?;
        let request = store_of(&tx, store)?
            .index(index)
            .and_then(|i| i.get_all_with_key(&key.into()))
            .map_err(dom_error)?;
        decode(&settled(request, Some(&tx)).await?, reader)
    }

    /// Every queued operation, in creation order.
    async fn queued(&self) -> Result<Vec<Operation>, StoreError> {
        let tx = self.read(&[PAGES])?;
        let request = store_of(&tx, PAGES)?.get_all().map_err(dom_error)?;
        read_pages(&settled(request, Some(&tx)).await?)
    }
}

/// The queued operations on document `key` among pages read through its `documento` index.
fn on_document(pages: &JsValue, key: &str) -> Result<Vec<Operation>, StoreError> {
    let mut ops = read_pages(pages)?;
    ops.retain(|o| o.doc_key().joined() == key);
    Ok(ops)
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

/// A record (or an array of them) read by `reader` (see [`read`]).
fn decode<T>(value: &JsValue, reader: fn(&JsValue) -> read::Result<T>) -> Result<T, StoreError> {
    reader(value).map_err(|e| StoreError::Backend(format!("could not decode a record: {e}")))
}

/// A cached document that may be missing (`undefined`).
fn cached_document(value: &JsValue) -> Result<Option<Document>, StoreError> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        decode(value, read::document).map(Some)
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
        let tx = self.read(&[META, PAGES])?;
        let meta = store_of(&tx, META)?;
        let requests = ["tienda", "cursor", "reloj", "resync"]
            .map(|key| meta.get(&key.into()).map_err(dom_error));
        // The newest queued operation's clock: appends do not write the clock themselves.
        let newest = store_of(&tx, PAGES)?
            .open_cursor_with_range_and_direction(&JsValue::NULL, web_sys::IdbCursorDirection::Prev)
            .map_err(dom_error)?;
        let mut values = Vec::with_capacity(4);
        for request in requests {
            values.push(meta_value(&settled(request?, Some(&tx)).await?));
        }
        // The newest page may be the one mark, with no operation: then the page before it.
        let mut last_clock = None;
        let mut found = settled(newest.clone(), Some(&tx)).await?;
        for _ in 0..2 {
            let Ok(cursor) = found.dyn_into::<web_sys::IdbCursorWithValue>() else {
                break;
            };
            let ops = read_page(&cursor.value().map_err(dom_error)?)?.1;
            if !ops.is_empty() {
                last_clock = ops.iter().map(|o| o.clock).max();
                break;
            }
            cursor.continue_().map_err(dom_error)?;
            found = settled(newest.clone(), Some(&tx)).await?;
        }
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
        // One page's index takes an id once however often the page holds it: a second copy
        // inside the call is refused here.
        if let Some(twice) = ops
            .iter()
            .enumerate()
            .find(|(i, o)| ops[..*i].iter().any(|p| p.id == o.id))
        {
            return Err(StoreError::DuplicateId(twice.1.id.to_string()));
        }
        // Only a transaction that must read base versions spans the cache too.
        let reads_cache = ops.iter().any(needs_base);
        let stores: &[&str] = if reads_cache {
            &[PAGES, CACHE]
        } else {
            &[PAGES]
        };
        let tx = self.write(stores)?;
        let pages = store_of(&tx, PAGES)?;
        if reads_cache {
            // Every read is issued at once; the results are read in order.
            let cache = store_of(&tx, CACHE)?;
            let reads = ops
                .iter()
                .filter(|o| needs_base(o))
                .map(|o| {
                    cache
                        .get(&JsValue::from_str(&o.doc_key().joined()))
                        .map_err(dom_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut bases = Vec::with_capacity(reads.len());
            for read in reads {
                bases.push(cached_document(&settled(read, Some(&tx)).await?)?);
            }
            let mut bases = bases.into_iter();
            for op in ops.iter_mut().filter(|o| needs_base(o)) {
                fill_base(op, bases.next().flatten().as_ref());
            }
        }
        // One page per 100 operations (one for a sale), added at once; a failed add aborts
        // the transaction, and the whole append with it.
        let added = ops
            .chunks(PAGE_OPS)
            .map(|chunk| {
                pages
                    .add(&page_record(None, chunk, 0..chunk.len() as u64)?)
                    .map_err(dom_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        finish(tx).await.map_err(|e| match e {
            // The pages' one unique index is on the operation ids.
            StoreError::Backend(text) if text.starts_with("ConstraintError") => {
                StoreError::DuplicateId(match ops.as_slice() {
                    [only] => only.id.to_string(),
                    _ => format!("one of the {} in this call", ops.len()),
                })
            }
            other => other,
        })?;
        // The transaction committed, so every request is done and holds its page's key.
        if let (Some(first), Some(last)) = (added.first(), added.last()) {
            self.wrote(first, last);
        }
        for (request, chunk) in added.iter().zip(ops.chunks_mut(PAGE_OPS)) {
            let n = request
                .result()
                .map_err(dom_error)?
                .as_f64()
                .map(|n| n as u64)
                .ok_or_else(|| StoreError::Backend("IndexedDB gave a non-numeric key".into()))?;
            for (op, seq) in chunk.iter_mut().zip(n * PAGE_SPAN..) {
                op.seq = Some(seq);
            }
        }
        Ok(ops)
    }

    async fn pending(&self) -> Result<Vec<Operation>, StoreError> {
        let mut ops = self.queued().await?;
        ops.retain(|o| o.status == OpStatus::Pending);
        Ok(ops)
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        // Every queued operation less the held ones: two counts, no record read.
        let tx = self.read(&[PAGES])?;
        let pages = store_of(&tx, PAGES)?;
        let count = |index: &str| {
            pages
                .index(index)
                .and_then(|i| i.count())
                .map_err(dom_error)
        };
        let (all, held) = (count("id")?, count("retenida")?);
        let number = |v: JsValue| {
            v.as_f64()
                .map(|n| n as u64)
                .ok_or_else(|| StoreError::Backend("IndexedDB gave a non-numeric count".into()))
        };
        let all = number(settled(all, Some(&tx)).await?)?;
        let held = number(settled(held, Some(&tx)).await?)?;
        Ok(all.saturating_sub(held))
    }

    async fn operations(&self) -> Result<Vec<Operation>, StoreError> {
        self.queued().await
    }

    async fn operations_for(&self, key: &DocKey) -> Result<Vec<Operation>, StoreError> {
        let joined = key.joined();
        let tx = self.read(&[PAGES])?;
        let request = store_of(&tx, PAGES)?
            .index("documento")
            .and_then(|i| i.get_all_with_key(&JsValue::from_str(&joined)))
            .map_err(dom_error)?;
        on_document(&settled(request, Some(&tx)).await?, &joined)
    }

    async fn settle(&self, remove: &[u64], update: &[Operation]) -> Result<(), StoreError> {
        let page_of = |seq: u64| seq / PAGE_SPAN;
        let mut removed = remove.to_vec();
        removed.sort_unstable();
        removed.dedup();
        let mut numbers: Vec<u64> = removed
            .iter()
            .copied()
            .chain(update.iter().filter_map(|o| o.seq))
            .map(page_of)
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.is_empty() {
            return Ok(());
        }
        let tx = self.write(&[PAGES])?;
        let pages = store_of(&tx, PAGES)?;
        // This settle's mark replaces the older ones (see the schema).
        let marks = pages
            .index("marca")
            .and_then(|i| i.get_all_keys())
            .map_err(dom_error)?;
        let mark = js_sys::Object::new();
        Reflect::set(&mark, &"marca".into(), &JsValue::TRUE)
            .map_err(|_| StoreError::Backend("could not build a mark".into()))?;
        let mark = pages.add(&mark).map_err(dom_error)?;
        // A full page whose every operation leaves is deleted unread (the common case: a
        // batch of whole pages); every other page is read, all at once, then written back,
        // or deleted once empty.
        let mut reads = Vec::new();
        for &n in &numbers {
            let key = JsValue::from_f64(n as f64);
            let first = n * PAGE_SPAN;
            let whole = removed.partition_point(|&s| s < first + PAGE_OPS as u64)
                - removed.partition_point(|&s| s < first)
                == PAGE_OPS
                && !update.iter().any(|o| o.seq.map(page_of) == Some(n));
            if whole {
                pages.delete(&key).map_err(dom_error)?;
            } else {
                reads.push(pages.get(&key).map_err(dom_error)?);
            }
        }
        for old in js_sys::Array::from(&settled(marks, Some(&tx)).await?).iter() {
            pages.delete(&old).map_err(dom_error)?;
        }
        for read in reads {
            // A page another engine emptied is gone: nothing of it is left to settle.
            let page = settled(read, Some(&tx)).await?;
            if page.is_undefined() {
                continue;
            }
            let (n, mut ops) = read_page(&page)?;
            // Only an operation still queued is rewritten or removed.
            ops.retain(|o| o.seq.is_some_and(|s| removed.binary_search(&s).is_err()));
            for op in ops.iter_mut() {
                if let Some(newer) = update.iter().find(|u| u.seq == op.seq) {
                    *op = newer.clone();
                }
            }
            if ops.is_empty() {
                pages
                    .delete(&JsValue::from_f64(n as f64))
                    .map_err(dom_error)?;
            } else {
                let places: Vec<u64> = ops.iter().filter_map(|o| o.seq).collect();
                let record = page_record(Some(n), &ops, places.into_iter().map(|s| s % PAGE_SPAN))?;
                pages.put(&record).map_err(dom_error)?;
            }
        }
        finish(tx).await?;
        self.wrote(&mark, &mark);
        Ok(())
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
        let tx = self.read(&[CACHE, PAGES])?;
        let joined = key.joined();
        let doc = store_of(&tx, CACHE)?
            .get(&JsValue::from_str(&joined))
            .map_err(dom_error)?;
        let pages = store_of(&tx, PAGES)?
            .index("documento")
            .and_then(|i| i.get_all_with_key(&JsValue::from_str(&joined)))
            .map_err(dom_error)?;
        let doc = cached_document(&settled(doc, Some(&tx)).await?)?;
        let ops = on_document(&settled(pages, Some(&tx)).await?, &joined)?;
        Ok((doc, ops))
    }

    async fn cached(&self, key: &DocKey) -> Result<Option<Document>, StoreError> {
        let tx = self.read(&[CACHE])?;
        let request = store_of(&tx, CACHE)?
            .get(&key.joined().into())
            .map_err(dom_error)?;
        cached_document(&settled(request, Some(&tx)).await?)
    }

    async fn queue_writes(&self) -> Result<u64, StoreError> {
        // The newest page's key, read alone.
        let tx = self.read(&[PAGES])?;
        let request = store_of(&tx, PAGES)?
            .open_key_cursor_with_range_and_direction(
                &JsValue::NULL,
                web_sys::IdbCursorDirection::Prev,
            )
            .map_err(dom_error)?;
        let cursor = settled(request, Some(&tx)).await?;
        Ok(match cursor.dyn_into::<web_sys::IdbCursor>() {
            Ok(cursor) => cursor.key().map_err(dom_error)?.as_f64().unwrap_or(0.0) as u64,
            Err(_) => 0,
        })
    }

    fn own_write(&self) -> Option<(u64, u64)> {
        self.own.get()
    }

    async fn cached_collection(&self, collection: &str) -> Result<Vec<Document>, StoreError> {
        let mut docs = self
            .rows_where(CACHE, "coleccion", collection, read::documents)
            .await?;
        docs.retain(|d| !d.deleted);
        // In the index's order; the engine's `list` orders them by id.
        Ok(docs)
    }
}
