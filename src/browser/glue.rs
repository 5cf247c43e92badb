//! The engine's steps that run in JS (`src/browser/glue.js`, which wasm-bindgen copies into
//! the package under `snippets/`): each is a few native calls there, where from Rust it would
//! cross the wasm boundary once per field, and once per string, each decoded by the browser on
//! the way. Building a queue page here, and making the page's input plain data without its
//! text crossing into the wasm and back, took per-operation `enqueue` from 0.83× to 0.90× the
//! speed of a raw IndexedDB put (two runs of five alternating rounds each, before and after)
//! and made the wasm 497 bytes smaller.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

#[wasm_bindgen(module = "/src/browser/glue.js")]
extern "C" {
    /// `JSON.parse(JSON.stringify(value))`, the text never crossing into the wasm; `undefined`
    /// where JSON writes nothing (`undefined`, a function); an error where it cannot write
    /// (a cycle, a BigInt).
    #[wasm_bindgen(catch)]
    pub fn plain(value: &JsValue) -> Result<JsValue, JsValue>;

    /// A queue page record, `{n?, ops, lugares, ids, claves, retenidas}`, from the JSON text
    /// `[ops, places]`: the index keys are taken from the parsed operations (see the schema in
    /// [`idb`](super::idb)). `n` absent: IndexedDB gives the key.
    #[wasm_bindgen(js_name = queuePage)]
    pub fn queue_page(text: &str, n: Option<f64>) -> JsValue;
}
