// The page's one WebSocket: numbered commands answered by results, pushed events, and reconnection with
// back-off. See docs/protocol.md.

export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// A message from the server as {type: "result", id, success, result | error} or {type: "event", event, data};
// null for anything else (not JSON, an unknown type, a result without its id).
export function parseMessage(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return null;
  }
  if (!data || typeof data !== "object") return null;
  if (data.type === "result") {
    if (!Number.isInteger(data.id)) return null;
    if (data.success) return { type: "result", id: data.id, success: true, result: data.result };
    const error = data.error && typeof data.error === "object" ? data.error : {};
    return { type: "result", id: data.id, success: false,
      error: { code: String(error.code || "unknown"), message: String(error.message || "") } };
  }
  if (data.type === "event" && typeof data.event === "string") {
    return { type: "event", event: data.event, data: data.data && typeof data.data === "object" ? data.data : {} };
  }
  return null;
}

// The wait before reconnection attempt `attempt` (1, 2, …): doubling from 600 ms up to 8 s, spread by a quarter
// either way so that the pages of a restarted node do not all come back at once.
export function reconnectDelay(attempt, random = Math.random()) {
  return Math.min(8000, 300 * 2 ** Math.min(attempt, 5)) * (0.75 + random / 2);
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
    const data = parseMessage(text);
    if (data === null) return;
    if (data.type === "result") {
      const waiter = this.pending.get(data.id);
      if (!waiter) return;
      this.pending.delete(data.id);
      if (data.success) waiter.resolve(data.result);
      else waiter.reject(new ProtocolError(data.error.code, data.error.message));
      return;
    }
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
    setTimeout(() => { this.ready = this.connect(); }, reconnectDelay(this.attempt));
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
