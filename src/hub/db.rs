//! The hub's SQLite storage: opening, migrations, and the read queries.
//!
//! Writes go through one writer at a time (SQLite allows one anyway); the lock makes that
//! explicit, so a push never fails with "database is locked" under load. Reads run in
//! parallel on the WAL snapshot. The durability is `synchronous = FULL`: a push the hub has
//! answered survives a power cut, because the device deletes its copy once answered.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::Mutex;

use super::error::AppError;
use crate::core::model::{Document, Fields, OpKind, OpStatus, Operation};
use crate::core::protocol::{Change, PullResponse};

/// The write-ahead log's size, in pages, past which a commit checkpoints it itself.
const WAL_PAGES: u32 = 8000;

/// Copies the write-ahead log back into the database file twice a second, on a connection
/// of its own. SQLite would otherwise do it inside the commit that fills the log past 1000
/// pages, and that push would answer late. A passive checkpoint waits for no reader or
/// writer; it ends with the pool (the last connection's close checkpoints what is left).
async fn checkpoints(pool: SqlitePool) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "checkpoint failed; the next commit past the log's limit checkpoints instead");
        }
    }
}

/// Rows the database thread may hand over ahead of the reader: a push's preload of documents.
const ROW_BUFFER: usize = 1024;

/// The hub's database.
pub struct Db {
    pub(crate) pool: SqlitePool,
    pub(crate) writer: Mutex<()>,
    /// Counts committed pushes, so a chained push waiting for its predecessor wakes up.
    pub(crate) pushes: tokio::sync::watch::Sender<u64>,
    /// The last operation of each push that failed here lately (store, id), oldest first: a
    /// chained push naming one is refused at once instead of waiting for it.
    pub(crate) failed:
        std::sync::Mutex<std::collections::VecDeque<(crate::core::model::StoreId, uuid::Uuid)>>,
    file: Option<FileId>,
}

/// The identity of the database file the hub opened, so a file deleted or replaced under a
/// running hub is noticed instead of writes going into a file nobody can read again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    path: std::path::PathBuf,
    id: (u64, u64),
}

impl FileId {
    fn of(path: &Path) -> std::io::Result<FileId> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let id = (u64::from(meta.is_file()), 0);
        Ok(FileId {
            path: path.to_owned(),
            id,
        })
    }
}

/// A pooled connection held for one write, with the hub's single-writer lock. Unless the
/// write finishes ([`WriteConn::done`]), the connection of a file database is closed rather
/// than returned to the pool: a failed write (a read-only or vanished file, a full disk) can
/// leave a SQLite connection unable to write again.
pub(crate) struct WriteConn<'a> {
    _writer: tokio::sync::MutexGuard<'a, ()>,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>,
    ok: bool,
}

impl WriteConn<'_> {
    /// Begins the write transaction with `BEGIN IMMEDIATE`: it takes SQLite's write lock at
    /// once, so a writer in another process (`pos-sync-hub sincronizar` beside a running hub)
    /// waits for the busy timeout instead of failing with "database is locked" on upgrade.
    pub(crate) async fn immediate(
        &mut self,
    ) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, AppError> {
        Ok(sqlx::Connection::begin_with(&mut **self, "BEGIN IMMEDIATE").await?)
    }

    /// Marks the write finished; the connection goes back to the pool.
    pub(crate) fn done(&mut self) {
        self.ok = true;
    }
}

impl std::ops::Deref for WriteConn<'_> {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        self.conn.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_mut().expect("held until drop")
    }
}

impl Drop for WriteConn<'_> {
    fn drop(&mut self) {
        if !self.ok {
            if let Some(conn) = self.conn.take() {
                drop(conn.detach());
            }
        }
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite file at `path` and runs the migrations.
    pub async fn open(path: &Path) -> Result<Db, AppError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // A multi-row statement inside a push keeps its statement journal in memory
            // instead of spilling it to a temporary file past 64 KiB.
            .pragma("temp_store", "memory")
            // Checkpoints run beside the writes (see `checkpoints`); a commit checkpoints by
            // itself only if the log outgrows this many pages (32 MiB) anyway.
            .pragma("wal_autocheckpoint", WAL_PAGES.to_string())
            .busy_timeout(Duration::from_secs(10))
            // A push reads up to a batch of document rows at once; with room for them all the
            // database thread hands them over without waiting for the hub to take each few.
            .row_buffer_size(ROW_BUFFER);
        let mut db = Self::with_options(options, 8).await?;
        let file = FileId::of(path)
            .map_err(|e| AppError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
        db.file = Some(file);
        tokio::spawn(checkpoints(db.pool.clone()));
        Ok(db)
    }

    /// An in-memory database, for tests (one connection, so every query sees the same data).
    pub async fn memory() -> Result<Db, AppError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::with_options(options, 1).await
    }

    async fn with_options(options: SqliteConnectOptions, connections: u32) -> Result<Db, AppError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            // A memory database lives in its one connection, kept open for good; a file
            // database opens connections as needed (none racing the migration at start).
            .min_connections(u32::from(connections == 1))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Db {
            pool,
            writer: Mutex::new(()),
            pushes: tokio::sync::watch::Sender::new(0),
            failed: Default::default(),
            file: None,
        })
    }

    /// Closes every connection, checkpointing the write-ahead log into the database file.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Checks that the database file is still the one opened, and that it answers.
    pub async fn ping(&self) -> Result<(), AppError> {
        self.check_file()?;
        sqlx::query("SELECT valor FROM secuencia")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Fails when the database file was deleted or replaced since the hub opened it.
    pub fn check_file(&self) -> Result<(), AppError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        match FileId::of(&file.path) {
            Ok(now) if now == *file => Ok(()),
            _ => Err(AppError::Unavailable(format!(
                "the database file {} was removed or replaced while the hub ran; nothing was written. Restore it and restart the hub.",
                file.path.display()
            ))),
        }
    }

    /// Takes the single-writer lock and a connection for one write transaction.
    pub(crate) async fn begin_write(&self) -> Result<WriteConn<'_>, AppError> {
        let writer = self.writer.lock().await;
        self.check_file()?;
        let conn = self.pool.acquire().await?;
        // An in-memory database lives in its one connection: it is never discarded.
        let ok = self.file.is_none();
        Ok(WriteConn {
            _writer: writer,
            conn: Some(conn),
            ok,
        })
    }

    /// Changes after `since`, at most `limit`, optionally only in `collections`.
    pub async fn pull(
        &self,
        since: u64,
        limit: u32,
        collections: &[String],
    ) -> Result<PullResponse, AppError> {
        let mut tx = self.pool.begin().await?;
        // The snapshot's last sequence: everything at or below it is committed and visible.
        let last: i64 = sqlx::query_scalar("SELECT valor FROM secuencia WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let filter = if collections.is_empty() {
            String::new()
        } else {
            format!(
                " AND coleccion IN ({})",
                vec!["?"; collections.len()].join(",")
            )
        };
        let sql = format!(
            "SELECT seq, coleccion, objeto_id, version, datos, eliminado, reloj FROM documentos \
             WHERE seq > ? AND seq <= ?{filter} ORDER BY seq LIMIT ?"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(since as i64)
            .bind(last);
        for c in collections {
            query = query.bind(c);
        }
        let rows = query.bind(i64::from(limit) + 1).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let more = rows.len() > limit as usize;
        let changes = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                Ok(Change {
                    seq: r.get::<i64, _>("seq") as u64,
                    doc: document(r)?,
                    clock: r
                        .get::<Option<String>, _>("reloj")
                        .and_then(|c| c.parse().ok()),
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let cursor = match (more, changes.last()) {
            (true, Some(c)) => c.seq,
            _ => (last as u64).max(since),
        };
        Ok(PullResponse {
            changes,
            cursor,
            more,
        })
    }

    /// One document, deleted ones included.
    pub async fn document(
        &self,
        collection: &str,
        doc_id: &str,
    ) -> Result<Option<Document>, AppError> {
        let row = sqlx::query("SELECT coleccion, objeto_id, version, datos, eliminado FROM documentos WHERE coleccion = ? AND objeto_id = ?")
            .bind(collection)
            .bind(doc_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(document).transpose()
    }

    /// A page of received operations, oldest first, with the total count.
    pub async fn operations(
        &self,
        filter: &OpFilter,
        limit: u32,
        offset: u64,
    ) -> Result<(u64, Vec<HubOperation>), AppError> {
        let mut clauses = Vec::new();
        if filter.store.is_some() {
            clauses.push("tienda = ?");
        }
        // The partial indexes (migration 4) serve a query only when it repeats their condition.
        match filter.status {
            Some(OpStatus::Applied) => clauses.push("estado = ?"),
            Some(_) => clauses.push(NOT_APPLIED_STATE),
            None => {}
        }
        match filter.has_conflict {
            Some(true) => clauses.push(IN_CONFLICT),
            Some(false) => clauses.push("tiene_conflicto = 0"),
            None => {}
        }
        if filter.collection.is_some() {
            clauses.push("coleccion = ?");
        }
        let id_clause = format!("id IN ({})", vec!["?"; filter.ids.len()].join(","));
        if !filter.ids.is_empty() {
            clauses.push(&id_clause);
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) FROM operaciones{filter_sql}");
        let page_sql =
            format!("SELECT * FROM operaciones{filter_sql} ORDER BY rowid LIMIT ? OFFSET ?");
        macro_rules! bind_filter {
            ($q:expr) => {{
                let mut q = $q;
                if let Some(s) = filter.store {
                    q = q.bind(s as i64);
                }
                if let Some(s) = filter.status {
                    q = q.bind(s.as_str());
                }
                if let Some(c) = &filter.collection {
                    q = q.bind(c.as_str());
                }
                for id in &filter.ids {
                    q = q.bind(id.as_str());
                }
                q
            }};
        }
        let count: i64 = bind_filter!(sqlx::query_scalar(AssertSqlSafe(count_sql.clone())))
            .fetch_one(&self.pool)
            .await?;
        let rows = bind_filter!(sqlx::query(AssertSqlSafe(page_sql)))
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let ops = rows.iter().map(hub_operation).collect::<Result<_, _>>()?;
        Ok((count as u64, ops))
    }

    /// A page of the sync history, newest first, with the total count.
    pub async fn logs(
        &self,
        store: Option<u64>,
        limit: u32,
        offset: u64,
    ) -> Result<(u64, Vec<SyncLog>), AppError> {
        let store = store.map(|s| s as i64);
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM registros WHERE (?1 IS NULL OR tienda = ?1)")
                .bind(store)
                .fetch_one(&self.pool)
                .await?;
        let rows = sqlx::query("SELECT * FROM registros WHERE (?1 IS NULL OR tienda = ?1) ORDER BY id DESC LIMIT ?2 OFFSET ?3")
            .bind(store)
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let logs = rows
            .iter()
            .map(|r| SyncLog {
                id: r.get("id"),
                store: r.get::<i64, _>("tienda") as u64,
                kind: r.get("tipo"),
                started_at: r.get("fecha_inicio"),
                finished_at: r.get("fecha_fin"),
                duracion_ms: r.get("duracion_ms"),
                received: r.get("recibidas"),
                applied: r.get("aplicadas"),
                duplicates: r.get("duplicadas"),
                deferred: r.get("diferidas"),
                conflicts: r.get("conflictos"),
                rejected: r.get("rechazadas"),
            })
            .collect();
        Ok((count as u64, logs))
    }

    /// Counts for the metrics endpoint.
    pub async fn counts(&self) -> Result<Value, AppError> {
        let by_status: Vec<(String, i64)> =
            sqlx::query_as("SELECT estado, COUNT(*) FROM operaciones GROUP BY estado")
                .fetch_all(&self.pool)
                .await?;
        let documents: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM documentos WHERE eliminado = 0")
                .fetch_one(&self.pool)
                .await?;
        let seq: i64 = sqlx::query_scalar("SELECT valor FROM secuencia WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let pushes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM registros")
            .fetch_one(&self.pool)
            .await?;
        Ok(serde_json::json!({
            "operaciones": by_status.into_iter().map(|(k, v)| (k, Value::from(v))).collect::<serde_json::Map<_, _>>(),
            "documentos": documents,
            "secuencia": seq,
            "registros": pushes,
        }))
    }
}

/// The filter for one state other than `aplicada` (bound as its one parameter), in the form
/// the partial index `operaciones_no_aplicadas` serves: the lists and the hub-side queue.
pub(crate) const NOT_APPLIED_STATE: &str = "estado = ? AND estado <> 'aplicada'";

/// The list's filter for operations in conflict, served by `operaciones_en_conflicto`.
const IN_CONFLICT: &str = "tiene_conflicto = 1";

/// Filters for the operation list.
#[derive(Debug, Default, Clone)]
pub struct OpFilter {
    /// `tienda`.
    pub store: Option<u64>,
    /// `estado`.
    pub status: Option<OpStatus>,
    /// `tiene_conflicto`.
    pub has_conflict: Option<bool>,
    /// `coleccion`.
    pub collection: Option<String>,
    /// `id`: only these operations.
    pub ids: Vec<String>,
}

/// An operation as the hub holds it: the operation plus the hub's answer.
#[derive(Debug, Clone, Serialize)]
pub struct HubOperation {
    /// The operation with the hub's status.
    #[serde(flatten)]
    pub op: Operation,
    /// The document version it produced.
    pub version: Option<u64>,
    /// The error code, when it was not applied.
    #[serde(rename = "codigo")]
    pub code: Option<String>,
    /// When the hub received it.
    #[serde(rename = "fecha_recepcion")]
    pub received_at: String,
    /// The sync-history row of the push that brought it.
    #[serde(rename = "registro")]
    pub log_id: i64,
}

/// One row of the sync history.
#[derive(Debug, Clone, Serialize)]
pub struct SyncLog {
    /// The row id.
    pub id: i64,
    /// The store.
    #[serde(rename = "tienda")]
    pub store: u64,
    /// `push`.
    #[serde(rename = "tipo")]
    pub kind: String,
    /// When the push arrived.
    #[serde(rename = "fecha_inicio")]
    pub started_at: String,
    /// When its transaction committed.
    #[serde(rename = "fecha_fin")]
    pub finished_at: String,
    /// How long it took.
    pub duracion_ms: i64,
    /// Operations in the batch.
    #[serde(rename = "recibidas")]
    pub received: i64,
    /// Applied now.
    #[serde(rename = "aplicadas")]
    pub applied: i64,
    /// Re-sent ones answered from the record.
    #[serde(rename = "duplicadas")]
    pub duplicates: i64,
    /// Deferred.
    #[serde(rename = "diferidas")]
    pub deferred: i64,
    /// In conflict.
    #[serde(rename = "conflictos")]
    pub conflicts: i64,
    /// Refused.
    #[serde(rename = "rechazadas")]
    pub rejected: i64,
}

pub(crate) fn fields_from(text: &str) -> Result<Fields, AppError> {
    serde_json::from_str(text).map_err(|e| AppError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn document(r: &SqliteRow) -> Result<Document, AppError> {
    Ok(Document {
        collection: r.get("coleccion"),
        doc_id: r.get("objeto_id"),
        version: r.get::<i64, _>("version") as u64,
        data: fields_from(r.get("datos"))?,
        deleted: r.get::<i64, _>("eliminado") != 0,
    })
}

pub(crate) fn hub_operation(r: &SqliteRow) -> Result<HubOperation, AppError> {
    let decode = |what: &str, v: String| {
        AppError::Database(sqlx::Error::Decode(format!("bad {what} {v:?}").into()))
    };
    let id: String = r.get("id");
    let kind: String = r.get("operacion");
    let status: String = r.get("estado");
    let clock: String = r.get("reloj");
    Ok(HubOperation {
        op: Operation {
            id: id.parse().map_err(|_| decode("id", id.clone()))?,
            store: r.get::<i64, _>("tienda") as u64,
            collection: r.get("coleccion"),
            doc_id: r.get("objeto_id"),
            kind: OpKind::parse(&kind).ok_or_else(|| decode("operacion", kind.clone()))?,
            data: fields_from(r.get("datos"))?,
            base_version: r.get::<i64, _>("version_base") as u64,
            base_data: r
                .get::<Option<String>, _>("datos_base")
                .map(|t| fields_from(&t))
                .transpose()?,
            clock: clock.parse().map_err(|_| decode("reloj", clock.clone()))?,
            priority: r.get::<i64, _>("prioridad") as i32,
            status: OpStatus::parse(&status).ok_or_else(|| decode("estado", status.clone()))?,
            has_conflict: r.get::<i64, _>("tiene_conflicto") != 0,
            attempts: r.get::<i64, _>("intentos") as u32,
            error: r.get("error"),
            created_at: r.get("fecha_creacion"),
            processed_at: r.get("fecha_procesamiento"),
            seq: None,
        },
        version: r.get::<Option<i64>, _>("version").map(|v| v as u64),
        code: r.get("codigo"),
        received_at: r.get("fecha_recepcion"),
        log_id: r.get("registro"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `SELECT * FROM operaciones WHERE {filter}`.
    async fn plan(db: &Db, filter: &str) -> String {
        let sql =
            format!("EXPLAIN QUERY PLAN SELECT * FROM operaciones WHERE {filter} ORDER BY rowid");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if filter.contains('?') {
            query = query.bind("diferida");
        }
        let rows = query.fetch_all(&db.pool).await.unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The few operations not applied, or in conflict, are found through their partial
    /// indexes, not by reading every operation the hub ever received.
    #[tokio::test]
    async fn listing_held_operations_uses_the_partial_indexes() {
        let db = Db::memory().await.unwrap();
        let held = plan(&db, NOT_APPLIED_STATE).await;
        assert!(held.contains("operaciones_no_aplicadas"), "{held}");
        let conflicted = plan(&db, IN_CONFLICT).await;
        assert!(
            conflicted.contains("operaciones_en_conflicto"),
            "{conflicted}"
        );
    }
}
