// mooncake-rs dashboard: polls the admin port's JSON endpoints and fills the page.
// Every number is also kept raw in the element's data-value, so tests (and scripts) can
// compare it with /health and /metrics.
"use strict";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let previous = null; // { at, put, get }: the last sample, for rates
let refreshes = 0;

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toString() : v.toFixed(1)) + " " + units[i];
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 0.001) return "≤ " + (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return "≤ " + (s * 1e3).toFixed(s < 0.01 ? 1 : 0) + " ms";
  return "≤ " + s.toFixed(1) + " s";
}

// Shows `text` in element `id` and keeps `raw` in its data-value.
function show(id, raw, text) {
  const el = $(id);
  el.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  el.textContent = text === undefined ? String(raw) : text;
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  return { ok: r.ok, status: r.status, body };
}

function renderOverview(h, s) {
  const role = $("role");
  role.textContent = h.role + (h.ha_state === "standalone" ? "" : " · " + h.ha_state);
  role.dataset.value = h.role;
  role.className = "pill " + h.role;
  show("this-master", s.rpc_address);
  show("ha-state", h.ha_state);
  show("service-ready", h.service_ready, h.service_ready ? "yes" : "no");
  show("leader", h.leader_address, h.leader_address || "none known");
  show("view-version", h.view_version, h.view_version === null ? "–" : String(h.view_version));
  show("cluster-id", s.cluster_id);
  const standby = h.role !== "leader";
  $("standby-banner").hidden = !standby;
  $("standby-leader").textContent = h.leader_address
    ? h.leader_address + " (view " + h.view_version + ")" : "not known yet (election under way)";
  const link = $("leader-link");
  link.hidden = !(standby && s.leader_dashboard_url);
  if (s.leader_dashboard_url) link.href = s.leader_dashboard_url;
}

function renderMasters(s) {
  const list = $("masters");
  if (!s.masters) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = s.ha_state === "standalone"
      ? "no HA: this master serves alone" : "the coordinator does not answer";
    list.replaceChildren(li);
    return;
  }
  list.replaceChildren(...s.masters.map((m) => {
    const li = document.createElement("li");
    li.dataset.rpc = m.rpc_address;
    li.dataset.leader = String(m.leader);
    li.className = (m.leader ? "leader" : "standby") +
      (m.rpc_address === s.rpc_address ? " self" : "");
    const a = document.createElement("a");
    a.href = m.dashboard_url;
    a.textContent = m.rpc_address;
    li.append(a, " " + (m.leader ? "leader" : "standby") +
      (m.rpc_address === s.rpc_address ? " (this page)" : ""));
    return li;
  }));
}

function renderCounts(h) {
  show("keys", h.keys);
  show("segment-count", h.segments);
  show("clients", h.clients);
  show("allocated-bytes", h.allocated_bytes, bytes(h.allocated_bytes));
  show("capacity-bytes", h.capacity_bytes, bytes(h.capacity_bytes));
  const pct = h.capacity_bytes > 0 ? (100 * h.allocated_bytes) / h.capacity_bytes : 0;
  const bar = $("capacity-bar");
  bar.style.width = pct.toFixed(1) + "%";
  bar.className = pct >= 90 ? "high" : "";
  show("evictions", h.successful_evictions_total);
  show("evicted-keys", h.evicted_keys_total);
  show("evicted-bytes", h.evicted_bytes_total, bytes(h.evicted_bytes_total));
}

function renderOps(s) {
  const put = s.ops.puts, get = s.ops.get_replica_list;
  const now = Date.now();
  for (const [name, op] of [["put", put], ["get", get]]) {
    show(name + "-total", op.requests_total);
    show(name + "-failures", op.failures_total);
    show(name + "-p99", op.latency_p99_seconds, seconds(op.latency_p99_seconds));
    let rate = "…";
    if (previous) {
      const dt = (now - previous.at) / 1000;
      const d = op.requests_total - previous[name];
      rate = dt > 0 && d >= 0 ? (d / dt).toFixed(1) : "–";
    }
    $(name + "-rate").textContent = rate;
  }
  previous = { at: now, put: put.requests_total, get: get.requests_total };
}

function segmentRow(seg) {
  const row = document.createElement("div");
  row.className = "segment";
  row.dataset.name = seg.name;
  row.dataset.used = String(seg.used_bytes);
  row.dataset.capacity = String(seg.capacity_bytes);
  const pct = seg.capacity_bytes > 0 ? (100 * seg.used_bytes) / seg.capacity_bytes : 0;
  const name = document.createElement("div");
  name.className = "name";
  const code = document.createElement("code");
  code.textContent = seg.name;
  const usage = document.createElement("span");
  usage.textContent = bytes(seg.used_bytes) + " / " + bytes(seg.capacity_bytes) +
    " (" + pct.toFixed(1) + "%)" + (seg.allocatable ? "" : " · draining");
  name.append(code, usage);
  const bar = document.createElement("div");
  bar.className = "bar";
  const fill = document.createElement("div");
  fill.style.width = pct.toFixed(1) + "%";
  if (pct >= 90) fill.className = "high";
  bar.append(fill);
  row.append(name, bar);
  return row;
}

function renderSegments(r, h) {
  const list = $("segments"), note = $("segments-note");
  if (!r.ok || !r.body) {
    list.replaceChildren();
    note.hidden = false;
    note.textContent = h.role === "leader"
      ? "segments not available (HTTP " + r.status + ")"
      : "Segments are listed by the leader" +
        (h.leader_address ? " (" + h.leader_address + ")" : "") + ".";
    return;
  }
  note.hidden = r.body.segments.length > 0;
  note.textContent = "No segment mounted yet.";
  const segs = r.body.segments.slice().sort((a, b) => a.name.localeCompare(b.name));
  list.replaceChildren(...segs.map(segmentRow));
}

async function refresh() {
  try {
    const [h, s, segs] = await Promise.all([
      getJson("/health"), getJson("/api/v1/stats"), getJson("/get_segments_detail"),
    ]);
    if (!h.ok || !s.ok) throw new Error("/health HTTP " + h.status + ", /api/v1/stats HTTP " + s.status);
    renderOverview(h.body, s.body);
    renderMasters(s.body);
    renderCounts(h.body);
    renderOps(s.body);
    renderSegments(segs, h.body);
    $("error-banner").hidden = true;
    refreshes++;
    document.body.dataset.refreshes = String(refreshes);
    document.body.dataset.state = "live";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.body.dataset.state = "error";
    const banner = $("error-banner");
    banner.hidden = false;
    banner.textContent = "Cannot reach this master: " + e.message + " (retrying)";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
