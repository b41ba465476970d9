// The specialist's call view: the call beside the patient summary and the report.

import { Signal } from "./signal.js";
import { CallView } from "./callview.js";
import { openAttachments } from "./attachments.js";
import { openNotes } from "./notes.js";
import { texts } from "./texts.js";

const page = document.getElementById("page");
const cid = Number(page.dataset.consultation);
const t = texts("state-texts");
const signal = new Signal();
const view = new CallView(signal, cid, {
  role: "specialist", onEnded: (info) => setState(info.consultation_state), onRejoin: () => startCall(),
});

function setState(state) {
  page.dataset.state = state;
  const el = document.getElementById("state");
  el.dataset.state = state;
  el.textContent = t(state);
  // Before a call, or after a reload once it ended; the stage has its own button right after a call.
  document.getElementById("btn-join").hidden = view.active || page.dataset.call === "ended"
    || !["accepted", "in_call", "ended"].includes(state);
  view.setConsultationState(state);
}

function startCall(ready = null) {
  if (view.active) return;
  view.start(ready);
  setState("in_call");
}

openAttachments(signal, { onAdded: (a) => { if (view.active) view.announceAttachment(a); } });
if (document.getElementById("note")) openNotes(cid, { onSigned: () => setState("signed") });

signal.on("session_ready", (d) => { if (d.consultation_id === cid) startCall(); });
document.getElementById("btn-join").addEventListener("click", () => startCall());
signal.ready.then(() => { if (["accepted", "in_call"].includes(page.dataset.state)) startCall(); });
