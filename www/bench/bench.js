// The browser benchmarks. Each function runs in the page and returns plain numbers; the
// runner (bench/run.mjs) prints them with their conditions. Every run uses fresh databases.
let PosSync;
let Dexie;

export function setup(deps) {
  ({ PosSync, Dexie } = deps);
}

const unique = (label) => `bench-${label}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;

/** A sale as pos-sync queues it, and the same record for the raw stores. */
function sale(i) {
  return { coleccion: 'ventas', objeto_id: `v${i}`, operacion: 'crear', datos: { producto: `P${i % 2000}`, cantidad: 1, importe: '9.99', fecha: '2026-12-03' } };
}

function record(i) {
  return { id: crypto.randomUUID(), tienda: 1, ...sale(i), estado: 'pendiente', intentos: 0, reloj: `${Date.now()}-00000-1` };
}

/** A queued sale as pos-sync stores it in a page: every field of an operation. */
function fullRecord(i) {
  const s = sale(i);
  return { id: crypto.randomUUID(), tienda: 1, ...s, version_base: 0, reloj: `${Date.now()}-00000-1`, prioridad: 0,
    estado: 'pendiente', tiene_conflicto: false, intentos: 0, error: null, fecha_creacion: new Date().toISOString(),
    fecha_procesamiento: null };
}

const rate = (n, ms) => Math.round(n / (ms / 1000));

function rawOpen(name) {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => r.result.createObjectStore('cola', { keyPath: 'seq', autoIncrement: true });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** Adds `n` records made by `make` to the `cola` store, `batch` to a transaction, each batch
 * committed before the next; returns records per second. */
async function addBatched(db, n, batch, make) {
  const t = performance.now();
  for (let i = 0; i < n; i += batch) {
    const tx = db.transaction('cola', 'readwrite');
    const cola = tx.objectStore('cola');
    for (let k = i; k < i + batch; k += 1) cola.add(make(k));
    tx.commit();
    await done(tx);
  }
  return rate(n, performance.now() - t);
}

async function engineFor(label, options = {}) {
  return PosSync.open({ storeId: 1, dbName: unique(label), hubUrl: '', ...options });
}

/** Durable enqueue of `n` sales: each row resolves after its commit. Every contender first
 * runs a short warm-up on a throwaway database, so none is timed while the JIT warms up. */
export async function enqueue(n, batch) {
  if (n > 1000) await enqueue(Math.min(1000, n / 10), batch);
  const out = {};
  let t;

  let engine = await engineFor('posop');
  t = performance.now();
  for (let i = 0; i < n; i += 1) await engine.enqueue(sale(i));
  out.posSyncPerOp = rate(n, performance.now() - t);
  engine.close();

  engine = await engineFor('posbatch');
  t = performance.now();
  for (let i = 0; i < n; i += batch) await engine.enqueueMany(Array.from({ length: batch }, (_, k) => sale(i + k)));
  out.posSyncBatched = rate(n, performance.now() - t);
  engine.close();

  let db = await rawOpen(unique('rawop'));
  t = performance.now();
  for (let i = 0; i < n; i += 1) {
    const tx = db.transaction('cola', 'readwrite');
    tx.objectStore('cola').add(record(i));
    await done(tx);
  }
  out.rawPerTx = rate(n, performance.now() - t);
  db.close();

  db = await rawOpen(unique('rawone'));
  t = performance.now();
  const tx = db.transaction('cola', 'readwrite');
  for (let i = 0; i < n; i += 1) tx.objectStore('cola').add(record(i));
  await done(tx);
  out.rawOneTx = rate(n, performance.now() - t);
  db.close();

  // The same work by hand: pos-sync's own page of operations and its indexes, one page per
  // batch of `batch`, each in its own transaction. What pos-sync adds on top of it is its
  // own cost; the rest is the schema.
  db = await new Promise((resolve, reject) => {
    const r = indexedDB.open(unique('rawsame'), 1);
    r.onupgradeneeded = () => {
      const pages = r.result.createObjectStore('lotes', { keyPath: 'n', autoIncrement: true });
      pages.createIndex('id', 'ids', { unique: true, multiEntry: true });
      pages.createIndex('documento', 'claves', { multiEntry: true });
      pages.createIndex('retenida', 'retenidas', { multiEntry: true });
      pages.createIndex('marca', 'marca');
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  t = performance.now();
  for (let i = 0; i < n; i += batch) {
    const ops = Array.from({ length: batch }, (_, k) => fullRecord(i + k));
    const tx = db.transaction('lotes', 'readwrite');
    tx.objectStore('lotes').add({ ops, lugares: ops.map((_, k) => k), ids: ops.map((o) => o.id),
      claves: ops.map((o) => `${o.coleccion}\u001f${o.objeto_id}`), retenidas: [] });
    tx.commit();
    await done(tx);
  }
  out.rawSameBatched = rate(n, performance.now() - t);
  db.close();

  // The floor of batching itself: the raw row's small record, no index, `batch` per
  // transaction. Neither pos-sync nor Dexie can batch faster than this.
  db = await rawOpen(unique('rawbatched'));
  out.rawBatched = await addBatched(db, n, batch, record);
  db.close();

  let dexie = new Dexie(unique('dexieadd'));
  dexie.version(1).stores({ cola: '++seq' });
  await dexie.open();
  t = performance.now();
  for (let i = 0; i < n; i += 1) await dexie.cola.add(record(i));
  out.dexieAdd = rate(n, performance.now() - t);
  dexie.close();

  dexie = new Dexie(unique('dexiebulk'));
  dexie.version(1).stores({ cola: '++seq' });
  await dexie.open();
  t = performance.now();
  for (let i = 0; i < n; i += batch) await dexie.cola.bulkAdd(Array.from({ length: batch }, (_, k) => record(i + k)));
  out.dexieBulkAdd = rate(n, performance.now() - t);
  dexie.close();
  return out;
}

/** Opens an engine with `pending` queued operations and the hub's catalog cached, closes it,
 * and times `opens` reopens. Returns the median and the counts seen. */
export async function openTime(pending, opens) {
  const dbName = unique('open');
  const engine = await PosSync.open({ storeId: 2, dbName, hubUrl: '', cachedCollections: ['productos'] });
  await engine.syncNow();
  const cached = (await engine.list('productos')).length;
  for (let i = 0; i < pending; i += 1000) await engine.enqueueMany(Array.from({ length: 1000 }, (_, k) => sale(i + k)));
  engine.close();
  const times = [];
  let count = 0;
  for (let i = 0; i < opens; i += 1) {
    const t = performance.now();
    const e = await PosSync.open({ storeId: 2, dbName, hubUrl: '' });
    times.push(performance.now() - t);
    if (i === 0) count = await e.pendingCount();
    e.close();
  }
  times.sort((a, b) => a - b);
  return { medianMs: Math.round(times[Math.floor(times.length / 2)] * 10) / 10, pending: count, cached, dbName };
}

/** Reads `reads` random products by id from the engine's cache and from Dexie. */
export async function cacheRead(dbName, reads) {
  const engine = await PosSync.open({ storeId: 2, dbName, hubUrl: '' });
  const products = await engine.list('productos');
  const ids = Array.from({ length: reads }, (_, i) => products[(i * 7919) % products.length].objeto_id);
  let t = performance.now();
  for (const id of ids) {
    if (!(await engine.get('productos', id))) throw new Error(`missing ${id}`);
  }
  const posSync = rate(reads, performance.now() - t);
  engine.close();
  const dexie = new Dexie(unique('dexieread'));
  dexie.version(1).stores({ cache: 'objeto_id' });
  await dexie.cache.bulkPut(products);
  t = performance.now();
  for (const id of ids) {
    if (!(await dexie.cache.get(id))) throw new Error(`missing ${id}`);
  }
  const dexieGet = rate(reads, performance.now() - t);
  dexie.close();
  return { posSyncGet: posSync, dexieGet, products: products.length };
}

/** A till that synced (its catalog cached), then queued `n` sales offline: times the sync
 * that follows. Each `round` sells other documents. With `reopen`, the page was reloaded
 * before going online: the engine is opened again and reads its queue back from IndexedDB
 * instead of the operations it queued itself.
 *
 * Two times, from the same start: until the hub has applied them all (the answer to the last
 * push has arrived: every push is answered after its transaction commits, and a chained push
 * is applied only after the one before it), and until `syncNow` resolves (the answers are
 * also written to IndexedDB, and the pull and the conflicts list that end every sync are
 * done). The pushes' times come from the browser's Resource Timing. */
export async function drain(n, storeId, round = 0, reopen = false) {
  const dbName = unique('drain');
  let engine = await PosSync.open({ storeId, dbName, hubUrl: '', cachedCollections: ['productos'] });
  await engine.syncNow();
  for (let i = 0; i < n; i += 1000) await engine.enqueueMany(Array.from({ length: 1000 }, (_, k) => sale(storeId * 1e6 + round * 1e5 + i + k)));
  if (reopen) {
    engine.close();
    engine = await PosSync.open({ storeId, dbName, hubUrl: '', cachedCollections: ['productos'] });
  }
  performance.setResourceTimingBufferSize(10000);
  performance.clearResourceTimings();
  const t = performance.now();
  const summary = await engine.syncNow();
  const ms = performance.now() - t;
  engine.close();
  const pushUrl = new URL('/api/sincronizacion/cola/', location.href).href;
  const pushes = performance.getEntriesByType('resource').filter((e) => e.name === pushUrl && e.startTime >= t);
  if (pushes.length !== summary.batches) throw new Error(`${pushes.length} push timings for ${summary.batches} pushes`);
  const appliedMs = Math.max(...pushes.map((e) => e.responseEnd)) - t;
  return { opsPerSecond: rate(n, appliedMs), ms: Math.round(appliedMs), syncOpsPerSecond: rate(n, ms), syncMs: Math.round(ms),
    applied: summary.applied, pending: summary.pending, batches: summary.batches };
}

/** Workbox's background-sync queue in a service worker: `pushRequest` for `n` sales (one
 * request each), then `replayRequests` to the same hub. */
export async function workbox(n) {
  const registration = await navigator.serviceWorker.register('/bench/workbox-sw.js', { scope: '/bench/' });
  await navigator.serviceWorker.ready;
  const worker = registration.active;
  const ask = (message) => new Promise((resolve, reject) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (e) => (e.data.error ? reject(new Error(e.data.error)) : resolve(e.data));
    worker.postMessage(message, [channel.port2]);
  });
  const pushed = await ask({ cmd: 'push', n, hub: location.origin, name: unique('workbox') });
  if (pushed.size !== n) throw new Error(`Workbox queued ${pushed.size} of ${n}`);
  const replayed = await ask({ cmd: 'replay' });
  return { pushRequest: rate(n, pushed.ms), replay: rate(n, replayed.ms), left: replayed.size };
}
