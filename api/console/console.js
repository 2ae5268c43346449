// footfall console: the camera list with live counts, a camera page with its snapshot, the
// line/zone editor and charts. Plain JavaScript, no build step; uPlot (vendored) draws the charts.
// The API key (if the server needs one) is kept in sessionStorage and sent as a Bearer token; the
// WebSocket carries it as ?access_token= (browsers cannot set headers there).
"use strict";

(function () {
  const KEY = "footfall.apiKey";
  const SVGNS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const state = {
    cameras: [], status: {}, live: {}, ws: null, wsCameras: "", camera: null, frame: [1280, 720],
    snapshotUrl: null, snapshotTimer: null, drawing: null, drag: null, lineCounts: {}, occupancy: {},
    charts: [], role: null, heatmap: false,
  };

  // ------------------------------------------------------------------ API

  function apiKey() { return sessionStorage.getItem(KEY) || ""; }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (apiKey()) headers.Authorization = "Bearer " + apiKey();
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    // relative to the page, so a console served under a path prefix (root_path) reaches its own API
    const res = await fetch(path.replace(/^\//, ""), {
      method: options.method || "GET", headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    if (res.status === 401) { showLogin(apiKey() ? "That key was refused." : ""); throw new ApiError(401, "sign in first"); }
    if (!res.ok) {
      let detail = res.statusText;
      try { const body = await res.json(); detail = body.detail || detail; } catch (e) { /* not JSON */ }
      throw new ApiError(res.status, detail);
    }
    return options.raw ? res : res.json();
  }

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  function el(tag, attrs = {}, ...children) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  const fmt = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

  // ------------------------------------------------------------------ sign-in

  function showLogin(message) {
    for (const id of ["list", "camera"]) $(id).hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").focus();
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    $("login").hidden = true;
    route();
  });
  $("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.hash = "#/"; location.reload(); });

  $("signin").addEventListener("click", () => showLogin(""));

  function showWho() {
    $("who").textContent = apiKey() ? "signed in with an API key" : "anonymous (demo tenant, read only)";
    $("signout").hidden = !apiKey();
    $("signin").hidden = !!apiKey();
  }

  // ------------------------------------------------------------------ live push

  function connectLive(cameraIds) {
    const wanted = cameraIds.slice(0, 100).sort().join(",");
    if (state.ws && state.wsCameras === wanted) return;
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    state.wsCameras = wanted;
    if (!wanted) return;
    const params = new URLSearchParams();
    for (const c of wanted.split(",")) params.append("camera_id", c);
    if (apiKey()) params.set("access_token", apiKey());
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const base = location.pathname.replace(/[^/]*$/, "");
    const ws = new WebSocket(`${proto}//${location.host}${base}api/v1/live/ws?${params}`);
    state.ws = ws;
    $("live-state").textContent = "live: connecting";
    ws.onopen = () => { $("live-state").textContent = "live: connected"; };
    ws.onmessage = (ev) => onLive(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      $("live-state").textContent = `live: disconnected (${ev.reason || ev.code}); retrying`;
      state.ws = null;
      const again = state.wsCameras; state.wsCameras = "";
      setTimeout(() => { if (!state.ws) connectLive(again ? again.split(",") : []); }, 3000);
    };
  }

  function onLive(msg) {
    if (msg.type === "crossing") {
      const d = msg.data;
      const live = (state.live[msg.camera_id] ||= { in: 0, out: 0 });
      live[d.direction] = (live[d.direction] || 0) + 1;
      const row = document.querySelector(`tr[data-camera="${CSS.escape(msg.camera_id)}"]`);
      if (row) {
        row.querySelector(".in").textContent = live.in;
        row.querySelector(".out").textContent = live.out;
        row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash");
      }
      if (state.camera && state.camera.camera_id === msg.camera_id) {
        const c = (state.lineCounts[d.line_id] ||= { in: 0, out: 0 });
        c[d.direction] = (c[d.direction] || 0) + 1;
        if (!state.drag) renderOverlay();
        refreshCounts();
      }
    } else if (msg.type === "occupancy" || msg.type === "snapshot") {
      if (state.camera && state.camera.camera_id === msg.camera_id) {
        if (msg.type === "snapshot") Object.assign(state.occupancy, msg.zones || {});
        else state.occupancy[msg.zone_id] = msg.data;
        if (!state.drag) renderOverlay();
        refreshCounts();
      }
    }
  }

  // ------------------------------------------------------------------ camera list

  async function showList() {
    $("list").hidden = false; $("camera").hidden = true;
    stopSnapshots();
    document.title = "Cameras · footfall";
    try {
      const [cams, status] = await Promise.all([api("/api/v1/cameras?limit=1000"), api("/api/v1/stream-status")]);
      state.cameras = cams.cameras;
      state.status = Object.fromEntries(status.cameras.map((s) => [s.camera_id, s]));
      $("list-error").textContent = "";
    } catch (e) {
      if (e.status !== 401) $("list-error").textContent = "Could not load the cameras: " + e.message;
      return;
    }
    renderList();
  }

  async function refreshStatus() {
    if ($("list").hidden) return;
    try {
      const status = await api("/api/v1/stream-status");
      state.status = Object.fromEntries(status.cameras.map((s) => [s.camera_id, s]));
    } catch (e) { return; }
    for (const row of document.querySelectorAll("tr[data-camera]")) {
      const s = state.status[row.dataset.camera];
      const status = s ? s.status : "offline";
      const badge = row.querySelector(".badge");
      badge.className = `badge ${status}`; badge.textContent = status;
      row.querySelector(".fps").textContent = s ? fmt(s.processed_fps, 1) : "–";
      row.querySelector(".lag").textContent = s && s.latency_ms_p50 !== null ? `${fmt(s.latency_ms_p50)} ms` : "–";
      row.querySelector(".quality").textContent = qualityText(s);
    }
  }
  setInterval(refreshStatus, 5000);

  const qualityText = (s) => (s ? `${s.dropped_frames} dropped, ${s.decode_errors} errors` : "–");

  function visibleCameras() {
    const q = $("filter").value.trim().toLowerCase();
    return state.cameras.filter((c) => !q || c.camera_id.toLowerCase().includes(q) || (c.name || "").toLowerCase().includes(q));
  }

  function renderList() {
    const rows = $("camera-rows");
    rows.replaceChildren();
    const cams = visibleCameras();
    for (const c of cams.slice(0, 200)) {
      const s = state.status[c.camera_id];
      const status = s ? s.status : "offline";
      const live = state.live[c.camera_id] || { in: 0, out: 0 };
      rows.append(el("tr", { "data-camera": c.camera_id },
        el("td", {}, el("a", { href: `#/camera/${encodeURIComponent(c.camera_id)}`, text: c.name || c.camera_id }),
          el("div", { class: "meta", text: c.camera_id })),
        el("td", {}, el("span", { class: `badge ${status}`, text: status })),
        el("td", { class: "num fps", text: s ? fmt(s.processed_fps, 1) : "–" }),
        el("td", { class: "num lag", text: s && s.latency_ms_p50 !== null ? `${fmt(s.latency_ms_p50)} ms` : "–" }),
        el("td", { class: "quality", text: qualityText(s) }),
        el("td", { class: "num in", text: String(live.in) }),
        el("td", { class: "num out", text: String(live.out) })));
    }
    if (!cams.length) rows.append(el("tr", {}, el("td", { colspan: "7", text: "No cameras." })));
    connectLive(cams.slice(0, 100).map((c) => c.camera_id));
  }
  $("filter").addEventListener("input", () => renderList());

  // ------------------------------------------------------------------ camera page

  async function showCamera(cameraId) {
    $("list").hidden = true; $("camera").hidden = false;
    $("edit-error").textContent = "";
    cancelDraw();
    try {
      state.camera = await api(`/api/v1/cameras/${encodeURIComponent(cameraId)}`);
    } catch (e) {
      if (e.status !== 401) $("camera-title").textContent = `Camera ${cameraId}: ${e.message}`;
      return;
    }
    state.lineCounts = {}; state.occupancy = {};
    const cam = state.camera;
    document.title = `${cam.name || cam.camera_id} · footfall`;
    $("camera-title").textContent = cam.name || cam.camera_id;
    $("camera-meta").textContent = [cam.camera_id, cam.location, cam.tenant && `tenant ${cam.tenant}`].filter(Boolean).join(" · ");
    connectLive([cam.camera_id]);
    try { // the counts so far (last 24 h); the live push adds to them
      const counts = await api(`/api/v1/cameras/${encodeURIComponent(cam.camera_id)}/counts?interval=hour`);
      for (const [line, t] of Object.entries(counts.lines)) state.lineCounts[line] = { in: t.in, out: t.out };
    } catch (e) { /* the charts below say why */ }
    renderOverlay(); renderItems();
    await loadSnapshot();
    startSnapshots();
    loadCharts();
  }

  async function loadSnapshot() {
    const cam = state.camera;
    if (!cam || state.drag) return;
    if (state.heatmap) return loadHeatmap();
    try {
      const res = await api(`/api/v1/cameras/${encodeURIComponent(cam.camera_id)}/snapshot.jpg`, { raw: true });
      const w = Number(res.headers.get("X-Frame-Width")), h = Number(res.headers.get("X-Frame-Height"));
      if (w > 0 && h > 0) state.frame = [w, h];
      const url = URL.createObjectURL(await res.blob());
      const img = $("snapshot");
      img.onload = () => { if (state.snapshotUrl && state.snapshotUrl !== url) URL.revokeObjectURL(state.snapshotUrl); state.snapshotUrl = url; };
      img.src = url;
      const at = Number(res.headers.get("X-Taken-At"));
      $("snapshot-note").textContent = at ? `snapshot ${new Date(at * 1000).toLocaleTimeString()}` : "";
    } catch (e) {
      $("snapshot-note").textContent = e.status === 404 ? "No snapshot yet (is the camera's grabber running?)" : `Snapshot: ${e.message}`;
    }
    $("scene").style.aspectRatio = `${state.frame[0]} / ${state.frame[1]}`;
    renderOverlay();
  }

  // Where people walked in the last 24 hours (stored tracks), over the snapshot, in frame pixels
  // like the overlay: GET /heatmap?format=png.
  async function loadHeatmap() {
    const cam = state.camera;
    const [w, h] = state.frame;
    try {
      const res = await api(`/api/v1/cameras/${encodeURIComponent(cam.camera_id)}/heatmap?format=png&width=${w}&height=${h}`, { raw: true });
      const url = URL.createObjectURL(await res.blob());
      const img = $("snapshot");
      img.onload = () => { if (state.snapshotUrl && state.snapshotUrl !== url) URL.revokeObjectURL(state.snapshotUrl); state.snapshotUrl = url; };
      img.src = url;
      $("snapshot-note").textContent = "where people walked in the last 24 hours (brighter: more people)";
    } catch (e) {
      $("snapshot-note").textContent = `Heatmap: ${e.message}`;
    }
    renderOverlay();
  }

  function startSnapshots() { stopSnapshots(); state.snapshotTimer = setInterval(loadSnapshot, state.heatmap ? 60000 : 5000); }
  function stopSnapshots() { if (state.snapshotTimer) clearInterval(state.snapshotTimer); state.snapshotTimer = null; }

  // ------------------------------------------------------------------ overlay (SVG in frame pixels)

  function inNormal(a, b) {
    const dx = b[0] - a[0], dy = b[1] - a[1], n = Math.hypot(dx, dy) || 1;
    return [-dy / n, dx / n]; // the right-hand side of start -> end on screen: the "in" side
  }

  function renderOverlay() {
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.target : null;
    drawOverlay();
    if (focused) focusHandle(JSON.parse(focused));
  }

  function drawOverlay() {
    const svg = $("overlay");
    const [fw, fh] = state.frame;
    svg.setAttribute("viewBox", `0 0 ${fw} ${fh}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.replaceChildren();
    const unit = Math.max(fw, fh) / 1280;
    svg.append(el("svg:defs", {}, el("svg:marker", { id: "arrowhead", viewBox: "0 0 10 10", refX: "5", refY: "5",
      markerWidth: "5", markerHeight: "5", orient: "auto-start-reverse" }, el("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
    const cam = state.camera;
    if (!cam) return;
    for (const z of cam.zones || []) {
      const occ = state.occupancy[z.zone_id];
      const full = occ && z.capacity && occ.count >= z.capacity;
      svg.append(el("svg:polygon", { class: `zone${full ? " full" : ""}`, points: z.polygon.map((p) => p.join(",")).join(" "),
        "data-zone": z.zone_id }));
      const top = z.polygon.reduce((m, p) => (p[1] < m[1] ? p : m), z.polygon[0]);
      const label = `${z.name || z.zone_id}${z.capacity ? `  ${occ ? occ.count : "?"}/${z.capacity}` : ""}`;
      svg.append(el("svg:text", { class: "label", x: top[0] + 6 * unit, y: top[1] + 26 * unit, text: label }));
      z.polygon.forEach((p, i) => svg.append(handle("vertex", p, `zone ${z.zone_id} point ${i + 1}`,
        { kind: "zone", id: z.zone_id, index: i })));
    }
    for (const l of cam.lines || []) {
      const [a, b] = [l.start, l.end];
      svg.append(el("svg:line", { class: "line", x1: a[0], y1: a[1], x2: b[0], y2: b[1], "data-line": l.line_id }));
      const m = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], n = inNormal(a, b), s = 40 * unit;
      svg.append(el("svg:line", { class: "arrow", x1: m[0], y1: m[1], x2: m[0] + n[0] * s, y2: m[1] + n[1] * s,
        "marker-end": "url(#arrowhead)" }));
      const c = state.lineCounts[l.line_id] || { in: 0, out: 0 };
      svg.append(el("svg:text", { class: "label", x: m[0] - n[0] * s + 6 * unit, y: m[1] - n[1] * s,
        text: `${l.name || l.line_id}  in ${c.in} out ${c.out}` }));
      svg.append(handle("handle", a, `start of line ${l.line_id}`, { kind: "line", id: l.line_id, end: "start" }));
      svg.append(handle("handle end", b, `end of line ${l.line_id}`, { kind: "line", id: l.line_id, end: "end" }));
    }
    const d = state.drawing;
    if (d && d.points.length) {
      if (d.kind === "line") {
        const p = d.points[0], q = d.cursor || p;
        svg.append(el("svg:line", { class: "line pending", x1: p[0], y1: p[1], x2: q[0], y2: q[1] }));
      } else {
        const pts = d.cursor ? [...d.points, d.cursor] : d.points;
        svg.append(el("svg:polygon", { class: "zone pending", points: pts.map((p) => p.join(",")).join(" ") }));
      }
      for (const p of d.points) svg.append(el("svg:circle", { class: "vertex", cx: p[0], cy: p[1], r: 8 * unit }));
    }
  }

  function handle(cls, p, label, target) {
    const unit = Math.max(...state.frame) / 1280;
    const node = el("svg:circle", { class: cls, cx: p[0], cy: p[1], r: 11 * unit, tabindex: "0", role: "button",
      "aria-label": `${label} at ${Math.round(p[0])}, ${Math.round(p[1])}: arrow keys move it, Enter saves` });
    node.dataset.target = JSON.stringify(target);
    node.addEventListener("pointerdown", (ev) => startDrag(ev, target));
    node.addEventListener("keydown", (ev) => keyMove(ev, target));
    return node;
  }

  function framePoint(ev) {
    const svg = $("overlay");
    const pt = svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    const p = pt.matrixTransform(svg.getScreenCTM().inverse());
    const [fw, fh] = state.frame;
    return [Math.round(Math.min(fw, Math.max(0, p.x)) * 10) / 10, Math.round(Math.min(fh, Math.max(0, p.y)) * 10) / 10];
  }

  function pointOf(target) {
    const cam = state.camera;
    if (target.kind === "line") return cam.lines.find((l) => l.line_id === target.id)[target.end];
    return cam.zones.find((z) => z.zone_id === target.id).polygon[target.index];
  }

  function setPoint(target, p) {
    const cam = state.camera;
    if (target.kind === "line") cam.lines.find((l) => l.line_id === target.id)[target.end] = p;
    else cam.zones.find((z) => z.zone_id === target.id).polygon[target.index] = p;
  }

  function startDrag(ev, target) {
    if (state.drawing) return;
    ev.preventDefault();
    $("overlay").setPointerCapture(ev.pointerId);
    state.drag = { target, moved: false };
  }

  $("overlay").addEventListener("pointermove", (ev) => {
    if (state.drag) {
      setPoint(state.drag.target, framePoint(ev));
      state.drag.moved = true;
      renderOverlay();
    } else if (state.drawing && state.drawing.points.length) {
      state.drawing.cursor = framePoint(ev);
      renderOverlay();
    }
  });

  $("overlay").addEventListener("pointerup", async (ev) => {
    if (!state.drag) return;
    const { target, moved } = state.drag;
    state.drag = null;
    $("overlay").releasePointerCapture(ev.pointerId);
    if (moved) await saveTarget(target);
  });

  function keyMove(ev, target) {
    const step = ev.shiftKey ? 20 : 4;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[ev.key]) {
      ev.preventDefault();
      const p = pointOf(target), [fw, fh] = state.frame;
      setPoint(target, [Math.min(fw, Math.max(0, p[0] + moves[ev.key][0])), Math.min(fh, Math.max(0, p[1] + moves[ev.key][1]))]);
      renderOverlay();
      focusHandle(target);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      saveTarget(target).then(() => focusHandle(target));
    }
  }

  function focusHandle(target) {
    for (const n of $("overlay").querySelectorAll("[data-target]")) {
      if (n.dataset.target === JSON.stringify(target)) { n.focus(); return; }
    }
  }

  async function saveTarget(target) {
    const cam = state.camera;
    if (target.kind === "line") {
      const l = cam.lines.find((x) => x.line_id === target.id);
      await saveLine(l.line_id, { start: l.start, end: l.end, name: l.name || "", count: l.count || "both" });
    } else {
      const z = cam.zones.find((x) => x.zone_id === target.id);
      await saveZone(z.zone_id, zoneBody(z, z.polygon));
    }
  }

  function zoneBody(z, polygon) {
    const body = { polygon, name: z.name || "" };
    for (const k of ["capacity", "alert_threshold_pct", "area_sqm"]) if (z[k] !== null && z[k] !== undefined) body[k] = z[k];
    return body;
  }

  async function write(path, method, body, errorAt) {
    const cam = state.camera;
    $("edit-error").textContent = "";
    if (errorAt) errorAt.textContent = "";
    try {
      state.camera = await api(`/api/v1/cameras/${encodeURIComponent(cam.camera_id)}/${path}`, { method, body });
      $("draw-hint").textContent = "Saved.";
      renderOverlay(); renderItems();
      return true;
    } catch (e) {
      const msg = e.status === 403 ? `Not saved: ${e.message} (changing lines and zones needs an operator key)` : `Not saved: ${e.message}`;
      $("edit-error").textContent = msg;
      if (errorAt) errorAt.textContent = msg;
      // show what is stored, not the rejected edit
      try { state.camera = await api(`/api/v1/cameras/${encodeURIComponent(cam.camera_id)}`); } catch (e2) { /* keep */ }
      renderOverlay(); renderItems();
      if (errorAt) errorAt.textContent = msg;
      return false;
    }
  }

  const saveLine = (id, body, errorAt) => write(`lines/${encodeURIComponent(id)}`, "PUT", body, errorAt);
  const saveZone = (id, body, errorAt) => write(`zones/${encodeURIComponent(id)}`, "PUT", body, errorAt);

  // ------------------------------------------------------------------ drawing new lines and zones

  function nextId(prefix, items, key) {
    const used = new Set(items.map((i) => i[key]));
    for (let i = 1; ; i++) if (!used.has(`${prefix}-${i}`)) return `${prefix}-${i}`;
  }

  function beginDraw(kind) {
    cancelDraw();
    state.drawing = { kind, points: [], cursor: null };
    $("overlay").classList.add("drawing");
    $(kind === "line" ? "new-line" : "new-zone").setAttribute("aria-pressed", "true");
    $("cancel-draw").hidden = false;
    $("finish-zone").hidden = kind !== "zone";
    $("draw-hint").textContent = kind === "line"
      ? "Click the line's start, then its end. The arrow will point to the right-hand side of start → end: crossings that way count as in."
      : "Click the zone's corners, then Finish zone (or press Enter). Escape cancels.";
  }

  function cancelDraw() {
    state.drawing = null;
    $("overlay").classList.remove("drawing");
    for (const id of ["new-line", "new-zone"]) $(id).setAttribute("aria-pressed", "false");
    $("cancel-draw").hidden = true; $("finish-zone").hidden = true;
    renderOverlay();
  }

  $("new-line").addEventListener("click", () => beginDraw("line"));
  $("heatmap").addEventListener("click", async () => {
    state.heatmap = !state.heatmap;
    $("heatmap").setAttribute("aria-pressed", String(state.heatmap));
    await loadSnapshot();
    startSnapshots();
  });
  $("new-zone").addEventListener("click", () => beginDraw("zone"));
  $("cancel-draw").addEventListener("click", () => { cancelDraw(); $("draw-hint").textContent = "Cancelled."; });
  $("finish-zone").addEventListener("click", () => finishZone());
  document.addEventListener("keydown", (ev) => {
    if (!state.drawing) return;
    if (ev.key === "Escape") cancelDraw();
    if (ev.key === "Enter" && state.drawing.kind === "zone") { ev.preventDefault(); finishZone(); }
  });

  $("overlay").addEventListener("click", async (ev) => {
    const d = state.drawing;
    if (!d) return;
    d.points.push(framePoint(ev));
    renderOverlay();
    if (d.kind === "line" && d.points.length === 2) {
      const cam = state.camera, [a, b] = d.points;
      cancelDraw();
      await saveLine(nextId("line", cam.lines, "line_id"), { start: a, end: b, name: "", count: "both" });
    }
  });

  async function finishZone() {
    const d = state.drawing;
    if (!d || d.kind !== "zone") return;
    const cam = state.camera, points = d.points;
    cancelDraw();
    // the server validates (at least 3 points, inside the frame ...) and its answer is shown as is
    await saveZone(nextId("zone", cam.zones, "zone_id"), { polygon: points, name: "" });
  }

  // ------------------------------------------------------------------ the side list (keyboard editing)

  function numberInput(label, value, onChange) {
    const id = `f-${Math.random().toString(36).slice(2)}`;
    return [el("label", { for: id, text: label }), el("input", { id, type: "number", step: "1", value: String(value), onchange: onChange })];
  }

  const lineText = (c) => `last 24 h + live: in ${c.in} · out ${c.out}`;
  const zoneText = (z, occ) => `inside now: ${occ ? occ.count : "?"}${z.capacity ? ` of ${z.capacity}` : ""} · ${z.polygon.length} points`;

  function refreshCounts() {
    const cam = state.camera;
    for (const l of cam.lines || []) {
      const node = document.querySelector(`#lines li[data-line="${CSS.escape(l.line_id)}"] .counts`);
      if (node) node.textContent = lineText(state.lineCounts[l.line_id] || { in: 0, out: 0 });
    }
    for (const z of cam.zones || []) {
      const node = document.querySelector(`#zones li[data-zone="${CSS.escape(z.zone_id)}"] .counts`);
      if (node) node.textContent = zoneText(z, state.occupancy[z.zone_id]);
    }
  }

  function renderItems() {
    const cam = state.camera;
    if (!cam) return;
    const lines = $("lines"); lines.replaceChildren();
    for (const l of cam.lines || []) {
      const err = el("p", { class: "error", role: "alert" });
      const c = state.lineCounts[l.line_id] || { in: 0, out: 0 };
      const name = el("input", { class: "name", id: `name-${l.line_id}`, value: l.name || "" });
      const coords = (which, idx) => numberInput(`${which} ${idx ? "y" : "x"}`, l[which][idx], (ev) => { l[which][idx] = Number(ev.target.value); renderOverlay(); });
      lines.append(el("li", { "data-line": l.line_id },
        el("strong", { text: l.line_id }), " ", el("span", { class: "counts", text: lineText(c) }),
        el("div", { class: "row" }, el("label", { for: `name-${l.line_id}`, text: "Name" }), name),
        el("div", { class: "row" }, ...coords("start", 0), ...coords("start", 1)),
        el("div", { class: "row" }, ...coords("end", 0), ...coords("end", 1)),
        el("div", { class: "row" },
          el("button", { type: "button", class: "primary", text: "Save", onclick: () => saveLine(l.line_id,
            { start: l.start, end: l.end, name: name.value, count: l.count || "both" }, err) }),
          el("button", { type: "button", text: "Flip direction", onclick: () => saveLine(l.line_id,
            { start: l.end, end: l.start, name: name.value, count: l.count || "both" }, err) }),
          el("button", { type: "button", class: "danger", text: "Delete", onclick: () => write(`lines/${encodeURIComponent(l.line_id)}`, "DELETE", undefined, err) })),
        err));
    }
    if (!(cam.lines || []).length) lines.append(el("li", { text: "No lines: use New line." }));
    const zones = $("zones"); zones.replaceChildren();
    for (const z of cam.zones || []) {
      const err = el("p", { class: "error", role: "alert" });
      const occ = state.occupancy[z.zone_id];
      const name = el("input", { class: "name", id: `zname-${z.zone_id}`, value: z.name || "" });
      const cap = el("input", { id: `cap-${z.zone_id}`, type: "number", min: "1", value: z.capacity ?? "" });
      zones.append(el("li", { "data-zone": z.zone_id },
        el("strong", { text: z.zone_id }), " ",
        el("span", { class: "counts", text: zoneText(z, occ) }),
        el("div", { class: "row" }, el("label", { for: `zname-${z.zone_id}`, text: "Name" }), name),
        el("div", { class: "row" }, el("label", { for: `cap-${z.zone_id}`, text: "Capacity" }), cap),
        el("div", { class: "row" },
          el("button", { type: "button", class: "primary", text: "Save", onclick: () => saveZone(z.zone_id,
            Object.assign(zoneBody(z, z.polygon), { name: name.value, capacity: cap.value === "" ? null : Number(cap.value) }), err) }),
          el("button", { type: "button", class: "danger", text: "Delete", onclick: () => write(`zones/${encodeURIComponent(z.zone_id)}`, "DELETE", undefined, err) })),
        err));
    }
    if (!(cam.zones || []).length) zones.append(el("li", { text: "No zones: use New zone." }));
  }

  // ------------------------------------------------------------------ charts

  function chartWidth(node) { return Math.max(260, (node.clientWidth || $("main").clientWidth) - 18); }
  window.addEventListener("resize", () => {
    for (const c of state.charts) c.setSize({ width: chartWidth(c.root.parentNode), height: 220 });
  });
  let chartsRequest = 0; // only the newest request draws (a sign-in or a new interval may overtake one)

  const STEP_S = { minute: 60, hour: 3600, day: 86400 };

  function plot(node, series, data, range) {
    node.replaceChildren();
    if (!series.length) { node.append(el("p", { class: "empty", text: "No data in this range yet." })); return; }
    const colours = ["#0b62d6", "#d6500b", "#1d7f3a", "#8a2be2", "#b3261e", "#00838f"];
    const opts = {
      width: chartWidth(node), height: 220,
      scales: { x: { time: true, range: () => range }, y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
      series: [{}, ...series.map((s, i) => ({ label: s, stroke: colours[i % colours.length], width: 2, spanGaps: false, points: { show: true, size: 5 } }))],
      axes: [{}, { size: 50 }], legend: { live: true },
    };
    state.charts.push(new uPlot(opts, data, node));
  }

  // rows {bucket, <key>, ...} -> uPlot data: one x per bucket of [from, to), one series per key
  // value; buckets without a row are `fill` (0 for counts: nobody crossed; null for occupancy: no sample)
  function align(rows, key, value, body, fill) {
    const step = STEP_S[body.interval], t0 = Math.floor(Date.parse(body.from) / 1000 / step) * step;
    const t1 = Date.parse(body.to) / 1000;
    const xs = [];
    for (let t = t0; t < t1; t += step) xs.push(t);
    const names = [...new Set(rows.map((r) => r[key]))].sort();
    const index = new Map(xs.map((x, i) => [x, i]));
    const data = [xs, ...names.map(() => xs.map(() => fill))];
    for (const r of rows) {
      const i = index.get(Date.parse(r.bucket) / 1000);
      if (i !== undefined) data[1 + names.indexOf(r[key])][i] = value(r);
    }
    return { names, data, range: [t0, t1] };
  }

  async function loadCharts() {
    const cam = state.camera;
    if (!cam) return;
    const request = ++chartsRequest;
    const id = encodeURIComponent(cam.camera_id), interval = $("interval").value;
    try {
      const [counts, occ, peaks] = await Promise.all([
        api(`/api/v1/cameras/${id}/counts?interval=${interval}`),
        api(`/api/v1/cameras/${id}/occupancy/history?interval=${interval}`),
        api(`/api/v1/cameras/${id}/peak-hours`),
      ]);
      if (request !== chartsRequest) return;
      for (const c of state.charts) c.destroy();
      state.charts = [];
      const c = align(counts.buckets, "line_id", (r) => r.total, counts, 0);
      plot($("counts-chart"), c.names.map((n) => `${n} (in+out)`), c.data, c.range);
      $("totals").textContent = `in ${counts.totals.in} · out ${counts.totals.out} in this range`;
      const o = align(occ.buckets, "zone_id", (r) => r.avg, occ, null);
      plot($("occupancy-chart"), o.names.map((n) => `${n} (avg people)`), o.data, o.range);
      const rows = $("peak-rows"); rows.replaceChildren();
      for (const d of peaks.days) {
        rows.append(el("tr", {}, el("td", { text: String(d.day).slice(0, 10) }),
          el("td", { text: d.peak_hour ? new Date(d.peak_hour).toISOString().slice(11, 16) + " UTC" : "–" }),
          el("td", { class: "num", text: String(d.crossings) })));
      }
      if (!peaks.days.length) rows.append(el("tr", {}, el("td", { colspan: "3", text: "No crossings in the last 7 days." })));
    } catch (e) {
      if (e.status !== 401) $("counts-chart").replaceChildren(el("p", { class: "error", text: `Charts: ${e.message}` }));
    }
  }
  $("interval").addEventListener("change", loadCharts);

  // ------------------------------------------------------------------ routing

  function route() {
    showWho();
    const m = location.hash.match(/^#\/camera\/(.+)$/);
    if (m) showCamera(decodeURIComponent(m[1]));
    else { state.camera = null; showList(); }
  }
  window.addEventListener("hashchange", route);
  route();
})();
