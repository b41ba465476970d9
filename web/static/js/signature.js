// The consent signature drawn on the screen (finger, stylus or mouse); sent with the form as a PNG.

const canvas = document.getElementById("signature-pad");
const field = document.getElementById("consent_signature");
const form = document.getElementById("new-consultation");
const ctx = canvas.getContext("2d");
let drawing = false;
let drawn = false;
let last = null;

function reset() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#101828";
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  drawn = false;
  field.value = "";
  canvas.dataset.signed = "false";
}

function at(ev) {
  const box = canvas.getBoundingClientRect();
  return { x: ((ev.clientX - box.left) * canvas.width) / box.width, y: ((ev.clientY - box.top) * canvas.height) / box.height };
}

canvas.addEventListener("pointerdown", (ev) => {
  drawing = true;
  last = at(ev);
  canvas.setPointerCapture(ev.pointerId);
  ev.preventDefault();
});
canvas.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  const p = at(ev);
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  last = p;
  drawn = true;
  canvas.dataset.signed = "true";
  ev.preventDefault();
});
for (const end of ["pointerup", "pointercancel", "pointerleave"]) {
  canvas.addEventListener(end, () => { drawing = false; });
}
document.getElementById("signature-clear").addEventListener("click", reset);
form.addEventListener("submit", () => {
  field.value = drawn ? canvas.toDataURL("image/png") : "";
});
reset();
