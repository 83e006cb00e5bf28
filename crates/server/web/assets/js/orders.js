// Orders and fills as table rows, and cancelling: shared by the account,
// orders, instrument and bot pages.

import { del, explain } from './api.js';
import { busy, confirmDialog, h, td, toast } from './dom.js';
import { fmtNum, moneyEl, timeEl, words } from './format.js';
import { Dec, decimalsOf } from './decimal.js';

/** Statuses of a working order (it can still fill or be cancelled). */
export const OPEN_STATUSES = new Set(['new', 'accepted', 'partially_filled', 'pending_cancel']);

export function isOpen(order) {
  return OPEN_STATUSES.has(order.status);
}

const TYPE_LABELS = { market: 'Market', limit: 'Limit', stop: 'Stop', stop_limit: 'Stop-limit' };

/** `Limit GTC`, `Stop-limit IOC`, plus `reduce-only`. */
export function typeLabel(order) {
  const label = `${TYPE_LABELS[order.type] ?? order.type} ${order.time_in_force}`;
  return order.reduce_only ? `${label} · reduce-only` : label;
}

/** Digits of a step (tick or lot size); undefined, for a number's own digits, when it is not known (a live account's venue symbols). */
export function stepDecimals(step) {
  return step ? decimalsOf(step) : undefined;
}

/** The instrument's symbol, linked to its market page (paper instruments have one). */
export function symbolEl(instrument, id) {
  if (!instrument) return `#${id}`;
  return instrument.live ? h('span', { class: 'mono' }, instrument.symbol) : h('a', { href: `/markets/${instrument.symbol}` }, instrument.symbol);
}

/** The order's price column: limit price, trigger, or "market". */
export function priceText(order, instrument) {
  const dp = stepDecimals(instrument?.tick_size);
  const parts = [];
  if (order.trigger_price) parts.push(`trigger ${fmtNum(order.trigger_price, dp)}`);
  if (order.price) parts.push(fmtNum(order.price, dp));
  return parts.length ? parts.join(' → ') : 'market';
}

export function sideEl(side) {
  return h('span', { class: `side-${side}` }, side === 'buy' ? 'Buy' : 'Sell');
}

const STATUS_BADGES = {
  filled: 'badge badge-ok',
  rejected: 'badge badge-bad',
  cancelled: 'badge',
  expired: 'badge',
  partially_filled: 'badge badge-warn',
  pending_cancel: 'badge badge-warn',
};

export function statusEl(order) {
  const badge = h('span', { class: STATUS_BADGES[order.status] ?? 'badge' }, words(order.status));
  if (order.reject_reason) {
    return h('span', {}, badge, ' ', h('span', { class: 'small muted' }, words(order.reject_reason)));
  }
  return badge;
}

/** Average fill price, or "–". */
export function averageFill(order, instrument) {
  if (!order.filled_quantity || Dec.of(order.filled_quantity).isZero()) return '–';
  // A venue symbol's tick is not known here: its own digits, up to 8.
  if (instrument && !instrument.tick_size) return fmtNum(Dec.of(order.filled_notional).div(order.filled_quantity, 8));
  const dp = instrument ? decimalsOf(instrument.tick_size) + 2 : 4;
  return fmtNum(Dec.of(order.filled_notional).div(order.filled_quantity, dp), dp);
}

/**
 * A table row for an order. `columns`: which optional columns to show.
 * `onCancel(order)` adds a Cancel button to open orders.
 */
export function orderRow(order, lookup, { account = null, showAccount = false, onCancel = null, canTrade = true } = {}) {
  const instrument = lookup.byId.get(order.instrument);
  const lotDp = stepDecimals(instrument?.lot_size);
  const cancel = onCancel && isOpen(order) && order.status !== 'pending_cancel'
    ? h('button', {
      type: 'button',
      class: 'btn btn-small',
      'data-cancel': order.id,
      disabled: !canTrade,
      'aria-label': `Cancel order ${order.id} (${order.side} ${order.quantity} ${instrument?.symbol ?? ''})`,
      onclick: (e) => onCancel(order, e.currentTarget),
    }, 'Cancel')
    : null;
  return h('tr', { 'data-order': order.id, 'data-status': order.status },
    td(timeEl(order.ts_created)),
    showAccount ? td(account ?? '') : null,
    td(symbolEl(instrument, order.instrument)),
    td(sideEl(order.side)),
    td(typeLabel(order)),
    td(fmtNum(order.quantity, lotDp), { num: true }),
    td(fmtNum(order.filled_quantity, lotDp), { num: true }),
    td(priceText(order, instrument), { num: true }),
    td(statusEl(order)),
    td(cancel));
}

/** A table row for a fill. */
export function fillRow(fill, lookup, { withFee = true } = {}) {
  const instrument = lookup.byId.get(fill.instrument);
  const lotDp = stepDecimals(instrument?.lot_size);
  const tickDp = stepDecimals(instrument?.tick_size);
  return h('tr', { 'data-fill': `${fill.order_id}-${fill.trade_id}` },
    td(timeEl(fill.ts)),
    td(symbolEl(instrument, fill.instrument)),
    td(sideEl(fill.side)),
    td(fmtNum(fill.quantity, lotDp), { num: true }),
    td(fmtNum(fill.price, tickDp), { num: true }),
    withFee ? td(moneyEl(fill.fee, instrument?.quote_currency, 4), { num: true }) : null,
    withFee ? td(words(fill.liquidity)) : null);
}

/** Asks, then cancels one order; reports the result. */
export async function cancelOrder(accountId, order, button, lookup) {
  const instrument = lookup.byId.get(order.instrument);
  const ok = await confirmDialog({
    title: 'Cancel this order?',
    body: h('p', {}, `${order.side === 'buy' ? 'Buy' : 'Sell'} ${order.quantity} ${instrument?.symbol ?? ''} · ${typeLabel(order)} · ${priceText(order, instrument)}`),
    confirm: 'Cancel the order',
    danger: true,
  });
  if (!ok) return;
  await busy(button, async () => {
    try {
      await del(`/api/v1/accounts/${accountId}/orders/${order.id}`);
      toast(`Cancel requested for order ${order.id}.`, 'ok');
    } catch (e) {
      toast(explain(e), 'error');
    }
  });
}
