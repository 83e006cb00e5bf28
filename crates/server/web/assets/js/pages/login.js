// The sign-in form.

import { explain, post } from '../api.js';
import { $ } from '../dom.js';

const form = $('#login-form');
const error = $('#login-error');

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  error.hidden = true;
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    error.textContent = 'Enter your user name and password.';
    error.hidden = false;
    (username ? form.password : form.username).focus();
    return;
  }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const answer = await post('/api/v1/auth/login', { username, password });
    const next = form.dataset.next || '/';
    location.assign(answer.user.password_change_required ? '/settings?must_change=1' : next);
  } catch (err) {
    error.textContent = explain(err);
    error.hidden = false;
    form.password.select();
    button.disabled = false;
  }
});
