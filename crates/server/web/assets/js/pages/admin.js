// Administration: system health, the global and per-account kill
// switches, users (invite, role, disable), background jobs and backups,
// and the audit log.

import { reportError, session, onTrading } from '../app.js';
import { explain, get, patch, post, put as putJson } from '../api.js';
import { $, $$, busy, clearErrors, confirmDialog, copyText, fillRows, h, mountTabs, put, showError, td, toast } from '../dom.js';
import { timeEl } from '../format.js';

const SWITCH_WORDS = { active: 'active', reducing: 'close-only', halted: 'halted' };
const SWITCH_BADGE = { active: 'badge badge-ok', reducing: 'badge badge-warn', halted: 'badge badge-bad' };
let users = [];
let refreshTimer = null;

// -- health -------------------------------------------------------------------------------

function card(title, status, lines) {
  return h('section', { class: 'card', 'aria-label': title },
    h('h2', {}, title, ' ', status),
    h('dl', { class: 'ticket-summary' }, lines.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
}

function ok(good, text) {
  return h('span', { class: good ? 'badge badge-ok' : 'badge badge-bad' }, text ?? (good ? 'ok' : 'problem'));
}

async function loadHealth() {
  const health = await get('/api/v1/admin/health');
  const db = health.database;
  const j = health.journal;
  const w = health.work;
  const feedBad = health.feed.filter((f) => f.status !== 'live').length;
  put($('#health'),
    card('Server', ok(true, 'up'), [['Version', health.version], ['Up for', duration(health.uptime_seconds)], ['Trading', SWITCH_WORDS[health.global_trading_state]]]),
    card('Database', ok(db.reachable, db.reachable ? 'reachable' : 'unreachable'), [
      ['Backend', db.backend],
      ['Round trip', db.ping_ms === null ? '–' : `${db.ping_ms.toFixed(2)} ms`],
      ['Migrations pending', db.migrations_pending ?? '–'],
      ...(db.error ? [['Error', db.error]] : []),
    ]),
    card('Journal', ok(j.queued_commits < 1000 && j.failed_batches === 0, j.failed_batches ? 'failed writes' : 'ok'), [
      ['Waiting to be written', `${j.queued_commits} commits`],
      ['Last batch', `${j.last_batch_ms.toFixed(2)} ms`],
      ['Average batch', `${j.average_batch_ms.toFixed(2)} ms`],
      ['Written', `${j.commits} commits, ${j.events} events`],
      ['Failed batches', String(j.failed_batches)],
    ]),
    card('Background work', ok(w.jobs_dead === 0, w.jobs_dead ? `${w.jobs_dead} dead job${w.jobs_dead === 1 ? '' : 's'}` : 'ok'), [
      ['Accounts running', String(w.accounts_running)],
      ['Bots running', String(w.bots_running)],
      ['Backtests running', String(w.backtests_running)],
      ['Backtests queued', String(w.backtests_queued)],
      ['Jobs queued', String(w.jobs_queued)],
      ['Jobs running', String(w.jobs_running)],
      ['Dead jobs', String(w.jobs_dead)],
    ]),
    card('Market feed', ok(feedBad === 0, feedBad ? `${feedBad} not live` : 'live'), [['Instruments', String(health.feed.length)]]));
  fillRows($('#feed-table tbody'), health.feed, (f) => h('tr', {},
    td(f.symbol),
    td(h('span', { class: f.status === 'live' ? 'badge badge-ok' : 'badge badge-bad' }, f.status)),
    td(timeEl(f.last_quote)),
    td(f.age_seconds === null ? '–' : `${f.age_seconds.toFixed(1)} s`, { num: true })), 'No instruments.');
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400);
  const hrs = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d ? `${d} d ${hrs} h` : hrs ? `${hrs} h ${m} min` : `${m} min ${seconds % 60} s`;
}

// -- kill switches ----------------------------------------------------------------------------

function showGlobal(state) {
  const badge = $('#global-state');
  badge.className = SWITCH_BADGE[state] ?? 'badge';
  badge.textContent = SWITCH_WORDS[state] ?? state;
}

for (const button of $$('button[data-global]')) {
  button.addEventListener('click', async () => {
    const state = button.dataset.global;
    const confirmed = await confirmDialog({
      title: state === 'halted' ? 'Halt all trading?' : state === 'reducing' ? 'Allow only closing orders?' : 'Resume trading?',
      body: h('p', {}, state === 'halted'
        ? 'Every account, including live ones and every bot, stops placing new orders at once. Traders see a banner. Cancels still work.'
        : state === 'reducing'
          ? 'Every account may only reduce its positions until you resume trading.'
          : 'Every account may trade again (accounts halted on their own stay halted).'),
      confirm: state === 'halted' ? 'Halt trading' : state === 'reducing' ? 'Close-only' : 'Resume trading',
      danger: state !== 'active',
    });
    if (!confirmed) return;
    await busy(button, async () => {
      try {
        const answer = await putJson('/api/v1/kill-switch', { state });
        showGlobal(answer.state);
        toast(`Trading is now ${SWITCH_WORDS[answer.state]} for ${answer.accounts} account${answer.accounts === 1 ? '' : 's'}.`, 'ok');
      } catch (err) {
        toast(explain(err), 'error');
      }
    });
  });
}

async function loadAccounts() {
  const accounts = await get('/api/v1/admin/accounts');
  fillRows($('#admin-accounts tbody'), accounts, (a) => {
    const select = h('select', { 'aria-label': `Kill switch of ${a.name}`, disabled: a.trading_state === null },
      ...['active', 'reducing', 'halted'].map((s) => h('option', { value: s, selected: s === a.trading_state }, SWITCH_WORDS[s])));
    select.addEventListener('change', async () => {
      const state = select.value;
      const confirmed = await confirmDialog({ title: `Set “${a.name}” to ${SWITCH_WORDS[state]}?`, body: h('p', {}, `Owner: ${a.owner?.username ?? 'none'}. This applies to its owner and bots.`), confirm: 'Set it', danger: state !== 'active' });
      if (!confirmed) {
        select.value = a.trading_state;
        return;
      }
      try {
        await putJson(`/api/v1/accounts/${a.id}/kill-switch`, { state });
        a.trading_state = state;
        toast(`“${a.name}” is now ${SWITCH_WORDS[state]}.`, 'ok');
        await loadAccounts();
      } catch (err) {
        toast(explain(err), 'error');
        select.value = a.trading_state;
      }
    });
    return h('tr', { 'data-account': a.id },
      td(`${a.name} (#${a.id})`),
      td(a.owner?.username ?? h('span', { class: 'muted' }, 'none')),
      td(a.venue === 'paper' ? 'paper' : h('span', { class: 'badge badge-live' }, `LIVE ${a.venue}`)),
      td(a.trading_state === null ? h('span', { class: 'muted' }, 'not running') : h('span', { class: SWITCH_BADGE[a.trading_state] }, SWITCH_WORDS[a.trading_state])),
      td(select));
  }, 'No accounts yet.');
}

// -- users ------------------------------------------------------------------------------

async function loadUsers() {
  users = await get('/api/v1/users');
  fillRows($('#users-table tbody'), users, (u) => {
    const self = u.username === session.user;
    const role = h('select', { 'aria-label': `Role of ${u.username}`, disabled: self },
      ...['viewer', 'trader', 'admin'].map((r) => h('option', { value: r, selected: r === u.role }, r)));
    role.addEventListener('change', () => change(u, { role: role.value }, () => { role.value = u.role; }));
    const toggle = h('button', { type: 'button', class: `btn btn-small${u.disabled ? '' : ' btn-danger'}`, disabled: self, 'data-toggle-user': u.username },
      u.disabled ? 'Enable' : 'Disable');
    toggle.addEventListener('click', () => change(u, { disabled: !u.disabled }));
    return h('tr', { 'data-user': u.username },
      td(h('span', {}, u.username, self ? h('span', { class: 'muted small' }, ' (you)') : null)),
      td(role),
      td(h('span', {}, u.disabled ? h('span', { class: 'badge badge-bad' }, 'disabled') : h('span', { class: 'badge badge-ok' }, 'enabled'),
        u.password_change_required ? h('span', { class: 'badge badge-warn' }, ' invited') : null)),
      td(timeEl(u.created_at)),
      td(toggle));
  }, 'No users.');
}

async function change(user, body, undo = () => {}) {
  const what = body.role ? `make ${user.username} ${body.role === 'admin' ? 'an admin' : `a ${body.role}`}` : body.disabled ? `disable ${user.username} (their sessions end and tokens stop working)` : `enable ${user.username}`;
  const confirmed = await confirmDialog({ title: 'Change this user?', body: h('p', {}, `This will ${what}.`), confirm: 'Change', danger: Boolean(body.disabled) });
  if (!confirmed) {
    undo();
    return;
  }
  try {
    await patch(`/api/v1/users/${user.id}`, body);
    toast('User changed.', 'ok');
  } catch (err) {
    toast(explain(err), 'error');
    undo();
  }
  await loadUsers();
}

const inviteForm = $('#invite-form');
inviteForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearErrors(inviteForm);
  const username = inviteForm.username.value.trim();
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(username)) return showError(inviteForm, 'Use 1 to 64 letters, digits, dots, dashes or underscores.', 'username');
  await busy(inviteForm.querySelector('button[type=submit]'), async () => {
    try {
      const created = await post('/api/v1/users', { username, role: inviteForm.role.value });
      const copy = h('button', { type: 'button', class: 'btn btn-small' }, 'Copy');
      copy.addEventListener('click', async () => {
        copy.textContent = (await copyText(created.one_time_password)) ? 'Copied' : 'Select and copy it by hand';
      });
      put($('#invite-result'), h('div', { class: 'secret-box', role: 'status' },
        h('strong', {}, `${created.username}’s one-time password:`), h('code', { id: 'invite-password' }, created.one_time_password), copy,
        h('span', { class: 'small' }, `Shown only now. They sign in at ${location.origin}/login and choose their own.`)));
      inviteForm.reset();
      await loadUsers();
    } catch (err) {
      showError(inviteForm, explain(err), err.field);
    }
  });
});

// -- jobs and backups ------------------------------------------------------------------

const JOB_BADGE = { queued: 'badge', running: 'badge badge-warn', done: 'badge badge-ok', dead: 'badge badge-bad' };
const JOB_WORDS = {
  reconcile: 'Reconcile with venues',
  equity_daily: 'Daily equity',
  candle_rollup: 'Candle roll-ups',
  retention: 'Data retention',
  backup: 'Backup',
  backup_verify: 'Verify latest backup',
};
let jobsNext = null;
let jobRows = [];
let backupsConfigured = false;

function jobBadge(job) {
  return h('span', { class: JOB_BADGE[job.status] ?? 'badge' }, job.status === 'dead' ? 'dead letter' : job.status);
}

// A finished job's result in a few words; an error as it is.
function outcome(job) {
  if (job.status === 'dead' || (job.last_error && job.status !== 'done')) return h('span', { class: 'small text-bad' }, job.last_error ?? '');
  if (!job.result) return '';
  return h('span', { class: 'small' }, detailText(job.result));
}

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

async function runNow(job, button) {
  await busy(button, async () => {
    try {
      const { id } = await post('/api/v1/admin/jobs', { kind: job });
      toast(`${JOB_WORDS[job] ?? job} is queued as job ${id}.`, 'ok');
      await loadJobsTab();
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
}

async function loadSchedules() {
  const schedules = await get('/api/v1/admin/schedules');
  fillRows($('#schedules-table tbody'), schedules, (s) => {
    const run = h('button', { type: 'button', class: 'btn btn-small', 'data-run': s.job }, 'Run now');
    run.addEventListener('click', () => runNow(s.job, run));
    return h('tr', { 'data-schedule': s.job },
      td(JOB_WORDS[s.job] ?? s.job),
      td(h('code', {}, s.schedule)),
      td(s.next_run ? timeEl(s.next_run) : '–'),
      td(s.last ? timeEl(s.last.finished ?? s.last.run_at) : h('span', { class: 'muted' }, 'never')),
      td(s.last ? jobBadge(s.last) : ''),
      td(run));
  }, 'No schedules: every job is turned off in the configuration.');
}

async function loadJobs(more = false) {
  const params = new URLSearchParams({ limit: '50' });
  const status = $('#job-status').value;
  if (status) params.set('status', status);
  if (more && jobsNext) params.set('before', jobsNext);
  const page = await get(`/api/v1/admin/jobs?${params}`);
  jobRows = more ? jobRows.concat(page.items) : page.items;
  jobsNext = page.next_before ?? null;
  fillRows($('#jobs-table tbody'), jobRows, (j) => {
    let retry = '';
    if (j.status === 'dead') {
      retry = h('button', { type: 'button', class: 'btn btn-small', 'data-retry': j.id }, 'Retry');
      retry.addEventListener('click', () => busy(retry, async () => {
        try {
          await post(`/api/v1/admin/jobs/${j.id}/retry`, {});
          toast(`Job ${j.id} is queued again.`, 'ok');
          await loadJobsTab();
        } catch (err) {
          toast(explain(err), 'error');
        }
      }));
    }
    return h('tr', { 'data-job': j.id },
      td(String(j.id), { num: true }),
      td(JOB_WORDS[j.kind] ?? j.kind),
      td(jobBadge(j)),
      td(`${j.attempts}/${j.max_attempts}`, { num: true }),
      td(j.status === 'dead' || j.status === 'done' ? '–' : timeEl(j.run_at)),
      td(j.finished ? timeEl(j.finished) : '–'),
      td(h('span', { class: 'small' }, j.locked_by ?? '–')),
      td(outcome(j), { cls: 'wrap' }),
      td(retry));
  }, status === 'dead' ? 'No dead letters.' : 'No jobs.');
  $('#jobs-more').hidden = jobsNext === null;
}

async function loadBackups() {
  const list = await get('/api/v1/admin/backups');
  backupsConfigured = list.configured;
  // The error names the target's own complaint (a path, an S3 status).
  $('#backup-target').textContent = !list.configured
    ? 'No backup target is configured: set backup.target and backup.key (docs/operations.md).'
    : list.error
      ? `${list.target ? `${list.target}: ` : ''}${list.error}`
      : `Target: ${list.target}`;
  $('#backup-target').className = list.error ? 'text-bad' : 'muted';
  fillRows($('#backups-table tbody'), list.backups, (b) => h('tr', { 'data-backup': b.name },
    td(h('code', {}, b.name)),
    td(b.created ? timeEl(b.created) : '–'),
    td(bytes(b.bytes), { num: true }),
    td(b.rows === null ? '–' : String(b.rows), { num: true }),
    td(b.backend ?? '–'),
    td(b.error ? h('span', { class: 'badge badge-bad', title: b.error }, 'unreadable') : h('span', { class: 'badge badge-ok' }, 'signed'))),
  !list.configured ? 'Backups are off.' : list.error ? 'Cannot be listed.' : 'No backups yet.');
  for (const button of $$('button[data-run^="backup"]')) {
    button.disabled = !backupsConfigured;
    if (!backupsConfigured) button.title = 'No backup target is configured.';
  }
}

// Every few seconds while the tab is open; the backup list (a bucket
// listing, perhaps) only when a backup job has finished since.
let lastBackupJob = null;

async function latestBackupJob() {
  const page = await get('/api/v1/admin/jobs?kind=backup&status=done&limit=1');
  return page.items[0]?.id ?? null;
}

async function loadJobsTab() {
  const [, , latest] = await Promise.all([loadSchedules(), loadJobs(), latestBackupJob()]);
  lastBackupJob = latest;
  await loadBackups();
}

async function refreshJobsTab() {
  await loadSchedules();
  if (jobRows.length <= 50) await loadJobs();
  const latest = await latestBackupJob();
  if (latest !== lastBackupJob) await loadBackups();
  lastBackupJob = latest;
}

$('#job-status').addEventListener('change', () => loadJobs().catch((e) => reportError('Could not load jobs', e)));
$('#jobs-more').addEventListener('click', (e) => busy(e.currentTarget, () => loadJobs(true)));

// -- audit log ---------------------------------------------------------------------------

let auditNext = null;
let auditEntries = [];

function detailText(detail) {
  if (!detail || typeof detail !== 'object') return '';
  return Object.entries(detail).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

async function loadAudit(more = false) {
  const params = new URLSearchParams({ limit: '100' });
  if (more && auditNext) params.set('before', auditNext);
  const page = await get(`/api/v1/audit?${params}`);
  auditEntries = more ? auditEntries.concat(page.entries) : page.entries;
  auditNext = page.next_before ?? null;
  const names = new Map(users.map((u) => [u.id, u.username]));
  fillRows($('#audit-table tbody'), auditEntries, (a) => h('tr', {},
    td(timeEl(a.ts)),
    td(a.user_id === null ? h('span', { class: 'muted' }, 'system') : names.get(a.user_id) ?? `#${a.user_id}`),
    td(h('code', {}, a.action)),
    td(a.target ?? ''),
    td(h('span', { class: 'small' }, detailText(a.detail)), { cls: 'wrap' }),
    td(a.ip ?? '')), 'No entries.');
  $('#audit-more').hidden = auditNext === null;
}
$('#audit-more').addEventListener('click', (e) => busy(e.currentTarget, () => loadAudit(true)));

// -- start ------------------------------------------------------------------------------

const loaders = {
  health: loadHealth,
  switches: loadAccounts,
  users: loadUsers,
  jobs: loadJobsTab,
  audit: async () => {
    if (!users.length) users = await get('/api/v1/users');
    await loadAudit();
  },
};

mountTabs((tab) => {
  clearInterval(refreshTimer);
  loaders[tab]?.().catch((e) => reportError('Could not load', e));
  if (tab === 'health') refreshTimer = setInterval(() => loadHealth().catch(() => {}), 5000);
  if (tab === 'jobs') refreshTimer = setInterval(() => refreshJobsTab().catch(() => {}), 3000);
});
onTrading((states) => showGlobal(states.global));
