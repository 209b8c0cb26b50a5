// Streams frames from a webcam, a video file or a set of images to WS /v1/stream and draws the
// returned (smoothed) polyp boxes on a transparent canvas over the picture. A recording is
// uploaded to POST /v1/videos instead: its progress is shown, then the annotated video plays
// with the report's tracks beside it.
"use strict";

const $ = (id) => document.getElementById(id);
const overlay = $("overlay");
const context = overlay.getContext("2d");
const grab = document.createElement("canvas");
const state = { socket: null, timer: null, frame: 0, images: [], encoding: false, answer: null,
                results: [], dropped: 0, boxesDrawn: 0, job: null };
const POLL_MS = 500;

function frameMessage(blob, frameId, timestamp) {
  const header = new TextEncoder().encode(JSON.stringify({ frame_id: frameId, timestamp }));
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, header.length, false);
  return new Blob([prefix, header, blob]);
}

function streamUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams(location.search);
  // Browsers cannot set headers on a WebSocket: the key travels as a query parameter.
  if ($("api-key").value) query.set("api_key", $("api-key").value);
  return `${scheme}//${location.host}/v1/stream?${query}`;
}

function currentPicture() {
  return $("source").value === "images" ? $("still") : $("video");
}

function pictureSize(picture) {
  return picture.tagName === "VIDEO"
    ? [picture.videoWidth, picture.videoHeight]
    : [picture.naturalWidth, picture.naturalHeight];
}

async function showImage(file) {
  const still = $("still");
  await new Promise((resolve, reject) => {
    still.onload = resolve;
    still.onerror = () => reject(new Error(`${file.name} is not an image the browser can show`));
    still.src = URL.createObjectURL(file);
  });
  return still;
}

// Encodes the picture as JPEG and sends it; false when it has no size yet (video not started).
async function sendPicture(socket, picture) {
  const [width, height] = pictureSize(picture);
  if (!width) return false;
  grab.width = width;
  grab.height = height;
  grab.getContext("2d").drawImage(picture, 0, 0, width, height);
  const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
  if (socket.readyState !== WebSocket.OPEN) return false;
  socket.send(frameMessage(blob, state.frame++, performance.now()));
  return true;
}

// A live source is real time: a tick is skipped while the previous frame is still being encoded
// or more than a frame waits unsent in the socket's buffer, so frames never pile up.
async function sendLiveFrame() {
  const socket = state.socket;
  if (state.encoding || !socket || socket.readyState !== WebSocket.OPEN) return;
  if (socket.bufferedAmount > 1 << 20) return;
  state.encoding = true;
  try {
    await sendPicture(socket, $("video"));
  } finally {
    state.encoding = false;
  }
}

// A folder is a recording: every image is sent once its predecessor is answered (no frame is
// replaced, so none is dropped), at most at the chosen rate; then the report is asked for and
// the service closes the socket.
async function playImages(socket, interval) {
  for (const file of state.images) {
    if (state.socket !== socket) return;
    const started = performance.now();
    const answered = new Promise((resolve) => (state.answer = resolve));
    if (await sendPicture(socket, await showImage(file))) await answered;
    const rest = interval - (performance.now() - started);
    if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
  }
  if (state.socket === socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "close" }));
  }
}

function answered() {
  if (state.answer) state.answer();
  state.answer = null;
}

function draw(result) {
  const picture = currentPicture();
  overlay.width = picture.clientWidth;
  overlay.height = picture.clientHeight;
  context.clearRect(0, 0, overlay.width, overlay.height);
  const sx = overlay.width / result.image.width;
  const sy = overlay.height / result.image.height;
  const outline = (box, colour, dashed) => {
    context.strokeStyle = colour;
    context.lineWidth = 3;
    context.setLineDash(dashed ? [6, 4] : []);
    context.strokeRect(box[0] * sx, box[1] * sy, (box[2] - box[0]) * sx, (box[3] - box[1]) * sy);
  };
  if ($("show-raw").checked) result.detections.forEach((d) => outline(d.box, "#ff0", true));
  for (const track of result.tracks) {
    outline(track.box, "#0f0", false);
    context.fillStyle = "#0f0";
    context.font = "14px system-ui";
    context.fillText(`#${track.track_id} ${(track.score * 100).toFixed(0)}%`,
                     track.box[0] * sx + 4, Math.max(14, track.box[1] * sy - 4));
    state.boxesDrawn += 1;
  }
  overlay.dataset.boxesDrawn = String(state.boxesDrawn);
}

function updateStats(result) {
  const now = performance.now();
  state.results.push(now);
  state.results = state.results.filter((t) => now - t < 2000);
  const fps = state.results.length / Math.min(2, (now - state.results[0]) / 1000 || 1);
  state.dropped += result.dropped;
  $("stat-fps").textContent = fps.toFixed(1);
  if (typeof result.timestamp === "number") {
    $("stat-latency").textContent = (now - result.timestamp).toFixed(0);
  }
  $("stat-dropped").textContent = String(state.dropped);
  $("stat-tracks").textContent = String(result.tracks.length);
}

// ---- recordings: a job of the service ------------------------------------------------------

// fetch with the API key as a header (only WebSockets and <video> need it in the URL); the
// parsed JSON body, or an Error with the service's message.
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if ($("api-key").value) headers.set("X-API-Key", $("api-key").value);
  const response = await fetch(path, { ...options, headers });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return { response, body };
}

function showProgress(job) {
  const p = job.progress;
  const bar = $("job-progress");
  bar.hidden = false;
  if (p.percent === null) bar.removeAttribute("value");
  else bar.value = p.percent;
  const done = p.frames_total ? `${p.frames_done}/${p.frames_total}` : String(p.frames_done);
  const parts = [`${done} frames`];
  if (p.fps !== null) parts.push(`${p.fps.toFixed(1)} fps`);
  if (p.eta_s !== null) parts.push(`${Math.ceil(p.eta_s)} s left`);
  $("stat-fps").textContent = p.fps === null ? "0.0" : p.fps.toFixed(1);
  $("status").textContent = `${job.state}: ${p.percent === null ? "" : p.percent + "%, "}` +
    parts.join(", ");
}

function showTracks(report) {
  const video = $("recording");
  const list = $("tracks");
  list.replaceChildren();
  for (const track of report.tracks) {
    const button = document.createElement("button");
    button.dataset.time = String(track.first_time_s);
    button.textContent = `#${track.track_id} ${track.label}  ` +
      `${track.first_time_s.toFixed(2)}–${track.last_time_s.toFixed(2)} s, ` +
      `max ${(track.max_score * 100).toFixed(0)}%`;
    button.addEventListener("click", () => { video.currentTime = track.first_time_s; });
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  }
  $("tracks-panel").hidden = false;
  $("stat-tracks").textContent = String(report.totals.tracks);
}

async function analyseRecording() {
  const file = $("recording-file").files[0];
  if (!file) throw new Error("choose a video file first");
  const form = new FormData();
  form.append("video", file, file.name);
  $("status").textContent = `uploading ${file.name}…`;
  const query = new URLSearchParams(location.search);
  let { response, body: job } = await api(`/v1/videos?${query}`, { method: "POST", body: form });
  const url = response.headers.get("Location");
  state.job = url;
  while (job.state === "queued" || job.state === "running") {
    showProgress(job);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (state.job !== url) return;  // stopped meanwhile
    ({ body: job } = await api(url));
  }
  state.job = null;
  $("job-progress").hidden = true;
  if (job.state === "failed") throw new Error(`analysis failed: ${job.error}`);
  const { body: report } = await api(job.report_url);
  const key = $("api-key").value;
  const video = $("recording");
  video.src = job.video_url + (key ? `?api_key=${encodeURIComponent(key)}` : "");
  video.hidden = false;
  showTracks(report);
  const t = report.totals;
  finish(`done: ${t.frames} frames analysed, ${t.tracks} tracks`);
}

function startRecording() {
  $("tracks-panel").hidden = true;
  $("recording").hidden = true;
  $("start").disabled = true;
  $("stop").disabled = false;
  analyseRecording().catch((e) => finish(`error: ${e.message}`));
}

// Stop: a job still running is cancelled (and removed) by the service.
function stopRecording() {
  const url = state.job;
  state.job = null;
  $("job-progress").hidden = true;
  if (url) api(url, { method: "DELETE" }).catch(() => {});
  finish("stopped");
}

function finish(status) {
  $("status").textContent = status;
  $("start").disabled = false;
  $("stop").disabled = true;
}

// ---- live sources: the WebSocket stream ---------------------------------------------------

function start() {
  if ($("source").value === "recording") {
    startRecording();
    return;
  }
  const socket = new WebSocket(streamUrl());
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  Object.assign(state, { frame: 0, results: [], dropped: 0, boxesDrawn: 0 });
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      $("status").textContent = `streaming to ${message.model.name} v${message.model.version}`;
      const interval = 1000 / Math.max(1, Number($("fps").value));
      if ($("source").value === "images") {
        playImages(socket, interval).catch((e) => stop(String(e)));
      } else {
        state.timer = setInterval(() => sendLiveFrame().catch((e) => stop(String(e))), interval);
      }
    } else if (message.type === "result") {
      draw(message);
      updateStats(message);
      answered();
    } else if (message.type === "report") {
      const f = message.frames;
      $("status").textContent = `done: ${f.processed} processed, ${f.dropped} dropped, ` +
        `p95 ${message.latency_ms.p95} ms, ${message.alerts} polyps`;
    } else if (message.type === "error") {
      $("status").textContent = `error: ${message.error}`;
      answered();
    }
  };
  socket.onclose = (event) => {
    if (event.code !== 1000) stop(`closed (${event.code}) ${event.reason}`);
    else stop($("status").textContent);
  };
  $("start").disabled = true;
  $("stop").disabled = false;
}

function stop(reason) {
  clearInterval(state.timer);
  state.timer = null;
  answered();
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.close(1000);
  state.socket = null;
  $("status").textContent = reason || "stopped";
  $("start").disabled = false;
  $("stop").disabled = true;
}

async function useWebcam() {
  const video = $("video");
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  video.src = "";
  await video.play();
}

$("source").addEventListener("change", () => {
  const source = $("source").value;
  $("images").hidden = source !== "images";
  $("video-file").hidden = source !== "file";
  $("recording-file").hidden = source !== "recording";
  $("still").hidden = source !== "images";
  $("video").hidden = source === "images" || source === "recording";
  $("recording").hidden = source !== "recording" || !$("recording").src;
  $("tracks-panel").hidden = source !== "recording" || !$("tracks").children.length;
  $("fps").parentElement.hidden = source === "recording";
  if (source === "webcam") useWebcam().catch((e) => ($("status").textContent = String(e)));
});
$("images").addEventListener("change", (event) => {
  state.images = [...event.target.files]
    .filter((f) => /\.(jpe?g|png)$/i.test(f.name))
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  $("status").textContent = `${state.images.length} images ready`;
});
$("video-file").addEventListener("change", (event) => {
  const video = $("video");
  video.srcObject = null;
  video.src = URL.createObjectURL(event.target.files[0]);
  video.loop = true;
  video.play();
});
$("start").addEventListener("click", start);
$("stop").addEventListener("click", () => {
  if ($("source").value === "recording") stopRecording();
  else stop("stopped");
});
