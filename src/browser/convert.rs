//! Moving Rust values across the JS boundary.
//!
//! Data the engine writes goes through JSON text (`serde_json` on the Rust side, the engine's
//! native `JSON.parse` on the other): one boundary crossing per value instead of one per
//! property. Data it reads is taken field by field from the JS value ([`read`](super::read)).
//! The engine's own small reports (its status, a sync's summary, conflict events) are built
//! as JS objects in place by serde-wasm-bindgen, absent values as `null`.

use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

/// A Rust value as a plain JS object (or array, string, number...).
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    js_sys::JSON::parse(&text)
        .map_err(|_| "the engine produced JSON the browser cannot parse".to_owned())
}

/// A JS value as plain data, as `JSON.stringify` sees it: `undefined` properties and
/// functions dropped, dates as their ISO text, and so on. The page's inputs go through it
/// before they are read (see [`read`](super::read)), so they mean what they would mean as JSON.
pub fn plain(value: &JsValue) -> Result<JsValue, String> {
    let plain = super::glue::plain(value).map_err(|e| {
        // JS's own reason (a cycle, a BigInt, a lone surrogate, the page's getter's error).
        let why = e
            .dyn_ref::<js_sys::Error>()
            .map(|e| format!(": {}", String::from(e.message())))
            .unwrap_or_default();
        format!("the value cannot be written as JSON{why}")
    })?;
    if plain.is_undefined() {
        return Err("expected an object, got undefined".to_owned());
    }
    Ok(plain)
}

/// A small Rust value (a status, a summary, an event) as a plain JS object, built in place;
/// `None` becomes `null`, as the TypeScript types say.
pub fn to_object<T: Serialize>(value: &T) -> Result<JsValue, String> {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_missing_as_null(true)
        .serialize_maps_as_objects(true);
    value.serialize(&serializer).map_err(|e| e.to_string())
}
