// The pre-call connection check: a WebRTC connection to the server's own peer with the ICE servers of a
// real call; media both ways for a few seconds; the server measures the upload, this page the download.

import { getJSON, sendJSON } from "./http.js";
import { texts } from "./texts.js";
import { formatAmount } from "./when.js";

const t = texts("precheck-texts");
const state = document.getElementById("precheck-state");
const progress = document.getElementById("precheck-progress");
const button = document.getElementById("btn-precheck");

function show(key, kind, vars = {}) {
  state.textContent = t(key, vars);
  state.className = `banner ${kind || ""}`;
  state.dataset.state = key;
}

async function inbound(pc) {
  const out = { bytes: 0, lost: 0, received: 0, jitter: null, video: 0, audio: 0, rtt: null };
  let transportBytes = null;
  (await pc.getStats()).forEach((r) => {
    // Everything the connection carried in (media, RTCP, retransmissions), as the server counts what it sent.
    if (r.type === "transport" && r.bytesReceived !== undefined) transportBytes = (transportBytes || 0) + r.bytesReceived;
    if (r.type === "inbound-rtp") {
      out.bytes += r.bytesReceived || 0;
      out.lost += Math.max(0, r.packetsLost || 0);
      out.received += r.packetsReceived || 0;
      if (r.kind === "audio" && r.jitter !== undefined) out.jitter = r.jitter * 1000;
      if (r.kind === "video") out.video = r.framesDecoded || 0;
      if (r.kind === "audio") out.audio = Math.round((r.totalSamplesReceived || 0) / 960);
    }
    if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime !== undefined) out.rtt = r.currentRoundTripTime * 1000;
  });
  if (transportBytes !== null) out.bytes = transportBytes;
  return out;
}

async function run() {
  button.disabled = true;
  document.getElementById("precheck-figures").hidden = true;
  show("camera");
  let stream;
  let camera = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch {
    camera = false;
    stream = await navigator.mediaDevices.getUserMedia({ audio: true }).catch(() => new MediaStream());
  }
  document.getElementById("precheck-local").srcObject = stream;
  let pc = null;
  try {
    const config = await getJSON("/api/precheck/config");
    pc = new RTCPeerConnection({ iceServers: config.ice_servers });
    const types = new Set();
    pc.onicecandidate = (ev) => { if (ev.candidate && ev.candidate.type) types.add(ev.candidate.type); };
    pc.ontrack = (ev) => { document.getElementById("precheck-remote").srcObject = ev.streams[0] || new MediaStream([ev.track]); };
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    if (!stream.getVideoTracks().length) pc.addTransceiver("video", { direction: "recvonly" });
    if (!stream.getAudioTracks().length) pc.addTransceiver("audio", { direction: "recvonly" });
    show("connecting");
    await pc.setLocalDescription(await pc.createOffer());
    // One offer with every candidate in it: wait for gathering (at most 5 s, as a relay may be slow).
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      const timer = setTimeout(resolve, 5000);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
    let begun;
    try {
      begun = await sendJSON("POST", "/api/precheck", { sdp: pc.localDescription.sdp });
    } catch (err) {
      if (err.code !== "busy") throw err;
      show("busy", "warn", { s: err.retryAfterS ?? (err.message.match(/\d+/) || ["10"])[0] });
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: begun.sdp });
    show("measuring");
    progress.hidden = false;
    // Media both ways until the connection is up and past the encoders' start, then the measurement proper.
    // The round trip is the least seen: the link's own delay, not the queue the check's media built.
    const warmup = (begun.warmup_s ?? 1.5) * 1000;
    // The same window as the server's peer: it sends for the warm-up and `seconds` after connecting.
    const total = warmup + begun.seconds * 1000;
    const started = performance.now();
    let rttMin = null;
    let before = null;
    let measureFrom = null;
    let connectedAt = null;
    // Up to 15 s to connect (as the server's peer waits), then the warm-up and the measurement.
    const until = () => (connectedAt === null ? started + 15000 : connectedAt + total);
    while (performance.now() < until()) {
      const now = performance.now();
      if (connectedAt === null && ["connected", "completed"].includes(pc.iceConnectionState)) connectedAt = now;
      progress.value = Math.min(100, (100 * (now - (connectedAt ?? now))) / total);
      const sample = await inbound(pc);
      if (sample.rtt !== null) rttMin = rttMin === null ? sample.rtt : Math.min(rttMin, sample.rtt);
      if (before === null && connectedAt !== null && now - connectedAt >= warmup) {
        before = sample;
        measureFrom = now;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const after = await inbound(pc);
    if (before === null) { before = { ...after, bytes: 0, lost: 0, received: 0 }; measureFrom = started; }
    const seconds = Math.max(0.001, (performance.now() - measureFrom) / 1000);
    const connected = ["connected", "completed"].includes(pc.iceConnectionState) || after.video + after.audio > 0;
    const got = after.received - before.received;
    const lost = after.lost - before.lost;
    const down = {
      kbps: ((after.bytes - before.bytes) * 8) / seconds / 1000, loss_pct: got + lost > 0 ? (100 * lost) / (got + lost) : 0,
      jitter_ms: after.jitter, rtt_ms: rttMin, video_frames: after.video, audio_frames: after.audio,
    };
    const result = await sendJSON("POST", `/api/precheck/${begun.id}/report`,
      { connected, camera, candidate_types: [...types], down });
    const kind = result.verdict === "video_ok" ? "ok" : "warn";
    state.textContent = t(result.verdict) + (result.cause ? ` ${t(`cause_${result.cause}`)}` : "");
    state.className = `banner ${kind}`;
    state.dataset.state = result.verdict;
    // Milliseconds in the page's words (毫秒); kbit/s is written alike in both languages.
    const fmt = (v, unit) => (v === null || v === undefined ? "—"
      : unit === "ms" ? formatAmount(Math.round(v), "millisecond") : `${Math.round(v)} ${unit}`);
    document.getElementById("fig-up").textContent = fmt(result.up && result.up.kbps, "kbit/s");
    // The download is a fixed-rate test stream: show how much of it arrived.
    document.getElementById("fig-down").textContent = result.down && result.probe_kbps
      ? t("down_of", { got: Math.round(result.down.kbps), sent: Math.round(result.probe_kbps) })
      : fmt(result.down && result.down.kbps, "kbit/s");
    document.getElementById("fig-rtt").textContent = fmt((result.up && result.up.rtt_ms) || (result.down && result.down.rtt_ms), "ms");
    document.getElementById("fig-loss").textContent = `${Math.max(result.up ? result.up.loss_pct : 0, result.down ? result.down.loss_pct : 0).toFixed(1)} %`;
    document.getElementById("fig-jitter").textContent = fmt(result.up && result.up.jitter_ms, "ms");
    document.getElementById("precheck-figures").hidden = false;
  } catch (err) {
    show("failed", "warn", { message: err.message || String(err) });
  } finally {
    progress.hidden = true;
    button.disabled = false;
    if (pc) pc.close();
    for (const track of stream.getTracks()) track.stop();
  }
}

button.addEventListener("click", run);
