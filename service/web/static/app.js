// nascreen screening page: plain JavaScript, no build step, no third-party code.
// It calls the public HTTP API only (/v1/rank-dopants, /v1/predict, /v1/screening-jobs, /v1/models,
// /health) plus /ui/meta (families, targets, dopant groups, limits, loaded models) served beside it.
"use strict";

const $ = (sel) => document.querySelector(sel);
const KEY_STORE = "nascreen.apiKey";
const state = { meta: null, health: null, models: [], rows: [], result: null, job: null, sort: null };

// ---------------------------------------------------------------------------------------------- HTTP
function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  return { status: resp.status, ok: resp.ok, data };
}

function describeError(res) {
  const d = res.data && res.data.detail !== undefined ? res.data.detail : res.data;
  let msg;
  if (Array.isArray(d)) msg = d.map((p) => `${(p.loc || []).join(".")}: ${p.msg}`).join("; ");
  else msg = typeof d === "string" ? d : JSON.stringify(d);
  if (res.status === 401) msg += " (enter the server's API key at the top of the page)";
  return `HTTP ${res.status}: ${msg}`;
}

// ------------------------------------------------------------------------------------------- helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
function fmt(v, digits = 3) {
  if (!isNum(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(digits + (a >= 10 ? 1 : 0))).toString();
}
function truthy(v) { return v === true || v === "true" || v === "True" || v === 1 || v === "1"; }
function targetUnit(t) { return (state.meta.targets[t] || {}).unit || ""; }
function higherBetter(t) { return (state.meta.targets[t] || {}).higher_is_better !== false; }
function label(t) { return t.replace(/_/g, " "); }

// viridis (matplotlib), 10 stops: readable in greyscale (monotonic lightness)
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
function viridis(t) {
  const x = Math.min(1, Math.max(0, isNum(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i], b = VIRIDIS[i + 1];
  const ch = (s, o) => parseInt(s.slice(o, o + 2), 16);
  const mix = (o) => Math.round(ch(a, o) + f * (ch(b, o) - ch(a, o)));
  return { css: `rgb(${mix(1)},${mix(3)},${mix(5)})`, dark: x / (VIRIDIS.length - 1) < 0.6 };
}
function scaler(values) {
  const v = values.filter(isNum);
  const lo = Math.min(...v), hi = Math.max(...v);
  return { lo, hi, f: (x) => (hi > lo ? (x - lo) / (hi - lo) : 0.5) };
}

// ---------------------------------------------------------------------------------------- the form
function parseFractions(text) {
  const t = text.trim();
  if (!t) throw new Error("fractions: enter at least one value, e.g. 0.05, 0.1 or 0.05:0.2:0.05");
  const range = t.match(/^([^:]+):([^:]+):([^:]+)$/);
  if (range) {
    const [a, b, s] = range.slice(1).map(Number);
    if (![a, b, s].every(Number.isFinite) || s <= 0 || b < a) throw new Error(`fractions: "${t}" is not start:stop:step with step > 0`);
    const out = [];
    for (let i = 0; a + i * s <= b + 1e-9 && i < 1000; i++) out.push(Number((a + i * s).toFixed(6)));
    return out;
  }
  return t.split(/[\s,;]+/).filter(Boolean).map((p) => {
    const v = Number(p);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`fractions: "${p}" is not a positive number`);
    return v;
  });
}

function selectedDopants() {
  return $("#dopants-text").value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
}
function setDopants(list) {
  const uniq = [...new Set(list)];
  $("#dopants-text").value = uniq.join(", ");
  syncPicker();
}
function syncPicker() {
  const chosen = new Set(selectedDopants());
  document.querySelectorAll("#ptable button[data-el]").forEach((b) => {
    b.setAttribute("aria-pressed", chosen.has(b.dataset.el) ? "true" : "false");
  });
  $("#dopant-count").textContent = String(chosen.size);
}

function family() { return state.meta.families.find((f) => f.name === $("#family").value); }
function chosenTargets() {
  return [...document.querySelectorAll("#targets input:checked")].map((i) => i.value);
}

function onFamilyChange() {
  const fam = family();
  const box = $("#targets");
  box.replaceChildren();
  for (const t of fam.targets) {
    const loaded = t in state.meta.models;
    const id = `tg-${t}`;
    box.append(el("label", { for: id, class: loaded ? "" : "missing" },
      el("input", { id, type: "checkbox", value: t, checked: loaded, disabled: !loaded, onchange: renderObjectives }),
      ` ${label(t)} (${targetUnit(t)})`, loaded ? "" : " – no model loaded"));
  }
  $("#conditions-fs").hidden = fam.kind !== "cathode";
  $("#phase-note").textContent = fam.kind === "electrolyte"
    ? `Phase: ${fam.description}. The family sets the phase; a polymorph prefix in the host (beta-, P2-) is kept in the formula.`
    : `${fam.description}${fam.structure_type ? ` (stacking ${fam.structure_type})` : ""}.`;
  renderObjectives();
}

function renderObjectives() {
  const box = $("#objectives");
  box.replaceChildren(el("span", { class: "hint", text: "Objectives (weight, threshold on the mean):" }));
  for (const t of chosenTargets()) {
    box.append(el("label", {}, `${label(t)} ${higherBetter(t) ? "↑" : "↓"} weight `,
      el("input", { type: "number", min: "0", step: "0.5", value: "1", size: "3", "data-weight": t, "aria-label": `${t} weight` })));
    box.append(el("label", {}, " threshold ",
      el("input", { type: "number", step: "any", size: "5", "data-threshold": t, "aria-label": `${t} threshold` })));
  }
}

function compensation() {
  const mode = $("#compensation").value;
  const elem = $("#comp-element").value.trim();
  const range = $("#comp-range").value.trim();
  if (!elem && !range) return mode;
  const out = { mode };
  if (elem) out.element = elem;
  if (range) {
    const m = range.match(/^\s*([\d.]+)\s*[-–,:]\s*([\d.]+)\s*$/);
    if (!m) throw new Error(`valence range: "${range}" is not lo-hi, e.g. 3-4`);
    out.range = [Number(m[1]), Number(m[2])];
  }
  return out;
}

function conditions() {
  if (family().kind !== "cathode") return null;
  const num = (id) => { const v = $(id).value.trim(); return v === "" ? undefined : Number(v); };
  return { cycles: num("#cycles"), current_mA_g: num("#current"), voltage_low_V: num("#vlow"), voltage_high_V: num("#vhigh") };
}

function ranking() {
  const objectives = {};
  for (const t of chosenTargets()) {
    const w = document.querySelector(`[data-weight="${t}"]`);
    const th = document.querySelector(`[data-threshold="${t}"]`);
    const o = {};
    if (w && w.value !== "") o.weight = Number(w.value);
    if (th && th.value !== "") o.threshold = Number(th.value);
    objectives[t] = o;
  }
  const r = { mode: $("#mode").value, objectives, in_domain_only: $("#in-domain-only").checked };
  if (r.mode === "ucb" || r.mode === "pareto") r.kappa = Number($("#kappa").value || 1);
  return r;
}

/** The /v1/rank-dopants body for the form (also the core of a screening-job spec). */
function rankRequest() {
  const targets = chosenTargets();
  if (!targets.length) throw new Error("targets: tick at least one target with a loaded model");
  const dopants = selectedDopants();
  if (!dopants.length) throw new Error("dopants: pick at least one element on the periodic table");
  const req = {
    family: $("#family").value,
    host: $("#host").value.trim(),
    site: $("#site").value.trim(),
    dopants,
    fractions: parseFractions($("#fractions").value),
    compensation: compensation(),
    targets,
    ranking: ranking(),
    top_k: Math.max(1, Math.min(state.meta.limits.max_top_k || 1000, Number($("#top-k").value) || 1000)),
  };
  if (!req.host) throw new Error("host: enter the host formula");
  if (!req.site) throw new Error("site: enter the host element the dopant replaces");
  const cond = conditions();
  if (cond) req.conditions = cond;
  return req;
}

function fillForm(req) {
  $("#family").value = req.family;
  onFamilyChange();
  $("#host").value = req.host || "";
  $("#site").value = req.site || "";
  setDopants(req.dopants || []);
  $("#fractions").value = (req.fractions || []).join(", ");
  const comp = req.compensation || "none";
  $("#compensation").value = typeof comp === "string" ? comp : comp.mode;
  $("#comp-element").value = typeof comp === "object" && comp.element ? comp.element : "";
  $("#comp-range").value = typeof comp === "object" && comp.range ? comp.range.join("-") : "";
  if (req.conditions) {
    $("#cycles").value = req.conditions.cycles ?? "";
    $("#current").value = req.conditions.current_mA_g ?? "";
    $("#vlow").value = req.conditions.voltage_low_V ?? "";
    $("#vhigh").value = req.conditions.voltage_high_V ?? "";
  }
  if (req.targets) {
    document.querySelectorAll("#targets input").forEach((i) => { i.checked = !i.disabled && req.targets.includes(i.value); });
    renderObjectives();
  }
  const r = req.ranking || {};
  $("#mode").value = r.mode || "value";
  if (r.kappa !== undefined) $("#kappa").value = r.kappa;
  $("#in-domain-only").checked = !!r.in_domain_only;
  for (const [t, o] of Object.entries(r.objectives || {})) {
    const w = document.querySelector(`[data-weight="${t}"]`);
    if (w && o.weight !== undefined) w.value = o.weight;
    const th = document.querySelector(`[data-threshold="${t}"]`);
    if (th && o.threshold !== undefined) th.value = o.threshold;
  }
  if (req.top_k) $("#top-k").value = req.top_k;
}

const PRESETS = {
  p2: {
    family: "p2_layered_oxide", host: "Na0.6Li0.2Mn0.8O2", site: "Mn",
    dopants: ["Ru", "Ir", "Nb", "Ta", "Mo", "W", "Ti", "Zr", "Sn", "Os", "Re", "Pt"],
    fractions: [0.05, 0.1, 0.15, 0.2],
    compensation: { mode: "variable_valence", element: "Mn", range: [3, 4] },
    conditions: { cycles: 100, current_mA_g: 170, voltage_low_V: 2.0, voltage_high_V: 4.5 },
    ranking: { mode: "value", objectives: { capacity_retention: { weight: 2 }, average_voltage: { weight: 1 } } },
  },
  oxychloride: {
    family: "oxychloride", host: "Na2O2-HfCl4", site: "Hf",
    dopants: ["Zr", "Ti", "Sn", "Ta", "Nb", "Mo", "W", "Y", "In", "Sc"],
    fractions: [0.1, 0.25, 0.5],
    compensation: "na_content",
    ranking: { mode: "ucb", kappa: 1.0 },
  },
  nasicon: {
    family: "nasicon", host: "Na3Zr2Si2PO12", site: "Zr",
    dopants: ["Hf", "Ti", "Sn", "Nb", "Ta", "Ge", "Sc", "Y"],
    fractions: [0.05, 0.1, 0.2],
    compensation: "na_content",
    ranking: { mode: "ucb", kappa: 1.0 },
  },
};

// -------------------------------------------------------------------------------------- the screen
function setStatus(text) { $("#status").textContent = text; }
function formError(text) { $("#form-error").textContent = text || ""; }

async function runScreen(ev) {
  if (ev) ev.preventDefault();
  formError("");
  let req;
  try { req = rankRequest(); } catch (e) { formError(e.message); return; }
  const asJob = document.querySelector('input[name="runmode"]:checked').value === "job";
  if (!asJob) {
    setStatus("Screening…");
    $("#run").disabled = true;
    const res = await api("POST", "/v1/rank-dopants", req);
    $("#run").disabled = false;
    if (res.ok) {
      history.replaceState(null, "", `${location.pathname}#screen=${encodeURIComponent(JSON.stringify(req))}`);
      setStatus(`Done: ${res.data.n_scored} candidates scored.`);
      await showResult({ kind: "sync", request: req, response: res.data, rows: res.data.candidates });
      return;
    }
    if (res.status !== 413) { setStatus(""); formError(describeError(res)); return; }
    setStatus("Too big to answer at once: submitting it as a screening job…");
  }
  await submitJob(req);
}

function jobSpec(req) {
  const spec = { ...req, name: `web-${req.host}-${req.site}`.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 90) };
  delete spec.top_k;
  return spec;
}

async function submitJob(req) {
  const res = await api("POST", "/v1/screening-jobs", jobSpec(req));
  if (!res.ok) { setStatus(""); formError(describeError(res)); return; }
  history.replaceState(null, "", `${location.pathname}?job=${res.data.id}`);
  await followJob(res.data.id, req);
}

async function followJob(id, req) {
  state.job = { id, req, cancelled: false };
  $("#cancel").hidden = false;
  $("#progress").hidden = false;
  $("#run").disabled = true;
  try {
    for (;;) {
      const res = await api("GET", `/v1/screening-jobs/${id}`);
      if (!res.ok) { formError(describeError(res)); break; }
      const job = res.data;
      $("#progress").value = job.progress.fraction;
      setStatus(`Job ${job.id.slice(0, 8)}: ${job.status}, ${job.progress.done} / ${job.progress.total} candidates`);
      if (job.status === "queued" || job.status === "running") {
        if (job.top_k && job.top_k.length) await showResult({ kind: "job-partial", job, rows: job.top_k, request: req });
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      $("#cancel").hidden = true; // the job has ended: nothing left to cancel while its results are drawn
      if (job.status === "succeeded") {
        const csv = await fetch(job.results.csv);
        const rows = csv.ok ? parseCsv(await csv.text()) : job.top_k;
        await showResult({ kind: "job", job, rows, request: req });
      } else {
        formError(`Job ${job.status}${job.error ? `: ${job.error}` : ""}`);
        if (job.top_k && job.top_k.length) await showResult({ kind: "job-partial", job, rows: job.top_k, request: req });
      }
      break;
    }
  } finally {
    $("#cancel").hidden = true;
    $("#run").disabled = false;
  }
}

async function cancelJob() {
  if (!state.job) return;
  const res = await api("DELETE", `/v1/screening-jobs/${state.job.id}`);
  if (!res.ok) formError(describeError(res));
  else setStatus("Cancelling…");
}

// RFC 4180 CSV (quoted fields may hold commas, quotes and newlines) -> objects with typed values.
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", i = 0, quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      field += c; i++; continue;
    }
    if (c === '"') { quoted = true; i++; continue; }
    if (c === ",") { row.push(field); field = ""; i++; continue; }
    if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = ""; i++; continue;
    }
    field += c; i++;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  const [header, ...body] = rows;
  return body.filter((r) => r.length === header.length).map((r) => {
    const o = {};
    header.forEach((h, j) => {
      const v = r[j];
      if (v === "") o[h] = null;
      else if (/^(true|false)$/i.test(v)) o[h] = /^true$/i.test(v);
      else if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) o[h] = Number(v);
      else o[h] = v;
    });
    return o;
  });
}

// ------------------------------------------------------------------------------------------ results
function resultTargets(rows, req) {
  if (req && req.targets) return req.targets;
  const cols = new Set(rows.flatMap((r) => Object.keys(r)));
  return Object.keys(state.meta.targets).filter((t) => cols.has(`${t}_prediction`));
}

async function hostBaseline(rows, req, targets) {
  const host = rows.find((r) => truthy(r.is_host));
  const base = {};
  if (host) { for (const t of targets) base[t] = host[`${t}_prediction`]; return { base, from: "host row" }; }
  if (!req) return { base, from: "" };
  const item = { formula: req.host, ...(req.conditions || {}) };
  const res = await api("POST", "/v1/predict", { items: [item], targets });
  if (res.ok) for (const t of targets) base[t] = res.data.results[0].predictions[t].value;
  return { base, from: "predicted host" };
}

async function showResult(result) {
  const rows = (result.rows || []).map((r) => ({ ...r }));
  const targets = resultTargets(rows, result.request);
  const { base, from } = await hostBaseline(rows, result.request, targets);
  state.result = { ...result, rows, targets, base, baseFrom: from };
  state.sort = null;
  $("#results").hidden = false;
  const sel = $("#heat-target");
  const prev = sel.value;
  sel.replaceChildren(...targets.map((t) => el("option", { value: t, text: `${label(t)} (${targetUnit(t)})` })));
  const weights = (result.request && result.request.ranking && result.request.ranking.objectives) || {};
  const w = (t) => (weights[t] && isNum(weights[t].weight) ? weights[t].weight : 1);
  sel.value = targets.includes(prev) ? prev : [...targets].sort((a, b) => w(b) - w(a))[0];
  for (const id of ["#px", "#py"]) {
    const s = $(id);
    const old = s.value;
    s.replaceChildren(...[...targets, "fraction"].map((t) => el("option", { value: t, text: t === "fraction" ? "dopant fraction" : label(t) })));
    if ([...targets, "fraction"].includes(old)) s.value = old;
  }
  if (!$("#px").value || $("#px").value === $("#py").value) {
    $("#px").value = targets.length > 1 ? targets[1] : "fraction";
    $("#py").value = targets[0];
  }
  renderSummary();
  renderAll();
}

function renderAll() {
  renderHeatmap();
  renderFractionMap();
  renderPareto();
  renderTable();
  renderRejected();
}

function inDomain(r, t) { return truthy(r[`${t}_in_domain`]); }
function predOf(r, t) { return isNum(r[`${t}_prediction`]) ? r[`${t}_prediction`] : null; }
function reasonOf(r, t) { return r[`${t}_error`] || r[`${t}_domain_reason`] || ""; }
function candidates() { return state.result.rows.filter((r) => !truthy(r.is_host)); }

function renderSummary() {
  const { kind, response, job, targets, base, baseFrom, rows } = state.result;
  const cands = candidates();
  const parts = [];
  if (kind === "sync") {
    parts.push(`${response.n_generated} candidates generated, ${response.n_rejected} rejected by charge balance, ${response.n_scored} scored; ranked by ${response.ranking}.`);
    if (rows.length < response.n_scored) parts.push(`Showing the top ${rows.length}.`);
  } else {
    const c = job.counts || {};
    parts.push(`Screening job ${job.id}: ${job.status}. ` + Object.entries(c).map(([k, v]) => `${k} ${v}`).join(", ") + ".");
    if (kind === "job-partial") parts.push(`Best ${rows.length} so far.`);
  }
  for (const t of targets) {
    const ood = cands.filter((r) => predOf(r, t) !== null && !inDomain(r, t)).length;
    const m = state.meta.models[t] || {};
    parts.push(`${label(t)}: ${cands.length - ood} in domain, ${ood} out of domain (model v${m.version || "?"}${m.n_training_rows ? `, ${m.n_training_rows} training rows` : ""}); host ${fmt(base[t])} ${targetUnit(t)}${baseFrom ? ` (${baseFrom})` : ""}.`);
  }
  $("#summary").textContent = parts.join(" ");
  const share = $("#share");
  const what = kind === "sync" ? "this screen (re-runs it)" : `job ${job.id.slice(0, 8)}`;
  share.replaceChildren("Shareable link to ", el("a", { id: "share-link", href: location.href, text: what }), ": copy it from the address bar or this link.");
}

// periodic-table heatmap ------------------------------------------------------------------------------
function dopantSummary(t) {
  const byEl = new Map();
  for (const r of candidates()) {
    const d = r.dopant;
    if (!d) continue;
    if (!byEl.has(d)) byEl.set(d, []);
    byEl.get(d).push(r);
  }
  const hb = higherBetter(t);
  const better = (a, b) => (hb ? a > b : a < b);
  const out = new Map();
  for (const [d, rs] of byEl) {
    const predicted = rs.filter((r) => predOf(r, t) !== null);
    const inside = predicted.filter((r) => inDomain(r, t));
    const pool = inside.length ? inside : predicted;
    let best = null;
    for (const r of pool) if (best === null || better(predOf(r, t), predOf(best, t))) best = r;
    const parts = rs.filter((r) => !inDomain(r, t)).flatMap((r) => reasonOf(r, t).split("; ")).filter(Boolean);
    const uniq = [...new Set(parts)];
    const reasons = uniq.length > 3 ? [...uniq.slice(0, 3), `… (${uniq.length - 3} more)`] : uniq;
    out.set(d, { rows: rs, best, inDomainCount: inside.length, oodCount: predicted.length - inside.length, reasons });
  }
  return out;
}

function triedDopants() {
  const req = state.result.request;
  const tried = new Set(candidates().map((r) => r.dopant).filter(Boolean));
  if (req && req.dopants) {
    for (const d of req.dopants) {
      const g = state.meta.dopant_groups[d];
      (g || [d]).forEach((x) => tried.add(x));
    }
  }
  return tried;
}

function rejectedReason(d) {
  const res = state.result.response;
  const list = res && res.rejected ? res.rejected : [];
  const re = new RegExp(`(^|[^A-Za-z])${d}(?![a-z])`);
  const hit = list.find((x) => re.test(x.candidate));
  return hit ? hit.reason : "no charge-balanced candidate was generated for this dopant";
}

function renderHeatmap() {
  const t = $("#heat-target").value;
  const base = state.result.base[t];
  const summary = dopantSummary(t);
  const tried = triedDopants();
  const change = (r) => (isNum(base) ? predOf(r, t) - base : predOf(r, t));
  const sc = scaler([...summary.values()].filter((s) => s.best && s.inDomainCount).map((s) => change(s.best)));
  const unit = targetUnit(t);
  const what = isNum(base) ? `change vs host (${unit})` : `predicted ${label(t)} (${unit}, no host value)`;
  $("#legend").replaceChildren(
    el("span", { text: `${what}: ${fmt(sc.lo)} ` }),
    el("span", { class: "ramp", style: `background: linear-gradient(90deg, ${VIRIDIS.join(",")})` }),
    el("span", { text: ` ${fmt(sc.hi)} ${higherBetter(t) ? "(higher is better)" : "(lower is better)"}` }));
  const grid = $("#pt-heatmap");
  grid.replaceChildren();
  for (const e of state.meta.elements) {
    if (e.row > 7 && !e.dopable) continue;
    const s = summary.get(e.symbol);
    let st = "untried", text = "", info = `${e.symbol}: not tried`, style = "";
    if (s && s.best && s.inDomainCount) {
      const v = change(s.best);
      const c = viridis(sc.f(v));
      st = "best";
      style = `background-color:${c.css};color:${c.dark ? "#fff" : "#000"}`;
      text = (isNum(base) && v > 0 ? "+" : "") + fmt(v, 2);
      info = `${e.symbol}: best in-domain ${fmt(predOf(s.best, t))} ${unit} (${isNum(base) ? `${text} vs host` : "no host value"}) at ${s.best.formula}` +
        (s.oodCount ? `; ${s.oodCount} other candidate(s) out of domain: ${s.reasons.join("; ")}` : "");
    } else if (s && s.best) {
      st = "ood";
      text = fmt(change(s.best), 2);
      info = `${e.symbol}: OUT OF DOMAIN, every candidate is an extrapolation (best ${fmt(predOf(s.best, t))} ${unit}). Reason: ${s.reasons.join("; ") || "outside the training data"}`;
    } else if (s) {
      st = "error";
      info = `${e.symbol}: no prediction: ${s.reasons.join("; ")}`;
    } else if (tried.has(e.symbol)) {
      st = "rejected";
      info = `${e.symbol}: ${rejectedReason(e.symbol)}`;
    }
    const cell = el("div", {
      class: `cell ${st}`, "data-el": e.symbol, "data-state": st, title: info, tabindex: st === "untried" ? null : "0",
      "aria-label": info, style: `grid-row:${e.row + (e.row > 7 ? 1 : 0)};grid-column:${e.col};${style}`,
    }, el("span", { class: "sym", text: e.symbol }), el("span", { class: "val", text }));
    const show = () => { $("#heat-detail").textContent = info; };
    cell.addEventListener("mouseenter", show);
    cell.addEventListener("focus", show);
    grid.append(cell);
  }
}

// dopant x fraction -----------------------------------------------------------------------------------
function renderFractionMap() {
  const t = $("#heat-target").value;
  const cands = candidates().filter((r) => r.dopant && isNum(r.fraction));
  const fractions = [...new Set(cands.map((r) => r.fraction))].sort((a, b) => a - b);
  const summary = dopantSummary(t);
  const hb = higherBetter(t);
  // dopants with an in-domain candidate first (best first), then those that are only extrapolations
  const key = (d) => {
    const s = summary.get(d);
    const v = s && s.best ? predOf(s.best, t) : null;
    return [s && s.inDomainCount ? 0 : 1, v === null ? Infinity : hb ? -v : v];
  };
  const dopants = [...new Set(cands.map((r) => r.dopant))].sort((a, b) => {
    const [ga, va] = key(a), [gb, vb] = key(b);
    return ga - gb || va - vb;
  });
  const sc = scaler(cands.filter((r) => inDomain(r, t)).map((r) => predOf(r, t)));
  const table = $("#frac-heatmap");
  table.replaceChildren();
  table.append(el("caption", { text: `${label(t)} (${targetUnit(t)}) by dopant and fraction` }));
  table.append(el("tr", {}, el("th", { scope: "col", text: "dopant \\ x" }), ...fractions.map((f) => el("th", { scope: "col", text: fmt(f) }))));
  const better = (a, b) => (hb ? a > b : a < b);
  for (const d of dopants) {
    const tr = el("tr", {}, el("th", { scope: "row", text: d }));
    for (const f of fractions) {
      const rs = cands.filter((r) => r.dopant === d && r.fraction === f && predOf(r, t) !== null);
      const inside = rs.filter((r) => inDomain(r, t));
      const pool = inside.length ? inside : rs;
      let best = null;
      for (const r of pool) if (best === null || better(predOf(r, t), predOf(best, t))) best = r;
      if (!best) { tr.append(el("td", { class: "none", title: `${d} at ${f}: no charge-balanced candidate`, text: "×" })); continue; }
      const v = predOf(best, t);
      const ood = !inDomain(best, t);
      const c = viridis(sc.f(v));
      const tip = `${best.formula}: ${fmt(v)} ± ${fmt(best[`${t}_std`])} ${targetUnit(t)}, 90% [${fmt(best[`${t}_lower_90`])}, ${fmt(best[`${t}_upper_90`])}]` +
        (ood ? `; OUT OF DOMAIN: ${reasonOf(best, t)}` : "");
      tr.append(el("td", {
        class: ood ? "ood" : "", title: tip, "aria-label": tip, "data-dopant": d, "data-fraction": f,
        style: ood ? "" : `background-color:${c.css};color:${c.dark ? "#fff" : "#000"}`,
      }, fmt(v)));
    }
    table.append(tr);
  }
}

// Pareto / scatter with error bars --------------------------------------------------------------------
function renderPareto() {
  const xs = $("#px").value, ys = $("#py").value;
  const { targets } = state.result;
  const multi = targets.length > 1;
  $("#pareto-h").textContent = multi ? "Pareto front" : "Predictions with uncertainty (one target: no Pareto front)";
  const val = (r, k) => (k === "fraction" ? r.fraction : predOf(r, k));
  const err = (r, k) => (k === "fraction" ? 0 : r[`${k}_std`] || 0);
  const pts = candidates().filter((r) => isNum(val(r, xs)) && isNum(val(r, ys)));
  const W = 640, H = 380, m = { l: 64, r: 16, t: 12, b: 48 };
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label(ys)} against ${label(xs)}, ${pts.length} candidates`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  const box = $("#pareto");
  box.replaceChildren(svg);
  if (!pts.length) { add("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no candidate with both values"); return; }
  const ext = (k) => {
    const lo = Math.min(...pts.map((r) => val(r, k) - err(r, k)));
    const hi = Math.max(...pts.map((r) => val(r, k) + err(r, k)));
    const pad = (hi - lo) * 0.05 || 0.5;
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = ext(xs), [y0, y1] = ext(ys);
  const X = (v) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  add("rect", { x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, class: "frame" });
  for (let i = 0; i <= 4; i++) {
    const vx = x0 + ((x1 - x0) * i) / 4, vy = y0 + ((y1 - y0) * i) / 4;
    add("text", { x: X(vx), y: H - m.b + 16, "text-anchor": "middle", class: "tick" }, fmt(vx));
    add("text", { x: m.l - 6, y: Y(vy) + 4, "text-anchor": "end", class: "tick" }, fmt(vy));
  }
  const axis = (k) => (k === "fraction" ? "dopant fraction x" : `${label(k)} (${targetUnit(k)})`);
  add("text", { x: (W + m.l) / 2, y: H - 10, "text-anchor": "middle" }, axis(xs));
  add("text", { x: 14, y: (H - m.b) / 2, transform: `rotate(-90 14 ${(H - m.b) / 2})`, "text-anchor": "middle" }, axis(ys));
  const front = (r) => Number(r.pareto_rank) === 1;
  const ordered = [...pts].sort((a, b) => Number(front(a)) - Number(front(b)));
  for (const r of ordered) {
    const cx = X(val(r, xs)), cy = Y(val(r, ys));
    const ood = targets.some((t) => predOf(r, t) !== null && !inDomain(r, t));
    const g = add("g", { class: `pt${front(r) ? " front" : ""}${ood ? " ood" : ""}` });
    const line = (a, b, c, d) => { const l = document.createElementNS(NS, "line"); Object.entries({ x1: a, y1: b, x2: c, y2: d }).forEach(([k, v]) => l.setAttribute(k, v)); g.append(l); };
    if (err(r, xs)) line(X(val(r, xs) - err(r, xs)), cy, X(val(r, xs) + err(r, xs)), cy);
    if (err(r, ys)) line(cx, Y(val(r, ys) - err(r, ys)), cx, Y(val(r, ys) + err(r, ys)));
    if (ood) { line(cx - 5, cy - 5, cx + 5, cy + 5); line(cx - 5, cy + 5, cx + 5, cy - 5); }
    else { const c = document.createElementNS(NS, "circle"); c.setAttribute("cx", cx); c.setAttribute("cy", cy); c.setAttribute("r", front(r) ? 5 : 4); g.append(c); }
    const title = document.createElementNS(NS, "title");
    title.textContent = `#${r.rank ?? "–"} ${r.formula}: ${label(xs)} ${fmt(val(r, xs))}, ${label(ys)} ${fmt(val(r, ys))}` +
      (front(r) ? " (Pareto front)" : "") + (ood ? ` — OUT OF DOMAIN: ${targets.map((t) => reasonOf(r, t)).filter(Boolean).join("; ")}` : "");
    g.append(title);
  }
}

// ranked table --------------------------------------------------------------------------------------------
function tableColumns() {
  const { targets } = state.result;
  const cols = [
    { key: "rank", head: "rank", num: true },
    { key: "formula", head: "formula" },
    { key: "_domain", head: "domain", summary: true, num: true },
    { key: "dopant", head: "dopant" },
    { key: "fraction", head: "x", num: true },
    { key: "score", head: "score", num: true },
  ];
  for (const t of targets) {
    const u = targetUnit(t);
    cols.push({ key: `${t}_prediction`, head: `${label(t)} (${u})`, num: true, target: t });
    cols.push({ key: `${t}_std`, head: "std", num: true });
    cols.push({ key: `${t}_lower_90`, head: "90% interval", num: true, interval: t });
    cols.push({ key: `${t}_in_domain`, head: "in domain", domain: t });
    cols.push({ key: `${t}_domain_reason`, head: "reason", reason: t });
    // relative to the reference (the host): present when the model answers changes vs the host
    if (state.result.rows.some((r) => isNum(r[`${t}_delta`]))) {
      cols.push({ key: `${t}_delta`, head: `change vs host (${u})`, num: true, relative: t });
      cols.push({ key: `${t}_delta_lower_90`, head: "change 90% interval", num: true, deltaInterval: t });
      cols.push({ key: `${t}_p_better`, head: "P(better than host)", num: true, relative: t });
      if (state.result.rows.some((r) => isNum(r[`${t}_anchored_prediction`]))) {
        cols.push({ key: `${t}_anchored_prediction`, head: `anchored to your lab (${u})`, num: true, relative: t });
      }
    }
  }
  if (state.result.rows.some((r) => r.pareto_rank !== undefined && r.pareto_rank !== null)) cols.push({ key: "pareto_rank", head: "front", num: true });
  cols.push({ key: "excluded_reason", head: "not ranked because" });
  return cols;
}

function renderTable() {
  const { rows, targets } = state.result;
  const filter = $("#domain-filter").value;
  const ood = (r) => targets.some((t) => !inDomain(r, t));
  for (const r of rows) r._domain = targets.filter((t) => !inDomain(r, t)).length;
  let shown = rows.filter((r) => (filter === "all" ? true : filter === "in" ? !ood(r) : ood(r)));
  const cols = tableColumns();
  if (state.sort) {
    const { key, dir, num } = state.sort;
    shown = [...shown].sort((a, b) => {
      const va = a[key], vb = b[key];
      const na = va === null || va === undefined || va === "", nb = vb === null || vb === undefined || vb === "";
      if (na || nb) return na - nb;
      return (num ? va - vb : String(va).localeCompare(String(vb))) * dir;
    });
  }
  const table = $("#ranked");
  table.replaceChildren();
  const head = el("tr");
  for (const c of cols) {
    const sorted = state.sort && state.sort.key === c.key;
    head.append(el("th", { scope: "col", "aria-sort": sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : null },
      el("button", { type: "button", class: "sort", "data-key": c.key, onclick: () => sortBy(c) },
        c.head, sorted ? (state.sort.dir > 0 ? " ▲" : " ▼") : "")));
  }
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (const r of shown) {
    const isOod = ood(r);
    const tr = el("tr", { class: `${isOod ? "ood-row" : ""}${truthy(r.is_host) ? " host" : ""}`, "data-rank": r.rank ?? "", "data-formula": r.formula });
    for (const c of cols) {
      const v = r[c.key];
      let content = c.num ? fmt(v) : v ?? "";
      let cls = "";
      if (c.key === "formula" && truthy(r.is_host)) content = `${v} (host)`;
      if (c.interval) content = `[${fmt(r[`${c.interval}_lower_90`])}, ${fmt(r[`${c.interval}_upper_90`])}]`;
      if (c.deltaInterval) content = `[${fmt(r[`${c.deltaInterval}_delta_lower_90`])}, ${fmt(r[`${c.deltaInterval}_delta_upper_90`])}]`;
      if (c.domain) {
        const inside = inDomain(r, c.domain);
        content = r[`${c.domain}_error`] ? "error" : inside ? "yes" : "NO: out of domain";
        cls = inside ? "yes" : "no";
      }
      if (c.reason) content = reasonOf(r, c.reason);
      if (c.summary) {
        const out = targets.filter((t) => !inDomain(r, t));
        content = out.length ? `OUT of domain: ${out.map(label).join(", ")}` : "in domain";
        cls = out.length ? "no" : "yes";
      }
      tr.append(el("td", { class: cls || null, "data-col": c.key, "data-value": isNum(v) ? String(v) : null }, String(content)));
    }
    body.append(tr);
  }
  table.append(body);
  $("#table-count").textContent = `${shown.length} of ${rows.length} rows; ${rows.filter(ood).length} out of domain`;
  const link = $("#dl-csv");
  const pq = $("#dl-parquet");
  const job = state.result.job;
  if (state.result.kind === "job" && job.results && job.results.csv) {
    link.href = job.results.csv; link.setAttribute("download", `screen-${job.id}.csv`);
    pq.href = job.results.parquet; pq.hidden = false; pq.setAttribute("download", `screen-${job.id}.parquet`);
  } else {
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([toCsv(rows)], { type: "text/csv" }));
    link.setAttribute("download", "ranked.csv");
    pq.hidden = true;
  }
}

function sortBy(c) {
  const same = state.sort && state.sort.key === c.key;
  state.sort = { key: c.key, dir: same ? -state.sort.dir : 1, num: !!c.num };
  renderTable();
}

function toCsv(rows) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !k.startsWith("_"));
  const q = (v) => {
    if (v === null || v === undefined) return "";
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [keys.join(","), ...rows.map((r) => keys.map((k) => q(r[k])).join(","))].join("\n") + "\n";
}

function renderRejected() {
  const res = state.result.response;
  const list = res && res.rejected ? res.rejected : [];
  const n = res ? res.n_rejected : (state.result.job && state.result.job.counts ? state.result.job.counts.rejected : undefined);
  $("#rejected-count").textContent = n !== undefined ? `(${n}${list.length && list.length < n ? `, first ${list.length} listed` : ""})` : "";
  $("#rejected").replaceChildren(...list.map((x) => el("li", {}, el("code", { text: x.candidate }), `: ${x.reason}`)));
}

// ------------------------------------------------------------------------------------------ predict
function predictItems(text) {
  const items = [];
  const lines = text.split(/\r?\n/);
  const cond = family() && family().kind === "cathode" ? conditions() : null;
  lines.forEach((line, i) => {
    const parts = line.split(/[,\t;]/).map((s) => s.trim());
    if (!parts[0]) return;
    const item = { id: `line ${i + 1}`, formula: parts[0] };
    const names = ["cycles", "current_mA_g", "voltage_low_V", "voltage_high_V"];
    names.forEach((n, j) => {
      const raw = parts[j + 1];
      if (raw !== undefined && raw !== "") item[n] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
      else if (cond && cond[n] !== undefined && parts.length === 1) item[n] = cond[n];
    });
    items.push(item);
  });
  return items;
}

async function runPredict(ev) {
  ev.preventDefault();
  $("#predict-error").textContent = "";
  const targets = [...document.querySelectorAll("#predict-targets input:checked")].map((i) => i.value);
  const items = predictItems($("#predict-input").value);
  if (!items.length) { $("#predict-error").textContent = "Paste at least one formula (one per line)."; return; }
  if (!targets.length) { $("#predict-error").textContent = "Tick at least one target."; return; }
  $("#predict-status").textContent = `Predicting ${items.length} item(s)…`;
  const res = await api("POST", "/v1/predict", { items, targets });
  $("#predict-status").textContent = "";
  const table = $("#predict-table");
  table.replaceChildren();
  if (!res.ok) {
    // a schema error names the item index: show it on that row, and every other row as not sent
    const problems = Array.isArray(res.data && res.data.detail) ? res.data.detail : null;
    if (!problems) { $("#predict-error").textContent = describeError(res); return; }
    const byRow = new Map();
    for (const p of problems) {
      const loc = p.loc || [];
      const idx = loc[0] === "body" && loc[1] === "items" ? loc[2] : undefined;
      const key = Number.isInteger(idx) ? idx : -1;
      byRow.set(key, [...(byRow.get(key) || []), `${loc.slice(3).join(".") || loc.join(".")}: ${p.msg}`]);
    }
    $("#predict-error").textContent = "The request was refused; fix the marked line(s) and predict again.";
    table.append(el("tr", {}, ...["line", "formula", "problem"].map((h) => el("th", { scope: "col", text: h }))));
    items.forEach((it, i) => table.append(el("tr", { class: byRow.has(i) ? "bad" : "" },
      el("td", { text: it.id }), el("td", { text: it.formula }),
      el("td", { "data-col": "error", text: byRow.has(i) ? byRow.get(i).join("; ") : "ok (not sent: another line is invalid)" }))));
    if (byRow.has(-1)) $("#predict-error").textContent += " " + byRow.get(-1).join("; ");
    return;
  }
  const head = el("tr", {}, el("th", { scope: "col", text: "line" }), el("th", { scope: "col", text: "formula" }));
  for (const t of targets) {
    for (const h of [`${label(t)} (${targetUnit(t)})`, "std", "90% interval", "in domain", "reason / error", "model"]) head.append(el("th", { scope: "col", text: h }));
  }
  table.append(head);
  for (const r of res.data.results) {
    const tr = el("tr", { "data-index": r.index }, el("td", { text: r.id || String(r.index + 1) }), el("td", { text: r.formula }));
    let bad = false, ood = false;
    for (const t of targets) {
      const p = r.predictions[t];
      if (p.error) bad = true; else if (!p.in_domain) ood = true;
      tr.append(el("td", { "data-col": `${t}_value`, text: fmt(p.value) }), el("td", { text: fmt(p.std) }),
        el("td", { text: p.error ? "–" : `[${fmt(p.lower_90)}, ${fmt(p.upper_90)}]` }),
        el("td", { class: p.error ? "no" : p.in_domain ? "yes" : "no", text: p.error ? "error" : p.in_domain ? "yes" : "NO: out of domain" }),
        el("td", { "data-col": `${t}_error`, text: p.error || p.domain_reason || "" }), el("td", { text: p.model_version ? `v${p.model_version}` : "" }));
    }
    tr.className = bad ? "bad" : ood ? "ood-row" : "";
    table.append(tr);
  }
}

// ------------------------------------------------------------------------------------------- models
function renderModels() {
  const { meta, models, health } = state;
  const box = $("#models");
  box.replaceChildren();
  const list = el("ul", { class: "models" });
  for (const [t, info] of Object.entries(meta.targets)) {
    const loaded = meta.models[t];
    if (!loaded) {
      list.append(el("li", { class: "missing", "data-target": t }, el("strong", { text: label(t) }), `: no model loaded (${meta.missing[t] || "not configured on this server"})`));
      continue;
    }
    const reg = models.find((m) => m.target === t && m.version === loaded.version) || {};
    const mt = reg.metrics || {};
    const cv = isNum(mt.cv_mae) ? `; grouped-CV MAE ${fmt(mt.cv_mae)} ${info.unit} vs dummy ${fmt(mt.dummy_mae)}` : "";
    const cov = isNum(mt.cv_coverage_90) ? `, 90% interval coverage ${fmt(mt.cv_coverage_90 * 100, 2)}%` : "";
    list.append(el("li", { "data-target": t }, el("strong", { text: label(t) }),
      ` (${info.unit}): model version ${loaded.version}${reg.model ? ` (${reg.model})` : ""}, trained on ` +
      `${loaded.n_training_rows ?? "?"} rows${loaded.n_training_groups ? ` in ${loaded.n_training_groups} groups` : ""}` +
      `${loaded.training_elements ? `, ${loaded.training_elements.length} elements` : ""}${cv}${cov}.`));
  }
  box.append(el("p", { text: `Server: ${health ? health.status : "unreachable"}${health ? `, jobs run on ${health.job_executor}` : ""}.` }), list);
}

// ---------------------------------------------------------------------------------------------- init
function buildPicker() {
  const grid = $("#ptable");
  for (const e of state.meta.elements) {
    if (e.row > 7 && !e.dopable) continue;
    const style = `grid-row:${e.row + (e.row > 7 ? 1 : 0)};grid-column:${e.col}`;
    if (!e.dopable) { grid.append(el("span", { class: "cell off", style, "aria-hidden": "true", text: e.symbol })); continue; }
    grid.append(el("button", {
      type: "button", class: "cell", "data-el": e.symbol, "aria-pressed": "false", style,
      title: `${e.symbol} (Z=${e.z})`, onclick: () => {
        const cur = new Set(selectedDopants());
        if (cur.has(e.symbol)) cur.delete(e.symbol); else cur.add(e.symbol);
        setDopants([...cur]);
      },
    }, e.symbol));
  }
  const groups = $("#groups");
  for (const [name, members] of Object.entries(state.meta.dopant_groups)) {
    groups.append(el("button", { type: "button", "data-group": name, title: members.join(", "), onclick: () => {
      const cur = new Set(selectedDopants());
      const all = members.every((m) => cur.has(m));
      members.forEach((m) => (all ? cur.delete(m) : cur.add(m)));
      setDopants([...cur].filter((d) => state.meta.elements.some((x) => x.symbol === d && x.dopable) || !members.includes(d)));
    } }, label(name)));
  }
  groups.append(el("button", { type: "button", onclick: () => setDopants([]) }, "clear"));
}

async function init() {
  const [meta, health, models] = await Promise.all([api("GET", "/ui/meta"), api("GET", "/health"), api("GET", "/v1/models")]);
  if (!meta.ok) { $("#models").textContent = `Cannot read /ui/meta: ${describeError(meta)}`; return; }
  state.meta = meta.data;
  state.health = health.ok ? health.data : null;
  state.models = models.ok ? models.data.models : [];
  $("#key-needed").textContent = state.meta.api_key_required ? "(this server needs one to run or cancel jobs)" : "";
  $("#api-key").value = apiKey();
  renderModels();
  $("#family").replaceChildren(...state.meta.families.map((f) => el("option", { value: f.name, text: `${f.name}: ${f.description}` })));
  $("#compensation").replaceChildren(...state.meta.compensation_modes.map((c) => el("option", { value: c, text: c.replace(/_/g, " ") })));
  $("#predict-targets").replaceChildren(...Object.keys(state.meta.targets).map((t) => {
    const loaded = t in state.meta.models;
    return el("label", {}, el("input", { type: "checkbox", value: t, checked: loaded, disabled: !loaded }), ` ${label(t)}${loaded ? "" : " (no model)"}`);
  }));
  buildPicker();
  $("#family").addEventListener("change", onFamilyChange);
  $("#dopants-text").addEventListener("input", syncPicker);
  $("#screen-form").addEventListener("submit", runScreen);
  $("#cancel").addEventListener("click", cancelJob);
  $("#predict-form").addEventListener("submit", runPredict);
  $("#heat-target").addEventListener("change", () => { renderHeatmap(); renderFractionMap(); });
  $("#px").addEventListener("change", renderPareto);
  $("#py").addEventListener("change", renderPareto);
  $("#domain-filter").addEventListener("change", renderTable);
  document.querySelectorAll(".preset").forEach((b) => b.addEventListener("click", () => fillForm(PRESETS[b.dataset.preset])));
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("#api-key").value.trim();
    if (v) sessionStorage.setItem(KEY_STORE, v); else sessionStorage.removeItem(KEY_STORE);
    setStatus(v ? "API key kept for this browser session." : "API key cleared.");
  });
  $("#key-forget").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORE); $("#api-key").value = ""; setStatus("API key cleared."); });

  fillForm(PRESETS.p2);
  const params = new URLSearchParams(location.search);
  const hash = location.hash.startsWith("#screen=") ? location.hash.slice(8) : "";
  if (params.get("job")) {
    await followJob(params.get("job"), null);
  } else if (hash) {
    try { fillForm(JSON.parse(decodeURIComponent(hash))); await runScreen(); } catch (e) { formError(`The link's screen could not be read: ${e.message}`); }
  }
  document.body.dataset.ready = "true";
}

init();
