// The page's one WebSocket: numbered commands answered by results, pushed events, and reconnection with
// back-off. See docs/protocol.md.

export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Signal {
  constructor({ onStatus = () => {} } = {}) {
    this.nextId = 0;
    this.pending = new Map();
    this.handlers = new Map();
    this.onStatus = onStatus;
    this.ws = null;
    this.closedByUs = false;
    this.attempt = 0;
    this.onReconnect = [];
    this.ready = this.connect();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  connect() {
    return new Promise((resolve) => {
      const ws = new WebSocket(this.url());
      this.ws = ws;
      this.onStatus("connecting");
      ws.addEventListener("message", (msg) => this.receive(msg.data, resolve));
      ws.addEventListener("close", () => this.closed(ws));
    });
  }

  receive(text, resolveHello) {
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      return;
    }
    if (data.type === "result") {
      const waiter = this.pending.get(data.id);
      if (!waiter) return;
      this.pending.delete(data.id);
      if (data.success) waiter.resolve(data.result);
      else waiter.reject(new ProtocolError(data.error.code, data.error.message));
      return;
    }
    if (data.type !== "event") return;
    if (data.event === "hello") {
      const again = this.attempt > 0;
      this.attempt = 0;
      this.hello = data.data;
      this.onStatus("online");
      resolveHello(data.data);
      if (again) for (const fn of this.onReconnect) fn();
    }
    for (const fn of this.handlers.get(data.event) || []) fn(data.data);
    for (const fn of this.handlers.get("*") || []) fn(data.event, data.data);
  }

  closed(ws) {
    if (ws !== this.ws) return;
    for (const waiter of this.pending.values()) waiter.reject(new ProtocolError("disconnected", "connection lost"));
    this.pending.clear();
    if (this.closedByUs) return;
    this.onStatus("offline");
    this.attempt += 1;
    const delay = Math.min(8000, 300 * 2 ** Math.min(this.attempt, 5)) * (0.75 + Math.random() / 2);
    setTimeout(() => { this.ready = this.connect(); }, delay);
  }

  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(fn);
  }

  async call(type, body = {}) {
    await this.ready;
    this.nextId += 1;
    const id = this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, type, ...body }));
      setTimeout(() => {
        if (this.pending.has(id)) {
          this.pending.delete(id);
          reject(new ProtocolError("timeout", "no answer from the server"));
        }
      }, 15000);
    });
  }

  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close();
  }
}
