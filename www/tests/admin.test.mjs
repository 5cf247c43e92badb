// The admin page in headless Chromium: resolve real conflicts by clicking, and edit a store's
// configuration; then check the hub's data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { withHubAndBrowser } from '../../tools/fixture.mjs';

async function api(hub, path, body) {
  const response = await fetch(`${hub}/api/sincronizacion${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await response.json();
  assert.ok(response.ok, `${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

let tick = 0;
const op = (tienda, coleccion, objeto_id, operacion, datos, version_base = 0) => ({
  id: randomUUID(), tienda, coleccion, objeto_id, operacion, datos, version_base,
  reloj: `${1_733_240_000_000 + (tick += 1000)}-00000-${tienda}`,
});
const push = (hub, tienda, ops) => api(hub, '/cola/', { tienda, operaciones: ops });

test('an admin resolves conflicts by clicking and edits a store configuration', () => withHubAndBrowser('admin', async ({ hub, browser }) => {
  // A manual conflict on a customer, and an inventory conflict on a product.
  await api(hub.url, '/configuracion/', { tienda: 2, estrategias: { clientes: 'manual' } });
  await push(hub.url, 0, [op(0, 'clientes', 'C1', 'crear', { nombre: 'Ana', telefono: '1', ciudad: 'Lima' }), op(0, 'productos', 'P1', 'crear', { nombre: 'Silla', stock: 1 })]);
  await push(hub.url, 1, [op(1, 'clientes', 'C1', 'actualizar', { telefono: '111' }, 1)]);
  const held = await push(hub.url, 2, [op(2, 'clientes', 'C1', 'actualizar', { telefono: '222', ciudad: 'Lima' }, 1)]);
  assert.equal(held.resultados[0].estado, 'conflicto');
  await push(hub.url, 1, [op(1, 'productos', 'P1', 'incrementar', { stock: -1 }, 1)]);
  await push(hub.url, 2, [op(2, 'productos', 'P1', 'incrementar', { stock: -1 }, 1)]);

  const page = await (await browser.newContext()).newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}/admin/`);
  await page.locator('#list-note', { hasText: /^2 conflicts/ }).waitFor();
  assert.equal(await page.locator('#conflict-list tbody tr').count(), 2);

  // Filter by kind, open the field conflict: both sides side by side, the differing field marked.
  await page.selectOption('#filters select[name=tipo]', 'campos');
  await page.click('#filters button[type=submit]');
  await page.locator('#list-note', { hasText: /^1 conflicts/ }).waitFor();
  assert.equal(await page.locator('#conflict-list tbody tr').count(), 1);
  await page.locator('#conflict-list tbody tr').first().click();
  await page.locator('#detail:not([hidden])').waitFor();
  const row = (f) => page.locator(`#compare tr[data-field="${f}"]`);
  assert.deepEqual(await row('telefono').locator('td').allTextContents(), ['telefono', '"111"', '"222"']);
  assert.equal(await row('telefono').getAttribute('class'), 'differs');
  assert.equal(await row('ciudad').getAttribute('class'), null, 'same value on both sides');
  assert.equal(await row('nombre').locator('td').nth(2).textContent(), '(not changed)');

  // Resolving needs a name; then keep the store's data.
  await page.click('#keep-store');
  await page.locator('#message', { hasText: 'Enter your name' }).waitFor();
  await page.fill('#user', 'Marta');
  await page.click('#keep-store');
  await page.locator('#message', { hasText: 'resolved (local)' }).waitFor();
  const c1 = await api(hub.url, '/documentos/clientes/C1/');
  assert.deepEqual(c1.datos, { nombre: 'Ana', telefono: '222', ciudad: 'Lima' });
  const resolved = await api(hub.url, '/conflictos/?estado=resuelto&tipo=campos');
  assert.equal(resolved.results[0].resuelto_por, 'Marta');
  assert.equal(resolved.results[0].datos_antes.telefono, '111');
  assert.equal(resolved.results[0].datos_despues.telefono, '222');

  // The inventory conflict: the editor checks the JSON before it saves a counted stock.
  await page.selectOption('#filters select[name=tipo]', 'inventario');
  await page.click('#filters button[type=submit]');
  await page.locator('#conflict-list tbody tr', { hasText: 'inventario' }).click();
  await page.locator('#detail-title', { hasText: 'inventario' }).waitFor();
  assert.equal(await page.locator('#keep-store').isHidden(), true, 'an inventory conflict has no store side');
  await page.fill('#merged', '{"stock": 3');
  await page.locator('#merged-error', { hasText: 'Not valid JSON' }).waitFor();
  assert.equal(await page.locator('#save-merged').isDisabled(), true);
  await page.fill('#merged', '{"stock": -4}');
  await page.click('#save-merged');
  await page.locator('#message', { hasText: 'below its floor' }).waitFor();
  await page.fill('#merged', '{"stock": 3}');
  await page.click('#save-merged');
  await page.locator('#message', { hasText: 'resolved (personalizado)' }).waitFor();
  assert.equal((await api(hub.url, '/documentos/productos/P1/')).datos.stock, 3);
  assert.equal((await api(hub.url, '/conflictos/?estado=abierto')).count, 0);

  // Configuration: an invalid value is refused with its field named; a valid one is saved.
  await page.click('nav button[data-view=config]');
  await page.fill('#config-load input[name=tienda]', '5');
  await page.click('#config-load button');
  await page.locator('#config-form:not([hidden])').waitFor();
  assert.equal(await page.inputValue('#config-form input[name=tamano_lote]'), '500');
  await page.fill('#config-form input[name=tamano_lote]', '0');
  await page.click('#config-form button[type=submit]');
  await page.locator('#config-errors li', { hasText: 'tamano_lote' }).waitFor();
  assert.equal((await api(hub.url, '/configuracion/5/')).tamano_lote, 500, 'nothing saved');
  assert.equal((await api(hub.url, '/configuracion/')).count, 1, 'only store 2 has a stored configuration');
  await page.fill('#config-form input[name=tamano_lote]', '25');
  // Manual for products; their field rules go, since rules only act under "campos".
  await page.fill('#config-form textarea[name=estrategias]', '{"productos": "manual"}');
  await page.fill('#config-form textarea[name=reglas]', '{}');
  await page.click('#config-form button[type=submit]');
  await page.locator('#message', { hasText: 'store 5 saved' }).waitFor();
  const saved = await api(hub.url, '/configuracion/5/');
  assert.equal(saved.tamano_lote, 25);
  assert.deepEqual(saved.estrategias, { productos: 'manual' }, 'keys removed in the form are removed');
  assert.deepEqual(saved.reglas, {});
  assert.deepEqual(pageErrors, []);
}));

test('the conflict list pages through more than 200 conflicts', () => withHubAndBrowser('admin-pages', async ({ hub, browser }) => {
  const ids = Array.from({ length: 205 }, (_, i) => `Q${String(i).padStart(3, '0')}`);
  await push(hub.url, 0, ids.map((id) => op(0, 'productos', id, 'crear', { stock: 0 })));
  await push(hub.url, 1, ids.map((id) => op(1, 'productos', id, 'incrementar', { stock: -1 }, 1)));
  assert.equal((await api(hub.url, '/conflictos/?estado=abierto&limit=1')).count, 205);
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${hub.url}/admin/`);
  await page.locator('#list-note', { hasText: '205 conflicts; showing 1–200.' }).waitFor();
  assert.equal(await page.locator('#conflict-list tbody tr').count(), 200);
  assert.equal(await page.locator('#prev-page').isHidden(), true);
  await page.click('#next-page');
  await page.locator('#list-note', { hasText: 'showing 201–205' }).waitFor();
  assert.equal(await page.locator('#conflict-list tbody tr').count(), 5);
  assert.equal(await page.locator('#next-page').isHidden(), true);
  await page.click('#prev-page');
  await page.locator('#list-note', { hasText: 'showing 1–200' }).waitFor();
}));
