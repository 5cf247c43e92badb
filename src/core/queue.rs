//! Queue ordering: which pending operations go to the hub first.
//!
//! The rules, in order of strength:
//! 1. two operations on the same document are always sent in creation order;
//! 2. higher priority first;
//! 3. creation order within a priority.
//!
//! Rule 1 wins over rule 2 by *priority inheritance*: an operation's effective priority is the
//! highest priority of itself and every later operation on the same document. A high-priority
//! update therefore pulls the older, lower-priority operations on its document forward with it,
//! instead of overtaking them. Effective priorities never rise along one document's chain, so
//! every prefix of the order (a batch) respects rule 1.

use std::collections::BTreeMap;

use super::clock::Hlc;
use super::model::Operation;

/// Orders pending operations for sending. `ops` carry their device sequence (`seq`), which is
/// creation order; operations without one sort after those with one, by their clock.
pub fn order(ops: Vec<Operation>) -> Vec<Operation> {
    // Creation order: by device sequence, then clock. One unstable sort over plain keys (each
    // key ends in the operation's index, so no two are equal) serves both orderings below.
    let mut keys: Vec<(i64, Hlc, usize)> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let seq = op
                .seq
                .map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
            (seq, op.clock, i)
        })
        .collect();
    keys.sort_unstable();
    // Effective priorities, walking each document's chain from its newest operation back.
    let mut ranked: Vec<(i64, Hlc, usize)> = Vec::with_capacity(keys.len());
    let mut highest_later: BTreeMap<(&str, &str), i32> = BTreeMap::new();
    for (rank, &(_, _, i)) in keys.iter().enumerate().rev() {
        let op = &ops[i];
        let slot = highest_later
            .entry((op.collection.as_str(), op.doc_id.as_str()))
            .or_insert(i32::MIN);
        *slot = (*slot).max(op.priority);
        // Higher priority first, then creation rank. (The clock has no say here: the same
        // key type as above keeps one sort in the wasm build instead of two.)
        ranked.push((-i64::from(*slot), Hlc::default(), rank));
    }
    ranked.sort_unstable();
    let mut slots: Vec<Option<Operation>> = ops.into_iter().map(Some).collect();
    ranked
        .into_iter()
        .filter_map(|(_, _, rank)| slots[keys[rank].2].take())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::OpKind;
    use crate::core::testing::op;
    use proptest::prelude::*;
    use serde_json::json;

    fn queued(seq: u64, doc: &str, priority: i32) -> Operation {
        let mut o = op(OpKind::Update, json!({"x": seq}));
        o.doc_id = doc.into();
        o.seq = Some(seq);
        o.priority = priority;
        o
    }

    fn seqs(ops: &[Operation]) -> Vec<u64> {
        ops.iter().map(|o| o.seq.unwrap()).collect()
    }

    #[test]
    fn higher_priority_first_then_creation_order() {
        let ops = vec![
            queued(1, "a", 0),
            queued(2, "b", 5),
            queued(3, "c", 0),
            queued(4, "d", 5),
        ];
        assert_eq!(seqs(&order(ops)), vec![2, 4, 1, 3]);
    }

    #[test]
    fn a_later_urgent_operation_pulls_its_document_chain_forward() {
        // seq 1 and 3 touch document "a"; 3 is urgent, so 1 must go with it and before it.
        let ops = vec![queued(1, "a", 0), queued(2, "b", 1), queued(3, "a", 9)];
        assert_eq!(seqs(&order(ops)), vec![1, 3, 2]);
    }

    fn arb_queue() -> impl Strategy<Value = Vec<Operation>> {
        prop::collection::vec((0usize..4, -2i32..3), 0..40).prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (doc, prio))| queued(i as u64 + 1, &format!("d{doc}"), prio))
                .rev() // the input order must not matter
                .collect()
        })
    }

    proptest! {
        #[test]
        fn ordering_is_a_permutation_that_respects_every_rule(ops in arb_queue()) {
            let out = order(ops.clone());
            let mut a = seqs(&ops); a.sort();
            let mut b = seqs(&out); b.sort();
            prop_assert_eq!(a, b);
            for (i, x) in out.iter().enumerate() {
                for y in &out[i + 1..] {
                    // Rule 1: one document's operations in creation order.
                    if x.doc_id == y.doc_id {
                        prop_assert!(x.seq < y.seq);
                    }
                    // Rule 2, unless inherited: a lower priority may only precede a higher one
                    // when a later operation on its own document is at least that urgent.
                    if x.priority < y.priority {
                        let inherited = out.iter().any(|z| z.doc_id == x.doc_id && z.seq > x.seq && z.priority >= y.priority);
                        prop_assert!(inherited, "{:?} before {:?}", x.seq, y.seq);
                    }
                    // Rule 3: equal priorities on unrelated chains keep creation order,
                    // unless the earlier one was pulled forward by its chain.
                    if x.priority == y.priority && x.seq > y.seq {
                        let inherited = out.iter().any(|z| z.doc_id == x.doc_id && z.seq > x.seq && z.priority > y.priority);
                        prop_assert!(inherited, "{:?} before {:?}", x.seq, y.seq);
                    }
                }
            }
        }

        #[test]
        fn every_batch_is_a_prefix_that_keeps_document_order(ops in arb_queue(), size in 1usize..10) {
            let out = order(ops);
            let first: Vec<_> = out.iter().take(size).collect();
            for x in &first {
                // Nothing earlier on the same document is left behind for a later batch.
                let left_behind = out.iter().skip(size).any(|y| y.doc_id == x.doc_id && y.seq < x.seq);
                prop_assert!(!left_behind);
            }
        }
    }
}
