defmodule InterfaceService do
  @moduledoc """
  The gateway through which the outside world reaches the swarm.

  One Cowboy listener (default `127.0.0.1:4102`) serves:

    * `POST/GET/DELETE /mcp`: MCP Streamable HTTP. Revisions 2025-11-25,
      2025-06-18 and 2025-03-26 with sessions (`Mcp-Session-Id`), and the
      stateless revision 2026-07-28 on the same endpoint.
    * `POST /api/mcp/<tool>`: the same tools as plain JSON
      (`{"success": true, ...}`); `GET /api/mcp` lists them.
    * `GET /sse/discoveries?swarm_id=...`: discoveries as server-sent events.
    * `GET /ws`: a WebSocket pushing the events of the swarms it subscribes to,
      and the dashboard's live picture and operations
      (`InterfaceService.Dashboard.Socket`).
    * `GET /`: the dashboard's page (`InterfaceService.Dashboard.Static`).
    * `GET /health` (JSON, no auth; see `SwarmService.Health`) and
      `GET /metrics` (Prometheus text).

  JSON is converted to native terms at this edge and nowhere else: each tool
  is one call into `SwarmService.RuvSwarm`.

  ## Supervision

  `InterfaceService` is a supervisor. It owns the gateway's ETS tables
  (sessions, in-flight calls, rate-limit buckets, metrics, connection
  counts), so they live exactly as long as the gateway, and supervises, in
  this order, a session sweeper, the listener, and the drainer that at
  shutdown lets requests in flight finish before the listener stops. Several gateways may run in one node (tests do): give each a
  distinct `:name`.

  ## Configuration

  See `InterfaceService.Config` for every option and `config/runtime.exs` for
  the environment variables (`RUV_SWARM_GATEWAY`, `RUV_SWARM_IP`,
  `RUV_SWARM_PORT`, `RUV_SWARM_TOKENS`, ...). With `enabled: false` the
  supervisor is not started (`:ignore`).
  """
  use Supervisor

  alias InterfaceService.{Config, Drainer, Listener, Metrics, RateLimiter}
  alias InterfaceService.Mcp.Session

  @doc """
  Starts a gateway. `opts` override the application environment; see
  `InterfaceService.Config`.
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts \\ []) do
    config = Config.new!(opts)

    if config.enabled do
      Supervisor.start_link(__MODULE__, config, name: config.name)
    else
      :ignore
    end
  end

  @doc false
  def child_spec(opts) do
    %{
      id: Keyword.get(opts, :name, __MODULE__),
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor
    }
  end

  @doc "The TCP port the gateway named `name` listens on (useful with `port: 0`)."
  @spec port(atom()) :: :inet.port_number()
  def port(name \\ __MODULE__), do: Listener.port(config(name))

  @doc "The base URL of the gateway named `name`, e.g. `http://127.0.0.1:4102`."
  @spec url(atom()) :: String.t()
  def url(name \\ __MODULE__), do: Listener.base_url(config(name))

  @doc "The running configuration of the gateway named `name`."
  @spec config(atom()) :: Config.t()
  def config(name \\ __MODULE__), do: :persistent_term.get({__MODULE__, name})

  @impl true
  def init(%Config{} = config) do
    # Tables are created here so the supervisor owns them: a crash of any
    # child keeps sessions, buckets and counters intact.
    tabs = %{
      sessions:
        :ets.new(:mcp_sessions, [:set, :public, read_concurrency: true, write_concurrency: true]),
      inflight: :ets.new(:mcp_inflight, [:set, :public, write_concurrency: true]),
      rate: RateLimiter.new_table(),
      metrics: Metrics.new_table(),
      sse: :atomics.new(1, signed: true),
      # Open connections per client address, and in total.
      http: :ets.new(:gateway_http, [:set, :public, write_concurrency: true]),
      conns: :atomics.new(1, signed: true),
      # Requests in flight, and whether the gateway is draining.
      busy: :atomics.new(1, signed: true),
      draining: :atomics.new(1, signed: false)
    }

    config = %Config{config | tabs: tabs, started_at: System.monotonic_time(:millisecond)}
    # Read on every request by name-based helpers; written once per start.
    :persistent_term.put({__MODULE__, config.name}, config)

    children = [
      {Session.Sweeper, config},
      {InterfaceService.Dashboard.Hub, config},
      {Listener, config},
      {Drainer, config}
    ]

    Supervisor.init(children, strategy: :one_for_one, max_restarts: 10, max_seconds: 5)
  end
end
