// Arguments of the wrong type from JavaScript: every method of the optimised package rejects
// (or, for the synchronous ones, throws) a PosSyncInvalidError, and nothing traps inside the
// wasm. (String parameters passed straight through wasm-bindgen's glue once made a number
// trap with "memory access out of bounds".)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withHubAndBrowser } from '../../tools/fixture.mjs';

/**
 * Runs `body(dbName)` in a fresh page of the hub's origin, where `window.outcome(call)` gives
 * 'resolved' or the error's `name: message`; resolves with its result and the page's
 * uncaught errors.
 */
async function inPage({ hub, browser }, label, body) {
  const page = await (await browser.newContext()).newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}/replay.html`);
  await page.evaluate(() => {
    window.outcome = async (call) => {
      try {
        await call();
        return 'resolved';
      } catch (e) {
        return `${e.name}: ${e.message}`;
      }
    };
  });
  return { result: await page.evaluate(body, `${label}-${Date.now()}`), pageErrors };
}

test('arguments of the wrong type reject with PosSyncInvalidError and the engine keeps working', () => withHubAndBrowser('args', async (fixture) => {
  const { result, pageErrors } = await inPage(fixture, 'args', async (dbName) => {
    const { default: init, PosSync } = await import('/pkg/pos_sync.js');
    await init();
    const engine = await PosSync.open({ storeId: 8, dbName, hubUrl: '' });
    const seen = {};
    for (const [label, bad] of [['number', 5], ['null', null], ['undefined', undefined], ['object', {}], ['bigint', 5n]]) {
      seen[label] = [
        await window.outcome(() => engine.get(bad, 'x')),
        await window.outcome(() => engine.get('productos', bad)),
        await window.outcome(() => engine.list(bad)),
        await window.outcome(() => PosSync.deleteDatabase(bad)),
        await window.outcome(() => engine.addEventListener(bad, () => {})),
        await window.outcome(() => engine.addEventListener('change', bad)),
        await window.outcome(() => engine.removeEventListener(bad, () => {})),
      ];
    }
    await engine.enqueue({ coleccion: 'ventas', objeto_id: 'v1', operacion: 'crear' });
    const pending = await engine.pendingCount();
    const own = await engine.get('ventas', 'v1');
    engine.close();
    return { seen, pending, own: own?.objeto_id };
  });
  const expected = [
    'PosSyncInvalidError: coleccion must be a string',
    'PosSyncInvalidError: objeto_id must be a string',
    'PosSyncInvalidError: coleccion must be a string',
    'PosSyncInvalidError: the database name must be a string',
    'PosSyncInvalidError: the event must be a string',
    'PosSyncInvalidError: the listener must be a function',
    'PosSyncInvalidError: the event must be a string',
  ];
  for (const [label, outcomes] of Object.entries(result.seen)) assert.deepEqual(outcomes, expected, label);
  assert.equal(result.pending, 1);
  assert.equal(result.own, 'v1');
  assert.deepEqual(pageErrors, []);
}));

test('an operation JSON cannot write rejects naming why, queues nothing, and one it can is taken as JSON reads it', () => withHubAndBrowser('plain', async (fixture) => {
  const { result, pageErrors } = await inPage(fixture, 'plain', async (dbName) => {
    const { default: init, PosSync } = await import('/pkg/pos_sync.js');
    await init();
    const engine = await PosSync.open({ storeId: 8, dbName, hubUrl: '' });
    const sale = (datos) => ({ coleccion: 'ventas', objeto_id: 'v1', operacion: 'crear', datos });
    const cyclic = { cantidad: 1 };
    cyclic.self = cyclic;
    // `levels` objects, `datos` itself the first.
    const nested = (levels) => Array.from({ length: levels - 1 }).reduce((inner) => ({ a: inner }), { a: 1 });
    const seen = [
      await window.outcome(() => engine.enqueue(undefined)),
      await window.outcome(() => engine.enqueue(() => 1)),
      await window.outcome(() => engine.enqueue(sale({ importe: 5n }))),
      await window.outcome(() => engine.enqueue(sale(cyclic))),
      await window.outcome(() => engine.enqueueMany([sale({ cantidad: 1 }), sale(cyclic)])),
      await window.outcome(() => engine.enqueue(sale({ getter: 1, get boom() { throw new Error('the page broke'); } }))),
      // Half a character: JSON readers refuse it, and it would have become U+FFFD.
      await window.outcome(() => engine.enqueue({ ...sale({}), objeto_id: '\ud800' })),
      await window.outcome(() => engine.enqueue(sale({ nota: 'a\udc00b' }))),
      await window.outcome(() => engine.enqueue(sale({ ['k\ud800']: 1 }))),
      // Nesting: 33 levels is past the engine's limit, and 20,000 past what it reads at all
      // (it once overran the wasm's stack there and broke the engine until a reload).
      await window.outcome(() => engine.enqueue(sale(nested(33)))),
      await window.outcome(() => engine.enqueue(sale(nested(20000)))),
      await window.outcome(() => engine.enqueueMany([sale({ cantidad: 1 }), sale(nested(5000))])),
    ];
    const before = await engine.pendingCount();
    // At the limits, and text that only looks like an escape, are taken as they are.
    const limits = [
      await engine.enqueue({ ...sale(nested(32)), objeto_id: 'deep' }),
      await engine.enqueue({ ...sale({ emoji: '😀', texto: '\\ud800' }), objeto_id: 'texto' }),
    ].map((op) => op.datos);
    // JSON's reading: a Date as its ISO text, undefined members and functions left out.
    const queued = await engine.enqueue(sale({ fecha: new Date(Date.UTC(2026, 11, 4)), nota: undefined, f: () => 1, cantidad: 2 }));
    const own = await engine.get('ventas', 'v1');
    const after = await engine.pendingCount();
    engine.close();
    return { seen, before, after, queued: queued.datos, own: own?.datos, limits, deep: JSON.stringify(limits[0]) === JSON.stringify(nested(32)) };
  });
  const json = 'PosSyncInvalidError: invalid operation: the value cannot be written as JSON';
  const surrogate = `${json}: a string holds a lone UTF-16 surrogate (half of a character)`;
  const [notObject, fn, bigint, cycle, cycleInMany, getter, ...rest] = result.seen;
  assert.equal(notObject, 'PosSyncInvalidError: invalid operation: expected an object, got undefined');
  assert.equal(fn, notObject);
  assert.match(bigint, new RegExp(`^${json}: .*BigInt`));
  assert.match(cycle, new RegExp(`^${json}: .*circular`));
  assert.match(cycleInMany, new RegExp(`^${json}: .*circular`));
  assert.equal(getter, `${json}: the page broke`);
  assert.deepEqual(rest, [
    surrogate,
    surrogate,
    surrogate,
    'PosSyncInvalidError: invalid operation: datos: nests objects and arrays more than 32 levels deep',
    'PosSyncInvalidError: invalid operation: `datos` nests objects and arrays more than 128 levels deep',
    'PosSyncInvalidError: invalid operation: `datos` nests objects and arrays more than 128 levels deep',
  ]);
  assert.equal(result.before, 0);
  assert.equal(result.after, 3);
  assert.equal(result.deep, true);
  assert.deepEqual(result.limits[1], { emoji: '😀', texto: '\\ud800' });
  assert.deepEqual(result.queued, { fecha: '2026-12-04T00:00:00.000Z', cantidad: 2 });
  assert.deepEqual(result.own, { fecha: '2026-12-04T00:00:00.000Z', cantidad: 2 });
  assert.deepEqual(pageErrors, []);
}));
