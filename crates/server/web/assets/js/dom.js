// Small DOM helpers: building elements, tables with empty states, toasts,
// confirmation dialogs and form errors. Text always goes in as text nodes,
// never as HTML, so nothing from the API can inject markup.

/** `h('a', {href: '/x', class: 'btn'}, 'text', child)`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Replaces the element's children. */
export function put(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table cell; `num` right-aligns it. */
export function td(content, { num = false, cls } = {}) {
  return h('td', { class: [num ? 'num' : '', cls ?? ''].join(' ').trim() || null }, content);
}

/**
 * Fills a `<tbody>` with one row per item, or one row with the empty state
 * (`empty` is text or an element saying what to do next).
 */
export function fillRows(tbody, items, row, empty) {
  const columns = tbody.closest('table')?.querySelectorAll('thead th').length || 1;
  if (!items.length) {
    put(tbody, h('tr', { class: 'empty-row' }, h('td', { colspan: columns, class: 'empty' }, empty)));
    return;
  }
  put(tbody, ...items.map(row));
}

/** A short message in the corner that goes away by itself. */
export function toast(message, kind = 'info', ms = 6000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/**
 * Asks for confirmation in a modal dialog; resolves true or false.
 * `requireText`: the user must type this exact text first (live accounts).
 * `acknowledge`: the user must tick a box with this text first.
 * `live`: true, or the warning to show, for an order on a live account.
 */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false, live = false, requireText = null, acknowledge = null }) {
  return new Promise((resolve) => {
    const typed = requireText
      ? h('input', { id: 'confirm-typed', autocomplete: 'off', 'aria-describedby': 'confirm-typed-hint' })
      : null;
    const ticked = acknowledge ? h('input', { type: 'checkbox', id: 'confirm-ack' }) : null;
    const ok = h('button', { type: 'submit', class: `btn ${danger || live ? 'btn-danger' : 'btn-primary'}`, value: 'ok', disabled: Boolean(requireText || acknowledge) }, confirm);
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
    const dialog = h(
      'dialog',
      { class: live ? 'live-confirm' : null, 'aria-labelledby': 'confirm-title' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'confirm-title' }, title),
        live ? h('p', { class: 'live-warning' }, typeof live === 'string' ? live : 'This is a LIVE account: the order goes to the real venue with real money.') : null,
        body,
        requireText
          ? h('div', { class: 'field' },
            h('label', { for: 'confirm-typed' }, `Type “${requireText}” to confirm`),
            typed,
            h('p', { class: 'hint', id: 'confirm-typed-hint' }, 'This step cannot be skipped for live accounts.'))
          : null,
        ticked ? h('label', { class: 'check acknowledge', for: 'confirm-ack' }, ticked, ` ${acknowledge}`) : null,
        h('div', { class: 'dialog-actions' }, cancel, ok),
      ),
    );
    const ready = () => (!typed || typed.value.trim() === requireText) && (!ticked || ticked.checked);
    if (typed) typed.addEventListener('input', () => { ok.disabled = !ready(); });
    if (ticked) ticked.addEventListener('change', () => { ok.disabled = !ready(); });
    let answered = false;
    const finish = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', () => finish(false));
    dialog.querySelector('form').addEventListener('submit', (e) => {
      e.preventDefault();
      if (!ok.disabled) finish(true);
    });
    document.body.append(dialog);
    dialog.showModal();
    (typed ?? ticked ?? ok).focus();
  });
}

/** Clears a form's error marks. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.error[data-for]')) el.remove();
  const general = form.querySelector('.form-error');
  if (general) {
    general.hidden = true;
    general.textContent = '';
  }
}

/**
 * Shows an error on the field it names (`name` attribute), or on the form
 * as a whole. The field gets aria-invalid and a described-by message.
 */
export function showError(form, message, field) {
  const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    const id = `err-${input.id || input.name}`;
    form.querySelector(`#${CSS.escape(id)}`)?.remove();
    const note = h('p', { class: 'error', id, 'data-for': input.name }, message);
    const anchor = input.closest('.field') ?? input.parentElement;
    anchor.append(note);
    input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), id].filter(Boolean).join(' '));
    input.focus();
    return;
  }
  let general = form.querySelector('.form-error');
  if (!general) {
    general = h('p', { class: 'form-error', role: 'alert' });
    form.prepend(general);
  }
  general.textContent = message;
  general.hidden = false;
}

/** The form's named values as an object of trimmed strings. */
export function formValues(form) {
  const out = {};
  for (const [key, value] of new FormData(form).entries()) {
    out[key] = typeof value === 'string' ? value.trim() : value;
  }
  return out;
}

/** Copies text to the clipboard, with a fallback for plain-HTTP pages. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h('textarea', { readonly: true, class: 'sr-only' });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  }
}

/** Disables a button while `work` runs. */
export async function busy(button, work) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = was;
    button.removeAttribute('aria-busy');
  }
}

/**
 * Tabs: `[role=tab]` buttons whose `aria-controls` name their panels.
 * Arrow keys move between them; the chosen tab is kept in the URL's hash.
 * `onSelect(id)` runs when a tab is shown (the first time too).
 */
export function mountTabs(onSelect = () => {}) {
  const tabs = $$('[role=tab]');
  const select = (tab) => {
    for (const t of tabs) {
      const chosen = t === tab;
      t.setAttribute('aria-selected', String(chosen));
      t.tabIndex = chosen ? 0 : -1;
      document.getElementById(t.getAttribute('aria-controls')).hidden = !chosen;
    }
    window.history.replaceState(null, '', `#${tab.id.replace(/^tab-/, '')}`);
    onSelect(tab.id.replace(/^tab-/, ''));
  };
  for (const tab of tabs) {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(tab);
      const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      select(next);
    });
  }
  const fromHash = tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`);
  select(fromHash ?? tabs[0]);
}

/**
 * `work` at the next frame, however many times the returned function is
 * called before it: a burst of quotes redraws once.
 */
export function perFrame(work) {
  let scheduled = false;
  return () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      work();
    });
  };
}
