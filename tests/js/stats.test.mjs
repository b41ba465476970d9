// The call's figures from a getStats() report: loss, round trip, outgoing loss, rate, the quality word.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  StatsTracker, networkBars, outgoingLoss, qualityLevel, qualitySample, readReport,
} from "../../web/static/js/stats.js";

// A report as a browser gives it: a Map of stats objects by id.
function report({ audioIn = 0, audioLost = 0, videoIn = 0, videoLost = 0, bytes = 0, sent = 0, sentLost = 0,
  rtt = 0.05, available = 1_500_000, frames = 40 } = {}) {
  return new Map(Object.entries({
    IA: { type: "inbound-rtp", kind: "audio", packetsReceived: audioIn, packetsLost: audioLost, bytesReceived: bytes / 2,
      jitter: 0.004 },
    IV: { type: "inbound-rtp", kind: "video", packetsReceived: videoIn, packetsLost: videoLost, bytesReceived: bytes / 2,
      framesDecoded: frames, framesPerSecond: 20, frameWidth: 640, frameHeight: 480, jitter: 0.012 },
    OA: { type: "outbound-rtp", kind: "audio", packetsSent: sent / 2 },
    OV: { type: "outbound-rtp", kind: "video", packetsSent: sent / 2 },
    RV: { type: "remote-inbound-rtp", kind: "video", packetsLost: sentLost },
    T: { type: "transport", selectedCandidatePairId: "P1" },
    P0: { type: "candidate-pair", currentRoundTripTime: 9, availableOutgoingBitrate: 1 },
    P1: { type: "candidate-pair", currentRoundTripTime: rtt, availableOutgoingBitrate: available },
  }));
}

test("a report read: loss over every stream, the selected pair's round trip, the worst jitter", () => {
  const r = readReport(report({ audioIn: 450, audioLost: 10, videoIn: 540, videoLost: 0, sent: 800, sentLost: 4 }));
  assert.equal(r.stats.loss_pct, 1);
  assert.equal(r.stats.rtt_ms, 50);
  assert.equal(r.stats.jitter_ms, 12);
  assert.deepEqual([r.stats.frames_decoded, r.stats.fps, r.stats.width, r.stats.height], [40, 20, 640, 480]);
  assert.equal(r.availableKbps, 1500);
  assert.deepEqual([r.sent, r.sentLost], [800, 4]);
});

test("an empty report: no loss, no round trip yet", () => {
  const r = readReport(new Map());
  assert.equal(r.stats.loss_pct, 0);
  assert.equal(r.stats.rtt_ms, null);
  assert.equal(r.availableKbps, null);
  assert.equal(qualityLevel(r.stats), "unknown");
});

test("outgoing loss is of what was sent between two readings; a counter gone back tells nothing", () => {
  assert.equal(outgoingLoss(null, { sent: 100, sentLost: 0 }), null);
  assert.equal(outgoingLoss({ sent: 100, sentLost: 2 }, { sent: 190, sentLost: 12 }), 10);
  assert.equal(outgoingLoss({ sent: 100, sentLost: 2 }, { sent: 50, sentLost: 2 }), null);
  assert.equal(outgoingLoss({ sent: 100, sentLost: 2 }, { sent: 100, sentLost: 2 }), null);
  // Duplicates make the remote count go down: that is no loss.
  assert.equal(outgoingLoss({ sent: 100, sentLost: 5 }, { sent: 200, sentLost: 3 }), 0);
});

test("the tracker gives the received rate and the link sample the ladder steps on", () => {
  const tracker = new StatsTracker(2000);
  const first = tracker.update(report({ bytes: 100_000, sent: 1000, sentLost: 0, audioIn: 100 }));
  assert.equal(first.stats.bitrate_kbps, undefined);
  assert.deepEqual(first.link, { loss_pct: 0, rtt_ms: 50, available_kbps: 1500 });
  const second = tracker.update(report({ bytes: 350_000, sent: 1180, sentLost: 20, audioIn: 200 }));
  assert.equal(second.stats.bitrate_kbps, 1000);
  assert.equal(second.link.loss_pct, 10);
  tracker.restart(); // a new connection: outgoing counters from zero, incoming loss stands in
  const third = tracker.update(report({ bytes: 400_000, sent: 10, sentLost: 0, audioIn: 90, audioLost: 10 }));
  assert.equal(third.link.loss_pct, 10);
});

test("the quality word and its bars", () => {
  assert.equal(qualityLevel({ rtt_ms: 40, loss_pct: 0 }), "good");
  assert.equal(qualityLevel({ rtt_ms: 300, loss_pct: 0 }), "fair");
  assert.equal(qualityLevel({ rtt_ms: 40, loss_pct: 3 }), "fair");
  assert.equal(qualityLevel({ rtt_ms: 700, loss_pct: 0 }), "poor");
  assert.equal(qualityLevel({ rtt_ms: 40, loss_pct: 9 }), "poor");
  assert.deepEqual(["unknown", "poor", "fair", "good", "nonsense"].map(networkBars), [0, 1, 2, 4, 0]);
});

test("the sample reported to the server: known figures only, counts whole, the rest to two decimals", () => {
  const sample = qualitySample(7, false, { rtt_ms: 51.234, loss_pct: 0, jitter_ms: null, frames_decoded: 40.4,
    width: 640, height: 480, fps: undefined, bitrate_kbps: Number.NaN });
  assert.deepEqual(sample, { session_id: 7, audio_only: false, rtt_ms: 51.23, loss_pct: 0, frames_decoded: 40,
    width: 640, height: 480 });
});
