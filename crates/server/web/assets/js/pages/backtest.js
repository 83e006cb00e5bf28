// One backtest: its progress while it runs, then the report: metrics,
// equity and drawdown charts, the trades and the setup.

import { reportError, session } from '../app.js';
import { get } from '../api.js';
import { $, fillRows, h, put, td } from '../dom.js';
import { fmtNum, moneyEl, pnlEl, timeEl, words } from '../format.js';
import { Dec } from '../decimal.js';
import { lineChart, toChartTime } from '../charts.js';
import { paramsText } from '../strategy-form.js';

const id = Number(session.data.backtest);
const TRADE_ROWS = 500;

function kpi(label, value, title) {
  return h('div', { class: 'kpi', title }, h('dt', {}, label), h('dd', {}, value));
}

function percentEl(value, { signed = true } = {}) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '–');
  const cls = !signed ? '' : value > 0 ? 'gain' : value < 0 ? 'loss' : 'flat';
  const text = `${signed && value > 0 ? '+' : value < 0 ? '−' : ''}${Math.abs(value).toFixed(2)} %`;
  return h('span', { class: `num ${cls}` }, text);
}

function ratio(value) {
  return value === null || value === undefined ? '–' : value.toFixed(2);
}

function dataText(run) {
  const r = run.request;
  if (r?.data?.candles) return `${r.data.candles.symbol} · ${r.data.candles.interval ?? '1m'} candles`;
  return 'uploaded CSV';
}

async function showReport(run) {
  const report = run.report;
  // The metrics sit at the top level of report.json.
  const m = report;
  const c = '';
  put($('#bt-metrics'),
    kpi('Return', percentEl(m.total_return_pct)),
    kpi('Buy and hold', percentEl(m.buy_and_hold_return_pct), 'Holding the instrument from the first open to the last close, before costs'),
    kpi('Final equity', moneyEl(m.final_equity, c)),
    kpi('CAGR', percentEl(m.cagr_pct)),
    kpi('Max drawdown', percentEl(-Math.abs(m.max_drawdown_pct))),
    kpi('Sharpe', ratio(m.sharpe)),
    kpi('Sortino', ratio(m.sortino)),
    kpi('Win rate', percentEl(m.win_rate_pct, { signed: false })),
    kpi('Profit factor', ratio(m.profit_factor)),
    kpi('Exposure', percentEl(m.exposure_pct, { signed: false })),
    kpi('Trades', String(m.trade_count)),
    kpi('Commissions', moneyEl(m.commissions, c)));
  const curve = report.equity_curve ?? [];
  const equityPoints = curve.map((p) => ({ time: toChartTime(p.time), value: Dec.of(p.equity).toNumber() }));
  const ddPoints = curve.map((p) => ({ time: toChartTime(p.time), value: -Math.abs(p.drawdown_pct) }));
  await lineChart($('#bt-equity'), { series: [{ name: 'equity', area: true, points: equityPoints }], empty: 'No equity points.' });
  await lineChart($('#bt-drawdown'), { series: [{ name: 'drawdown %', colorVar: '--loss', area: true, points: ddPoints }], empty: 'No drawdown.' });
  const trades = report.trades ?? [];
  $('#bt-trades-note').textContent = trades.length > TRADE_ROWS
    ? `The first ${TRADE_ROWS} of ${trades.length} trades; the full report and report.json have them all.`
    : `${trades.length} trade${trades.length === 1 ? '' : 's'}. P&L is net of commissions; an open trade is marked to the last close.`;
  fillRows($('#bt-trades tbody'), trades.slice(0, TRADE_ROWS), (t) => h('tr', {},
    td(h('span', { class: `side-${t.side}` }, t.side === 'buy' ? 'Long' : 'Short')),
    td(fmtNum(t.quantity), { num: true }),
    td(timeEl(t.entry_time)),
    td(fmtNum(t.entry_price), { num: true }),
    td(t.exit_time ? timeEl(t.exit_time) : h('span', { class: 'muted' }, 'open')),
    td(t.exit_price ? fmtNum(t.exit_price) : '–', { num: true }),
    td(pnlEl(t.pnl), { num: true }),
    td(moneyEl(t.commission), { num: true })), 'The strategy made no trades on this data.');
  const s = report.settings;
  const denied = Object.entries(report.orders_denied ?? {}).map(([k, v]) => `${words(k)}: ${v}`).join(', ');
  put($('#bt-setup'),
    kpi('Strategy', report.strategy),
    kpi('Parameters', paramsText(report.params) || 'defaults'),
    kpi('Data', `${report.symbol}: ${fmtNum(String(report.data.bars))} bars`),
    kpi('From', timeEl(report.data.start)),
    kpi('To', timeEl(report.data.end)),
    kpi('Starting cash', moneyEl(report.initial_cash, c)),
    kpi('Commission', s.commission),
    kpi('Sizing', s.sizing),
    kpi('Fills at', s.fill),
    kpi('Slippage (bps)', s.slippage_bps),
    kpi('Close at end', s.close_at_end ? 'yes' : 'no'),
    kpi('Refused orders', denied || 'none'));
  $('#bt-report').hidden = false;
}

async function poll() {
  const run = await get(`/api/v1/backtests/${id}`);
  put($('#bt-title'), `Backtest #${run.id} `, h('span', { class: run.status === 'done' ? 'badge badge-ok' : run.status === 'failed' ? 'badge badge-bad' : 'badge badge-warn', id: 'bt-status' }, run.status));
  put($('#bt-sub'), `${run.request?.strategy ?? ''} ${paramsText(run.request?.params)} · ${dataText(run)} · submitted `, timeEl(run.created));
  $('#bt-again').href = `/backtests?from=${run.id}`;
  $('#bt-compare').href = `/backtests/compare?a=${run.id}`;
  const progressCard = $('#bt-progress-card');
  if (run.status === 'running') {
    progressCard.hidden = false;
    const p = run.progress;
    const pct = p && p.bars ? Math.floor((100 * p.done) / p.bars) : 0;
    $('#bt-progress span').style.width = `${pct}%`;
    $('#bt-progress').setAttribute('aria-valuenow', String(pct));
    $('#bt-progress-text').textContent = !p ? 'Running on another server…'
      : p.queued ? 'Queued: two backtests run at once; this one starts when a slot frees up.'
        : `${fmtNum(String(p.done))} of ${fmtNum(String(p.bars))} bars (${pct} %)`;
    setTimeout(() => poll().catch((e) => reportError('Could not check the backtest', e)), 500);
    return;
  }
  progressCard.hidden = true;
  if (run.status === 'failed') {
    const error = $('#bt-error');
    error.textContent = `The backtest failed: ${run.error ?? 'no reason given'}.`;
    error.hidden = false;
    return;
  }
  const link = $('#bt-html');
  link.href = `/api/v1/backtests/${run.id}/report.html`;
  link.hidden = false;
  await showReport(run);
}

poll().catch((e) => {
  if (e.code === 'not_found') {
    put($('#main'), h('div', { class: 'card empty' }, h('h1', {}, 'No such backtest'), h('p', {}, 'It does not exist, or it is not yours.'), h('p', {}, h('a', { href: '/backtests' }, 'Back to the backtests'))));
  } else {
    reportError('Could not load the backtest', e);
  }
});
