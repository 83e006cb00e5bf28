// A strategy picker and the inputs of its parameters, generated from
// `GET /api/v1/strategies`: whole numbers, numbers, amounts and switches,
// with their bounds, defaults and help, checked before sending.

import { get } from './api.js';
import { h, put } from './dom.js';
import { Dec } from './decimal.js';

let strategiesPromise = null;

export function strategies() {
  strategiesPromise ??= get('/api/v1/strategies').catch((e) => {
    strategiesPromise = null;
    throw e;
  });
  return strategiesPromise;
}

function paramInput(spec, value) {
  const id = `param-${spec.name}`;
  const name = `param:${spec.name}`;
  if (spec.type === 'bool') {
    return h('label', { class: 'check' },
      h('input', { type: 'checkbox', id, name, checked: (value ?? spec.default) === 'true' || value === true }),
      ` ${spec.name}`, h('span', { class: 'hint' }, ` — ${spec.help}`));
  }
  const attrs = { id, name, value: value ?? spec.default, class: 'num', required: true, 'aria-describedby': `${id}-hint`, autocomplete: 'off' };
  if (spec.type === 'int') Object.assign(attrs, { type: 'number', step: '1', min: spec.min, max: spec.max, inputmode: 'numeric' });
  else attrs.inputmode = 'decimal';
  return h('div', { class: 'field' },
    h('label', { for: id }, spec.name),
    h('input', attrs),
    h('p', { class: 'hint', id: `${id}-hint` }, `${spec.help} (${spec.min} to ${spec.max})`));
}

/**
 * Fills `select` with the strategies and `box` with the chosen one's
 * parameters (and `summary` with its description). `initial`: a strategy
 * name and parameter values to start from.
 */
export async function mountStrategyForm(select, box, summary, initial = {}) {
  const list = await strategies();
  put(select, ...list.map((s) => h('option', { value: s.name, selected: s.name === initial.strategy }, s.name)));
  const draw = (values = {}) => {
    const spec = list.find((s) => s.name === select.value) ?? list[0];
    put(summary, spec.summary);
    put(box, ...spec.params.map((p) => paramInput(p, values[p.name] !== undefined ? String(values[p.name]) : undefined)));
  };
  select.addEventListener('change', () => draw());
  draw(initial.params ?? {});
  return list;
}

/**
 * The chosen strategy's parameter values from the form, typed for the
 * API, or `{error: {field, message}}` for the first bad one.
 */
export function readParams(form, list) {
  const spec = list.find((s) => s.name === form.strategy.value);
  const params = {};
  for (const p of spec?.params ?? []) {
    const input = form.elements[`param:${p.name}`];
    if (!input) continue;
    if (p.type === 'bool') {
      params[p.name] = input.checked;
      continue;
    }
    const text = input.value.trim();
    const field = `param:${p.name}`;
    const range = `${p.name} must be from ${p.min} to ${p.max}`;
    if (p.type === 'int') {
      if (!/^-?\d+$/.test(text)) return { error: { field, message: `${p.name} must be a whole number.` } };
      const n = BigInt(text);
      if (n < BigInt(p.min) || n > BigInt(p.max)) return { error: { field, message: `${range}.` } };
      params[p.name] = Number(text);
    } else {
      const d = Dec.parse(text);
      if (!d) return { error: { field, message: `${p.name} must be a number.` } };
      if (d.cmp(p.min) < 0 || d.cmp(p.max) > 0) return { error: { field, message: `${range}.` } };
      params[p.name] = p.type === 'money' ? d.toString() : d.toNumber();
    }
  }
  return { params };
}

/** `fast=10, slow=30` for tables. */
export function paramsText(params) {
  return Object.entries(params ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
}
