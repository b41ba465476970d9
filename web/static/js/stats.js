// A call's figures from its peer connection's getStats() report: what arrives (loss, jitter, frames, rate),
// the selected pair's round trip, what this side sends and loses; the quality word and bars shown; the
// sample the server keeps. No DOM and no peer connection here: a report is any Map-like of stats objects.

export const STATS_EVERY_MS = 2000;
export const QUALITY_REPORT_EVERY = 5; // report one sample to the server every 5 stats rounds

// What one report says, summed over its streams.
export function readReport(report) {
  const s = { rtt_ms: null, loss_pct: null, jitter_ms: null, frames_decoded: 0, fps: null, width: null, height: null };
  let received = 0;
  let lost = 0;
  let bytes = 0;
  let sent = 0;
  let sentLost = 0;
  let availableKbps = null;
  report.forEach((r) => {
    if (r.type === "inbound-rtp") {
      received += r.packetsReceived || 0;
      lost += r.packetsLost || 0;
      bytes += r.bytesReceived || 0;
      if (r.kind === "video") {
        s.frames_decoded = r.framesDecoded || 0;
        s.fps = r.framesPerSecond ?? null;
        s.width = r.frameWidth ?? null;
        s.height = r.frameHeight ?? null;
      }
      if (r.jitter !== undefined) s.jitter_ms = Math.max(s.jitter_ms || 0, r.jitter * 1000);
    }
    if (r.type === "outbound-rtp") sent += r.packetsSent || 0;
    // The receiver's count of what it missed of ours; negative after duplicates, which is no loss.
    if (r.type === "remote-inbound-rtp") sentLost += Math.max(0, r.packetsLost || 0);
    // The round trip of the pair the transport actually selected, and what the sender may push through it.
    if (r.type === "transport" && r.selectedCandidatePairId) {
      const pair = report.get(r.selectedCandidatePairId);
      if (pair && pair.currentRoundTripTime !== undefined) s.rtt_ms = pair.currentRoundTripTime * 1000;
      if (pair && pair.availableOutgoingBitrate !== undefined) availableKbps = pair.availableOutgoingBitrate / 1000;
    }
  });
  s.loss_pct = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
  return { stats: s, bytes, sent, sentLost, availableKbps };
}

// Loss of what this side sent between two readings; null when it cannot be told (no earlier reading, or the
// counters went back, as they do on a new connection).
export function outgoingLoss(before, now) {
  if (!before) return null;
  const dSent = now.sent - before.sent;
  const dLost = Math.max(0, now.sentLost - before.sentLost);
  if (dSent < 0 || dSent + dLost <= 0) return null;
  return (100 * dLost) / (dSent + dLost);
}

// Readings over time: the received rate and the outgoing loss need the previous reading.
export class StatsTracker {
  constructor(everyMs = STATS_EVERY_MS) {
    this.everyMs = everyMs;
    this.lastBytes = null;
    this.lastSent = null;
  }

  // A new peer connection counts from zero.
  restart() {
    this.lastSent = null;
  }

  // {stats, link}: the figures shown and reported, and the link sample for the adaptation ladder.
  update(report) {
    const r = readReport(report);
    if (this.lastBytes !== null) r.stats.bitrate_kbps = ((r.bytes - this.lastBytes) * 8) / this.everyMs;
    this.lastBytes = r.bytes;
    const outLoss = outgoingLoss(this.lastSent, r);
    this.lastSent = { sent: r.sent, sentLost: r.sentLost };
    return {
      stats: r.stats,
      link: { loss_pct: outLoss ?? r.stats.loss_pct, rtt_ms: r.stats.rtt_ms, available_kbps: r.availableKbps },
    };
  }
}

// The word shown beside the call: good, fair, poor, or unknown before the first round trip is measured.
export function qualityLevel(s) {
  if (s.rtt_ms === null || s.rtt_ms === undefined) return "unknown";
  if (s.loss_pct > 8 || s.rtt_ms > 600) return "poor";
  if (s.loss_pct > 2 || s.rtt_ms > 250) return "fair";
  return "good";
}

// How many of the four network bars are lit for a quality word.
export const BARS = { unknown: 0, poor: 1, fair: 2, good: 4 };
export function networkBars(level) {
  return BARS[level] ?? 0;
}

const WHOLE = new Set(["frames_decoded", "width", "height"]);

// The body of a session.quality command: only the figures known, counts whole, the rest to two decimals.
export function qualitySample(sessionId, audioOnly, s) {
  const sample = { session_id: sessionId, audio_only: audioOnly };
  for (const [k, v] of Object.entries(s)) {
    if (v === null || v === undefined || !Number.isFinite(v)) continue;
    sample[k] = WHOLE.has(k) ? Math.round(v) : Number(v.toFixed(2));
  }
  return sample;
}
