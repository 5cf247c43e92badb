// The benchmark suite: one command, one table, one JSON file.
//
//   node bench/run.mjs [--quick] [--out DIR]
//
// It needs the release builds (scripts/build.sh, and `cargo build --release --example
// hub_load`; `bash bench/run.sh` does both). With --quick, a check that the suite runs
// rather than figures, the debug hub and load generator do where the release ones are not
// built (the tests run it so). The JSON goes to DIR, bench-out/ by default. Browser figures
// come from headless Chromium, one page on the hub's own origin, fresh databases for every
// row; hub figures from the load generator in examples/hub_load.rs over real HTTP on
// loopback. The browser rows run in a Chromium with no automation client attached
// (tools/browser.mjs, detachedPage), as a till runs, each group of rows in a fresh one; one
// drain row is repeated under playwright for reference. Every figure states its conditions.
// Comparisons run side by side in the same run and are given as ratios; targets are from the
// benchmarks issue, and a missed one says so.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { startHub } from '../tools/hub-process.mjs';
import { launchBrowser, detachedPage, chromiumVersion, CHROMIUM } from '../tools/browser.mjs';
import { tempDir } from '../tools/children.mjs';

// The options; the output folder is made first, so a bad one fails before the run, not after.
let quick;
let outDir;
try {
  ({ values: { quick, out: outDir } } = parseArgs({ options: { quick: { type: 'boolean', default: false }, out: { type: 'string', default: 'bench-out' } } }));
  if (!outDir) throw new Error('--out needs a folder');
  mkdirSync(outDir, { recursive: true });
} catch (e) {
  console.error(`bench: ${e.message}\nusage: node bench/run.mjs [--quick] [--out DIR]`);
  process.exit(2);
}
// The builds measured: the release ones; a --quick run takes the debug ones where the release
// ones are missing.
const build = (release, debug) => (quick && !existsSync(release) && existsSync(debug) ? debug : release);
const hubBin = build('target/release/pos-sync-hub', 'target/debug/pos-sync-hub');
const loadBin = build('target/release/examples/hub_load', 'target/debug/examples/hub_load');
for (const [file, how] of [['pkg/pos_sync_bg.wasm', 'bash scripts/build.sh'], [hubBin, 'bash scripts/build.sh'],
  [loadBin, 'cargo build --release --example hub_load']]) {
  if (!existsSync(file)) {
    console.error(`bench: ${file} is missing; run \`bash bench/run.sh\` (it builds everything), or ${how}`);
    process.exit(1);
  }
}
// startHub and the load generator both start this hub.
process.env.POS_SYNC_HUB_BIN = hubBin;
const N = quick ? 2000 : 10000;
const BATCH = 100;
const ROUNDS = quick ? 1 : 3;
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown'}`;
const durability = 'IndexedDB relaxed (Chromium default)';
const rows = [];

function row(group, name, value, unit, conditions, { peer, peerValue, target, pass } = {}) {
  rows.push({ group, name, value, unit, conditions, peer, peerValue, ratio: peerValue ? Math.round((value / peerValue) * 100) / 100 : null, target, pass });
}

async function post(hub, path, body) {
  const r = await fetch(`${hub}/api/sincronizacion${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

// ---- Size ----
// `gzip -9`, as the CI size check measures it.
const gz = (path) => execFileSync('gzip', ['-9', '-c', path]).length;
const wasmGz = gz('pkg/pos_sync_bg.wasm');
// The JS the package loads: wasm-bindgen's glue and the modules it imports (snippets/).
const glueFiles = ['pkg/pos_sync.js', ...readdirSync('pkg/snippets', { recursive: true })
  .filter((f) => f.endsWith('.js')).map((f) => join('pkg/snippets', f))];
const glueGz = glueFiles.reduce((sum, f) => sum + gz(f), 0);
const dexieGz = gz('node_modules/dexie/dist/dexie.min.js');
const BUDGET = 120 * 1024;
row('size', 'release wasm, gzipped', Math.round(wasmGz / 102.4) / 10, 'KB', 'opt-level z, LTO, std rebuilt for size (build-std, optimize_for_size, panic=immediate-abort), wasm-opt -Oz (npm binaryen), gzip -9',
  { peer: 'Dexie min.js gz, KB', peerValue: Math.round(dexieGz / 102.4) / 10, target: '≤ 120 KB', pass: wasmGz <= BUDGET });
row('size', 'JS glue, gzipped', Math.round(glueGz / 102.4) / 10, 'KB', `wasm-bindgen --target web: pos_sync.js and the ${glueFiles.length - 1} module(s) it imports, each gzip -9, summed`);

// ---- Browser ----
const dir = tempDir('pos-sync-bench-');
copyFileSync('node_modules/dexie/dist/dexie.mjs', 'www/bench/dexie.mjs');
execFileSync('node_modules/.bin/esbuild', ['bench/workbox-sw.js', '--bundle', '--format=iife', '--minify',
  '--define:process.env.NODE_ENV="production"', '--outfile=www/bench/workbox-sw.js', '--log-level=warning']);
const hub = await startHub({ dbPath: join(dir.path, 'bench.db') });
let browser;
let detached;
try {
  // 2,000 products for the cache rows and for the sales to refer to.
  for (let i = 0; i < 2000; i += 1000) {
    await post(hub.url, '/cola/', { tienda: 0, operaciones: Array.from({ length: 1000 }, (_, k) => ({
      id: randomUUID(), tienda: 0, coleccion: 'productos', objeto_id: `P${i + k}`, operacion: 'crear',
      datos: { nombre: `Producto ${i + k}`, precio: '9.99', stock: 1e9 }, reloj: `${Date.now()}-00000-0` })) });
  }
  // Store 1 drains with the default batch size; store 4 with batches of 100, for comparison.
  const hubDefaults = await (await fetch(`${hub.url}/api/sincronizacion/configuracion/1/`)).json();
  for (const tienda of [1, 2, 3, 6, 7]) await post(hub.url, '/configuracion/', { tienda, colecciones_cache: ['productos'] });
  await post(hub.url, '/configuracion/', { tienda: 4, tamano_lote: BATCH, colecciones_cache: ['productos'] });
  await post(hub.url, '/configuracion/', { tienda: 5, tamano_lote: 1000, colecciones_cache: ['productos'] });
  // Every browser row but the reference one runs in a page of a Chromium with no automation
  // client attached, and each group of rows (the enqueue rounds, Workbox, each drain row,
  // open and read) in a Chromium of its own, on a fresh profile. Why: the enqueue rounds
  // leave 24 databases of 10,000 records and 24 of 1,000 behind (Dexie's, raw IndexedDB's,
  // pos-sync's), and the browser process's IndexedDB backend works on them for a while
  // afterwards. In one browser, the default-batch drain right after the enqueue rounds ran at
  // 21–23k ops/s with the browser process at 2.9 s of CPU for three drains; in a fresh one,
  // at 28–31k with 1.8 s. A till's browser holds its own database, not a benchmark's peers'.
  const fresh = async () => {
    await detached?.close();
    detached = await detachedPage(`${hub.url}/bench/`);
  };
  const bench = (fn, ...args) => detached.call(fn, args);
  const version = chromiumVersion();
  await fresh();

  // Browser timings vary from run to run on a shared machine: every contender runs ROUNDS
  // times, interleaved (all of one round before the next), on fresh databases; each figure is
  // its median.
  const rounds = [];
  for (let i = 0; i < ROUNDS; i += 1) rounds.push(await bench('enqueue', N, BATCH));
  const e = Object.fromEntries(Object.keys(rounds[0]).map((k) => [k, median(rounds.map((x) => x[k]))]));
  const cond = `${N} sales, 1 store, ${durability}, Chromium ${version}, median of ${ROUNDS} interleaved rounds`;
  row('enqueue', 'pos-sync enqueue, one per commit (batch 1)', e.posSyncPerOp, 'ops/s', cond, { peer: 'raw IndexedDB, one put per transaction', peerValue: e.rawPerTx, target: '≥ 0.9× raw', pass: e.posSyncPerOp >= 0.9 * e.rawPerTx });
  row('enqueue', 'pos-sync enqueueMany, batches of 100', e.posSyncBatched, 'ops/s', cond, { peer: 'raw IndexedDB, all in one transaction', peerValue: e.rawOneTx, target: '≥ 0.8× raw', pass: e.posSyncBatched >= 0.8 * e.rawOneTx });
  row('enqueue', 'pos-sync enqueueMany vs the same pages and indexes by hand (100)', e.posSyncBatched, 'ops/s', `${cond}; raw IndexedDB writing pos-sync's page of ${BATCH} full operations with its indexes (unique multi-entry id, multi-entry documento and retenida, marca), one transaction per batch`,
    { peer: 'raw IndexedDB, same page and indexes', peerValue: e.rawSameBatched });
  row('enqueue', 'raw IndexedDB, small record, no index, batches of 100 (for reference)', e.rawBatched, 'ops/s', `${cond}; the raw row's 9-field record, no index, ${BATCH} per transaction: what batching alone costs against one transaction`,
    { peer: 'raw IndexedDB, all in one transaction', peerValue: e.rawOneTx });
  row('enqueue', 'pos-sync enqueue vs Dexie add', e.posSyncPerOp, 'ops/s', cond, { peer: 'Dexie add', peerValue: e.dexieAdd, target: '> Dexie', pass: e.posSyncPerOp > e.dexieAdd });
  row('enqueue', 'pos-sync enqueueMany vs Dexie bulkAdd (100)', e.posSyncBatched, 'ops/s', cond, { peer: 'Dexie bulkAdd', peerValue: e.dexieBulkAdd, target: '> Dexie', pass: e.posSyncBatched > e.dexieBulkAdd });
  // Workbox in a browser of its own too, so its replay (the drain's peer) runs as clean as the
  // drain rows.
  await fresh();
  const w = await bench('workbox', N);
  row('enqueue', 'pos-sync enqueue vs Workbox pushRequest', e.posSyncPerOp, 'ops/s', `${cond}; Workbox 7 background-sync Queue in a service worker, one request per sale, in a fresh browser of its own`,
    { peer: 'Workbox pushRequest', peerValue: w.pushRequest });
  const workboxOnHub = await (await fetch(`${hub.url}/api/sincronizacion/cola/?tienda=3&limit=1`)).json();
  if (w.left !== 0 || workboxOnHub.count !== N) throw new Error(`Workbox replayed ${workboxOnHub.count} of ${N} (${w.left} left)`);

  const drainRows = [
    [1, hubDefaults.tamano_lote, 'default batch size', false],
    [6, hubDefaults.tamano_lote, 'default batch size, engine reopened: queue read from IndexedDB', true],
    [4, BATCH, `batches of ${BATCH}`, false],
    [5, 1000, 'batches of 1000, the protocol maximum', false],
  ];
  // ROUNDS drains of store `store`, each checked whole; their median and spread. A drain is
  // timed until the hub has applied every sale (the answer to the last push arrived), as the
  // issue defines it; the time until `syncNow` resolved (answers written to IndexedDB, then
  // the pull and the conflicts list) is given beside it.
  const drainRounds = async (drain, store, reopen) => {
    const drains = [];
    for (let i = 0; i < ROUNDS; i += 1) {
      const d = await drain(store, i, reopen);
      if (d.applied !== N || d.pending !== 0) throw new Error(`the drain applied ${d.applied} of ${N}, ${d.pending} left`);
      drains.push(d);
    }
    const spread = (key) => `${Math.min(...drains.map((x) => x[key]))}–${Math.max(...drains.map((x) => x[key]))}`;
    return { opsPerSecond: median(drains.map((x) => x.opsPerSecond)), syncOpsPerSecond: median(drains.map((x) => x.syncOpsPerSecond)),
      batches: drains[0].batches, spread: spread('opsPerSecond'), syncSpread: spread('syncOpsPerSecond') };
  };
  const drainConditions = (d, batch) => `median of ${ROUNDS} (${d.spread}), timed until the hub answered the last push; until syncNow resolved: ${d.syncOpsPerSecond.toLocaleString('en-US')} ops/s (${d.syncSpread}); ${N} queued sales, batches of ${batch} (${d.batches} pushes), 1 store (one page, catalog already cached), ${durability}, SQLite hub (WAL, synchronous=FULL) on loopback, same machine, a fresh browser for the row`;
  let firstDrain;
  for (const [store, batch, label, reopen] of drainRows) {
    await fresh();
    const d = await drainRounds((s, i, o) => bench('drain', N, s, i, o), store, reopen);
    firstDrain ??= d;
    row('drain', `online → all applied on the hub (${label})`, d.opsPerSecond, 'ops/s', drainConditions(d, batch),
      { peer: 'Workbox replayRequests of the same sales to the same hub', peerValue: w.replay, target: '≥ 20,000 ops/s and ≥ 20× Workbox', pass: d.opsPerSecond >= 20000 && d.opsPerSecond >= 20 * w.replay });
  }

  await fresh();
  const o = await bench('openTime', N, 15);
  row('open', 'PosSync.open, median of 15', o.medianMs, 'ms', `1 store, ${o.pending} pending operations, ${o.cached} cached products, ${durability}`, { target: '< 50 ms', pass: o.medianMs < 50 });
  const r = await bench('cacheRead', o.dbName, 2000);
  row('read', 'engine.get by id from the cache', r.posSyncGet, 'reads/s', `1 store, ${durability}; 2,000 reads over ${r.products} cached products, ${N} pending operations on the engine`, { peer: 'Dexie get', peerValue: r.dexieGet });

  // For reference: the first drain row again, in a page driven by playwright (a client
  // attached over the DevTools protocol, as every browser row was measured before), the
  // detached browser closed first. The ratio is what the attached client costs the drain.
  await detached.close();
  detached = null;
  browser = await launchBrowser();
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${hub.url}/bench/`);
  await page.waitForFunction(() => window.benchReady === true);
  const attached = await drainRounds((s, i, o) => page.evaluate(([n, st, ro, re]) => window.bench.drain(n, st, ro, re), [N, s, i, o]), 7, false);
  row('drain', 'online → all applied on the hub (default batch size), page driven by playwright (for reference)', attached.opsPerSecond, 'ops/s', `${drainConditions(attached, hubDefaults.tamano_lote)}; playwright-core attached over the DevTools protocol`,
    { peer: 'the same drain with no client attached (first drain row)', peerValue: firstDrain.opsPerSecond });
} finally {
  await detached?.close();
  await browser?.close();
  await hub.stop();
  dir.remove();
  rmSync('www/bench/dexie.mjs', { force: true });
  rmSync('www/bench/workbox-sw.js', { force: true });
}

// ---- Hub ----
// The hub's figures vary from run to run on a shared 2-core machine (fsync times): the median of 3.
const loads = [1, 2, 3].map(() => JSON.parse(execFileSync(loadBin, ['--stores', '50', '--batch', String(BATCH), '--rounds', quick ? '4' : '20'], { encoding: 'utf8' }).trim().split('\n').pop()));
loads.sort((a, b) => a.hub_ops_per_s - b.hub_ops_per_s);
const load = loads[1];
const raws = loads.map((l) => l.raw_sqlite_ops_per_s).sort((a, b) => a - b);
row('hub', 'push throughput, 50 concurrent stores', load.hub_ops_per_s, 'ops/s', `median of 3 runs (${loads[0].hub_ops_per_s}–${loads[2].hub_ops_per_s}); ${load.operations} operations in batches of ${load.batch}, real HTTP on loopback, ${load.durability}; p50 ${load.p50_ms.toFixed(1)} ms, p99 ${load.p99_ms.toFixed(1)} ms`,
  { peer: 'raw SQLite batched inserts of the same rows (median)', peerValue: raws[1], target: '≥ 0.5× raw SQLite', pass: load.hub_ops_per_s >= 0.5 * raws[1] });
row('hub', 'hub resident memory after the load', Math.round(load.hub_rss_kib / 1024), 'MiB', 'VmRSS of the hub process', { target: 'reported only' });

// ---- Output ----
const fmt = (v) => (v === null || v === undefined ? 'not measured' : typeof v === 'number' ? v.toLocaleString('en-US') : String(v));
// A --quick run's timings are not held against their targets, in the table or the JSON; its
// size is (size does not vary).
if (quick) {
  for (const r of rows) {
    if (r.group !== 'size' && typeof r.pass === 'boolean') Object.assign(r, { pass: null, judged: false });
  }
}
const verdict = (r) => (r.judged === false ? 'not judged (--quick)'
  : r.pass === true ? 'met' : r.pass === false ? 'MISSED' : r.target ? (r.value === null ? 'not measured' : 'reported') : '');
const lines = [
  `pos-sync benchmarks, ${new Date().toISOString().slice(0, 10)}, ${machine}, Chromium at ${CHROMIUM}, hub ${hubBin}${quick ? ' (--quick)' : ''}`,
  '',
  '| what | pos-sync | peer | ratio | target | verdict | conditions |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.name} | ${fmt(r.value)} ${r.unit} | ${r.peer ? `${r.peer}: ${fmt(r.peerValue)}` : ''} | ${r.ratio ?? ''} | ${r.target ?? ''} | ${verdict(r)} | ${r.conditions} |`),
];
console.log(lines.join('\n'));
const file = join(outDir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), machine, quick, builds: { hub: hubBin, load: loadBin }, rows }, null, 2) + '\n');
console.log(`\nJSON: ${file}`);
