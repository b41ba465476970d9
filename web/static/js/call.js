// One video call in the browser: joins the session, negotiates (the specialist offers, the clinic answers),
// trickles ICE, restarts ICE after a network change, samples the stats, steps the video down or up with the
// link, and reports state and quality. The parts: peer.js (the connection), signaling.js (the session's
// commands and signals), stats.js (the figures), adapt.js (the ladder).

import { AUDIO_ONLY, LADDER, encodingFor, step } from "./adapt.js";
import { FLOWING, mediaStateMessage, openPeer, openStateChannel, parseMediaState, setVideoEncoding } from "./peer.js";
import { CallChannel, SignalInbox, parseSignal } from "./signaling.js";
import { QUALITY_REPORT_EVERY, STATS_EVERY_MS, StatsTracker, qualityLevel, qualitySample } from "./stats.js";

// An answerer whose peer is in the call but whose offer has not come (lost with a broker restart, say) asks for
// one after this long, a few times.
const OFFER_WAIT_MS = 5000;
const OFFER_ASKS = 3;

export class Call {
  // ui: {localVideo, remoteVideo, onState(key, kind), onQuality(level, stats), onChat(msg), onEnded(info),
  // onAdapt(level, reason), onPeerAdapt(level, reason), onPeerMedia(state), onRemoteStream(stream),
  // onColleagueInCall()}; the ones a page does not need may be left out.
  constructor(signal, consultationId, ui) {
    this.signal = signal;
    this.channel = new CallChannel(signal, consultationId);
    this.consultationId = consultationId;
    this.ui = ui;
    this.pc = null;
    this.role = null;
    this.localStream = null;
    this.pendingCandidates = [];
    this.inbox = new SignalInbox();
    this.ended = false;
    this.statsTimer = null;
    this.statsRound = 0;
    this.tracker = new StatsTracker(STATS_EVERY_MS);
    this.audioOnly = false;
    this.manualAudioOnly = false;
    this.muted = false;
    this.cameraOff = false;
    this.adaptState = { level: 0, poor: 0, good: 0 };
    this.stateChannel = null;
    signal.on("signal", (d) => this.onSignal(d));
    signal.on("peer_joined", (d) => this.onPeerJoined(d));
    this.channel.on("peer_left", () => this.ui.onState("peer_reconnecting", "warn"));
    this.channel.on("chat", (d) => this.ui.onChat(d));
    this.channel.on("session_ended", (d) => this.finish(d));
    // A colleague of the clinic took this doctor's place in the call: leave it, the consultation goes on.
    this.channel.on("handed_over", (d) => this.finish({ ...d, reason: "handed_over", consultation_state: "in_call" }));
    signal.onReconnect.push(() => this.rejoin());
  }

  get sessionId() {
    return this.channel.sessionId;
  }

  set sessionId(value) {
    this.channel.sessionId = value;
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
      if (err.code === "colleague_in_call" && this.ui.onColleagueInCall) this.ui.onColleagueInCall();
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
    const request = this.channel.join({ fresh, takeOver });
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
    for (const d of [...(joined.signals || []), ...this.inbox.takeEarly(this.sessionId)]) await this.onSignal(d);
    const flowing = FLOWING.includes(this.pc.iceConnectionState);
    const kept = resuming && !fresh && !newSession;
    const peerThere = joined.peer_present || joined.peer_expected;
    if (this.role === "answerer" && joined.peer_present) this.expectOffer();
    if (this.role === "offerer" && peerThere && (!offered || newSession) && !(kept && flowing)) {
      await this.makeOffer(kept);
    }
    if (this.role === "answerer" && kept && !flowing) await this.channel.send("restart_request", {});
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
    const first = this.pc === null;
    if (this.pc) this.pc.close();
    const pc = openPeer({
      iceServers: this.iceServers, stream: this.localStream, first,
      onTrack: (stream) => {
        if (this.ui.remoteVideo && this.ui.remoteVideo.srcObject !== stream) {
          this.ui.remoteVideo.srcObject = stream;
          if (this.ui.onRemoteStream) this.ui.onRemoteStream(stream);
        }
      },
      onCandidate: (payload) => this.channel.send("candidate", payload),
      onIceState: (state) => {
        this.channel.iceState(state);
        if (FLOWING.includes(state)) this.ui.onState("connected", "ok");
        if (state === "disconnected") this.ui.onState("network_unstable", "warn");
        if (state === "failed" && this.role === "offerer") this.makeOffer(true);
      },
    });
    this.pc = pc;
    this.pcIsNew = true;
    this.pendingCandidates = [];
    this.tracker.restart();
    // The other side learns of mute and camera straight from this side, peer to peer.
    this.stateChannel = openStateChannel(pc, {
      onOpen: () => this.sendMediaState(),
      onMessage: (text) => {
        const state = parseMediaState(text);
        if (state && this.ui.onPeerMedia) this.ui.onPeerMedia(state);
      },
    });
    if (!this.statsTimer) this.statsTimer = setInterval(() => this.sampleStats(), STATS_EVERY_MS);
  }

  sendMediaState() {
    const ch = this.stateChannel;
    if (ch && ch.readyState === "open") {
      // Audio only by choice is a camera turned off; paused by the ladder, the quality notice says so.
      ch.send(mediaStateMessage({ muted: this.muted, camera: !this.cameraOff && !this.manualAudioOnly }));
    }
  }

  async makeOffer(iceRestart) {
    this.offeredOn = this.pc; // before the first await: a peer_joined meanwhile must not offer a second time
    const offer = await this.pc.createOffer({ iceRestart: Boolean(iceRestart) });
    await this.pc.setLocalDescription(offer);
    await this.channel.send("offer", { sdp: this.pc.localDescription.sdp, ice_restart: Boolean(iceRestart) });
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
    } else if (!FLOWING.includes(this.pc.iceConnectionState)) {
      await this.makeOffer(true);
    }
  }

  expectOffer(asked = 0) {
    const pc = this.pc;
    clearTimeout(this.offerTimer);
    this.offerTimer = setTimeout(() => {
      if (this.ended || this.pc !== pc || pc.remoteDescription || asked >= OFFER_ASKS) return;
      this.channel.send("restart_request", {});
      this.expectOffer(asked + 1);
    }, OFFER_WAIT_MS);
  }

  async onSignal(raw) {
    const d = parseSignal(raw);
    if (!d || this.inbox.admit(d, this.pc ? this.sessionId : null) !== "handle") return;
    const p = d.payload;
    if (d.kind === "offer") {
      if (this.pc.remoteDescription && !p.ice_restart) this.createPeerConnection(); // the offerer started over
      await this.pc.setRemoteDescription({ type: "offer", sdp: p.sdp });
      await this.flushCandidates();
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.channel.send("answer", { sdp: this.pc.localDescription.sdp });
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
    const pc = this.pc;
    const report = await pc.getStats();
    if (pc !== this.pc || this.ended) return;
    const { stats, link } = this.tracker.update(report);
    this.stats = stats;
    this.adapt(link);
    this.ui.onQuality(qualityLevel(stats), stats);
    this.statsRound += 1;
    if (this.statsRound % QUALITY_REPORT_EVERY === 0 && this.sessionId !== null) {
      this.channel.quality(qualitySample(this.sessionId, this.audioOnly, stats));
    }
  }

  // One link sample about what this side sends: step the video down or up when the ladder says so.
  adapt(sample) {
    if (this.manualAudioOnly || this.ended) return null;
    const decision = step(this.adaptState, sample);
    if (!decision) return null;
    this.applyLevel(decision.level);
    const name = LADDER[decision.level].name;
    if (this.ui.onAdapt) this.ui.onAdapt(name, decision.reason);
    if (this.sessionId !== null) this.channel.send("quality_notice", { level: name, reason: decision.reason });
    return decision;
  }

  applyLevel(level) {
    this.audioOnly = level === AUDIO_ONLY;
    setVideoEncoding(this.pc, encodingFor(level));
  }

  setMuted(muted) {
    this.muted = muted;
    for (const t of this.localStream.getAudioTracks()) t.enabled = !muted;
    this.sendMediaState();
  }

  setCameraOff(off) {
    this.cameraOff = off;
    for (const t of this.localStream.getVideoTracks()) t.enabled = !off;
    this.sendMediaState();
  }

  setAudioOnly(on) {
    this.manualAudioOnly = on;
    this.audioOnly = on;
    for (const t of this.localStream.getVideoTracks()) t.enabled = !on && !this.cameraOff;
    setVideoEncoding(this.pc, on ? { active: false } : encodingFor(this.adaptState.level));
    this.sendMediaState();
  }

  chat(text) {
    return this.channel.chat(text);
  }

  async hangup() {
    if (this.sessionId !== null && !this.ended) await this.channel.hangup();
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
