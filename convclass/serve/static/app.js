// The page's behaviour: read the model's facts, send the chosen image to /api/predict, draw the top-5 bars.
// Everything the server returns is inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let limits = { max_upload_bytes: 10 * 1024 * 1024 };
let previewUrl = null;
let lastFile = null;

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
  for (const t of pred.top) {
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
    pct.textContent = (100 * t.prob).toFixed(1) + " %";
    row.append(label, bar, pct);
    li.appendChild(row);
    list.appendChild(li);
  }
  $("top1-class").textContent = pred.top[0].name || pred.top[0].class;
  $("top1-prob").textContent = `(${(100 * pred.top[0].prob).toFixed(1)} %)`;
}

async function classify(file) {
  showError("");
  if (!file) return;
  lastFile = file;
  if (file.size > limits.max_upload_bytes) {
    showError(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ` +
      `${(limits.max_upload_bytes / 1048576).toFixed(0)} MB`);
    return;
  }
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  $("preview").src = previewUrl;
  $("file-name").textContent = file.name;
  $("top1-class").textContent = "";
  $("topk").replaceChildren();
  $("cam-figure").hidden = true;
  $("result").hidden = false;
  $("status").textContent = "classifying…";
  const wantCam = $("want-cam").checked && !$("cam-toggle").hidden;
  const body = new FormData();
  body.append("image", file, file.name);
  try {
    const r = await fetch(`/api/predict?gradcam=${wantCam ? 1 : 0}`, { method: "POST", body });
    const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok) {
      $("status").textContent = "";
      showError(data.error || `HTTP ${r.status}`);
      return;
    }
    const pred = data.predictions[0];
    drawScores(pred);
    if (pred.gradcam) {
      $("cam").src = pred.gradcam;
      $("cam-figure").hidden = false;
    }
    $("status").textContent = `done in ${(1000 * data.seconds).toFixed(0)} ms`;
  } catch (e) {
    $("status").textContent = "";
    showError("request failed: " + e);
  }
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    classify(e.target.files[0]);
    e.target.value = "";  // so choosing the same file again fires "change" again
  });
  // Ticking or unticking Grad-CAM re-asks about the image on show.
  $("want-cam").addEventListener("change", () => classify(lastFile));
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
