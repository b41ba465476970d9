// The specialist's call view: the call beside the patient summary.

import { Signal } from "./signal.js";
import { openCall } from "./callview.js";
import { openAttachments } from "./attachments.js";
import { openNotes } from "./notes.js";
import { texts } from "./texts.js";

const page = document.getElementById("page");
const cid = Number(page.dataset.consultation);
const t = texts("state-texts");
const signal = new Signal();
let call = null;

function setState(state) {
  page.dataset.state = state;
  const el = document.getElementById("state");
  el.dataset.state = state;
  el.textContent = t(state);
  document.getElementById("btn-join").hidden = call !== null || !["accepted", "in_call", "ended"].includes(state);
}

function startCall() {
  if (call) return;
  call = openCall(signal, cid, { onEnded: (info) => { call = null; setState(info.consultation_state); } });
  setState("in_call");
}

openAttachments(signal);
if (document.getElementById("note")) openNotes(cid, { onSigned: () => setState("signed") });

signal.on("session_ready", (d) => { if (d.consultation_id === cid) startCall(); });
document.getElementById("btn-join").addEventListener("click", startCall);
signal.ready.then(() => { if (["accepted", "in_call"].includes(page.dataset.state)) startCall(); });
