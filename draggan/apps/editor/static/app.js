// The DragGAN editor page: one session per tab, kept on the server (draggan/apps/editor/server.py).
// Points are (x, y) pixels of the generator's image, origin at the centre of the top-left pixel.
"use strict";

const $ = (id) => document.getElementById(id);
const editor = {            // read by the browser tests, too
  sid: null, config: null, state: null, version: -1,
  imageUpdates: [],         // [performance.now(), step] of every image the page received
  pending: null,            // a handle clicked, waiting for its target
  previewStep: null,        // history step shown without going back to it
  sized: false,             // the canvases have the image's size
  closed: false,
};
window.editor = editor;

const imageCanvas = $("image"), overlay = $("overlay");
const maskCanvas = document.createElement("canvas");  // the image's size; painted = may move
const MASK_COLOR = "rgb(255, 196, 0)";
let scale = 1, painting = false, maskDirty = false;

// ------------------------------------------------------------------ talking to the server

function say(text, level = "info") {
  const m = $("message");
  m.textContent = text;
  m.className = level === "error" || level === "warning" ? level : "";
}

async function api(action, { body = null, json = null, headers = {}, method = "POST", raw = false } = {}) {
  const url = action.startsWith("/") ? action : `/api/s/${editor.sid}/${action}`;
  const init = { method, headers: { ...headers } };
  if (json !== null) { init.body = JSON.stringify(json); init.headers["Content-Type"] = "application/json"; }
  else if (body !== null) { init.body = body; }
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new Error(`the server did not answer (${e.message}); is it still running?`);
  }
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  if (raw) return response;
  const state = await response.json();
  if (state && state.version !== undefined) apply(state);
  return state;
}

async function act(fn) {            // run a user action; show its error on the page
  try { await fn(); } catch (e) { say(e.message, "error"); }
}

async function poll() {
  while (!editor.closed) {
    try {
      const wait = editor.config.poll_timeout;
      const r = await fetch(`/api/s/${editor.sid}/state?since=${editor.version}&wait=${wait}`);
      if (r.status === 404) { say((await r.json()).error, "error"); editor.closed = true; break; }
      if (!r.ok) throw new Error(r.statusText);
      apply(await r.json());
    } catch (e) {
      say(`lost contact with the server (${e.message}); retrying...`, "error");
      await new Promise((ok) => setTimeout(ok, 1000));
    }
  }
}

// ------------------------------------------------------------------ showing the state

function apply(st) {
  if (st.version < editor.version) return;   // an older answer overtaken by a newer one
  editor.version = st.version;
  editor.state = st;
  if (st.image) {
    const img = new Image();
    img.onload = () => {
      if (!editor.sized || imageCanvas.width !== img.width || imageCanvas.height !== img.height) resize(img.width, img.height);
      if (editor.previewStep === null) imageCanvas.getContext("2d").drawImage(img, 0, 0);
      editor.imageUpdates.push([performance.now(), st.step]);
      loadMask(st.mask);  // sent with every image: undefined = no mask
    };
    img.src = st.image;
  }
  if (st.message) say(st.message, st.level);
  $("source").textContent = st.source || "";
  $("domain-warning").hidden = !st.domain_warning;  // an inverted photo outside the model's domain: while it is edited
  $("domain-warning").textContent = st.domain_warning || "";
  if (st.generator && $("generator").value !== st.generator) $("generator").value = st.generator;
  if (st.seed !== null && st.seed !== undefined && document.activeElement !== $("seed")) $("seed").value = st.seed;
  const inverting = st.status === "inverting";
  $("progress-row").hidden = !inverting;
  if (inverting && st.progress) {
    const p = st.progress, frac = p.num_steps ? p.step / p.num_steps : 0;
    $("progress").value = frac;
    $("progress-text").textContent = `${p.phase} ${p.step}/${p.num_steps || "?"}`;
  }
  const d = st.distances.length ? Math.max(...st.distances) : null;
  $("stepinfo").textContent = `${st.status} - step ${st.step}` + (d === null ? "" : `, farthest handle ${d.toFixed(2)} px from its target`);
  const hist = $("history");
  hist.max = st.step;
  if (editor.previewStep === null || st.running) { hist.value = st.step; editor.previewStep = null; }
  $("history-label").textContent = editor.previewStep === null ? `step ${st.step}` : `previewing step ${editor.previewStep} of ${st.step}`;
  const has = st.size !== null && !inverting;
  $("start").disabled = !has || st.running || !st.handles.length;
  $("pause").disabled = !st.running;
  $("reset").disabled = !has || st.step === 0;
  $("undo").disabled = !has || st.step === 0;
  $("save").disabled = !has || !st.handles.length;
  $("download-png").disabled = !has;
  $("download-gif").disabled = !has || st.frames < 2;
  $("generate").disabled = inverting;
  renderTable();
  draw();
}

function resize(w, h) {
  editor.sized = true;
  imageCanvas.width = w; imageCanvas.height = h;
  maskCanvas.width = w; maskCanvas.height = h;
  scale = w <= 512 ? Math.max(1, Math.floor(512 / w)) : Math.min(1, 768 / w);
  const dw = Math.round(w * scale), dh = Math.round(h * scale);
  imageCanvas.style.width = `${dw}px`; imageCanvas.style.height = `${dh}px`;
  imageCanvas.classList.toggle("pixelated", scale >= 2);
  overlay.width = dw; overlay.height = dh;
}

function loadMask(dataUrl) {
  const ctx = maskCanvas.getContext("2d");
  if (!dataUrl) { ctx.clearRect(0, 0, maskCanvas.width, maskCanvas.height); draw(); return; }
  const img = new Image();
  img.onload = () => { ctx.clearRect(0, 0, maskCanvas.width, maskCanvas.height); ctx.drawImage(img, 0, 0); draw(); };
  img.src = dataUrl;
}

function draw() {
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  ctx.save();
  ctx.globalAlpha = 0.35;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(maskCanvas, 0, 0, overlay.width, overlay.height);
  ctx.restore();
  const st = editor.state;
  if (!st || editor.previewStep !== null) return;
  const px = (p) => [(p[0] + 0.5) * scale, (p[1] + 0.5) * scale];
  const r = Math.max(4, overlay.width / 80);
  (st.origins || []).forEach((o, i) => {   // where each handle started: a hollow circle and a dashed trail
    if (!st.handles[i]) return;
    const [ox, oy] = px(o), [hx, hy] = px(st.handles[i]);
    ctx.strokeStyle = "#e62828"; ctx.lineWidth = 2; ctx.setLineDash([4, 4]);
    ctx.beginPath(); ctx.moveTo(ox, oy); ctx.lineTo(hx, hy); ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath(); ctx.arc(ox, oy, r, 0, 2 * Math.PI); ctx.stroke();
  });
  st.handles.forEach((h, i) => {
    const [hx, hy] = px(h), [tx, ty] = px(st.targets[i]);
    ctx.strokeStyle = "white"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(hx, hy); ctx.lineTo(tx, ty); ctx.stroke();
    dot(ctx, tx, ty, r, "#286ef0");
    dot(ctx, hx, hy, r, "#e62828");
  });
  if (editor.pending) { const [x, y] = px(editor.pending); dot(ctx, x, y, r, "#e62828"); }
}

function dot(ctx, x, y, r, color) {
  ctx.fillStyle = color; ctx.strokeStyle = "white"; ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
}

function renderTable() {
  const st = editor.state, body = document.querySelector("#points tbody");
  if (body.contains(document.activeElement)) return;   // do not rewrite a field being typed in
  const rows = st.handles.map((h, i) => [h, st.targets[i]]);
  if (editor.pending) rows.push([editor.pending, null]);
  const key = JSON.stringify(rows);
  if (key === renderTable.key) return;                 // unchanged: keep the fields as they are
  renderTable.key = key;
  body.innerHTML = "";
  rows.forEach(([h, t], i) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${i + 1}</td>`;
    [[h, 0, "h"], [h, 1, "h"], [t, 0, "t"], [t, 1, "t"]].forEach(([p, k, cls]) => {
      const td = document.createElement("td");
      td.className = k === 0 ? cls : "";
      if (p) {
        const input = document.createElement("input");
        input.type = "number"; input.step = "any"; input.value = +p[k].toFixed(2);
        input.dataset.row = i; input.dataset.kind = cls; input.dataset.axis = k;
        input.addEventListener("change", editPoint);
        td.appendChild(input);
      } else td.textContent = "click";
      tr.appendChild(td);
    });
    const td = document.createElement("td"), del = document.createElement("button");
    del.textContent = "\u00d7"; del.title = "remove this pair";
    del.addEventListener("click", () => act(() => removePair(i)));
    td.appendChild(del); tr.appendChild(td);
    body.appendChild(tr);
  });
}

// ------------------------------------------------------------------ points

function sendPoints(handles, targets) {
  return api("points", { json: { handles, targets } });
}

function editPoint(ev) {
  const { row, kind, axis } = ev.target.dataset, value = Number(ev.target.value);
  const st = editor.state;
  if (+row >= st.handles.length) { editor.pending[+axis] = value; draw(); return; }
  const handles = st.handles.map((p) => p.slice()), targets = st.targets.map((p) => p.slice());
  (kind === "h" ? handles : targets)[+row][+axis] = value;
  ev.target.blur();
  act(() => sendPoints(handles, targets));
}

function removePair(i) {
  const st = editor.state;
  if (i >= st.handles.length) { editor.pending = null; renderTable(); draw(); return Promise.resolve(); }
  return sendPoints(st.handles.filter((_, k) => k !== i), st.targets.filter((_, k) => k !== i));
}

function imagePoint(ev) {
  const rect = overlay.getBoundingClientRect(), w = imageCanvas.width, h = imageCanvas.height;
  const clamp = (v, hi) => Math.min(hi, Math.max(0, v));
  const x = clamp((ev.clientX - rect.left) / rect.width * w - 0.5, w - 1);
  const y = clamp((ev.clientY - rect.top) / rect.height * h - 0.5, h - 1);
  return [Math.round(x), Math.round(y)];  // the clicked pixel's centre
}

function mode() { return document.querySelector("input[name=mode]:checked").value; }

let lastPaint = null;  // the brush's previous position in this stroke: fast moves leave no gaps

function paint(ev) {
  const [x, y] = imagePoint(ev), ctx = maskCanvas.getContext("2d"), r = Number($("brush").value);
  const from = lastPaint || [x, y];
  ctx.save();
  ctx.globalCompositeOperation = mode() === "erase" ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = MASK_COLOR;
  ctx.lineWidth = 2 * r; ctx.lineCap = "round";
  ctx.beginPath(); ctx.moveTo(from[0] + 0.5, from[1] + 0.5); ctx.lineTo(x + 0.5, y + 0.5); ctx.stroke();
  ctx.beginPath(); ctx.arc(x + 0.5, y + 0.5, r, 0, 2 * Math.PI); ctx.fill();
  ctx.restore();
  lastPaint = [x, y];
  maskDirty = true;
  draw();
}

overlay.addEventListener("mousedown", (ev) => {
  if (!editor.state || editor.state.size === null) return;
  if (mode() !== "points") { painting = true; lastPaint = null; paint(ev); return; }
  const p = imagePoint(ev), st = editor.state;
  if (!editor.pending) { editor.pending = p; renderTable(); draw(); return; }
  const handles = st.handles.concat([editor.pending]), targets = st.targets.concat([p]);
  editor.pending = null;
  act(() => sendPoints(handles, targets));
});
overlay.addEventListener("mousemove", (ev) => { if (painting) paint(ev); });
window.addEventListener("mouseup", () => {
  if (!painting) return;
  painting = false;
  if (maskDirty) { maskDirty = false; act(sendMask); }
});

function sendMask() {
  return new Promise((ok, fail) => maskCanvas.toBlob((blob) =>
    api("mask", { body: blob, headers: { "Content-Type": "image/png" } }).then(ok, fail), "image/png"));
}

// ------------------------------------------------------------------ files

async function download(action, fallbackName, method = "GET") {
  const r = await api(action, { method, raw: true });
  const cd = r.headers.get("Content-Disposition") || "", m = cd.match(/filename="([^"]+)"/);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url; a.download = m ? m[1] : fallbackName;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return a.download;
}

// ------------------------------------------------------------------ controls

function wire() {
  $("generate").addEventListener("click", () => act(() => {
    editor.pending = null;
    return api("generate", { json: { generator: $("generator").value, seed: Number($("seed").value),
                                     truncation_psi: Number($("psi").value) } });
  }));
  $("upload").addEventListener("change", (ev) => act(async () => {
    const file = ev.target.files[0];
    ev.target.value = "";
    if (!file) return;
    const limit = editor.config.max_upload_bytes;
    if (file.size > limit) {
      const mb = (n) => `${+(n / 2 ** 20).toPrecision(3)} MB`;
      throw new Error(`${file.name} is ${mb(file.size)}; the limit is ${mb(limit)}`);
    }
    editor.pending = null;
    await api("upload", { body: file, headers: { "X-Filename": encodeURIComponent(file.name).slice(0, 200),
                                                 "X-Generator": $("generator").value,
                                                 "Content-Type": file.type || "application/octet-stream" } });
  }));
  document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", () => {
    overlay.style.cursor = mode() === "points" ? "crosshair" : "cell";
  }));
  $("brush").addEventListener("input", () => { $("brush-label").textContent = `${$("brush").value} px`; });
  $("clear-points").addEventListener("click", () => act(() => { editor.pending = null; return sendPoints([], []); }));
  $("clear-mask").addEventListener("click", () => act(() => api("mask", { body: "" })));
  $("start").addEventListener("click", () => act(() => api("start")));
  $("pause").addEventListener("click", () => act(() => api("pause")));
  $("reset").addEventListener("click", () => act(() => api("reset")));
  $("history").addEventListener("input", () => act(async () => {
    const k = Number($("history").value), st = editor.state;
    if (st.running) await api("pause");
    if (k === editor.state.step) { editor.previewStep = null; apply({ ...editor.state, image: undefined }); return; }
    editor.previewStep = k;
    $("history-label").textContent = `previewing step ${k} of ${editor.state.step}`;
    const r = await api(`preview?step=${k}`, { method: "GET", raw: true });
    const img = new Image();
    img.onload = () => { if (editor.previewStep === k) { imageCanvas.getContext("2d").drawImage(img, 0, 0); draw(); } };
    img.src = URL.createObjectURL(await r.blob());
  }));
  $("undo").addEventListener("click", () => act(async () => {
    const k = Number($("history").value);
    editor.previewStep = null;
    await api("undo", { json: { step: k } });
  }));
  $("save").addEventListener("click", () => act(() => download("save", "draggan-session.zip", "POST")));
  $("load").addEventListener("change", (ev) => act(async () => {
    const form = new FormData();
    for (const f of ev.target.files) form.append("files", f, f.name);
    ev.target.value = "";
    editor.pending = null;
    await api("load", { body: form });
  }));
  $("download-png").addEventListener("click", () => act(() => download("result.png", "draggan-result.png")));
  $("download-gif").addEventListener("click", () => act(() => download("drag.gif", "draggan-drag.gif")));
  window.addEventListener("pagehide", () => {
    editor.closed = true;
    if (editor.sid) navigator.sendBeacon(`/api/s/${editor.sid}/close`);
  });
}

async function main() {
  wire();
  await act(async () => {
    const r = await fetch("/api/config");
    editor.config = await r.json();
    const select = $("generator");
    for (const name of editor.config.generators) {
      const o = document.createElement("option");
      o.value = o.textContent = name;
      select.appendChild(o);
    }
    select.value = editor.config.default_generator;
    $("psi").value = editor.config.truncation_psi;
    $("upload").disabled = !editor.config.can_invert;
    editor.sid = (await api("/api/session")).sid;
    poll();
    await api("generate", { json: { generator: select.value, seed: Number($("seed").value),
                                    truncation_psi: Number($("psi").value) } });
  });
}

main();
