// Exact decimal arithmetic for money strings ("957.5775"): no floats anywhere.

const SCALE = 4;

/** Parses a decimal string into an integer count of 1/10^4 units (BigInt). */
export function parseMoney(text) {
  const m = /^(-?)(\d+)(?:\.(\d{1,4}))?$/.exec(String(text).trim());
  if (!m) throw new Error(`not a decimal amount with at most ${SCALE} places: ${text}`);
  const units = BigInt(m[2]) * 10n ** BigInt(SCALE) + BigInt((m[3] || '').padEnd(SCALE, '0'));
  return m[1] ? -units : units;
}

/** Formats units back to a decimal string, without trailing zeros past two places. */
export function formatMoney(units) {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const whole = abs / 10n ** BigInt(SCALE);
  let frac = (abs % 10n ** BigInt(SCALE)).toString().padStart(SCALE, '0').replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${negative ? '-' : ''}${whole}.${frac}`;
}

/** price × quantity, exactly. */
export function times(price, quantity) {
  return formatMoney(parseMoney(price) * BigInt(quantity));
}
