//! Resolver properties: deterministic strategies, commuting increments, and field rules that
//! touch only their own fields.

use proptest::prelude::{
    any, prop, prop_assert, prop_assert_eq, prop_compose, prop_oneof, proptest, Just, TestCaseError,
};
use proptest::strategy::Strategy as Gen;
use serde_json::json;

use super::*;
use crate::core::apply::apply;
use crate::core::testing::op;

fn doc(data: Value, version: u64) -> Document {
    Document {
        collection: "productos".into(),
        doc_id: "P1".into(),
        version,
        data: data.as_object().unwrap().clone(),
        deleted: false,
    }
}

fn stamps(fields: &[(&str, u64, u64)]) -> FieldStamps {
    fields
        .iter()
        .map(|(f, v, ms)| {
            (
                f.to_string(),
                FieldStamp {
                    version: *v,
                    clock: Hlc {
                        millis: *ms,
                        counter: 0,
                        node: 0,
                    },
                },
            )
        })
        .collect()
}

#[test]
fn detection_is_per_field() {
    let d = doc(json!({"nombre": "Mesa", "precio": "9.00", "stock": 4}), 3);
    let st = stamps(&[("nombre", 1, 10), ("precio", 3, 30), ("stock", 2, 20)]);
    let mut o = op(OpKind::Update, json!({"nombre": "Mesa alta"}));
    o.base_version = 2;
    assert_eq!(
        detect(Some(&d), &st, &o),
        None,
        "nombre last changed at version 1"
    );
    o.data = json!({"nombre": "x", "precio": "1.00"})
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(detect(Some(&d), &st, &o), Some(vec!["precio".to_owned()]));
    o.base_version = 0;
    assert_eq!(detect(Some(&d), &st, &o), None, "a blind write");
    let mut del = op(OpKind::Delete, json!({}));
    del.base_version = 2;
    assert_eq!(detect(Some(&d), &st, &del), Some(vec!["*".to_owned()]));
    del.base_version = 3;
    assert_eq!(detect(Some(&d), &st, &del), None);
    let create = op(OpKind::Create, json!({"stock": 1}));
    assert_eq!(
        detect(Some(&d), &st, &create),
        Some(vec!["stock".to_owned()])
    );
    assert_eq!(detect(None, &st, &create), None);
    let inc = op(OpKind::Increment, json!({"stock": -9}));
    assert_eq!(detect(Some(&d), &st, &inc), None);
}

#[test]
fn floors_report_the_fields_below_them() {
    let after = doc(json!({"stock": -1, "otro": -5}), 2);
    let floors = BTreeMap::from([("stock".to_owned(), 0)]);
    let inc = op(OpKind::Increment, json!({"stock": -2, "otro": -1}));
    assert_eq!(
        below_floor(&after, &floors, &inc),
        vec![("stock".to_owned(), -1, 0)]
    );
    assert!(below_floor(&after, &floors, &op(OpKind::Update, json!({"stock": -1}))).is_empty());
}

fn arb_value() -> impl Gen<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::from),
        "[0-9]{1,3}\\.[0-9]{2}".prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::from),
        Just(Value::Null)
    ]
}

fn arb_fields() -> impl Gen<Value = Fields> {
    prop::collection::btree_map("[a-e]", arb_value(), 0..5).prop_map(|m| m.into_iter().collect())
}

fn arb_rule() -> impl Gen<Value = FieldRule> {
    prop_oneof![
        Just(FieldRule::Server),
        Just(FieldRule::Store),
        Just(FieldRule::Latest),
        Just(FieldRule::Max),
        Just(FieldRule::Min),
        Just(FieldRule::Sum)
    ]
}

fn arb_strategy() -> impl Gen<Value = Strategy> {
    prop_oneof![
        Just(Strategy::ServerWins),
        Just(Strategy::StoreWins),
        Just(Strategy::LastWriter),
        Just(Strategy::PerField),
        Just(Strategy::Manual)
    ]
}

prop_compose! {
    fn arb_case()(server in arb_fields(), store in arb_fields(), base in arb_fields(),
                  rules in prop::collection::btree_map("[a-e]", arb_rule(), 0..5),
                  clocks in prop::collection::btree_map("[a-e]", (1u64..5, 0u64..100), 0..5),
                  op_ms in 0u64..100, base_version in 0u64..5)
        -> (Document, FieldStamps, Operation, BTreeMap<String, FieldRule>) {
        let d = Document { collection: "c".into(), doc_id: "d".into(), version: 5, data: server, deleted: false };
        let st: FieldStamps = clocks.into_iter().map(|(f, (v, ms))| (f, FieldStamp { version: v, clock: Hlc { millis: ms, counter: 0, node: 0 } })).collect();
        let mut o = op(OpKind::Update, json!({}));
        o.data = store;
        o.base_data = Some(base);
        o.base_version = base_version;
        o.clock = Hlc { millis: op_ms, counter: 0, node: 9 };
        (d, st, o, rules)
    }
}

proptest! {
    #[test]
    fn every_strategy_is_deterministic((d, st, o, rules) in arb_case(), strategy in arb_strategy()) {
        let fields = detect(Some(&d), &st, &o).unwrap_or_default();
        let first = resolve(strategy, &rules, &d, &st, &o, &fields);
        // Rebuilt inputs, built in another order, give the same decision.
        let rules_again: BTreeMap<String, FieldRule> = rules.clone().into_iter().rev().collect();
        let st_again: FieldStamps = st.clone().into_iter().rev().collect();
        prop_assert_eq!(&first, &resolve(strategy, &rules_again, &d.clone(), &st_again, &o.clone(), &fields));
        prop_assert_eq!(strategy == Strategy::Manual, matches!(first, Decision::Manual));
    }

    #[test]
    fn increments_commute(start in -1000i64..1000, a in -50i64..50, b in -50i64..50, other in -50i64..50) {
        let d = doc(json!({"stock": start, "x": 1}), 1);
        let ia = op(OpKind::Increment, json!({"stock": a, "x": other}));
        let ib = op(OpKind::Increment, json!({"stock": b}));
        let ab = apply(Some(&apply(Some(&d), &ia).unwrap()), &ib).unwrap();
        let ba = apply(Some(&apply(Some(&d), &ib).unwrap()), &ia).unwrap();
        prop_assert_eq!(&ab.data, &ba.data);
        prop_assert_eq!(ab.data["stock"].as_i64(), Some(start + a + b));
        prop_assert_eq!(ab.version, ba.version);
    }

    #[test]
    fn a_field_rule_never_touches_fields_it_does_not_own((d, st, o, rules) in arb_case()) {
        let fields = detect(Some(&d), &st, &o).unwrap_or_default();
        let Decision::Apply { set, delete, outcomes } = resolve(Strategy::PerField, &rules, &d, &st, &o, &fields) else {
            return Err(TestCaseError::fail("per-field never asks for an admin"));
        };
        prop_assert!(!delete);
        for (field, value) in &set {
            // Only fields the operation changes are written.
            prop_assert!(o.data.contains_key(field), "wrote {} the operation does not own", field);
            if !fields.contains(field) {
                prop_assert_eq!(value, &o.data[field], "a clean field takes the store's value");
            }
        }
        for outcome in &outcomes {
            prop_assert!(fields.contains(&outcome.field));
            let rule = rules.get(&outcome.field).copied().unwrap_or_default();
            let server = d.data.get(&outcome.field).cloned().unwrap_or(Value::Null);
            let store = o.data[&outcome.field].clone();
            match rule {
                FieldRule::Server => prop_assert_eq!(&outcome.result, &server),
                FieldRule::Store => prop_assert_eq!(&outcome.result, &store),
                FieldRule::Sum => {}
                _ => prop_assert!(outcome.result == server || outcome.result == store),
            }
        }
        // Fields outside the operation keep the hub's values.
        let mut merged = d.data.clone();
        merged.extend(set);
        for (field, value) in &d.data {
            if !o.data.contains_key(field) {
                prop_assert_eq!(&merged[field], value);
            }
        }
    }
}
