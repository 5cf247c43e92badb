// Replays the Superstore sample through real browser tills.
//
//   node tools/replay.mjs [--limit N] [--short] [--resolve] [--out DIR] [--hub URL]
//
// 1. Starts a hub on a fresh SQLite file (unless --hub names a running one) and seeds its
//    catalog: every product, with opening stock equal to the units the replayed lines sell of
//    it (with --short, products sold by two or more regions start one unit short).
// 2. Opens one store per region, each its own page (and browser context) in headless
//    Chromium running the wasm engine, takes it offline, and queues the region's order
//    lines: one atomic enqueueMany per order (the sale documents and the stock deltas).
// 3. Starts continuous sync and brings every page online at once; the tills drain on their own.
// 4. Verifies on the hub: every line present exactly once, the sales total exact as a decimal,
//    every product's stock = opening - units sold, and exactly one open inventory conflict
//    per product below zero. With --resolve, resolves them all through the API (a counted
//    stock of 0) and checks no product is left below zero. Prints a report, writes it as JSON and text,
//    and leaves the hub's database file behind.
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { loadSuperstore } from './superstore.mjs';
import { startHub } from './hub-process.mjs';
import { launchBrowser } from './browser.mjs';
import { parseMoney, formatMoney } from '../www/decimal.js';

const ORDERS_PER_CALL = 250;
const BATCH = 500;

async function api(hub, path, body) {
  const response = await fetch(`${hub}${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** Pushes the catalog as the central office (store 0). */
async function seedCatalog(hub, products, short) {
  const ops = [...products.values()].map((p, i) => ({
    id: randomUUID(), tienda: 0, coleccion: 'productos', objeto_id: p.id, operacion: 'crear',
    datos: { nombre: p.nombre, categoria: p.categoria, precio: p.precio, stock: p.sold - (short && p.regions.size >= 2 ? 1 : 0) },
    version_base: 0, reloj: `${Date.now()}-${String(i % 100000).padStart(5, '0')}-0`, prioridad: 0,
  }));
  for (let i = 0; i < ops.length; i += 1000) {
    const answer = await api(hub, '/api/sincronizacion/cola/', { tienda: 0, operaciones: ops.slice(i, i + 1000) });
    const refused = answer.resultados.filter((r) => r.estado !== 'aplicada');
    if (refused.length) throw new Error(`seeding the catalog: ${JSON.stringify(refused.slice(0, 3))}`);
  }
}

/** Every change of one collection, page by page. */
async function pullAll(hub, coleccion) {
  const docs = new Map();
  let cursor = 0;
  for (;;) {
    const page = await api(hub, `/api/sincronizacion/cambios/?desde=${cursor}&limite=5000&coleccion=${coleccion}`);
    for (const c of page.cambios) {
      if (docs.has(c.objeto_id)) throw new Error(`${coleccion}/${c.objeto_id} came twice in one pull`);
      docs.set(c.objeto_id, c);
    }
    cursor = page.cursor;
    if (!page.hay_mas) return docs;
  }
}

/** Every row of a DRF list, page by page. */
async function listAll(hub, path) {
  const rows = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api(hub, `${path}${path.includes('?') ? '&' : '?'}limit=1000&offset=${offset}`);
    rows.push(...page.results);
    if (!page.next) return rows;
  }
}

function groupOrders(lines) {
  const orders = new Map();
  for (const l of lines) {
    if (!orders.has(l.order)) orders.set(l.order, []);
    orders.get(l.order).push({ row: l.row, order: l.order, product: l.product, quantity: l.quantity, sales: l.sales, customer: l.customer, date: l.date });
  }
  return [...orders.values()];
}

async function openTill(browser, hub, storeId, runId) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${hub}/replay.html`);
  await page.waitForFunction(() => window.posSyncReady === true, null, { timeout: 30000 });
  await page.evaluate(async ({ storeId, dbName, batchSize }) => {
    window.engine = await window.PosSync.open({ storeId, dbName, hubUrl: '', batchSize, syncIntervalMs: 60000,
      cachedCollections: ['productos'], priorities: { ventas: 10, productos: 5 } });
    await window.engine.syncNow(); // the catalog into the offline cache
  }, { storeId, dbName: `replay-${runId}-${storeId}`, batchSize: BATCH });
  return { context, page, errors };
}

async function queueOrders(page, orders) {
  for (let i = 0; i < orders.length; i += ORDERS_PER_CALL) {
    await page.evaluate(async (chunk) => {
      for (const lines of chunk) {
        await window.engine.enqueueMany(lines.flatMap((l) => [
          { coleccion: 'ventas', objeto_id: l.row, operacion: 'crear',
            datos: { pedido: l.order, producto: l.product, cantidad: l.quantity, importe: l.sales, cliente: l.customer, fecha: l.date } },
          { coleccion: 'productos', objeto_id: l.product, operacion: 'incrementar', datos: { stock: -l.quantity } },
        ]));
      }
    }, orders.slice(i, i + ORDERS_PER_CALL));
  }
}

async function waitDrained(tills, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = await Promise.all(tills.map((t) => t.page.evaluate(() => window.engine.pendingCount())));
    if (pending.every((n) => n === 0)) return;
    if (Date.now() > deadline) throw new Error(`tills still pending after ${timeoutMs} ms: ${pending.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the replay and returns its report (see the file's header). */
export async function runReplay({ limit, short = false, resolve: resolveConflicts = false, out = 'replay-out', hubUrl, log = console.log } = {}) {
  const started = Date.now();
  const data = loadSuperstore({ limit });
  const runId = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${process.pid}`;
  mkdirSync(out, { recursive: true });
  const dbPath = resolve(out, `replay-${runId}.db`);
  const hub = hubUrl ? { url: hubUrl, dbPath: '(external hub)', stop: async () => {} } : await startHub({ dbPath });
  const browser = await launchBrowser();
  const failures = [];
  let report;
  try {
    await seedCatalog(hub.url, data.products, short);
    for (let storeId = 1; storeId <= data.regions.length; storeId += 1) {
      await api(hub.url, '/api/sincronizacion/configuracion/', { tienda: storeId, tamano_lote: BATCH, intervalo_ms: 60000, colecciones_cache: ['productos'] });
    }
    const stores = data.regions.map((region, i) => ({ region, storeId: i + 1 }));
    const tills = await Promise.all(stores.map((s) => openTill(browser, hub.url, s.storeId, runId)));

    // Offline: queue every region's orders in its own till.
    await Promise.all(tills.map((t) => t.context.setOffline(true)));
    const enqueueStart = Date.now();
    await Promise.all(stores.map((s, i) => queueOrders(tills[i].page, groupOrders(data.lines.filter((l) => l.region === s.region)))));
    const enqueueMs = Date.now() - enqueueStart;
    const queued = await Promise.all(tills.map((t) => t.page.evaluate(() => window.engine.pendingCount())));
    const operations = queued.reduce((a, b) => a + b, 0);
    if (operations !== data.lines.length * 2) failures.push(`queued ${operations} operations, expected ${data.lines.length * 2}`);

    // Online: the tills sync on their own.
    await Promise.all(tills.map((t) => t.page.evaluate(() => window.engine.start())));
    const drainStart = Date.now();
    await Promise.all(tills.map((t) => t.context.setOffline(false)));
    await waitDrained(tills, 10 * 60 * 1000);
    const drainMs = Date.now() - drainStart;
    for (const t of tills) {
      await t.page.evaluate(() => window.engine.stop());
      failures.push(...t.errors.map((e) => `page error: ${e}`));
    }

    // Verify on the hub.
    const sales = await pullAll(hub.url, 'ventas');
    const productsOnHub = await pullAll(hub.url, 'productos');
    let missing = 0;
    let total = 0n;
    for (const l of data.lines) {
      const sale = sales.get(l.row);
      if (!sale) { missing += 1; continue; }
      if (sale.datos.importe !== l.sales || sale.datos.cantidad !== l.quantity || sale.version !== 1) {
        failures.push(`ventas/${l.row} differs from the file: ${JSON.stringify(sale.datos)} v${sale.version}`);
      }
      total += parseMoney(sale.datos.importe);
    }
    if (missing) failures.push(`${missing} order lines are missing on the hub`);
    if (sales.size !== data.lines.length) failures.push(`the hub has ${sales.size} sales, the file ${data.lines.length}`);
    if (formatMoney(total) !== data.totalSales) failures.push(`sales total ${formatMoney(total)} != file ${data.totalSales}`);
    let belowZero = 0;
    let expectedBelowZero = 0;
    for (const p of data.products.values()) {
      const opening = p.sold - (short && p.regions.size >= 2 ? 1 : 0);
      const expected = opening - p.sold;
      if (expected < 0) expectedBelowZero += 1;
      const doc = productsOnHub.get(p.id);
      const stock = doc?.datos.stock;
      if (stock !== expected) failures.push(`productos/${p.id}: stock ${stock}, expected ${expected}`);
      if (stock < 0) belowZero += 1;
    }
    let applied = 0;
    let received = 0;
    for (const s of stores) {
      received += (await api(hub.url, `/api/sincronizacion/cola/?tienda=${s.storeId}&limit=1`)).count;
      applied += (await api(hub.url, `/api/sincronizacion/cola/?tienda=${s.storeId}&estado=aplicada&limit=1`)).count;
    }
    if (received !== operations || applied !== operations) failures.push(`the hub received ${received} and applied ${applied} of ${operations} operations`);
    const logs = await listAll(hub.url, '/api/sincronizacion/registros/');
    const duplicates = logs.reduce((s, r) => s + r.duplicadas, 0);

    // Conflicts: every product below zero has exactly one open inventory conflict.
    const conflicts = await listAll(hub.url, '/api/sincronizacion/conflictos/?estado=abierto');
    const inventory = conflicts.filter((c) => c.tipo === 'inventario');
    const perProduct = new Map();
    for (const c of inventory) perProduct.set(c.objeto_id, (perProduct.get(c.objeto_id) || 0) + 1);
    for (const p of data.products.values()) {
      const stock = productsOnHub.get(p.id)?.datos.stock;
      const open = perProduct.get(p.id) || 0;
      if (stock < 0 && open !== 1) failures.push(`productos/${p.id} is at ${stock} with ${open} open inventory conflicts`);
      if (stock >= 0 && open !== 0) failures.push(`productos/${p.id} is at ${stock} but has ${open} open inventory conflicts`);
    }
    const otherConflicts = conflicts.length - inventory.length;
    if (otherConflicts) failures.push(`${otherConflicts} conflicts that are not inventory conflicts`);

    // With --resolve, an admin counts the stock of each (0 on the shelf) through the API.
    let resolved = 0;
    let belowZeroAfter = null;
    if (resolveConflicts) {
      for (const c of inventory) {
        await api(hub.url, '/api/sincronizacion/conflictos/', { conflicto: c.id, resolucion: 'personalizado', datos: { stock: 0 }, usuario: 'replay' });
        resolved += 1;
      }
      const after = await pullAll(hub.url, 'productos');
      belowZeroAfter = [...after.values()].filter((d) => d.datos.stock < 0).length;
      const stillOpen = (await api(hub.url, '/api/sincronizacion/conflictos/?estado=abierto&limit=1')).count;
      if (belowZeroAfter !== 0 || stillOpen !== 0) failures.push(`after resolving: ${belowZeroAfter} products below zero, ${stillOpen} conflicts open`);
    }

    report = {
      date: new Date().toISOString(),
      machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown cpu'}`,
      durability: 'IndexedDB relaxed (Chromium default); hub SQLite WAL synchronous=FULL',
      lines: data.lines.length,
      orders: groupOrders(data.lines).length,
      stores: stores.length,
      regions: data.regions,
      operations,
      batchSize: BATCH,
      enqueueMs,
      drainMs,
      opsPerSecond: Math.round(operations / (drainMs / 1000)),
      wallMs: Date.now() - started,
      products: data.products.size,
      productsBelowZero: belowZero,
      expectedBelowZero,
      short,
      salesTotal: formatMoney(total),
      fileSalesTotal: data.totalSales,
      hubApplied: applied,
      inventoryConflicts: inventory.length,
      resolvedConflicts: resolved,
      belowZeroAfterResolving: belowZeroAfter,
      duplicateAnswers: duplicates,
      dbPath: hub.dbPath,
      verified: failures.length === 0,
      failures: failures.slice(0, 50),
    };
    for (const t of tills) await t.context.close();
  } finally {
    await browser.close();
    await hub.stop();
  }
  const text = [
    `pos-sync replay of the Superstore sample (${report.date})`,
    `  order lines   ${report.lines} in ${report.orders} orders, ${report.stores} stores (${report.regions.join(', ')})`,
    `  operations    ${report.operations} queued offline in ${report.enqueueMs} ms; batch size ${report.batchSize}`,
    `  drain         ${report.drainMs} ms from online to all applied: ${report.opsPerSecond} operations/s`,
    `  wall time     ${report.wallMs} ms in all`,
    `  sales total   ${report.salesTotal} (file: ${report.fileSalesTotal})`,
    `  below zero    ${report.productsBelowZero} of ${report.products} products (expected ${report.expectedBelowZero}${short ? ', --short' : ''})`,
    `  conflicts     ${report.inventoryConflicts} open inventory conflicts, one per product below zero` +
      (resolveConflicts ? `; ${report.resolvedConflicts} resolved through the API, ${report.belowZeroAfterResolving} below zero after` : ''),
    `  conditions    ${report.machine}; ${report.durability}`,
    `  verified      ${report.verified ? 'yes: every line exactly once, totals and stock exact' : 'NO'}`,
    ...report.failures.map((f) => `    - ${f}`),
    `  hub database  ${report.dbPath}`,
  ].join('\n');
  const base = join(out, `replay-${runId}`);
  writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(`${base}.txt`, text + '\n');
  log(text);
  log(`  report        ${resolve(base)}.json and .txt`);
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const opts = {};
  for (let i = 0; i < args.length; i += 1) {
    const a = args[i];
    if (a === '--limit') opts.limit = Number.parseInt(args[++i], 10);
    else if (a === '--short') opts.short = true;
    else if (a === '--resolve') opts.resolve = true;
    else if (a === '--out') opts.out = args[++i];
    else if (a === '--hub') opts.hubUrl = args[++i];
    else if (a === '--help' || a === '-h') {
      console.log('usage: node tools/replay.mjs [--limit N] [--short] [--resolve] [--out DIR] [--hub URL]');
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}; see --help`);
      process.exit(2);
    }
  }
  if (opts.limit !== undefined && !(opts.limit > 0)) {
    console.error('--limit takes a positive number of order lines');
    process.exit(2);
  }
  runReplay(opts).then((r) => process.exit(r.verified ? 0 : 1), (e) => { console.error(e); process.exit(1); });
}
