// The demo till: the catalog from the engine's offline cache, selling, the queue, and the
// connection state. Open it as /?tienda=2 to be another store.
import init, { PosSync } from '/pkg/pos_sync.js';
import { times } from './decimal.js';

const params = new URLSearchParams(location.search);
const storeId = Number(params.get('tienda') || 1);
const $ = (id) => document.getElementById(id);
let engine;
let products = [];

function show(message, isError = false) {
  $('message').textContent = message;
  $('message').style.color = isError ? '#ffb4a9' : '';
}

function renderStatus(status) {
  const badge = $('connection');
  const state = !status.online ? 'offline' : status.lastError ? 'unreachable' : 'online';
  badge.dataset.state = state;
  badge.textContent = { online: 'Online', offline: 'Offline: selling locally', unreachable: 'Hub unreachable: selling locally' }[state];
  $('pending').textContent = String(status.pending);
  $('last-sync').textContent = status.lastSyncAt ? new Date(status.lastSyncAt).toLocaleTimeString() : 'never';
}

async function refresh() {
  products = await engine.list('productos');
  renderCatalog();
  const ops = await engine.operations();
  $('queue').tBodies[0].replaceChildren(...ops.map((op) => row([
    op.seq, op.operacion, `${op.coleccion}/${op.objeto_id}`, op.estado, op.intentos, op.error || '',
  ])));
  renderStatus(await engine.status());
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.append(c); else td.textContent = String(c);
    tr.append(td);
  }
  return tr;
}

function renderCatalog() {
  const q = $('filter').value.trim().toLowerCase();
  const shown = products.filter((p) => !q || p.objeto_id.toLowerCase().includes(q)
    || String(p.datos.nombre).toLowerCase().includes(q) || String(p.datos.categoria).toLowerCase().includes(q)).slice(0, 200);
  $('catalog').tBodies[0].replaceChildren(...shown.map((p) => {
    const qty = Object.assign(document.createElement('input'), { type: 'number', min: 1, value: 1 });
    const sell = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Sell' });
    sell.dataset.product = p.objeto_id;
    sell.addEventListener('click', () => sellProduct(p, Number(qty.value)));
    const span = document.createElement('span');
    span.append(qty, ' ', sell);
    const tr = row([`${p.datos.nombre} (${p.objeto_id})`, p.datos.categoria, p.datos.precio, p.datos.stock, span]);
    tr.children[2].className = 'num';
    tr.children[3].className = p.datos.stock < 0 ? 'num negative' : 'num';
    tr.dataset.product = p.objeto_id;
    return tr;
  }));
  $('catalog-note').textContent = products.length === 0
    ? 'The cache is empty: the till has not synced with the hub yet (or the hub has no catalog).'
    : `${products.length} products cached${shown.length < products.length ? `; showing ${shown.length}` : ''}.`;
}

async function sellProduct(product, quantity) {
  if (!Number.isInteger(quantity) || quantity < 1) return show('Quantity must be a whole number of at least 1.', true);
  const left = product.datos.stock - quantity;
  const sale = crypto.randomUUID();
  try {
    await engine.enqueueMany([
      { coleccion: 'ventas', objeto_id: sale, operacion: 'crear', datos: {
        pedido: `DEMO-${storeId}-${sale.slice(0, 8)}`, producto: product.objeto_id, cantidad: quantity,
        importe: times(product.datos.precio, quantity), cliente: 'demo', fecha: new Date().toISOString().slice(0, 10) } },
      { coleccion: 'productos', objeto_id: product.objeto_id, operacion: 'incrementar', datos: { stock: -quantity } },
    ]);
    show(left < 0
      ? `Sold ${quantity} × ${product.datos.nombre}; the stock here goes to ${left}: the hub will open an inventory conflict.`
      : `Sold ${quantity} × ${product.datos.nombre}.`, left < 0);
  } catch (e) {
    show(`${e.name}: ${e.message}`, true);
  }
  await refresh();
}

async function main() {
  $('store').textContent = `· store ${storeId}`;
  await init();
  engine = await PosSync.open({ storeId, dbName: `pos-sync-demo-${storeId}`, hubUrl: '', syncIntervalMs: 5000,
    cachedCollections: ['productos'], priorities: { ventas: 10, productos: 5 } });
  window.posSync = engine; // for the console and the end-to-end tests
  engine.addEventListener('change', (e) => renderStatus(e.detail));
  engine.addEventListener('sync', (e) => {
    const s = e.detail;
    if (s.pushed || s.pulled) show(`Synced: ${s.applied} applied, ${s.rejected} refused, ${s.pulled} documents pulled.`);
    refresh();
  });
  engine.addEventListener('syncerror', (e) => { show(`Sync failed (${e.detail.name}); the queue is kept.`, true); refresh(); });
  $('sync-now').addEventListener('click', async () => {
    try { await engine.syncNow(); } catch (e) { show(`${e.name}: ${e.message}`, true); }
    await refresh();
  });
  $('filter').addEventListener('input', renderCatalog);
  await refresh();
  engine.start();
}

main().catch((e) => {
  $('connection').dataset.state = 'offline';
  $('connection').textContent = 'Engine not started';
  show(`Could not start the engine: ${e.name}: ${e.message}`, true);
});
