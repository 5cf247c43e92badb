//! The documents one write transaction reads and writes ([`Docs`]): each read once, from a
//! few preloading queries, and the writes of a push buffered and written many to a statement.

use std::collections::HashMap;

use sqlx::{Row, Sqlite};

use super::apply::{Stored, Tx};
use super::error::AppError;
use crate::core::model::Document;

/// Loads a document and its field stamps.
pub async fn load(
    tx: &mut Tx<'_>,
    collection: &str,
    doc_id: &str,
) -> Result<Option<Stored>, AppError> {
    let row = sqlx::query("SELECT version, datos, eliminado, campos FROM documentos WHERE coleccion = ? AND objeto_id = ?")
        .bind(collection)
        .bind(doc_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| RawRow::of(&r).parse(collection, doc_id))
        .transpose()
}

/// Writes documents (insert or replace), many to a statement, in the order given.
async fn upsert(tx: &mut Tx<'_>, rows: &[(&Stored, &Unwritten)]) -> Result<(), AppError> {
    for chunk in super::chunks::statement_chunks(rows) {
        let mut upsert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO documentos (coleccion, objeto_id, version, datos, eliminado, seq, actualizado, campos, reloj) ",
        );
        upsert.push_values(chunk, |mut row, (stored, u)| {
            let doc = &stored.doc;
            row.push_bind(&doc.collection)
                .push_bind(&doc.doc_id)
                .push_bind(doc.version as i64)
                .push_bind(serde_json::to_string(&doc.data).unwrap_or_else(|_| "{}".into()))
                .push_bind(doc.deleted)
                .push_bind(u.seq)
                .push_bind(&u.now)
                .push_bind(serde_json::to_string(&stored.stamps).unwrap_or_else(|_| "{}".into()))
                .push_bind(&u.clock);
        });
        upsert.push(
            " ON CONFLICT (coleccion, objeto_id) DO UPDATE SET version = excluded.version, \
             datos = excluded.datos, eliminado = excluded.eliminado, seq = excluded.seq, \
             actualizado = excluded.actualizado, campos = excluded.campos, reloj = excluded.reloj",
        );
        upsert.build().persistent(true).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The documents one transaction has read or written, so a batch reads each document once.
/// Every write of a document in the transaction must go through [`Docs::write`].
///
/// A [`Docs::buffered`] one keeps its writes (the last per document) until [`Docs::flush`],
/// which writes them many to a statement; until then the database does not have them, so
/// every read of a document in the transaction must go through the same `Docs` too.
#[derive(Default)]
pub struct Docs {
    map: DocMap<Slot>,
    buffer: bool,
    unwritten: DocMap<Unwritten>,
}

/// Maps keyed by `(collection, id)`, hashed with foldhash: SipHash (std's default) and growing
/// rehashes were about 4% of a push's instructions. Its per-process random seed keeps keys a
/// store chooses from colliding on purpose.
type DocMap<V> = HashMap<(String, String), V, foldhash::fast::RandomState>;

/// A document as [`Docs`] knows it. Preloaded rows stay as the database's text until an
/// operation needs their fields: a sale only asks whether its product exists.
enum Slot {
    Absent,
    /// Known to exist, fields not read: a document the batch only refers to.
    Exists {
        deleted: bool,
    },
    Row(RawRow),
    Loaded(Stored),
}

/// A document row, not parsed yet.
struct RawRow {
    version: i64,
    datos: String,
    deleted: bool,
    campos: String,
}

impl RawRow {
    /// The columns of a `documentos` row (`version, datos, eliminado, campos`), unparsed.
    fn of(r: &sqlx::sqlite::SqliteRow) -> Self {
        RawRow {
            version: r.get("version"),
            datos: r.get("datos"),
            deleted: r.get::<i64, _>("eliminado") != 0,
            campos: r.get("campos"),
        }
    }

    /// The document and its field stamps.
    fn parse(&self, collection: &str, doc_id: &str) -> Result<Stored, AppError> {
        Ok(Stored {
            doc: Document {
                collection: collection.to_owned(),
                doc_id: doc_id.to_owned(),
                version: self.version as u64,
                data: super::db::fields_from(&self.datos)?,
                deleted: self.deleted,
            },
            stamps: serde_json::from_str(&self.campos)
                .map_err(|e| AppError::Database(sqlx::Error::Decode(Box::new(e))))?,
        })
    }
}

/// A buffered document write.
struct Unwritten {
    seq: i64,
    clock: String,
    now: String,
}

impl Docs {
    /// A cache whose writes wait for [`Docs::flush`], sized for a batch of `operations`.
    pub fn buffered(operations: usize) -> Self {
        Docs {
            buffer: true,
            unwritten: DocMap::with_capacity_and_hasher(operations, Default::default()),
            ..Docs::default()
        }
    }

    /// Writes the buffered documents, many to a statement.
    pub async fn flush(&mut self, tx: &mut Tx<'_>) -> Result<(), AppError> {
        let mut unwritten: Vec<_> = self.unwritten.drain().collect();
        unwritten.sort_by_key(|(_, u)| u.seq);
        let rows: Vec<(&Stored, &Unwritten)> = unwritten
            .iter()
            .filter_map(|(key, u)| match self.map.get(key) {
                Some(Slot::Loaded(stored)) => Some((stored, u)),
                _ => None,
            })
            .collect();
        upsert(tx, &rows).await
    }

    /// Reads many documents in a few queries (absent ones are remembered as absent): one per
    /// collection and chunk, each a search of the primary key (`coleccion = ? AND objeto_id
    /// IN (...)`; SQLite plans a row-value `IN` over both columns as a scan of the table).
    /// Of the documents in `referenced` and not in `touched`, only whether they exist is read:
    /// an operation that refers to a document asks nothing else of it.
    pub async fn preload(
        &mut self,
        tx: &mut Tx<'_>,
        touched: Vec<(String, String)>,
        referenced: Vec<(String, String)>,
    ) -> Result<(), AppError> {
        self.map.reserve(touched.len() + referenced.len());
        let mut full = Wanted::new();
        for key in touched {
            if !self.map.contains_key(&key) {
                full.entry(key.0).or_default().insert(key.1);
            }
        }
        let mut light = Wanted::new();
        for key in referenced {
            let in_full = full.get(&key.0).is_some_and(|ids| ids.contains(&key.1));
            if !in_full && !self.map.contains_key(&key) {
                light.entry(key.0).or_default().insert(key.1);
            }
        }
        self.read_many(tx, full, false).await?;
        self.read_many(tx, light, true).await
    }

    async fn read_many(
        &mut self,
        tx: &mut Tx<'_>,
        wanted: Wanted,
        existence: bool,
    ) -> Result<(), AppError> {
        for (collection, ids) in wanted {
            let ids: Vec<String> = ids.into_iter().collect();
            for chunk in super::chunks::statement_chunks(&ids) {
                let sql = preload_sql(chunk.len(), existence);
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&collection);
                for id in chunk {
                    query = query.bind(id);
                }
                for r in query.fetch_all(&mut **tx).await? {
                    let key = (collection.clone(), r.get::<String, _>("objeto_id"));
                    let slot = if existence {
                        Slot::Exists {
                            deleted: r.get::<i64, _>("eliminado") != 0,
                        }
                    } else {
                        Slot::Row(RawRow::of(&r))
                    };
                    self.map.insert(key, slot);
                }
                for id in chunk {
                    self.map
                        .entry((collection.clone(), id.clone()))
                        .or_insert(Slot::Absent);
                }
            }
        }
        Ok(())
    }

    /// One document, from the cache or the database.
    pub async fn get(
        &mut self,
        tx: &mut Tx<'_>,
        collection: &str,
        doc_id: &str,
    ) -> Result<Option<Stored>, AppError> {
        let key = (collection.to_owned(), doc_id.to_owned());
        let stored = match self.map.get(&key) {
            Some(Slot::Absent) => return Ok(None),
            Some(Slot::Loaded(stored)) => return Ok(Some(stored.clone())),
            Some(Slot::Row(row)) => Some(row.parse(collection, doc_id)?),
            // Not written in this transaction (a write makes the slot `Loaded`), so the
            // database has it as it stands.
            Some(Slot::Exists { .. }) | None => load(tx, collection, doc_id).await?,
        };
        // Parsed or read just now: remembered for the rest of the transaction.
        let slot = stored.clone().map_or(Slot::Absent, Slot::Loaded);
        self.map.insert(key, slot);
        Ok(stored)
    }

    /// Whether a document exists and is not deleted, without reading its fields.
    pub async fn is_live(
        &mut self,
        tx: &mut Tx<'_>,
        collection: &str,
        doc_id: &str,
    ) -> Result<bool, AppError> {
        let key = (collection.to_owned(), doc_id.to_owned());
        Ok(match self.map.get(&key) {
            Some(Slot::Absent) => false,
            Some(Slot::Loaded(stored)) => !stored.doc.deleted,
            Some(Slot::Row(row)) => !row.deleted,
            Some(Slot::Exists { deleted }) => !deleted,
            None => self
                .get(tx, collection, doc_id)
                .await?
                .is_some_and(|s| !s.doc.deleted),
        })
    }

    /// Writes a document (next commit sequence) and remembers it.
    pub async fn write(
        &mut self,
        tx: &mut Tx<'_>,
        stored: Stored,
        clock: &str,
        now: &str,
        seq: &mut i64,
    ) -> Result<(), AppError> {
        let key = (stored.doc.collection.clone(), stored.doc.doc_id.clone());
        *seq += 1;
        let unwritten = Unwritten {
            seq: *seq,
            clock: clock.to_owned(),
            now: now.to_owned(),
        };
        if self.buffer {
            self.unwritten.insert(key.clone(), unwritten);
        } else {
            upsert(tx, &[(&stored, &unwritten)]).await?;
        }
        self.map.insert(key, Slot::Loaded(stored));
        Ok(())
    }
}

/// The query [`Docs::preload`] runs for `n` documents of one collection: whole rows, or
/// only whether they exist.
fn preload_sql(n: usize, existence: bool) -> String {
    let columns = if existence {
        "objeto_id, eliminado"
    } else {
        "objeto_id, version, datos, eliminado, campos"
    };
    format!(
        "SELECT {columns} FROM documentos WHERE coleccion = ? AND objeto_id IN ({})",
        vec!["?"; n].join(", ")
    )
}

/// Document ids to read, by collection.
type Wanted = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A push reads its documents by the primary key: a plan that scans `documentos` makes
    /// every push slower as the hub's data grows.
    #[tokio::test]
    async fn preloading_searches_the_primary_key() {
        let db = super::super::db::Db::memory().await.unwrap();
        for existence in [false, true] {
            let sql = format!("EXPLAIN QUERY PLAN {}", preload_sql(3, existence));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind("productos");
            for id in ["P1", "P2", "P3"] {
                query = query.bind(id);
            }
            let plan: Vec<String> = query
                .fetch_all(&db.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect();
            assert!(
                plan.iter()
                    .any(|d| d.contains("SEARCH documentos USING PRIMARY KEY")),
                "{plan:?}"
            );
            assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
        }
    }
}
