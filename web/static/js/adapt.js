// How a call adapts to a weak link: a ladder of video settings the sender steps down when the link is poor
// and back up when it recovers; below the last rung, video pauses and audio goes on. Audio is never touched.

export const LADDER = [
  { name: "high", maxBitrate: 900_000, scaleResolutionDownBy: 1, maxFramerate: 30 },
  { name: "medium", maxBitrate: 350_000, scaleResolutionDownBy: 2, maxFramerate: 15 },
  { name: "low", maxBitrate: 150_000, scaleResolutionDownBy: 4, maxFramerate: 10 },
  { name: "audio_only" },
];
export const AUDIO_ONLY = LADDER.length - 1;
const DOWN_AFTER = 2; // poor samples in a row before stepping down (a sample every 2 s)
const UP_AFTER = 5; // good samples in a row before stepping up

// A sample: {loss_pct, rtt_ms, available_kbps} (loss: of what this side sent since the last sample;
// available: the sender's estimate of what it may send). A long round trip alone is no reason to drop video
// (a village line may have 300 ms of it and still carry 250 kbit/s); loss and a narrow estimate are.
export function isPoor(sample, level) {
  const rung = LADDER[Math.min(level, AUDIO_ONLY - 1)];
  return (sample.loss_pct ?? 0) > 10 || (sample.rtt_ms ?? 0) > 1500
    || (sample.available_kbps != null && sample.available_kbps < (rung.maxBitrate / 1000) * 0.6);
}

export function isGood(sample, level) {
  if (level === 0) return false;
  const above = LADDER[level - 1];
  return (sample.loss_pct ?? 0) < 3 && (sample.rtt_ms ?? 0) < 1000
    && (sample.available_kbps == null || sample.available_kbps > (above.maxBitrate / 1000) * 1.2);
}

// The next level after a sample, given the run of poor and good samples so far (state is updated in place).
export function step(state, sample) {
  if (isPoor(sample, state.level)) { state.poor += 1; state.good = 0; }
  else if (isGood(sample, state.level)) { state.good += 1; state.poor = 0; }
  else { state.poor = 0; state.good = 0; }
  if (state.poor >= DOWN_AFTER && state.level < AUDIO_ONLY) {
    state.level += 1; state.poor = 0;
    return { level: state.level, reason: "weak_link" };
  }
  if (state.good >= UP_AFTER && state.level > 0) {
    state.level -= 1; state.good = 0;
    return { level: state.level, reason: "recovered" };
  }
  return null;
}

// The video sender's encoding at a level: the rung's limits, inactive below the last video rung.
export function encodingFor(level) {
  const rung = LADDER[Math.min(Math.max(level, 0), AUDIO_ONLY - 1)];
  return {
    active: level < AUDIO_ONLY, maxBitrate: rung.maxBitrate, scaleResolutionDownBy: rung.scaleResolutionDownBy,
    maxFramerate: rung.maxFramerate,
  };
}

