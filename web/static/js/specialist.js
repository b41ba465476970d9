// The specialist's dashboard: presence, the live queue, ringing offers with accept/decline, take next.

import { Signal } from "./signal.js";
import { texts, showError } from "./texts.js";
import { formatAmount } from "./when.js";

const t = texts("dash-texts");
const status = document.getElementById("connection");
const signal = new Signal({ onStatus: (s) => { status.textContent = t(s); status.dataset.state = s; } });
let presence = "away";
let offer = null;
let countdown = null;
let ringer = null;

function go(result) {
  if (result.consultation) location.href = `/specialist/consultations/${result.consultation.id}`;
}

function setPresence(value) {
  presence = value;
  for (const btn of document.querySelectorAll("[data-presence]")) {
    btn.setAttribute("aria-pressed", String(btn.dataset.presence === value));
  }
}

async function changePresence(value) {
  try {
    const r = await signal.call("presence.set", { status: value });
    setPresence(r.status);
    await refresh();
  } catch (err) { showError(err); }
}

function minutesSince(ts) {
  return Math.max(0, Math.round((Date.now() / 1000 - ts) / 60));
}

async function refresh() {
  let items = [];
  try {
    items = (await signal.call("queue.list", { limit: 50 })).items;
  } catch (err) { showError(err); return; }
  const body = document.querySelector("#queue tbody");
  body.replaceChildren();
  for (const item of items) {
    const tr = document.createElement("tr");
    tr.dataset.consultation = item.consultation_id;
    const cells = [
      String(item.consultation_id), null, document.body.dataset.lang === "zh_CN" ? item.clinic_zh : item.clinic,
      formatAmount(minutesSince(item.waiting_since), "minute"), item.chief_complaint,
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 1) {
        const badge = document.createElement("span");
        badge.className = `badge ${item.urgency}`;
        badge.textContent = t(item.urgency);
        td.append(badge);
      } else td.textContent = text;
      tr.append(td);
    });
    const td = document.createElement("td");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = t("take");
    btn.addEventListener("click", async () => {
      try { go(await signal.call("consultation.take", { consultation_id: item.consultation_id })); } catch (err) { showError(err); refresh(); }
    });
    td.append(btn);
    tr.append(td);
    body.append(tr);
  }
  document.getElementById("queue-empty").hidden = items.length > 0;
}

function ring() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = 660;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.3);
  } catch { /* sound is a courtesy */ }
}

function showOffer(data) {
  offer = data;
  const box = document.getElementById("offer");
  const clinic = document.body.dataset.lang === "zh_CN" ? data.clinic_zh : data.clinic;
  document.getElementById("offer-summary").textContent = `#${data.consultation_id} · ${t(data.urgency)} · ${clinic} · ${data.chief_complaint}`;
  box.hidden = false;
  box.dataset.consultation = data.consultation_id;
  clearInterval(countdown);
  clearInterval(ringer);
  const tick = () => {
    const left = Math.max(0, Math.round(data.deadline - Date.now() / 1000));
    document.getElementById("offer-countdown").textContent = formatAmount(left, "second");
  };
  tick();
  countdown = setInterval(tick, 500);
  ring();
  ringer = setInterval(ring, 2000);
}

function hideOffer() {
  offer = null;
  clearInterval(countdown);
  clearInterval(ringer);
  document.getElementById("offer").hidden = true;
}

signal.on("offer", showOffer);
signal.on("offer_withdrawn", (d) => { if (offer && d.consultation_id === offer.consultation_id) hideOffer(); refresh(); });
signal.on("queue_changed", () => refresh());
signal.on("presence", (d) => { setPresence(d.status); if (d.reason === "ring_timeout") showError({ message: t("away_timeout") }); });
signal.on("session_ready", (d) => { location.href = `/specialist/consultations/${d.consultation_id}`; });
signal.onReconnect.push(() => changePresence(presence));

document.getElementById("btn-available").addEventListener("click", () => changePresence("available"));
document.getElementById("btn-away").addEventListener("click", () => changePresence("away"));
document.getElementById("btn-take-next").addEventListener("click", async () => {
  try {
    const r = await signal.call("consultation.take_next");
    if (!r.consultation) showError({ message: t("nothing") });
    go(r);
  } catch (err) { showError(err); }
});
document.getElementById("btn-accept").addEventListener("click", async () => {
  if (!offer) return;
  try { go(await signal.call("offer.accept", { consultation_id: offer.consultation_id })); } catch (err) { showError(err); hideOffer(); }
});
document.getElementById("btn-decline").addEventListener("click", async () => {
  if (!offer) return;
  const reason = document.getElementById("decline-reason").value;
  const text = document.getElementById("decline-text").value.trim();
  try {
    await signal.call("offer.decline", { consultation_id: offer.consultation_id, reason, ...(text ? { text } : {}) });
    hideOffer();
  } catch (err) { showError(err); }
});

signal.ready.then(() => changePresence("available"));
