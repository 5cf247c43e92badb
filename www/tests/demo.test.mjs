// The demo till in headless Chromium, as a user would use it: the catalog from the cache,
// selling while the hub is unreachable and while offline, a reload, and the queue draining on
// its own when the connection returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { withHubAndBrowser } from '../../tools/fixture.mjs';

async function push(hub, ops) {
  const response = await fetch(`${hub}/api/sincronizacion/cola/`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tienda: 0, operaciones: ops }),
  });
  assert.equal(response.status, 200);
}

async function get(hub, path) {
  return (await fetch(`${hub}${path}`)).json();
}

const product = (id, nombre, precio, stock) => ({
  id: randomUUID(), tienda: 0, coleccion: 'productos', objeto_id: id, operacion: 'crear',
  datos: { nombre, categoria: 'Furniture', precio, stock }, reloj: `${Date.now()}-00000-0`,
});

test('the demo till sells offline and drains its queue exactly once when back online', () => withHubAndBrowser('demo', async ({ hub, browser }) => {
  await push(hub.url, [product('P-A', 'Chair', '19.99', 10), product('P-B', 'Lamp', '3.3333', 5)]);
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}/?tienda=3`);
  const stock = (id) => page.locator(`tr[data-product="${id}"] td:nth-child(4)`);
  const sell = async (id, qty) => {
    await page.locator(`tr[data-product="${id}"] input`).fill(String(qty));
    await page.locator(`tr[data-product="${id}"] button`).click();
  };
  await page.locator('tr[data-product="P-A"]').waitFor();
  await assert.doesNotReject(page.locator('#connection', { hasText: 'Online' }).waitFor());
  assert.equal(await stock('P-A').textContent(), '10');

  // The hub becomes unreachable: the sale is queued and the till says so.
  await page.route('**/api/**', (route) => route.abort('connectionrefused'));
  await sell('P-B', 1);
  await page.locator('#pending', { hasText: '2' }).waitFor(); // the sale and its stock delta
  await page.locator('#sync-now').click();
  await page.locator('#message', { hasText: 'PosSyncNetworkError' }).waitFor();
  await page.locator('#connection', { hasText: 'Hub unreachable' }).waitFor();

  // A reload keeps the queue, and the catalog comes from the offline cache.
  await page.reload();
  await page.locator('tr[data-product="P-B"]').waitFor();
  assert.equal(await page.locator('#pending').textContent(), '2');
  assert.equal(await stock('P-B').textContent(), '4');

  // Offline in the browser's sense: sell more.
  await page.unroute('**/api/**');
  await context.setOffline(true);
  await page.locator('#connection', { hasText: 'Offline' }).waitFor();
  await sell('P-A', 2);
  await page.locator('#pending', { hasText: '4' }).waitFor();
  assert.equal(await stock('P-A').textContent(), '8');

  // Back online: the queue drains by itself.
  await context.setOffline(false);
  await page.locator('#pending', { hasText: /^0$/ }).waitFor({ timeout: 15000 });
  await page.locator('#connection', { hasText: 'Online' }).waitFor();
  if (process.env.POS_SYNC_SCREENSHOT) await page.screenshot({ path: process.env.POS_SYNC_SCREENSHOT, fullPage: true });

  const ops = await get(hub.url, '/api/sincronizacion/cola/?tienda=3');
  assert.equal(ops.count, 4);
  assert.ok(ops.results.every((o) => o.estado === 'aplicada'));
  const a = await get(hub.url, '/api/sincronizacion/documentos/productos/P-A/');
  const b = await get(hub.url, '/api/sincronizacion/documentos/productos/P-B/');
  assert.equal(a.datos.stock, 8);
  assert.equal(b.datos.stock, 4);
  const sales = await get(hub.url, '/api/sincronizacion/cambios/?coleccion=ventas');
  assert.deepEqual(sales.cambios.map((c) => c.datos.importe).sort(), ['3.3333', '39.98']);
  assert.deepEqual(pageErrors, []);
  await context.close();
}));
