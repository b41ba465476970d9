// A call's signaling over the page's WebSocket (signal.js): the session.* commands, and the signals that come
// from the other side, checked, kept while the join is on its way and handled once each. See docs/protocol.md.

export const SIGNAL_KINDS = new Set(["offer", "answer", "candidate", "restart_request", "quality_notice"]);
const EARLY_MAX = 500;

// A `signal` event's data as a call can use it, or null when it is not one (a kind this page does not know,
// an offer or answer without its SDP, a payload that is not an object).
export function parseSignal(d) {
  if (!d || typeof d !== "object" || !Number.isInteger(d.session_id) || !SIGNAL_KINDS.has(d.kind)) return null;
  const payload = d.payload && typeof d.payload === "object" && !Array.isArray(d.payload) ? d.payload : null;
  if (payload === null) return null;
  if ((d.kind === "offer" || d.kind === "answer") && typeof payload.sdp !== "string") return null;
  if (d.kind === "candidate" && typeof payload.candidate !== "string") return null;
  return { id: d.id ?? null, session_id: d.session_id, kind: d.kind, payload };
}

// Signals in order of arrival: held while the page does not know its session yet (they came before the join's
// answer), dropped when they belong to another session or were handled already (a signal kept for the join
// may also come on its own).
export class SignalInbox {
  constructor() {
    this.early = [];
    this.seen = new Set();
  }

  // "hold", "drop" or "handle" for a parsed signal, given the session the call is in (null: not known yet).
  admit(signal, sessionId) {
    if (sessionId === null) {
      if (this.early.length < EARLY_MAX) this.early.push(signal);
      return "hold";
    }
    if (signal.session_id !== sessionId) return "drop";
    if (signal.id !== null) {
      if (this.seen.has(signal.id)) return "drop";
      this.seen.add(signal.id);
    }
    return "handle";
  }

  // The held signals of a session, taken out; those of other sessions are forgotten.
  takeEarly(sessionId) {
    const mine = this.early.filter((d) => d.session_id === sessionId);
    this.early = [];
    return mine;
  }
}

// The session.* commands of one call. `sessionId` is set once the join has answered.
export class CallChannel {
  constructor(signal, consultationId) {
    this.signal = signal;
    this.consultationId = consultationId;
    this.sessionId = null;
  }

  join({ fresh, takeOver = false }) {
    return this.signal.call("session.join", { consultation_id: this.consultationId, fresh, take_over: takeOver });
  }

  // A signal to the other side; one lost with a dropped socket is made again by the restart logic.
  send(kind, payload) {
    return this.signal.call("session.signal", { session_id: this.sessionId, kind, payload }).catch(() => {});
  }

  iceState(state) {
    this.signal.call("session.ice_state", { session_id: this.sessionId, state }).catch(() => {});
  }

  quality(sample) {
    this.signal.call("session.quality", sample).catch(() => {});
  }

  chat(text) {
    return this.signal.call("session.chat", { session_id: this.sessionId, text });
  }

  hangup() {
    return this.signal.call("session.hangup", { session_id: this.sessionId }).catch(() => {});
  }

  // Events of this call's session: handlers get the data of those whose session_id matches.
  on(event, fn) {
    this.signal.on(event, (d) => {
      if (d && d.session_id === this.sessionId) fn(d);
    });
  }
}
