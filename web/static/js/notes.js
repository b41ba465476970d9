// The opinion report on the specialist's call view: saved on the server as they type (and kept in the
// browser while the server cannot be reached), ICD-10 look-up, signing.

import { getJSON, sendJSON } from "./http.js";
import { texts } from "./texts.js";
import { formatWhen } from "./when.js";

const SAVE_AFTER_MS = 800;

export function openNotes(consultationId, { onSigned = () => {} } = {}) {
  const t = texts("note-texts");
  const form = document.getElementById("note-form");
  const status = document.getElementById("note-status");
  const list = document.getElementById("note-diagnoses");
  const icdInput = document.getElementById("note-icd");
  const options = document.getElementById("icd-options");
  const key = `telehealth-note-${consultationId}`;
  const url = `/api/consultations/${consultationId}/note`;
  let diagnoses = [];
  let timer = null;
  let signed = false;
  // The bed the saved draft names, chosen again once the open beds have loaded.
  let wantedBed = 0;

  const field = (id) => document.getElementById(id);
  const collect = () => {
    const kind = field("note-disposition").value;
    return {
      subjective: field("note-subjective").value, objective: field("note-objective").value,
      assessment: field("note-assessment").value, plan: field("note-plan").value,
      diagnoses: diagnoses.map((d) => ({ code: d.code })),
      ...(kind ? { disposition: { kind, details: field("note-details").value,
        follow_up_date: field("note-follow-up").value,
        ...(kind === "refer_down" ? { tasks: taskLines() } : {}),
        ...(kind === "refer_up" && field("note-admission").checked
          ? { admission: true, bed_id: Number(field("note-bed").value) || wantedBed || 0 } : {}) } } : {}),
    };
  };
  const fill = (note) => {
    field("note-subjective").value = note.subjective || "";
    field("note-objective").value = note.objective || "";
    field("note-assessment").value = note.assessment || "";
    field("note-plan").value = note.plan || "";
    const disp = note.disposition || {};
    field("note-disposition").value = disp.kind || "";
    field("note-details").value = disp.details || "";
    field("note-follow-up").value = disp.follow_up_date || "";
    field("note-tasks").value = (disp.tasks || []).map((k) => k.text).join("\n");
    field("note-admission").checked = Boolean(disp.admission);
    wantedBed = Number(disp.bed_id) || 0;
    showDispositionPanels();
    diagnoses = note.diagnoses || [];
    renderDiagnoses();
  };
  const taskLines = () => field("note-tasks").value.split("\n").map((l) => l.trim()).filter(Boolean)
    .slice(0, 20).map((text) => ({ text: text.slice(0, 500) }));
  const zh = document.body.dataset.lang === "zh_CN";
  const slotLabel = (s) => `${formatWhen(s.starts_at)} · ${[(zh && s.hospital_zh) || s.hospital, s.location].filter(Boolean).join(" · ")}`;
  const showBooking = (booking) => {
    const current = field("booking-current");
    current.hidden = !booking;
    current.textContent = booking ? t("booked", { slot: slotLabel(booking) }) : "";
  };
  const loadSlots = async () => {
    let data;
    try {
      data = await getJSON(`/api/consultations/${consultationId}/slots`);
    } catch (e) {
      // Not a grassroots institution's patient: the server says why no reserved slot is offered.
      if (e.code === "not_eligible") status.textContent = e.message;
      return;
    }
    const select = field("booking-slot");
    select.replaceChildren();
    for (const s of data.slots) {
      const o = document.createElement("option");
      o.value = s.id;
      o.textContent = slotLabel(s);
      select.append(o);
    }
    field("btn-book").disabled = signed || data.slots.length === 0;
    if (!data.slots.length && !data.booking) status.textContent = t("no_slots");
    showBooking(data.booking);
  };
  const bedLabel = (b) => t("bed", { day: b.day, hospital: b.hospital, number: b.number });
  const loadBeds = async () => {
    const bedStatus = field("bed-status");
    let data;
    try {
      data = await getJSON(`/api/consultations/${consultationId}/beds`);
    } catch (e) {
      // Not a grassroots institution's patient: the server says why no reserved bed is offered.
      bedStatus.textContent = e.message;
      return;
    }
    const select = field("note-bed");
    const keep = Number(select.value) || wantedBed;
    select.replaceChildren();
    const none = document.createElement("option");
    none.value = "";
    none.textContent = t("choose_bed");
    select.append(none);
    for (const b of [...(data.booking ? [data.booking] : []), ...data.beds]) {
      const o = document.createElement("option");
      o.value = b.id;
      o.textContent = bedLabel(b);
      select.append(o);
    }
    if (keep && [...select.options].some((o) => Number(o.value) === keep)) select.value = String(keep);
    bedStatus.textContent = data.booking ? t("bed_held", { bed: bedLabel(data.booking) })
      : (data.beds.length ? "" : t("no_beds"));
  };
  const showDispositionPanels = () => {
    const kind = field("note-disposition").value;
    field("booking-panel").hidden = kind !== "refer_up";
    field("tasks-panel").hidden = kind !== "refer_down";
    const admission = kind === "refer_up" && field("note-admission").checked;
    field("bed-panel").hidden = !admission;
    if (kind === "refer_up" && !signed) loadSlots();
    if (admission && !signed) loadBeds();
  };
  field("note-disposition").addEventListener("change", showDispositionPanels);
  field("note-admission").addEventListener("change", showDispositionPanels);
  field("btn-book").addEventListener("click", async () => {
    const slotId = Number(field("booking-slot").value);
    if (!slotId) return;
    let data;
    try {
      data = await sendJSON("PUT", `/api/consultations/${consultationId}/booking`, { slot_id: slotId });
    } catch (err) {
      status.textContent = err.message;
      await loadSlots();
      return;
    }
    showBooking(data.booking);
    await loadSlots();
  });
  const renderDiagnoses = () => {
    list.replaceChildren();
    for (const d of diagnoses) {
      const li = document.createElement("li");
      li.textContent = `${d.code} ${d.description || ""} `;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.textContent = t("remove");
      remove.disabled = signed;
      remove.addEventListener("click", () => { diagnoses = diagnoses.filter((x) => x.code !== d.code); renderDiagnoses(); changed(); });
      li.append(remove);
      list.append(li);
    }
  };
  const lock = (note) => {
    signed = true;
    for (const el of form.elements) el.disabled = true;
    status.textContent = t("signed", { time: formatWhen(note.signed_at) });
    renderDiagnoses();
  };
  const keepLocally = () => {
    localStorage.setItem(key, JSON.stringify({ at: Date.now(), body: { ...collect(), diagnoses } }));
  };
  const save = async () => {
    const body = collect();
    keepLocally();
    status.textContent = t("saving");
    let data;
    try {
      data = await sendJSON("PUT", url, body);
    } catch (err) {
      status.textContent = err.status === 0 ? t("offline") : err.message;
      // The server or its records database is away: the draft stays in the browser and goes again shortly.
      if (err.status === 0 || err.status >= 500) { clearTimeout(timer); timer = setTimeout(save, 5000); }
      return false;
    }
    localStorage.removeItem(key);
    status.textContent = t("saved", { time: formatWhen(data.note.draft_saved_at, "seconds") });
    return true;
  };
  const changed = () => {
    if (signed) return;
    // Every keystroke is kept in the browser at once; the server gets it after a pause in typing.
    keepLocally();
    clearTimeout(timer);
    timer = setTimeout(save, SAVE_AFTER_MS);
  };
  window.addEventListener("pagehide", () => {
    if (signed || !localStorage.getItem(key)) return;
    sendJSON("PUT", url, collect(), { keepalive: true }).catch(() => {});
  });
  form.addEventListener("input", (ev) => { if (ev.target !== icdInput) changed(); });
  form.addEventListener("change", (ev) => { if (ev.target !== icdInput) changed(); });

  let lookup = null;
  icdInput.addEventListener("input", () => {
    const q = icdInput.value.trim();
    const chosen = [...options.options].find((o) => o.value === q);
    if (chosen) {
      if (!diagnoses.some((d) => d.code === chosen.dataset.code)) {
        diagnoses.push({ code: chosen.dataset.code, description: chosen.dataset.description });
        renderDiagnoses();
        changed();
      }
      icdInput.value = "";
      return;
    }
    clearTimeout(lookup);
    if (q.length < 2) return;
    lookup = setTimeout(async () => {
      let found;
      try {
        found = await getJSON(`/api/icd10?q=${encodeURIComponent(q)}`);
      } catch {
        return;
      }
      options.replaceChildren();
      for (const r of found.results) {
        const o = document.createElement("option");
        o.value = `${r.code} ${r.description}`;
        o.dataset.code = r.code;
        o.dataset.description = r.description;
        options.append(o);
      }
    }, 250);
  });

  document.getElementById("btn-sign").addEventListener("click", async () => {
    if (!(await save())) return;
    let data;
    try {
      data = await sendJSON("POST", `${url}/sign`, {});
    } catch (err) {
      status.textContent = err.message;
      return;
    }
    lock(data.note);
    onSigned(data.note);
  });

  (async () => {
    const server = await getJSON(url).then((d) => d.note, () => null);
    const local = JSON.parse(localStorage.getItem(key) || "null");
    if (server) fill(server);
    if (server && server.signed_at) { lock(server); localStorage.removeItem(key); return; }
    if (local && (!server || local.at > Date.parse(server.draft_saved_at))) {
      fill({ ...local.body, diagnoses: local.body.diagnoses });
      status.textContent = t("restored");
      changed();
    }
  })();
}
