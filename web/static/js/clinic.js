// The clinic's consultation page: live state, queue position and wait, cancel/re-queue, then the call.

import { Signal } from "./signal.js";
import { CallView } from "./callview.js";
import { prepareConnection, releaseConnection } from "./peer.js";
import { openAttachments } from "./attachments.js";
import { sendJSON } from "./http.js";
import { texts, showError } from "./texts.js";
import { formatAmount } from "./when.js";

const page = document.getElementById("page");
const cid = Number(page.dataset.consultation);
const t = texts("state-texts");
const signal = new Signal();
const view = new CallView(signal, cid, {
  role: "clinic", onEnded: (info) => setState(info.consultation_state), onRejoin: () => startCall(),
});

function setState(state) {
  page.dataset.state = state;
  const el = document.getElementById("state");
  el.dataset.state = state;
  el.textContent = t(state);
  // A booked consultation is cancelled with its reason on the booked consultations page.
  document.getElementById("btn-cancel").hidden = Boolean(page.dataset.booked)
    || !["requested", "queued", "offered", "expired"].includes(state);
  document.getElementById("btn-requeue").hidden = state !== "expired";
  if (state !== "in_call") document.getElementById("ready-banner").hidden = true;
  // A call to join, or to join again until the report is signed; the stage has its own button after a call.
  const join = document.getElementById("btn-join");
  join.hidden = !["accepted", "in_call", "ended"].includes(state) || view.active || page.dataset.call === "ended";
  join.textContent = t(state === "ended" ? "rejoin" : "join");
  // Said on the stage right after the call; on the page itself after a reload.
  document.getElementById("report-pending").hidden = state !== "ended" || page.dataset.call === "ended";
  view.setConsultationState(state);
  if (!["queued", "offered"].includes(state)) {
    document.getElementById("position").textContent = "—";
    document.getElementById("estimate").textContent = "—";
  }
}

function setPosition(position, seconds) {
  document.getElementById("position").textContent = position ?? "—";
  const est = document.getElementById("estimate");
  if (seconds === null || seconds === undefined) est.textContent = "—";
  else est.textContent = seconds < 60 ? t("under_minute") : t("about", { amount: formatAmount(Math.round(seconds / 60), "minute") });
}

function chime() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.4);
  } catch { /* sound is a courtesy */ }
}

function startCall(ready = null) {
  if (view.active) return;
  view.start(ready);
  document.getElementById("btn-join").hidden = true;
  document.getElementById("report-pending").hidden = true;
}

// States in which a call is still to come: the page keeps a peer connection ready meanwhile.
const CALL_AHEAD = ["requested", "queued", "offered", "accepted", "in_call"];

signal.on("queue_position", (d) => {
  if (d.consultation_id !== cid) return;
  setState(d.state);
  setPosition(d.position, d.estimated_wait_s);
});
signal.on("consultation_state", (d) => {
  if (d.consultation_id !== cid) return;
  if (d.state === "signed") { location.reload(); return; }
  setState(d.state);
  if (!CALL_AHEAD.includes(d.state)) releaseConnection();
  if (d.specialist) document.getElementById("specialist").textContent = d.specialist.name;
  if (d.reason) showError({ message: d.reason });
});
signal.on("session_ready", (d) => {
  if (d.consultation_id !== cid) return;
  setState("in_call");
  document.getElementById("ready-banner").hidden = false;
  startCall(d);
  chime();
});
signal.onReconnect.push(() => watch());
// A long wait: look again now and then, which also renews the connection kept ready (fresh TURN credentials).
setInterval(() => { if (!view.active && CALL_AHEAD.includes(page.dataset.state)) watch(); }, 10 * 60 * 1000);

async function watch() {
  try {
    const r = await signal.call("consultation.watch", { consultation_id: cid });
    setState(r.consultation.state);
    page.dataset.watching = "true";
    if (!view.active && CALL_AHEAD.includes(r.consultation.state)) prepareConnection(r.ice_servers);
    setPosition(r.consultation.position, r.consultation.estimated_wait_s);
  } catch (err) { showError(err); }
}

document.getElementById("btn-cancel").addEventListener("click", async () => {
  try {
    const r = await signal.call("consultation.cancel", { consultation_id: cid });
    setState(r.consultation.state);
  } catch (err) { showError(err); }
});
document.getElementById("btn-requeue").addEventListener("click", async () => {
  try {
    const r = await signal.call("consultation.requeue", { consultation_id: cid });
    setState(r.consultation.state);
    setPosition(r.consultation.position, r.consultation.estimated_wait_s);
  } catch (err) { showError(err); }
});
document.getElementById("btn-join").addEventListener("click", () => startCall());
document.getElementById("btn-print")?.addEventListener("click", () => window.print());
document.getElementById("decision-form")?.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  try {
    await sendJSON("POST", `/api/consultations/${cid}/decision`,
      { decision: form.elements.decision.value, note: document.getElementById("decision-note").value });
  } catch (err) {
    showError(err);
    return;
  }
  location.reload();
});

openAttachments(signal);

signal.ready.then(async () => {
  await watch();
  if (page.dataset.state === "in_call") startCall();
});
