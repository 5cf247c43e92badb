// The benchmark suite itself, run short (--quick): every row is measured and written with its
// conditions, the comparisons carry their ratios, and the size row is the package's own size.
// The figures of a short run on a debug hub are not held against the targets; that the suite
// runs at all is what is checked, so a row that breaks is found here and not on the next
// full run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '../../tools/children.mjs';

const run = promisify(execFile);

test('bench/run.mjs --quick measures every row and writes the table and its JSON', async () => {
  const out = tempDir('pos-sync-bench-out-');
  try {
    const { stdout } = await run('node', ['bench/run.mjs', '--quick', '--out', out.path], { timeout: 600_000, maxBuffer: 16 << 20 });
    const files = readdirSync(out.path);
    assert.equal(files.length, 1, files.join(', '));
    assert.match(files[0], /^bench-.*\.json$/);
    assert.ok(stdout.includes(`JSON: ${join(out.path, files[0])}`), stdout);
    const result = JSON.parse(readFileSync(join(out.path, files[0]), 'utf8'));
    assert.equal(result.quick, true);
    assert.match(result.machine, /^\d+ cores, /);
    const { rows } = result;

    // Every group, in the table's order, with the rows the issue names.
    assert.deepEqual([...new Set(rows.map((r) => r.group))], ['size', 'enqueue', 'drain', 'open', 'read', 'hub']);
    // `text`, or a RegExp, picks out exactly one row by its name.
    const named = (text) => {
      const found = rows.filter((r) => (text instanceof RegExp ? text.test(r.name) : r.name.includes(text)));
      assert.equal(found.length, 1, `one row named ${text}: ${found.map((r) => r.name).join(' | ')}`);
      return found[0];
    };
    for (const [text, peer] of [['enqueue, one per commit', 'raw IndexedDB, one put per transaction'], ['enqueueMany, batches of 100', 'raw IndexedDB, all in one transaction'],
      ['vs Dexie add', 'Dexie add'], ['vs Dexie bulkAdd', 'Dexie bulkAdd'], ['vs Workbox pushRequest', 'Workbox pushRequest'],
      [/\(default batch size\)$/, 'Workbox replayRequests'], ['engine reopened', 'Workbox replayRequests'], ['(batches of 100)', 'Workbox replayRequests'],
      ['batches of 1000', 'Workbox replayRequests'], ['page driven by playwright', 'the same drain with no client attached'],
      ['engine.get by id', 'Dexie get'], ['push throughput, 50 concurrent stores', 'raw SQLite']]) {
      assert.ok(named(text).peer.startsWith(peer), `${text}: ${named(text).peer}`);
    }
    named('PosSync.open');
    named('hub resident memory');

    // Every figure measured, with its conditions; every comparison with its ratio.
    for (const r of rows) {
      assert.ok(Number.isFinite(r.value) && r.value > 0, `${r.name}: ${r.value}`);
      assert.ok(r.conditions.length > 20, `${r.name}: ${r.conditions}`);
      if (r.peer) {
        assert.ok(Number.isFinite(r.peerValue) && r.peerValue > 0, `${r.name}: ${r.peerValue}`);
        assert.equal(r.ratio, Math.round((r.value / r.peerValue) * 100) / 100, r.name);
      }
    }
    // Sizes are exact: the row is the gzipped package (gzip -9, as the CI size check takes it),
    // and its verdict is the 120 KB target's.
    const wasm = execFileSync('gzip', ['-9', '-c', 'pkg/pos_sync_bg.wasm']).length;
    const size = named('release wasm, gzipped');
    assert.equal(size.value, Math.round(wasm / 102.4) / 10);
    assert.equal(size.pass, wasm <= 120 * 1024);
    // The drain rows moved every one of the short run's 2,000 sales (run.mjs checks each drain
    // against the hub and fails otherwise) in pushes of the row's batch size.
    assert.match(named(/\(default batch size\)$/).conditions, /2000 queued sales, batches of 500 \(4 pushes\)/);
    assert.match(named('(batches of 100)').conditions, /2000 queued sales, batches of 100 \(20 pushes\)/);
    assert.match(named('push throughput').conditions, /20000 operations in batches of 100/);

    // A short run's timings are not judged, in the JSON as in the table; reported rows stay so.
    for (const r of rows.filter((x) => x.group !== 'size' && x.target)) {
      if (r.target === 'reported only') assert.equal(r.pass, undefined, r.name);
      else assert.ok(r.pass === null && r.judged === false, `${r.name}: ${r.pass}`);
    }
    // The JS glue row counts every module the package loads.
    assert.match(named('JS glue').conditions, /pos_sync\.js and the 1 module\(s\) it imports/);

    // The printed table: a header, then one line per row, timings not judged in a short run.
    assert.match(stdout, /pos-sync benchmarks, \d{4}-\d{2}-\d{2}, \d+ cores, .*\(--quick\)/);
    const lines = stdout.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| what') && !l.startsWith('| ---'));
    assert.equal(lines.length, rows.length);
    assert.ok(lines.find((l) => l.startsWith('| online → all applied on the hub (default batch size) |')).includes('| not judged (--quick) |'));
    assert.ok(lines.find((l) => l.startsWith('| hub resident memory')).includes('| reported |'));
  } finally {
    out.remove();
  }
});
