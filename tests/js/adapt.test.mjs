// The adaptation ladder: when the video steps down and back up, and the sender's encoding at each level.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AUDIO_ONLY, LADDER, encodingFor, isGood, isPoor, step } from "../../web/static/js/adapt.js";

const POOR = { loss_pct: 15, rtt_ms: 200, available_kbps: 800 };
const GOOD = { loss_pct: 0, rtt_ms: 40, available_kbps: 2000 };
const fresh = () => ({ level: 0, poor: 0, good: 0 });

function run(state, samples) {
  return samples.map((s) => step(state, s)).filter(Boolean).map((d) => `${d.level}:${d.reason}`);
}

test("two poor samples step down, five good ones step back up, to audio only and back", () => {
  const state = fresh();
  const trail = run(state, [...Array(8).fill(POOR), ...Array(16).fill(GOOD)]);
  assert.deepEqual(trail, ["1:weak_link", "2:weak_link", "3:weak_link", "2:recovered", "1:recovered", "0:recovered"]);
  assert.equal(state.level, 0);
});

test("a good sample between poor ones does not step down", () => {
  assert.deepEqual(run(fresh(), [POOR, GOOD, POOR]), []);
});

test("a neutral sample breaks both runs", () => {
  const state = fresh();
  const neutral = { loss_pct: 5, rtt_ms: 100, available_kbps: 800 }; // neither poor nor good at level 0
  assert.deepEqual(run(state, [POOR, neutral, POOR]), []);
  assert.deepEqual(state, { level: 0, poor: 1, good: 0 });
});

test("a narrow bandwidth estimate alone steps down; a long round trip under 1.5 s does not", () => {
  assert.deepEqual(run(fresh(), [{ loss_pct: 0, rtt_ms: 50, available_kbps: 200 },
    { loss_pct: 0, rtt_ms: 50, available_kbps: 200 }]), ["1:weak_link"]);
  assert.equal(isPoor({ loss_pct: 0, rtt_ms: 1200, available_kbps: 800 }, 0), false);
  assert.equal(isPoor({ loss_pct: 0, rtt_ms: 1600 }, 0), true);
});

test("the top rung is never good enough to climb, and missing figures count as fine", () => {
  assert.equal(isGood(GOOD, 0), false);
  assert.equal(isGood({}, 2), true);
  assert.equal(isPoor({}, 0), false);
});

test("below the last rung nothing steps further down", () => {
  const state = { level: AUDIO_ONLY, poor: 0, good: 0 };
  assert.deepEqual(run(state, Array(6).fill(POOR)), []);
  assert.equal(state.level, AUDIO_ONLY);
});

test("the encoding of each level: the rung's limits, paused at audio only", () => {
  assert.deepEqual(encodingFor(0), { active: true, maxBitrate: 900_000, scaleResolutionDownBy: 1, maxFramerate: 30 });
  assert.deepEqual(encodingFor(1), { active: true, maxBitrate: 350_000, scaleResolutionDownBy: 2, maxFramerate: 15 });
  const paused = encodingFor(AUDIO_ONLY);
  assert.equal(paused.active, false);
  assert.equal(paused.maxBitrate, LADDER[AUDIO_ONLY - 1].maxBitrate);
  assert.equal(LADDER[AUDIO_ONLY].name, "audio_only");
});
