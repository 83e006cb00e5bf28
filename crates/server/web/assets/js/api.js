// The REST API, as the dashboard calls it: same-origin with the session
// cookie, the CSRF token on every write, and errors as Problem objects
// (RFC 9457 problem+json) with plain-words explanations.

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

/** An answer that was not a success. */
export class Problem extends Error {
  constructor(status, body, retryAfter) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? (status === 0 ? 'network' : 'http_error');
    this.detail = body?.detail ?? '';
    this.field = body?.field ?? null;
    this.retryAfter = retryAfter;
  }
}

/** Sends a request; resolves with the JSON body (null for 204). */
export async function request(method, path, body, { signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = CSRF;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new Problem(0, { code: 'network', detail: 'the server could not be reached' });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (response.status === 401 && !path.startsWith('/api/v1/auth/login')) {
    // The session ended (signed out elsewhere, expired, user disabled).
    const next = encodeURIComponent(location.pathname + location.search);
    location.assign(`/login?next=${next}`);
  }
  if (!response.ok) {
    throw new Problem(response.status, data, Number(response.headers.get('Retry-After')) || undefined);
  }
  return data;
}

export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body, opts) => request('POST', path, body ?? {}, opts);
export const put = (path, body, opts) => request('PUT', path, body, opts);
export const patch = (path, body, opts) => request('PATCH', path, body, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);

/** What each stable error code means, in plain words. */
const EXPLAIN = {
  network: 'The server could not be reached. Check the connection; live updates resume by themselves.',
  tick_size: 'The price is not a whole number of ticks. Round it to the instrument’s tick size.',
  lot_size: 'The quantity is not a whole number of lots. Round it to the instrument’s lot size.',
  min_quantity: 'The quantity is below the instrument’s minimum.',
  min_notional: 'The order is too small: its value is below the instrument’s minimum order value.',
  insufficient_cash: 'Not enough free cash for this order, fees included. Lower the quantity or free up cash.',
  short_not_allowed: 'This account cannot sell more than it holds: short selling is off.',
  max_order_notional: 'The order’s value is above this account’s limit per order.',
  max_position: 'The order would take the position above this account’s position limit.',
  daily_loss_limit: 'This account reached its daily loss limit: only orders that reduce a position are accepted until the next UTC day.',
  reduce_only: 'A reduce-only order must reduce an existing position.',
  close_only: 'Only orders that reduce a position are accepted right now (close-only).',
  kill_switch_account: 'Trading on this account is halted by its kill switch. New orders are refused; cancels still work.',
  kill_switch_global: 'Trading is halted by an administrator (global kill switch). New orders are refused until it is lifted; cancels still work.',
  no_reference_price: 'There is no market price yet to check this order against. Try again in a moment.',
  currency_mismatch: 'The instrument is quoted in a currency this account does not hold.',
  unknown_instrument: 'This account cannot trade that instrument.',
  invalid_quantity: 'The quantity is not valid.',
  invalid_price: 'The price is not valid.',
  venue_rejected: 'The venue refused the order.',
  fok_unfillable: 'A fill-or-kill order could not be filled completely at once, so nothing was filled.',
  would_take_liquidity: 'A post-only order would have traded at once, so it was cancelled.',
  insufficient_scope: 'Your role does not allow this. Viewers can look but not trade; ask an admin for the trader role.',
  forbidden: 'Only administrators may do this.',
  csrf_failed: 'The page’s security token did not match your session. Reload the page and try again.',
  rate_limited: 'Too many requests. Wait a moment and try again.',
  unavailable: 'The server is busy or restarting. Try again in a moment.',
  internal: 'The server failed; the error was logged. Try again, and tell an administrator if it keeps happening.',
  not_found: 'It does not exist, or it is not yours.',
  order_not_open: 'The order is no longer open (it filled or was cancelled meanwhile).',
  client_order_id_conflict: 'That order id was already used for a different order.',
  invalid_credentials: 'Wrong user name or password.',
  username_taken: 'That user name is taken.',
  last_admin: 'At least one enabled administrator must remain.',
  bot_not_startable: 'The bot cannot start right now.',
  body_too_large: 'That is too large to send. Use a smaller file.',
};

/**
 * A sentence for people: what went wrong and how to fix it. Validation
 * errors carry the server's own sentence, which names the problem exactly.
 */
export function explain(error) {
  if (!(error instanceof Problem)) return `Something went wrong: ${error?.message ?? error}`;
  if (error.code === 'rate_limited' && error.retryAfter) {
    return `Too many requests. Wait ${error.retryAfter} seconds and try again.`;
  }
  const plain = EXPLAIN[error.code];
  if (error.code === 'validation_failed' || error.code === 'bad_request' || !plain) {
    return error.detail ? capitalize(error.detail) : plain ?? `The request failed (${error.status}).`;
  }
  return plain;
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
}

/** Whether the error is an order refusal by a risk check or kill switch. */
export function isRiskRefusal(error) {
  return error instanceof Problem && error.status === 422 && error.code !== 'validation_failed';
}
