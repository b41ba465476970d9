// What the call screen shows, worked out without the DOM: the timer's text, the keys that work the call, the
// other side's video tile, and what follows a call that ended.

// "04:05" for 245 s, "1:02:03" past an hour.
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

// Alt with a letter works the call wherever the focus is (the specialist types the report meanwhile). The
// key's position (`code`) counts, not its character: Option on a Mac and a Chinese input method change the
// character, never the position. Not Alt+F or Alt+E: those open the browser's menu on Windows.
const KEYS = { KeyM: "mute", KeyV: "camera", KeyH: "hangup" };

export function shortcutFor(ev) {
  if (!ev || !ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.repeat || ev.isComposing) return null;
  return KEYS[ev.code] ?? null;
}

// The other side's tile: "off" when they turned their camera off (or chose audio only), "paused" when their
// link is too weak for video, "waiting" until a first frame is shown, else "on".
export function remoteVideoState({ peerCamera = null, peerPaused = false, frames = false } = {}) {
  if (peerCamera === false) return "off";
  if (peerPaused) return "paused";
  return frames ? "on" : "waiting";
}

// Whether the other side's video is paused after one of their quality notices.
export function pausedByNotice(level, reason) {
  return level === "audio_only" && reason !== "recovered";
}

// A consultation whose call ended may have its call again until the report is signed.
export function canRejoin(state, reason = null) {
  return reason !== "handed_over" && (state === "accepted" || state === "ended");
}

// The key of the line shown under "The call has ended" for this side.
export function afterCallKey(role, state, reason = null) {
  if (reason === "handed_over") return "next_handed_over";
  if (state === "signed" || state === "closed") return "next_signed";
  return role === "clinic" ? "next_clinic" : "next_specialist";
}
