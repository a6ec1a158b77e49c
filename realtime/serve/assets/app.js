// nst-serve page: camera -> server over WebRTC -> stylised video back; settings on a data channel.
// Plain JS, no build step. State the tests read is kept in window.nst.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const MOD = 2 ** 32;
const mod = (x) => ((x % MOD) + MOD) % MOD;

const nst = (window.nst = {
  state: "starting", // starting | connecting | live | error | closed
  error: "",
  session: "",
  settings: null,
  modelName: "",
  framesShown: 0,
  fps: 0,
  latencyMs: null, // mean of the last 30 matched frames, capture to display
  latencies: [], // recent samples (ms)
  modelMs: [], // the model's time for the same frames (ms)
  framesMatched: 0,
  messages: 0,
  errors: [],
  models: [],
});

let pc = null;
let channel = null;
let camera = null;
let facing = "user";
let config = null;

function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, TOKEN ? { "X-NST-Token": TOKEN } : {});
  return fetch(path, Object.assign({}, options, { headers }));
}

function withToken(path) {
  return TOKEN ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}` : path;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (_) {}
  return `${response.status} ${response.statusText}`;
}

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function notice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
}

function fail(text) {
  nst.state = "error";
  nst.error = text;
  notice(text);
  $("hud-rate").textContent = "stopped";
  stopMedia();
}

function stopMedia() {
  if (camera) camera.getTracks().forEach((t) => t.stop());
  if (pc) pc.close();
}

// ---------------------------------------------------------------- clock sync and latency
// The server stamps each frame it sends with its pts and the estimated capture time of the
// camera frame it came from (server clock). requestVideoFrameCallback gives the RTP timestamp
// of each displayed frame: pts plus a constant offset the page learns by voting. Pings over the
// data channel map the server clock onto ours (the sample with the shortest round trip wins).
const sentFrames = new Map(); // pts mod 2^32 -> frame message
let rtpOrigin = null;
let votes = new Map();
let misses = 0;
const pings = []; // {rtt, offset}
let clockOffset = null; // server ms - page ms
const shownAt = [];

function ping() {
  if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "ping", t: performance.now() }));
}

function onPong(m) {
  const now = performance.now();
  const rtt = now - m.t;
  pings.push({ rtt, offset: m.now - (m.t + now) / 2 });
  if (pings.length > 20) pings.shift();
  clockOffset = pings.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
}

function onFrameMessage(m) {
  sentFrames.set(m.pts, m);
  if (sentFrames.size > 300) sentFrames.delete(sentFrames.keys().next().value);
}

function lookup(rtp) {
  const base = mod(rtp - rtpOrigin);
  for (const d of [0, -1, 1, -2, 2]) {
    const m = sentFrames.get(mod(base + d));
    if (m) return m;
  }
  return null;
}

function vote(rtp) {
  for (const pts of sentFrames.keys()) {
    const c = mod(rtp - pts);
    votes.set(c, (votes.get(c) || 0) + 1);
  }
  let best = null;
  let bestCount = 0;
  for (const [c, n] of votes) {
    const count = n + (votes.get(mod(c - 1)) || 0) + (votes.get(mod(c + 1)) || 0);
    if (count > bestCount) [best, bestCount] = [c, count];
  }
  if (bestCount >= 3) {
    rtpOrigin = best;
    votes = new Map();
  } else if (votes.size > 50000) {
    votes = new Map();
  }
}

function onDisplayed(now, md) {
  nst.framesShown += 1;
  shownAt.push(now);
  while (shownAt.length && now - shownAt[0] > 1000) shownAt.shift();
  if (md.rtpTimestamp === undefined) return;
  if (rtpOrigin === null) {
    vote(md.rtpTimestamp);
    return;
  }
  const m = lookup(md.rtpTimestamp);
  if (!m) {
    if (++misses > 30) [rtpOrigin, misses] = [null, 0];
    return;
  }
  misses = 0;
  if (clockOffset === null) return;
  nst.framesMatched += 1;
  const shown = md.expectedDisplayTime || md.presentationTime || now;
  const latency = shown - (m.cap - clockOffset);
  nst.latencies.push(latency);
  nst.modelMs.push(m.model_ms);
  if (nst.latencies.length > 300) [nst.latencies, nst.modelMs] = [nst.latencies.slice(-300), nst.modelMs.slice(-300)];
  const recent = nst.latencies.slice(-30);
  nst.latencyMs = recent.reduce((a, b) => a + b, 0) / recent.length;
  nst.last = m;
}

function watchFrames(video) {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return false;
  const step = (now, md) => {
    onDisplayed(now, md);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
  return true;
}

function updateHud() {
  if (nst.state !== "live") return;
  if (shownAt.length > 1) nst.fps = ((shownAt.length - 1) * 1000) / (shownAt[shownAt.length - 1] - shownAt[0]);
  const latency = nst.latencyMs === null ? "-- ms" : `${Math.round(nst.latencyMs)} ms`;
  $("hud-rate").textContent = `${nst.fps.toFixed(1)} fps · ${latency}`;
  const m = nst.last;
  $("hud-detail").textContent = m ? `${nst.modelName} · model ${Math.round(m.model_ms)} ms · batch ${m.batch}` : nst.modelName;
}

// ---------------------------------------------------------------- settings and the style picker
function send(message) {
  if (channel && channel.readyState === "open") channel.send(JSON.stringify(message));
}

function setSettings(changes) {
  send(Object.assign({ type: "settings" }, changes));
}

function showSettings(s) {
  nst.settings = s;
  $("strength").value = s.strength;
  $("strength-value").textContent = Number(s.strength).toFixed(2);
  $("stabilize").checked = s.stabilize !== null;
  if (s.stabilize !== null) {
    $("stabilize-strength").value = s.stabilize;
    $("stabilize-value").textContent = Number(s.stabilize).toFixed(2);
  }
  $("color").checked = s.preserve_color;
  $("sbs").checked = s.side_by_side;
  const entry = nst.models.find((e) => e.id === s.model);
  $("blend-row").hidden = !(entry && entry.styles.length);
  for (const card of document.querySelectorAll(".style")) {
    const selected = card.dataset.model === s.model && (card.dataset.style || null) === (s.style || null);
    card.setAttribute("aria-selected", String(selected));
  }
}

function card(entry, style, index) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "style";
  button.setAttribute("role", "option");
  button.dataset.model = entry.id;
  if (style !== null) button.dataset.style = style;
  const img = document.createElement("img");
  img.alt = "";
  img.loading = "lazy";
  img.src = withToken(`/api/thumb/${entry.id}.jpg${index === null ? "" : `?style=${index}`}`);
  const label = document.createElement("span");
  label.textContent = style === null ? entry.name : `${entry.name} · ${style}`;
  button.title = entry.error ? `${entry.name}: ${entry.error}` : label.textContent;
  button.append(img, label);
  button.disabled = Boolean(entry.error);
  button.addEventListener("click", () => setSettings({ model: entry.id, style }));
  return button;
}

async function loadModels() {
  const response = await api("/api/models");
  if (!response.ok) return say(await errorText(response), true);
  nst.models = (await response.json()).models;
  const strip = $("styles");
  strip.replaceChildren();
  for (const entry of nst.models) {
    strip.append(card(entry, null, null));
    entry.styles.forEach((name, i) => strip.append(card(entry, name, i)));
  }
  if (nst.settings) showSettings(nst.settings);
}

function wireControls() {
  $("strength").addEventListener("input", (e) => {
    $("strength-value").textContent = Number(e.target.value).toFixed(2);
    setSettings({ strength: Number(e.target.value) });
  });
  const stabilizer = () => setSettings({ stabilize: $("stabilize").checked ? Number($("stabilize-strength").value) : null });
  $("stabilize").addEventListener("change", stabilizer);
  $("stabilize-strength").addEventListener("input", (e) => {
    $("stabilize-value").textContent = Number(e.target.value).toFixed(2);
    if ($("stabilize").checked) stabilizer();
  });
  $("color").addEventListener("change", (e) => setSettings({ preserve_color: e.target.checked }));
  $("sbs").addEventListener("change", (e) => setSettings({ side_by_side: e.target.checked }));
  $("blend-apply").addEventListener("click", () => setSettings({ style: $("blend").value.trim() || null }));
  $("blend").addEventListener("keydown", (e) => e.key === "Enter" && $("blend-apply").click());
  $("snapshot").addEventListener("click", snapshot);
  $("flip").addEventListener("click", flipCamera);
  $("stop").addEventListener("click", () => {
    send({ type: "bye" });
    nst.state = "closed";
    notice("Stopped. Reload the page to start again.");
    stopMedia();
  });
}

function snapshot() {
  const video = $("out");
  if (!video.videoWidth) return say("no picture yet", true);
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    const link = document.createElement("a");
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    link.download = `nst-serve_${nst.modelName || "frame"}_${stamp}.png`;
    link.href = URL.createObjectURL(blob);
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }, "image/png");
}

async function openCamera() {
  const size = config.size || [640, 360];
  return navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { width: { ideal: size[0] }, height: { ideal: size[1] }, facingMode: facing },
  });
}

async function flipCamera() {
  facing = facing === "user" ? "environment" : "user";
  try {
    const next = await openCamera();
    const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
    await sender.replaceTrack(next.getVideoTracks()[0]); // no renegotiation
    camera.getTracks().forEach((t) => t.stop());
    camera = next;
  } catch (e) {
    say(`cannot switch camera: ${e.message || e}`, true);
  }
}

// The server says how many frames a second its model takes from us; sending many more only costs
// encoding here and decoding there, so the camera's sending rate follows (no renegotiation).
async function capFrameRate(fps) {
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === "video");
  if (!sender || !fps) return;
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) return;
  if (Math.abs((params.encodings[0].maxFramerate || 0) - fps) < 2) return;
  params.encodings[0].maxFramerate = fps;
  nst.sendFps = fps;
  try {
    await sender.setParameters(params);
  } catch (_) {} // not every browser takes it; then it sends at the camera's rate
}

// ---------------------------------------------------------------- connection
function onMessage(event) {
  nst.messages += 1;
  const m = JSON.parse(event.data);
  if (m.type === "frame") onFrameMessage(m);
  else if (m.type === "pong") onPong(m);
  else if (m.type === "state") {
    nst.session = m.session;
    nst.modelName = m.model_name;
    showSettings(m.settings);
  } else if (m.type === "error") {
    nst.errors.push(m);
    say(m.message, true);
  } else if (m.type === "rate") {
    capFrameRate(m.suggested_fps);
  } else if (m.type === "closed") {
    nst.state = "closed";
    notice(`The server ended this session: ${m.reason}. Reload to start again.`);
  }
}

function iceGathered(connection, timeoutMs) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => connection.iceGatheringState === "complete" && resolve();
    connection.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // send what we have
  });
}

async function connect() {
  const response = await api("/api/config");
  if (!response.ok) return fail(await errorText(response));
  config = await response.json();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return fail("This browser gives no camera here: open the page over https:// or on localhost.");
  }
  try {
    camera = await openCamera();
  } catch (e) {
    return fail(`No camera: ${e.message || e.name}`);
  }
  nst.state = "connecting";
  pc = new RTCPeerConnection({ iceServers: config.ice_servers });
  channel = pc.createDataChannel("control");
  channel.addEventListener("message", onMessage);
  channel.addEventListener("open", () => {
    for (let i = 0; i < 5; i++) setTimeout(ping, i * 100);
  });
  camera.getTracks().forEach((track) => pc.addTrack(track, camera));
  const video = $("out");
  pc.addEventListener("track", (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
    video.play().catch(() => {});
    watchFrames(video);
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") {
      nst.state = "live";
      notice("");
    } else if (pc.connectionState === "failed" && nst.state !== "closed") {
      fail("The connection failed (the server's network address is not reachable from here?).");
    }
  });
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc, 3000);
  const answer = await api("/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  if (!answer.ok) return fail(await errorText(answer));
  const body = await answer.json();
  nst.session = body.session;
  await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
}

window.addEventListener("pagehide", () => {
  if (!nst.session || nst.state === "closed") return;
  send({ type: "bye" });
  navigator.sendBeacon(withToken(`/api/close?session=${encodeURIComponent(nst.session)}`));
});

wireControls();
setInterval(updateHud, 250);
setInterval(ping, 2000);
loadModels().catch((e) => say(`cannot list models: ${e}`, true));
connect().catch((e) => fail(`cannot connect: ${e.message || e}`));
