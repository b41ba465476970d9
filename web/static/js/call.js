// One video call in the browser: joins the session, negotiates (the specialist offers, the clinic answers),
// trickles ICE, restarts ICE after a network change, watches getStats, and reports state and quality.

import { AUDIO_ONLY, LADDER, step } from "./adapt.js";

const STATS_EVERY_MS = 2000;
const QUALITY_REPORT_EVERY = 5; // report one sample to the server every 5 stats rounds
// A connection made in advance is used only while its TURN credentials are surely valid (they last an hour
// by default); an older one is made again.
const STANDBY_MAX_AGE_MS = 20 * 60 * 1000;
// An answerer whose peer is in the call but whose offer has not come (lost with a broker restart, say) asks for
// one after this long, a few times.
const OFFER_WAIT_MS = 5000;
const OFFER_ASKS = 3;

// A peer connection made while the page waits for its call: it gathers candidates at once (a TURN allocation
// takes two round trips, over a second on a village line), and the call takes it when it starts.
let standby = null;

export function prepareConnection(iceServers) {
  if (!iceServers || !window.RTCPeerConnection) return;
  if (standby && Date.now() - standby.madeAt < STANDBY_MAX_AGE_MS) return;
  releaseConnection();
  standby = { pc: new RTCPeerConnection({ iceServers, iceCandidatePoolSize: 1 }), madeAt: Date.now() };
}

export function releaseConnection() {
  if (standby) standby.pc.close();
  standby = null;
}

function takeStandby() {
  const ready = standby && Date.now() - standby.madeAt < STANDBY_MAX_AGE_MS ? standby.pc : null;
  if (!ready) releaseConnection();
  standby = null;
  return ready;
}

export class Call {
  constructor(signal, consultationId, ui) {
    this.signal = signal;
    this.consultationId = consultationId;
    this.ui = ui; // {localVideo, remoteVideo, onState(text, kind), onQuality(level, stats), onChat(msg), onEnded(info)}
    this.pc = null;
    this.sessionId = null;
    this.role = null;
    this.localStream = null;
    this.pendingCandidates = [];
    this.early = []; // signals that came before this page's join returned
    this.seen = new Set(); // ids of signals handled (one may come both kept for the join and sent)
    this.ended = false;
    this.statsTimer = null;
    this.statsRound = 0;
    this.lastBytes = null;
    this.lastSent = null;
    this.audioOnly = false;
    this.manualAudioOnly = false;
    this.adaptState = { level: 0, poor: 0, good: 0 };
    signal.on("signal", (d) => this.onSignal(d));
    signal.on("peer_joined", (d) => this.onPeerJoined(d));
    signal.on("peer_left", (d) => d.session_id === this.sessionId && this.ui.onState("peer_reconnecting", "warn"));
    signal.on("chat", (d) => d.session_id === this.sessionId && this.ui.onChat(d));
    signal.on("session_ended", (d) => d.session_id === this.sessionId && this.finish(d));
    // A colleague of the clinic took this doctor's place in the call: leave it, the consultation goes on.
    signal.on("handed_over", (d) => d.session_id === this.sessionId
      && this.finish({ ...d, reason: "handed_over", consultation_state: "in_call" }));
    signal.onReconnect.push(() => this.rejoin());
  }

  // `ready`: the session_ready event, when the call starts from it. Its ICE servers let the page make its
  // peer connection before the join's reply comes back.
  async start(ready = null) {
    try {
      this.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    } catch (err) {
      this.ui.onState("camera_blocked", "warn");
      this.localStream = await navigator.mediaDevices.getUserMedia({ audio: true }).catch(() => new MediaStream());
    }
    if (this.ui.localVideo) this.ui.localVideo.srcObject = this.localStream;
    if (ready && ready.ice_servers && !this.pc) {
      this.sessionId = ready.session_id;
      this.role = ready.role;
      this.iceServers = ready.ice_servers;
      this.createPeerConnection();
    }
    try {
      await this.join(false);
    } catch (err) {
      if (err.code === "colleague_in_call") this.ui.onColleagueInCall();
      else this.ui.onState("reconnect_failed", "warn");
    }
  }

  // Take a colleague's place beside the patient in this call (the hand-over is recorded).
  async takeOver() {
    await this.join(false, true);
  }

  async join(resuming, takeOver = false) {
    // A new peer connection on this side (first join, or after a page reload) makes the other side
    // start a new one too; after a WebSocket drop only, the existing connection may still carry media.
    const fresh = !this.pc || this.pcIsNew;
    const request = this.signal.call("session.join",
      { consultation_id: this.consultationId, fresh, take_over: takeOver });
    // The session is known already (from session_ready) and this side offers on a new connection: the offer
    // goes right behind the join. The server handles a connection's commands in order, and keeps the offer
    // for a peer that has not joined yet.
    let offered = false;
    if (this.role === "offerer" && this.sessionId !== null && this.pc && this.offeredOn !== this.pc && !resuming) {
      await this.makeOffer(false);
      offered = true;
    }
    const joined = await request;
    const newSession = joined.session_id !== this.sessionId;
    this.sessionId = joined.session_id;
    this.role = joined.role;
    this.iceServers = joined.ice_servers;
    if (!this.pc || newSession) this.createPeerConnection();
    this.pcIsNew = false;
    this.ui.onState(joined.peer_present ? "connecting" : "waiting_for_peer", "info");
    const early = this.early.filter((d) => d.session_id === this.sessionId);
    this.early = [];
    for (const d of [...(joined.signals || []), ...early]) await this.onSignal(d);
    const flowing = ["connected", "completed"].includes(this.pc.iceConnectionState);
    const kept = resuming && !fresh && !newSession;
    const peerThere = joined.peer_present || joined.peer_expected;
    if (this.role === "answerer" && joined.peer_present) this.expectOffer();
    if (this.role === "offerer" && peerThere && (!offered || newSession) && !(kept && flowing)) {
      await this.makeOffer(kept);
    }
    if (this.role === "answerer" && kept && !flowing) {
      await this.signal.call("session.signal", { session_id: this.sessionId, kind: "restart_request", payload: {} });
    }
  }

  async rejoin() {
    if (this.ended || this.sessionId === null) return;
    this.ui.onState("reconnecting", "warn");
    try {
      await this.join(true);
    } catch (err) {
      this.ui.onState(err.code === "session_ended" ? "ended" : "reconnect_failed", "warn");
    }
  }

  createPeerConnection() {
    if (this.pc) this.pc.close();
    // Gather candidates (a TURN allocation takes two round trips) as soon as the connection exists, not only
    // once the offer or answer is set: on a slow line that overlaps with the other side getting ready.
    const pc = (this.pc === null && takeStandby())
      || new RTCPeerConnection({ iceServers: this.iceServers, iceCandidatePoolSize: 1 });
    this.pc = pc;
    this.pcIsNew = true;
    this.pendingCandidates = [];
    this.lastSent = null; // a new connection counts from zero
    for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    pc.ontrack = (ev) => {
      if (this.ui.remoteVideo && this.ui.remoteVideo.srcObject !== ev.streams[0]) {
        this.ui.remoteVideo.srcObject = ev.streams[0];
      }
    };
    pc.onicecandidate = (ev) => {
      if (!ev.candidate || !ev.candidate.candidate) return;
      this.send("candidate", {
        candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex,
      });
    };
    pc.oniceconnectionstatechange = () => {
      const state = pc.iceConnectionState;
      this.signal.call("session.ice_state", { session_id: this.sessionId, state }).catch(() => {});
      if (state === "connected" || state === "completed") this.ui.onState("connected", "ok");
      if (state === "disconnected") this.ui.onState("network_unstable", "warn");
      if (state === "failed" && this.role === "offerer") this.makeOffer(true);
    };
    if (!this.statsTimer) this.statsTimer = setInterval(() => this.sampleStats(), STATS_EVERY_MS);
  }

  send(kind, payload) {
    return this.signal.call("session.signal", { session_id: this.sessionId, kind, payload }).catch(() => {});
  }

  async makeOffer(iceRestart) {
    this.offeredOn = this.pc; // before the first await: a peer_joined meanwhile must not offer a second time
    const offer = await this.pc.createOffer({ iceRestart: Boolean(iceRestart) });
    await this.pc.setLocalDescription(offer);
    await this.send("offer", { sdp: this.pc.localDescription.sdp, ice_restart: Boolean(iceRestart) });
  }

  async onPeerJoined(d) {
    if (d.session_id !== this.sessionId) return;
    this.ui.onState(d.resumed ? "peer_back" : "connecting", "info");
    if (this.role !== "offerer") {
      this.expectOffer();
      return;
    }
    if (d.fresh) {
      // The other side starts over with a new peer connection (a reload): so do we. On its first join it
      // got our offer with its join, if we had made one.
      if (d.resumed || this.pc.remoteDescription) {
        this.createPeerConnection();
        await this.makeOffer(false);
      } else if (this.offeredOn !== this.pc) {
        await this.makeOffer(false);
      }
    } else if (!["connected", "completed"].includes(this.pc.iceConnectionState)) {
      await this.makeOffer(true);
    }
  }

  expectOffer(asked = 0) {
    const pc = this.pc;
    clearTimeout(this.offerTimer);
    this.offerTimer = setTimeout(() => {
      if (this.ended || this.pc !== pc || pc.remoteDescription || asked >= OFFER_ASKS) return;
      this.send("restart_request", {});
      this.expectOffer(asked + 1);
    }, OFFER_WAIT_MS);
  }

  async onSignal(d) {
    if (this.sessionId === null || !this.pc) {
      if (this.early.length < 500) this.early.push(d); // handled once the join has returned
      return;
    }
    if (d.session_id !== this.sessionId) return;
    if (d.id) {
      if (this.seen.has(d.id)) return;
      this.seen.add(d.id);
    }
    const p = d.payload;
    if (d.kind === "offer") {
      if (this.pc.remoteDescription && !p.ice_restart) this.createPeerConnection(); // the offerer started over
      await this.pc.setRemoteDescription({ type: "offer", sdp: p.sdp });
      await this.flushCandidates();
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.send("answer", { sdp: this.pc.localDescription.sdp });
    } else if (d.kind === "answer") {
      await this.pc.setRemoteDescription({ type: "answer", sdp: p.sdp });
      await this.flushCandidates();
    } else if (d.kind === "candidate") {
      if (this.pc.remoteDescription) await this.pc.addIceCandidate(p).catch(() => {});
      else this.pendingCandidates.push(p);
    } else if (d.kind === "restart_request" && this.role === "offerer") {
      await this.makeOffer(true);
    } else if (d.kind === "quality_notice" && this.ui.onPeerAdapt) {
      this.ui.onPeerAdapt(p.level, p.reason);
    }
  }

  async flushCandidates() {
    const waiting = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of waiting) await this.pc.addIceCandidate(c).catch(() => {});
  }

  async sampleStats() {
    if (!this.pc || this.ended) return;
    const report = await this.pc.getStats();
    const s = { rtt_ms: null, loss_pct: null, jitter_ms: null, frames_decoded: 0, fps: null, width: null, height: null };
    let received = 0;
    let lost = 0;
    let bytes = 0;
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
    });
    // The round trip of the pair the transport actually selected, and what the sender may push through it.
    let availableKbps = null;
    // What this side sent and what the other side reported lost of it, since the last sample.
    let sent = 0;
    let sentLost = 0;
    report.forEach((r) => {
      if (r.type === "outbound-rtp") sent += r.packetsSent || 0;
      if (r.type === "remote-inbound-rtp") sentLost += Math.max(0, r.packetsLost || 0);
      if (r.type !== "transport" || !r.selectedCandidatePairId) return;
      const pair = report.get(r.selectedCandidatePairId);
      if (pair && pair.currentRoundTripTime !== undefined) s.rtt_ms = pair.currentRoundTripTime * 1000;
      if (pair && pair.availableOutgoingBitrate !== undefined) availableKbps = pair.availableOutgoingBitrate / 1000;
    });
    s.loss_pct = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
    if (this.lastBytes !== null) s.bitrate_kbps = ((bytes - this.lastBytes) * 8) / STATS_EVERY_MS;
    this.lastBytes = bytes;
    this.stats = s;
    let outLoss = null;
    if (this.lastSent) {
      const dSent = sent - this.lastSent.sent;
      const dLost = sentLost - this.lastSent.lost;
      if (dSent >= 0 && dSent + dLost > 0) outLoss = (100 * Math.max(0, dLost)) / (dSent + Math.max(0, dLost));
    }
    this.lastSent = { sent, lost: sentLost };
    this.adapt({ loss_pct: outLoss ?? s.loss_pct, rtt_ms: s.rtt_ms, available_kbps: availableKbps });
    const level = s.rtt_ms === null ? "unknown" : s.loss_pct > 8 || s.rtt_ms > 600 ? "poor"
      : s.loss_pct > 2 || s.rtt_ms > 250 ? "fair" : "good";
    this.ui.onQuality(level, s);
    this.statsRound += 1;
    if (this.statsRound % QUALITY_REPORT_EVERY === 0 && this.sessionId !== null) {
      const sample = { session_id: this.sessionId, audio_only: this.audioOnly };
      for (const [k, v] of Object.entries(s)) {
        if (v !== null && v !== undefined) sample[k] = k === "frames_decoded" || k === "width" || k === "height"
          ? Math.round(v) : Number(v.toFixed(2));
      }
      this.signal.call("session.quality", sample).catch(() => {});
    }
  }

  // One link sample about what this side sends: step the video down or up when the ladder says so.
  adapt(sample) {
    if (this.manualAudioOnly || this.ended) return null;
    const decision = step(this.adaptState, sample);
    if (!decision) return null;
    this.applyLevel(decision.level);
    if (this.ui.onAdapt) this.ui.onAdapt(LADDER[decision.level].name, decision.reason);
    if (this.sessionId !== null) {
      this.send("quality_notice", { level: LADDER[decision.level].name, reason: decision.reason });
    }
    return decision;
  }

  applyLevel(level) {
    this.audioOnly = level === AUDIO_ONLY;
    if (!this.pc) return;
    const rung = LADDER[Math.min(level, AUDIO_ONLY - 1)];
    for (const sender of this.pc.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      const params = sender.getParameters();
      if (!params.encodings || !params.encodings.length) params.encodings = [{}];
      Object.assign(params.encodings[0], {
        active: level < AUDIO_ONLY, maxBitrate: rung.maxBitrate, scaleResolutionDownBy: rung.scaleResolutionDownBy,
        maxFramerate: rung.maxFramerate,
      });
      sender.setParameters(params).catch(() => {});
    }
  }

  setMuted(muted) {
    for (const t of this.localStream.getAudioTracks()) t.enabled = !muted;
  }

  setCameraOff(off) {
    for (const t of this.localStream.getVideoTracks()) t.enabled = !off;
  }

  setAudioOnly(on) {
    this.manualAudioOnly = on;
    this.audioOnly = on;
    this.setCameraOff(on);
    if (!this.pc) return;
    for (const sender of this.pc.getSenders()) {
      if (sender.track && sender.track.kind === "video") {
        const params = sender.getParameters();
        if (!params.encodings || !params.encodings.length) params.encodings = [{}];
        params.encodings[0].active = !on;
        sender.setParameters(params).catch(() => {});
      }
    }
  }

  async chat(text) {
    return this.signal.call("session.chat", { session_id: this.sessionId, text });
  }

  async hangup() {
    if (this.sessionId !== null && !this.ended) {
      await this.signal.call("session.hangup", { session_id: this.sessionId }).catch(() => {});
    }
  }

  finish(info) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.statsTimer);
    clearTimeout(this.offerTimer);
    if (this.pc) this.pc.close();
    if (this.localStream) for (const t of this.localStream.getTracks()) t.stop();
    this.ui.onEnded(info);
  }
}
