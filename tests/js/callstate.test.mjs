// The call screen's rules: the timer, the keys, the other side's tile, what follows the end of a call.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  afterCallKey, canRejoin, formatDuration, pausedByNotice, remoteVideoState, shortcutFor,
} from "../../web/static/js/callstate.js";

test("the timer reads minutes and seconds, hours once past one", () => {
  assert.equal(formatDuration(0), "00:00");
  assert.equal(formatDuration(999), "00:00");
  assert.equal(formatDuration(245_000), "04:05");
  assert.equal(formatDuration(3_723_000), "1:02:03");
  assert.equal(formatDuration(-5), "00:00");
  assert.equal(formatDuration(undefined), "00:00");
});

test("Alt with M, V or H works the call; other keys and other modifiers do nothing", () => {
  const key = (code, extra = {}) => shortcutFor({ code, altKey: true, ...extra });
  assert.deepEqual(["KeyM", "KeyV", "KeyH"].map((c) => key(c)), ["mute", "camera", "hangup"]);
  assert.equal(key("KeyX"), null);
  assert.equal(key("KeyF"), null); // the browser's menu on Windows
  assert.equal(shortcutFor({ code: "KeyM", altKey: false }), null); // typing an m in the report
  assert.equal(key("KeyM", { ctrlKey: true }), null);
  assert.equal(key("KeyM", { metaKey: true }), null);
  assert.equal(key("KeyM", { shiftKey: true }), null);
  assert.equal(key("KeyM", { repeat: true }), null); // a key held down toggles once
  assert.equal(key("KeyM", { isComposing: true }), null);
  assert.equal(shortcutFor(null), null);
});

test("the other side's tile: camera off first, then a paused video, then waiting for a frame", () => {
  assert.equal(remoteVideoState(), "waiting");
  assert.equal(remoteVideoState({ frames: true }), "on");
  assert.equal(remoteVideoState({ frames: true, peerCamera: true }), "on");
  assert.equal(remoteVideoState({ frames: true, peerCamera: false }), "off");
  assert.equal(remoteVideoState({ frames: true, peerPaused: true }), "paused");
  assert.equal(remoteVideoState({ frames: true, peerPaused: true, peerCamera: false }), "off");
  assert.equal(pausedByNotice("audio_only", "weak_link"), true);
  assert.equal(pausedByNotice("low", "recovered"), false);
  assert.equal(pausedByNotice("audio_only", "recovered"), false);
});

test("after the call: rejoin until the report is signed; what each side is told", () => {
  assert.equal(canRejoin("ended"), true);
  assert.equal(canRejoin("accepted"), true); // the call dropped and its grace ran out
  assert.equal(canRejoin("signed"), false);
  assert.equal(canRejoin("closed"), false);
  assert.equal(canRejoin("in_call", "handed_over"), false);
  assert.equal(afterCallKey("clinic", "ended"), "next_clinic");
  assert.equal(afterCallKey("specialist", "ended"), "next_specialist");
  assert.equal(afterCallKey("clinic", "signed"), "next_signed");
  assert.equal(afterCallKey("clinic", "in_call", "handed_over"), "next_handed_over");
});
