// The Superstore replay on a subset, end to end: real tills in headless Chromium, offline,
// then online, against a real hub.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { runReplay } from '../../tools/replay.mjs';
import { loadSuperstore } from '../../tools/superstore.mjs';
import { startHub } from '../../tools/hub-process.mjs';
import { tempDir } from '../../tools/children.mjs';

const LIMIT = 600;

test('replaying the first order lines applies each exactly once, with exact totals and stock', async () => {
  const out = tempDir('pos-sync-replay-');
  try {
    const report = await runReplay({ limit: LIMIT, out: out.path, log: () => {} });
    assert.deepEqual(report.failures, []);
    assert.equal(report.verified, true);
    assert.equal(report.lines, LIMIT);
    assert.equal(report.stores, 4);
    assert.equal(report.operations, 2 * LIMIT);
    assert.equal(report.hubApplied, 2 * LIMIT);
    assert.equal(report.salesTotal, loadSuperstore({ limit: LIMIT }).totalSales);
    assert.equal(report.productsBelowZero, 0);
    assert.equal(report.inventoryConflicts, 0);
    assert.ok(report.opsPerSecond > 0);
    // The report is written beside the database, as JSON and as text.
    const base = report.dbPath.replace(/\.db$/, '');
    assert.deepEqual(JSON.parse(readFileSync(`${base}.json`, 'utf8')), report);
    const text = readFileSync(`${base}.txt`, 'utf8');
    assert.ok(text.includes('verified      yes: every line exactly once'), text);
    assert.ok(text.includes(`hub database  ${report.dbPath}`), text);

    // The database left behind holds the result on its own: a new hub on that file agrees.
    assert.ok(existsSync(report.dbPath), report.dbPath);
    const hub = await startHub({ dbPath: report.dbPath });
    try {
      const applied = await (await fetch(`${hub.url}/api/sincronizacion/cola/?estado=aplicada&limit=1`)).json();
      const catalog = loadSuperstore({ limit: LIMIT }).products.size;
      assert.equal(applied.count, 2 * LIMIT + catalog);
      const sales = await (await fetch(`${hub.url}/api/sincronizacion/cambios/?coleccion=ventas&limite=5000`)).json();
      assert.equal(sales.cambios.length, LIMIT);
    } finally {
      await hub.stop();
    }
  } finally {
    out.remove();
  }
});

test('with --short, every product sold by two or more regions ends at exactly -1 with one inventory conflict, and resolving them leaves none below zero', async () => {
  const out = tempDir('pos-sync-replay-');
  try {
    const data = loadSuperstore({ limit: LIMIT });
    const shared = [...data.products.values()].filter((p) => p.regions.size >= 2).length;
    assert.ok(shared > 0, 'the subset must have products sold in several regions');
    const report = await runReplay({ limit: LIMIT, short: true, resolve: true, out: out.path, log: () => {} });
    assert.deepEqual(report.failures, []);
    assert.equal(report.expectedBelowZero, shared);
    assert.equal(report.productsBelowZero, shared);
    assert.equal(report.inventoryConflicts, shared);
    assert.equal(report.resolvedConflicts, shared);
    assert.equal(report.belowZeroAfterResolving, 0);
  } finally {
    out.remove();
  }
});
