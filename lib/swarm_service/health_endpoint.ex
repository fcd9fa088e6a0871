defmodule SwarmService.HealthEndpoint do
  @moduledoc """
  A tiny HTTP listener answering `GET /health` on its own port
  (127.0.0.1:9898 by default), apart from the gateway, so process managers
  and `mix swarm.mcp status` can check a node even when the gateway is busy
  or stopped.

  It is a supervisor around one mochiweb listener with a small acceptor pool.
  The listener starts only when a port is configured: `port:` in the start
  options, else the `RUV_SWARM_HEALTH_PORT` environment variable, else
  `config :swarm_service, :health_port`. Without one the supervisor starts
  with no children, so the application can always list it as a child.

  The JSON body:

      {"status": "ok", "node": "ruv_swarm@127.0.0.1", "pid": 4242,
       "uptime_ms": 5310, "version": "0.1.0", "gateway_url": "http://127.0.0.1:4102/mcp",
       "gateway_up": true, "swarms": 1, "agents": 5,
       "tasks": {"pending": 0, "running": 0, "completed": 3, "failed": 0},
       "memory_bytes": 41234432}

  `status` is `"ok"` (HTTP 200), or `"degraded"` (HTTP 503) when the gateway
  is configured but its listener is not up. Counts are `null` when the
  engine cannot be asked.
  """
  use Supervisor

  @listener :ruv_swarm_health_listener
  @task_states [:pending, :running, :completed, :failed]

  @doc """
  Starts the endpoint. Options: `:port` (0 picks a free port), `:ip`
  (default `{127, 0, 0, 1}`), `:name` (default `#{inspect(__MODULE__)}`).
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts \\ []) do
    Supervisor.start_link(__MODULE__, opts, name: Keyword.get(opts, :name, __MODULE__))
  end

  @impl true
  def init(opts) do
    children =
      case configured_port(opts) do
        nil ->
          []

        port ->
          listener = [
            name: @listener,
            ip: Keyword.get(opts, :ip, {127, 0, 0, 1}),
            port: port,
            acceptor_pool_size: 4,
            loop: &__MODULE__.handle/1
          ]

          [%{id: @listener, start: {:mochiweb_http, :start_link, [listener]}}]
      end

    Supervisor.init(children, strategy: :one_for_one)
  end

  @doc "The port the listener is bound to, or `nil` when it is not running."
  @spec port() :: :inet.port_number() | nil
  def port do
    if Process.whereis(@listener), do: :mochiweb_socket_server.get(@listener, :port)
  end

  @doc "The configured port: options, then environment, then application config."
  @spec configured_port(keyword()) :: :inet.port_number() | nil
  def configured_port(opts \\ []) do
    value =
      Keyword.get_lazy(opts, :port, fn ->
        System.get_env("RUV_SWARM_HEALTH_PORT") ||
          Application.get_env(:swarm_service, :health_port)
      end)

    case value do
      port when is_integer(port) and port in 0..65_535 -> port
      text when is_binary(text) -> parse_port(text)
      _ -> nil
    end
  end

  defp parse_port(text) do
    case Integer.parse(String.trim(text)) do
      {port, ""} when port in 0..65_535 -> port
      _ -> nil
    end
  end

  @doc false
  # mochiweb request loop; public only so the listener can call it.
  def handle(req) do
    # mochiweb gives the path as a charlist and known methods as atoms.
    case {:mochiweb_request.get(:method, req), :mochiweb_request.get(:path, req)} do
      {method, ~c"/health"} when method in [:GET, :HEAD] ->
        report = report()
        code = if report.status == "ok", do: 200, else: 503
        respond(req, code, :jiffy.encode(report, [:use_nil]))

      {_, ~c"/health"} ->
        respond(req, 405, ~s({"error":"method not allowed"}), [{"Allow", "GET, HEAD"}])

      _ ->
        respond(req, 404, ~s({"error":"not found"}))
    end
  end

  defp respond(req, code, body, extra \\ []) do
    headers = [{"Content-Type", "application/json"}, {"Cache-Control", "no-store"} | extra]
    :mochiweb_request.respond({code, headers, body}, req)
  end

  @doc "The health report served at `/health`, as a map."
  @spec report() :: map()
  def report do
    {uptime_ms, _} = :erlang.statistics(:wall_clock)
    gateway = gateway()
    counts = counts()

    %{
      status: if(gateway.up == false, do: "degraded", else: "ok"),
      node: Atom.to_string(node()),
      pid: String.to_integer(System.pid()),
      uptime_ms: uptime_ms,
      version: version(),
      gateway_url: gateway.url,
      gateway_up: gateway.up,
      swarms: counts.swarms,
      agents: counts.agents,
      tasks: counts.tasks,
      memory_bytes: :erlang.memory(:total)
    }
  end

  @doc """
  The gateway's port: the bound port of the running `InterfaceService`, else
  the configured one (`config :swarm_service, InterfaceService, port: ...`,
  default 4102), or `nil` when the gateway is disabled.
  """
  @spec gateway_port() :: :inet.port_number() | nil
  def gateway_port do
    case listening_port() do
      {:ok, port} -> port
      :error -> configured_gateway_port()
    end
  end

  # Asks the gateway's listener for its bound port: an answer means the
  # listener process is up with its socket open. (A TCP connect would prove
  # the same but costs the gateway an accept on every health check.)
  defp listening_port do
    {:ok, InterfaceService.port()}
  rescue
    _ -> :error
  catch
    _, _ -> :error
  end

  defp configured_gateway_port do
    config = Application.get_env(:swarm_service, InterfaceService, [])

    if Keyword.get(config, :enabled, true) != false,
      do: Keyword.get(config, :port, InterfaceService.Config.defaults()[:port])
  end

  defp gateway do
    case listening_port() do
      {:ok, _port} ->
        # Its own base URL: the address it is bound to, or its public_url.
        %{url: InterfaceService.url() <> "/mcp", up: true}

      :error ->
        case configured_gateway_port() do
          nil -> %{url: nil, up: nil}
          port -> %{url: "http://127.0.0.1:#{port}/mcp", up: false}
        end
    end
  end

  # The endpoint must answer even when the engine cannot be read.
  defp counts do
    %{swarms: swarms, agents: agents, tasks: tasks} = SwarmService.RuvSwarm.totals()
    %{swarms: swarms, agents: agents.total, tasks: Map.take(tasks, @task_states)}
  rescue
    _ -> %{swarms: nil, agents: nil, tasks: nil}
  end

  defp version do
    case Application.spec(:swarm_service, :vsn) do
      nil -> nil
      vsn -> List.to_string(vsn)
    end
  end
end
