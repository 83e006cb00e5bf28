// Bots: the user's bots with their state (live), starting and stopping
// them, and a form to create one from a built-in strategy.

import { accounts, instruments, live, reportError, session } from '../app.js';
import { explain, get, post } from '../api.js';
import { $, busy, clearErrors, fillRows, formValues, h, showError, td, toast } from '../dom.js';
import { timeEl, words } from '../format.js';
import { Dec } from '../decimal.js';
import { mountStrategyForm, readParams } from '../strategy-form.js';

let bots = [];
let accountNames = new Map();
let strategyList = [];

const STATUS = { running: 'badge badge-ok', failed: 'badge badge-bad', stopped: 'badge' };

function statusBadge(bot) {
  return h('span', { class: STATUS[bot.status] ?? 'badge', title: bot.error ?? '' }, words(bot.status));
}

function row(bot) {
  const running = bot.status === 'running';
  const action = running
    ? h('button', { type: 'button', class: 'btn btn-small', 'data-stop': bot.id, disabled: !session.canTrade, 'aria-label': `Stop ${bot.name}`, onclick: (e) => change(bot, 'stop', e.currentTarget) }, 'Stop')
    : h('button', { type: 'button', class: 'btn btn-small', 'data-start': bot.id, disabled: !session.canTrade, 'aria-label': `Start ${bot.name}`, onclick: (e) => change(bot, 'start', e.currentTarget) }, 'Start');
  return h('tr', { 'data-bot': bot.id },
    td(h('a', { href: `/bots/${bot.id}` }, bot.name)),
    td(bot.strategy),
    td(accountNames.get(bot.account_id) ?? `#${bot.account_id}`),
    td(h('a', { href: `/markets/${bot.symbol}` }, bot.symbol)),
    td(bot.interval),
    td(statusBadge(bot), { cls: 'status' }),
    td(timeEl(bot.started)),
    td(action));
}

function render() {
  fillRows($('#bots-table tbody'), bots, row, session.canTrade
    ? h('span', {}, 'No bots yet. ', h('button', { type: 'button', class: 'btn-link', onclick: openForm }, 'Create one'), ' from a built-in strategy.')
    : 'No bots yet. Your role can view but not run bots.');
}

async function load() {
  bots = await get('/api/v1/bots');
  render();
}

async function change(bot, action, button) {
  await busy(button, async () => {
    try {
      await post(`/api/v1/bots/${bot.id}/${action}`);
      toast(`${bot.name} ${action === 'start' ? 'started' : 'stopped'}.`, 'ok');
      await load();
    } catch (e) {
      toast(explain(e), 'error');
    }
  });
}

// -- the form -------------------------------------------------------------------------

const card = $('#bot-form-card');
const form = $('#bot-form');
const newButton = $('#new-bot');

function openForm() {
  card.hidden = false;
  newButton.setAttribute('aria-expanded', 'true');
  $('#bot-name').focus();
}

newButton.addEventListener('click', () => (card.hidden ? openForm() : closeForm()));
function closeForm() {
  card.hidden = true;
  newButton.setAttribute('aria-expanded', 'false');
  newButton.focus();
}
$('#bot-cancel').addEventListener('click', closeForm);

const sizingKind = $('#bot-sizing');
sizingKind.addEventListener('change', () => {
  $('#bot-sizing-value-field').hidden = sizingKind.value === 'all-in';
  $('#bot-sizing-value').value = sizingKind.value === 'percent' ? '10' : '1';
  $('label[for=bot-sizing-value]').textContent = sizingKind.value === 'percent' ? 'Percent of equity' : 'Units per order';
});

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearErrors(form);
  const v = formValues(form);
  if (!v.name) return showError(form, 'Give the bot a name.', 'name');
  if (!v.account_id) return showError(form, 'Open an account first: bots trade one of your accounts.', 'account_id');
  const parsed = readParams(form, strategyList);
  if (parsed.error) return showError(form, parsed.error.message, parsed.error.field);
  let sizing = 'all-in';
  if (v.sizing_kind !== 'all-in') {
    const amount = Dec.parse(v.sizing_value);
    if (!amount || amount.sign() <= 0) return showError(form, 'Enter a positive amount.', 'sizing_value');
    if (v.sizing_kind === 'percent' && amount.cmp(100) > 0) return showError(form, 'A percentage is at most 100.', 'sizing_value');
    sizing = `${v.sizing_kind}=${amount.toString()}`;
  }
  const warmup = Number(v.warmup_bars || 0);
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > 10000) return showError(form, 'Use 0 to 10,000 candles.', 'warmup_bars');
  const body = {
    name: v.name,
    account_id: Number(v.account_id),
    symbol: v.symbol,
    strategy: v.strategy,
    params: parsed.params,
    interval: v.interval,
    sizing,
    warmup_bars: warmup,
    start: $('#bot-start').checked,
  };
  const button = form.querySelector('button[type=submit]');
  await busy(button, async () => {
    try {
      const bot = await post('/api/v1/bots', body);
      location.assign(`/bots/${bot.id}`);
    } catch (err) {
      // The API names fields as it knows them; the parameter inputs are `param:NAME`.
      const field = err.field === 'params' ? null : err.field;
      showError(form, explain(err), field);
    }
  });
});

// -- start ------------------------------------------------------------------------------

async function start() {
  const [list, lookup] = await Promise.all([accounts(), instruments()]);
  accountNames = new Map(list.map((a) => [a.id, a.name]));
  for (const a of list) $('#bot-account').append(h('option', { value: a.id }, `${a.name} (#${a.id})`));
  for (const i of lookup.list) $('#bot-symbol').append(h('option', { value: i.symbol }, i.symbol));
  strategyList = await mountStrategyForm($('#bot-strategy'), $('#bot-params'), $('#bot-strategy-summary'));
  await load();
  if (new URLSearchParams(location.search).has('new') && session.canTrade) openForm();
  live.subscribe('bots', (m) => {
    if (m.type !== 'bot') return;
    if (['started', 'stopped', 'failed'].includes(m.data.event)) load().catch(() => {});
  });
  live.onReconnect(() => load().catch(() => {}));
}

start().catch((e) => reportError('Could not load the bots', e));
