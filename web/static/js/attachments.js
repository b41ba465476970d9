// The attachments of a consultation: list (images shown small), and the clinic's upload.

import { getJSON, postForm } from "./http.js";
import { texts } from "./texts.js";

// `onAdded(attachment)` hears of each attachment that arrives while the page is open.
export async function openAttachments(signal = null, { onAdded = () => {} } = {}) {
  const box = document.getElementById("attachments");
  if (!box) return;
  const t = texts("attachment-texts");
  const url = `/api/consultations/${box.dataset.consultation}/attachments`;
  const list = document.getElementById("attachment-list");
  let known = null; // ids listed so far; null before the first listing, which announces nothing
  const refresh = async () => {
    let items;
    try {
      items = (await getJSON(url)).attachments;
    } catch {
      return; // the list stays as it was; the next announcement tries again
    }
    list.replaceChildren();
    for (const a of items) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = a.url;
      link.target = "_blank";
      link.rel = "noopener";
      if (a.content_type.startsWith("image/")) {
        const img = document.createElement("img");
        img.src = a.url;
        img.alt = a.filename;
        img.loading = "lazy";
        link.append(img);
      }
      link.append(document.createTextNode(` ${a.filename} (${Math.ceil(a.size / 1024)} KB)`));
      li.append(link);
      list.append(li);
    }
    document.getElementById("attachments-empty").hidden = items.length > 0;
    const fresh = known === null ? [] : items.filter((a) => !known.has(a.id));
    known = new Set(items.map((a) => a.id));
    for (const a of fresh) onAdded(a);
  };
  const form = document.getElementById("upload-form");
  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = document.getElementById("upload-file");
      if (!input.files.length) return;
      const status = document.getElementById("upload-status");
      status.textContent = t("uploading");
      const body = new FormData();
      body.append("file", input.files[0]);
      try {
        await postForm(url, body);
      } catch (err) {
        status.textContent = err.message;
        return;
      }
      status.textContent = t("uploaded");
      input.value = "";
      await refresh();
    });
  }
  if (signal) {
    signal.on("attachment_added", (d) => {
      if (String(d.consultation_id) === box.dataset.consultation) refresh();
    });
  }
  await refresh();
}
