// Settings: change the password, see where you are signed in and sign
// other sessions out, manage API tokens (created once, copied, revoked) and
// link venue accounts (their secrets go in once and never come back out).

import { reportError, session } from '../app.js';
import { del, explain, get, post } from '../api.js';
import { $, $$, busy, clearErrors, confirmDialog, copyText, fillRows, formValues, h, put, showError, td, toast } from '../dom.js';
import { timeEl } from '../format.js';

const mustChange = new URLSearchParams(location.search).has('must_change');
$('#must-change').hidden = !mustChange;

// -- password -------------------------------------------------------------------------

const passwordForm = $('#password-form');
passwordForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearErrors(passwordForm);
  $('#password-ok').hidden = true;
  const fresh = passwordForm.new_password.value;
  if (!passwordForm.current_password.value) return showError(passwordForm, 'Enter your current password.', 'current_password');
  if ([...fresh].length < 12) return showError(passwordForm, 'Use at least 12 characters.', 'new_password');
  if (fresh !== passwordForm.repeat_password.value) return showError(passwordForm, 'The two new passwords differ.', 'repeat_password');
  const button = passwordForm.querySelector('button[type=submit]');
  await busy(button, async () => {
    try {
      await post('/api/v1/auth/password', { current_password: passwordForm.current_password.value, new_password: fresh });
      passwordForm.reset();
      if (mustChange) {
        location.assign('/');
        return;
      }
      $('#password-ok').hidden = false;
      await loadSessions();
    } catch (err) {
      showError(passwordForm, explain(err), err.field);
    }
  });
});

// -- sessions ---------------------------------------------------------------------------

/** "Chrome on Linux" from a user agent, or the raw text shortened. */
function device(agent) {
  if (!agent) return 'unknown';
  const browser = /Edg\//.test(agent) ? 'Edge' : /Chrome\//.test(agent) ? 'Chrome' : /Firefox\//.test(agent) ? 'Firefox' : /Safari\//.test(agent) ? 'Safari' : /curl|python|reqwest/i.test(agent) ? 'a program' : 'a browser';
  const os = /Windows/.test(agent) ? 'Windows' : /Android/.test(agent) ? 'Android' : /iPhone|iPad/.test(agent) ? 'iOS' : /Mac OS/.test(agent) ? 'macOS' : /Linux/.test(agent) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}

let sessions = [];

async function loadSessions() {
  sessions = await get('/api/v1/auth/sessions');
  fillRows($('#sessions-table tbody'), sessions, (s) => h('tr', { 'data-session': s.id.slice(0, 12) },
    td(h('span', { title: s.user_agent ?? '' }, device(s.user_agent), s.current ? h('span', { class: 'badge badge-ok' }, ' this one') : null)),
    td(s.ip ?? '–'),
    td(timeEl(s.last_seen_at)),
    td(timeEl(s.expires_at)),
    td(s.current ? null : h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Sign out ${device(s.user_agent)} from ${s.ip ?? 'unknown IP'}`, onclick: (e) => endSession(s, e.currentTarget) }, 'Sign out'))),
  'No sessions.');
  $('#end-others').disabled = sessions.filter((s) => !s.current).length === 0;
}

async function endSession(s, button) {
  await busy(button, async () => {
    try {
      await del(`/api/v1/auth/sessions/${s.id}`);
      toast('Signed out there.', 'ok');
      await loadSessions();
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
}

$('#end-others').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  const others = sessions.filter((s) => !s.current);
  const ok = await confirmDialog({ title: 'Sign out everywhere else?', body: h('p', {}, `${others.length} other session${others.length === 1 ? '' : 's'} will be signed out. API tokens are not affected.`), confirm: 'Sign them out' });
  if (!ok) return;
  await busy(button, async () => {
    for (const s of others) {
      try {
        await del(`/api/v1/auth/sessions/${s.id}`);
      } catch (err) {
        toast(explain(err), 'error');
      }
    }
    await loadSessions();
  });
});

// -- tokens -----------------------------------------------------------------------------

const ROLE_SCOPES = { viewer: ['read'], trader: ['read', 'trade'], admin: ['read', 'trade', 'admin'] };
for (const box of $$('input[data-role-scope]')) {
  if (!ROLE_SCOPES[session.role]?.includes(box.value)) box.closest('label').hidden = true;
}

function tokenStatus(t) {
  if (t.revoked_at) return h('span', { class: 'badge' }, 'revoked');
  if (t.expires_at && new Date(t.expires_at) < new Date()) return h('span', { class: 'badge' }, 'expired');
  return h('span', { class: 'badge badge-ok' }, 'active');
}

async function loadTokens() {
  const tokens = await get('/api/v1/tokens');
  fillRows($('#tokens-table tbody'), tokens, (t) => h('tr', { 'data-token': t.id },
    td(t.name),
    td(t.scopes.join(', ')),
    td(timeEl(t.created_at)),
    td(t.last_used_at ? timeEl(t.last_used_at) : h('span', { class: 'muted' }, 'never')),
    td(t.expires_at ? timeEl(t.expires_at) : 'never'),
    td(tokenStatus(t)),
    td(t.revoked_at ? null : h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Revoke token ${t.name}`, onclick: (e) => revoke(t, e.currentTarget) }, 'Revoke'))),
  'No tokens yet. Create one for each program that uses the API, so each can be revoked alone.');
}

async function revoke(t, button) {
  const ok = await confirmDialog({ title: `Revoke “${t.name}”?`, body: h('p', {}, 'Programs using it are refused from their next request, and its live connections close.'), confirm: 'Revoke', danger: true });
  if (!ok) return;
  await busy(button, async () => {
    try {
      await del(`/api/v1/tokens/${t.id}`);
      toast(`Token “${t.name}” revoked.`, 'ok');
      await loadTokens();
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
}

const tokenForm = $('#token-form');
tokenForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearErrors(tokenForm);
  const name = tokenForm.name.value.trim();
  const scopes = $$('input[name=scope]:checked', tokenForm).filter((b) => !b.closest('label').hidden).map((b) => b.value);
  const daysText = tokenForm.expires_in_days.value.trim();
  if (!name) return showError(tokenForm, 'Name the token after what will use it.', 'name');
  if (!scopes.length) return showError(tokenForm, 'Choose at least one scope.', 'scope');
  const days = daysText === '' ? undefined : Number(daysText);
  if (days !== undefined && !(Number.isInteger(days) && days >= 1 && days <= 3650)) return showError(tokenForm, 'Use 1 to 3,650 days, or leave it empty.', 'expires_in_days');
  await busy(tokenForm.querySelector('button[type=submit]'), async () => {
    try {
      const created = await post('/api/v1/tokens', { name, scopes, expires_in_days: days });
      const copy = h('button', { type: 'button', class: 'btn btn-small', id: 'copy-token' }, 'Copy');
      copy.addEventListener('click', async () => {
        const ok = await copyText(created.token);
        copy.textContent = ok ? 'Copied' : 'Select and copy it by hand';
      });
      put($('#new-token'), h('div', { class: 'secret-box', role: 'status' },
        h('strong', {}, `Token “${created.name}”:`), h('code', { id: 'token-value' }, created.token), copy,
        h('span', { class: 'small' }, 'It is shown only now: copy it to where your program reads it.')));
      tokenForm.reset();
      await loadTokens();
    } catch (err) {
      showError(tokenForm, explain(err), err.field === 'scopes' ? 'scope' : err.field);
    }
  });
});

// -- venue accounts ---------------------------------------------------------------------

const VENUES = { binance: 'Binance', tastytrade: 'TastyTrade' };
const ENVIRONMENTS = { binance: ['testnet', 'production'], tastytrade: ['sandbox', 'production'] };
const venueForm = $('#venue-form');
const venueSubmit = $('#venue-submit');
const productionOk = $('#venue-production-ok');
let keyMissing = session.data.credentialsKey === 'missing';

async function loadVenues() {
  const linked = await get('/api/v1/venue-credentials');
  fillRows($('#venues-table tbody'), linked, (c) => h('tr', { 'data-credential': c.id, class: c.environment === 'production' ? 'row-live' : null },
    td(VENUES[c.venue] ?? c.venue),
    td(c.label),
    td(c.environment === 'production' ? h('span', { class: 'badge badge-live' }, 'LIVE · production') : h('span', { class: 'badge' }, c.environment)),
    td(h('code', {}, c.key_hint)),
    td(c.readable
      ? h('span', { class: 'badge badge-ok' }, 'readable')
      : h('span', { class: 'badge badge-bad', title: 'trading.credentials_key was changed without “tradecore secrets rotate”: restore the old key, or link these keys again.' }, 'unreadable: the server’s key changed')),
    td(timeEl(c.created_at)),
    td(h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Unlink ${VENUES[c.venue] ?? c.venue} “${c.label}”`, onclick: (e) => unlink(c, e.currentTarget) }, 'Unlink'))),
  session.canTrade ? 'No venue accounts linked yet. Link one with the form below, with keys you made at the venue: testnet or sandbox ones first.' : 'No venue accounts linked.');
}

async function unlink(c, button) {
  const ok = await confirmDialog({ title: `Unlink “${c.label}”?`, body: h('p', {}, `Its ${VENUES[c.venue] ?? c.venue} ${c.environment} keys are deleted from this server and tradecore can no longer use them. They stay valid at the venue: revoke them there if nothing else uses them.`), confirm: 'Unlink', danger: true });
  if (!ok) return;
  await busy(button, async () => {
    try {
      await del(`/api/v1/venue-credentials/${c.id}`);
      toast(`“${c.label}” unlinked.`, 'ok');
      await loadVenues();
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
}

/** Shows the chosen venue's fields and key type; production needs the box ticked. */
function syncVenueForm(changed) {
  const environments = ENVIRONMENTS[venueForm.venue.value];
  if (venueForm.environment.options[0]?.value !== environments[0]) put(venueForm.environment, ...environments.map((e) => h('option', { value: e }, e)));
  if (changed === 'venue' || changed === 'environment') productionOk.checked = false;
  for (const el of $$('[data-venue]', venueForm)) el.hidden = el.dataset.venue !== venueForm.venue.value;
  for (const el of $$('[data-key-type]', venueForm)) el.hidden = el.dataset.keyType !== venueForm.key_type.value;
  const production = venueForm.environment.value === 'production';
  $('#venue-production').hidden = !production;
  venueSubmit.disabled = keyMissing || (production && !productionOk.checked);
}

venueForm.addEventListener('change', (e) => syncVenueForm(e.target.name));
venueForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  if (venueSubmit.disabled) return;
  clearErrors(venueForm);
  const v = formValues(venueForm);
  const fields = v.venue === 'binance' ? ['api_key', v.key_type === 'ed25519' ? 'private_key' : 'api_secret'] : ['client_id', 'client_secret', 'refresh_token'];
  const body = { venue: v.venue, label: v.label, environment: v.environment };
  for (const f of fields) body[f] = v[f] || undefined;
  await busy(venueSubmit, async () => {
    try {
      const linked = await post('/api/v1/venue-credentials', body);
      venueForm.reset();
      toast(`Linked ${VENUES[linked.venue] ?? linked.venue} “${linked.label}” (${linked.environment}).`, 'ok');
      await loadVenues();
    } catch (err) {
      if (err.code !== 'credentials_key_missing') return showError(venueForm, explain(err), err.field);
      // Nothing can be linked until an operator sets the key: say so, keep no secret.
      keyMissing = true;
      venueForm.reset();
      $('#venues-key-missing').hidden = false;
      $('#venues-key-missing').focus();
    }
  });
  syncVenueForm();
});

if (keyMissing) $('#venues-key-missing').hidden = false;
if (session.canTrade) syncVenueForm();
else {
  venueForm.hidden = true;
  $('#venues-view-only').hidden = false;
}

Promise.all([loadSessions(), loadTokens(), loadVenues()]).catch((e) => reportError('Could not load your settings', e));
if (mustChange) $('#current-password').focus();
