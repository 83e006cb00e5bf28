// How numbers and times look: exact decimals with the user's separators and
// a fixed precision, signed P&L that reads without colour (a sign and an
// arrow), and times in the user's time zone with UTC on hover.

import { Dec } from './decimal.js';
import { h } from './dom.js';

const sample = new Intl.NumberFormat(undefined).formatToParts(12345.6);
const GROUP = sample.find((p) => p.type === 'group')?.value ?? ',';
const POINT = sample.find((p) => p.type === 'decimal')?.value ?? '.';
const MINUS = '\u2212';

/** `value` (a Dec or decimal string) with `dp` digits (or its own), grouped. */
export function fmtNum(value, dp, { sign = false, group = true } = {}) {
  const d = Dec.parse(value);
  if (d === null) return '–';
  const r = dp === undefined ? d.trim() : d.round(dp);
  const text = r.abs().toString();
  const [int, frac] = text.split('.');
  const grouped = group ? int.replace(/\B(?=(\d{3})+(?!\d))/g, GROUP) : int;
  const body = frac === undefined ? grouped : `${grouped}${POINT}${frac}`;
  if (r.sign() < 0) return MINUS + body;
  if (sign && r.sign() > 0) return `+${body}`;
  return body;
}

/** Digits money is shown with. */
export const MONEY_DP = 2;

/** `1,234.56 USD` as text. */
export function fmtMoney(value, currency, dp = MONEY_DP) {
  return currency ? `${fmtNum(value, dp)} ${currency}` : fmtNum(value, dp);
}

/** A number with its currency in a quieter span. */
export function moneyEl(value, currency, dp = MONEY_DP) {
  return h('span', { class: 'num' }, fmtNum(value, dp), currency ? h('span', { class: 'ccy' }, currency) : null);
}

/** Signed P&L: `▲ +12.30` in the gain colour, `▼ −4.10` in the loss colour, labelled for screen readers. */
export function pnlEl(value, currency, dp = MONEY_DP) {
  const d = Dec.parse(value);
  if (d === null) return h('span', { class: 'flat' }, '–');
  const r = d.round(dp);
  const cls = r.sign() > 0 ? 'gain' : r.sign() < 0 ? 'loss' : 'flat';
  const word = r.sign() > 0 ? 'gain' : r.sign() < 0 ? 'loss' : 'no change';
  const text = fmtNum(r, dp, { sign: true });
  return h(
    'span',
    { class: `num ${cls}`, 'aria-label': `${word} of ${fmtNum(r.abs(), dp)}${currency ? ` ${currency}` : ''}` },
    text,
    currency ? h('span', { class: 'ccy' }, currency) : null,
  );
}

/** A percentage from a ratio ("0.0123" is 1.23 %). */
export function fmtPercent(ratio, dp = 2) {
  const d = Dec.parse(ratio);
  if (d === null) return '–';
  return `${fmtNum(d.mul(100), dp, { sign: false })} %`;
}

const local = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
});
const localShort = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

/** The user's time zone, for the footer note. */
export function zoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
}

function toDate(value) {
  if (value instanceof Date) return value;
  if (typeof value === 'number') return new Date(value);
  return new Date(value);
}

/** `2026-12-01T09:30:00Z` as UTC text, for hovers. */
export function fmtUtc(value) {
  const d = toDate(value);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace('Z', '')} UTC`;
}

/** Local date and time text. */
export function fmtTime(value, { short = false } = {}) {
  const d = toDate(value);
  if (Number.isNaN(d.getTime())) return '–';
  return (short ? localShort : local).format(d);
}

/** `<time>` in local time with UTC on hover. */
export function timeEl(value, opts) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '–');
  const d = toDate(value);
  return h('time', { datetime: d.toISOString(), title: fmtUtc(d) }, fmtTime(d, opts));
}

/** A quantity with the instrument's lot precision. */
export function fmtQty(value, lotDecimals) {
  return fmtNum(value, lotDecimals);
}

/** Words for snake_case codes: `partially_filled` → `partially filled`. */
export function words(code) {
  return String(code ?? '').replaceAll('_', ' ');
}
