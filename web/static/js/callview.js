// Binds calls to the call screen of a page: the stage (videos, controls, timer, connection), the chat, the
// notices, and what the stage shows once the call ended. One view per page; each call (a rejoin is a new one)
// runs in it.

import { Call } from "./call.js";
import {
  afterCallKey, canRejoin, formatDuration, pausedByNotice, remoteVideoState, shortcutFor,
} from "./callstate.js";
import { postForm } from "./http.js";
import { networkBars } from "./stats.js";
import { texts } from "./texts.js";
import { fileStamp } from "./when.js";

const FADE_OK_MS = 4000; // a good-news notice steps back after this long; a warning stays
const startedKey = (sessionId) => `telehealth-call-started-${sessionId}`;

// A still photo at the camera's full resolution (a rash, an ECG printout), sent as an attachment: it reaches
// the specialist even when video is paused, and it is part of the record.
async function takeSnapshot(call) {
  const track = call.localStream && call.localStream.getVideoTracks()[0];
  if (!track) throw new Error("no camera");
  const wasEnabled = track.enabled;
  track.enabled = true;
  try {
    const { width, height } = track.getSettings();
    const video = document.createElement("video");
    video.muted = true;
    video.srcObject = new MediaStream([track]);
    await video.play();
    await new Promise((r) => setTimeout(r, 150)); // a fresh frame after re-enabling the camera
    const canvas = document.createElement("canvas");
    canvas.width = width || video.videoWidth;
    canvas.height = height || video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    video.srcObject = null;
    return await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.92));
  } finally {
    track.enabled = wasEnabled;
  }
}

export class CallView {
  // role: "clinic" | "specialist"; onEnded(info): the page's own reaction (its state line, its buttons);
  // onRejoin(): the page starts the call again (and says so in its own state line).
  constructor(signal, consultationId, { role, onEnded = () => {}, onRejoin = null }) {
    this.signal = signal;
    this.consultationId = consultationId;
    this.role = role;
    this.onEndedPage = onEnded;
    this.onRejoin = onRejoin || (() => this.start());
    this.t = texts("call-texts");
    this.call = null;
    this.startedAt = null;
    this.timer = null;
    this.fadeTimer = null;
    this.peer = { peerCamera: null, peerPaused: false, frames: false };
    this.state = null; // the consultation's state, for what follows the call
    const $ = (id) => document.getElementById(id);
    this.el = {
      page: $("page"), panel: $("call"), stage: $("stage"), banner: $("call-state"), quality: $("quality"),
      qualityBox: $("quality-box"), bars: $("quality-bars"), timer: $("call-timer"), remoteTile: $("remote-tile"),
      remoteVideo: $("remote-video"), remoteCover: $("remote-cover-text"), remoteMuted: $("remote-muted"),
      localTile: $("local-tile"), localVideo: $("local-video"), localMuted: $("local-muted"),
      localCamOff: $("local-cam-off"), mute: $("btn-mute"), camera: $("btn-camera"), audioOnly: $("btn-audio-only"),
      snapshot: $("btn-snapshot"), hangup: $("btn-hangup"), fullscreen: $("btn-fullscreen"), pip: $("btn-pip"),
      takeOver: $("btn-take-over"), ended: $("call-ended"), endedDuration: $("ended-duration"),
      endedNext: $("ended-next"), rejoin: $("btn-rejoin"), chat: $("call-chat"), chatLog: $("chat-log"),
      chatForm: $("chat-form"), chatText: $("chat-text"), toast: $("call-toast"), toastImage: $("toast-image"),
      toastLink: $("toast-link"), toastText: $("toast-text"), toastClose: $("toast-close"),
    };
    this.bind();
  }

  get active() {
    return this.call !== null && !this.call.ended;
  }

  // ---- the page's controls, bound once ----

  bind() {
    const { el } = this;
    const toggle = (btn, fn) => btn.addEventListener("click", () => {
      if (!this.active) return;
      const on = btn.dataset.on !== "true";
      btn.dataset.on = String(on);
      fn(on);
      this.showOwnState();
    });
    toggle(el.mute, (on) => this.call.setMuted(on));
    toggle(el.camera, (on) => this.call.setCameraOff(on));
    toggle(el.audioOnly, (on) => this.call.setAudioOnly(on));
    el.hangup.addEventListener("click", () => this.hangup());
    if (el.snapshot) el.snapshot.addEventListener("click", () => this.sendSnapshot());
    el.takeOver.addEventListener("click", async () => {
      el.takeOver.disabled = true;
      try {
        await this.call.takeOver();
        el.takeOver.hidden = true;
      } catch (err) {
        this.notice(err.message || String(err), "warn", "take_over_failed");
      } finally {
        el.takeOver.disabled = false;
      }
    });
    el.fullscreen.addEventListener("click", () => this.toggleFullscreen());
    document.addEventListener("fullscreenchange", () => this.showScreenModes());
    if (document.pictureInPictureEnabled && el.remoteVideo.requestPictureInPicture) {
      el.pip.hidden = false;
      el.pip.addEventListener("click", () => this.togglePictureInPicture());
      el.remoteVideo.addEventListener("enterpictureinpicture", () => this.showScreenModes());
      el.remoteVideo.addEventListener("leavepictureinpicture", () => this.showScreenModes());
    }
    // The other side's first frame (again after they start over with a new connection).
    el.remoteVideo.addEventListener("loadeddata", () => { this.peer.frames = true; this.showPeerState(); });
    el.remoteVideo.addEventListener("emptied", () => { this.peer.frames = false; this.showPeerState(); });
    document.addEventListener("keydown", (ev) => {
      const action = shortcutFor(ev);
      if (!action || !this.active) return;
      ev.preventDefault();
      if (action === "mute") el.mute.click();
      else if (action === "camera") el.camera.click();
      else if (action === "hangup") this.hangup();
    });
    el.chatForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = el.chatText.value.trim();
      if (!text || !this.active) return;
      el.chatText.value = "";
      try {
        await this.call.chat(text);
        this.addChat(this.t("you"), text);
      } catch (err) {
        el.chatText.value = text;
        this.notice(err.message || String(err), "warn", "chat_failed");
      }
    });
    el.rejoin.addEventListener("click", () => this.onRejoin());
    el.toastClose.addEventListener("click", () => { el.toast.hidden = true; });
  }

  // ---- a call ----

  start(ready = null) {
    if (this.active) return this.call;
    const { el, t } = this;
    el.panel.hidden = false;
    if (el.chat) el.chat.hidden = false;
    this.setMode("live");
    el.ended.hidden = true;
    el.chatText.disabled = false;
    el.chatForm.querySelector("button").disabled = false;
    el.chatText.placeholder = el.chatText.dataset.placeholder || el.chatText.placeholder;
    for (const btn of [el.mute, el.camera, el.audioOnly]) btn.dataset.on = "false";
    for (const b of el.panel.querySelectorAll(".controls button")) b.disabled = false;
    this.peer = { peerCamera: null, peerPaused: false, frames: false };
    el.remoteMuted.hidden = true;
    el.remoteTile.dataset.muted = "false";
    this.startedAt = null;
    el.timer.textContent = formatDuration(0);
    this.showQuality("unknown");
    this.showOwnState();
    this.showPeerState();
    this.call = new Call(this.signal, this.consultationId, {
      localVideo: el.localVideo,
      remoteVideo: el.remoteVideo,
      onState: (key, kind) => {
        if (key === "connected") this.startTimer();
        this.notice(t(key), kind, key);
      },
      onQuality: (level) => this.showQuality(level),
      onChat: (msg) => this.addChat(msg.name, msg.text),
      onAdapt: (level, reason) => this.notice(t(reason === "recovered" ? "adapt_recovered" : `adapt_${level}`),
        reason === "recovered" ? "ok" : "warn", `adapt_${level}`),
      onPeerAdapt: (level, reason) => {
        this.notice(t(reason === "recovered" ? "peer_adapt_recovered" : `peer_adapt_${level}`),
          reason === "recovered" ? "ok" : "warn", `peer_adapt_${level}`);
        this.peer.peerPaused = pausedByNotice(level, reason);
        this.showPeerState();
      },
      onPeerMedia: (state) => {
        this.peer.peerCamera = state.camera;
        el.remoteTile.dataset.muted = String(state.muted);
        el.remoteMuted.hidden = !state.muted;
        this.showPeerState();
      },
      onRemoteStream: () => { this.peer.frames = false; this.showPeerState(); },
      onColleagueInCall: () => {
        this.notice(t("colleague_in_call"), "warn", "colleague_in_call");
        el.takeOver.hidden = false;
      },
      onEnded: (info) => this.ended(info),
    });
    this.call.start(ready);
    window.telehealthCall = this.call; // for the end-to-end tests' getStats checks
    return this.call;
  }

  async hangup() {
    if (this.active) await this.call.hangup();
  }

  setMode(mode) {
    this.el.panel.dataset.call = mode;
    if (this.el.page) this.el.page.dataset.call = mode;
  }

  // A notice over the video; good news steps back after a few seconds, warnings stay until the next one.
  notice(text, kind, key) {
    const b = this.el.banner;
    b.textContent = text;
    b.className = `banner ${kind === "ok" ? "ok" : kind === "warn" ? "warn" : ""}`;
    b.dataset.state = key;
    clearTimeout(this.fadeTimer);
    if (kind === "ok") this.fadeTimer = setTimeout(() => b.classList.add("faded"), FADE_OK_MS);
  }

  startTimer() {
    if (this.startedAt !== null || !this.call || this.call.sessionId === null) return;
    // A reload mid-call comes back to the same session: the timer goes on from when it first connected.
    const key = startedKey(this.call.sessionId);
    const kept = Number(sessionStorage.getItem(key));
    this.startedAt = kept > 0 ? kept : Date.now();
    sessionStorage.setItem(key, String(this.startedAt));
    const tick = () => { this.el.timer.textContent = formatDuration(Date.now() - this.startedAt); };
    tick();
    clearInterval(this.timer);
    this.timer = setInterval(tick, 1000);
  }

  showQuality(level) {
    const { el, t } = this;
    el.quality.textContent = level === "ended" ? t("call_ended") : t(level);
    el.quality.dataset.level = level;
    el.qualityBox.dataset.level = level;
    el.bars.dataset.bars = String(networkBars(level));
  }

  showOwnState() {
    const { el } = this;
    const muted = el.mute.dataset.on === "true";
    const cameraOff = el.camera.dataset.on === "true" || el.audioOnly.dataset.on === "true";
    el.localTile.dataset.muted = String(muted);
    el.localTile.dataset.camera = cameraOff ? "off" : "on";
    el.localMuted.hidden = !muted;
    el.localCamOff.hidden = !cameraOff;
  }

  showPeerState() {
    const state = remoteVideoState(this.peer);
    this.el.remoteTile.dataset.video = state;
    const key = { off: "peer_camera_off", paused: "peer_video_paused", waiting: "peer_video_waiting" }[state];
    if (key) this.el.remoteCover.textContent = this.t(key);
  }

  addChat(who, text, system = false) {
    const li = document.createElement("li");
    if (system) {
      li.className = "system";
      li.textContent = text;
    } else {
      const name = document.createElement("strong");
      name.textContent = `${who}: `;
      li.append(name, document.createTextNode(text));
    }
    this.el.chatLog.append(li);
    this.el.chatLog.scrollTop = this.el.chatLog.scrollHeight;
  }

  // ---- full screen and picture-in-picture ----

  async toggleFullscreen() {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await this.el.stage.requestFullscreen();
    } catch { /* refused by the browser: the page stays as it is */ }
  }

  async togglePictureInPicture() {
    try {
      if (document.pictureInPictureElement) await document.exitPictureInPicture();
      else await this.el.remoteVideo.requestPictureInPicture();
    } catch { /* no video yet, or refused */ }
  }

  showScreenModes() {
    const { el, t } = this;
    const full = document.fullscreenElement === el.stage;
    el.fullscreen.dataset.on = String(full);
    el.fullscreen.setAttribute("aria-label", t(full ? "exit_full_screen" : "full_screen"));
    el.fullscreen.title = el.fullscreen.getAttribute("aria-label");
    const pip = document.pictureInPictureElement === el.remoteVideo;
    el.pip.dataset.on = String(pip);
    el.pip.setAttribute("aria-label", t(pip ? "exit_picture_in_picture" : "picture_in_picture"));
    el.pip.title = el.pip.getAttribute("aria-label");
  }

  // ---- still photos ----

  async sendSnapshot() {
    const { el, t } = this;
    if (!this.active) return;
    el.snapshot.disabled = true;
    this.notice(t("snapshot_sending"), "info", "snapshot_sending");
    try {
      const blob = await takeSnapshot(this.call);
      const stamp = fileStamp();
      const name = `snapshot-${stamp}.jpg`;
      const body = new FormData();
      body.append("file", blob, name);
      const done = await postForm(`/api/consultations/${this.consultationId}/attachments`, body);
      this.notice(t("snapshot_sent"), "ok", "snapshot_sent");
      this.toast(t("photo_sent", { name }), done.attachment.url, "sent");
    } catch (err) {
      this.notice(t("snapshot_failed", { message: err.message || String(err) }), "warn", "snapshot_failed");
    } finally {
      el.snapshot.disabled = false;
    }
  }

  // An attachment that arrived (attachments.js tells): a photo is announced with its thumbnail.
  announceAttachment(a) {
    if (!a.content_type.startsWith("image/")) return;
    this.toast(this.t("photo_arrived", { name: a.filename }), a.url, "arrived");
  }

  toast(text, url, kind) {
    const { el } = this;
    el.toastText.textContent = text;
    el.toastImage.src = url;
    el.toastImage.alt = text;
    el.toastLink.href = url;
    el.toast.dataset.kind = kind;
    // It stays until closed (or the next one comes): a photo must not pass unseen while the doctor looks away.
    el.toast.hidden = false;
  }

  // ---- after the call ----

  ended(info) {
    const { el, t } = this;
    clearInterval(this.timer);
    clearTimeout(this.fadeTimer);
    const handedOver = info.reason === "handed_over";
    this.notice(handedOver ? t("handed_over", { name: info.to_name }) : t("ended"), "info",
      handedOver ? "handed_over" : "ended");
    this.setMode("ended");
    for (const b of el.panel.querySelectorAll(".controls button")) b.disabled = true;
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
    el.remoteVideo.srcObject = null;
    el.localVideo.srcObject = null;
    this.showQuality("ended");
    const length = this.startedAt === null ? null : formatDuration(Date.now() - this.startedAt);
    if (this.call && this.call.sessionId !== null) sessionStorage.removeItem(startedKey(this.call.sessionId));
    el.endedDuration.textContent = length ? t("duration", { time: length }) : "";
    el.chatText.dataset.placeholder = el.chatText.dataset.placeholder || el.chatText.placeholder;
    el.chatText.placeholder = t("chat_closed");
    el.chatText.disabled = true;
    el.chatForm.querySelector("button").disabled = true;
    this.addChat("", length ? `${t("ended")} ${t("duration", { time: length })}` : t("ended"), true);
    el.toast.hidden = true;
    this.endInfo = info;
    this.state = info.consultation_state;
    this.showAfter();
    this.onEndedPage(info);
  }

  // The consultation moved on (the report signed, say): the stage says what comes next.
  setConsultationState(state) {
    this.state = state;
    if (this.endInfo) this.showAfter();
  }

  showAfter() {
    const reason = this.endInfo ? this.endInfo.reason : null;
    this.el.endedNext.textContent = this.t(afterCallKey(this.role, this.state, reason));
    this.el.endedNext.dataset.key = afterCallKey(this.role, this.state, reason);
    this.el.ended.hidden = false;
    this.el.rejoin.hidden = !canRejoin(this.state, reason);
  }
}
