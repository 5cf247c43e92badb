//! Helpers for the core's unit tests.

use serde_json::Value;
use uuid::Uuid;

use super::clock::Hlc;
use super::model::{OpKind, OpStatus, Operation};

/// A pending operation on `productos/P1` from store 1.
pub fn op(kind: OpKind, data: Value) -> Operation {
    Operation {
        id: Uuid::from_u128(1),
        store: 1,
        collection: "productos".into(),
        doc_id: "P1".into(),
        kind,
        data: data.as_object().cloned().unwrap_or_default(),
        base_version: 0,
        base_data: None,
        clock: Hlc {
            millis: 1,
            counter: 0,
            node: 1,
        },
        priority: 0,
        status: OpStatus::Pending,
        has_conflict: false,
        attempts: 0,
        error: None,
        created_at: String::new(),
        processed_at: None,
        seq: None,
    }
}
