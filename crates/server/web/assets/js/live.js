// Live updates: one WebSocket per page, shared by everything on it.
//
// Parts of the page subscribe to channels with a handler. The socket sends
// the subscriptions when it opens and again after every reconnect; the
// resumable channels (`orders`, `fills`) ask for what they missed with the
// last journal sequence seen per account, so nothing is lost across a
// server restart. While the socket is down the page shows "Reconnecting…",
// and retries quickly (the server is usually back within seconds), then
// every two seconds. An application-level ping catches a connection that
// died without closing.

const RESUMABLE = new Set(['orders', 'fills']);
const PING_EVERY_MS = 20_000;
const PONG_WAIT_MS = 10_000;
const RETRY_MS = [250, 500, 1000, 2000];

class Live {
  constructor() {
    this.handlers = new Map(); // channel -> Set(handler)
    this.lastSeq = new Map(); // channel -> Map(account -> seq)
    this.statusHandlers = new Set();
    this.reconnectHandlers = new Set();
    this.state = 'connecting';
    this.attempt = 0;
    this.everOpened = false;
    this.socket = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = false;
    addEventListener('pagehide', () => {
      this.stopped = true;
      this.socket?.close(1000);
    });
  }

  /** Calls `handler(message)` for each message on `channel`; returns an unsubscribe function. */
  subscribe(channel, handler) {
    let set = this.handlers.get(channel);
    const fresh = !set;
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    set.add(handler);
    if (!this.socket) this.connect();
    else if (fresh && this.socket.readyState === WebSocket.OPEN) this.sendSubscribe([channel]);
    return () => {
      set.delete(handler);
      if (set.size === 0) {
        this.handlers.delete(channel);
        this.lastSeq.delete(channel);
        if (this.socket?.readyState === WebSocket.OPEN) {
          this.socket.send(JSON.stringify({ op: 'unsubscribe', channels: [channel] }));
        }
      }
    };
  }

  /** `handler(state)` with `connecting`, `live` or `reconnecting`; called at once with the current state. */
  onStatus(handler) {
    this.statusHandlers.add(handler);
    handler(this.state);
    return () => this.statusHandlers.delete(handler);
  }

  /** `handler()` after a reconnect, so a page can reload what is not streamed. */
  onReconnect(handler) {
    this.reconnectHandlers.add(handler);
    return () => this.reconnectHandlers.delete(handler);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const handler of this.statusHandlers) handler(state);
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
    this.socket = socket;
    socket.addEventListener('open', () => {
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.setState('live');
      this.sendSubscribe([...this.handlers.keys()]);
      this.startPing();
      if (reconnected) for (const handler of this.reconnectHandlers) handler();
    });
    socket.addEventListener('message', (event) => this.onMessage(event.data));
    socket.addEventListener('close', (event) => this.onClose(socket, event));
    // An error is followed by a close, which retries.
    socket.addEventListener('error', () => {});
  }

  sendSubscribe(channels) {
    if (!channels.length) return;
    const plain = channels.filter((c) => !RESUMABLE.has(c) || !this.lastSeq.get(c)?.size);
    if (plain.length) this.socket.send(JSON.stringify({ op: 'subscribe', channels: plain }));
    // One message per resumable channel: each has its own positions.
    for (const channel of channels) {
      const seen = this.lastSeq.get(channel);
      if (RESUMABLE.has(channel) && seen?.size) {
        this.socket.send(JSON.stringify({ op: 'subscribe', channels: [channel], after_seq: Object.fromEntries(seen) }));
      }
    }
  }

  onMessage(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === 'pong') {
      clearTimeout(this.pongTimer);
      return;
    }
    if (message.type === 'error') {
      console.warn('live updates:', message.code, message.message);
      if (message.channel) this.deliver(message.channel, message);
      return;
    }
    if (!message.channel) return;
    if (RESUMABLE.has(message.channel) && message.account !== undefined) {
      let seen = this.lastSeq.get(message.channel);
      if (!seen) {
        seen = new Map();
        this.lastSeq.set(message.channel, seen);
      }
      const key = String(message.account);
      if (seen.has(key) && message.seq <= seen.get(key)) return; // already delivered
      seen.set(key, message.seq);
    }
    this.deliver(message.channel, message);
  }

  deliver(channel, message) {
    for (const handler of this.handlers.get(channel) ?? []) {
      try {
        handler(message);
      } catch (e) {
        console.error(`handler for ${channel} failed`, e);
      }
    }
  }

  startPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.socket?.readyState !== WebSocket.OPEN) return;
      this.socket.send(JSON.stringify({ op: 'ping' }));
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.socket?.close(4000, 'no pong'), PONG_WAIT_MS);
    }, PING_EVERY_MS);
  }

  async onClose(socket, event) {
    if (socket !== this.socket) return;
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.socket = null;
    if (this.stopped) return;
    this.setState('reconnecting');
    // 1008: the server closed us on purpose (signed out, token revoked, too slow).
    // If the session is gone, the API call sends the browser to sign-in.
    if (event.code === 1008) {
      try {
        await fetch('/api/v1/auth/me', { credentials: 'same-origin' }).then((r) => {
          if (r.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        });
      } catch {
        // The server is down: keep retrying below.
      }
    }
    const base = RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)];
    this.attempt += 1;
    const delay = base * (0.8 + Math.random() * 0.4);
    setTimeout(() => this.connect(), delay);
  }
}

/** The page's one connection. */
export const live = new Live();
