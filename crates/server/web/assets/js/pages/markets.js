// Markets: every instrument with its latest quote, live.

import { instruments, live, reportError } from '../app.js';
import { get } from '../api.js';
import { $, fillRows, h, td } from '../dom.js';
import { fmtNum, timeEl, words } from '../format.js';
import { Dec, decimalsOf } from '../decimal.js';

const tbody = $('#markets-table tbody');
const firstMid = new Map();
const lastMid = new Map();

function buildRow(instrument) {
  return h('tr', { 'data-symbol': instrument.symbol },
    td(h('a', { href: `/markets/${instrument.symbol}` }, instrument.symbol)),
    td(words(instrument.asset_class)),
    td('–', { num: true, cls: 'bid' }),
    td('–', { num: true, cls: 'ask' }),
    td('–', { num: true, cls: 'spread' }),
    td('–', { num: true, cls: 'move' }),
    td(h('span', { class: 'muted' }, 'waiting'), { cls: 'updated' }),
    td(h('a', { class: 'btn btn-small', href: `/markets/${instrument.symbol}`, 'aria-label': `Trade ${instrument.symbol}` }, 'Trade')));
}

function show(instrument, quote) {
  const tr = tbody.querySelector(`tr[data-symbol="${CSS.escape(instrument.symbol)}"]`);
  if (!tr) return;
  const dp = decimalsOf(instrument.tick_size);
  const bid = Dec.of(quote.bid);
  const ask = Dec.of(quote.ask);
  const mid = bid.add(ask).div(2, dp + 1);
  if (!firstMid.has(instrument.id)) firstMid.set(instrument.id, mid);
  const previous = lastMid.get(instrument.id);
  lastMid.set(instrument.id, mid);
  tr.querySelector('.bid').textContent = fmtNum(bid, dp);
  tr.querySelector('.ask').textContent = fmtNum(ask, dp);
  tr.querySelector('.spread').textContent = fmtNum(ask.sub(bid), dp);
  const move = mid.sub(firstMid.get(instrument.id));
  const cell = tr.querySelector('.move');
  cell.replaceChildren(h('span', { class: move.sign() > 0 ? 'gain' : move.sign() < 0 ? 'loss' : 'flat' }, fmtNum(move, dp, { sign: true })));
  tr.querySelector('.updated').replaceChildren(timeEl(quote.ts, { short: true }));
  if (previous && previous.cmp(mid) !== 0) {
    for (const el of [tr.querySelector('.bid'), tr.querySelector('.ask')]) {
      el.classList.remove('tick-up', 'tick-down');
      el.classList.add(previous.cmp(mid) < 0 ? 'tick-up' : 'tick-down');
    }
  }
}

async function start() {
  const lookup = await instruments();
  fillRows(tbody, lookup.list, buildRow, 'No instruments are configured (see paper.instruments in the configuration).');
  const quotes = await get('/api/v1/quotes');
  for (const q of quotes) {
    const instrument = lookup.byId.get(q.instrument);
    if (instrument) show(instrument, q);
  }
  for (const instrument of lookup.list) {
    live.subscribe(`quotes:${instrument.symbol}`, (m) => show(instrument, m.data));
  }
}

start().catch((e) => reportError('Could not load the markets', e));
