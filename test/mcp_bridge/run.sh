#!/usr/bin/env bash
# End-to-end test of the stdio bridge: the official MCP Python SDK drives
# native/ruv_swarm_mcp over stdio, which forwards to a real node's gateway.
# Starts the node detached on free ports with a bearer token, in a temporary
# RUV_SWARM_HOME, and stops it (by its PID file) on exit.
# Prints "N passed, N failed"; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
export MIX_ENV="${MIX_ENV:-test}"

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mcp' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q "mcp==2.3.0"
fi

cargo build -q -p ruv_swarm_mcp
export RUV_SWARM_MCP_BIN="${RUV_SWARM_MCP_BIN:-$PWD/target/debug/ruv_swarm_mcp}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
HEALTH=$(free_port)
RUV_SWARM_HOME=$(mktemp -d)
export RUV_SWARM_HOME
TOKEN="bridge-test-$RANDOM$RANDOM"

cleanup() {
  mix swarm.mcp stop --timeout 5000 >/dev/null 2>&1 || true
  rm -rf "$RUV_SWARM_HOME"
}
trap cleanup EXIT

mix compile >/dev/null
RUV_SWARM_TOKENS="$TOKEN" mix swarm.mcp start --detached --port "$PORT" --health-port "$HEALTH" \
  --name "bridge_test_$$@127.0.0.1"

RUV_SWARM_URL="http://127.0.0.1:$PORT/mcp" RUV_SWARM_TOKEN="$TOKEN" .venv/bin/python test/mcp_bridge/client.py
