// The call's RTCPeerConnection: one made in advance while a page waits for its call, a fresh one when the
// call needs it, the local tracks on it, trickled candidates out, and the video sender's encoding.

// A connection made in advance is used only while its TURN credentials are surely valid (they last the expected
// length of a call, 30 minutes by default); an older one is made again.
export const STANDBY_MAX_AGE_MS = 20 * 60 * 1000;

// A peer connection made while the page waits for its call: it gathers candidates at once (a TURN allocation
// takes two round trips, over a second on a village line), and the call takes it when it starts.
let standby = null;

export function prepareConnection(iceServers) {
  if (!iceServers || !window.RTCPeerConnection) return;
  if (standby && Date.now() - standby.madeAt < STANDBY_MAX_AGE_MS) return;
  releaseConnection();
  standby = { pc: new RTCPeerConnection({ iceServers, iceCandidatePoolSize: 1 }), madeAt: Date.now() };
}

export function releaseConnection() {
  if (standby) standby.pc.close();
  standby = null;
}

function takeStandby() {
  const ready = standby && Date.now() - standby.madeAt < STANDBY_MAX_AGE_MS ? standby.pc : null;
  if (!ready) releaseConnection();
  standby = null;
  return ready;
}

// The body of a trickled candidate, or null for the end-of-candidates marker (which is not sent).
export function candidatePayload(candidate) {
  if (!candidate || !candidate.candidate) return null;
  return { candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex };
}

export const FLOWING = ["connected", "completed"];

// A peer connection for the call, with the local stream's tracks on it. The first of a page may be the one
// made in advance. Candidates are gathered (a TURN allocation takes two round trips) as soon as the connection
// exists, not only once the offer or answer is set: on a slow line that overlaps with the other side getting
// ready.
export function openPeer({ iceServers, stream, first, onTrack, onCandidate, onIceState }) {
  const standing = first && takeStandby();
  // A page that waited was given STUN only (TURN goes to the participants of an accepted call): the call's
  // servers, TURN included, replace those of the connection made in advance.
  if (standing) {
    try { standing.setConfiguration({ iceServers, iceCandidatePoolSize: 1 }); } catch (err) { /* kept as made */ }
  }
  const pc = standing || new RTCPeerConnection({ iceServers, iceCandidatePoolSize: 1 });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.ontrack = (ev) => onTrack(ev.streams[0] || new MediaStream([ev.track]), ev.track);
  pc.onicecandidate = (ev) => {
    const payload = candidatePayload(ev.candidate);
    if (payload) onCandidate(payload);
  };
  pc.oniceconnectionstatechange = () => onIceState(pc.iceConnectionState);
  return pc;
}

// Set fields of the video senders' first encoding (the ladder's rung, or paused for audio only).
export function setVideoEncoding(pc, fields) {
  if (!pc) return;
  for (const sender of pc.getSenders()) {
    if (!sender.track || sender.track.kind !== "video") continue;
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) params.encodings = [{}];
    Object.assign(params.encodings[0], fields);
    sender.setParameters(params).catch(() => {});
  }
}

// Mute and camera state go peer to peer on a data channel both sides open with the same id (negotiated: no
// in-band announcement, so neither side waits for the other's), as {"type": "media", "muted", "camera"}.
export const STATE_CHANNEL = { label: "state", id: 0 };

export function openStateChannel(pc, { onOpen, onMessage }) {
  let ch;
  try {
    ch = pc.createDataChannel(STATE_CHANNEL.label, { negotiated: true, id: STATE_CHANNEL.id, ordered: true });
  } catch {
    return null; // a peer connection without data channels: the peer's state is just not shown
  }
  ch.onopen = onOpen;
  ch.onmessage = (ev) => onMessage(ev.data);
  return ch;
}

export function mediaStateMessage({ muted, camera }) {
  return JSON.stringify({ type: "media", muted: Boolean(muted), camera: Boolean(camera) });
}

// {muted, camera} from a message of the other side, or null when it is not one.
export function parseMediaState(text) {
  if (typeof text !== "string" || text.length > 1000) return null;
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!m || m.type !== "media" || typeof m.muted !== "boolean" || typeof m.camera !== "boolean") return null;
  return { muted: m.muted, camera: m.camera };
}
