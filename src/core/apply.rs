//! How one operation changes one document. The hub applies operations with this, and the
//! engine uses it to show a cached document with the store's own pending operations on top.

use serde_json::Value;

use super::model::{Document, OpKind, Operation};

/// Why an operation cannot be applied to the document as it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The document does not exist, or was deleted.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A create names a document that already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An increment targets a field that holds something other than an integer.
    #[error("field {0:?} is not an integer, so it cannot be incremented")]
    NotAnInteger(String),
    /// An increment would leave the 64-bit integer range.
    #[error("incrementing field {0:?} overflows")]
    Overflow(String),
}

impl ApplyError {
    /// A stable code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            ApplyError::NotFound(_) => "no_encontrado",
            ApplyError::AlreadyExists(_) => "ya_existe",
            ApplyError::NotAnInteger(_) => "tipo_invalido",
            ApplyError::Overflow(_) => "desbordamiento",
        }
    }
}

/// Applies `op` to `current` (None: the document was never seen) and returns the new document,
/// with its version one past the current one.
///
/// - create: the document must not exist (a deleted one may be created again);
/// - update: sets the given fields and keeps the others;
/// - delete: leaves a tombstone with no fields;
/// - increment: adds each integer delta to its field (a missing field counts as 0).
pub fn apply(current: Option<&Document>, op: &Operation) -> Result<Document, ApplyError> {
    let live = current.filter(|d| !d.deleted);
    let name = || format!("{}/{}", op.collection, op.doc_id);
    let version = current.map_or(0, |d| d.version) + 1;
    let data = match (op.kind, live) {
        (OpKind::Create, None) => op.data.clone(),
        (OpKind::Create, Some(_)) => return Err(ApplyError::AlreadyExists(name())),
        (_, None) => return Err(ApplyError::NotFound(name())),
        (OpKind::Update, Some(doc)) => {
            let mut data = doc.data.clone();
            data.extend(op.data.iter().map(|(k, v)| (k.clone(), v.clone())));
            data
        }
        (OpKind::Delete, Some(_)) => Default::default(),
        (OpKind::Increment, Some(doc)) => {
            let mut data = doc.data.clone();
            for (field, delta) in &op.data {
                let delta = delta
                    .as_i64()
                    .ok_or_else(|| ApplyError::NotAnInteger(field.clone()))?;
                let now = match data.get(field) {
                    None | Some(Value::Null) => 0,
                    Some(v) => v
                        .as_i64()
                        .ok_or_else(|| ApplyError::NotAnInteger(field.clone()))?,
                };
                let sum = now
                    .checked_add(delta)
                    .ok_or_else(|| ApplyError::Overflow(field.clone()))?;
                data.insert(field.clone(), Value::from(sum));
            }
            data
        }
    };
    Ok(Document {
        collection: op.collection.clone(),
        doc_id: op.doc_id.clone(),
        version,
        data,
        deleted: op.kind == OpKind::Delete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testing::op;
    use serde_json::json;

    fn doc(version: u64, data: Value) -> Document {
        Document {
            collection: "productos".into(),
            doc_id: "P1".into(),
            version,
            data: data.as_object().unwrap().clone(),
            deleted: false,
        }
    }

    #[test]
    fn create_then_update_then_increment() {
        let created = apply(
            None,
            &op(OpKind::Create, json!({"nombre": "Silla", "stock": 5})),
        )
        .unwrap();
        assert_eq!(created.version, 1);
        let updated = apply(
            Some(&created),
            &op(OpKind::Update, json!({"precio": "9.50"})),
        )
        .unwrap();
        assert_eq!(updated.version, 2);
        assert_eq!(
            Value::Object(updated.data.clone()),
            json!({"nombre": "Silla", "stock": 5, "precio": "9.50"})
        );
        let sold = apply(Some(&updated), &op(OpKind::Increment, json!({"stock": -7}))).unwrap();
        assert_eq!(sold.data["stock"], json!(-2));
        assert_eq!(sold.version, 3);
    }

    #[test]
    fn refuses_what_does_not_fit_the_document() {
        let d = doc(4, json!({"stock": 5, "nombre": "Mesa"}));
        assert_eq!(
            apply(Some(&d), &op(OpKind::Create, json!({}))),
            Err(ApplyError::AlreadyExists("productos/P1".into()))
        );
        assert_eq!(
            apply(None, &op(OpKind::Update, json!({"a": 1})))
                .unwrap_err()
                .code(),
            "no_encontrado"
        );
        assert_eq!(
            apply(Some(&d), &op(OpKind::Increment, json!({"nombre": 1}))),
            Err(ApplyError::NotAnInteger("nombre".into()))
        );
        assert_eq!(
            apply(Some(&d), &op(OpKind::Increment, json!({"stock": i64::MAX}))),
            Err(ApplyError::Overflow("stock".into()))
        );
    }

    #[test]
    fn delete_leaves_a_tombstone_that_can_be_created_again() {
        let d = doc(2, json!({"stock": 1}));
        let gone = apply(Some(&d), &op(OpKind::Delete, json!({}))).unwrap();
        assert!(gone.deleted);
        assert!(gone.data.is_empty());
        assert_eq!(gone.version, 3);
        assert_eq!(
            apply(Some(&gone), &op(OpKind::Increment, json!({"stock": 1}))).unwrap_err(),
            ApplyError::NotFound("productos/P1".into())
        );
        let again = apply(Some(&gone), &op(OpKind::Create, json!({"stock": 9}))).unwrap();
        assert_eq!(again.version, 4);
        assert!(!again.deleted);
    }
}
