import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMoney, formatMoney, times } from '../decimal.js';

test('money is exact decimal arithmetic', () => {
  assert.equal(parseMoney('957.5775'), 9575775n);
  assert.equal(parseMoney('-2.5'), -25000n);
  assert.equal(formatMoney(parseMoney('0.1') + parseMoney('0.2')), '0.30');
  assert.equal(times('19.99', 2), '39.98');
  assert.equal(times('3.3333', 3), '9.9999');
  assert.throws(() => parseMoney('1.23456'), /at most 4 places/);
  assert.throws(() => parseMoney('1e3'));
});
