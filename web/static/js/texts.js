// Translated strings rendered by the server into <template> elements, looked up by key.

export function texts(templateId) {
  const map = new Map();
  const tpl = document.getElementById(templateId);
  if (tpl) for (const el of tpl.content.querySelectorAll("[data-key]")) map.set(el.dataset.key, el.textContent.trim());
  return (key, vars = {}) => format(map.get(key) || key, vars);
}

// "{name} took over" with {name: "Dr Li"}: each {word} replaced by its value, an unknown one by nothing.
export function format(template, vars = {}) {
  return template.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

export function showError(err) {
  const box = document.getElementById("page-error");
  if (!box) return;
  box.textContent = err && err.message ? err.message : String(err);
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 8000);
}
