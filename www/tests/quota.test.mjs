// A full storage quota: queueing fails with PosSyncQuotaError, and nothing is half-applied.
// Chromium's quota for the page's origin is lowered through the DevTools protocol.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withHubAndBrowser } from '../../tools/fixture.mjs';

test('a full quota rejects with PosSyncQuotaError and keeps every committed operation', () => withHubAndBrowser('quota', async ({ hub, browser }) => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${hub.url}/replay.html`);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: hub.url, quotaSize: 2 * 1024 * 1024 });
  const result = await page.evaluate(async (dbName) => {
    const { default: init, PosSync } = await import('/pkg/pos_sync.js');
    await init();
    const engine = await PosSync.open({ storeId: 7, dbName, hubUrl: '' });
    // About 20 KB of data per operation that does not compress: the 2 MB quota runs out
    // within a few hundred operations.
    const filler = Array.from(crypto.getRandomValues(new Uint8Array(15 * 1024)), (b) => b.toString(36)).join('');
    const sale = (i) => ({ coleccion: 'ventas', objeto_id: `q${i}`, operacion: 'crear', datos: { nota: filler, n: i } });
    let committed = 0;
    let error = null;
    for (let i = 0; i < 1000 && !error; i += 10) {
      try {
        const ops = await engine.enqueueMany(Array.from({ length: 10 }, (_, k) => sale(i + k)));
        committed += ops.length;
      } catch (e) {
        error = { name: e.name, message: e.message };
      }
    }
    // One operation at a time then, until one is refused too (a batch can be refused while
    // a smaller write still fits).
    let single = null;
    let singles = 0;
    for (let i = 0; i < 500 && !single; i += 1) {
      try {
        await engine.enqueue(sale(100000 + i));
        singles += 1;
      } catch (e) {
        single = e.name;
      }
    }
    const pending = await engine.pendingCount();
    const ids = (await engine.operations()).map((o) => o.objeto_id);
    window.quotaEngine = engine;
    return { committed, error, single, singles, pending, ids };
  }, `quota-${Date.now()}`);
  assert.ok(result.error, 'the quota never ran out');
  assert.equal(result.error.name, 'PosSyncQuotaError', JSON.stringify(result.error));
  assert.match(result.error.message, /quota/i);
  assert.equal(result.single, 'PosSyncQuotaError');
  assert.ok(result.committed < 1000, 'the quota must run out before the loop ends');
  assert.ok(result.committed > 0 && result.committed % 10 === 0, `committed ${result.committed}`);
  // Every call that resolved is there, in order; the refused ones left nothing behind.
  assert.equal(result.pending, result.committed + result.singles);
  assert.deepEqual(result.ids, [
    ...Array.from({ length: result.committed }, (_, i) => `q${i}`),
    ...Array.from({ length: result.singles }, (_, i) => `q${100000 + i}`),
  ]);

  // With room again, the same engine queues, and the queue drains to the hub.
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: hub.url });
  const after = await page.evaluate(async () => {
    const engine = window.quotaEngine;
    await engine.enqueue({ coleccion: 'ventas', objeto_id: 'after', operacion: 'crear', datos: { n: 1 } });
    const summary = await engine.syncNow();
    engine.close();
    return { applied: summary.applied, pending: summary.pending };
  });
  assert.deepEqual(after, { applied: result.committed + result.singles + 1, pending: 0 });
}));
