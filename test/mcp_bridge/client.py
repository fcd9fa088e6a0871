"""End-to-end check of the ruv_swarm_mcp stdio bridge with the official MCP
Python SDK as the client: SDK -> stdio -> bridge -> HTTP -> gateway -> engine.

Environment: RUV_SWARM_MCP_BIN (bridge binary), RUV_SWARM_URL (gateway /mcp),
RUV_SWARM_TOKEN (the token the gateway accepts). Prints one line per check
and a closing "N passed, N failed"; exits non-zero on any failure.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

BIN = os.environ["RUV_SWARM_MCP_BIN"]
URL = os.environ["RUV_SWARM_URL"]
TOKEN = os.environ.get("RUV_SWARM_TOKEN", "")

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}", flush=True)


def bridge(token):
    env = {"PATH": os.environ.get("PATH", ""), "RUV_SWARM_URL": URL, "RUV_SWARM_LOG": "warn"}
    if token is not None:
        env["RUV_SWARM_TOKEN"] = token
    return StdioServerParameters(command=BIN, args=[], env=env)


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def session_checks():
    async with stdio_client(bridge(TOKEN)) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check("initialize reaches the gateway", bool(init.server_info.name), init)
            check("tools capability advertised", init.capabilities.tools is not None, init.capabilities)

            tools = (await session.list_tools()).tools
            names = {t.name for t in tools}
            check("tools/list through the bridge", {"swarm_init", "agent_spawn", "task_orchestrate"} <= names, names)
            check("every tool has an input schema", all(t.input_schema for t in tools))

            created = await session.call_tool("swarm_init", {"topology": "mesh", "agents": 5})
            body = text_of(created)
            check("swarm_init with five agents", not created.is_error, body)
            swarm_id = None
            try:
                payload = created.structured_content or json.loads(body)
                swarm_id = payload.get("swarm_id") or payload.get("id") or payload.get("swarm", {}).get("id")
            except Exception as e:  # noqa: BLE001 - report, do not crash
                check("swarm_init returns JSON", False, f"{e}: {body!r}")

            status = await session.call_tool("swarm_status", {"swarm_id": swarm_id})
            check("swarm_status shows 5 agents", not status.is_error and '"total":5' in text_of(status).replace(" ", ""),
                  text_of(status)[:300])

            bad = await session.call_tool("swarm_status", {"swarm_id": "no-such-swarm"})
            check("tool errors come back as tool errors", bad.is_error, text_of(bad))

            try:
                unknown = await session.call_tool("no_such_tool", {})
                check("unknown tool is an error", unknown.is_error, unknown)
            except MCPError as e:  # a JSON-RPC error is also a correct answer
                check("unknown tool is an error", "no_such_tool" in str(e), e)

            await session.send_ping()
            check("ping", True)

            destroyed = await session.call_tool("swarm_destroy", {"swarm_id": swarm_id})
            check("swarm_destroy", not destroyed.is_error, text_of(destroyed))


async def wrong_token_check():
    """The gateway refuses a wrong token, and the bridge's log says so."""
    with tempfile.TemporaryFile(mode="w+") as errlog:
        outcome = "initialize succeeded"
        try:
            async with stdio_client(bridge("not-the-token"), errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await asyncio.wait_for(session.initialize(), 10)
        except BaseException as e:  # noqa: BLE001 - the SDK wraps the error in task groups
            outcome = repr(e)
        errlog.seek(0)
        log = errlog.read()
    # The client's error names the refusal, and so does the bridge's log.
    check("a wrong token is refused, and the bridge says why",
          "Auth required" in outcome and "invalid_token" in log, (outcome, log[-300:]))


def raw_stdout_check():
    """stdout must carry nothing but JSON-RPC messages, even with debug logs on."""
    env = {"PATH": os.environ.get("PATH", ""), "RUV_SWARM_URL": URL, "RUV_SWARM_TOKEN": TOKEN, "RUV_SWARM_LOG": "trace"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "1"}}}
    messages = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    proc = subprocess.run([BIN], input="".join(json.dumps(m) + "\n" for m in messages),
                          capture_output=True, text=True, env=env, timeout=30)
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    try:
        parsed = [json.loads(l) for l in lines]
        ok = all(p.get("jsonrpc") == "2.0" for p in parsed) and {p.get("id") for p in parsed} >= {1, 2}
    except ValueError as e:
        ok, parsed = False, e
    check("stdout carries only JSON-RPC (logs on stderr)", ok and proc.returncode == 0 and proc.stderr != "",
          (proc.returncode, lines[:3], proc.stderr[-300:]))


async def main():
    try:
        await session_checks()
    except BaseException as e:  # noqa: BLE001
        check("session", False, repr(e))
    await wrong_token_check()
    raw_stdout_check()
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
