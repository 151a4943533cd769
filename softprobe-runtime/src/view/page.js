// The softprobe case page. It draws what its own origin serves as JSON: one case
// (`case.json`, with its drift when a `.new` exists) or, on the runtime's `/ui`, the open
// sessions and the hops of the selected one, polled once a second. Every value is put in
// the DOM as text, never as markup.
"use strict";

const body = document.body;
const mode = body.dataset.mode;
const base = body.dataset.base;
const $ = (id) => document.getElementById(id);

const state = {
  hops: [],
  drift: null,
  visible: [],
  selected: -1,
  open: -1,
  tab: "hops",
  session: null,
  sessionsKey: "",
  hopsKey: "",
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ---- theme ----
function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}
function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : window.matchMedia("(prefers-color-scheme: dark)").matches;
  const next = dark ? "light" : "dark";
  try { localStorage.setItem("softprobe-theme", next); } catch (_) { /* private mode */ }
  applyTheme(next);
}
try { applyTheme(localStorage.getItem("softprobe-theme")); } catch (_) { /* private mode */ }

// ---- fetching ----
function token() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    try { sessionStorage.setItem("softprobe-token", decodeURIComponent(m[1])); } catch (_) { /* */ }
    history.replaceState(null, "", location.pathname + location.search);
  }
  try { return sessionStorage.getItem("softprobe-token"); } catch (_) { return null; }
}

async function getJson(path) {
  const headers = { accept: "application/json" };
  const t = mode === "live" ? token() : null;
  if (t) headers.authorization = "Bearer " + t;
  const resp = await fetch(base + path, { headers, cache: "no-store" });
  const data = await resp.json();
  if (resp.status === 401 || resp.status === 403) {
    $("token-form").hidden = false;
    throw new Error((data.error && data.error.message) || "the runtime wants its bearer token");
  }
  if (!resp.ok) throw new Error(data.error && data.error.message ? data.error.message : (data.error || resp.statusText));
  return data;
}

function showError(e) {
  $("error").hidden = !e;
  $("error").textContent = e ? String(e.message || e) : "";
}

// ---- formatting ----
function statusClass(s) { return s ? "s" + String(s)[0] : "snone"; }
function ms(v) { return v >= 100 ? v.toFixed(0) + " ms" : v.toFixed(1) + " ms"; }
function statusMatches(hop, f) {
  if (!f) return true;
  if (f === "none") return !hop.status;
  return hop.status && String(hop.status)[0] === f;
}

function bodyText(b) {
  if (!b) return "";
  if (b.kind === "json") return JSON.stringify(b.json);
  if (b.kind === "text") return b.text;
  return "";
}

function hopText(hop) {
  return [hop.method, hop.url, hop.host, hop.status, bodyText(hop.request.body), bodyText(hop.response.body)]
    .join(" ").toLowerCase();
}

function valueNode(v) {
  if (v === "[REDACTED]") return el("span", { class: "redacted", title: "redacted before it was written" }, "[REDACTED]");
  if (v === null) return el("span", { class: "lit" }, "null");
  if (typeof v === "string") return el("span", { class: "str" }, JSON.stringify(v));
  if (typeof v === "number") return el("span", { class: "num" }, String(v));
  return el("span", { class: "lit" }, String(v));
}

// Pretty JSON whose objects and arrays fold (native <details>), redacted values marked.
function jsonNode(v, key, depth) {
  const label = key === undefined ? [] : [el("span", { class: "k" }, JSON.stringify(key)), ": "];
  if (v && typeof v === "object") {
    const isArr = Array.isArray(v);
    const entries = isArr ? v.map((x, i) => [i, x]) : Object.entries(v);
    const open = isArr ? "[" : "{";
    const close = isArr ? "]" : "}";
    if (entries.length === 0) return el("div", { class: "row" }, label, open + close);
    const d = el("details", { open: depth < 3 },
      el("summary", {}, label, open, el("span", { class: "muted" }, " " + entries.length + (isArr ? " items" : " keys") + " ")));
    for (const [k, x] of entries) d.append(jsonNode(x, isArr ? undefined : k, depth + 1));
    d.append(el("div", {}, close));
    return d;
  }
  return el("div", { class: "row" }, label, valueNode(v));
}

function bodyNode(b) {
  if (!b) return el("p", { class: "muted" }, "(no body)");
  if (b.kind === "binary") {
    return el("p", { class: "binary" }, el("span", { class: "badge" }, "binary"), " " + b.bytes + " bytes, sha256 ",
      el("code", {}, b.sha256));
  }
  const head = el("p", { class: "muted" }, b.kind + ", " + b.bytes + " bytes",
    b.redacted ? el("span", { class: "redacted" }, " has redacted values") : null);
  if (b.kind === "json") {
    const folded = el("pre", { class: "body json" }, jsonNode(b.json, undefined, 0));
    return el("div", {}, head, folded);
  }
  return el("div", {}, head, el("pre", { class: "body text" }, b.text));
}

function headersNode(headers) {
  if (!headers.length) return el("p", { class: "muted" }, "(no headers)");
  return el("table", { class: "headers" },
    headers.map((h) => el("tr", {},
      el("td", { class: "hname" }, h.name),
      el("td", { class: "hval" }, h.redacted ? el("span", { class: "redacted" }, h.value) : h.value))));
}

// ---- hops ----
function fillHosts() {
  const sel = $("filter-host");
  const chosen = sel.value;
  const hosts = [...new Set(state.hops.map((h) => h.host || "(inbound)"))].sort();
  sel.replaceChildren(el("option", { value: "" }, "all hosts"), ...hosts.map((h) => el("option", { value: h }, h)));
  sel.value = hosts.includes(chosen) ? chosen : "";
}

function renderHops() {
  const q = $("search").value.trim().toLowerCase();
  const dir = $("filter-direction").value;
  const host = $("filter-host").value;
  const st = $("filter-status").value;
  state.visible = state.hops.filter((h) =>
    (!dir || h.direction === dir) && (!host || (h.host || "(inbound)") === host) &&
    statusMatches(h, st) && (!q || hopText(h).includes(q)));
  const end = Math.max(1e-6, ...state.hops.map((h) => h.startMs + h.durationMs));
  $("axis").replaceChildren(el("span", {}, "direction"), el("span", {}, "method"), el("span", {}, "status"),
    el("span", {}, "url"), el("span", { class: "ticks" }, el("span", {}, "0 ms"), el("span", {}, ms(end / 2)),
      el("span", {}, ms(end))), el("span", {}, "takes"));
  const list = $("hops");
  list.replaceChildren(...state.visible.map((h, pos) => {
    const left = (100 * h.startMs) / end;
    const width = Math.max(0.4, (100 * h.durationMs) / end);
    const bar = el("span", { class: "bar", title: ms(h.startMs) + " + " + ms(h.durationMs) });
    bar.style.left = left + "%";
    bar.style.width = Math.min(width, 100 - left) + "%";
    return el("li", {
      class: "hop", "data-index": h.index, "data-direction": h.direction, "data-kind": h.kind,
      "aria-selected": pos === state.selected ? "true" : "false",
      onclick: () => { state.selected = pos; openHop(h.index); },
    },
    el("span", { class: "dir" }, h.direction),
    el("span", { class: "method" }, h.method),
    el("span", { class: "status " + statusClass(h.status) }, h.status || "—"),
    el("span", { class: "url", title: h.url }, h.kind !== "http" ? el("span", { class: "kind" }, h.kind) : null, h.url),
    el("span", { class: "track" }, bar), el("span", { class: "ms" }, ms(h.durationMs)));
  }));
  $("hops-empty").hidden = state.visible.length > 0;
  $("count").textContent = state.visible.length + " of " + state.hops.length + " hops";
}

function openHop(index) {
  const h = state.hops.find((x) => x.index === index);
  const detail = $("detail");
  if (!h) { closeHop(); return; }
  state.open = index;
  const pos = state.visible.findIndex((x) => x.index === index);
  if (pos >= 0) state.selected = pos;
  for (const li of $("hops").children) {
    li.setAttribute("aria-selected", Number(li.dataset.index) === index ? "true" : "false");
  }
  detail.hidden = false;
  $("panes").classList.remove("closed");
  detail.dataset.hop = index;
  detail.replaceChildren(
    el("button", { class: "close", type: "button", title: "Close (Esc)", onclick: closeHop }, "×"),
    el("h3", {}, h.method + " " + h.url),
    el("p", {}, el("span", { class: "badge" }, h.direction), " ", el("span", { class: "badge" }, h.kind), " ",
      el("span", { class: "status " + statusClass(h.status) }, h.status ? "status " + h.status : "no answer"),
      " · starts at " + ms(h.startMs) + ", takes " + ms(h.durationMs)),
    el("dl", { class: "ids" },
      el("dt", {}, "trace id"), el("dd", { class: "trace-id" }, h.traceId),
      el("dt", {}, "span id"), el("dd", { class: "span-id" }, h.spanId),
      el("dt", {}, "parent span"), el("dd", {}, h.parentSpanId || "—"),
      el("dt", {}, "service"), el("dd", {}, h.service || "—"),
      el("dt", {}, "session"), el("dd", {}, h.sessionId || "—")),
    el("h2", {}, "Request headers"), headersNode(h.request.headers),
    el("h2", {}, "Request body"), bodyNode(h.request.body),
    el("h2", {}, "Response headers"), headersNode(h.response.headers),
    el("h2", {}, "Response body"), el("div", { class: "response-body" }, bodyNode(h.response.body)));
  if (location.hash !== "#hop=" + index) history.replaceState(null, "", "#hop=" + index);
}

function closeHop() {
  state.open = -1;
  $("detail").hidden = true;
  $("panes").classList.add("closed");
  if (location.hash.startsWith("#hop=")) history.replaceState(null, "", location.pathname + location.search);
}

// ---- drift ----
function showValue(v) {
  if (v === null || v === undefined) return el("span", { class: "muted" }, "(absent)");
  return typeof v === "string" ? v : JSON.stringify(v);
}

function renderDrift() {
  const pane = $("drift-pane");
  const d = state.drift;
  if (!d) { pane.replaceChildren(); $("tab-drift").hidden = true; return; }
  const counts = { same: 0, changed: 0, added: 0, removed: 0 };
  for (const h of d.hops) counts[h.change]++;
  const rows = [];
  for (const h of d.hops) {
    rows.push(el("tr", { class: "drift-row drift-" + h.change, "data-change": h.change },
      el("td", { class: "change" }, h.change),
      el("td", { class: "hop-label", colspan: 3 }, h.hop)));
    for (const f of h.fields || []) {
      rows.push(el("tr", { class: "drift-field" },
        el("td", {}),
        el("td", { class: "field" }, f.field),
        el("td", { class: "expected" }, showValue(f.expected)),
        el("td", { class: "actual" }, showValue(f.actual))));
    }
  }
  pane.replaceChildren(
    el("p", { class: "summary" }, d.equal ? "No drift: the two cases hold the same hops. " : "",
      counts.changed + " changed, " + counts.added + " added, " + counts.removed + " removed, " + counts.same + " the same, against ",
      el("code", {}, d.against)),
    el("table", { class: "drift" },
      el("tr", {}, el("th", {}, "hop"), el("th", {}, "field"), el("th", {}, "recorded"), el("th", {}, "actual")),
      rows));
  $("tab-drift").hidden = false;
  $("tab-drift").textContent = "Drift (" + counts.changed + " changed, " + counts.added + " added, " + counts.removed + " removed)";
}

function setTab(tab) {
  if (tab === "drift" && !state.drift) tab = "hops";
  state.tab = tab;
  $("tab-hops").setAttribute("aria-selected", tab === "hops");
  $("tab-drift").setAttribute("aria-selected", tab === "drift");
  $("hops-pane").hidden = tab !== "hops";
  $("toolbar").hidden = tab !== "hops";
  $("drift-pane").hidden = tab !== "drift";
  if (tab === "drift") { $("detail").hidden = true; $("panes").classList.add("closed"); }
  else if (state.open >= 0) openHop(state.open);
}

// ---- loading ----
function show(data) {
  state.hops = data.hops || [];
  state.drift = data.drift || null;
  $("title").textContent = data.title || "softprobe";
  document.title = (data.title || "case") + " · softprobe";
  $("subtitle").textContent = [data.caseId && "case " + data.caseId, data.createdAt && "recorded " + data.createdAt,
    state.hops.length + " hops"].filter(Boolean).join(" · ");
  fillHosts();
  renderHops();
  renderDrift();
  body.dataset.loaded = "true";
}

async function loadCase() {
  try {
    const data = await getJson("case.json");
    show(data);
    const m = /^#hop=(\d+)/.exec(location.hash);
    if (location.hash === "#drift" || (state.drift && !state.drift.equal && !m)) setTab("drift");
    if (m) openHop(Number(m[1])); else closeHop();
    showError(null);
  } catch (e) { showError(e); }
}

function renderSessions(list) {
  const key = JSON.stringify(list);
  if (key === state.sessionsKey) return;
  state.sessionsKey = key;
  $("session-empty").hidden = list.length > 0;
  $("session-list").replaceChildren(...list.map((s) => el("li", {
    class: "session", "data-session": s.sessionId, "aria-selected": s.sessionId === state.session ? "true" : "false",
    onclick: () => { state.session = s.sessionId; state.hopsKey = ""; state.sessionsKey = ""; pollLive(); },
  }, el("div", { class: "sid" }, s.sessionId),
  el("div", { class: "muted" }, s.mode + " · " + s.hops + " hops" + (s.caseId ? " · " + s.caseId : "")))));
}

async function pollLive() {
  try {
    const data = await getJson("api/sessions");
    const list = data.sessions || [];
    if (!list.some((s) => s.sessionId === state.session)) state.session = list.length ? list[0].sessionId : null;
    renderSessions(list);
    if (state.session) {
      const s = await getJson("api/sessions/" + encodeURIComponent(state.session));
      const key = JSON.stringify(s.hops);
      if (key !== state.hopsKey) {
        state.hopsKey = key;
        show(s);
        if (state.open >= 0) openHop(state.open);
      }
    } else {
      show({ title: "softprobe runtime", hops: [] });
    }
    $("token-form").hidden = true;
    showError(null);
  } catch (e) { showError(e); }
}

// ---- keys and controls ----
function move(delta) {
  if (!state.visible.length) return;
  state.selected = Math.max(0, Math.min(state.visible.length - 1, state.selected + delta));
  const h = state.visible[state.selected];
  for (const li of $("hops").children) li.setAttribute("aria-selected", Number(li.dataset.index) === h.index ? "true" : "false");
  const li = $("hops").querySelector('[data-index="' + h.index + '"]');
  if (li) li.scrollIntoView({ block: "nearest" });
  if (state.open >= 0) openHop(h.index);
}

document.addEventListener("keydown", (e) => {
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
  if (e.key === "Escape") {
    if (typing) { e.target.blur(); return; }
    closeHop(); return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "j" || e.key === "ArrowDown") { move(1); e.preventDefault(); }
  else if (e.key === "k" || e.key === "ArrowUp") { move(-1); e.preventDefault(); }
  else if (e.key === "Enter" && state.selected >= 0) { openHop(state.visible[state.selected].index); }
  else if (e.key === "/") { $("search").focus(); e.preventDefault(); }
  else if (e.key === "d") { setTab(state.tab === "drift" ? "hops" : "drift"); }
  else if (e.key === "t") { toggleTheme(); }
});

for (const id of ["search", "filter-direction", "filter-host", "filter-status"]) {
  $(id).addEventListener("input", () => { state.selected = -1; renderHops(); });
}
$("theme").addEventListener("click", toggleTheme);
$("tab-hops").addEventListener("click", () => setTab("hops"));
$("tab-drift").addEventListener("click", () => setTab("drift"));
$("token-save").addEventListener("click", () => {
  try { sessionStorage.setItem("softprobe-token", $("token-input").value); } catch (_) { /* */ }
  pollLive();
});

window.addEventListener("hashchange", () => {
  const m = /^#hop=(\d+)/.exec(location.hash);
  if (m) { setTab("hops"); openHop(Number(m[1])); }
  else if (location.hash === "#drift") setTab("drift");
});

if (mode === "live") {
  $("sessions").hidden = false;
  pollLive();
  setInterval(pollLive, 1000);
} else {
  loadCase();
}
