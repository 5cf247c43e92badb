// Seeds a hub's catalog with the Superstore products (opening stock: the units the whole file
// sells of each), unless the hub already has products.
//   node tools/seed-catalog.mjs --hub http://127.0.0.1:8080
import { randomUUID } from 'node:crypto';
import { loadSuperstore } from './superstore.mjs';
import { parseMoney, formatMoney } from '../www/decimal.js';

/** A price rounded half up to cents, exactly. */
const toCents = (price) => {
  const units = parseMoney(price);
  const rounded = ((units + (units >= 0n ? 50n : -50n)) / 100n) * 100n;
  return formatMoney(rounded);
};

const args = process.argv.slice(2);
const hub = args[args.indexOf('--hub') + 1];
if (!args.includes('--hub') || !hub) {
  console.error('usage: node tools/seed-catalog.mjs --hub URL');
  process.exit(2);
}

const existing = await (await fetch(`${hub}/api/sincronizacion/cambios/?desde=0&limite=1&coleccion=productos`)).json();
if (existing.cambios.length > 0) {
  console.log('catalog: the hub already has products; not seeding');
  process.exit(0);
}
// Prices for the till: the file's unit amount rounded to cents.

const { products } = loadSuperstore();
const ops = [...products.values()].map((p, i) => ({
  id: randomUUID(), tienda: 0, coleccion: 'productos', objeto_id: p.id, operacion: 'crear',
  datos: { nombre: p.nombre, categoria: p.categoria, precio: toCents(p.precio), stock: p.sold },
  version_base: 0, reloj: `${Date.now()}-${String(i).padStart(5, '0')}-0`, prioridad: 0,
}));
for (let i = 0; i < ops.length; i += 1000) {
  const response = await fetch(`${hub}/api/sincronizacion/cola/`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tienda: 0, operaciones: ops.slice(i, i + 1000) }),
  });
  // Read every answer: an unread body keeps the connection (and this process) alive.
  const answer = await response.text();
  if (!response.ok) {
    console.error(`seeding failed: ${response.status} ${answer}`);
    process.exit(1);
  }
}
console.log(`catalog: seeded ${ops.length} Superstore products`);
process.exit(0);
