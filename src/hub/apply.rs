//! Processing one operation inside the hub's write transaction: references, conflicts, floors.
//!
//! [`process`] is shared by a push, the hub-side queue (`sincronizar`, `procesar`) and nothing
//! else; resolution by an admin lives in `resolve`. The order of checks:
//! 1. references: an update or increment of a missing document, or a create whose configured
//!    reference (a sale's `producto`) names a missing document, is *deferred*: its parent may
//!    still arrive;
//! 2. conflicts ([`conflict::detect`]): resolved by the collection's strategy at once and
//!    recorded, or held for an admin (`manual`);
//! 3. otherwise the operation is applied with the core's rules;
//! 4. floors: an increment that leaves a field below its floor (stock below zero) is applied
//!    (the customer has the goods) and opens one inventory conflict for the document.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::{Row, Sqlite, Transaction};

use super::error::AppError;
use crate::core::apply::apply;
use crate::core::config::StoreConfig;
use crate::core::conflict::{self, Decision, FieldStamps, Strategy};
use crate::core::model::{DocKey, Document, Fields, OpKind, Operation};

/// A transaction on the hub's database.
pub type Tx<'a> = Transaction<'a, Sqlite>;

/// What processing decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Applied.
    Applied {
        /// The document's new version.
        version: Option<u64>,
        /// The detail of a conflict resolved by rule or opened (inventory).
        conflict: Option<Value>,
        /// Whether an open conflict is attached (an inventory conflict).
        has_conflict: bool,
    },
    /// Waiting for a document.
    Deferred {
        /// The joined key of the document it waits for.
        waits: String,
        /// Why, for people.
        reason: String,
    },
    /// Held for an admin.
    Conflict {
        /// The conflict's id, kind and fields.
        detail: Value,
    },
    /// Refused.
    Rejected {
        /// A stable code.
        code: &'static str,
        /// Why, for people.
        message: String,
    },
}

/// A document with the hub's bookkeeping.
#[derive(Clone)]
pub struct Stored {
    /// The document.
    pub doc: Document,
    /// Each field's last change.
    pub stamps: FieldStamps,
}

/// The last commit sequence issued. A writing transaction reads it once, passes it on as
/// `seq` to every document write, and saves it with [`save_seq`] before it commits.
pub async fn last_seq(tx: &mut Tx<'_>) -> Result<i64, AppError> {
    Ok(
        sqlx::query_scalar("SELECT valor FROM secuencia WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Records the last commit sequence issued (see [`last_seq`]).
pub async fn save_seq(tx: &mut Tx<'_>, seq: i64) -> Result<(), AppError> {
    sqlx::query("UPDATE secuencia SET valor = ? WHERE id = 1")
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

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

/// A new conflict row; returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn open_conflict(
    tx: &mut Tx<'_>,
    op: &Operation,
    kind: &str,
    fields: &[String],
    server: &Fields,
    strategy: &str,
    now: &str,
) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO conflictos (operacion_id, tienda, coleccion, objeto_id, tipo, campos, datos_servidor, \
         datos_tienda, estrategia, estado, fecha_creacion) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'abierto', ?) RETURNING id",
    )
    .bind(op.id.hyphenated().to_string())
    .bind(op.store as i64)
    .bind(&op.collection)
    .bind(&op.doc_id)
    .bind(kind)
    .bind(json!(fields).to_string())
    .bind(serde_json::to_string(server).unwrap_or_default())
    .bind(serde_json::to_string(&op.data).unwrap_or_default())
    .bind(strategy)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?)
}

fn strategy_name(s: Strategy) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Processes one operation against the hub's data, writing what it decides.
pub async fn process(
    tx: &mut Tx<'_>,
    docs: &mut Docs,
    op: &Operation,
    config: &StoreConfig,
    now: &str,
    seq: &mut i64,
) -> Result<Outcome, AppError> {
    let current = docs.get(tx, &op.collection, &op.doc_id).await?;
    let live = current.as_ref().filter(|s| !s.doc.deleted);

    // 1. References.
    match op.kind {
        OpKind::Update | OpKind::Increment if live.is_none() => {
            return Ok(Outcome::Deferred {
                waits: DocKey::new(&op.collection, &op.doc_id).joined(),
                reason: format!("{}/{} does not exist (yet)", op.collection, op.doc_id),
            });
        }
        OpKind::Delete if live.is_none() => {
            return Ok(Outcome::Rejected {
                code: "no_encontrado",
                message: format!("{}/{} does not exist", op.collection, op.doc_id),
            });
        }
        OpKind::Create => {
            for (field, target) in config.referencias.get(&op.collection).into_iter().flatten() {
                if let Some(Value::String(parent)) = op.data.get(field) {
                    if !docs.is_live(tx, target, parent).await? {
                        return Ok(Outcome::Deferred {
                            waits: DocKey::new(target, parent).joined(),
                            reason: format!(
                                "{field} names {target}/{parent}, which does not exist (yet)"
                            ),
                        });
                    }
                }
            }
        }
        _ => {}
    }

    let empty = FieldStamps::new();
    let stamps = current.as_ref().map_or(&empty, |s| &s.stamps);
    let clock = op.clock.to_string();

    // 2. Conflicts.
    if let (Some(stored), Some(fields)) = (live, conflict::detect(live.map(|s| &s.doc), stamps, op))
    {
        let strategy = config.strategy(&op.collection);
        let rules = config
            .reglas
            .get(&op.collection)
            .cloned()
            .unwrap_or_default();
        return match conflict::resolve(strategy, &rules, &stored.doc, stamps, op, &fields) {
            Decision::Manual => {
                let id = open_conflict(tx, op, "campos", &fields, &stored.doc.data, "manual", now)
                    .await?;
                sqlx::query("UPDATE conflictos SET version_servidor = ? WHERE id = ?")
                    .bind(stored.doc.version as i64)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                Ok(Outcome::Conflict {
                    detail: json!({"id": id, "tipo": "campos", "campos": fields, "estrategia": "manual"}),
                })
            }
            Decision::Apply {
                set,
                delete,
                outcomes,
            } => {
                let before = stored.doc.data.clone();
                let mut next = Stored {
                    doc: stored.doc.clone(),
                    stamps: stored.stamps.clone(),
                };
                let changed = delete || !set.is_empty();
                if changed {
                    next.doc.version += 1;
                    if delete {
                        next.doc.data = Fields::new();
                        next.doc.deleted = true;
                    } else {
                        next.doc.data.extend(set.clone());
                    }
                    conflict::stamp(
                        &mut next.stamps,
                        set.keys().cloned(),
                        next.doc.version,
                        op.clock,
                    );
                    docs.write(tx, next.clone(), &clock, now, seq).await?;
                }
                let name = strategy_name(strategy);
                let id = open_conflict(tx, op, "campos", &fields, &before, &name, now).await?;
                let outcomes_json = serde_json::to_value(&outcomes).unwrap_or(Value::Null);
                sqlx::query(
                    "UPDATE conflictos SET estado = 'resuelto', resolucion = 'automatica', resultado = ?, \
                     resuelto_por = 'regla', fecha_resolucion = ?, datos_antes = ?, datos_despues = ? WHERE id = ?",
                )
                .bind(outcomes_json.to_string())
                .bind(now)
                .bind(Value::Object(before).to_string())
                .bind(Value::Object(next.doc.data.clone()).to_string())
                .bind(id)
                .execute(&mut **tx)
                .await?;
                Ok(Outcome::Applied {
                    version: Some(next.doc.version),
                    conflict: Some(
                        json!({"id": id, "tipo": "campos", "campos": fields, "estrategia": name, "resuelto": true, "resultado": outcomes_json}),
                    ),
                    has_conflict: false,
                })
            }
        };
    }

    // 3. Apply.
    let doc = match apply(current.as_ref().map(|s| &s.doc), op) {
        Ok(doc) => doc,
        Err(e) => {
            return Ok(Outcome::Rejected {
                code: e.code(),
                message: e.to_string(),
            })
        }
    };
    // A create or a delete starts the stamps afresh; other kinds keep the fields' history.
    let mut next_stamps = if doc.deleted || op.kind == OpKind::Create {
        FieldStamps::new()
    } else {
        stamps.clone()
    };
    conflict::stamp(
        &mut next_stamps,
        op.data.keys().cloned(),
        doc.version,
        op.clock,
    );
    let next = Stored {
        doc,
        stamps: next_stamps,
    };

    // 4. Floors.
    let floors = config.minimos.get(&op.collection);
    let broken = floors.map_or_else(Vec::new, |f| conflict::below_floor(&next.doc, f, op));
    let version = next.doc.version;
    let data_after = (!broken.is_empty()).then(|| next.doc.data.clone());
    docs.write(tx, next, &clock, now, seq).await?;
    let Some(data_after) = data_after else {
        return Ok(Outcome::Applied {
            version: Some(version),
            conflict: None,
            has_conflict: false,
        });
    };
    let fields: Vec<String> = broken.iter().map(|(f, _, _)| f.clone()).collect();
    let open: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM conflictos WHERE coleccion = ? AND objeto_id = ? AND tipo = 'inventario' AND estado = 'abierto'",
    )
    .bind(&op.collection)
    .bind(&op.doc_id)
    .fetch_optional(&mut **tx)
    .await?;
    let opened_now = open.is_none();
    let id = match open {
        Some(id) => {
            // One open inventory conflict per document: it follows the latest stock.
            sqlx::query("UPDATE conflictos SET datos_servidor = ? WHERE id = ?")
                .bind(serde_json::to_string(&data_after).unwrap_or_default())
                .bind(id)
                .execute(&mut **tx)
                .await?;
            id
        }
        None => open_conflict(tx, op, "inventario", &fields, &data_after, "manual", now).await?,
    };
    let detail: Vec<Value> = broken
        .iter()
        .map(|(f, v, floor)| json!({"campo": f, "valor": v, "minimo": floor}))
        .collect();
    Ok(Outcome::Applied {
        version: Some(version),
        conflict: Some(
            json!({"id": id, "tipo": "inventario", "campos": fields, "bajo_minimo": detail}),
        ),
        // The operation that opened the conflict carries it; later ones only point at it.
        has_conflict: opened_now,
    })
}

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
