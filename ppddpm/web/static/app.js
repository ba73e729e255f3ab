// The page: the form from /api/info, a job per Sample press, its events streamed back.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
let info = null, job = null, events = null, uploadId = "";

function api(path) {   // an API address, carrying the token when the page has one
  return path + (token ? (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : "");
}

async function call(path, options) {
  const res = await fetch(api(path), options);
  let body = {};
  try { body = await res.json(); } catch (e) { body = {error: `the server answered ${res.status}`}; }
  if (!res.ok) throw new Error(body.error || `the server answered ${res.status}`);
  return body;
}

function model() { return info.models.find((m) => m.name === $("model").value); }

function showModel() {
  const m = model();
  if (!m) { $("model-info").textContent = "no weights file under --models"; return; }
  const classes = m.num_classes ? `${m.num_classes} classes` : "unconditional";
  $("model-info").textContent = m.problem ? m.problem :
    `${m.arch}, data set ${m.dataset}, ${m.resolution}x${m.resolution}` +
    `${m.channels === 1 ? " grey" : ""}, ${classes}, ${m.params.toLocaleString("en")} parameters, T = ${m.timesteps}`;
  $("class-row").hidden = $("guidance-row").hidden = !m.num_classes;
  const sel = $("class-label");
  sel.replaceChildren(new Option("none (unconditional branch)", ""), new Option("all, in turn", "all"));
  for (let k = 0; k < (m.num_classes || 0); k++) {
    const name = (m.class_names || [])[k];
    sel.add(new Option(name ? `${k}: ${name}` : String(k), String(k)));
  }
  $("steps").max = m.timesteps;
  if (+$("steps").value > m.timesteps) $("steps").value = m.timesteps;
}

function showKind() {   // an editing mode shows its own field and opens the upload panel
  const editing = $("kind").value === "img2img";
  $("strength-row").hidden = !editing;
  if (editing) $("upload-panel").open = true;
}

function showSampler() {
  const s = info.samplers.find((x) => x.name === $("sampler").value);
  $("eta-row").hidden = !s.reads.includes("eta");
}

async function load() {
  try {
    info = await call("/api/info");
  } catch (e) { $("message").textContent = e.message; return; }
  for (const m of info.models) {
    const opt = new Option(m.name + (m.problem ? " (cannot be sampled)" : ""), m.name);
    opt.disabled = !!m.problem;
    $("model").add(opt);
  }
  const first = info.models.find((m) => !m.problem);
  if (first) $("model").value = first.name;
  for (const k of info.kinds) $("kind").add(new Option(k.title, k.name));
  $("kind-row").hidden = info.kinds.length < 2;   // a choice once an editing mode exists
  for (const s of info.samplers) $("sampler").add(new Option(s.title, s.name));
  $("sampler").value = "ddim";
  $("num-images").max = info.max_images;
  showModel(); showSampler(); showKind();
  $("sample").disabled = !first;
}

function seconds(s) { return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`; }

function show(snap) {
  const status = $("status");
  if (snap.state === "queued") {
    const ahead = snap.position - 1;
    status.textContent = `Waiting: place ${snap.position} in the queue (${ahead} job${ahead === 1 ? "" : "s"} ahead of yours)`;
  } else if (snap.state === "running") {
    const left = snap.seconds_left == null ? "" : `, ${seconds(snap.seconds_left)} left`;
    status.textContent = snap.steps_total ? `Running: step ${snap.steps_done} of ${snap.steps_total}${left}` : `Running: ${snap.message}`;
  } else {
    status.textContent = {done: "Done: ", failed: "Failed: ", stopped: "Stopped: "}[snap.state] + snap.message;
  }
  status.dataset.state = snap.state;
  status.dataset.job = snap.id;
  $("progress").max = snap.steps_total || 1;
  $("progress").value = snap.steps_done;
  if (snap.frames) {
    $("frame-x0").src = snap.frames.x0;
    $("frame-xt").src = snap.frames.xt;
    $("frame-count").textContent = snap.frame_count;
  }
  if (snap.state === "failed") $("message").textContent = snap.message;
  if (snap.state === "done") {
    const base = `/api/jobs/${snap.id}/files/`;
    $("final").src = api(base + "grid");
    $("dl-grid").href = api(base + "grid");
    $("dl-gif").href = api(base + "gif");
    $("dl-npz").href = api(base + "npz");
    $("final-box").hidden = false;
  }
  if (["done", "failed", "stopped"].includes(snap.state)) finish();
}

function finish() {
  if (events) events.close();
  events = null; job = null;
  $("sample").disabled = false;
  $("stop").disabled = true;
}

async function sample() {
  $("message").textContent = "";
  $("final-box").hidden = true;
  const form = {
    kind: $("kind").value, upload: uploadId, model: $("model").value, sampler: $("sampler").value,
    steps: $("steps").value, eta: $("eta").value, seed: $("seed").value,
    num_images: $("num-images").value, class_label: $("class-row").hidden ? "" : $("class-label").value,
    guidance_scale: $("guidance-row").hidden ? 0 : $("guidance").value,
    strength: $("strength").value,
  };
  $("sample").disabled = true;
  try {
    job = await call("/api/jobs", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(form)});
  } catch (e) {
    $("message").textContent = e.message;
    $("sample").disabled = false;
    return;
  }
  $("stop").disabled = false;
  events = new EventSource(api(`/api/jobs/${job.id}/events`));
  events.onmessage = (ev) => show(JSON.parse(ev.data));
}

async function stop() {
  if (!job) return;
  $("stop").disabled = true;
  try { await call(`/api/jobs/${job.id}/stop`, {method: "POST"}); }
  catch (e) { $("message").textContent = e.message; }
}

async function upload() {
  const file = $("upload").files[0];
  const out = $("upload-message");
  if (!file) return;
  out.className = "";
  uploadId = "";
  try {
    const body = await call(`/api/upload?model=${encodeURIComponent($("model").value)}`,
      {method: "POST", headers: {"X-Filename": encodeURIComponent(file.name)}, body: file});
    out.textContent = body.message;
    uploadId = body.id;
  } catch (e) {
    out.textContent = e.message;
    out.className = "bad";
  }
}

$("model").addEventListener("change", showModel);
$("sampler").addEventListener("change", showSampler);
$("kind").addEventListener("change", showKind);
$("sample").addEventListener("click", sample);
$("stop").addEventListener("click", stop);
$("upload").addEventListener("change", upload);
load();
