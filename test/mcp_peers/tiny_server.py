"""A small MCP server written with the official Python SDK (mcp 2.x), used
by test/swarm_service/mcp_servers_test.exs. One tool per behaviour the
tests need: answers, slowness, hangs (recording notifications/cancelled),
dying mid-call, progress, and a tool list that changes.

Usage: tiny_server.py [stdio|garbage]
  garbage: writes lines that are not JSON on stdout before serving.
"""

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("tiny", version="1.0.0")
MARKER = os.environ.get("TINY_CANCEL_MARKER")


@server.tool(description="Adds two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Echoes the message back.")
def echo(message: str) -> str:
    return message


@server.tool(description="Sleeps for the given seconds, then answers.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@server.tool(description="Never answers; writes the cancel marker file when cancelled.")
async def hang() -> str:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        if MARKER:
            with open(MARKER, "w") as f:
                f.write("cancelled")
        raise
    return "never"


@server.tool(description="Exits the server process in the middle of the call.")
async def die() -> str:
    await asyncio.sleep(0.05)
    os._exit(3)


@server.tool(description="Reports progress three times, then answers.")
async def steps(ctx: Context) -> str:
    for i in range(1, 4):
        await ctx.report_progress(i, 3, f"step {i}")
        await asyncio.sleep(0.05)
    return "stepped"


@server.tool(description="Adds the tool 'extra' and announces the new tool list.")
async def grow(ctx: Context) -> str:
    def extra() -> str:
        return "extra"

    server.add_tool(extra, name="extra", description="Added at run time.")
    await ctx.request_context.session.send_tool_list_changed()
    return "grown"


@server.tool(description="Fails as a tool (isError).")
def broken() -> str:
    raise ValueError("broken on purpose")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "garbage":
        sys.stdout.write("this is not JSON\n{ neither is this\n")
        sys.stdout.flush()
    server.run("stdio")
