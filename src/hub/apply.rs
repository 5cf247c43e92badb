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

use serde_json::{json, Value};
use sqlx::{Sqlite, Transaction};

use super::docs::Docs;
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
