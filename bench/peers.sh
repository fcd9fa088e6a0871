#!/usr/bin/env bash
# Peer benchmark (`make bench-peers`): ruv_swarm through its stdio bridge
# (target/release/ruv_swarm_mcp -> HTTP -> gateway) against ruv-swarm's own
# stdio MCP server from npm, both driven by the same client (bench/peers.py).
#
# Installs ruv-swarm@$RUV_SWARM_NPM_VERSION into _build/peers (never globally;
# nothing of it is committed), starts a node detached on free ports with a
# bearer token in a temporary RUV_SWARM_HOME, runs the client, and stops the
# node (by its PID file) on exit. Knobs: PEERS_N, PEERS_WARMUP, PEERS_ROUNDS,
# PEERS_MAX_S (see bench/peers.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export MIX_ENV="${MIX_ENV:-prod}"
VERSION="${RUV_SWARM_NPM_VERSION:-1.0.20}"
PEERS="$PWD/_build/peers"
PKG="$PEERS/node_modules/ruv-swarm"

if [ "$(node -p "require('$PKG/package.json').version" 2>/dev/null)" != "$VERSION" ]; then
  echo "Installing ruv-swarm@$VERSION into _build/peers"
  npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error "ruv-swarm@$VERSION" >/dev/null
fi
# ruv-swarm keeps its SQLite database inside its package (data/); bench/peers.py
# empties it before each ruv-swarm process it starts.

cargo build -q --release -p ruv_swarm_mcp
BRIDGE="$PWD/target/release/ruv_swarm_mcp"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
HEALTH=$(free_port)
RUV_SWARM_HOME=$(mktemp -d)
export RUV_SWARM_HOME
THEIRS_CWD=$(mktemp -d)
TOKEN="peers-$RANDOM$RANDOM"

cleanup() {
  mix swarm.mcp stop --timeout 5000 >/dev/null 2>&1 || true
  rm -rf "$RUV_SWARM_HOME" "$THEIRS_CWD"
}
trap cleanup EXIT

mix compile >/dev/null
# ruv-swarm has no rate limiter; ours (500 requests/s per client by default)
# would refuse a bench that calls back to back, so it is off for this node.
RUV_SWARM_RATE_LIMIT=0 RUV_SWARM_TOKENS="$TOKEN" mix swarm.mcp start --detached --port "$PORT" --health-port "$HEALTH" \
  --name "peers_$$@127.0.0.1" >/dev/null

echo "# ruv_swarm node ($MIX_ENV) on 127.0.0.1:$PORT via $BRIDGE; ruv-swarm@$VERSION on node $(node --version)"
PEERS_OURS="$(printf '["%s"]' "$BRIDGE")" \
PEERS_OURS_ENV="$(printf '{"RUV_SWARM_URL":"http://127.0.0.1:%s/mcp","RUV_SWARM_TOKEN":"%s","RUV_SWARM_LOG":"warn"}' "$PORT" "$TOKEN")" \
PEERS_THEIRS="$(printf '["node","%s/bin/ruv-swarm-secure.js","mcp","start"]' "$PKG")" \
PEERS_THEIRS_CWD="$THEIRS_CWD" PEERS_THEIRS_DATA="$PKG/data" \
  python3 bench/peers.py
