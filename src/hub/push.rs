//! Applying a pushed batch: every operation exactly once, its answer recorded in the same
//! transaction that applied it.
//!
//! For each operation, in order:
//! 1. if the hub has seen its id, the recorded answer is returned again (`duplicada`), unless
//!    the content differs, which is refused as `id_reutilizado` and leaves the original alone;
//! 2. otherwise it is checked (store, shape) and processed ([`super::apply::process`]:
//!    references, conflicts, floors), and the answer is recorded.
//!
//! Deferred operations waiting for a document this batch created are retried before the
//! commit. The whole batch is one transaction: a crash or a database error leaves none of it
//! applied, and the store sends it again. One sync-history row is written in the same
//! transaction.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::apply::{last_seq, process, save_seq, Outcome, Tx};
use super::db::Db;
use super::docs::Docs;
use super::error::AppError;
use super::queue::{
    give_up_after, insert_records, record_row, result_of, retry_waiting, RecordRow,
};
use crate::core::config::StoreConfig;
use crate::core::model::{rfc3339, DocKey, OpKind, OpStatus, Operation, StoreId};
use crate::core::protocol::{validate, OpResult, PushRequest, PushResponse, PREDECESSOR_MISSING};
use uuid::Uuid;

/// A SHA-256 over the operation's content (not its status fields), hex-encoded: the digest
/// of the JSON array `[tienda, coleccion, objeto_id, operacion, datos, version_base, reloj]`,
/// written straight into the hash. `data` is `op.data` as compact JSON (the text the record
/// stores), so the fields are serialized once for both.
pub fn fingerprint(op: &Operation, data: &str) -> String {
    let mut hasher = HashWriter(Sha256::new());
    hasher.put(b"[", &op.store);
    hasher.put(b",", &op.collection);
    hasher.put(b",", &op.doc_id);
    hasher.put(b",", &op.kind);
    hasher.0.update(b",");
    hasher.0.update(data.as_bytes());
    hasher.put(b",", &op.base_version);
    hasher.put(b",", &op.clock);
    hasher.0.update(b"]");
    let digest = hasher.0.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

/// Feeds serialized bytes into a hash.
struct HashWriter(Sha256);

impl HashWriter {
    /// A separator, then a value as JSON.
    fn put(&mut self, separator: &[u8], value: &impl serde::Serialize) {
        self.0.update(separator);
        serde_json::to_writer(&mut *self, value).expect("an operation's fields always serialize");
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    applied: i64,
    duplicates: i64,
    deferred: i64,
    conflicts: i64,
    rejected: i64,
}

impl Db {
    /// Applies a batch and returns one answer per operation, in order.
    pub async fn push(&self, request: &PushRequest, now_ms: u64) -> Result<PushResponse, AppError> {
        let started = Instant::now();
        let now = rfc3339(now_ms);
        let mut conn = self.begin_write().await?;
        let mut tx = conn.immediate().await?;
        let config = super::config::load(&mut tx, request.store).await?;
        let log_id: i64 = sqlx::query_scalar(
            "INSERT INTO registros (tienda, tipo, fecha_inicio, fecha_fin, duracion_ms, recibidas, \
             aplicadas, duplicadas, diferidas, conflictos, rechazadas) \
             VALUES (?, 'push', ?, ?, 0, ?, 0, 0, 0, 0, 0) RETURNING id",
        )
        .bind(request.store as i64)
        .bind(&now)
        .bind(&now)
        .bind(request.operations.len() as i64)
        .fetch_one(&mut *tx)
        .await?;
        let mut seq = last_seq(&mut tx).await?;
        // Read, in a few queries, every document the batch touches or refers to, and which of
        // its ids the hub already holds.
        // Documents and answers are written at the end, many to a statement.
        let mut docs = Docs::buffered(request.operations.len());
        let mut rows = Vec::with_capacity(request.operations.len());
        let mut touched = Vec::with_capacity(request.operations.len());
        let mut referenced = Vec::new();
        for op in &request.operations {
            touched.push((op.collection.clone(), op.doc_id.clone()));
            for (field, target) in config.referencias.get(&op.collection).into_iter().flatten() {
                if let Some(serde_json::Value::String(parent)) = op.data.get(field) {
                    referenced.push((target.clone(), parent.clone()));
                }
            }
        }
        docs.preload(&mut tx, touched, referenced).await?;
        let mut known = known_ids(&mut tx, &request.operations).await?;
        let mut tally = Tally::default();
        let mut results = Vec::with_capacity(request.operations.len());
        let mut created = BTreeSet::new();
        for op in &request.operations {
            let result = apply_one(
                &mut tx,
                &mut docs,
                &mut rows,
                &mut known,
                request.store,
                op,
                &config,
                &now,
                log_id,
                &mut seq,
            )
            .await?;
            match (result.status, result.duplicate) {
                (_, true) => tally.duplicates += 1,
                (OpStatus::Applied, _) => {
                    tally.applied += 1;
                    if op.kind == OpKind::Create {
                        created.insert(DocKey::new(&op.collection, &op.doc_id).joined());
                    }
                }
                (OpStatus::Deferred, _) => tally.deferred += 1,
                (OpStatus::Conflict, _) => tally.conflicts += 1,
                (OpStatus::Rejected | OpStatus::Pending, _) => tally.rejected += 1,
            }
            results.push(result);
        }
        docs.flush(&mut tx).await?;
        insert_records(&mut tx, &rows).await?;
        if !created.is_empty() {
            retry_waiting(&mut tx, &created, &now, &mut seq).await?;
        }
        save_seq(&mut tx, seq).await?;
        let elapsed = started.elapsed().as_millis() as u64;
        sqlx::query(
            "UPDATE registros SET fecha_fin = ?, duracion_ms = ?, aplicadas = ?, duplicadas = ?, \
             diferidas = ?, conflictos = ?, rechazadas = ? WHERE id = ?",
        )
        .bind(rfc3339(now_ms + elapsed))
        .bind(elapsed as i64)
        .bind(tally.applied)
        .bind(tally.duplicates)
        .bind(tally.deferred)
        .bind(tally.conflicts)
        .bind(tally.rejected)
        .bind(log_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        conn.done();
        self.pushes.send_modify(|n| *n += 1);
        tracing::info!(
            tienda = request.store,
            registro = log_id,
            recibidas = request.operations.len(),
            aplicadas = tally.applied,
            duplicadas = tally.duplicates,
            diferidas = tally.deferred,
            conflictos = tally.conflicts,
            rechazadas = tally.rejected,
            ms = elapsed,
            "push applied"
        );
        Ok(PushResponse {
            store: request.store,
            results,
            log_id,
        })
    }
}

/// How many failed pushes the hub remembers for the chained pushes that name them.
const FAILED_KEPT: usize = 1024;

impl Db {
    /// Notes that a push of `store` whose last operation is `last` failed here, so nothing of
    /// it was recorded: a chained push naming that operation, waiting or yet to come, is
    /// refused at once instead of after the whole wait.
    pub fn push_failed(&self, store: StoreId, last: Uuid) {
        {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if failed.len() >= FAILED_KEPT {
                failed.pop_front();
            }
            failed.push_back((store, last));
        }
        self.pushes.send_modify(|n| *n += 1);
    }

    /// Forgets the failures of the operations a push arriving from `request.store` carries
    /// again: a push chained to one of them waits for it once more.
    pub fn push_arriving(&self, request: &PushRequest) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if !failed.is_empty() {
            failed.retain(|&(store, id)| {
                store != request.store || !request.operations.iter().any(|o| o.id == id)
            });
        }
    }

    fn failed_here(&self, store: StoreId, id: Uuid) -> bool {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.contains(&(store, id))
    }

    /// Waits until the hub has recorded operation `id` of store `store` (in any state), for at
    /// most `wait`. A chained push names the last operation of the batch sent before it; once
    /// that batch is recorded, this one may follow. If it never arrives (the device lost it or
    /// refused it), or the push that carried it failed here, the chained push is refused with
    /// 409 `predecesor_ausente` and nothing of it is applied.
    pub async fn wait_for_predecessor(
        &self,
        store: StoreId,
        id: Uuid,
        wait: Duration,
    ) -> Result<(), AppError> {
        // Subscribed before the first look, so a commit between the look and the wait is seen.
        let mut pushes = self.pushes.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let id_text = id.hyphenated().to_string();
        loop {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM operaciones WHERE id = ? AND tienda = ?")
                    .bind(&id_text)
                    .bind(store as i64)
                    .fetch_optional(&self.pool)
                    .await?;
            if found.is_some() {
                return Ok(());
            }
            if self.failed_here(store, id) {
                return Err(AppError::Conflict {
                    detail: format!(
                        "This batch waits for operation {id} of store {store}, whose push failed \
                         here, so the hub has not recorded it. Nothing was applied; send it \
                         again once the batch before it is answered."
                    ),
                    code: PREDECESSOR_MISSING,
                });
            }
            match tokio::time::timeout_at(deadline, pushes.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    return Err(AppError::Conflict {
                        detail: format!(
                            "This batch waits for operation {id}, which the hub has not received \
                             from store {store} within {} ms. Nothing was applied; send it again \
                             once the batch before it is answered.",
                            wait.as_millis()
                        ),
                        code: PREDECESSOR_MISSING,
                    })
                }
            }
        }
    }
}

// The batch's shared state travels as separate borrows, so each stays checkable on its own.
#[allow(clippy::too_many_arguments)]
async fn apply_one(
    tx: &mut Tx<'_>,
    docs: &mut Docs,
    rows: &mut Vec<RecordRow>,
    known: &mut HashSet<String>,
    batch_store: u64,
    op: &Operation,
    config: &StoreConfig,
    now: &str,
    log_id: i64,
    seq: &mut i64,
) -> Result<OpResult, AppError> {
    let id = op.id.hyphenated().to_string();
    let data = serde_json::to_string(&op.data).expect("a JSON object always serializes");
    let huella = fingerprint(op, &data);
    // Only an id the hub already holds needs its record read (most ids are new).
    let seen = if !known.contains(&id) {
        None
    } else {
        // The id may be one this batch recorded: its row must be in the database first.
        insert_records(tx, rows).await?;
        rows.clear();
        sqlx::query(
        "SELECT estado, version, error, codigo, huella, conflicto FROM operaciones WHERE id = ?",
    )
    .bind(&id)
    .fetch_optional(&mut **tx)
    .await?
    };
    if let Some(row) = seen {
        let recorded: String = row.get("huella");
        if recorded != huella {
            let outcome = Outcome::Rejected {
                code: "id_reutilizado",
                message: "this id was already used by a different operation; the first one stands"
                    .into(),
            };
            return Ok(result_of(op.id, &outcome));
        }
        let status: String = row.get("estado");
        return Ok(OpResult {
            id: op.id,
            status: OpStatus::parse(&status).unwrap_or(OpStatus::Rejected),
            version: row.get::<Option<i64>, _>("version").map(|v| v as u64),
            conflict: row
                .get::<Option<String>, _>("conflicto")
                .and_then(|c| serde_json::from_str(&c).ok()),
            error: row.get("error"),
            code: row.get("codigo"),
            duplicate: true,
        });
    }

    let outcome = if op.store != batch_store {
        Outcome::Rejected {
            code: "tienda_incorrecta",
            message: format!(
                "operation of store {} in a batch of store {}",
                op.store, batch_store
            ),
        }
    } else if let Err(e) = validate(op) {
        Outcome::Rejected {
            code: "invalida",
            message: e.to_string(),
        }
    } else {
        {
            // The push is the first attempt.
            let outcome = process(tx, docs, op, config, now, seq).await?;
            if matches!(outcome, Outcome::Deferred { .. }) {
                // Giving up reads the document from the database.
                docs.flush(tx).await?;
            }
            give_up_after(tx, op, outcome, 1, config, now).await?
        }
    };
    rows.push(record_row(op, data, huella, log_id, &outcome, now));
    known.insert(id);
    Ok(result_of(op.id, &outcome))
}

/// The ids of `ops` the hub already holds, in a few queries.
async fn known_ids(tx: &mut Tx<'_>, ops: &[Operation]) -> Result<HashSet<String>, AppError> {
    let mut known = HashSet::new();
    for chunk in super::chunks::statement_chunks(ops) {
        let sql = format!(
            "SELECT id FROM operaciones WHERE id IN ({})",
            vec!["?"; chunk.len()].join(",")
        );
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for op in chunk {
            query = query.bind(op.id.hyphenated().to_string());
        }
        known.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testing::op;
    use serde_json::json;

    /// Fingerprints are stored: the streamed digest must equal the digest of the same
    /// content built as a JSON value and written out, as hubs before it recorded them.
    #[test]
    fn the_fingerprint_is_the_digest_of_the_content_array() {
        let mut sale = op(
            OpKind::Create,
            json!({"producto": "FUR-BO-10001798", "importe": "261.96", "cantidad": 2,
                   "cliente": "Zoë \"Ñandú\" \u{1f}", "extra": {"a": [1, 2.5, null, true]}}),
        );
        sale.collection = "ventas".into();
        sale.doc_id = "v-1".into();
        sale.base_version = 7;
        let delta = op(OpKind::Increment, json!({"stock": -3}));
        for o in [sale, delta] {
            let content = json!([
                o.store,
                o.collection,
                o.doc_id,
                o.kind,
                o.data,
                o.base_version,
                o.clock
            ]);
            let expected: String = Sha256::digest(content.to_string().as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let data = serde_json::to_string(&o.data).unwrap();
            assert_eq!(fingerprint(&o, &data), expected);
            assert_eq!(expected.len(), 64);
        }
    }
}
