#!/usr/bin/env bash
# The dashboard in a real browser: Debian's chromium driven by playwright-core
# (test/dashboard/package-lock.json, installed into test/dashboard/node_modules;
# never a downloaded browser) against a node started here on free loopback
# ports. Screenshots go to _build/dashboard-artifacts. Exits non-zero when a
# test fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "$CHROMIUM is missing: run make deps (installs Debian's chromium)"; exit 1; }
if [ ! -d test/dashboard/node_modules/playwright-core ]; then
  (cd test/dashboard && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
AUTH_PORT="$(free_port)"
TOKEN="dashboard-test-token-$RANDOM$RANDOM"
ARTIFACTS="$PWD/_build/dashboard-artifacts"
mkdir -p "$ARTIFACTS"

export MIX_ENV=test
mix compile >/dev/null

LOG="$(mktemp)"
RUV_SWARM_GATEWAY=on RUV_SWARM_IP=127.0.0.1 RUV_SWARM_PORT="$PORT" \
  RUV_SWARM_COMMAND_ALLOWLIST="cat,sleep *,false" \
  DASHBOARD_AUTH_PORT="$AUTH_PORT" DASHBOARD_TOKEN="$TOKEN" \
  mix run --no-start --no-halt test/dashboard/start_gateway.exs >"$LOG" 2>&1 &
NODE_PID=$!
# Stop only the node this script started.
trap 'kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; cp "$LOG" "$ARTIFACTS/node.log" 2>/dev/null || true; rm -f "$LOG"' EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$NODE_PID" 2>/dev/null; then cat "$LOG"; echo "node exited before it was ready"; exit 1; fi
  sleep 0.5
done
grep -m1 "gateway up" "$LOG" || { cat "$LOG"; echo "gateway did not come up"; exit 1; }

cd test/dashboard
DASHBOARD_URL="http://127.0.0.1:$PORT" DASHBOARD_AUTH_URL="http://127.0.0.1:$AUTH_PORT" \
  DASHBOARD_TOKEN="$TOKEN" DASHBOARD_ARTIFACTS="$ARTIFACTS" CHROMIUM="$CHROMIUM" \
  node --test --test-concurrency=1 --test-reporter=spec dashboard_test.mjs
echo "dashboard screenshots: $ARTIFACTS"
