"""Independent MCP client check of the gateway, with the official Python SDK.

Runs the same scenario over both protocol eras the SDK speaks:
  * mode="legacy": initialize handshake + Mcp-Session-Id (2025-11-25)
  * mode="auto":   server/discover, then stateless 2026-07-28 requests
Prints one line per check and a closing "N passed, N failed"; exits 1 on any failure.
"""

import asyncio
import sys
import traceback
import warnings

from mcp import Client
from mcp.shared.exceptions import MCPError

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4102/mcp"
EXPECTED_TOOLS = {
    "swarm_init", "swarm_status", "swarm_list", "swarm_destroy", "swarm_monitor",
    "agent_spawn", "agent_list", "agent_metrics", "task_orchestrate", "task_status",
    "task_results", "task_cancel", "task_claim", "task_complete", "memory_store",
    "memory_get", "memory_search", "memory_usage", "share_discovery",
    "subscribe_discoveries", "coordinate", "features_detect", "cluster_status", "benchmark_run",
}

passed = 0
failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


async def scenario(mode, expected_version):
    async with Client(URL, mode=mode, read_timeout_seconds=30) as client:
        tag = f"[{mode}]"
        check(f"{tag} negotiated {expected_version}", client.protocol_version == expected_version,
              f"got {client.protocol_version}")

        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        check(f"{tag} tools/list has exactly the {len(EXPECTED_TOOLS)} tools", EXPECTED_TOOLS == names,
              f"missing {EXPECTED_TOOLS - names}, unexpected {names - EXPECTED_TOOLS}")
        check(f"{tag} every tool has an object inputSchema",
              all(t.input_schema.get("type") == "object" for t in tools.tools))

        init = await client.call_tool("swarm_init", {"topology": "hierarchical", "max_agents": 9, "agents": 3})
        sc = init.structured_content or {}
        check(f"{tag} swarm_init succeeds with structuredContent", not init.is_error and "swarm_id" in sc, str(init))
        swarm_id = sc.get("swarm_id")

        status = await client.call_tool("swarm_status", {"swarm_id": swarm_id})
        st = status.structured_content or {}
        check(f"{tag} swarm_status reports the swarm", not status.is_error and st.get("topology") == "hierarchical"
              and st.get("max_agents") == 9, str(st))
        check(f"{tag} swarm_status counts the agents", (st.get("agents") or {}).get("total") == 3, str(st.get("agents")))
        check(f"{tag} text content mirrors structuredContent",
              status.content and status.content[0].type == "text" and swarm_id in status.content[0].text)

        bad = await client.call_tool("swarm_status", {"swarm_id": "no-such-swarm"})
        check(f"{tag} unknown swarm is a tool error (isError)", bad.is_error is True, str(bad))

        invalid = await client.call_tool("swarm_init", {"topology": "blob"})
        check(f"{tag} schema violation is a tool error naming the field",
              invalid.is_error is True and "topology" in invalid.content[0].text, str(invalid))

        try:
            await client.call_tool("no_such_tool", {})
            check(f"{tag} unknown tool is a protocol error", False, "no error raised")
        except MCPError as e:
            check(f"{tag} unknown tool is a protocol error (-32602)", e.code == -32602, f"code {e.code}")

        progress = []

        async def on_progress(done, total, message):
            progress.append(done)

        bench = await client.call_tool("benchmark_run", {"iterations": 50}, progress_callback=on_progress)
        check(f"{tag} benchmark_run returns per-operation stats",
              not bench.is_error and len((bench.structured_content or {}).get("results", [])) == 3, str(bench))
        check(f"{tag} progress notifications arrive over SSE", len(progress) == 3, str(progress))
        if mode == "legacy":
            await client.send_ping()
            check(f"{tag} ping", True)

        destroyed = await client.call_tool("swarm_destroy", {"swarm_id": swarm_id})
        check(f"{tag} swarm_destroy", not destroyed.is_error, str(destroyed))


async def main():
    # ping is deprecated from 2026-07-28 on; the legacy scenario still tests it.
    warnings.simplefilter("ignore", DeprecationWarning)
    for mode, version in (("legacy", "2025-11-25"), ("auto", "2026-07-28")):
        try:
            await scenario(mode, version)
        except Exception:  # a crash of the scenario is a failure, not a pass
            check(f"[{mode}] scenario ran to the end", False, traceback.format_exc())
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
