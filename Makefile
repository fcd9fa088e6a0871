# The two commands a newcomer needs: `make run` and `make test`.
# Both install whatever is missing first (Debian packages, Rust build, and
# the BEAM libraries taken from Debian's rabbitmq-server package).

SHELL := /bin/bash
# (openssl: the distribution-over-TLS test makes its certificates with it.)
DEBIAN_PACKAGES := elixir erlang-dev erlang-jiffy erlang-os-mon \
	erlang-runtime-tools erlang-tools erlang-eunit erlang-xmerl erlang-parsetools \
	erlang-syntax-tools erlang-crypto erlang-inets erlang-ssl erlang-public-key \
	curl procps openssl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(HOME)/.cargo/bin:$(PATH)
export MIX_HOME ?= $(CURDIR)/_build/mix_home
NODE ?= swarm@127.0.0.1
COOKIE ?= ruv_swarm

# Ra (Raft), Cowboy and the libraries they need come as compiled OTP applications
# inside Debian's rabbitmq-server package. RabbitMQ itself is never
# installed: the package is only downloaded and unpacked into _build, and
# _build/erl_libs links the applications we use (mix.exs puts them on the
# code path).
# The dashboard's browser tests: Debian's chromium (never a downloaded
# browser), driven by playwright-core from npm (test/dashboard/package-lock.json).
BROWSER_PACKAGES := chromium chromium-driver
DASHBOARD_NODE_MODULES := test/dashboard/node_modules

RABBITMQ_APPS := ra aten gen_batch_server seshat cowboy cowlib ranch
DEBIAN_LIBS := $(CURDIR)/_build/debian
ERL_LIBS_DIR := $(CURDIR)/_build/erl_libs

.PHONY: run test deps erl-libs native check-format lint cargo-test mix-test mcp-peers mcp-client-test mcp-bridge-test dashboard-deps dashboard-test bench bench-peers bench-mcp clean

run: deps
	mix compile
	iex --name $(NODE) --cookie $(COOKIE) -S mix

test: deps mcp-peers lint cargo-test mix-test mcp-client-test mcp-bridge-test dashboard-test

deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first"; exit 1; }
	@rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt 2>/dev/null || true
	@$(MAKE) --no-print-directory erl-libs

erl-libs:
	@if ! ls $(DEBIAN_LIBS)/rabbitmq-server_*.deb >/dev/null 2>&1; then \
	  echo "Fetching Debian's rabbitmq-server package for: $(RABBITMQ_APPS)"; \
	  mkdir -p $(DEBIAN_LIBS) && cd $(DEBIAN_LIBS) && \
	  { apt-get download rabbitmq-server >/dev/null 2>&1 || \
	    { $(SUDO) apt-get update -qq && apt-get download rabbitmq-server; }; }; \
	fi
	@if [ ! -d $(DEBIAN_LIBS)/root/usr/lib/rabbitmq ]; then \
	  dpkg -x $$(ls $(DEBIAN_LIBS)/rabbitmq-server_*.deb | head -1) $(DEBIAN_LIBS)/root; fi
	@mkdir -p $(ERL_LIBS_DIR); \
	for app in $(RABBITMQ_APPS); do \
	  dir=$$(ls -d $(DEBIAN_LIBS)/root/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/$$app-[0-9]* | head -1); \
	  [ -n "$$dir" ] || { echo "$$app is missing from the rabbitmq-server package"; exit 1; }; \
	  [ -e $(ERL_LIBS_DIR)/$$(basename $$dir) ] || \
	    ln -sfn ../$${dir#$(CURDIR)/_build/} $(ERL_LIBS_DIR)/$$(basename $$dir); \
	done

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	mix format --check-formatted
	MIX_ENV=test mix compile --force --warnings-as-errors

cargo-test:
	cargo test --workspace --quiet

mix-test: mcp-peers
	mix test

# Third-party MCP servers the McpServers tests run against (pinned, from npm
# and PyPI, into _build/mcp_peers; does nothing when already there).
mcp-peers:
	@test/mcp_peers/install.sh

# An independent MCP client (the official Python SDK) against a live gateway.
mcp-client-test:
	test/mcp_client/run.sh

# The same SDK over stdio, through the ruv_swarm_mcp bridge to a detached node.
mcp-bridge-test:
	test/mcp_bridge/run.sh

# chromium from Debian when missing, and playwright-core into the
# (git-ignored) test/dashboard/node_modules from the committed lock file.
dashboard-deps:
	@missing=""; for p in $(BROWSER_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ and npm first"; exit 1; }
	@if [ ! -f $(DASHBOARD_NODE_MODULES)/.package-lock.json ] || \
	    [ test/dashboard/package-lock.json -nt $(DASHBOARD_NODE_MODULES)/.package-lock.json ]; then \
	  cd test/dashboard && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent; fi

# The dashboard in headless chromium against a live node (screenshots of
# every view in _build/dashboard-artifacts).
dashboard-test: dashboard-deps
	test/dashboard/run.sh

bench: deps
	RUV_SWARM_GATEWAY=off mix run bench/native_latency.exs
	RUV_SWARM_GATEWAY=off mix run bench/throughput.exs
	MIX_ENV=test mix run bench/cluster.exs
	mix run --no-start bench/knowledge.exs

# ruv_swarm through its stdio bridge against ruv-swarm's own stdio server
# (from npm, into _build/peers), same client, same run; PASS/FAIL per tool.
bench-peers: deps
	bench/peers.sh

# A proxied echo through the McpServers actor and the gateway against the
# same server called directly (added latency p50/p99, calls/s).
bench-mcp: deps mcp-peers
	mix run bench/mcp_servers.exs

clean:
	rm -rf _build target priv/native
