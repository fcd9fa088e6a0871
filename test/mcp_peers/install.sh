#!/usr/bin/env bash
# Installs the third-party MCP servers the McpServers tests run against,
# pinned, into _build/mcp_peers (never globally). Idempotent: does nothing
# when the pinned versions are already there. `make mcp-peers` runs it, and
# `make test`/`make mix-test` depend on that target.
set -euo pipefail
cd "$(dirname "$0")/../.."

EVERYTHING_VERSION="2026.8.31"
FILESYSTEM_VERSION="2026.8.31"
MCP_SDK_VERSION="2.3.0"
PEERS="$PWD/_build/mcp_peers"
mkdir -p "$PEERS"

installed() {
  node -e "process.exit(require('$PEERS/node_modules/$1/package.json').version === '$2' ? 0 : 1)" 2>/dev/null
}

if ! installed @modelcontextprotocol/server-everything "$EVERYTHING_VERSION" ||
   ! installed @modelcontextprotocol/server-filesystem "$FILESYSTEM_VERSION"; then
  echo "Installing MCP test servers from npm into _build/mcp_peers"
  npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION" \
    "@modelcontextprotocol/server-filesystem@$FILESYSTEM_VERSION" >/dev/null
fi

if [ ! -x "$PEERS/venv/bin/python" ]; then
  python3 -m venv "$PEERS/venv"
fi
if ! "$PEERS/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_SDK_VERSION')" 2>/dev/null; then
  echo "Installing the Python MCP SDK $MCP_SDK_VERSION into _build/mcp_peers/venv"
  "$PEERS/venv/bin/pip" install --quiet "mcp==$MCP_SDK_VERSION"
fi
