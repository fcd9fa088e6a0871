#!/usr/bin/env bash
# Independent MCP client test: the official Python SDK (pinned) against a
# gateway started on a free loopback port. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

MCP_SDK_VERSION="2.3.0"
VENV=".venv"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_SDK_VERSION')" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet "mcp==$MCP_SDK_VERSION"
fi

PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export MIX_ENV=test
mix compile >/dev/null

LOG="$(mktemp)"
RUV_SWARM_GATEWAY=on RUV_SWARM_IP=127.0.0.1 RUV_SWARM_PORT="$PORT" \
  mix run --no-start --no-halt test/mcp_client/start_gateway.exs >"$LOG" 2>&1 &
NODE_PID=$!
# Stop only the node this script started.
trap 'kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; rm -f "$LOG"' EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$NODE_PID" 2>/dev/null; then cat "$LOG"; echo "gateway exited before it was ready"; exit 1; fi
  sleep 0.5
done
grep -m1 "gateway up" "$LOG" || { cat "$LOG"; echo "gateway did not come up"; exit 1; }

"$VENV/bin/python" test/mcp_client/test_gateway.py "http://127.0.0.1:$PORT/mcp"
