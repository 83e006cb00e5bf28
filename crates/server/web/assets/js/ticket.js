// The order ticket: market, limit, stop and stop-limit orders on one
// instrument of one account. It shows what the order would cost and the
// account's limits, checks everything the server will check (filters,
// cash, limits, kill switches) before sending, asks for confirmation
// (typing the account's name on a live account), and then shows the
// result or the refusal in plain words. The server checks again: it is
// the authority, this only saves a round trip and explains.
//
// On a live account the instrument is one of the account's venue symbols
// (venue.liveInstrument): its steps, minimums, fees and quotes are the
// venue's and not known here, so the ticket checks what it can (positive
// numbers, limits, kill switches, whether the account may trade at all)
// and leaves the rest to the server.

import { explain, isRiskRefusal, post } from './api.js';
import { $, clearErrors, confirmDialog, h, put, showError, toast } from './dom.js';
import { fmtNum, moneyEl, fmtMoney } from './format.js';
import { Dec, decimalsOf } from './decimal.js';
import { isLive } from './app.js';
import { destinationText, isProduction, venueName, whereText } from './venue.js';

const ZERO = Dec.of('0');

/** A decimal typed by a person: `1,5` is read as 1.5 when there is no point. */
export function readDec(text) {
  const t = String(text ?? '').trim().replace(/\s/g, '');
  if (!t) return null;
  const normalized = t.includes('.') ? t.replaceAll(',', '') : t.replace(',', '.');
  const d = Dec.parse(normalized);
  return d && d.s <= 9 ? d : null;
}

function randomId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export class Ticket {
  /**
   * `instrument`: from /api/v1/instruments. Call `setAccount`, `setQuote`,
   * `setPosition` as they become known; `onPlaced(order)` after a success.
   */
  constructor(form, instrument, { onPlaced, onRefused } = {}) {
    this.form = form;
    this.onPlaced = onPlaced;
    // Called when the server says the account may not trade (it changed since the page loaded).
    this.onRefused = onRefused;
    this.account = null;
    this.summary = null;
    this.limits = null;
    this.quote = null;
    this.position = ZERO;
    this.tradingState = 'active';
    this.canTrade = true;
    // While an order is on its way, quotes redraw the ticket but must not re-enable it.
    this.sending = false;
    form.addEventListener('input', () => this.render());
    form.addEventListener('change', () => this.render());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.setInstrument(instrument);
  }

  /** The instrument the ticket orders (a live account's ticket switches between its symbols). */
  setInstrument(instrument) {
    const form = this.form;
    this.instrument = instrument;
    this.quote = null;
    // A venue symbol's steps are not known here: numbers keep their own digits.
    this.tick = instrument.tick_size ? decimalsOf(instrument.tick_size) : undefined;
    this.lot = instrument.lot_size ? decimalsOf(instrument.lot_size) : undefined;
    $('#qty-unit', form).textContent = instrument.base_currency ? `(${instrument.base_currency})` : '(units)';
    $('#qty-hint', form).textContent = instrument.live
      ? `In ${instrument.symbol}’s units at the venue; the venue’s steps and minimum apply.`
      : `Steps of ${instrument.lot_size}, at least ${instrument.min_quantity}.`;
    $('#price-hint', form).textContent = instrument.live
      ? `In ${instrument.symbol}’s quote currency, in the venue’s price steps.`
      : `Steps of ${instrument.tick_size} ${instrument.quote_currency}.`;
    this.render();
  }

  /** `account` as `/api/v1/accounts` lists it (a live one carries `live`). */
  setAccount(account, summary, limits) {
    this.account = account;
    this.summary = summary;
    this.limits = limits;
    this.render();
  }

  setQuote(quote) {
    this.quote = quote;
    this.render();
  }

  setPosition(quantity) {
    this.position = Dec.of(quantity ?? '0');
    this.render();
  }

  setTradingState(state, canTrade) {
    this.tradingState = state;
    this.canTrade = canTrade;
    this.render();
  }

  /** Fills the ticket to close the current position (reduce-only, at market). */
  prefillClose() {
    if (this.position.isZero()) return;
    const f = this.form;
    f.querySelector(`input[name=side][value=${this.position.sign() > 0 ? 'sell' : 'buy'}]`).checked = true;
    f.type.value = 'market';
    f.quantity.value = this.position.abs().toString();
    f.reduce_only.checked = true;
    this.render();
  }

  values() {
    const f = this.form;
    return {
      side: f.querySelector('input[name=side]:checked')?.value ?? 'buy',
      type: f.type.value,
      timeInForce: f.time_in_force.value,
      quantity: f.quantity.value,
      price: f.price.value,
      trigger: f.trigger_price.value,
      reduceOnly: f.reduce_only.checked,
      // Only a GTC limit order can be post-only (the box is hidden otherwise).
      postOnly: f.post_only.checked && f.type.value === 'limit' && f.time_in_force.value === 'GTC',
    };
  }

  /** What the order would be and cost, and every problem with it. */
  evaluate() {
    const v = this.values();
    const i = this.instrument;
    const errors = [];
    const needsPrice = v.type === 'limit' || v.type === 'stop_limit';
    const needsTrigger = v.type === 'stop' || v.type === 'stop_limit';
    const qty = readDec(v.quantity);
    if (v.quantity.trim() === '') errors.push({ field: 'quantity', message: 'Enter a quantity.', blank: true });
    else if (!qty || qty.sign() <= 0) errors.push({ field: 'quantity', message: 'The quantity must be a positive number.' });
    else if (!i.lot_size) {
      // A venue symbol: the venue's steps are checked by the server.
    } else if (!qty.isMultipleOf(i.lot_size)) {
      errors.push({ field: 'quantity', message: `Use steps of ${i.lot_size}: for example ${fmtNum(qty.floorTo(i.lot_size), this.lot)}.` });
    } else if (qty.cmp(i.min_quantity) < 0) errors.push({ field: 'quantity', message: `The smallest quantity is ${i.min_quantity}.` });
    const readPrice = (field, text, label) => {
      if (text.trim() === '') {
        errors.push({ field, message: `Enter a ${label}.`, blank: true });
        return null;
      }
      const p = readDec(text);
      if (!p || p.sign() <= 0) {
        errors.push({ field, message: `The ${label} must be a positive number.` });
        return null;
      }
      if (i.tick_size && !p.isMultipleOf(i.tick_size)) {
        errors.push({ field, message: `Use steps of ${i.tick_size}: for example ${fmtNum(p.floorTo(i.tick_size), this.tick)}.` });
        return null;
      }
      return p;
    };
    const price = needsPrice ? readPrice('price', v.price, 'limit price') : null;
    const trigger = needsTrigger ? readPrice('trigger_price', v.trigger, 'trigger price') : null;
    const bid = this.quote ? Dec.of(this.quote.bid) : null;
    const ask = this.quote ? Dec.of(this.quote.ask) : null;
    // The price the order is expected to trade at.
    let reference = null;
    let taker = true;
    if (v.type === 'market') reference = v.side === 'buy' ? ask : bid;
    else if (v.type === 'stop') reference = trigger;
    else if (price) {
      reference = price;
      const marketable = v.side === 'buy' ? ask && price.cmp(ask) >= 0 : bid && price.cmp(bid) <= 0;
      taker = v.type === 'limit' && Boolean(marketable);
    }
    // A venue symbol's multiplier is not known here: quantity × price, as it is.
    const notional = qty && reference ? qty.mul(reference).mul(i.multiplier ?? '1') : null;
    const feeRate = i.taker_fee ? Dec.of(taker ? i.taker_fee : i.maker_fee) : null;
    const fee = notional && feeRate ? notional.mul(feeRate) : null;
    const signed = qty ? (v.side === 'buy' ? qty : qty.neg()) : ZERO;
    const after = this.position.add(signed);
    const reduces = !this.position.isZero() && this.position.sign() !== signed.sign() && after.abs().cmp(this.position.abs()) <= 0;
    const currency = i.quote_currency;
    const free = currency ? this.summary?.free_cash?.find(([c]) => c === currency)?.[1] : undefined;
    const limits = this.limits;
    if (notional && qty && errors.length === 0 && !i.live) {
      if (notional.cmp(i.min_notional) < 0) {
        errors.push({ field: 'quantity', message: `The order is worth ${fmtMoney(notional, currency)}; the smallest order value is ${fmtMoney(i.min_notional, currency)}.` });
      }
      if (v.side === 'buy' && free !== undefined && !reduces && notional.add(fee).cmp(free) > 0) {
        errors.push({ field: 'quantity', message: `It costs about ${fmtMoney(notional.add(fee), currency)} with fees; the free cash is ${fmtMoney(free, currency)}.` });
      }
      if (limits?.max_order_notional && notional.cmp(limits.max_order_notional) > 0) {
        errors.push({ field: 'quantity', message: `The order is worth ${fmtMoney(notional, currency)}, above this account’s limit of ${fmtMoney(limits.max_order_notional, currency)} per order.` });
      }
    }
    if (qty && errors.length === 0) {
      if (v.side === 'sell' && limits && !limits.allow_short && after.sign() < 0) {
        errors.push({ field: 'quantity', message: `Short selling is off for this account: you hold ${fmtNum(this.position, this.lot)}, so sell at most that.` });
      }
      if (limits?.max_position && !reduces && after.abs().cmp(limits.max_position) > 0) {
        errors.push({ field: 'quantity', message: `The position would be ${fmtNum(after, this.lot)}, above this account’s limit of ${limits.max_position}.` });
      }
      if (v.reduceOnly && !reduces) {
        errors.push({ field: 'reduce_only', message: 'A reduce-only order must be against the position and no larger than it.' });
      }
    }
    if (this.tradingState === 'halted') {
      errors.push({ field: null, message: 'Trading is halted by a kill switch: new orders are refused. Cancels still work.', blocking: true });
    } else if (this.tradingState === 'reducing' && qty && !reduces) {
      errors.push({ field: null, message: 'Only orders that reduce a position are accepted right now (close-only).' });
    }
    // A live account's quotes do not reach the page: the server prices its market orders.
    if (v.type === 'market' && !reference && !i.live) errors.push({ field: null, message: 'There is no quote yet to price a market order; wait a moment.' });
    return { v, qty, price, trigger, reference, notional, fee, taker, after, reduces, errors, currency, free };
  }

  render() {
    const e = this.evaluate();
    const f = this.form;
    const needsPrice = e.v.type === 'limit' || e.v.type === 'stop_limit';
    const needsTrigger = e.v.type === 'stop' || e.v.type === 'stop_limit';
    $('#price-field', f).hidden = !needsPrice;
    $('#trigger-field', f).hidden = !needsTrigger;
    $('#post-only-field', f).hidden = !(e.v.type === 'limit' && e.v.timeInForce === 'GTC');
    const tifHint = $('#tif-hint', f);
    tifHint.hidden = e.v.type !== 'market' || e.v.timeInForce === 'GTC' || e.v.timeInForce === 'IOC';
    tifHint.textContent = 'A market order fills at once against the quote; what cannot fill is cancelled.';
    const c = e.currency;
    const i = this.instrument;
    const rows = i.live ? this.liveRows(e) : [
      ['Expected price', e.reference ? `${fmtNum(e.reference, this.tick)} ${c}${e.v.type === 'market' ? ` (${e.v.side === 'buy' ? 'ask' : 'bid'})` : ''}` : '–'],
      ['Order value', e.notional ? moneyEl(e.notional, c) : '–'],
      [`Fee (${e.taker ? 'taker' : 'maker'}, est.)`, e.fee ? moneyEl(e.fee, c, 4) : '–'],
      [e.v.side === 'buy' ? 'Total cost' : 'Proceeds', e.notional ? moneyEl(e.v.side === 'buy' ? e.notional.add(e.fee) : e.notional.sub(e.fee), c) : '–'],
      [`Free cash (${c})`, e.free !== undefined ? moneyEl(e.free, c) : '–'],
      ['Position now → after', `${fmtNum(this.position, this.lot)} → ${fmtNum(e.after, this.lot)}`],
    ];
    put($('#ticket-summary', f), ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    const l = this.limits;
    const state = { active: 'active', reducing: 'close-only', halted: 'halted' }[this.tradingState] ?? this.tradingState;
    const limitMoney = (m) => fmtMoney(m, c ?? this.account?.base_currency);
    put($('#ticket-limits', f), ...[
      ['Trading', state],
      ['Largest order value', l?.max_order_notional ? limitMoney(l.max_order_notional) : 'no limit'],
      ['Largest position', l?.max_position ?? 'no limit'],
      ['Daily loss limit', l?.daily_loss_limit ? fmtMoney(l.daily_loss_limit, this.account?.base_currency) : 'no limit'],
      ['Short selling', l?.allow_short ? 'allowed' : 'off'],
      ['Min. quantity / value', i.live ? `the venue’s (${venueName(this.account?.venue)})` : `${i.min_quantity} / ${fmtMoney(i.min_notional, c)}`],
    ].flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    const submit = $('#ticket-submit', f);
    submit.className = `btn btn-block ${e.v.side === 'buy' ? 'btn-buy' : 'btn-sell'}`;
    submit.textContent = `Review ${e.v.side === 'buy' ? 'buy' : 'sell'} order`;
    const note = $('#ticket-state', f);
    const live = isLive(this.account) ? this.account.live : null;
    note.className = 'hint';
    if (!this.canTrade) {
      submit.disabled = true;
      note.textContent = 'Your role can view but not trade. Ask an admin for the trader role.';
    } else if (!this.account) {
      submit.disabled = true;
      note.textContent = 'Open an account on the overview page to trade.';
    } else if (isLive(this.account) && !i.live) {
      // A live account trades its venue symbols, not the paper market's.
      submit.disabled = true;
      note.className = 'hint ticket-state-halted';
      put(note, `“${this.account.name}” is a live ${venueName(this.account.venue)} account: it trades ${(live?.symbols ?? []).join(', ') || 'its own symbols'} at the venue, not this simulated instrument. `,
        h('a', { href: `/accounts/${this.account.id}#trade` }, 'Trade it from its account page'), '.');
    } else if (live && !live.trading) {
      submit.disabled = true;
      note.className = 'hint ticket-state-halted';
      note.textContent = `Not sent to the venue: ${live.reason ?? 'this account may not trade now'}.`;
    } else if (this.tradingState === 'halted') {
      submit.disabled = true;
      note.textContent = 'Trading is halted by a kill switch: new orders are refused.';
      note.className = 'hint ticket-state-halted';
    } else {
      submit.disabled = this.sending;
      note.textContent = isLive(this.account)
        ? `LIVE account “${this.account.name}”: orders go to ${destinationText(this.account)}.`
        : `Paper account “${this.account.name}”: simulated money.`;
    }
    return e;
  }

  /** The summary of an order on a venue symbol: what is known before the venue prices it. */
  liveRows(e) {
    const free = (this.summary?.free_cash ?? []).filter(([, m]) => !Dec.of(m).isZero());
    const price = e.v.type === 'market' ? 'the venue’s market price' : e.reference ? fmtNum(e.reference) : '–';
    return [
      ['Price', price],
      ['Quantity × price', e.notional ? fmtNum(e.notional, 2) : '–'],
      ['Fee', `charged by ${venueName(this.account?.venue ?? 'the venue')}`],
      ['Free cash', free.length ? free.map(([cur, m]) => fmtMoney(m, cur)).join(' · ') : '–'],
      ['Position now → after', `${fmtNum(this.position, this.lot)} → ${fmtNum(e.after, this.lot)}`],
    ];
  }

  async submit() {
    const f = this.form;
    clearErrors(f);
    const e = this.render();
    if (e.errors.length) {
      // The first problem at its field; the rest as one line.
      const [first, ...rest] = e.errors;
      showError(f, first.message, first.field);
      if (rest.length && first.field) showError(f, rest.map((r) => r.message).join(' '), null);
      return;
    }
    const { v } = e;
    const i = this.instrument;
    const kind = { market: 'at market', limit: `limit ${fmtNum(e.price, this.tick)}`, stop: `stop at ${fmtNum(e.trigger, this.tick)}`, stop_limit: `stop ${fmtNum(e.trigger, this.tick)} → limit ${fmtNum(e.price, this.tick)}` }[v.type];
    const live = isLive(this.account);
    const warning = !live ? false : isProduction(this.account)
      ? `This is a LIVE account: the order goes to ${whereText(this.account)} with real money.`
      : `This is a LIVE account: the order goes to ${whereText(this.account)}, the venue’s test system.`;
    const ok = await confirmDialog({
      title: `${v.side === 'buy' ? 'Buy' : 'Sell'} ${fmtNum(e.qty, this.lot)} ${i.symbol} ${kind}?`,
      body: h('dl', { class: 'ticket-summary' },
        h('dt', {}, 'Account'), h('dd', {}, `${this.account.name} (${live ? `LIVE · ${whereText(this.account)}` : 'paper'})`),
        h('dt', {}, 'Time in force'), h('dd', {}, v.timeInForce),
        i.live
          ? [h('dt', {}, 'Quantity × price'), h('dd', {}, e.notional ? fmtNum(e.notional, 2) : 'at the venue’s price')]
          : [h('dt', {}, 'Order value'), h('dd', {}, e.notional ? moneyEl(e.notional, e.currency) : '–'),
            h('dt', {}, 'Fee (est.)'), h('dd', {}, e.fee ? moneyEl(e.fee, e.currency, 4) : '–')],
        v.reduceOnly ? [h('dt', {}, 'Reduce-only'), h('dd', {}, 'yes')] : null),
      confirm: `${v.side === 'buy' ? 'Buy' : 'Sell'} ${i.symbol}`,
      live: warning,
      requireText: live ? this.account.name : null,
    });
    if (!ok) return;
    const body = {
      client_order_id: randomId(),
      symbol: i.symbol,
      side: v.side,
      type: v.type,
      quantity: e.qty.toString(),
      time_in_force: v.timeInForce,
      reduce_only: v.reduceOnly,
    };
    if (v.postOnly) body.post_only = true;
    if (e.price) body.price = e.price.toString();
    if (e.trigger) body.trigger_price = e.trigger.toString();
    this.sending = true;
    $('#ticket-submit', f).disabled = true;
    const result = $('#ticket-result');
    try {
      const order = await post(`/api/v1/accounts/${this.account.id}/orders`, body);
      put(result, h('div', { class: 'result-box ok', role: 'status' },
        h('strong', {}, `Order ${order.id} placed.`), ' ',
        `${order.side === 'buy' ? 'Buy' : 'Sell'} ${fmtNum(order.quantity, this.lot)} ${i.symbol} ${kind}; it shows below as it fills.`));
      toast(`Order ${order.id} placed: ${order.side} ${order.quantity} ${i.symbol}.`, 'ok');
      f.quantity.value = '';
      f.reduce_only.checked = false;
      this.onPlaced?.(order);
    } catch (err) {
      const words = explain(err);
      // A live account that may not trade: the server's reason, as it gave it.
      const gated = err.code === 'trading_not_allowed';
      put(result, h('div', { class: 'result-box refused', role: 'alert', 'data-code': err.code ?? null },
        h('strong', {}, isRiskRefusal(err) ? 'Order refused. ' : gated ? 'Not sent: this account may not trade. ' : 'Not sent. '), words));
      if (err.field && err.code === 'validation_failed') showError(f, words, err.field);
      if (gated) this.onRefused?.(err);
    } finally {
      this.sending = false;
      this.render();
    }
  }
}
