// The ruv_swarm dashboard: one WebSocket (/ws, op "dashboard") brings a
// snapshot and then coalesced deltas; views render from that state, and
// detail views (task, agent, topology, memory) ask for what they show.
// Plain browser JavaScript, no library, no network but this node.
"use strict";

(() => {
  const TOKEN_KEY = "ruvSwarmToken";
  const MAX_EVENTS = 500;
  const S = {
    swarms: new Map(),
    agents: new Map(),
    tasks: new Map(),
    events: [],
    overview: null,
    series: null,
    epoch: null,
    rev: 0,
    connected: false,
    ws: null,
    ref: 0,
    pending: new Map(),
    detail: {},
    retryMs: 500,
    filters: { taskStatus: "", taskText: "", eventSwarm: "", eventType: "", agentText: "" },
  };
  window.__dashboard = S; // for tests and the curious

  // ---- tiny DOM helpers ------------------------------------------------------
  const SVGNS = "http://www.w3.org/2000/svg";

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      // Through the CSSOM: the page's CSP forbids style attributes.
      else if (k === "style") el.style.cssText = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  const $ = (sel) => document.querySelector(sel);

  // replaceChildren without null/false children (the DOM would print "null").
  function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
  }

  function badge(status) {
    const st = String(status || "unknown");
    return h("span", { class: "badge s-" + st, "data-status": st }, st.replace("_", " "));
  }

  function fmtTime(ms) {
    if (!ms) return "";
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour12: false });
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const u = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "–";
    const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + "d " + hh + "h";
    if (hh) return hh + "h " + m + "m";
    if (m) return m + "m " + (s % 60) + "s";
    return s + "s";
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : Math.round(ms) + " ms";
  }

  function fmtCost(c) {
    return c === null || c === undefined ? "–" : "$" + Number(c).toFixed(4);
  }

  function short(id) {
    if (!id) return "";
    const i = id.indexOf(".");
    return i > 0 ? id.slice(i + 1) : id;
  }

  function toast(text, ok) {
    const t = $("#toast");
    t.textContent = text;
    t.className = ok ? "toast ok" : "toast";
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, ok ? 2500 : 8000);
  }

  // ---- auth and the socket ---------------------------------------------------
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  // Whether the gateway accepts our token (or needs none): a cheap GET.
  async function probe() {
    const headers = token() ? { Authorization: "Bearer " + token() } : {};
    try {
      const r = await fetch("/api/mcp", { headers, cache: "no-store" });
      if (r.status === 401) return "unauthorized";
      return r.ok ? "ok" : "error";
    } catch (_e) {
      return "down";
    }
  }

  function showLogin(message) {
    $("#login").hidden = false;
    $("#main").hidden = true;
    $("#login-error").textContent = message || "";
    $("#token").focus();
  }

  function hideLogin() {
    $("#login").hidden = true;
    $("#main").hidden = false;
  }

  async function start() {
    const p = await probe();
    if (p === "unauthorized") {
      clearState();
      showLogin(token() ? "That token was not accepted." : "");
      return;
    }
    hideLogin();
    if (p === "down") { setConn(false, "node unreachable, retrying…"); return retryLater(); }
    connect();
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const protocols = ["ruv-swarm"];
    if (token()) protocols.push("bearer." + token());
    let ws;
    try {
      ws = new WebSocket(proto + "//" + location.host + "/ws", protocols);
    } catch (_e) {
      return retryLater();
    }
    S.ws = ws;
    ws.onopen = () => {
      S.retryMs = 500;
      const since = S.epoch ? { epoch: S.epoch, rev: S.rev } : undefined;
      ws.send(JSON.stringify({ op: "dashboard", since }));
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (_e) { return; }
      onMessage(msg);
    };
    ws.onclose = () => {
      if (S.ws !== ws) return;
      S.ws = null;
      setConn(false, "reconnecting…");
      for (const [, p] of S.pending) p.reject(new Error("the connection was lost"));
      S.pending.clear();
      retryLater();
    };
  }

  function retryLater() {
    setTimeout(start, S.retryMs);
    S.retryMs = Math.min(S.retryMs * 2, 5000);
  }

  function setConn(up, text) {
    S.connected = up;
    const c = $("#conn");
    c.textContent = text;
    c.className = "conn " + (up ? "conn-up" : "conn-down");
  }

  function request(op, body) {
    return new Promise((resolve, reject) => {
      if (!S.ws || S.ws.readyState !== 1) return reject(new Error("not connected"));
      const ref = ++S.ref;
      S.pending.set(ref, { resolve, reject });
      S.ws.send(JSON.stringify(Object.assign({ op, ref }, body)));
      setTimeout(() => {
        if (S.pending.delete(ref)) reject(new Error("no answer from the node"));
      }, 15000);
    });
  }

  async function act(action, body, okText) {
    try {
      const r = await request("action", Object.assign({ action }, body));
      if (r.ok) { toast(okText || action.replace("_", " ") + ": done", true); return r; }
      toast(r.error || "refused");
      return null;
    } catch (e) {
      toast(e.message);
      return null;
    }
  }

  function clearState() {
    S.swarms.clear(); S.agents.clear(); S.tasks.clear();
    S.events = []; S.overview = null; S.series = null; S.epoch = null; S.rev = 0; S.detail = {};
    $("#main").replaceChildren();
  }

  function onMessage(msg) {
    if (msg.ref && S.pending.has(msg.ref)) {
      const p = S.pending.get(msg.ref);
      S.pending.delete(msg.ref);
      if (msg.type === "error") p.reject(new Error(msg.error));
      else p.resolve(msg);
      return;
    }
    switch (msg.type) {
      case "joined":
        if (msg.epoch !== S.epoch) { S.epoch = msg.epoch; }
        setConn(true, "live");
        break;
      case "snapshot":
        S.swarms = new Map(Object.entries(msg.swarms || {}));
        S.agents = new Map(Object.entries(msg.agents || {}));
        S.tasks = new Map(Object.entries(msg.tasks || {}));
        S.events = (msg.events || []).slice(-MAX_EVENTS);
        S.overview = msg.overview || null;
        S.series = msg.series || null;
        S.epoch = msg.epoch || S.epoch;
        S.rev = msg.rev;
        changed({ all: true });
        break;
      case "delta":
        applyDelta(msg);
        break;
      case "error":
        toast(msg.error);
        break;
    }
  }

  function merge(map, changes, touched) {
    for (const [id, rec] of Object.entries(changes || {})) {
      if (rec === null) map.delete(id); else map.set(id, rec);
      touched.add(id);
    }
  }

  function applyDelta(d) {
    if (d.rev <= S.rev) return;
    const touched = new Set();
    merge(S.swarms, d.swarms, touched);
    merge(S.agents, d.agents, touched);
    for (const [id, status] of Object.entries(d.agent_status || {})) {
      const a = S.agents.get(id);
      if (a) { S.agents.set(id, Object.assign({}, a, { status })); touched.add(id); }
    }
    merge(S.tasks, d.tasks, touched);
    if (d.events && d.events.length) {
      S.events = S.events.concat(d.events);
      if (S.events.length > MAX_EVENTS) S.events = S.events.slice(-MAX_EVENTS);
    }
    if (d.overview) S.overview = d.overview;
    if (d.series) S.series = d.series;
    S.rev = d.rev;
    changed({ touched, events: d.events || [] });
  }

  // ---- routing and rendering ---------------------------------------------------
  let renderQueued = false;
  let lastChange = { all: true };

  function changed(c) {
    if (lastChange.all || c.all) lastChange = { all: true };
    else {
      for (const id of c.touched) lastChange.touched.add(id);
      lastChange.events = lastChange.events.concat(c.events);
    }
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(() => {
        renderQueued = false;
        const ch = lastChange;
        lastChange = { touched: new Set(), events: [] };
        render(ch);
      });
    }
  }
  lastChange = { all: true };

  function route() {
    const parts = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
    return { view: parts[0], id: parts.slice(1).map(decodeURIComponent).join("/") };
  }

  // Focus and typing survive re-renders: inputs are built once per view
  // and only the data parts are replaced.
  let shell = null;

  function render(ch) {
    const r = route();
    for (const a of document.querySelectorAll("#nav a")) {
      const v = a.dataset.view;
      a.classList.toggle("active", v === r.view || (v === "swarms" && ["swarm", "task", "agent"].includes(r.view)));
    }
    const key = r.view + "/" + r.id;
    if (!shell || shell.key !== key) {
      const view = VIEWS[r.view] || VIEWS.overview;
      shell = { key, view, parts: {} };
      const root = view.build(r.id, shell.parts);
      $("#main").replaceChildren(root);
      ch = { all: true };
    }
    shell.view.update(r.id, shell.parts, ch);
  }

  window.addEventListener("hashchange", () => changed({ all: true }));

  function touches(ch, pred) {
    if (ch.all) return true;
    for (const id of ch.touched) if (pred(id)) return true;
    return false;
  }

  // ---- charts (SVG) ------------------------------------------------------------
  function lineChart(series, cols, opts) {
    const w = 600, hgt = 140, pad = 28;
    const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, width: "100%", role: "img", "aria-label": opts.label });
    if (!series || !series.points || !series.points.length) {
      svg.append(s("text", { x: 10, y: 20 }, "no data yet"));
      return svg;
    }
    const idx = cols.map((c) => series.columns.indexOf(c.name));
    const per = (series.bucket_ms || 5000) / 1000;
    const pts = series.points;
    let max = 1;
    for (const p of pts) for (const i of idx) max = Math.max(max, p[i] / per);
    const x = (k) => pad + (k * (w - pad - 6)) / Math.max(1, pts.length - 1);
    const y = (v) => hgt - 18 - (v * (hgt - 28)) / max;
    svg.append(s("line", { class: "axis", x1: pad, y1: hgt - 18, x2: w - 6, y2: hgt - 18 }));
    svg.append(s("text", { x: 2, y: 12 }, max.toFixed(max < 10 ? 1 : 0) + "/s"));
    svg.append(s("text", { x: pad, y: hgt - 4 }, "-15 min"));
    svg.append(s("text", { x: w - 40, y: hgt - 4 }, "now"));
    cols.forEach((c, j) => {
      const d = pts.map((p, k) => (k ? "L" : "M") + x(k).toFixed(1) + "," + y(p[idx[j]] / per).toFixed(1)).join("");
      svg.append(s("path", { d, class: c.cls }));
    });
    return svg;
  }

  function legend(items) {
    return h("div", { class: "legend" }, items.map(([label, color]) => h("span", null, h("i", { style: "background:" + color }), label)));
  }

  function rateOf(series, col, buckets) {
    if (!series || !series.points) return 0;
    const i = series.columns.indexOf(col);
    const pts = series.points.slice(-buckets - 1, -1);
    const sum = pts.reduce((a, p) => a + p[i], 0);
    return sum / (pts.length * ((series.bucket_ms || 5000) / 1000) || 1);
  }

  // ---- views -------------------------------------------------------------------
  const VIEWS = {};

  VIEWS.overview = {
    build(_id, P) {
      P.stats = h("div", { class: "grid" });
      P.charts = h("div", { class: "grid wide section" });
      P.swarms = h("div", { class: "card section" });
      return h("div", { "data-view": "overview" }, h("h1", null, "Overview"), P.stats, P.charts, P.swarms);
    },
    update(_id, P, _ch) {
      const o = S.overview || {};
      const a = o.agents || {};
      const t = o.tasks || {};
      const lat = (S.series && S.series.latency_1m) || {};
      const lat15 = (S.series && S.series.latency_15m) || {};
      const vm = o.vm_memory || {};
      const eng = o.engine || {};
      const gw = o.gateway || {};
      const stat = (label, value, sub, testid) =>
        h("div", { class: "card", "data-stat": testid }, h("h2", null, label), h("div", { class: "stat" }, value), sub ? h("div", { class: "muted small" }, sub) : null);
      fill(P.stats, 
        stat("Node", o.node || "–", "up " + fmtDuration(o.uptime_s) + " · OTP " + (o.otp || "?") + " · " + (o.schedulers || "?") + " schedulers", "node"),
        stat("Swarms", S.swarms.size, (o.processes || 0) + " processes", "swarms"),
        stat("Agents", a.total || 0, `${a.idle || 0} idle · ${a.busy || 0} busy · ${a.offline || 0} offline`, "agents"),
        stat("Tasks", Object.values(t).reduce((x, y) => x + y, 0),
          `${t.pending || 0} pending · ${t.running || 0} running · ${t.completed || 0} done · ${t.failed || 0} failed`, "tasks"),
        stat("Throughput", rateOf(S.series, "completed", 12).toFixed(1) + " tasks/s",
          rateOf(S.series, "failed", 12).toFixed(2) + " failures/s (last minute)", "throughput"),
        stat("Submit → result", "p50 " + fmtMs(lat.p50), "p99 " + fmtMs(lat.p99) + " (1 min, " + (lat.n || 0) + " tasks) · 15 min p99 " + fmtMs(lat15.p99), "latency"),
        stat("Memory", fmtBytes(vm.total), "VM total · engine " + (eng.enabled ? fmtBytes(eng.engine_bytes) + " (held " + fmtBytes(eng.held_bytes) + ")" : "not reported"), "memory"),
        stat("Gateway", rateOf(S.series, "calls", 12).toFixed(1) + " calls/s",
          rateOf(S.series, "errors", 12).toFixed(2) + " errors/s · " + (gw.requests_total || 0) + " requests, " + (gw.errors_total || 0) + " errors in all", "gateway"),
      );
      fill(P.charts, 
        h("div", { class: "card" }, h("h2", null, "Tasks per second (15 min)"),
          lineChart(S.series, [{ name: "completed", cls: "line-a" }, { name: "failed", cls: "line-b" }, { name: "submitted", cls: "line-c" }], { label: "tasks per second" }),
          legend([["completed", "var(--completed)"], ["failed", "var(--failed)"], ["submitted", "var(--accent)"]])),
        h("div", { class: "card" }, h("h2", null, "Gateway calls per second (15 min)"),
          lineChart(S.series, [{ name: "calls", cls: "line-c" }, { name: "errors", cls: "line-b" }], { label: "gateway calls per second" }),
          legend([["calls", "var(--accent)"], ["errors", "var(--failed)"]])),
      );
      fill(P.swarms, h("h2", null, "Swarms"), swarmTable(20));
    },
  };

  function swarmTable(limit) {
    const list = [...S.swarms.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    const rows = list.slice(0, limit).map((sw) => {
      const a = sw.agents || {};
      const t = sw.tasks || {};
      return h("tr", { "data-swarm-id": sw.id },
        h("td", null, h("a", { href: "#/swarm/" + encodeURIComponent(sw.id) }, sw.name || "swarm"), h("div", { class: "mono muted" }, sw.id)),
        h("td", null, sw.topology, " · ", sw.strategy),
        h("td", { class: "num" }, `${a.total || 0} (${a.busy || 0} busy)`),
        h("td", { class: "num" }, `${t.running || 0} running · ${t.completed || 0} done · ${t.failed || 0} failed`),
        h("td", { class: "num hide-narrow" }, sw.usage ? fmtCost(sw.usage.cost_usd) : "–"));
    });
    return h("div", { class: "scroll" }, h("table", { "data-table": "swarms" },
      h("thead", null, h("tr", null, h("th", null, "Swarm"), h("th", null, "Topology"), h("th", { class: "num" }, "Agents"), h("th", { class: "num" }, "Tasks"), h("th", { class: "num hide-narrow" }, "Cost"))),
      h("tbody", null, rows)),
    list.length > limit ? h("p", { class: "muted small" }, `${list.length - limit} more`) : null,
    list.length === 0 ? h("p", { class: "muted" }, "No swarms yet.") : null);
  }

  VIEWS.swarms = {
    build(_id, P) {
      const f = {};
      const form = h("form", { class: "inline card", "data-form": "create-swarm", onsubmit: async (e) => {
        e.preventDefault();
        const r = await act("create_swarm", {
          name: f.name.value || undefined, topology: f.topology.value, strategy: f.strategy.value,
          agents: f.agents.value ? Number(f.agents.value) : undefined, storage: f.storage.value,
          command: f.command.value || undefined,
        }, "swarm created");
        if (r) location.hash = "#/swarm/" + encodeURIComponent(r.swarm_id);
      } },
      h("label", null, "Name", f.name = h("input", { name: "name", placeholder: "swarm" })),
      h("label", null, "Topology", f.topology = select("topology", ["mesh", "hierarchical", "ring", "star"])),
      h("label", null, "Strategy", f.strategy = select("strategy", ["balanced", "specialized", "adaptive"])),
      h("label", null, "Agents", f.agents = h("input", { name: "agents", type: "number", min: 0, max: 1000, value: "3", style: "width:6em" })),
      h("label", null, "Storage", f.storage = select("storage", ["memory", "disk"])),
      h("label", null, "Command (allow-listed, optional)", f.command = h("input", { name: "command", placeholder: "external agents if empty" })),
      h("button", { type: "submit" }, "Create swarm"));
      P.table = h("div", { class: "card section" });
      return h("div", { "data-view": "swarms" }, h("h1", null, "Swarms"), form, P.table);
    },
    update(_id, P) { fill(P.table, swarmTable(500)); },
  };

  function select(name, options, value) {
    return h("select", { name }, options.map((o) => {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, label);
    }));
  }

  // ---- the swarm view --------------------------------------------------------------
  VIEWS.swarm = {
    build(id, P) {
      P.head = h("div", { class: "row" });
      P.graph = h("div", { class: "card" });
      P.agents = h("div", { class: "card" });
      P.tasks = h("div", { class: "card section" });
      P.topo = null;
      const f = {};
      const taskForm = h("form", { class: "card section", "data-form": "submit-task", onsubmit: async (e) => {
        e.preventDefault();
        const subtasks = parseSubtasks(f.subtasks.value);
        if (subtasks && subtasks.error) return toast(subtasks.error);
        const r = await act("submit_task", {
          swarm_id: id, description: f.description.value, priority: f.priority.value, strategy: f.strategy.value,
          max_agents: f.max.value ? Number(f.max.value) : undefined, subtasks: subtasks || undefined,
        }, "task submitted");
        if (r) { f.description.value = ""; f.subtasks.value = ""; }
      } },
      h("h2", null, "Submit a task"),
      h("div", { class: "form inline" },
        h("label", { style: "flex:1;min-width:200px" }, "Description", f.description = h("input", { name: "description", required: true })),
        h("label", null, "Priority", f.priority = select("priority", ["low", "medium", "high", "critical"], "medium")),
        h("label", null, "Strategy", f.strategy = select("strategy", ["parallel", "sequential", "adaptive"])),
        h("label", null, "Max agents", f.max = h("input", { name: "max_agents", type: "number", min: 1, style: "width:5em" })),
        h("button", { type: "submit" }, "Submit")),
      h("label", { style: "display:flex;margin-top:8px" }, "Subtasks (optional, one per line: name <- dep1, dep2: input)",
        f.subtasks = h("textarea", { name: "subtasks", placeholder: "fetch: get the data\nparse <- fetch: parse it\nreport <- parse: write it up" })));
      const g = {};
      const agentForm = h("form", { class: "inline", "data-form": "spawn-agent", onsubmit: async (e) => {
        e.preventDefault();
        await act("spawn_agent", { swarm_id: id, type: g.type.value || undefined, command: g.command.value || undefined,
          capabilities: g.caps.value ? g.caps.value.split(",").map((x) => x.trim()).filter(Boolean) : undefined }, "agent spawned");
      } },
      h("label", null, "Type", g.type = h("input", { name: "type", placeholder: "researcher", style: "width:9em" })),
      h("label", null, "Capabilities", g.caps = h("input", { name: "capabilities", placeholder: "a, b", style: "width:9em" })),
      h("label", null, "Command", g.command = h("input", { name: "command", placeholder: "external if empty", style: "width:10em" })),
      h("button", { type: "submit" }, "Spawn agent"));
      P.agentSearch = h("input", { type: "search", placeholder: "filter agents", value: S.filters.agentText, oninput: (e) => { S.filters.agentText = e.target.value; changed({ all: true }); } });
      P.taskStatus = select("status", [["", "all states"], "pending", "running", "completed", "failed", "cancelled", "timed_out"], S.filters.taskStatus);
      P.taskStatus.addEventListener("change", (e) => { S.filters.taskStatus = e.target.value; changed({ all: true }); });
      P.taskText = h("input", { type: "search", placeholder: "search tasks", value: S.filters.taskText, oninput: (e) => { S.filters.taskText = e.target.value; changed({ all: true }); } });
      P.taskBody = h("div");
      P.agentBody = h("div");
      P.tasks.append(h("div", { class: "row" }, h("h2", null, "Tasks"), h("span", { class: "spacer" }), P.taskStatus, P.taskText), P.taskBody);
      P.agents.append(h("div", { class: "row" }, h("h2", null, "Agents"), h("span", { class: "spacer" }), P.agentSearch), agentForm, P.agentBody);
      loadTopology(id, P);
      return h("div", { "data-view": "swarm" }, P.head, h("div", { class: "grid wide section" }, P.graph, P.agents), taskForm, P.tasks);
    },
    update(id, P, ch) {
      const sw = S.swarms.get(id);
      if (!sw) {
        fill(P.head, h("h1", null, "Swarm ", h("span", { class: "mono" }, id)), h("span", { class: "muted" }, S.epoch ? "not found (destroyed?)" : "loading…"));
        return;
      }
      const a = sw.agents || {};
      fill(P.head, 
        h("h1", null, sw.name || "swarm", " ", h("span", { class: "mono muted" }, sw.id)),
        h("span", { class: "badge" }, sw.topology), h("span", { class: "badge" }, sw.strategy),
        h("span", { class: "muted" }, `${a.total || 0} agents · ${a.busy || 0} busy · max ${sw.max_agents}`),
        sw.budget && sw.budget.max_cost_usd ? h("span", { class: "muted" }, `budget ${fmtCost(sw.budget.spent_usd)} / ${fmtCost(sw.budget.max_cost_usd)}`) : null,
        h("span", { class: "spacer" }),
        h("button", { class: "danger", "data-action": "destroy", onclick: async () => {
          if (!confirm("Destroy swarm " + sw.id + "?")) return;
          if (await act("destroy_swarm", { swarm_id: id }, "swarm destroyed")) location.hash = "#/swarms";
        } }, "Destroy swarm"));

      const agentsOf = [...S.agents.values()].filter((x) => x.swarm_id === id);
      const agentIds = new Set(agentsOf.map((x) => x.id));
      if (P.topo && (agentIds.size !== P.topo.agents.length || P.topo.agents.some((x) => !agentIds.has(x.id)))) loadTopology(id, P);
      if (touches(ch, (tid) => agentIds.has(tid) || tid === id)) drawTopology(P);

      const q = S.filters.agentText.toLowerCase();
      const shown = agentsOf.filter((x) => !q || (x.id + " " + x.name + " " + x.type + " " + x.status + " " + (x.capabilities || []).join(" ")).toLowerCase().includes(q));
      fill(P.agentBody, h("div", { class: "scroll", style: "max-height:360px" }, h("table", { "data-table": "agents" },
        h("thead", null, h("tr", null, h("th", null, "Agent"), h("th", null, "Status"), h("th", { class: "num" }, "Load"), h("th", { class: "num" }, "Done/failed"), h("th", null, ""))),
        h("tbody", null, shown.slice(0, 300).map((x) => h("tr", { "data-agent-id": x.id },
          h("td", null, h("a", { href: "#/agent/" + encodeURIComponent(x.id) }, x.name || short(x.id)), h("div", { class: "muted small" }, x.type)),
          h("td", null, badge(x.status)),
          h("td", { class: "num" }, x.load === null || x.load === undefined ? "–" : Math.round(x.load * 100) + "%"),
          h("td", { class: "num" }, `${x.completed || 0} / ${x.failed || 0}`),
          h("td", null, h("button", { class: "danger small", "data-action": "remove-agent", onclick: () => act("remove_agent", { agent_id: x.id }, "agent removed") }, "Remove"))))))));

      const tq = S.filters.taskText.toLowerCase();
      const tasks = [...S.tasks.values()].filter((t) => t.swarm_id === id)
        .filter((t) => !S.filters.taskStatus || t.status === S.filters.taskStatus)
        .filter((t) => !tq || (t.id + " " + (t.description || "") + " " + (t.error || "")).toLowerCase().includes(tq))
        .sort((x, y) => (y.created_at || 0) - (x.created_at || 0));
      fill(P.taskBody, taskTable(tasks.slice(0, 200)), tasks.length > 200 ? h("p", { class: "muted small" }, `${tasks.length - 200} more (narrow the filter)`) : null,
        tasks.length === 0 ? h("p", { class: "muted" }, "No tasks seen since the dashboard opened (the node keeps the last 200 per swarm here).") : null);
    },
  };

  function taskTable(tasks) {
    return h("div", { class: "scroll" }, h("table", { "data-table": "tasks" },
      h("thead", null, h("tr", null, h("th", null, "Task"), h("th", null, "State"), h("th", { class: "hide-narrow" }, "Submitted"), h("th", { class: "num" }, "Took"), h("th", null, ""))),
      h("tbody", null, tasks.map((t) => h("tr", { "data-task-id": t.id, "data-status": t.status },
        h("td", null, h("a", { href: "#/task/" + encodeURIComponent(t.id) }, short(t.id)), " ", h("span", { class: "muted" }, t.description || ""),
          t.error ? h("div", { class: "error small" }, t.error) : null),
        h("td", null, badge(t.status)),
        h("td", { class: "hide-narrow" }, fmtTime(t.created_at)),
        h("td", { class: "num" }, t.finished_at && t.created_at ? fmtMs(t.finished_at - t.created_at) : ""),
        h("td", null, taskButtons(t)))))));
  }

  function taskButtons(t) {
    const live = t.status === "pending" || t.status === "running" || t.status === "assigned";
    const retry = t.status === "failed" || t.status === "cancelled" || t.status === "timed_out";
    return [
      live ? h("button", { class: "danger", "data-action": "cancel", onclick: () => act("cancel_task", { task_id: t.id }, "task cancelled") }, "Cancel") : null,
      retry ? h("button", { "data-action": "retry", onclick: async () => {
        const r = await act("retry_task", { task_id: t.id }, "task submitted again");
        if (r) location.hash = "#/task/" + encodeURIComponent(r.task_id);
      } }, "Retry") : null,
    ];
  }

  function parseSubtasks(text) {
    const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
    if (!lines.length) return null;
    const out = [];
    for (const line of lines) {
      const m = line.match(/^([^:<]+?)\s*(?:<-\s*([^:]*))?:\s*(.*)$/) || line.match(/^([^:<]+?)\s*(?:<-\s*(.*))?$/);
      if (!m) return { error: "cannot read the subtask line: " + line };
      const deps = (m[2] || "").split(",").map((x) => x.trim()).filter(Boolean);
      out.push({ name: m[1].trim(), depends_on: deps, input: (m[3] || m[1]).trim() });
    }
    return out;
  }

  async function loadTopology(id, P) {
    if (P.topoLoading) return;
    P.topoLoading = true;
    try {
      P.topo = await request("topology", { swarm_id: id });
    } catch (e) {
      P.topo = P.topo || null;
      P.topoError = e.message;
    } finally {
      P.topoLoading = false;
    }
    drawTopology(P);
  }

  // Layout by topology: star puts the hub in the middle, ring keeps ring
  // order on a circle, hierarchical draws layers from the root, mesh a circle.
  function drawTopology(P) {
    const topo = P.topo;
    if (!topo) {
      fill(P.graph, h("h2", null, "Topology"), h("p", { class: "muted" }, P.topoError || "loading…"));
      return;
    }
    const w = 560, hgt = 360, cx = w / 2, cy = hgt / 2;
    const n = topo.agents.length;
    const pos = new Map();
    const adj = new Map(topo.agents.map((a) => [a.id, []]));
    for (const [a, b] of topo.edges) { if (adj.has(a)) adj.get(a).push(b); if (adj.has(b)) adj.get(b).push(a); }
    if (topo.topology === "star" && n > 0) {
      let hub = topo.agents[0].id;
      for (const a of topo.agents) if (adj.get(a.id).length > adj.get(hub).length) hub = a.id;
      pos.set(hub, [cx, cy]);
      const rest = topo.agents.filter((a) => a.id !== hub);
      rest.forEach((a, i) => { const t = (2 * Math.PI * i) / rest.length; pos.set(a.id, [cx + 140 * Math.cos(t), cy + 140 * Math.sin(t)]); });
    } else if (topo.topology === "hierarchical" && n > 0) {
      const root = topo.agents[0].id;
      const depth = new Map([[root, 0]]);
      const queue = [root];
      while (queue.length) { const v = queue.shift(); for (const u of adj.get(v) || []) if (!depth.has(u)) { depth.set(u, depth.get(v) + 1); queue.push(u); } }
      for (const a of topo.agents) if (!depth.has(a.id)) depth.set(a.id, 0);
      const layers = [];
      for (const a of topo.agents) { const d = depth.get(a.id); (layers[d] = layers[d] || []).push(a.id); }
      layers.forEach((ids, d) => ids.forEach((aid, i) => pos.set(aid, [((i + 1) * w) / (ids.length + 1), 30 + (d * (hgt - 60)) / Math.max(1, layers.length - 1)])));
    } else {
      topo.agents.forEach((a, i) => { const t = (2 * Math.PI * i) / Math.max(1, n) - Math.PI / 2; pos.set(a.id, [cx + 150 * Math.cos(t), cy + 150 * Math.sin(t)]); });
    }
    const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, width: "100%", "data-graph": "topology", role: "img", "aria-label": topo.topology + " topology" });
    const maxEdges = 3000;
    topo.edges.slice(0, maxEdges).forEach(([a, b]) => {
      const p = pos.get(a), q = pos.get(b);
      if (p && q) svg.append(s("line", { class: "edge", x1: p[0], y1: p[1], x2: q[0], y2: q[1] }));
    });
    const r = n > 60 ? 4 : n > 20 ? 7 : 11;
    for (const a of topo.agents) {
      const live = S.agents.get(a.id) || a;
      const [x, y] = pos.get(a.id);
      const link = s("a", { href: "#/agent/" + encodeURIComponent(a.id) },
        s("circle", { cx: x, cy: y, r, class: "node-" + live.status, "data-agent": a.id, "data-status": live.status }, s("title", null, `${a.name} (${live.status})`)));
      if (n <= 20) link.append(s("text", { x: x + r + 3, y: y + 4 }, a.name || short(a.id)));
      svg.append(link);
    }
    fill(P.graph, h("h2", null, "Topology: " + topo.topology + (topo.truncated ? " (first 500 agents)" : "")), svg,
      legend([["idle", "var(--idle)"], ["busy", "var(--busy)"], ["offline", "var(--offline)"]]));
  }

  // ---- the task view ------------------------------------------------------------------
  VIEWS.task = {
    build(id, P) {
      P.head = h("div", { class: "row" });
      P.dag = h("div", { class: "card" });
      P.units = h("div", { class: "card section" });
      P.progress = h("div", { class: "card section" });
      P.data = null;
      fetchTask(id, P);
      return h("div", { "data-view": "task" }, P.head, h("div", { class: "section" }, P.dag), P.units, P.progress);
    },
    update(id, P, ch) {
      if (!ch.all && touches(ch, (x) => x === id)) fetchTask(id, P);
      else if (ch.all && P.data) drawTask(P);
    },
  };

  function fetchTask(id, P) {
    if (P.loading) { P.again = true; return; }
    P.loading = true;
    request("task", { task_id: id }).then((r) => { P.data = r.task; P.error = null; }, (e) => { P.error = e.message; })
      .finally(() => {
        P.loading = false;
        drawTask(P);
        if (P.again) { P.again = false; setTimeout(() => fetchTask(id, P), 200); }
      });
  }

  function drawTask(P) {
    const t = P.data;
    if (!t) {
      fill(P.head, h("h1", null, "Task"), h("span", { class: P.error ? "error" : "muted" }, P.error || "loading…"));
      return;
    }
    fill(P.head, 
      h("h1", null, "Task ", h("span", { class: "mono" }, short(t.id))), badge(t.status),
      h("span", { class: "muted" }, `${t.priority} · ${t.strategy} · ${t.attempts} attempts`),
      h("a", { href: "#/swarm/" + encodeURIComponent(t.swarm_id) }, "swarm"),
      t.usage ? h("span", { class: "muted" }, `tokens in ${t.usage.input_tokens || 0} / out ${t.usage.output_tokens || 0} · ${fmtCost(t.usage.cost_usd)}`) : null,
      h("span", { class: "spacer" }), taskButtons(t));
    fill(P.dag, h("h2", null, "Units" + (t.units.length > 1 ? " (DAG)" : "")), dagSvg(t),
      t.dag_known ? null : h("p", { class: "muted small" }, "This node's engine does not report the units' dependencies."),
      h("p", null, t.description ? h("span", null, t.description) : null),
      t.error ? h("p", { class: "error" }, t.error) : null,
      t.result !== null && t.result !== undefined ? h("div", null, h("h2", null, "Result (preview)"), h("pre", { class: "mono" }, t.result)) : null,
      t.waiting_reason ? h("p", { class: "muted" }, "waiting: " + t.waiting_reason) : null);
    fill(P.units, h("h2", null, "Attempts"), h("div", { class: "scroll" }, h("table", { "data-table": "units" },
      h("thead", null, h("tr", null, h("th", null, "Unit"), h("th", null, "State"), h("th", null, "Agent"), h("th", { class: "num" }, "Attempts"), h("th", { class: "num" }, "Duration"), h("th", null, "Result / error"))),
      h("tbody", null, t.units.map((u) => h("tr", { "data-unit": u.name, "data-status": u.status },
        h("td", null, u.name), h("td", null, badge(u.status)),
        h("td", null, u.agent_id ? h("a", { href: "#/agent/" + encodeURIComponent(u.agent_id) }, short(u.agent_id)) : "–"),
        h("td", { class: "num" }, u.attempts), h("td", { class: "num" }, u.history.length ? fmtMs(u.duration_ms) : "–"),
        h("td", null, u.error ? h("div", { class: "error small" }, u.error) : null, u.result ? h("pre", { class: "mono" }, u.result) : null,
          u.history.filter((x) => x.usage).map((x) => h("div", { class: "muted small" }, `#${x.attempt}: ${x.usage.input_tokens || 0} in / ${x.usage.output_tokens || 0} out · ${fmtCost(x.usage.cost_usd)}`)))))))));
    fill(P.progress, h("h2", null, "Progress"), t.progress && t.progress.length
      ? h("ul", { class: "small" }, t.progress.map((p) => h("li", null, fmtTime(p.at), " ", h("span", { class: "mono" }, p.unit || ""), " ", p.progress !== null && p.progress !== undefined ? Math.round(p.progress * 100) + "% " : "", p.message || "")))
      : h("p", { class: "muted" }, "No progress reported (claude agents stream theirs here)."));
  }

  function dagSvg(t) {
    const units = t.units;
    const byName = new Map(units.map((u) => [u.name, u]));
    const depth = new Map();
    const depthOf = (u, seen) => {
      if (depth.has(u.name)) return depth.get(u.name);
      if (seen.has(u.name)) return 0;
      seen.add(u.name);
      let d = 0;
      for (const dep of u.depends_on || []) if (byName.has(dep)) d = Math.max(d, depthOf(byName.get(dep), seen) + 1);
      depth.set(u.name, d);
      return d;
    };
    units.forEach((u) => depthOf(u, new Set()));
    const cols = [];
    units.forEach((u) => { const d = depth.get(u.name); (cols[d] = cols[d] || []).push(u); });
    const bw = 150, bh = 44, gx = 50, gy = 14;
    const w = Math.max(300, cols.length * (bw + gx) + 20);
    const rows = Math.max(1, ...cols.map((c) => c.length));
    const hgt = rows * (bh + gy) + 20;
    const pos = new Map();
    cols.forEach((c, ci) => c.forEach((u, ri) => pos.set(u.name, [10 + ci * (bw + gx), 10 + ri * (bh + gy)])));
    const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, width: Math.min(w, 1400), "data-graph": "dag", role: "img", "aria-label": "subtask graph" },
      s("defs", null, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" }, s("path", { d: "M0,0L10,5L0,10z", fill: "#64748b" }))));
    for (const u of units) for (const dep of u.depends_on || []) {
      const a = pos.get(dep), b = pos.get(u.name);
      if (a && b) svg.append(s("path", { class: "dag-edge", d: `M${a[0] + bw},${a[1] + bh / 2} C${a[0] + bw + gx / 2},${a[1] + bh / 2} ${b[0] - gx / 2},${b[1] + bh / 2} ${b[0]},${b[1] + bh / 2}` }));
    }
    for (const u of units) {
      const [x, y] = pos.get(u.name);
      svg.append(s("g", { class: "dag-node", "data-unit": u.name, "data-status": u.status },
        s("rect", { x, y, width: bw, height: bh, rx: 6, class: "st-" + u.status }),
        s("text", { x: x + 8, y: y + 17 }, u.name.length > 20 ? u.name.slice(0, 19) + "…" : u.name),
        s("text", { x: x + 8, y: y + 33, class: "small" }, `${u.status}${u.agent_id ? " · " + short(u.agent_id) : ""}${u.attempts > 1 ? " · ×" + u.attempts : ""}`),
        s("title", null, `${u.name}: ${u.status}${u.error ? " — " + u.error : ""}`)));
    }
    return svg;
  }

  // ---- the agent view -----------------------------------------------------------------
  VIEWS.agent = {
    build(id, P) {
      P.body = h("div");
      P.timer = null;
      fetchAgent(id, P);
      return h("div", { "data-view": "agent" }, P.body);
    },
    update(id, P, ch) {
      if (!ch.all && touches(ch, (x) => x === id)) {
        const now = Date.now();
        if (!P.last || now - P.last > 1000) { P.last = now; fetchAgent(id, P); }
      }
    },
  };

  function fetchAgent(id, P) {
    request("agent", { agent_id: id }).then((r) => drawAgent(P, r.agent), (e) => fill(P.body, h("h1", null, "Agent"), h("p", { class: "error" }, e.message)));
  }

  function drawAgent(P, a) {
    const m = a.metrics || {};
    const u = a.usage || {};
    const live = S.agents.get(a.id);
    fill(P.body, 
      h("div", { class: "row" }, h("h1", null, a.name || short(a.id), " ", h("span", { class: "mono muted" }, a.id)), badge((live && live.status) || a.status),
        h("a", { href: "#/swarm/" + encodeURIComponent(a.swarm_id) }, "swarm"), h("span", { class: "spacer" }),
        h("button", { class: "danger", "data-action": "remove-agent", onclick: async () => { if (await act("remove_agent", { agent_id: a.id }, "agent removed")) location.hash = "#/swarm/" + encodeURIComponent(a.swarm_id); } }, "Remove agent")),
      h("div", { class: "grid section" },
        h("div", { class: "card" }, h("h2", null, "Load"), h("div", { class: "stat" }, Math.round((a.load || 0) * 100) + "%"), h("div", { class: "muted small" }, `${a.running_units || 0} running of capacity ${a.capacity || 1}`)),
        h("div", { class: "card" }, h("h2", null, "Success rate"), h("div", { class: "stat" }, Math.round((m.success_rate ?? 1) * 100) + "%"), h("div", { class: "muted small" }, `${m.completed || 0} done · ${m.failed || 0} failed · ${fmtMs(m.latency_ms)} avg`)),
        h("div", { class: "card" }, h("h2", null, "Executor and persona"), h("div", null, a.executor || "–"), h("div", { class: "muted small" }, "type/persona: " + (a.persona || a.type || "–") + " · node " + (a.node || "?"))),
        h("div", { class: "card" }, h("h2", null, "Usage"), h("div", null, fmtCost(u.cost_usd)), h("div", { class: "muted small" }, `${u.input_tokens || 0} in / ${u.output_tokens || 0} out tokens · ${u.turns || 0} turns`))),
      h("div", { class: "card section" }, h("h2", null, "Last error"), m.last_error ? h("pre", { class: "mono error" }, m.last_error) : h("p", { class: "muted" }, "none")),
      h("div", { class: "card section" }, h("h2", null, "Timeline (units started since the dashboard opened)"), gantt(a.timeline || [])),
      h("div", { class: "card section" }, h("h2", null, "Neighbours"), h("p", { class: "mono" }, (a.neighbours || []).map(short).join(", ") || "none"),
        h("h2", null, "Capabilities"), h("p", null, (a.capabilities || []).join(", ") || "none")));
  }

  function gantt(units) {
    if (!units.length) return h("p", { class: "muted" }, "No units yet.");
    const now = Date.now();
    const bars = units.map((u) => ({ u, start: u.started_at, end: u.duration_ms !== null && u.duration_ms !== undefined ? u.started_at + u.duration_ms : now }));
    const t0 = Math.min(...bars.map((b) => b.start)), t1 = Math.max(...bars.map((b) => b.end), t0 + 1);
    const w = 800, rowH = 18, left = 170;
    const svg = s("svg", { viewBox: `0 0 ${w} ${bars.length * rowH + 24}`, width: "100%", "data-graph": "gantt", role: "img", "aria-label": "unit timeline" });
    bars.slice().reverse().forEach((b, i) => {
      const x = left + ((b.start - t0) * (w - left - 10)) / (t1 - t0);
      const bw = Math.max(2, ((b.end - b.start) * (w - left - 10)) / (t1 - t0));
      const y = 4 + i * rowH;
      svg.append(s("text", { x: 2, y: y + 12 }, (short(b.u.task_id) + " " + (b.u.unit || "")).slice(0, 26)));
      svg.append(s("rect", { x, y, width: bw, height: rowH - 4, rx: 3, class: "st-" + (b.u.outcome === "running" ? "running" : b.u.outcome) },
        s("title", null, `${b.u.task_id} ${b.u.unit || ""}: ${b.u.outcome} ${b.u.duration_ms !== null && b.u.duration_ms !== undefined ? fmtMs(b.u.duration_ms) : ""} ${b.u.error || ""}`)));
    });
    svg.append(s("text", { x: left, y: bars.length * rowH + 20 }, fmtTime(t0)));
    svg.append(s("text", { x: w - 60, y: bars.length * rowH + 20 }, fmtTime(t1)));
    return svg;
  }

  // ---- memory and discoveries ------------------------------------------------------------
  VIEWS.memory = {
    build(_id, P) {
      P.swarm = h("select", { name: "swarm", onchange: () => { P.entries = null; searchMemory(P); loadDiscoveries(P); } });
      P.text = h("input", { type: "search", name: "text", placeholder: "search keys and text values" });
      P.results = h("div", { class: "card section" });
      P.disc = h("div", { class: "card section" });
      const form = h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); searchMemory(P); } }, h("label", null, "Swarm", P.swarm), h("label", null, "Search", P.text), h("button", { type: "submit" }, "Search"));
      return h("div", { "data-view": "memory" }, h("h1", null, "Memory and discoveries"), form, P.results, P.disc);
    },
    update(_id, P, ch) {
      const ids = [...S.swarms.values()].map((x) => x.id);
      const cur = P.swarm.value;
      if (P.swarmIds !== ids.join(",")) {
        P.swarmIds = ids.join(",");
        fill(P.swarm, ...[...S.swarms.values()].map((x) => h("option", { value: x.id, selected: x.id === cur }, (x.name || "swarm") + " · " + x.id)));
        if (!cur && ids.length) { searchMemory(P); loadDiscoveries(P); }
      }
      if (!ids.length) { fill(P.results, h("p", { class: "muted" }, "No swarms.")); return; }
      const sid = P.swarm.value;
      if ((ch.events || []).some((e) => e.swarm_id === sid && e.type === "discovery_shared")) loadDiscoveries(P);
      if ((ch.events || []).some((e) => e.swarm_id === sid && (e.type === "memory_stored" || e.type === "memory_deleted")) && !P.text.value) searchMemory(P);
    },
  };

  function searchMemory(P) {
    const sid = P.swarm.value;
    if (!sid) return;
    request("memory_search", { swarm_id: sid, text: P.text.value || undefined }).then((r) => {
      fill(P.results, h("h2", null, `Entries (${r.entries.length})`), h("div", { class: "scroll" }, h("table", { "data-table": "memory" },
        h("thead", null, h("tr", null, h("th", null, "Key"), h("th", null, "Namespace"), h("th", { class: "num" }, "Version"), h("th", null, "Tags"), h("th", null, "Value"))),
        h("tbody", null, r.entries.map((e) => h("tr", null, h("td", { class: "mono" }, e.key), h("td", null, e.namespace), h("td", { class: "num" }, e.version), h("td", null, (e.tags || []).join(", ")), h("td", null, h("pre", { class: "mono" }, e.value))))))));
    }, (e) => fill(P.results, h("p", { class: "error" }, e.message)));
  }

  function loadDiscoveries(P) {
    const sid = P.swarm.value;
    if (!sid) return;
    request("discoveries", { swarm_id: sid }).then((r) => {
      fill(P.disc, h("h2", null, `Discoveries (${r.discoveries.length}, live)`), h("div", { class: "scroll" }, h("table", { "data-table": "discoveries" },
        h("thead", null, h("tr", null, h("th", null, "When"), h("th", null, "Type"), h("th", null, "Agent"), h("th", { class: "num" }, "Confidence"), h("th", null, "Content"))),
        h("tbody", null, r.discoveries.slice().reverse().map((d) => h("tr", null, h("td", null, fmtTime(d.at)), h("td", null, d.type), h("td", { class: "mono" }, short(d.agent_id)), h("td", { class: "num" }, d.confidence), h("td", null, h("pre", { class: "mono" }, d.content))))))));
    }, (e) => fill(P.disc, h("p", { class: "error" }, e.message)));
  }

  // ---- cluster and MCP servers --------------------------------------------------------------
  VIEWS.cluster = {
    build(_id, P) { P.body = h("div"); return h("div", { "data-view": "cluster" }, h("h1", null, "Cluster"), P.body); },
    update(_id, P) {
      const c = (S.overview && S.overview.cluster) || null;
      if (!c) return fill(P.body, h("p", { class: "muted" }, "loading…"));
      if (!c.enabled) return fill(P.body, h("div", { class: "notenabled", "data-state": "not-enabled" }, "Cluster status is not enabled on this node."));
      fill(P.body, 
        h("div", { class: "grid" },
          h("div", { class: "card" }, h("h2", null, "This node"), h("div", { class: "stat" }, c.self), h("div", { class: "muted small" }, c.adapter)),
          h("div", { class: "card" }, h("h2", null, "Quorum"), h("div", { class: "stat" }, c.quorum ? "yes" : "no"), h("div", { class: "muted small" }, "leader " + (c.leader || "none")))),
        h("div", { class: "card section" }, h("h2", null, "Members"), h("table", { "data-table": "members" },
          h("thead", null, h("tr", null, h("th", null, "Node"), h("th", null, "Health"), h("th", null, "Configured"))),
          h("tbody", null, c.members.map((m) => h("tr", null, h("td", { class: "mono" }, m.node), h("td", null, h("span", { class: "badge " + (m.up ? "s-idle" : "s-failed") }, m.up ? "up" : "down")), h("td", null, m.configured ? "yes" : "no")))))),
        h("div", { class: "card section" }, h("h2", null, "Raft: each durable swarm's leader, members and log"), c.durable.length ? h("div", { class: "scroll" }, h("table", { "data-table": "raft" },
          h("thead", null, h("tr", null, h("th", null, "Swarm"), h("th", null, "Leader"), h("th", null, "Members"), h("th", { class: "num" }, "Term"), h("th", { class: "num" }, "Commit index"), h("th", { class: "num" }, "Applied"), h("th", { class: "num" }, "Snapshot"))),
          h("tbody", null, c.durable.map((x) => h("tr", null, h("td", { class: "mono" }, x.id), h("td", { class: "mono" }, x.leader || "–"), h("td", { class: "mono" }, (x.members || []).join(", ")), h("td", { class: "num" }, x.term), h("td", { class: "num" }, x.commit_index), h("td", { class: "num" }, x.last_applied), h("td", { class: "num" }, x.snapshot_index))))))
          : h("p", { class: "muted" }, "No durable swarms.")));
    },
  };

  VIEWS.mcp = {
    build(_id, P) { P.body = h("div"); return h("div", { "data-view": "mcp" }, h("h1", null, "MCP servers"), P.body); },
    update(_id, P) {
      const m = (S.overview && S.overview.mcp_servers) || null;
      if (!m) return fill(P.body, h("p", { class: "muted" }, "loading…"));
      if (!m.enabled) return fill(P.body, h("div", { class: "notenabled", "data-state": "not-enabled" }, "Managed MCP servers are not enabled on this node."));
      const keys = ["name", "state", "transport", "tools", "calls", "errors", "latency_ms", "restarts"];
      const cell = (v) => Array.isArray(v) ? v.length : v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v);
      fill(P.body, m.error ? h("p", { class: "error" }, m.error) : null, m.servers.length ? h("div", { class: "card" }, h("table", { "data-table": "mcp" },
        h("thead", null, h("tr", null, keys.map((k) => h("th", null, k.replace("_", " "))))),
        h("tbody", null, m.servers.map((x) => h("tr", null, keys.map((k) => h("td", null, k === "state" ? badge(x[k]) : cell(x[k])))))))) : h("p", { class: "muted" }, "No MCP servers configured."));
    },
  };

  // ---- events ------------------------------------------------------------------------------
  VIEWS.events = {
    build(_id, P) {
      P.swarm = h("select", { name: "swarm", onchange: (e) => { S.filters.eventSwarm = e.target.value; changed({ all: true }); } });
      P.type = h("select", { name: "type", onchange: (e) => { S.filters.eventType = e.target.value; changed({ all: true }); } });
      P.body = h("div", { class: "card section" });
      return h("div", { "data-view": "events" }, h("h1", null, "Events"), h("div", { class: "inline row" }, h("label", null, "Swarm", P.swarm), h("label", null, "Type", P.type)), P.body);
    },
    update(_id, P) {
      const swarmIds = [...new Set(S.events.map((e) => e.swarm_id))];
      const types = [...new Set(S.events.map((e) => e.type))].sort();
      const sig = swarmIds.join(",") + "|" + types.join(",");
      if (P.sig !== sig) {
        P.sig = sig;
        fill(P.swarm, h("option", { value: "" }, "all swarms"), ...swarmIds.map((x) => h("option", { value: x, selected: x === S.filters.eventSwarm }, (S.swarms.get(x) || {}).name ? S.swarms.get(x).name + " · " + x : x)));
        fill(P.type, h("option", { value: "" }, "all types"), ...types.map((x) => h("option", { value: x, selected: x === S.filters.eventType }, x)));
      }
      const list = S.events.filter((e) => (!S.filters.eventSwarm || e.swarm_id === S.filters.eventSwarm) && (!S.filters.eventType || e.type === S.filters.eventType)).slice(-300).reverse();
      fill(P.body, list.length ? h("div", { class: "scroll", style: "max-height:70vh" }, h("table", { "data-table": "events" },
        h("thead", null, h("tr", null, h("th", null, "When"), h("th", null, "Type"), h("th", null, "Swarm"), h("th", null, "Task / agent"), h("th", null, "Detail"))),
        h("tbody", null, list.map((e) => h("tr", { "data-type": e.type },
          h("td", null, fmtTime(e.at)), h("td", null, e.type),
          h("td", null, h("a", { href: "#/swarm/" + encodeURIComponent(e.swarm_id), class: "mono" }, (S.swarms.get(e.swarm_id) || {}).name || e.swarm_id)),
          h("td", { class: "mono" }, e.task_id ? h("a", { href: "#/task/" + encodeURIComponent(e.task_id) }, short(e.task_id)) : null, e.task_id && e.agent_id ? " " : null, e.agent_id ? h("a", { href: "#/agent/" + encodeURIComponent(e.agent_id) }, short(e.agent_id)) : null),
          h("td", { class: e.type === "task_failed" ? "error" : "" }, e.detail || "")))))) : h("p", { class: "muted" }, "No events yet: they appear here as the swarms work."));
    },
  };

  // ---- boot -------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("#login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
      $("#token").value = "";
      start();
    });
    changed({ all: true });
    start();
  });
})();
