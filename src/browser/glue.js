// The few steps of the engine that run in JS: each is a handful of native calls here, where
// from the wasm it would cross the boundary once per field (and once per string, which the
// browser decodes each time). wasm-bindgen copies this file into the package, under
// snippets/. (src/browser/glue.rs declares it; nothing else imports it.)

/**
 * `value` as plain data, as JSON sees it: `JSON.parse(JSON.stringify(value))`, the text never
 * leaving JS. `undefined` for `undefined`, a function or a symbol; throws where
 * `JSON.stringify` throws (a cycle, a BigInt, a getter that throws), and on a string with a
 * lone UTF-16 surrogate, which JSON readers refuse (serde_json does) and which the engine's
 * UTF-8 strings would silently turn into U+FFFD, merging distinct ids.
 */
export function plain(value) {
  const text = JSON.stringify(value);
  if (text === undefined) return undefined;
  if (LONE_SURROGATE.test(text)) {
    throw new TypeError('a string holds a lone UTF-16 surrogate (half of a character)');
  }
  return JSON.parse(text);
}

// `JSON.stringify` writes a lone surrogate as the escape \udXXX and a well-formed pair as the
// characters themselves, so such an escape in its output (not itself behind an escaped
// backslash) is a lone surrogate.
const LONE_SURROGATE = /(?:^|[^\\])(?:\\\\)*\\ud[89a-f]/;

/**
 * A queue page record from the JSON text `[ops, places]`, with the keys its indexes read:
 * `ids`, `claves` (the collection, U+001F, the document id) and `retenidas` (the ids of the
 * operations not pending). `n` is the page's key; absent, IndexedDB gives a new one.
 */
export function queuePage(text, n) {
  const [ops, lugares] = JSON.parse(text);
  const page = {
    ops,
    lugares,
    ids: ops.map((o) => o.id),
    claves: ops.map((o) => `${o.coleccion}\u001f${o.objeto_id}`),
    retenidas: ops.filter((o) => o.estado !== 'pendiente').map((o) => o.id),
  };
  if (n !== undefined) page.n = n;
  return page;
}
