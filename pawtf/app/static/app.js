// pawtf's page: drop a pet's photos, see them ranked, why, and how to make them better.
// Plain JavaScript over the JSON API (/docs); no framework, nothing fetched from elsewhere.
"use strict";

const info = JSON.parse(document.getElementById("model-info").textContent);
const $ = (id) => document.getElementById(id);
let photos = [];        // {file, name, url, flags, result} in the order they were dropped
let selected = null;    // index into photos of the photo shown in the detail panel
let generation = 0;     // a newer drop makes the answers to an older one stale

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

function post(url, form, onUpload) {
  // XMLHttpRequest rather than fetch: it reports the upload's progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "json";
    if (onUpload) xhr.upload.onprogress = (e) => { if (e.lengthComputable) onUpload(e.loaded / e.total); };
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Error(typeof body.detail === "string" ? body.detail : `the server answered ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error("the pawtf server could not be reached; is `pawtf app` still running?"));
    xhr.send(form);
  });
}

function scoreText(r) {
  if (!r) return "scoring…";
  if (r.error) return "not scored";
  return r.score === null ? r.label : r.score.toFixed(1);
}

function render() {
  const list = $("ranking");
  list.textContent = "";
  const order = photos.map((p, i) => i).sort((a, b) => {
    const ra = photos[a].result, rb = photos[b].result;
    const ka = ra && !ra.error ? ra.rank : Infinity, kb = rb && !rb.error ? rb.rank : Infinity;
    return ka - kb || a - b;
  });
  for (const i of order) {
    const p = photos[i], r = p.result;
    const li = document.createElement("li");
    li.dataset.index = i;
    li.dataset.name = p.name;
    li.className = !r ? "pending" : r.error ? "failed" : "scored" + (r.best ? " best" : "");
    if (i === selected) li.classList.add("selected");
    const img = document.createElement("img");
    img.src = p.url; img.alt = p.name;
    li.appendChild(img);
    if (r && !r.error) {
      const rank = document.createElement("span"); rank.className = "rank"; rank.textContent = `#${r.rank}`;
      li.appendChild(rank);
      if (r.best) { const b = document.createElement("span"); b.className = "badge"; b.textContent = "best"; li.appendChild(b); }
      if (r.rater) {
        const v = document.createElement("span");
        v.className = "verdict " + r.rater.verdict; v.textContent = r.rater.verdict;
        v.title = `the rater's probability of a good photo: ${r.rater.p_good.toFixed(2)}`;
        li.appendChild(v);
      }
    }
    const score = document.createElement("div"); score.className = "score"; score.textContent = scoreText(r);
    const name = document.createElement("div"); name.className = "name"; name.textContent = p.name;
    li.append(score, name);
    if (r && r.error) { const e = document.createElement("div"); e.className = "error"; e.textContent = r.error; li.appendChild(e); }
    else li.addEventListener("click", () => select(i));
    list.appendChild(li);
  }
}

function applyRanking(answer, indices) {
  // answer.photos index into the request; indices maps them back to `photos`.
  for (const row of answer.photos) photos[indices[row.index]].result = row;
}

function rerank() {
  // After one photo was scored again: order every scored photo by its value, best first (as the server does).
  const scored = photos.filter((p) => p.result && !p.result.error);
  scored.sort((a, b) => (b.result.value ?? b.result.score) - (a.result.value ?? a.result.score));
  scored.forEach((p, k) => { p.result.rank = k + 1; p.result.best = k === 0; });
}

async function scoreAll(files) {
  const mine = ++generation;
  photos.forEach((p) => URL.revokeObjectURL(p.url));
  photos = Array.from(files).map((f) => ({ file: f, name: f.name, url: URL.createObjectURL(f),
                                           flags: info.flags.map(() => 0), result: null }));
  selected = null;
  $("detail").hidden = true;
  render();
  if (photos.length > info.limits.max_photos) {
    setStatus(`${photos.length} photos chosen; at most ${info.limits.max_photos} at a time: choose fewer.`, true);
    return;
  }
  const form = new FormData();
  photos.forEach((p) => form.append("photos", p.file, p.name));
  if (info.uses_flags) form.append("flags", JSON.stringify(photos.map((p) => p.flags)));
  $("progress").hidden = false; $("progress").value = 0;
  setStatus(`Uploading ${photos.length} photo${photos.length > 1 ? "s" : ""}…`);
  try {
    const answer = await post("/api/score", form, (f) => {
      $("progress").value = 100 * f;
      if (f >= 1) setStatus(`Scoring ${photos.length} photo${photos.length > 1 ? "s" : ""}…`);
    });
    if (mine !== generation) return;
    applyRanking(answer, photos.map((p, i) => i));
    const failed = photos.length - answer.n_scored;
    setStatus(`${answer.n_scored} photo${answer.n_scored === 1 ? "" : "s"} ranked, best first` +
              (failed ? `; ${failed} could not be scored (listed last, with the reason)` : "") +
              ". Click a photo to see why.");
    $("band").hidden = false;
  } catch (err) {
    if (mine !== generation) return;
    setStatus(err.message, true);
  } finally {
    if (mine === generation) $("progress").hidden = true;
  }
  render();
  document.body.dataset.state = "ranked";
}

function photoForm(p, extra) {
  const form = new FormData();
  form.append("photo", p.file, p.name);
  if (info.uses_flags) form.append("flags", JSON.stringify(p.flags));
  for (const [k, v] of Object.entries(extra || {})) form.append(k, v);
  return form;
}

function renderFlags(i) {
  const box = $("flags");
  box.textContent = "";
  $("flags-box").hidden = !info.uses_flags;
  info.flags.forEach((flag, j) => {
    const label = document.createElement("label");
    const check = document.createElement("input");
    check.type = "checkbox"; check.checked = photos[i].flags[j] === 1; check.dataset.flag = flag;
    check.addEventListener("change", () => { photos[i].flags[j] = check.checked ? 1 : 0; rescore(i); });
    label.append(check, " " + flag);
    box.appendChild(label);
  });
}

async function rescore(i) {
  const p = photos[i];
  const form = new FormData();
  form.append("photos", p.file, p.name);
  form.append("flags", JSON.stringify([p.flags]));
  setStatus(`Scoring ${p.name} again with its flags…`);
  try {
    const answer = await post("/api/score", form);
    const row = answer.photos[0];
    p.result = Object.assign(p.result || {}, { score: row.score, label: row.label, value: row.value,
                                               extra: row.extra, error: row.error });
    rerank();
    render();
    showScore(i);
    setStatus(`${p.name}: ${scoreText(p.result)} with the flags ticked; the ranking is updated.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function showScore(i) {
  const r = photos[i].result;
  const extra = Object.entries(r.extra || {}).filter(([k, v]) => typeof v === "number")
    .map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
  $("detail-score").textContent = `Rank ${r.rank} of ${photos.filter((p) => p.result && !p.result.error).length}: ` +
    `${info.predicts_score ? "predicted score " : ""}${scoreText(r)}` + (extra ? ` (${extra})` : "") +
    (info.synthetic_demo ? " (demo model: means nothing for real photos)" : "");
}

async function explain(i) {
  const p = photos[i];
  const method = $("method").value;
  $("overlay").removeAttribute("src");
  $("sentence").textContent = `Computing the ${method} map…`;
  try {
    const answer = await post("/api/explain", photoForm(p, { method }));
    if (selected !== i) return;
    $("overlay").src = answer.overlay;
    $("overlay").alt = `${answer.label} map of ${p.name}`;
    $("sentence").textContent = answer.sentence;
  } catch (err) {
    $("sentence").textContent = err.message;
  }
}

async function rate(i) {
  // The rater's verdict on the photo and the inputs that pushed it most (sharpness, brightness...).
  const p = photos[i];
  $("rater-box").hidden = !info.rater;
  if (!info.rater) return;
  $("rater-reasons").textContent = "";
  $("rater-verdict").textContent = "Asking the rater…";
  try {
    const answer = await post("/api/rate", photoForm({ file: p.file, name: p.name }));
    if (selected !== i) return;
    $("rater-verdict").textContent = answer.sentence;
    for (const r of answer.reasons) {
      const li = document.createElement("li");
      li.textContent = `${r.words}: ${r.value >= 0 ? "+" : ""}${r.value.toFixed(2)}`;
      li.className = r.value >= 0 ? "pushes-good" : "pushes-retake";
      $("rater-reasons").appendChild(li);
    }
  } catch (err) {
    $("rater-verdict").textContent = err.message;
  }
}

async function crop() {
  const i = selected, p = photos[i];
  $("crop-button").disabled = true;
  $("crop-box").hidden = false;
  $("crop-download").hidden = true;
  $("crop-preview").removeAttribute("src");
  $("crop-advice").textContent = "Finding the pet and scoring crops that keep all of it…";
  try {
    const answer = await post("/api/crop", photoForm(p));
    if (selected !== i) return;
    $("crop-preview").src = answer.preview;
    $("crop-advice").textContent = answer.advice;
    if (answer.crop) {
      $("crop-download").href = answer.crop;
      $("crop-download").download = answer.filename;
      $("crop-download").textContent = `Download the cropped photo (${answer.original.toFixed(1)} → ${answer.best.score.toFixed(1)})`;
      $("crop-download").hidden = false;
    }
  } catch (err) {
    $("crop-advice").textContent = err.message;
  } finally {
    $("crop-button").disabled = false;
  }
}

function select(i) {
  selected = i;
  render();
  $("detail").hidden = false;
  $("detail-title").textContent = photos[i].name;
  showScore(i);
  renderFlags(i);
  $("crop-box").hidden = true;
  $("crop-button").hidden = !info.predicts_score;
  rate(i);
  explain(i);
}

function setUp() {
  for (const m of info.methods) {
    const o = document.createElement("option"); o.value = m; o.textContent = m; $("method").appendChild(o);
  }
  $("method").value = info.default_method;
  $("method").addEventListener("change", () => { if (selected !== null) explain(selected); });
  $("crop-button").addEventListener("click", crop);
  $("picker").addEventListener("change", (e) => { if (e.target.files.length) scoreAll(e.target.files); });
  const drop = $("drop");
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("picker").click(); });
  for (const name of ["dragenter", "dragover"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) scoreAll(e.dataTransfer.files); });
  document.body.dataset.state = "ready";
}

setUp();
