// What the peer connection sends besides media: trickled candidates, and the mute and camera state.
import assert from "node:assert/strict";
import { test } from "node:test";

import { candidatePayload, mediaStateMessage, parseMediaState } from "../../web/static/js/peer.js";
import { format } from "../../web/static/js/texts.js";

test("a candidate is sent with its line and media section; the end-of-candidates marker is not", () => {
  const c = { candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0,
    usernameFragment: "abcd" };
  assert.deepEqual(candidatePayload(c), { candidate: c.candidate, sdpMid: "0", sdpMLineIndex: 0 });
  assert.equal(candidatePayload(null), null);
  assert.equal(candidatePayload({ candidate: "" }), null);
});

test("the media state goes and comes back as it was", () => {
  for (const state of [{ muted: true, camera: false }, { muted: false, camera: true }]) {
    assert.deepEqual(parseMediaState(mediaStateMessage(state)), state);
  }
  assert.equal(mediaStateMessage({ muted: 1, camera: 0 }), '{"type":"media","muted":true,"camera":false}');
});

test("a message that is not a media state is ignored", () => {
  for (const bad of ["", "{", "null", '{"type":"media","muted":"yes","camera":true}', '{"type":"chat"}',
    `{"type":"media","muted":true,"camera":true,"pad":"${"x".repeat(1000)}"}`, 42]) {
    assert.equal(parseMediaState(bad), null, String(bad).slice(0, 40));
  }
});

test("translated texts fill in their {names}", () => {
  assert.equal(format("{name} took over the call", { name: "李医生" }), "李医生 took over the call");
  assert.equal(format("about {n} min", { n: 0 }), "about 0 min");
  assert.equal(format("{missing}!", {}), "!");
});
