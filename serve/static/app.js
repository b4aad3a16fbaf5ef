// The browser page of `tinymim serve` (GET /). Plain JavaScript, no dependencies: it talks only to this server.
// Flow: GET /v1/model (what is served) -> an image is dropped or picked -> POST /v1/classify?top_k=K with the
// raw bytes -> top-k, the Server-Timing split of the answer, and the round trip added to a latency history.
"use strict";

const STAGES = ["decode", "preprocess", "queue", "compute", "encode"];
const HISTORY_MAX = 50;
const $ = (id) => document.getElementById(id);

const state = {
  apiKey: sessionStorage.getItem("tinymim-api-key") || "",
  classes: 0,
  image: null, // the last Blob sent
  history: [], // round trips in ms, oldest first
  busy: false,
};

function headers(extra = {}) {
  return state.apiKey ? { ...extra, "X-API-Key": state.apiKey } : extra;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${response.status}: ${body.error}`;
  } catch (_) {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`;
}

// ---------------------------------------------------------------------------------------- what is served
async function loadModel() {
  let response;
  try {
    response = await fetch("/v1/model", { headers: headers() });
  } catch (err) {
    $("model").textContent = `cannot reach the server: ${err}`;
    return;
  }
  if (response.status === 401) {
    $("key-box").hidden = false;
    $("model").textContent = "this server needs an API key";
    return;
  }
  if (response.status === 503) {
    $("model").textContent = "the model is loading...";
    setTimeout(loadModel, 1000);
    return;
  }
  if (!response.ok) {
    $("model").textContent = await errorText(response);
    return;
  }
  const m = await response.json();
  state.classes = m.labels.length;
  $("top-k").max = String(state.classes);
  $("top-k").value = String(Math.min(5, state.classes));
  $("key-box").hidden = true;
  $("model").textContent =
    `${m.name}: artifact ${m.artifact} on ${m.runtime} (${m.device}), input ${m.input_shape.join("x")}, ` +
    `${state.classes} classes, batches up to ${m.max_batch_size}`;
}

// ---------------------------------------------------------------------------------------- classify
function parseServerTiming(value) {
  // "decode;dur=0.04, ..., batch;desc=\"1\", total;dur=1.2" -> {decode: {dur: 0.04}, batch: {desc: "1"}, ...}
  const out = {};
  for (const entry of (value || "").split(",")) {
    const [name, ...params] = entry.trim().split(";");
    if (!name) continue;
    const metric = {};
    for (const p of params) {
      const [key, raw = ""] = p.trim().split("=");
      if (key === "dur") metric.dur = Number(raw);
      if (key === "desc") metric.desc = raw.replace(/^"|"$/g, "");
    }
    out[name.trim()] = metric;
  }
  return out;
}

async function classify(blob) {
  if (state.busy) return;
  state.busy = true;
  setButtons();
  showError("");
  const k = Math.max(1, Number($("top-k").value) || 1);
  const started = performance.now();
  try {
    const response = await fetch(`/v1/classify?top_k=${k}`, {
      method: "POST",
      body: blob,
      headers: headers({ "Content-Type": blob.type || "application/octet-stream" }),
    });
    const body = response.ok ? await response.json() : null;
    const roundTrip = performance.now() - started;
    if (!response.ok) {
      if (response.status === 401) $("key-box").hidden = false;
      showError(await errorText(response));
      return;
    }
    state.image = blob;
    showPredictions(body.predictions[0]);
    showTiming(parseServerTiming(response.headers.get("Server-Timing")), roundTrip);
    addToHistory(roundTrip);
    $("result").hidden = false;
  } catch (err) {
    showError(`request failed: ${err}`);
  } finally {
    state.busy = false;
    setButtons();
  }
}

function showPredictions(pred) {
  const list = $("predictions");
  list.replaceChildren();
  pred.labels.forEach((label, i) => {
    const li = document.createElement("li");
    li.className = "pred";
    li.dataset.index = String(pred.indices[i]);
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${100 * pred.scores[i]}%`; // the softmax probability itself
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = pred.scores[i].toFixed(4);
    li.append(name, bar, score);
    list.append(li);
  });
}

function showTiming(timing, roundTrip) {
  const rows = [];
  const bar = $("stage-bar");
  bar.replaceChildren();
  for (const stage of STAGES) {
    const dur = timing[stage] ? timing[stage].dur : NaN;
    rows.push([stage, dur]);
    const part = document.createElement("span");
    part.style.width = `${Math.max(0, (100 * (dur || 0)) / roundTrip)}%`;
    part.style.background = `var(--${stage})`;
    part.title = `${stage} ${dur.toFixed(3)} ms`;
    bar.append(part);
  }
  const total = timing.total ? timing.total.dur : NaN;
  rows.push(["total in the server", total]);
  rows.push(["network, HTTP and browser", roundTrip - total]);
  rows.push(["round trip", roundTrip]);
  const body = $("timing").tBodies[0];
  body.replaceChildren();
  for (const [name, ms] of rows) {
    const tr = document.createElement("tr");
    tr.dataset.stage = name;
    const a = document.createElement("td");
    if (STAGES.includes(name)) {
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = `var(--${name})`;
      a.append(sw);
    }
    a.append(name);
    const b = document.createElement("td");
    b.textContent = Number.isFinite(ms) ? ms.toFixed(3) : "-";
    tr.append(a, b);
    body.append(tr);
  }
  if (timing.batch && timing.batch.desc) {
    const tr = document.createElement("tr");
    tr.dataset.stage = "batch";
    tr.innerHTML = "<td>batch size</td><td></td>";
    tr.cells[1].textContent = timing.batch.desc;
    body.append(tr);
  }
}

function percentile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

function addToHistory(ms) {
  state.history.push(ms);
  if (state.history.length > HISTORY_MAX) state.history.shift();
  const svg = $("history");
  svg.replaceChildren();
  const top = Math.max(...state.history) * 1.1;
  const w = 400 / HISTORY_MAX;
  state.history.forEach((v, i) => {
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const h = Math.max(1, (80 * v) / top);
    rect.setAttribute("x", String(i * w + 1));
    rect.setAttribute("y", String(80 - h));
    rect.setAttribute("width", String(w - 2));
    rect.setAttribute("height", String(h));
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${v.toFixed(2)} ms`;
    rect.append(title);
    svg.append(rect);
  });
  const h = state.history;
  $("history-summary").textContent =
    `${h.length} request${h.length === 1 ? "" : "s"}: last ${ms.toFixed(2)} ms, ` +
    `p50 ${percentile(h, 0.5).toFixed(2)} ms, p90 ${percentile(h, 0.9).toFixed(2)} ms, ` +
    `max ${Math.max(...h).toFixed(2)} ms`;
}

// ---------------------------------------------------------------------------------------- input
function useFile(file) {
  if (!file) return;
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  classify(file);
}

function setButtons() {
  $("again").disabled = state.busy || !state.image;
  $("again-20").disabled = state.busy || !state.image;
}

async function sendRepeatedly(n) {
  for (let i = 0; i < n && state.image; i++) {
    await classify(state.image);
  }
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => useFile(e.target.files[0]));
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    useFile(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      $("file").click();
    }
  });
  $("again").addEventListener("click", () => sendRepeatedly(1));
  $("again-20").addEventListener("click", () => sendRepeatedly(20));
  $("key-save").addEventListener("click", () => {
    state.apiKey = $("api-key").value.trim();
    sessionStorage.setItem("tinymim-api-key", state.apiKey);
    loadModel();
  });
}

wire();
loadModel();
