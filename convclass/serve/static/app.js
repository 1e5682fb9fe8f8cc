// The page's behaviour: read the model's facts, send the chosen image to /api/predict, draw the top-5 bars.
// Everything the server returns is inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let limits = { max_upload_bytes: 10 * 1024 * 1024 };
let previewUrl = null;
let lastFile = null;   // the image on show, once the server accepted it: what ticking Grad-CAM asks about again
let asked = 0;         // requests sent; an answer to any but the latest is dropped (a slow one must not land
let inFlight = null;   // over a newer image); inFlight aborts the previous request

function showError(msg) {
  $("error").textContent = msg;
  $("error").hidden = !msg;
}

async function loadModel() {
  try {
    const r = await fetch("/api/model");
    const m = await r.json();
    limits = m.limits || limits;
    $("model-name").textContent = m.name;
    const acc = m.test_acc === null || m.test_acc === undefined ? "not recorded" : (100 * m.test_acc).toFixed(2) + " %";
    $("model-facts").textContent = `${m.arch} (${m.runtime}), ${m.num_classes} classes, ` +
      `input ${m.channels}×${m.img_size}×${m.img_size}, test accuracy ${acc}`;
    $("class-summary").textContent = `${m.num_classes} classes`;
    $("class-list").textContent = m.classes.join(", ");
    if (!m.gradcam) { $("cam-toggle").hidden = true; }
  } catch (e) {
    showError("could not read the model's facts: " + e);
  }
}

function drawScores(pred) {
  const list = $("topk");
  list.replaceChildren();
  const multi = Array.isArray(pred.labels);  // a multi-label model: every label at or above its threshold
  for (const t of multi ? pred.labels : pred.top) {
    const li = document.createElement("li");
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = t.name || t.class;
    label.title = t.class;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = (100 * t.prob).toFixed(1) + "%";
    bar.appendChild(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = (100 * t.prob).toFixed(1) + " %" + (multi ? ` ≥ ${(100 * t.threshold).toFixed(0)} %` : "");
    row.append(label, bar, pct);
    li.appendChild(row);
    list.appendChild(li);
  }
  if (multi) {
    $("top1-class").textContent = pred.labels.map((t) => t.name || t.class).join(", ") || "no label above its threshold";
    $("top1-prob").textContent = "";
    return;
  }
  $("top1-class").textContent = pred.top[0].name || pred.top[0].class;
  $("top1-prob").textContent = `(${(100 * pred.top[0].prob).toFixed(1)} %)`;
}

function fail(msg) {
  $("result").hidden = true;   // no earlier image's scores beside this file's error
  $("status").textContent = "";
  showError(msg);
}

async function classify(file) {
  if (!file) return;
  const mine = ++asked;
  if (inFlight) inFlight.abort();
  showError("");
  if (file.size > limits.max_upload_bytes) {
    return fail(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ` +
      `${(limits.max_upload_bytes / 1048576).toFixed(0)} MB`);
  }
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  $("preview").src = previewUrl;
  $("file-name").textContent = file.name;
  $("scores").hidden = true;
  $("cam-figure").hidden = true;
  $("result").hidden = false;
  $("status").textContent = "classifying…";
  const wantCam = $("want-cam").checked && !$("cam-toggle").hidden;
  const body = new FormData();
  body.append("image", file, file.name);
  const ctl = new AbortController();
  inFlight = ctl;
  try {
    const r = await fetch(`/api/predict?gradcam=${wantCam ? 1 : 0}`, { method: "POST", body, signal: ctl.signal });
    const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (mine !== asked) return;  // a newer image was chosen meanwhile
    if (!r.ok) return fail(data.error || `HTTP ${r.status}`);
    lastFile = file;
    const pred = data.predictions[0];
    drawScores(pred);
    $("scores").hidden = false;
    if (pred.gradcam) {
      $("cam").src = pred.gradcam;
      $("cam-figure").hidden = false;
    }
    $("status").textContent = `done in ${(1000 * data.seconds).toFixed(0)} ms`;
  } catch (e) {
    if (mine === asked) fail("request failed: " + e);
  }
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    classify(e.target.files[0]);
    e.target.value = "";  // so choosing the same file again fires "change" again
  });
  // Ticking or unticking Grad-CAM re-asks about the image on show (none yet, or a refused file: nothing to ask).
  $("want-cam").addEventListener("change", () => { if (lastFile && !$("result").hidden) classify(lastFile); });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => classify(e.dataTransfer.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  loadModel();
}

document.addEventListener("DOMContentLoaded", setup);
