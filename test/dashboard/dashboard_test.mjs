// Browser tests of the dashboard: Debian's chromium, driven by
// playwright-core, against a live node started by run.sh (DASHBOARD_URL,
// and DASHBOARD_AUTH_URL for a gateway of the same node with a token).
// Screenshots of every view go to DASHBOARD_ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const URL = process.env.DASHBOARD_URL;
const AUTH_URL = process.env.DASHBOARD_AUTH_URL;
const TOKEN = process.env.DASHBOARD_TOKEN;
const ARTIFACTS = process.env.DASHBOARD_ARTIFACTS || "_build/dashboard-artifacts";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// A persistent context on a fresh profile directory (playwright wants
// the profile as launchPersistentContext's argument, not --user-data-dir);
// each test opens its own page, so each has its own sessionStorage.
let browser;
let profile;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(path.join(tmpdir(), "dashboard-profile-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// One REST call to the gateway's public API (the same tools as MCP).
async function api(tool, args, base = URL, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = "Bearer " + token;
  const r = await fetch(`${base}/api/mcp/${tool}`, { method: "POST", headers, body: JSON.stringify(args) });
  const body = await r.json();
  assert.ok(r.ok && body.success !== false, `${tool} failed: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

// A page that records console errors and failed requests.
async function open(base = URL, size = { width: 1280, height: 800 }) {
  const page = await browser.newPage();
  await page.setViewportSize(size);
  const context = page;
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("pageerror: " + e.message));
  page.on("requestfailed", (r) => problems.push("requestfailed: " + r.url()));
  page.on("request", (r) => {
    const u = new globalThis.URL(r.url());
    if (u.hostname !== "127.0.0.1" && u.hostname !== "localhost") problems.push("off-node request: " + r.url());
  });
  await page.goto(base + "/");
  return { page, context, problems };
}

async function live(page) {
  await page.waitForFunction(() => window.__dashboard && window.__dashboard.connected && window.__dashboard.rev >= 0 && window.__dashboard.epoch, null, { timeout: 10_000 });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, name + ".png"), fullPage: true });
}

test("the page loads live with no console errors, and every view renders", async () => {
  const { page, context, problems } = await open();
  await live(page);
  await page.waitForSelector('main [data-view="overview"] [data-stat="node"]');
  await shot(page, "overview");
  for (const view of ["swarms", "memory", "cluster", "mcp", "events"]) {
    await page.click(`#nav a[data-view="${view}"]`);
    await page.waitForSelector(`main [data-view="${view}"]`);
    await page.waitForTimeout(300);
    await shot(page, view);
  }
  // MCP servers are another engineer's work: "not enabled" until then.
  await page.click('#nav a[data-view="mcp"]');
  await page.waitForFunction(() => /not enabled|No MCP servers|name/.test((document.querySelector('main [data-view="mcp"]') || {}).textContent || ""));
  assert.deepEqual(problems, []);
  await context.close();
});

test("a swarm created through the API appears within 1 s, without a reload", async () => {
  const { page, context, problems } = await open();
  await live(page);
  await page.click('#nav a[data-view="swarms"]');
  await page.waitForSelector('main [data-view="swarms"]');
  const nav = await page.evaluate(() => performance.getEntriesByType("navigation").length);
  const name = "api-made-" + Date.now();
  const t0 = Date.now();
  const made = await api("swarm_init", { name, topology: "ring", agents: 4, storage: "memory" });
  const id = made.swarm_id;
  await page.waitForSelector(`tr[data-swarm-id="${id}"]`, { timeout: 1000 });
  const took = Date.now() - t0;
  console.log(`# swarm visible ${took} ms after swarm_init returned`);
  assert.equal(await page.evaluate(() => performance.getEntriesByType("navigation").length), nav);
  await page.click(`tr[data-swarm-id="${id}"] a`);
  await page.waitForSelector('svg[data-graph="topology"] circle[data-agent]');
  assert.equal(await page.locator('svg[data-graph="topology"] circle[data-agent]').count(), 4);
  await shot(page, "swarm");
  assert.deepEqual(problems, []);
  await context.close();
});

test("a running task turns completed live; its agent shows a timeline", async () => {
  const sw = await api("swarm_init", { name: "live-task", topology: "star", storage: "memory" });
  const agent = await api("agent_spawn", { swarm_id: sw.swarm_id, command: ["sleep", "1.5"] });
  const { page, context, problems } = await open();
  await live(page);
  await page.goto(URL + "/#/swarm/" + encodeURIComponent(sw.swarm_id));
  const task = await api("task_orchestrate", { swarm_id: sw.swarm_id, task: "wait a little" });
  const row = `tr[data-task-id="${task.task_id}"]`;
  await page.waitForSelector(`${row}[data-status="running"]`, { timeout: 3000 });
  await page.waitForSelector(`${row}[data-status="completed"]`, { timeout: 6000 });
  await page.goto(URL + "/#/agent/" + encodeURIComponent(agent.agent_id));
  await page.waitForSelector('svg[data-graph="gantt"] rect');
  await shot(page, "agent");
  assert.deepEqual(problems, []);
  await context.close();
});

test("the DAG of a 3-step task shows three nodes with the right states", async () => {
  const sw = await api("swarm_init", { name: "dag", topology: "mesh", storage: "memory" });
  await api("agent_spawn", { swarm_id: sw.swarm_id, command: ["cat"] });
  await api("agent_spawn", { swarm_id: sw.swarm_id, command: ["cat"] });
  const { page, context, problems } = await open();
  await live(page);
  await page.goto(URL + "/#/swarm/" + encodeURIComponent(sw.swarm_id));
  const form = page.locator('form[data-form="submit-task"]');
  await form.locator('input[name="description"]').fill("three steps");
  await form.locator('textarea[name="subtasks"]').fill("fetch: one\nparse <- fetch: two\nreport <- parse: three");
  await form.locator('button[type="submit"]').click();
  await page.waitForSelector('[data-table="tasks"] tr[data-task-id][data-status="completed"]', { timeout: 6000 });
  await page.click('[data-table="tasks"] tr[data-task-id] a');
  await page.waitForSelector('svg[data-graph="dag"] g.dag-node');
  await page.waitForFunction(() => document.querySelectorAll('svg[data-graph="dag"] g.dag-node[data-status="completed"]').length === 3, null, { timeout: 5000 });
  const nodes = await page.$$eval('svg[data-graph="dag"] g.dag-node', (gs) => gs.map((g) => [g.dataset.unit, g.dataset.status]));
  assert.deepEqual(nodes.sort(), [["fetch", "completed"], ["parse", "completed"], ["report", "completed"]]);
  assert.equal(await page.locator('svg[data-graph="dag"] path.dag-edge').count(), 2);
  await shot(page, "task");
  assert.deepEqual(problems, []);
  await context.close();
});

test("cancel from the page cancels, and a refused action shows its sentence", async () => {
  const sw = await api("swarm_init", { name: "cancel-me", topology: "mesh", storage: "memory" });
  await api("agent_spawn", { swarm_id: sw.swarm_id, command: ["sleep", "30"] });
  const task = await api("task_orchestrate", { swarm_id: sw.swarm_id, task: "a long one" });
  const { page, context, problems } = await open();
  await live(page);
  await page.goto(URL + "/#/swarm/" + encodeURIComponent(sw.swarm_id));
  const row = `tr[data-task-id="${task.task_id}"]`;
  await page.waitForSelector(`${row}[data-status="running"]`, { timeout: 5000 });
  await page.click(`${row} button[data-action="cancel"]`);
  await page.waitForSelector(`${row}[data-status="cancelled"]`, { timeout: 3000 });
  const status = await api("task_status", { task_id: task.task_id });
  assert.equal(status.status, "cancelled");
  // Retry it: a new task; and a refused action says why.
  await page.click(`${row} button[data-action="retry"]`);
  await page.waitForFunction(() => location.hash.startsWith("#/task/"));
  const answer = await page.evaluate(async () => {
    const S = window.__dashboard;
    return new Promise((resolve) => {
      const ref = ++S.ref;
      S.pending.set(ref, { resolve, reject: (e) => resolve({ error: e.message }) });
      S.ws.send(JSON.stringify({ op: "action", ref, action: "create_swarm", topology: "torus" }));
    });
  });
  assert.equal(answer.ok, false);
  assert.match(answer.error, /topology must be one of/);
  assert.deepEqual(problems, []);
  await context.close();
});

test("with tokens set, the page shows no data until a valid token is entered", { skip: !AUTH_URL }, async () => {
  const secret = await api("swarm_init", { name: "secret-swarm", storage: "memory" }, AUTH_URL, TOKEN);
  const { page, context } = await open(AUTH_URL);
  await page.waitForSelector("#login:not([hidden])");
  assert.equal(await page.locator("[data-swarm-id]").count(), 0);
  assert.equal(await page.evaluate(() => window.__dashboard.swarms.size), 0);
  await page.fill("#token", "not-the-right-token");
  await page.click('#login-form button[type="submit"]');
  await page.waitForFunction(() => /not accepted/.test(document.querySelector("#login-error").textContent));
  assert.equal(await page.evaluate(() => window.__dashboard.swarms.size), 0);
  await shot(page, "login");
  await page.fill("#token", TOKEN);
  await page.click('#login-form button[type="submit"]');
  await live(page);
  await page.click('#nav a[data-view="swarms"]');
  await page.waitForSelector(`tr[data-swarm-id="${secret.swarm_id}"]`);
  // The token is kept for the tab only.
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("ruvSwarmToken")), TOKEN);
  await context.close();
});

test("a lost connection resumes without a reload, and a narrow window works", async () => {
  const { page, context, problems } = await open(URL, { width: 420, height: 800 });
  await live(page);
  const epoch = await page.evaluate(() => window.__dashboard.epoch);
  await page.evaluate(() => window.__dashboard.ws.close());
  await page.waitForFunction(() => !window.__dashboard.connected);
  const made = await api("swarm_init", { name: "while-away", storage: "memory" });
  await page.waitForFunction(() => window.__dashboard.connected, null, { timeout: 5000 });
  await page.click('#nav a[data-view="swarms"]');
  await page.waitForSelector(`tr[data-swarm-id="${made.swarm_id}"]`, { timeout: 3000 });
  assert.equal(await page.evaluate(() => window.__dashboard.epoch), epoch);
  await shot(page, "narrow");
  // A dropped connection logs a console error in Chromium only when it fails; closing is clean.
  assert.deepEqual(problems.filter((p) => !/WebSocket/.test(p)), []);
  await context.close();
});
