// skewwatch dashboard: plain JavaScript and SVG, no library, served by the monitor itself.
// Everything comes from the monitor's own API (same origin); nothing is loaded from elsewhere.
// Text from the API is always set with textContent, never parsed as HTML.

const SVG = "http://www.w3.org/2000/svg";
const state = { models: [], model: null, version: null, segment: "", scores: [], feature: null, test: null,
                windowId: null, windows: [] };

// -- small helpers -------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v;  // CSSOM: allowed by the page's CSP, unlike style attributes
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
const $ = (sel) => document.querySelector(sel);
const fmt = (x, d = 3) => (x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toPrecision(d));
function status(text, error = false) {
  const s = $("#status");
  s.textContent = text;
  s.className = error ? "error" : "";
}
function token() { return sessionStorage.getItem("skewwatch-token") || ""; }
async function api(path, options = {}) {
  const headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (options.body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, Object.assign({}, options, { headers }));
  const body = r.headers.get("content-type", "").includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : r.status;
    throw new Error(`${r.status}: ${detail}`);
  }
  return body;
}

// effect / floor: < 0.5 quiet, < 1 below the floor, < 2 over the floor (warning), >= 2 critical
const BANDS = [[0.5, "#d9efdc", "< 0.5"], [1, "#f3eeb4", "0.5–1"], [2, "#f6b86b", "1–2"], [Infinity, "#e2625b", "≥ 2"]];
function colour(ratio) {
  if (ratio === null || ratio === undefined || !isFinite(ratio)) return "#eceef1";
  return BANDS.find(([limit]) => ratio < limit)[1];
}

// -- models, versions, segments ------------------------------------------------------------
async function loadModels() {
  state.models = (await api("/models")).models;
  const select = $("#model");
  select.replaceChildren(...state.models.map((m) => el("option", { value: m.model, text: m.model })));
  if (!state.models.length) { status("no model yet: nothing has been decided"); return false; }
  state.model = state.model && state.models.some((m) => m.model === state.model) ? state.model : state.models[0].model;
  select.value = state.model;
  fillVersions();
  return true;
}
function currentModel() { return state.models.find((m) => m.model === state.model); }
function fillVersions() {
  const versions = currentModel().versions;
  const withData = versions.filter((v) => v.streams.length);
  const pick = (withData.length ? withData : versions).at(-1);
  state.version = state.version && versions.some((v) => v.version === state.version) ? state.version : pick.version;
  $("#version").replaceChildren(...versions.map((v) => el("option", {
    value: v.version, text: v.version + (v.bundle ? "" : " (no bundle)") + (v.streams.length ? "" : " (no windows)") })));
  $("#version").value = state.version;
  fillSegments();
}
function fillSegments() {
  const v = currentModel().versions.find((x) => x.version === state.version);
  const segments = v.streams.map((s) => s.segment);
  if (!segments.includes(state.segment)) state.segment = segments.includes("") ? "" : (segments[0] ?? "");
  $("#segment").replaceChildren(...(segments.length ? segments : [""]).map((s) => el("option", { value: s, text: s || "all traffic" })));
  $("#segment").value = state.segment;
}

// -- the grid ------------------------------------------------------------------------------
async function loadGrid() {
  const q = new URLSearchParams({ model: state.model, model_version: state.version, segment: state.segment });
  state.scores = (await api("/scores?" + q)).scores.filter((s) => s.mode === "skew" || s.mode === "drift");
  const bundle = currentModel().versions.find((v) => v.version === state.version).bundle;
  const order = bundle ? bundle.features.map((f) => f.name).concat(["prediction"]) : [];
  const features = [...new Set(order.filter((f) => state.scores.some((s) => s.feature === f))
    .concat(state.scores.map((s) => s.feature).sort()))];
  const tests = [...new Set(state.scores.map((s) => s.test))].sort();
  const at = new Map(state.scores.map((s) => [`${s.feature}|${s.test}|${s.mode}`, s]));
  $("#grid thead").replaceChildren(el("tr", {}, el("th", { text: "feature" }), ...tests.map((t) => el("th", { text: t }))));
  $("#grid tbody").replaceChildren(...features.map((f) => el("tr", { "data-feature": f, class: f === state.feature ? "selected" : null },
    el("th", { class: "feature", text: f, onclick: () => selectFeature(f, null) }),
    ...tests.map((t) => {
      const halves = ["skew", "drift"].map((mode) => {
        const s = at.get(`${f}|${t}|${mode}`);
        const ratio = s && s.verdict !== "insufficient_data" ? s.effect_over_floor : null;
        return el("div", { class: mode, "data-mode": mode, "data-ratio": ratio === null ? "" : String(ratio),
          style: `background:${colour(ratio)}`,
          title: s ? `${f} ${t} ${mode}: effect ${fmt(s.effect)} / floor ${fmt(s.floor)} = ${fmt(s.effect_over_floor)}; ${s.verdict.replace("_", " ")}` +
                     (s.q_value !== null ? `; q ${fmt(s.q_value, 2)}` : "") : `${f} ${t} ${mode}: not computed`,
          text: ratio === null ? "" : (ratio >= 1 ? "●" : "") });
      });
      return el("td", { class: "cell" + (f === state.feature && t === state.test ? " selected" : ""),
                        "data-feature": f, "data-test": t, onclick: () => selectFeature(f, t) }, ...halves);
    }))));
  $("#legend").replaceChildren(el("span", { class: "muted", text: "effect / floor: " }),
    ...BANDS.map(([, c, label]) => el("span", { style: `background:${c}`, text: label })),
    el("span", { style: `background:${colour(null)}`, text: "none" }));
  if (!state.feature && features.length) {
    const worst = state.scores.filter((s) => s.effect_over_floor !== null)
      .sort((a, b) => b.effect_over_floor - a.effect_over_floor)[0];
    state.feature = worst ? worst.feature : features[0];
    state.test = worst ? worst.test : null;
  }
}

function selectFeature(feature, test) {
  state.feature = feature;
  state.test = test;
  for (const tr of document.querySelectorAll("#grid tbody tr")) tr.classList.toggle("selected", tr.dataset.feature === feature);
  for (const td of document.querySelectorAll("#grid td.cell"))
    td.classList.toggle("selected", td.dataset.feature === feature && td.dataset.test === test);
  refreshFeature().catch((e) => status(e.message, true));
}

// -- the timeline --------------------------------------------------------------------------
async function loadTimeline() {
  $("#timeline-feature").textContent = state.feature || "…";
  const box = $("#timelines");
  if (!state.feature) { box.replaceChildren(); return; }
  const q = new URLSearchParams({ model_version: state.version, segment: state.segment, limit: "3000" });
  const history = await api(`/models/${encodeURIComponent(state.model)}/features/${encodeURIComponent(state.feature)}/history?` + q);
  let series = history.series.filter((s) => s.mode === "skew" || s.mode === "drift");
  if (state.test) series.sort((a, b) => (b.test === state.test) - (a.test === state.test));
  box.replaceChildren(...series.map(drawSeries));
}

function drawSeries(s) {
  const W = 250, H = 96, L = 34, R = 6, T = 8, B = 16;
  const pts = s.points.filter((p) => p.effect !== null);
  const xs = pts.map((p) => p.end_ms), ys = pts.flatMap((p) => [p.effect, p.floor ?? 0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y1 = Math.max(...ys, 1e-9) * 1.1;
  const X = (t) => L + (x1 > x0 ? (t - x0) / (x1 - x0) : 0.5) * (W - L - R);
  const Y = (v) => T + (1 - v / y1) * (H - T - B);
  const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart",
                              "data-mode": s.mode, "data-test": s.test });
  svg.append(el("svg:line", { x1: L, x2: W - R, y1: Y(0), y2: Y(0), stroke: "#ccd" }),
             el("svg:text", { x: 2, y: Y(y1 / 1.1) + 4, text: fmt(y1 / 1.1, 2) }),
             el("svg:text", { x: 2, y: Y(0) + 3, text: "0" }));
  if (pts.length) {
    svg.append(el("svg:polyline", { class: "floor", fill: "none", stroke: "#888", "stroke-dasharray": "4 3",
      points: pts.map((p) => `${X(p.end_ms)},${Y(p.floor ?? 0)}`).join(" ") }));
    svg.append(el("svg:polyline", { class: "effect", fill: "none", stroke: s.mode === "skew" ? "#2b5fb3" : "#7a3db8",
      "stroke-width": 1.5, points: pts.map((p) => `${X(p.end_ms)},${Y(p.effect)}`).join(" ") }));
    for (const p of pts) {
      const c = p.verdict === "critical" ? "#d93025" : p.verdict === "warning" ? "#e8a100" : "#5f6b7a";
      svg.append(el("svg:circle", { cx: X(p.end_ms), cy: Y(p.effect), r: p.window_id === state.windowId ? 4 : 2.5,
        fill: c, "data-window-id": p.window_id, style: "cursor:pointer",
        onclick: () => selectWindow(p.window_id) }, el("svg:title", { text: `${new Date(p.end_ms).toISOString()}: effect ${fmt(p.effect)}, floor ${fmt(p.floor)}, ${p.verdict}` })));
    }
  }
  return el("div", { class: "timeline" }, el("div", { class: "title", text: `${s.mode} · ${s.test}${s.family === "output" ? " (output)" : ""}` }), svg);
}

// -- distributions -------------------------------------------------------------------------
function selectWindow(id) {
  state.windowId = id;
  history.replaceState(null, "", `#window=${id}`);
  loadDistribution().catch((e) => status(e.message, true));
  for (const c of document.querySelectorAll("#timelines circle"))
    c.setAttribute("r", Number(c.dataset.windowId) === id ? 4 : 2.5);
}

async function loadDistribution() {
  const box = $("#distribution");
  $("#dist-feature").textContent = state.feature || "…";
  $("#dist-window").textContent = state.windowId ?? "…";
  $("#dist-report").href = state.windowId ? `/reports/${state.windowId}` : "#";
  if (!state.feature || !state.windowId) { box.replaceChildren(); return; }
  const reference = document.querySelector("input[name=reference]:checked").value;
  const q = new URLSearchParams({ feature: state.feature, reference });
  let d;
  try {
    d = await api(`/windows/${state.windowId}/distribution?` + q);
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted", text: e.message }));
    return;
  }
  const view = document.querySelector("input[name=view]:checked").value;
  const label = d.reference === "baseline" ? "training baseline" : `window ${d.reference_window_id}`;
  const legend = el("p", { class: "muted" }, el("span", { style: "color:#8a94a6", text: "■ " + label + "  " }),
                    el("span", { style: "color:#d9534f", text: "■ window " + d.window_id }));
  const chart = d.distribution.kind === "numeric"
    ? (view === "cdf" ? drawCdf(d.distribution) : drawHistogram(d.distribution)) : drawCategories(d.distribution);
  box.replaceChildren(legend, chart, numericSummary(d.distribution));
}

function axes(svg, W, H, L, B, lo, hi) {
  svg.append(el("svg:line", { x1: L, x2: W - 4, y1: H - B, y2: H - B, stroke: "#99a" }),
             el("svg:text", { x: L, y: H - 2, text: fmt(lo, 4) }),
             el("svg:text", { x: W - 40, y: H - 2, text: fmt(hi, 4) }));
}

function drawHistogram(d) {
  const W = 520, H = 240, L = 30, B = 18, T = 8;
  const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart histogram" });
  const n = d.edges.length - 1;
  const sides = [["reference", "#8a94a6"], ["window", "#d9534f"]].filter(([k]) => d[k].shares);
  const top = Math.max(...sides.flatMap(([k]) => d[k].shares), 1e-9);
  const bw = (W - L - 4) / n;
  for (const [k, c] of sides) {
    d[k].shares.forEach((v, i) => {
      const h = (v / top) * (H - B - T);
      svg.append(el("svg:rect", { class: `bar ${k}`, x: L + i * bw + (k === "window" ? bw * 0.15 : 0), width: bw * 0.85,
        y: H - B - h, height: h, fill: c, "fill-opacity": 0.55 },
        el("svg:title", { text: `${fmt(d.edges[i], 4)}..${fmt(d.edges[i + 1], 4)}: ${k} ${fmt(100 * v, 3)}%` })));
    });
  }
  axes(svg, W, H, L, B, d.edges[0], d.edges[n]);
  return svg;
}

function drawCdf(d) {
  const W = 520, H = 240, L = 30, B = 18, T = 8;
  const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart cdf" });
  const lo = d.grid[0], hi = d.grid.at(-1);
  const X = (v) => L + ((v - lo) / (hi - lo || 1)) * (W - L - 4), Y = (p) => T + (1 - p) * (H - B - T);
  for (const [k, c] of [["reference", "#8a94a6"], ["window", "#d9534f"]]) {
    if (!d[k].cdf) continue;
    svg.append(el("svg:polyline", { class: `cdf ${k}`, fill: "none", stroke: c, "stroke-width": 2,
      points: d.grid.map((g, i) => `${X(g)},${Y(d[k].cdf[i])}`).join(" ") }));
  }
  svg.append(el("svg:text", { x: 2, y: Y(1) + 4, text: "1" }), el("svg:text", { x: 2, y: Y(0), text: "0" }));
  axes(svg, W, H, L, B, lo, hi);
  return svg;
}

function drawCategories(d) {
  const rows = d.categories, W = 520, rowH = 18, L = 150, H = rows.length * rowH + 10;
  const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart categories" });
  const top = Math.max(...rows.flatMap((r) => [r.reference ?? 0, r.window ?? 0]), 1e-9);
  rows.forEach((r, i) => {
    const y = 4 + i * rowH;
    const name = r.value.length > 24 ? r.value.slice(0, 23) + "…" : r.value;
    svg.append(el("svg:text", { x: 2, y: y + 12, text: name + (r.unseen ? " (new)" : "") }, el("svg:title", { text: r.value })));
    for (const [k, c, dy] of [["reference", "#8a94a6", 0], ["window", "#d9534f", 8]]) {
      const v = r[k] ?? 0;
      svg.append(el("svg:rect", { class: `bar ${k}`, x: L, y: y + dy, height: 7, width: (v / top) * (W - L - 50), fill: c },
        el("svg:title", { text: `${r.value}: ${k} ${fmt(100 * v, 3)}%` })));
    }
    svg.append(el("svg:text", { x: W - 46, y: y + 12, text: `${fmt(100 * (r.window ?? 0), 2)}%` }));
  });
  return svg;
}

function numericSummary(d) {
  if (d.kind !== "numeric") return el("p", { class: "muted", text: `${d.window_count} values in the window, ` +
    `${d.reference_count} in the reference${d.exact ? "" : " (sketch estimates)"}` });
  const row = (k) => el("tr", {}, el("td", { text: k }), ...["count", "missing", "mean", "std", "min", "max"]
    .map((f) => el("td", { text: f === "count" || f === "missing" ? String(d[k][f]) : fmt(d[k][f], 4) })));
  return el("table", {}, el("thead", {}, el("tr", {}, ...["", "count", "missing", "mean", "std", "min", "max"]
    .map((h) => el("th", { text: h })))), el("tbody", {}, row("reference"), row("window")));
}

// -- alerts --------------------------------------------------------------------------------
async function loadAlerts() {
  const q = new URLSearchParams({ model: state.model });
  const all = (await api("/alerts?" + q)).alerts.filter((a) => a.state !== "resolved");
  $("#alerts-empty").hidden = all.length > 0;
  $("#alerts tbody").replaceChildren(...all.map((a) => el("tr", { class: a.severity, "data-fingerprint": a.fingerprint },
    el("td", { text: a.severity }),
    el("td", { class: "state", text: a.state + (a.acknowledged ? ` · acknowledged by ${a.acknowledged_by}` : "") +
                                      (a.silenced_by.length ? " · silenced" : "") }),
    el("td", {}, el("a", { href: "#", text: a.annotations.summary || `${a.feature} ${a.mode}`,
                           onclick: (e) => { e.preventDefault(); selectFeature(a.feature, null); if (a.window_id) selectWindow(a.window_id); } })),
    el("td", { text: a.starts }),
    el("td", {}, a.report_url ? el("a", { href: a.report_url, text: "report" }) : ""),
    el("td", {},
      el("button", { type: "button", class: "ack", disabled: a.acknowledged ? "" : null, text: "acknowledge 4h",
                     onclick: () => act(`/alerts/${a.fingerprint}/acknowledge`, { by: "dashboard", duration: "4h" }) }),
      " ",
      el("button", { type: "button", class: "silence", text: "silence 1h",
                     onclick: () => act("/silences", { matchers: [`model=${a.model}`, `feature=${a.feature}`, `mode=${a.mode}`],
                                                       duration: "1h", created_by: "dashboard",
                                                       comment: `from the dashboard, alert ${a.fingerprint}` }) })))));
}

async function act(path, body) {
  if (!token()) { status("enter the API token to change things", true); return; }
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    status("done: " + path);
    await loadAlerts();
  } catch (e) {
    status(e.message, true);
  }
}

// -- windows -------------------------------------------------------------------------------
async function loadWindows() {
  const q = new URLSearchParams({ model: state.model, model_version: state.version, segment: state.segment, limit: "20" });
  state.windows = (await api("/windows?" + q)).windows;
  $("#windows tbody").replaceChildren(...state.windows.map((w) => el("tr", { "data-window-id": w.id },
    el("td", {}, el("a", { href: `#window=${w.id}`, text: String(w.id), onclick: (e) => { e.preventDefault(); selectWindow(w.id); } })),
    el("td", { text: w.start }), el("td", { text: String(w.rows) }), el("td", { text: `${w.alerting} / ${w.findings}` }),
    el("td", {}, el("a", { href: w.report_url, text: "report" })))));
  const fromHash = Number((location.hash.match(/window=(\d+)/) || [])[1]);
  if (!state.windowId) state.windowId = fromHash || (state.windows[0] ? state.windows[0].id : null);
}

// -- wiring --------------------------------------------------------------------------------
async function refreshFeature() {
  await Promise.all([loadTimeline(), loadDistribution()]);
}
async function refresh() {
  status("loading…");
  try {
    if (!(await loadModels())) return;
    await Promise.all([loadGrid(), loadWindows(), loadAlerts()]);
    await refreshFeature();
    status("updated " + new Date().toLocaleTimeString());
    document.body.dataset.ready = "true";
  } catch (e) {
    status(e.message, true);
  }
}

$("#model").addEventListener("change", (e) => { state.model = e.target.value; state.version = null; state.feature = null; state.windowId = null; refresh(); });
$("#version").addEventListener("change", (e) => { state.version = e.target.value; state.feature = null; state.windowId = null; refresh(); });
$("#segment").addEventListener("change", (e) => { state.segment = e.target.value; state.windowId = null; refresh(); });
for (const r of document.querySelectorAll("input[name=reference], input[name=view]"))
  r.addEventListener("change", () => loadDistribution().catch((e) => status(e.message, true)));
$("#token").value = token();
$("#save-token").addEventListener("click", () => { sessionStorage.setItem("skewwatch-token", $("#token").value); status("token set for this tab"); refresh(); });
refresh();
setInterval(() => { if (!document.hidden) loadAlerts().catch(() => {}); }, 30000);
