// The booked consultations' pages (docs/scheduling.md): the clinic books, either side reschedules or cancels
// with a reason, the hospital's side answers requested windows and publishes hours. Reminders and changes
// arrive over the WebSocket and are shown on the page.

import { Signal } from "./signal.js";
import { sendJSON } from "./http.js";
import { texts, showError } from "./texts.js";

const page = document.getElementById("page");
const side = page.dataset.side;
const t = texts("appointment-texts");
const $ = (id) => document.getElementById(id);
const value = (id) => ($(id) ? $(id).value.trim() : "");
const number = (id) => (value(id) ? Number(value(id)) : null);

// The socket's state on the page, so that one can tell the reminders would reach it.
const signal = new Signal({ onStatus: (status) => { page.dataset.connection = status; } });
signal.on("appointment_reminder", (data) => {
  const li = document.createElement("li");
  li.dataset.appointment = data.appointment_id;
  li.textContent = t(data.kind === "soon" ? "reminder_soon" : "reminder_day_before",
    { id: data.appointment_id, time: data.local_time });
  $("reminder-list").prepend(li);
  $("no-reminders").hidden = true;
});
signal.on("appointment", () => { $("changed").hidden = false; });

async function act(promise) {
  try {
    await promise;
    location.reload();
  } catch (err) {
    showError(err);
  }
}

// The dialog that asks for a time (and on the hospital's side a specialist) and a reason.
function askTime(title, withTime, send) {
  const dialog = $("time-dialog");
  $("time-title").textContent = title;
  $("dlg-time").closest("form").querySelectorAll("#dlg-time, label[for=dlg-time]").forEach((el) => { el.hidden = !withTime; });
  $("dlg-error").hidden = true;
  $("time-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await send({ starts_at: value("dlg-time"), reason: value("dlg-reason"), specialist_id: number("dlg-specialist") });
      dialog.close();
      location.reload();
    } catch (err) {
      $("dlg-error").textContent = err.message;
      $("dlg-error").hidden = false;
    }
  };
  $("dlg-close").onclick = () => dialog.close();
  dialog.showModal();
}

const compact = (body) => Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null && v !== ""));

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("tr[data-appointment]");
  const url = `/api/appointments/${row.dataset.appointment}`;
  switch (button.dataset.action) {
    case "accept": act(sendJSON("POST", `${url}/accept`, {})); break;
    case "on-demand": act(sendJSON("POST", `${url}/on-demand`, {})); break;
    case "answer":
      askTime(t("answer"), true, (b) => sendJSON("POST", `${url}/answer`, compact(b)));
      break;
    case "reschedule":
      askTime(t("reschedule"), true, (b) => sendJSON("POST", `${url}/reschedule`, compact(b)));
      break;
    case "cancel":
      askTime(t("cancel"), false, (b) => sendJSON("POST", `${url}/cancel`, { reason: b.reason }));
      break;
  }
});

const booking = $("new-consultation");
if (booking) {
  booking.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const how = booking.querySelector("input[name=how]:checked").value;
    const request = compact({
      patient: { name: value("patient_name"), sex: value("patient_sex"), birth_year: number("patient_birth_year") },
      specialty: value("specialty"), urgency: "routine", chief_complaint: value("chief_complaint"),
      reason: value("reason"), min_title: value("min_title") || null,
      consent: compact({ by: value("consent_by"), name: value("consent_name"), relation: value("consent_relation"),
        signature: value("consent_signature") }),
    });
    const body = { request };
    if (how === "specialist") Object.assign(body, { specialist_id: number("specialist_id"), starts_at: value("starts_at") });
    else if (how === "department") Object.assign(body, { hospital_org_id: number("hospital_org_id"), starts_at: value("starts_at") });
    else Object.assign(body, { hospital_org_id: number("hospital_org_id"), window_start: value("window_start"),
      window_end: value("window_end") });
    act(sendJSON("POST", "/api/appointments", compact(body)));
  });
}

const hours = $("hours-form");
if (hours) {
  hours.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(sendJSON("POST", "/api/consultation-hours", compact({
      department: value("hours-department"), starts_at: value("hours-start"), ends_at: value("hours-end"),
      specialist_id: number("hours-specialist"),
    })));
  });
}
