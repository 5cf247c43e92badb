//! Moving Rust values across the JS boundary.
//!
//! Data goes through JSON text (`serde_json` on the Rust side, the engine's native
//! `JSON.parse`/`JSON.stringify` on the other): one boundary crossing per value instead of one
//! per property, which is what makes queueing a sale and reading back a queue of thousands
//! cheap. The engine's own small reports (its status, a sync's summary, conflict events) are
//! built as JS objects in place by serde-wasm-bindgen, absent values as `null`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;

/// A Rust value as a plain JS object (or array, string, number...).
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    js_sys::JSON::parse(&text)
        .map_err(|_| "the engine produced JSON the browser cannot parse".to_owned())
}

/// A JS value read as `T`, through its JSON form: every key is seen (so `deny_unknown_fields`
/// catches a misspelt option), and `undefined` properties count as absent.
pub fn from_js_json<T: DeserializeOwned>(value: &JsValue) -> Result<T, String> {
    let text = js_sys::JSON::stringify(value)
        .map_err(|_| "the value cannot be written as JSON".to_owned())?;
    let text = text
        .as_string()
        .ok_or_else(|| "expected an object, got undefined".to_owned())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// A small Rust value (a status, a summary, an event) as a plain JS object, built in place;
/// `None` becomes `null`, as the TypeScript types say.
pub fn to_object<T: Serialize>(value: &T) -> Result<JsValue, String> {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_missing_as_null(true)
        .serialize_maps_as_objects(true);
    value.serialize(&serializer).map_err(|e| e.to_string())
}
