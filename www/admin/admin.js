// The hub's admin page: conflicts (list, side-by-side detail, resolution) and per-store
// configuration. It talks to the hub's REST API on the same origin.
const $ = (id) => document.getElementById(id);
const API = '/api/sincronizacion';
let selected = null;

function say(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

/** A request to the hub; rejects with the hub's error text. */
async function api(path, body) {
  const response = await fetch(`${API}${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(json.detail || Object.entries(json).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`).join('; ') || response.statusText);
    error.fields = json.detail ? {} : json;
    throw error;
  }
  return json;
}

const user = () => $('user').value.trim();
$('user').value = localStorage.getItem('pos-sync-admin-user') || '';
$('user').addEventListener('change', () => localStorage.setItem('pos-sync-admin-user', user()));

for (const button of document.querySelectorAll('nav button')) {
  button.addEventListener('click', () => {
    for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b === button);
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== button.dataset.view;
    say('');
  });
}

// ---- Conflicts ----

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

const show = (v) => (v === undefined ? '—' : JSON.stringify(v));

const PAGE = 200;
let offset = 0;

async function loadConflicts() {
  const form = new FormData($('filters'));
  const query = new URLSearchParams([...form].filter(([, v]) => v !== ''));
  query.set('limit', String(PAGE));
  query.set('offset', String(offset));
  try {
    const page = await api(`/conflictos/?${query}`);
    $('conflict-list').tBodies[0].replaceChildren(...page.results.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.id = c.id;
      tr.append(cell(c.id), cell(c.tipo), cell(c.tienda), cell(`${c.coleccion}/${c.objeto_id}`), cell(c.campos.join(', ')),
        cell(new Date(c.fecha_creacion).toLocaleString()), cell(c.estado));
      tr.addEventListener('click', () => openConflict(c.id));
      return tr;
    }));
    const shown = page.results.length ? `; showing ${offset + 1}–${offset + page.results.length}` : '';
    $('list-note').textContent = `${page.count} conflicts${page.count > page.results.length ? shown : ''}.`;
    $('prev-page').hidden = !page.previous;
    $('next-page').hidden = !page.next;
  } catch (e) {
    say(`Could not list conflicts: ${e.message}`, true);
  }
}

async function openConflict(id) {
  const c = await api(`/conflictos/${id}/`);
  selected = c;
  for (const tr of $('conflict-list').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.id === String(id));
  $('detail').hidden = false;
  $('detail-title').textContent = `Conflict #${c.id}: ${c.tipo} on ${c.coleccion}/${c.objeto_id}`;
  $('detail-meta').textContent = `Store ${c.tienda}, operation ${c.operacion} ${c.operacion_id}; strategy ${c.estrategia}; ${c.estado}` +
    (c.resuelto_por ? `; resolved (${c.resolucion}) by ${c.resuelto_por} on ${new Date(c.fecha_resolucion).toLocaleString()}` : '');
  const inventory = c.tipo === 'inventario';
  const hub = c.datos_actuales || {};
  const store = c.datos_tienda || {};
  const fields = [...new Set([...Object.keys(hub), ...Object.keys(store)])].sort();
  $('compare').tBodies[0].replaceChildren(...fields.map((f) => {
    const tr = document.createElement('tr');
    const differs = f in store && (inventory || JSON.stringify(hub[f]) !== JSON.stringify(store[f]));
    if (differs) tr.className = 'differs';
    tr.dataset.field = f;
    // An inventory conflict holds the store's change (a delta), not a value of the field.
    const theirs = !(f in store) ? '(not changed)' : inventory ? `change ${show(store[f])}` : show(store[f]);
    tr.append(cell(f), cell(show(hub[f])), cell(theirs));
    return tr;
  }));
  const open = c.estado === 'abierto';
  $('keep-server').hidden = !open;
  $('keep-store').hidden = !open || inventory;
  $('save-merged').hidden = !open;
  $('merged').disabled = !open;
  // Inventory: the admin enters the counted stock; otherwise the hub's data with the store's on top.
  // Resolved: the data it left. Inventory: the counted stock. Otherwise the hub's data with
  // the store's on top (a custom resolution replaces the whole document with the editor's).
  const merged = !open ? (c.datos_despues || {}) : inventory ? Object.fromEntries(c.campos.map((f) => [f, Math.max(0, hub[f] ?? 0)])) : { ...hub, ...store };
  $('merged').value = JSON.stringify(merged, null, 2);
  checkMerged();
  $('resolution').textContent = open ? '' : JSON.stringify({ antes: c.datos_antes, despues: c.datos_despues, resultado: c.resultado }, null, 2);
}

/** Checks the editor's JSON; returns the object, or null with the reason shown. */
function checkMerged() {
  let value;
  try {
    value = JSON.parse($('merged').value);
  } catch (e) {
    $('merged-error').textContent = `Not valid JSON: ${e.message}`;
    $('save-merged').disabled = true;
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    $('merged-error').textContent = 'The merged data must be a JSON object of fields.';
    $('save-merged').disabled = true;
    return null;
  }
  $('merged-error').textContent = '';
  $('save-merged').disabled = false;
  return value;
}

async function resolve(resolucion, datos) {
  if (!user()) {
    say('Enter your name first: every resolution records who made it.', true);
    $('user').focus();
    return;
  }
  try {
    const body = { conflicto: selected.id, resolucion, usuario: user() };
    if (datos) body.datos = datos;
    const done = await api('/conflictos/', body);
    say(`Conflict #${done.id} resolved (${done.resolucion}).`);
    await loadConflicts();
    await openConflict(done.id);
  } catch (e) {
    say(`Not resolved: ${e.message}`, true);
  }
}

$('merged').addEventListener('input', checkMerged);
$('keep-server').addEventListener('click', () => resolve('servidor'));
$('keep-store').addEventListener('click', () => resolve('local'));
$('save-merged').addEventListener('click', () => {
  const value = checkMerged();
  if (value) resolve('personalizado', value);
});
$('prev-page').addEventListener('click', () => { offset = Math.max(0, offset - PAGE); loadConflicts(); });
$('next-page').addEventListener('click', () => { offset += PAGE; loadConflicts(); });
$('filters').addEventListener('submit', (e) => {
  e.preventDefault();
  say('');
  offset = 0;
  $('detail').hidden = true;
  selected = null;
  loadConflicts();
});

// ---- Configuration ----

const JSON_FIELDS = ['prioridades', 'estrategias', 'reglas'];
const NUMBER_FIELDS = ['intervalo_ms', 'tamano_lote', 'intentos_integridad'];

let loaded = null;

/** The change from `before` to `after` as the hub merges it: removed keys become null. */
function mapChange(before, after, depth) {
  const out = { ...after };
  for (const key of Object.keys(before || {})) {
    if (!(key in after)) out[key] = null;
    else if (depth > 0 && after[key] && typeof after[key] === 'object') out[key] = mapChange(before[key], after[key], depth - 1);
  }
  return out;
}

async function loadConfig(store) {
  const c = await api(`/configuracion/${store}/`);
  loaded = c;
  const form = $('config-form');
  form.hidden = false;
  form.dataset.tienda = c.tienda;
  for (const f of NUMBER_FIELDS) form.elements[f].value = c[f];
  for (const f of JSON_FIELDS) form.elements[f].value = JSON.stringify(c[f], null, 2);
  form.elements.colecciones_cache.value = c.colecciones_cache.join(', ');
  $('config-errors').replaceChildren();
}

$('config-load').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await loadConfig(Number(new FormData(e.target).get('tienda')));
  } catch (err) {
    say(`Could not load: ${err.message}`, true);
  }
});

$('config-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  const errors = [];
  const body = { tienda: Number(form.dataset.tienda) };
  for (const f of NUMBER_FIELDS) body[f] = Number(form.elements[f].value);
  body.colecciones_cache = form.elements.colecciones_cache.value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const f of JSON_FIELDS) {
    try {
      body[f] = mapChange(loaded[f], JSON.parse(form.elements[f].value), f === 'reglas' ? 1 : 0);
    } catch (err) {
      errors.push(`${f}: not valid JSON (${err.message})`);
    }
  }
  const list = $('config-errors');
  if (errors.length === 0) {
    try {
      await api('/configuracion/', body);
      say(`Configuration of store ${body.tienda} saved.`);
      await loadConfig(body.tienda);
      return;
    } catch (err) {
      errors.push(...(Object.keys(err.fields || {}).length ? Object.entries(err.fields).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`) : [err.message]));
    }
  }
  list.replaceChildren(...errors.map((t) => Object.assign(document.createElement('li'), { textContent: t })));
  say('Not saved: see the errors below.', true);
});

loadConflicts();
