//! Conflict detection and resolution (the specification's `ConflictResolver`).
//!
//! The hub keeps, for every field of every document, the version and the hybrid-clock time of
//! its last change ([`FieldStamps`]). An operation based on version `b` conflicts on the fields
//! it changes that the hub changed after `b`; fields nobody else touched merge cleanly.
//!
//! - `actualizar`: conflicts on each changed field whose stamp is newer than `version_base`
//!   (a `version_base` of 0 is a blind write: the store never saw the document).
//! - `eliminar`: conflicts when the document changed after `version_base`.
//! - `crear` of a document that exists: conflicts on every field it sets.
//! - `incrementar`: never; deltas commute. Floors (stock ≥ 0) are checked apart, see [`below_floor`].
//!
//! [`resolve`] then decides by the collection's [`Strategy`]: the hub's value, the store's, the
//! later by hybrid clock, per-field [`FieldRule`]s, or a person ([`Strategy::Manual`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::Hlc;
use super::model::{Document, Fields, OpKind, Operation};

/// How one collection's conflicts are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// The hub's data stands.
    #[serde(rename = "servidor")]
    ServerWins,
    /// The store's data wins.
    #[serde(rename = "tienda")]
    StoreWins,
    /// The later write wins, by the hybrid logical clock (never by wall clocks alone).
    #[default]
    #[serde(rename = "ultimo")]
    LastWriter,
    /// Each field by its own [`FieldRule`].
    #[serde(rename = "campos")]
    PerField,
    /// An admin decides.
    #[serde(rename = "manual")]
    Manual,
}

/// How one field's conflict is resolved under [`Strategy::PerField`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldRule {
    /// The hub's value.
    #[serde(rename = "servidor")]
    Server,
    /// The store's value.
    #[serde(rename = "tienda")]
    Store,
    /// The later by hybrid clock.
    #[default]
    #[serde(rename = "ultimo")]
    Latest,
    /// The larger number.
    #[serde(rename = "max")]
    Max,
    /// The smaller number.
    #[serde(rename = "min")]
    Min,
    /// Both sides' changes added: hub + (store − base). Needs the base value (`datos_base`).
    #[serde(rename = "suma")]
    Sum,
}

/// The version and clock of a field's last change on the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldStamp {
    /// The document version that last changed the field.
    pub version: u64,
    /// The clock of the operation that changed it.
    pub clock: Hlc,
}

/// Every field's last change, by field name.
pub type FieldStamps = BTreeMap<String, FieldStamp>;

/// The fields an operation changes that the hub changed after the operation's base version.
/// `None` when the operation does not conflict; `Some(fields)` otherwise (`["*"]` for a delete).
pub fn detect(
    current: Option<&Document>,
    stamps: &FieldStamps,
    op: &Operation,
) -> Option<Vec<String>> {
    let doc = current.filter(|d| !d.deleted)?;
    let newer = |field: &str| {
        stamps
            .get(field)
            .is_some_and(|s| s.version > op.base_version)
    };
    let fields: Vec<String> = match op.kind {
        OpKind::Increment => return None,
        OpKind::Create => op.data.keys().cloned().collect(),
        OpKind::Update if op.base_version == 0 => return None,
        OpKind::Update => op.data.keys().filter(|f| newer(f)).cloned().collect(),
        OpKind::Delete if op.base_version == 0 || doc.version <= op.base_version => return None,
        OpKind::Delete => vec!["*".to_owned()],
    };
    if op.kind == OpKind::Create {
        return Some(fields);
    }
    (!fields.is_empty()).then_some(fields)
}

/// What a resolution decided for one conflicting field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldOutcome {
    /// The field.
    #[serde(rename = "campo")]
    pub field: String,
    /// The hub's value before.
    #[serde(rename = "servidor")]
    pub server: Value,
    /// The store's value.
    #[serde(rename = "tienda")]
    pub store: Value,
    /// The value kept.
    #[serde(rename = "resultado")]
    pub result: Value,
}

/// A resolution.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Write these fields (the operation's clean fields plus the resolved ones); for a delete,
    /// `delete` says whether the document goes.
    Apply {
        /// The fields to set on the document.
        set: Fields,
        /// Whether to delete the document (a delete the store won).
        delete: bool,
        /// Each conflicting field's outcome.
        outcomes: Vec<FieldOutcome>,
    },
    /// Hold the operation for an admin.
    Manual,
}

/// Resolves a conflicting operation. `conflicting` comes from [`detect`]; `rules` holds the
/// collection's per-field rules (fields without one use [`FieldRule::Latest`]).
/// Deterministic: the same inputs always give the same decision.
pub fn resolve(
    strategy: Strategy,
    rules: &BTreeMap<String, FieldRule>,
    current: &Document,
    stamps: &FieldStamps,
    op: &Operation,
    conflicting: &[String],
) -> Decision {
    if strategy == Strategy::Manual {
        return Decision::Manual;
    }
    let store_is_later = |field: &str| stamps.get(field).is_none_or(|s| op.clock > s.clock);
    if op.kind == OpKind::Delete {
        let delete = match strategy {
            Strategy::StoreWins => true,
            Strategy::ServerWins => false,
            _ => op.clock > stamps.values().map(|s| s.clock).max().unwrap_or_default(),
        };
        return Decision::Apply {
            set: Fields::new(),
            delete,
            outcomes: vec![],
        };
    }
    let mut set = Fields::new();
    let mut outcomes = Vec::new();
    for (field, store_value) in &op.data {
        if !conflicting.contains(field) {
            set.insert(field.clone(), store_value.clone());
            continue;
        }
        let server_value = current.data.get(field).cloned().unwrap_or(Value::Null);
        let rule = match strategy {
            Strategy::ServerWins => FieldRule::Server,
            Strategy::StoreWins => FieldRule::Store,
            Strategy::LastWriter => FieldRule::Latest,
            Strategy::PerField => rules.get(field).copied().unwrap_or_default(),
            Strategy::Manual => unreachable!("handled above"),
        };
        let base = op.base_data.as_ref().and_then(|b| b.get(field));
        let result = match rule {
            FieldRule::Server => server_value.clone(),
            FieldRule::Store => store_value.clone(),
            FieldRule::Latest if store_is_later(field) => store_value.clone(),
            FieldRule::Latest => server_value.clone(),
            FieldRule::Max => pick(&server_value, store_value, std::cmp::Ordering::Greater),
            FieldRule::Min => pick(&server_value, store_value, std::cmp::Ordering::Less),
            FieldRule::Sum => sum(&server_value, store_value, base),
        };
        if result != server_value {
            set.insert(field.clone(), result.clone());
        }
        outcomes.push(FieldOutcome {
            field: field.clone(),
            server: server_value,
            store: store_value.clone(),
            result,
        });
    }
    Decision::Apply {
        set,
        delete: false,
        outcomes,
    }
}

/// The number a JSON value holds: a number, or a decimal string (money).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The server's value unless the store's compares `wanted` to it; non-numbers keep the server's.
fn pick(server: &Value, store: &Value, wanted: std::cmp::Ordering) -> Value {
    match (number(server), number(store)) {
        (Some(a), Some(b)) if b.partial_cmp(&a) == Some(wanted) => store.clone(),
        (None, Some(_)) if server.is_null() => store.clone(),
        _ => server.clone(),
    }
}

/// hub + (store − base) for integers; without a usable base, the server's value stands.
fn sum(server: &Value, store: &Value, base: Option<&Value>) -> Value {
    match (
        server.as_i64(),
        store.as_i64(),
        base.and_then(Value::as_i64),
    ) {
        (Some(h), Some(s), Some(b)) => h
            .checked_add(s.saturating_sub(b))
            .map_or_else(|| server.clone(), Value::from),
        _ => server.clone(),
    }
}

/// The floors of an increment's fields that the new document breaks: `(field, value, floor)`.
pub fn below_floor(
    after: &Document,
    floors: &BTreeMap<String, i64>,
    op: &Operation,
) -> Vec<(String, i64, i64)> {
    if op.kind != OpKind::Increment {
        return vec![];
    }
    op.data
        .keys()
        .filter_map(|f| {
            let floor = *floors.get(f)?;
            let value = after.data.get(f)?.as_i64()?;
            (value < floor).then(|| (f.clone(), value, floor))
        })
        .collect()
}

/// Updates the field stamps after `op` changed `fields` to produce `version`.
pub fn stamp(
    stamps: &mut FieldStamps,
    fields: impl IntoIterator<Item = String>,
    version: u64,
    clock: Hlc,
) {
    for f in fields {
        stamps.insert(f, FieldStamp { version, clock });
    }
}

#[cfg(test)]
#[path = "conflict_tests.rs"]
mod tests;
