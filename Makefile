# The two commands a newcomer needs: `make run` and `make test`.
# Both install whatever is missing first (Debian packages, Rust build).

SHELL := /bin/bash
DEBIAN_PACKAGES := elixir erlang-dev erlang-jiffy erlang-mochiweb erlang-os-mon \
	erlang-runtime-tools erlang-tools erlang-eunit erlang-xmerl erlang-parsetools \
	erlang-syntax-tools erlang-crypto erlang-inets erlang-ssl erlang-public-key \
	curl procps
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(HOME)/.cargo/bin:$(PATH)
export MIX_HOME ?= $(CURDIR)/_build/mix_home
NODE ?= swarm@127.0.0.1
COOKIE ?= ruv_swarm

.PHONY: run test deps native check-format lint cargo-test mix-test mcp-client-test mcp-bridge-test bench clean

run: deps
	mix compile
	iex --name $(NODE) --cookie $(COOKIE) -S mix

test: deps lint cargo-test mix-test mcp-client-test mcp-bridge-test

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

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	mix format --check-formatted
	MIX_ENV=test mix compile --force --warnings-as-errors

cargo-test:
	cargo test --workspace --quiet

mix-test:
	mix test

# An independent MCP client (the official Python SDK) against a live gateway.
mcp-client-test:
	test/mcp_client/run.sh

# The same SDK over stdio, through the ruv_swarm_mcp bridge to a detached node.
mcp-bridge-test:
	test/mcp_bridge/run.sh

bench: deps
	RUV_SWARM_GATEWAY=off mix run bench/native_latency.exs
	RUV_SWARM_GATEWAY=off mix run bench/throughput.exs
	MIX_ENV=test mix run bench/cluster.exs
	mix run --no-start bench/knowledge.exs

clean:
	rm -rf _build target priv/native
