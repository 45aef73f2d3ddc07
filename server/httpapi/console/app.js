// qxd console: one page, six views, each refreshed with fetch + setInterval
// (no page reload).
"use strict";

const $ = (id) => document.getElementById(id);
let view = "cluster", timer = null;
let me = { secured: false }; // who the console speaks for (GET /api/me)
let topic = null, group = null, lagHistory = [];
let browseNext = null;

async function api(method, path, body) {
  const opt = { method, headers: {} };
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const resp = await fetch("/api" + path, opt);
  const data = await resp.json().catch(() => ({ error: "HTTP " + resp.status }));
  if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
  return data;
}

function status(msg, err) {
  const s = $("status");
  s.textContent = msg;
  s.className = err ? "err" : "";
}

// row appends a table row of cells (strings, or nodes) to tbody.
function row(tbody, cells, onclick) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c);
    tr.appendChild(td);
  }
  if (onclick) { tr.className = "pick"; tr.addEventListener("click", onclick); }
  tbody.appendChild(tr);
  return tr;
}

function clear(id) {
  const tb = document.querySelector("#" + id + " tbody");
  tb.replaceChildren();
  return tb;
}

function shown(b) {
  if (!b) return el("span", "null", "fmt");
  const d = document.createElement("div");
  const pre = document.createElement("pre");
  pre.textContent = b.data + (b.truncated ? "\n… (" + b.size + " bytes, cut)" : "");
  d.appendChild(pre);
  let fmt = b.format + ", " + b.size + " B";
  if (b.hex) fmt += " — hex " + b.hex.slice(0, 64) + (b.hex.length > 64 ? "…" : "");
  d.appendChild(el("span", fmt, "fmt"));
  return d;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// parseKV reads "a=1, b=2" into {a: "1", b: "2"}.
function parseKV(s) {
  const out = {};
  for (const part of s.split(",")) {
    const p = part.trim();
    if (!p) continue;
    const i = p.indexOf("=");
    if (i < 1) throw new Error("config " + JSON.stringify(p) + ": write key=value, comma-separated");
    out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}

// can reports whether the signed-in user has right op ("admin", "consume",
// "groups") on name, as the node checks it; on a node without users, always.
function can(op, name) {
  if (!me.secured) return true;
  const l = (me.grant && me.grant[op]) || [];
  return l.includes("*") || (name !== undefined && l.includes(name));
}

async function refreshCluster() {
  const c = await api("GET", "/cluster");
  $("node").textContent = "node " + c.node + " · sync " + c.sync + (me.secured ? " · user " + me.user : "");
  $("cluster-summary").textContent = (c.name ? "cluster " + c.name + ", " : "") +
    "meta leader " + (c.meta_leader || "none") + ", " + c.partitions + " partitions, " +
    (c.under_replicated || []).length + " under-replicated";
  const tb = clear("nodes");
  for (const n of c.nodes || []) {
    row(tb, [n.name, el("span", n.up ? "up" : "down", n.up ? "up" : "down"), n.leaders, n.replicas, n.lag || 0, n.sync || ""]);
  }
  const ub = clear("under");
  for (const u of c.under_replicated || []) {
    row(ub, [u.topic + "/" + u.partition, u.leader || "none", u.current + " / " + u.replicas, (u.out_of_sync || []).join(", ")]);
  }
}

async function refreshTopics() {
  const ts = await api("GET", "/topics");
  const tb = clear("topics");
  for (const t of ts) {
    row(tb, [t.name, t.config.partitions, t.config.replicas, t.state, (t.overrides || []).join(", ")],
      () => { topic = t.name; refreshTopic(); });
  }
  // Forms for changes the user may not make are hidden; the node refuses them anyway.
  const anyAdmin = !me.secured || ((me.grant && me.grant.admin) || []).length > 0;
  $("create-form").hidden = !anyAdmin;
  $("readonly").hidden = anyAdmin;
  $("readonly").textContent = "User " + me.user + " has no admin right on any topic: the console only reads here.";
  if (topic) await refreshTopic();
}

async function refreshTopic() {
  let d;
  try { d = await api("GET", "/topics/" + encodeURIComponent(topic)); }
  catch (e) { $("topic-detail").hidden = true; topic = null; throw e; }
  $("topic-detail").hidden = false;
  $("topic-title").textContent = "Topic " + d.topic.name + " (id " + d.topic.id + ")";
  const admin = can("admin", d.topic.name);
  for (const f of document.querySelectorAll("#topic-detail form.mutate")) f.hidden = !admin;
  $("topic-readonly").hidden = admin;
  $("topic-readonly").textContent = "User " + me.user + " has no admin right on topic " + d.topic.name + ": it cannot be changed or deleted here.";
  $("topic-config").textContent = configText(d.topic);
  if (document.activeElement !== $("partitions-total")) $("partitions-total").value = d.topic.config.partitions;
  const tb = clear("partitions");
  for (const p of d.partitions || []) {
    row(tb, [p.partition, p.leader, (p.replicas || []).join(", "), (p.in_sync || []).join(", "),
      p.log_start_offset, p.high_watermark, p.records, p.bytes]);
  }
}

// configText shows a topic's config, durations and sizes readable, overrides marked.
function configText(t) {
  const c = t.config, over = new Set(t.overrides || []);
  const dur = (ns) => ns < 0 ? "forever" : (ns % 86400e9 === 0 ? ns / 86400e9 + "d" : ns / 1e9 + "s");
  const size = (b) => b < 0 ? "unlimited" : b + " B";
  const lines = [
    ["retention", dur(c.retention)],
    ["retention-bytes", size(c.retention_bytes)],
    ["max-record-bytes", size(c.max_message_bytes)],
  ];
  if (c.compact) lines.push(["compact", "true"], ["delete-retention", dur(c.delete_retention)]);
  if (c.durability) lines.push(["durability", c.durability]);
  return lines.map(([k, v]) => k + " = " + v + (over.has(k) ? "   (set)" : "")).join("\n");
}

async function refreshGroups() {
  const gs = await api("GET", "/groups");
  const tb = clear("groups");
  for (const g of gs) {
    row(tb, [g.group, g.state, g.members], () => { group = g.group; lagHistory = []; refreshGroup(); });
  }
  if (group) await refreshGroup();
}

async function refreshGroup() {
  const d = await api("GET", "/groups/" + encodeURIComponent(group));
  $("group-detail").hidden = false;
  $("group-title").textContent = "Group " + d.group;
  $("group-summary").textContent = "state " + d.state + ", generation " + d.generation +
    (d.protocol ? ", protocol " + d.protocol : "") + (d.leader ? ", leader " + d.leader : "");
  const mb = clear("members");
  for (const m of d.members || []) {
    row(mb, [m.member_id, m.client_id || "", (m.partitions || []).map((tp) => tp.topic + "/" + tp.partition).join(", ")]);
  }
  const lb = clear("lag");
  let total = 0;
  for (const p of d.partitions || []) {
    total += p.lag;
    row(lb, [p.topic + "/" + p.partition, p.committed < 0 ? "none" : p.committed, p.log_start_offset, p.high_watermark, p.lag, p.member || "", p.note || ""]);
  }
  $("lag-total").textContent = "(total " + total + ")";
  // Seeking takes an empty group, the group right and consume on the topic.
  const empty = d.state === "Empty" || d.state === "Dead";
  $("seek-form").hidden = !empty || !can("groups", d.group);
  $("seek-note").hidden = empty && can("groups", d.group);
  $("seek-note").textContent = !can("groups", d.group) ? "User " + me.user + " has no right on group " + d.group + "." :
    "Seek needs the group empty: it is " + d.state + " with " + (d.members || []).length + " members. Stop its consumers first.";
  if (!$("seek-topic").value && d.partitions && d.partitions.length) $("seek-topic").value = d.partitions[0].topic;
  lagHistory.push(total);
  if (lagHistory.length > 120) lagHistory.shift();
  drawLag();
}

// drawLag plots the group's total lag over the last refreshes.
function drawLag() {
  const cv = $("lag-chart"), g = cv.getContext("2d");
  g.clearRect(0, 0, cv.width, cv.height);
  const max = Math.max(1, ...lagHistory);
  g.strokeStyle = "#1d3557";
  g.beginPath();
  lagHistory.forEach((v, i) => {
    const x = (i / 119) * (cv.width - 10) + 5, y = cv.height - 5 - (v / max) * (cv.height - 20);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#222";
  g.fillText("max " + max, 5, 12);
}

async function refreshBrowseTopics() {
  const sel = $("browse-topic"), cur = sel.value;
  const ts = await api("GET", "/topics");
  sel.replaceChildren();
  for (const t of ts) {
    const o = el("option", t.name);
    o.value = t.name;
    sel.appendChild(o);
  }
  if (cur) sel.value = cur;
}

async function browse(offset) {
  const t = $("browse-topic").value;
  if (!t) throw new Error("no topic to browse: create one first");
  const q = new URLSearchParams();
  const off = offset !== undefined ? String(offset) : $("browse-offset").value.trim();
  const tm = $("browse-time").value.trim();
  if (off) q.set("offset", off); else if (tm) q.set("time", tm);
  q.set("limit", $("browse-limit").value || "50");
  const r = await api("GET", "/topics/" + encodeURIComponent(t) + "/partitions/" +
    encodeURIComponent($("browse-partition").value) + "/records?" + q);
  $("browse-summary").textContent = r.records.length + " records of " + r.topic + "/" + r.partition +
    " from offset " + r.from + " (log start " + r.log_start_offset + ", high watermark " + r.high_watermark + ")";
  browseNext = r.next < r.high_watermark ? r.next : null;
  $("browse-next").disabled = browseNext === null;
  const tb = clear("records");
  for (const rec of r.records) {
    const hs = document.createElement("div");
    for (const h of rec.headers) { hs.appendChild(el("div", h.key + ":")); hs.appendChild(shown(h.value)); }
    row(tb, [rec.offset, rec.timestamp, shown(rec.key), shown(rec.value), hs]);
  }
}

async function refreshBridges() {
  const v = await api("GET", "/bridges");
  $("bridges-summary").textContent = v.bridges.length + " bridges" + (v.runner ? ", run by node " + v.runner : "");
  const tb = clear("bridges");
  for (const x of v.bridges) {
    const b = x.bridge, st = x.status;
    const ends = b.kind === "ingest" ? (b.stream || b.from || "") + (b.capture ? " (capture)" : "") : (b.to || b.subject || "");
    row(tb, [b.name, b.kind, ends, b.topic, st ? st.node : "not running", st ? new Date(st.since).toLocaleString() : "",
      st ? st.messages : "", st ? st.failed : "", st && st.backlog ? st.backlog : "", (st && st.last_error) || x.error || ""]);
  }
}

async function refreshEvents() {
  const evs = await api("GET", "/events");
  const tb = clear("events");
  for (const e of evs) {
    const where = e.topic !== undefined && e.topic !== "" ? e.topic + "/" + e.partition : e.stream;
    const reps = (e.replicas || []).map((r) => r.name + (r.offline ? " (offline)" : r.current ? "" : " (behind)")).join(", ");
    const tr = row(tb, [new Date(e.time).toLocaleTimeString(), e.what, e.kind, where, e.consumer || "", e.leader || "", reps]);
    if (e.what === "quorum lost") tr.className = "bad";
  }
}

const refreshers = {
  cluster: refreshCluster,
  topics: refreshTopics,
  records: refreshBrowseTopics,
  groups: refreshGroups,
  bridges: refreshBridges,
  events: refreshEvents,
};
const intervals = { cluster: 5000, topics: 5000, records: 0, groups: 2000, bridges: 5000, events: 2000 };

async function refresh() {
  try {
    await refreshers[view]();
    status("updated " + new Date().toLocaleTimeString());
  } catch (e) {
    status(e.message, true);
  }
}

async function show(v) {
  view = refreshers[v] ? v : "cluster";
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== "page-" + view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.id === "nav-" + view);
  clearInterval(timer);
  if (view !== "cluster") await refreshCluster().catch(() => {});
  await refresh();
  if (intervals[view]) timer = setInterval(refresh, intervals[view]);
}

// act runs a change and reports its outcome.
async function act(what, fn) {
  try {
    await fn();
    status(what + ": done");
    await refresh();
  } catch (e) {
    status(e.message.startsWith(what) ? e.message : what + ": " + e.message, true);
  }
}

$("create-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("create topic", async () => {
    const body = {
      name: $("create-name").value.trim(),
      partitions: Number($("create-partitions").value),
      replicas: Number($("create-replicas").value),
      config: parseKV($("create-config").value),
    };
    await api("POST", "/topics", body);
    topic = body.name;
  });
});
$("alter-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("alter config", () => api("POST", "/topics/" + encodeURIComponent(topic) + "/config", {
    set: parseKV($("alter-set").value),
    delete: $("alter-delete").value.split(",").map((s) => s.trim()).filter((s) => s),
  }));
});
$("partitions-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("add partitions", () => api("POST", "/topics/" + encodeURIComponent(topic) + "/partitions",
    { total: Number($("partitions-total").value) }));
});
$("delete-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!confirm("Delete topic " + topic + " and all its records?")) return;
  act("delete topic", async () => {
    await api("DELETE", "/topics/" + encodeURIComponent(topic));
    topic = null;
    $("topic-detail").hidden = true;
  });
});
$("seek-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("seek group", async () => {
    const parts = $("seek-partitions").value.split(",").map((s) => s.trim()).filter((s) => s && s !== "all").map(Number);
    const r = await api("POST", "/groups/" + encodeURIComponent(group) + "/seek",
      { topic: $("seek-topic").value.trim(), partitions: parts, to: $("seek-to").value.trim() });
    $("seek-result").textContent = r.changes.map((c) => c.topic + "/" + c.partition + ": " +
      (c.old < 0 ? "none" : c.old) + " -> " + c.new).join("\n");
  });
});
$("browse-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  browse().then(() => status("browsed"), (e) => status(e.message, true));
});
$("browse-next").addEventListener("click", () => {
  if (browseNext !== null) browse(browseNext).then(() => status("browsed"), (e) => status(e.message, true));
});

window.addEventListener("hashchange", () => show(location.hash.slice(1)));
api("GET", "/me").then((m) => { me = m; }, (e) => status(e.message, true))
  .finally(() => show(location.hash.slice(1) || "cluster"));
