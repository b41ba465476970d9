// The call's signals and the page's socket messages: what is taken, held for the join, dropped, and how long
// the page waits before it reconnects.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CallChannel, SignalInbox, parseSignal } from "../../web/static/js/signaling.js";
import { parseMessage, reconnectDelay } from "../../web/static/js/signal.js";

const offer = (id, session = 5) => ({ id, session_id: session, kind: "offer", payload: { sdp: "v=0\r\n" }, from: 2 });

test("a signal is parsed only when it is one a call can use", () => {
  assert.deepEqual(parseSignal(offer("a1")), { id: "a1", session_id: 5, kind: "offer", payload: { sdp: "v=0\r\n" } });
  assert.equal(parseSignal({ session_id: 5, kind: "offer", payload: {} }), null); // no SDP
  assert.equal(parseSignal({ session_id: 5, kind: "dance", payload: {} }), null);
  assert.equal(parseSignal({ session_id: "5", kind: "answer", payload: { sdp: "v=0" } }), null);
  assert.equal(parseSignal({ session_id: 5, kind: "candidate", payload: [] }), null);
  assert.equal(parseSignal({ session_id: 5, kind: "candidate", payload: { candidate: 7 } }), null);
  assert.equal(parseSignal(null), null);
  assert.equal(parseSignal({ session_id: 5, kind: "restart_request", payload: {} }).id, null);
});

test("signals before the join are held, then handed over for this session only", () => {
  const inbox = new SignalInbox();
  assert.equal(inbox.admit(parseSignal(offer("a1", 5)), null), "hold");
  assert.equal(inbox.admit(parseSignal(offer("b1", 9)), null), "hold");
  assert.deepEqual(inbox.takeEarly(5).map((d) => d.id), ["a1"]);
  assert.deepEqual(inbox.takeEarly(5), []);
});

test("a signal is handled once, and never one of another session", () => {
  const inbox = new SignalInbox();
  const a = parseSignal(offer("a1"));
  assert.equal(inbox.admit(a, 5), "handle");
  assert.equal(inbox.admit(a, 5), "drop"); // kept for the join and also sent
  assert.equal(inbox.admit(parseSignal(offer("c1", 6)), 5), "drop");
  const noId = parseSignal({ session_id: 5, kind: "restart_request", payload: {} });
  assert.equal(inbox.admit(noId, 5), "handle");
  assert.equal(inbox.admit(noId, 5), "handle");
});

test("the held signals are bounded", () => {
  const inbox = new SignalInbox();
  for (let i = 0; i < 600; i++) inbox.admit(parseSignal(offer(`x${i}`)), null);
  assert.equal(inbox.takeEarly(5).length, 500);
});

test("the channel sends its session's commands and hears only its session's events", async () => {
  const sent = [];
  const handlers = new Map();
  const signal = {
    call: async (type, body) => { sent.push([type, body]); return { ok: true }; },
    on: (event, fn) => handlers.set(event, fn),
  };
  const channel = new CallChannel(signal, 12);
  await channel.join({ fresh: true });
  channel.sessionId = 5;
  await channel.send("answer", { sdp: "v=0" });
  await channel.chat("BP 150/95");
  assert.deepEqual(sent, [
    ["session.join", { consultation_id: 12, fresh: true, take_over: false }],
    ["session.signal", { session_id: 5, kind: "answer", payload: { sdp: "v=0" } }],
    ["session.chat", { session_id: 5, text: "BP 150/95" }],
  ]);
  const heard = [];
  channel.on("chat", (d) => heard.push(d.text));
  handlers.get("chat")({ session_id: 4, text: "old call" });
  handlers.get("chat")({ session_id: 5, text: "this call" });
  assert.deepEqual(heard, ["this call"]);
});

test("a failed signal send is not an error for the call", async () => {
  const signal = { call: async () => { throw new Error("disconnected"); }, on: () => {} };
  const channel = new CallChannel(signal, 1);
  await channel.send("candidate", { candidate: "c" });
  await channel.hangup();
  await assert.rejects(channel.chat("hi")); // the chat box says so
});

test("the server's messages: results, errors, events; anything else is dropped", () => {
  assert.deepEqual(parseMessage('{"id": 3, "type": "result", "success": true, "result": {"a": 1}}'),
    { type: "result", id: 3, success: true, result: { a: 1 } });
  assert.deepEqual(parseMessage('{"id": 4, "type": "result", "success": false, "error": {"code": "forbidden", "message": "no"}}'),
    { type: "result", id: 4, success: false, error: { code: "forbidden", message: "no" } });
  assert.deepEqual(parseMessage('{"id": 4, "type": "result", "success": false}').error, { code: "unknown", message: "" });
  assert.deepEqual(parseMessage('{"type": "event", "event": "chat", "data": {"text": "hi"}}'),
    { type: "event", event: "chat", data: { text: "hi" } });
  assert.deepEqual(parseMessage('{"type": "event", "event": "hello"}').data, {});
  for (const bad of ["not json", "null", "[]", '{"type": "result"}', '{"type": "event", "event": 3}', '{"type": "x"}']) {
    assert.equal(parseMessage(bad), null, bad);
  }
});

test("reconnection waits double up to eight seconds, spread a quarter either way", () => {
  assert.equal(reconnectDelay(1, 0.5), 600);
  assert.equal(reconnectDelay(2, 0.5), 1200);
  assert.equal(reconnectDelay(5, 0.5), 8000);
  assert.equal(reconnectDelay(9, 0.5), 8000);
  assert.equal(reconnectDelay(1, 0), 450);
  assert.equal(reconnectDelay(1, 1), 750);
});
