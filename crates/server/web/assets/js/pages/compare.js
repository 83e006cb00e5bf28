// Two backtests side by side: their results with the difference, and their
// return and drawdown curves on shared charts.

import { reportError } from '../app.js';
import { get } from '../api.js';
import { $, h, put, td } from '../dom.js';
import { Dec } from '../decimal.js';
import { lineChart, toChartTime } from '../charts.js';
import { paramsText } from '../strategy-form.js';

const query = new URLSearchParams(location.search);
let runs = [];
let equityChart = null;
let drawdownChart = null;

/** [label, value of a report, higher is better, unit]. */
const MEASURES = [
  ['Return', (r) => r.total_return_pct, true, '%'],
  ['Buy and hold', (r) => r.buy_and_hold_return_pct, null, '%'],
  ['CAGR', (r) => r.cagr_pct, true, '%'],
  ['Max drawdown', (r) => r.max_drawdown_pct, false, '%'],
  ['Sharpe', (r) => r.sharpe, true, ''],
  ['Sortino', (r) => r.sortino, true, ''],
  ['Win rate', (r) => r.win_rate_pct, true, '%'],
  ['Profit factor', (r) => r.profit_factor, true, ''],
  ['Exposure', (r) => r.exposure_pct, null, '%'],
  ['Trades', (r) => r.trade_count, null, ''],
  ['Final equity', (r) => Dec.of(r.final_equity).toNumber(), true, ''],
];

function show(value, unit) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  const digits = unit === '%' || !Number.isInteger(value) ? 2 : 0;
  // Compounding over short synthetic data can give absurd figures: keep them readable.
  const body = Math.abs(value) >= 1e9 ? Math.abs(value).toExponential(2) : Math.abs(value).toFixed(digits);
  return `${value < 0 ? '−' : ''}${body}${unit ? ` ${unit}` : ''}`;
}

function label(run) {
  return `#${run.id} ${run.request?.strategy ?? ''}`;
}

/** Equity as a percentage return, so runs with different cash compare. */
function returns(run) {
  const curve = run.report.equity_curve ?? [];
  const start = Dec.of(run.report.initial_cash).toNumber() || 1;
  return curve.map((p) => ({ time: toChartTime(p.time), value: (Dec.of(p.equity).toNumber() / start - 1) * 100 }));
}

function drawdowns(run) {
  return (run.report.equity_curve ?? []).map((p) => ({ time: toChartTime(p.time), value: -Math.abs(p.drawdown_pct) }));
}

async function compare() {
  const a = runs.find((r) => r.id === Number($('#cmp-a').value));
  const b = runs.find((r) => r.id === Number($('#cmp-b').value));
  const ready = a && b && a.id !== b.id;
  $('#cmp-empty').hidden = Boolean(ready);
  $('#cmp-body').hidden = !ready;
  if (!ready) return;
  history.replaceState(null, '', `/backtests/compare?a=${a.id}&b=${b.id}`);
  const [ra, rb] = await Promise.all([get(`/api/v1/backtests/${a.id}`), get(`/api/v1/backtests/${b.id}`)]);
  put($('#cmp-head-a'), h('a', { href: `/backtests/${ra.id}` }, `A: ${label(ra)}`));
  put($('#cmp-head-b'), h('a', { href: `/backtests/${rb.id}` }, `B: ${label(rb)}`));
  const rows = [
    h('tr', {}, td('Parameters'), td(paramsText(ra.request.params) || 'defaults', { num: true }), td(paramsText(rb.request.params) || 'defaults', { num: true }), td('')),
    h('tr', {}, td('Data'), td(`${ra.report.symbol}, ${ra.report.data.bars} bars`, { num: true }), td(`${rb.report.symbol}, ${rb.report.data.bars} bars`, { num: true }), td('')),
    ...MEASURES.map(([name, get, higherBetter, unit]) => {
      const va = get(ra.report);
      const vb = get(rb.report);
      const diff = va !== null && va !== undefined && vb !== null && vb !== undefined ? vb - va : null;
      let cls = '';
      if (diff && higherBetter !== null) cls = (diff > 0) === higherBetter ? 'diff-better' : 'diff-worse';
      const word = cls === 'diff-better' ? ' (B better)' : cls === 'diff-worse' ? ' (B worse)' : '';
      return h('tr', {}, td(name), td(show(va, unit), { num: true }), td(show(vb, unit), { num: true }),
        td(diff === null ? '–' : `${diff > 0 ? '+' : ''}${show(diff, unit)}${word}`, { num: true, cls }));
    }),
  ];
  put($('#cmp-table tbody'), ...rows);
  const series = (fn, name) => [
    { name: `A ${name}`, colorVar: '--accent', points: fn(ra) },
    { name: `B ${name}`, colorVar: '--compare-b', points: fn(rb) },
  ];
  equityChart?.remove();
  drawdownChart?.remove();
  equityChart = await lineChart($('#cmp-equity'), { series: series(returns, 'return') });
  drawdownChart = await lineChart($('#cmp-drawdown'), { series: series(drawdowns, 'drawdown') });
}

async function start() {
  runs = (await get('/api/v1/backtests')).filter((r) => r.status === 'done');
  const options = () => [h('option', { value: '' }, 'Pick a run'), ...runs.map((r) => h('option', { value: r.id }, label(r)))];
  put($('#cmp-a'), ...options());
  put($('#cmp-b'), ...options());
  $('#cmp-a').value = query.get('a') ?? '';
  $('#cmp-b').value = query.get('b') ?? '';
  if (!runs.length) {
    $('#cmp-empty').textContent = 'No finished backtests yet. Run two from the backtests page, then compare them here.';
  }
  $('#compare-form').addEventListener('change', () => compare().catch((e) => reportError('Could not compare', e)));
  await compare();
}

start().catch((e) => reportError('Could not load the backtests', e));
