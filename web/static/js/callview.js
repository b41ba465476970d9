// Binds a Call to the call panel of a page: videos, controls, quality, chat, state banner.

import { Call } from "./call.js";
import { postForm } from "./http.js";
import { texts } from "./texts.js";

// A still photo at the camera's full resolution (a rash, an ECG printout), sent as an attachment: it reaches
// the specialist even when video is paused, and it is part of the record.
async function sendSnapshot(call, consultationId) {
  const track = call.localStream && call.localStream.getVideoTracks()[0];
  if (!track) throw new Error("no camera");
  const wasEnabled = track.enabled;
  track.enabled = true;
  let blob;
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
    blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.92));
  } finally {
    track.enabled = wasEnabled;
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  const body = new FormData();
  body.append("file", blob, `snapshot-${stamp}.jpg`);
  await postForm(`/api/consultations/${consultationId}/attachments`, body);
}

export function openCall(signal, consultationId, { onEnded = () => {}, ready = null } = {}) {
  const t = texts("call-texts");
  const panel = document.getElementById("call");
  const banner = document.getElementById("call-state");
  const quality = document.getElementById("quality");
  const log = document.getElementById("chat-log");
  panel.hidden = false;
  const addChat = (who, text) => {
    const li = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = `${who}: `;
    li.append(name, document.createTextNode(text));
    log.append(li);
    li.scrollIntoView({ block: "nearest" });
  };
  const call = new Call(signal, consultationId, {
    localVideo: document.getElementById("local-video"),
    remoteVideo: document.getElementById("remote-video"),
    onState(key, kind) {
      banner.textContent = t(key);
      banner.className = `banner ${kind === "ok" ? "ok" : kind === "warn" ? "warn" : ""}`;
      banner.dataset.state = key;
    },
    onQuality(level) {
      quality.textContent = t(level);
      quality.dataset.level = level;
    },
    onChat(msg) { addChat(msg.name, msg.text); },
    onAdapt(level, reason) {
      banner.textContent = t(reason === "recovered" ? "adapt_recovered" : `adapt_${level}`);
      banner.className = `banner ${reason === "recovered" ? "ok" : "warn"}`;
      banner.dataset.state = `adapt_${level}`;
    },
    onPeerAdapt(level, reason) {
      banner.textContent = t(reason === "recovered" ? "peer_adapt_recovered" : `peer_adapt_${level}`);
      banner.className = `banner ${reason === "recovered" ? "ok" : "warn"}`;
      banner.dataset.state = `peer_adapt_${level}`;
    },
    onColleagueInCall() {
      banner.textContent = t("colleague_in_call");
      banner.className = "banner warn";
      banner.dataset.state = "colleague_in_call";
      takeOver.hidden = false;
    },
    onEnded(info) {
      const handedOver = info.reason === "handed_over";
      banner.textContent = handedOver ? t("handed_over", { name: info.to_name }) : t("ended");
      banner.dataset.state = handedOver ? "handed_over" : "ended";
      for (const b of panel.querySelectorAll(".controls button")) b.disabled = true;
      onEnded(info);
    },
  });
  const takeOver = document.getElementById("btn-take-over");
  takeOver.addEventListener("click", async () => {
    takeOver.disabled = true;
    try {
      await call.takeOver();
      takeOver.hidden = true;
    } catch (err) {
      banner.textContent = err.message || String(err);
    } finally {
      takeOver.disabled = false;
    }
  });
  const toggle = (id, fn) => {
    const btn = document.getElementById(id);
    btn.addEventListener("click", () => {
      const on = btn.getAttribute("aria-pressed") !== "true";
      btn.setAttribute("aria-pressed", String(on));
      fn(on);
    });
  };
  toggle("btn-mute", (on) => call.setMuted(on));
  toggle("btn-camera", (on) => call.setCameraOff(on));
  toggle("btn-audio-only", (on) => call.setAudioOnly(on));
  document.getElementById("btn-hangup").addEventListener("click", () => call.hangup());
  const snapshot = document.getElementById("btn-snapshot");
  if (snapshot) {
    snapshot.addEventListener("click", async () => {
      snapshot.disabled = true;
      banner.textContent = t("snapshot_sending");
      try {
        await sendSnapshot(call, consultationId);
        banner.textContent = t("snapshot_sent");
        banner.className = "banner ok";
        banner.dataset.state = "snapshot_sent";
      } catch (err) {
        banner.textContent = t("snapshot_failed", { message: err.message || String(err) });
        banner.className = "banner warn";
        banner.dataset.state = "snapshot_failed";
      } finally {
        snapshot.disabled = false;
      }
    });
  }
  document.getElementById("chat-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("chat-text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    await call.chat(text);
    addChat(t("you"), text);
  });
  call.start(ready);
  window.telehealthCall = call; // for the end-to-end tests' getStats checks
  return call;
}
