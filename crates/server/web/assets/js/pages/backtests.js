// Backtests: a form to run one (strategy, parameters, stored candles or an
// uploaded CSV, settings), and the list of runs with their headline
// figures, progress while they run, and picking two to compare.

import { instruments, reportError, session } from '../app.js';
import { explain, get, post } from '../api.js';
import { $, $$, busy, clearErrors, fillRows, formValues, h, showError, td } from '../dom.js';
import { fmtNum, timeEl } from '../format.js';
import { Dec } from '../decimal.js';
import { mountStrategyForm, paramsText, readParams } from '../strategy-form.js';

const form = $('#backtest-form');
const card = $('#backtest-form-card');
const maxUpload = Number(session.data.maxUpload) || 1024 * 1024;
let strategyList = [];
let runs = [];
const selected = new Set();

// -- the form ---------------------------------------------------------------------------

$('#new-backtest').addEventListener('click', (e) => {
  card.hidden = !card.hidden;
  e.currentTarget.setAttribute('aria-expanded', String(!card.hidden));
  if (!card.hidden) $('#bt-strategy').focus();
});

for (const radio of $$('input[name=source]', form)) {
  radio.addEventListener('change', () => {
    const csv = form.source.value === 'csv';
    $('#csv-fields').hidden = !csv;
    $('#candles-fields').hidden = csv;
  });
}

$('#bt-sizing').addEventListener('change', (e) => {
  const kind = e.currentTarget.value;
  $('#bt-sizing-value-field').hidden = kind === 'all-in';
  $('label[for=bt-sizing-value]').textContent = kind === 'percent' ? 'Percent of equity' : 'Units per order';
});

/** A `datetime-local` value (the user's time) as an ISO instant, or undefined. */
function instant(value) {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsText(file);
  });
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearErrors(form);
  const v = formValues(form);
  const parsed = readParams(form, strategyList);
  if (parsed.error) return showError(form, parsed.error.message, parsed.error.field);
  const settings = { close_at_end: $('#bt-close-at-end').checked, fill: v.fill };
  for (const field of ['cash', 'commission', 'slippage_bps', 'lot_size']) {
    if (v[field] === '') continue;
    if (!Dec.parse(v[field])) return showError(form, 'Enter a number.', field);
    settings[field] = v[field];
  }
  if (v.sizing_kind === 'all-in') settings.sizing = 'all-in';
  else {
    const amount = Dec.parse(v.sizing_value);
    if (!amount || amount.sign() <= 0) return showError(form, 'Enter a positive amount.', 'sizing_value');
    settings.sizing = `${v.sizing_kind}=${amount.toString()}`;
  }
  let data;
  if (form.source.value === 'csv') {
    const file = $('#bt-csv').files[0];
    if (!file) return showError(form, 'Choose a CSV file of bars.', 'csv');
    if (file.size > maxUpload - 16 * 1024) {
      return showError(form, `The file is ${fmtNum(String(file.size))} bytes; the server takes about ${fmtNum(String(maxUpload - 16 * 1024))} at most. Use fewer bars or a longer interval.`, 'csv');
    }
    data = { csv: await readFile(file) };
    settings.symbol = file.name.replace(/\.csv$/i, '').slice(0, 32) || 'upload';
  } else {
    const from = instant(v.from);
    const to = instant(v.to);
    if (from === null) return showError(form, 'Enter a valid start time.', 'from');
    if (to === null) return showError(form, 'Enter a valid end time.', 'to');
    if (from && to && from >= to) return showError(form, 'The end must be after the start.', 'to');
    data = { candles: { symbol: v.symbol, interval: v.interval, from, to } };
  }
  const button = form.querySelector('button[type=submit]');
  await busy(button, async () => {
    try {
      const accepted = await post('/api/v1/backtests', { strategy: v.strategy, params: parsed.params, data, settings });
      location.assign(`/backtests/${accepted.id}`);
    } catch (err) {
      // Map the API's field names onto this form's inputs.
      const fields = { 'data.csv': 'csv', 'data.candles.symbol': 'symbol', 'data.candles.interval': 'interval', 'data.candles.from': 'from', 'data.candles.to': 'to', 'data.candles': 'from' };
      let field = fields[err.field] ?? (err.field?.startsWith('settings.') ? err.field.slice(9) : null);
      if (field === 'sizing') field = 'sizing_kind';
      showError(form, explain(err), field);
    }
  });
});

/** `?from=ID`: the form starts from an earlier run's request. */
async function prefill(id) {
  const run = await get(`/api/v1/backtests/${id}`);
  const r = run.request;
  $('#bt-strategy').value = r.strategy;
  $('#bt-strategy').dispatchEvent(new Event('change'));
  for (const [name, value] of Object.entries(r.params ?? {})) {
    const input = form.elements[`param:${name}`];
    if (!input) continue;
    if (input.type === 'checkbox') input.checked = value === true || value === 'true';
    else input.value = value;
  }
  const s = r.settings ?? {};
  for (const field of ['cash', 'commission', 'slippage_bps', 'lot_size']) if (s[field] !== undefined) form.elements[field].value = s[field];
  if (s.fill) form.fill.value = s.fill;
  if (s.close_at_end !== undefined) $('#bt-close-at-end').checked = s.close_at_end;
  if (s.sizing) {
    const [kind, amount] = s.sizing.split('=');
    form.sizing_kind.value = kind;
    form.sizing_kind.dispatchEvent(new Event('change'));
    if (amount) form.sizing_value.value = amount;
  }
  if (r.data?.candles) {
    form.symbol.value = r.data.candles.symbol;
    form.interval.value = r.data.candles.interval ?? '1m';
  }
}

// -- the runs ----------------------------------------------------------------------------

function dataText(request) {
  if (request?.data?.candles) return `${request.data.candles.symbol} ${request.data.candles.interval ?? '1m'}`;
  if (request?.data?.csv !== undefined) return `CSV (${request.settings?.symbol ?? 'upload'})`;
  return '–';
}

function statusCell(run) {
  if (run.status === 'running') {
    const p = run.progress;
    if (p?.queued) return h('span', { class: 'badge badge-warn' }, 'queued');
    const pct = p && p.bars ? Math.floor((100 * p.done) / p.bars) : 0;
    return h('span', { class: 'badge badge-warn' }, `running ${pct} %`);
  }
  if (run.status === 'failed') return h('span', { class: 'badge badge-bad', title: run.error ?? '' }, 'failed');
  return h('span', { class: 'badge badge-ok' }, 'done');
}

function percent(value) {
  if (value === null || value === undefined) return '–';
  return `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(2)} %`;
}

function row(run) {
  const m = run.report;
  const box = h('input', {
    type: 'checkbox',
    'aria-label': `Select run ${run.id} to compare`,
    checked: selected.has(run.id),
    disabled: run.status !== 'done',
    onchange: (e) => {
      if (e.currentTarget.checked) selected.add(run.id);
      else selected.delete(run.id);
      $('#compare-selected').disabled = selected.size !== 2;
    },
  });
  return h('tr', { 'data-run': run.id },
    td(box),
    td(h('a', { href: `/backtests/${run.id}` }, `#${run.id}`)),
    td(h('span', {}, run.request?.strategy ?? '–', h('br'), h('span', { class: 'small muted' }, paramsText(run.request?.params)))),
    td(dataText(run.request)),
    td(statusCell(run)),
    td(m ? h('span', { class: m.total_return_pct > 0 ? 'gain' : m.total_return_pct < 0 ? 'loss' : 'flat' }, percent(m.total_return_pct)) : '–', { num: true }),
    td(m ? m.sharpe.toFixed(2) : '–', { num: true }),
    td(m ? `${m.max_drawdown_pct.toFixed(2)} %` : '–', { num: true }),
    td(m ? String(m.trade_count) : '–', { num: true }),
    td(timeEl(run.created)));
}

async function load() {
  runs = await get('/api/v1/backtests');
  fillRows($('#runs-table tbody'), runs, row, 'No backtests yet. Fill in the form above and run one.');
  // Poll while anything runs.
  if (runs.some((r) => r.status === 'running')) setTimeout(() => load().catch(() => {}), 1000);
}

$('#compare-selected').addEventListener('click', () => {
  const [a, b] = [...selected].sort((x, y) => x - y);
  location.assign(`/backtests/compare?a=${a}&b=${b}`);
});

async function start() {
  const lookup = await instruments();
  for (const i of lookup.list) $('#bt-symbol').append(h('option', { value: i.symbol }, i.symbol));
  strategyList = await mountStrategyForm($('#bt-strategy'), $('#bt-params'), $('#bt-strategy-summary'));
  const from = new URLSearchParams(location.search).get('from');
  if (from) await prefill(from).catch((e) => reportError('Could not load that run', e));
  if (!session.canTrade) {
    card.hidden = true;
    $('#new-backtest').setAttribute('aria-expanded', 'false');
  }
  await load();
}

start().catch((e) => reportError('Could not load the backtests', e));
