// Exact decimal numbers for prices, quantities and money.
//
// The API sends these as decimal strings; the dashboard computes with them
// (order cost, position value, unrealized P&L) without ever going through
// a binary float, as the server does. A value is a BigInt of units and a
// scale: 12.345 is units 12345, scale 3. Floats appear only in charts.

export class Dec {
  constructor(units, scale) {
    this.u = units;
    this.s = scale;
  }

  /** The value of a decimal string ("-12.5", "0.001"), or null. */
  static parse(text) {
    if (text instanceof Dec) return text;
    if (typeof text === 'bigint') return new Dec(text, 0);
    if (typeof text === 'number') {
      if (!Number.isInteger(text)) return null;
      return new Dec(BigInt(text), 0);
    }
    if (typeof text !== 'string') return null;
    const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(text);
    if (!m || (m[2] === '' && (m[3] ?? '') === '')) return null;
    const frac = m[3] ?? '';
    let units = BigInt((m[2] || '0') + frac);
    if (m[1] === '-') units = -units;
    return new Dec(units, frac.length);
  }

  /** Like parse, but throws on bad input (for values from the API). */
  static of(value) {
    const d = Dec.parse(value);
    if (d === null) throw new TypeError(`not a decimal: ${value}`);
    return d;
  }

  withScale(scale) {
    if (scale === this.s) return this;
    if (scale > this.s) return new Dec(this.u * 10n ** BigInt(scale - this.s), scale);
    return this.round(scale);
  }

  add(other) {
    const o = Dec.of(other);
    const s = Math.max(this.s, o.s);
    return new Dec(this.withScale(s).u + o.withScale(s).u, s);
  }

  sub(other) {
    return this.add(Dec.of(other).neg());
  }

  mul(other) {
    const o = Dec.of(other);
    return new Dec(this.u * o.u, this.s + o.s).trim();
  }

  /** this / other to `scale` digits, rounded half away from zero. */
  div(other, scale = 8) {
    const o = Dec.of(other);
    if (o.u === 0n) throw new RangeError('division by zero');
    // (u1/10^s1) / (u2/10^s2) = u1 * 10^(s2 - s1) / u2; one extra digit to round with.
    let num = this.u * 10n ** BigInt(scale + 1 + o.s);
    let den = o.u * 10n ** BigInt(this.s);
    if (den < 0n) {
      num = -num;
      den = -den;
    }
    const q = num / den;
    return new Dec(q, scale + 1).round(scale);
  }

  neg() {
    return new Dec(-this.u, this.s);
  }

  abs() {
    return this.u < 0n ? this.neg() : this;
  }

  sign() {
    return this.u < 0n ? -1 : this.u > 0n ? 1 : 0;
  }

  isZero() {
    return this.u === 0n;
  }

  cmp(other) {
    const o = Dec.of(other);
    const s = Math.max(this.s, o.s);
    const a = this.withScale(s).u;
    const b = o.withScale(s).u;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** Rounded to `scale` digits, half away from zero. */
  round(scale) {
    if (scale >= this.s) return this.withScale(scale);
    const f = 10n ** BigInt(this.s - scale);
    const q = this.u / f;
    const r = this.u % f;
    const twice = (r < 0n ? -r : r) * 2n;
    const bump = twice >= f ? (this.u < 0n ? -1n : 1n) : 0n;
    return new Dec(q + bump, scale);
  }

  /** Rounded down (toward zero) to a whole multiple of `step`. */
  floorTo(step) {
    const st = Dec.of(step);
    const s = Math.max(this.s, st.s);
    const a = this.withScale(s).u;
    const b = st.withScale(s).u;
    if (b === 0n) return this;
    return new Dec((a / b) * b, s).trim();
  }

  /** Whether this is a whole multiple of `step` (a tick or lot size). */
  isMultipleOf(step) {
    const st = Dec.of(step);
    const s = Math.max(this.s, st.s);
    const b = st.withScale(s).u;
    return b !== 0n && this.withScale(s).u % b === 0n;
  }

  /** Without trailing zeros after the point. */
  trim() {
    let { u, s } = this;
    while (s > 0 && u % 10n === 0n) {
      u /= 10n;
      s -= 1;
    }
    return new Dec(u, s);
  }

  toString() {
    const neg = this.u < 0n;
    let digits = (neg ? -this.u : this.u).toString();
    if (this.s === 0) return (neg ? '-' : '') + digits;
    digits = digits.padStart(this.s + 1, '0');
    const int = digits.slice(0, digits.length - this.s);
    const frac = digits.slice(digits.length - this.s);
    return `${neg ? '-' : ''}${int}.${frac}`;
  }

  /** For chart geometry only: never for money arithmetic. */
  toNumber() {
    return Number(this.toString());
  }
}

/** Digits after the point in a step such as a tick size ("0.01" is 2, "5" is 0). */
export function decimalsOf(step) {
  const d = Dec.parse(step);
  return d ? d.trim().s : 0;
}
