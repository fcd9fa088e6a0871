#!/usr/bin/env python3
"""Peer benchmark: ruv_swarm through its stdio bridge vs ruv-swarm's own stdio server.

Run by bench/peers.sh (`make bench-peers`), which installs ruv-swarm from npm
into _build/peers, starts a ruv_swarm node and sets the environment below.
Both servers are driven by the same client: this file's StdioClient, plain
newline-delimited JSON-RPC over the child's stdin/stdout, `initialize` and
`notifications/initialized` first, one request in flight at a time.

For each tool (swarm_status, agent_spawn, task_orchestrate) each server gets
WARMUP untimed calls, then N timed calls in ROUNDS alternating blocks (ours,
theirs, ours, ...) so machine noise lands on both alike; a measurement stops
early after MAX_S seconds. Every call is a real tools/call: results are
checked (the swarm, agent or task it names) and an error or an unexpected
result fails the run. Each server is called with its own argument names
(ours snake_case, ruv-swarm camelCase); task_orchestrate asks both for one
agent. agent_spawn and task_orchestrate calls start in distinct wall-clock
milliseconds on both sides (ruv-swarm's ids are Date.now(); see measure).

Prints one JSON line per measurement, then a table of p50/p99 and the
ours/theirs ratio (below 1.0: ours is faster), then one PASS/FAIL line per
tool for the goal (ours below theirs at p50 and at p99) and an overall
verdict; exits 1 when the goal is not met.

Environment:
  PEERS_OURS     command line of our bridge (JSON list)
  PEERS_OURS_ENV extra environment for it (JSON object; RUV_SWARM_URL and
                 RUV_SWARM_TOKEN also drive the HTTP row)
  PEERS_THEIRS   command line of ruv-swarm's stdio server (JSON list)
  PEERS_THEIRS_CWD  working directory for it
  PEERS_N (1000), PEERS_WARMUP (100), PEERS_ROUNDS (10), PEERS_MAX_S (60)
  PEERS_STORAGE  storage of our swarms: memory (default: like ruv-swarm, which
                 does not wait for its disk before it answers) or disk (every
                 write fdatasync'ed in the swarm's Raft log before the answer)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

N = int(os.environ.get("PEERS_N", "1000"))
WARMUP = int(os.environ.get("PEERS_WARMUP", "100"))
ROUNDS = max(1, int(os.environ.get("PEERS_ROUNDS", "10")))
MAX_S = float(os.environ.get("PEERS_MAX_S", "60"))
STORAGE = os.environ.get("PEERS_STORAGE", "memory")
CALL_TIMEOUT_S = 30.0
AGENTS_PER_SWARM = 100  # ruv-swarm caps maxAgents at 100; ours is given the same cap
SPAWN_WARMUP = 10
DIRECT = "ruv_swarm (HTTP, no bridge)"


class CallError(Exception):
    pass


class StdioClient:
    """One MCP server child process spoken to over stdio, one request at a time."""

    def __init__(self, name, argv, env, cwd=None):
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(os.environ.get("PEERS_STDERR", os.devnull), "ab"),
            env=env,
            cwd=cwd,
        )
        self.next_id = 0
        self.skipped_lines = 0

    def request(self, method, params):
        """Sends one request; returns (message, elapsed ns until its answer's line was read)."""
        self.next_id += 1
        rid = self.next_id
        line = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode() + b"\n"
        deadline = time.monotonic() + CALL_TIMEOUT_S
        start = time.perf_counter_ns()
        self.proc.stdin.write(line)
        self.proc.stdin.flush()
        while True:
            raw = self.proc.stdout.readline()
            got = time.perf_counter_ns()
            if not raw:
                raise CallError(f"{self.name}: server closed stdout during {method}")
            message = self._parse(raw)
            if message is not None and message.get("id") == rid and ("result" in message or "error" in message):
                return message, got - start
            if time.monotonic() > deadline:
                raise CallError(f"{self.name}: no answer to {method} in {CALL_TIMEOUT_S}s")

    def notify(self, method, params=None):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def _parse(self, raw):
        # ruv-swarm also prints banners and log lines on stdout: skip non-JSON.
        try:
            message = json.loads(raw)
        except ValueError:
            self.skipped_lines += 1
            return None
        return message if isinstance(message, dict) else None

    def initialize(self):
        message, _ = self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "ruv_swarm-peers-bench", "version": "1"},
            },
        )
        if "error" in message:
            raise CallError(f"{self.name}: initialize failed: {message['error']}")
        self.notify("notifications/initialized")
        return message["result"]

    def call(self, tool, arguments):
        """tools/call; returns (structured result, elapsed ns). Raises on any error."""
        message, elapsed = self.request("tools/call", {"name": tool, "arguments": arguments})
        if "error" in message:
            raise CallError(f"{self.name}: {tool} failed: {message['error']}")
        result = message["result"]
        if result.get("isError"):
            raise CallError(f"{self.name}: {tool} returned an error: {result}")
        return result, elapsed

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HttpClient(StdioClient):
    """Our gateway's /mcp over one kept-alive HTTP/1.1 connection, without the bridge.

    Not a contestant: it measures the gateway alone in the same run, so the
    bridge's own cost (bridge minus this) is quoted next to the result. A
    plain socket with a hand-written request and a Content-Length read, so
    the client costs about what the stdio client does."""

    def __init__(self, name, url, token):
        self.name = name
        hostport = url.split("//", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = (
            f"POST /mcp HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        ).encode()
        self.session = b""
        self.next_id = 0
        self.buffer = b""

    def _exchange(self, body):
        self.sock.sendall(self.head + self.session + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if not head.startswith(b"HTTP/1.1 2") or b"content-length" not in headers:
            raise CallError(f"{self.name}: unexpected HTTP answer: {head[:200]!r}")
        length = int(headers[b"content-length"])
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if b"mcp-session-id" in headers and not self.session:
            self.session = b"Mcp-Session-Id: " + headers[b"mcp-session-id"] + b"\r\nMCP-Protocol-Version: 2025-06-18\r\n"
        return body

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise CallError(f"{self.name}: gateway closed the connection")
        self.buffer += chunk

    def request(self, method, params):
        self.next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).encode()
        start = time.perf_counter_ns()
        raw = self._exchange(body)
        elapsed = time.perf_counter_ns() - start
        return json.loads(raw), elapsed

    def notify(self, method, params=None):
        self._exchange(json.dumps({"jsonrpc": "2.0", "method": method}).encode())

    def close(self):
        self.sock.close()


def payload(result):
    """The JSON a tool returned: structuredContent, else the first text block."""
    if isinstance(result.get("structuredContent"), dict):
        return result["structuredContent"]
    for block in result.get("content", []):
        if block.get("type") == "text":
            try:
                return json.loads(block["text"])
            except ValueError:
                return {}
    return {}


class Ours:
    """ruv_swarm's tool names and snake_case arguments."""

    label = "ruv_swarm (bridge)"

    def __init__(self, client, label=None):
        self.client = client
        self.label = label or Ours.label
        self.swarm = None

    def swarm_init(self):
        args = {"topology": "mesh", "max_agents": AGENTS_PER_SWARM, "storage": STORAGE}
        result, _ = self.client.call("swarm_init", args)
        self.swarm = payload(result)["swarm_id"]

    def swarm_status(self, i):
        result, elapsed = self.client.call("swarm_status", {"swarm_id": self.swarm})
        expect(self.label, "swarm_status", result, lambda p: self.swarm in json.dumps(p))
        return result, elapsed

    def agent_spawn(self, i):
        result, elapsed = self.client.call("agent_spawn", {"swarm_id": self.swarm, "type": "researcher"})
        expect(self.label, "agent_spawn", result, lambda p: p.get("agent_id") and p.get("swarm_id") == self.swarm)
        return result, elapsed

    def task_orchestrate(self, i):
        result, elapsed = self.client.call(
            "task_orchestrate", {"swarm_id": self.swarm, "description": f"peer bench task {i}", "max_agents": 1}
        )
        expect(self.label, "task_orchestrate", result, lambda p: p.get("task_id") and p.get("swarm_id") == self.swarm)
        return result, elapsed


class Theirs:
    """ruv-swarm's tool names and camelCase arguments.

    ruv-swarm 1.0.20 rejects its own swarm ids ("swarm-<digits>") against its
    swarmId pattern (^[a-fA-F0-9-]+$), so calls go without swarmId: agent_spawn
    and task_orchestrate then use the first swarm and swarm_status reports all
    swarms, which is that one swarm here."""

    label = "ruv-swarm (npm)"

    def __init__(self, client):
        self.client = client
        self.swarm = None

    def swarm_init(self):
        result, _ = self.client.call("swarm_init", {"topology": "mesh", "maxAgents": AGENTS_PER_SWARM})
        self.swarm = payload(result).get("id")
        if not self.swarm:
            raise CallError(f"{self.label}: swarm_init returned no id: {result}")

    def swarm_status(self, i):
        result, elapsed = self.client.call("swarm_status", {})
        expect(self.label, "swarm_status", result, lambda p: p.get("swarms", [{}])[0].get("id") == self.swarm)
        return result, elapsed

    def agent_spawn(self, i):
        result, elapsed = self.client.call("agent_spawn", {"type": "researcher"})
        expect(self.label, "agent_spawn", result, lambda p: p.get("agent", {}).get("id") and p.get("swarm_info", {}).get("id") == self.swarm)
        return result, elapsed

    def task_orchestrate(self, i):
        result, elapsed = self.client.call("task_orchestrate", {"task": f"peer bench task {i}", "maxAgents": 1})
        expect(self.label, "task_orchestrate", result, lambda p: p.get("taskId") and len(p.get("assigned_agents", [])) == 1)
        return result, elapsed


def expect(label, tool, result, check):
    """Raises unless check(payload) holds: a call only counts if it did its job."""
    data = payload(result)
    if not check(data):
        raise CallError(f"{label}: {tool} returned an unexpected result: {json.dumps(data)[:500]}")


def next_millisecond(after_ms):
    """Spins until the wall clock is past after_ms (see measure's distinct_ms)."""
    while time.time_ns() // 1_000_000 <= after_ms:
        pass


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def measure(calls, n, warmup, samples, distinct_ms=False):
    """calls: {label: fn(i)}. Warm-up, then alternating timed blocks; appends ns to samples[label].

    distinct_ms: start each call in a later wall-clock millisecond than the
    previous call ended in. ruv-swarm 1.0.20 names agents and tasks
    `agent-${Date.now()}` / `task-${Date.now()}`; two in one millisecond
    collide on its SQLite primary key (agent_spawn then dies with an unhandled
    rejection). Both servers get the same pacing; the wait is not timed."""
    last_ms = [0]

    def call(fn, i):
        if distinct_ms:
            next_millisecond(last_ms[0])
        result = fn(i)
        last_ms[0] = time.time_ns() // 1_000_000
        return result

    for fn in calls.values():
        for i in range(warmup):
            call(fn, -1 - i)
    block = max(1, n // ROUNDS)
    started = time.monotonic()
    i = 0
    while i < n and time.monotonic() - started < MAX_S:
        size = min(block, n - i)
        for label, fn in calls.items():
            for k in range(size):
                _, elapsed = call(fn, i + k)
                samples[label].append(elapsed)
        i += size
    return samples


def start_theirs():
    """A fresh ruv-swarm stdio server on an empty database, with one swarm."""
    data = os.environ.get("PEERS_THEIRS_DATA")
    if data:
        shutil.rmtree(data, ignore_errors=True)
    client = StdioClient("theirs", json.loads(os.environ["PEERS_THEIRS"]), dict(os.environ), os.environ.get("PEERS_THEIRS_CWD"))
    client.initialize()
    theirs = Theirs(client)
    theirs.swarm_init()
    return theirs


def summary(tool, samples):
    stats = {}
    for label, values in samples.items():
        values.sort()
        stats[label] = {
            "n": len(values),
            "p50_us": round(percentile(values, 50) / 1000, 1),
            "p99_us": round(percentile(values, 99) / 1000, 1),
            "mean_us": round(sum(values) / len(values) / 1000, 1),
        }
        print(json.dumps({"bench": "peers", "tool": tool, "server": label, **stats[label]}), flush=True)
    return stats


def main():
    ours_env = {**os.environ, **json.loads(os.environ.get("PEERS_OURS_ENV", "{}"))}
    ours = Ours(StdioClient("ours", json.loads(os.environ["PEERS_OURS"]), ours_env))
    direct = Ours(HttpClient("direct", ours_env["RUV_SWARM_URL"], ours_env["RUV_SWARM_TOKEN"]), DIRECT)
    theirs = None
    rows = []
    try:
        print(f"# {Ours.label}: {ours.client.initialize().get('serverInfo')}", file=sys.stderr)
        direct.client.initialize()

        # agent_spawn: ruv-swarm holds at most 100 agents in the one swarm it
        # can address, so it runs in batches, each on a fresh ruv-swarm
        # process (empty database) and a fresh swarm of ours: SPAWN_WARMUP
        # untimed and then the rest of the swarm's 100 agents timed.
        spawn = {Ours.label: [], Theirs.label: [], DIRECT: []}
        timed_per_batch = AGENTS_PER_SWARM - SPAWN_WARMUP
        batches = max(1, -(-N // timed_per_batch))
        for batch in range(batches):
            if theirs is not None:
                theirs.client.close()
            theirs = start_theirs()
            ours.swarm_init()
            direct.swarm_init()
            calls = {Ours.label: ours.agent_spawn, Theirs.label: theirs.agent_spawn, DIRECT: direct.agent_spawn}
            measure(calls, min(timed_per_batch, N - batch * timed_per_batch), SPAWN_WARMUP, spawn, distinct_ms=True)
        spawn_stats = summary("agent_spawn", spawn)

        # swarm_status and task_orchestrate on the last batch's swarms: one
        # swarm of 100 agents on each side.
        for tool in ("swarm_status", "task_orchestrate"):
            calls = {Ours.label: getattr(ours, tool), Theirs.label: getattr(theirs, tool), DIRECT: getattr(direct, tool)}
            samples = measure(calls, N, WARMUP, {label: [] for label in calls}, distinct_ms=tool == "task_orchestrate")
            rows.append((tool, summary(tool, samples)))
        rows.insert(1, ("agent_spawn", spawn_stats))
    finally:
        ours.client.close()
        direct.client.close()
        if theirs is not None:
            theirs.client.close()

    print()
    print(f"{'tool':<18}{'server':<28}{'n':>6}{'p50 µs':>10}{'p99 µs':>10}{'p50 ratio':>11}{'p99 ratio':>11}")
    wins = True
    for tool, stats in rows:
        o, t = stats[Ours.label], stats[Theirs.label]
        r50, r99 = o["p50_us"] / t["p50_us"], o["p99_us"] / t["p99_us"]
        wins = wins and r50 < 1 and r99 < 1
        d = stats[DIRECT]
        print(f"{tool:<18}{Ours.label:<28}{o['n']:>6}{o['p50_us']:>10.1f}{o['p99_us']:>10.1f}{r50:>11.2f}{r99:>11.2f}")
        print(f"{'':<18}{Theirs.label:<28}{t['n']:>6}{t['p50_us']:>10.1f}{t['p99_us']:>10.1f}")
        print(f"{'':<18}{DIRECT:<28}{d['n']:>6}{d['p50_us']:>10.1f}{d['p99_us']:>10.1f}")
    for tool, stats in rows:
        o, t = stats[Ours.label], stats[Theirs.label]
        hop = round(o["p50_us"] - stats[DIRECT]["p50_us"], 1)
        print(json.dumps({"bench": "peers", "tool": tool, "ratio_p50": round(o["p50_us"] / t["p50_us"], 3), "ratio_p99": round(o["p99_us"] / t["p99_us"], 3), "bridge_hop_p50_us": hop}))
    print()
    print("ratio = ours / theirs (below 1.00: ours is faster); the HTTP row is our gateway")
    print("without the bridge (not a contestant): bridge minus HTTP is the bridge's own cost")
    for tool, stats in rows:
        o, t = stats[Ours.label], stats[Theirs.label]
        ok = o["p50_us"] < t["p50_us"] and o["p99_us"] < t["p99_us"]
        print(
            f"{'PASS' if ok else 'FAIL'} {tool}: p50 {o['p50_us']:.1f} vs {t['p50_us']:.1f} µs, "
            f"p99 {o['p99_us']:.1f} vs {t['p99_us']:.1f} µs (ours vs theirs)"
        )
    print("goal (ours faster at p50 and p99 on every tool): " + ("PASS" if wins else "FAIL"))
    return wins


if __name__ == "__main__":
    try:
        sys.exit(0 if main() else 1)
    except CallError as e:
        print(f"peers: {e}", file=sys.stderr)
        sys.exit(1)
