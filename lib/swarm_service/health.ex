defmodule SwarmService.Health do
  @moduledoc """
  The node's one health document, served as JSON at the gateway's `/health`
  and by `SwarmService.HealthEndpoint` on its own port:

      {"status": "ok", "node": "ruv_swarm@127.0.0.1", "pid": 4242,
       "uptime_ms": 5310, "version": "0.1.0", "engine": true,
       "gateway_url": "http://127.0.0.1:4102/mcp", "gateway_up": true,
       "swarms": 1, "agents": 5,
       "tasks": {"pending": 0, "running": 0, "completed": 3, "failed": 0},
       "memory_bytes": 41234432}

  The gateway adds its own `sessions` and `sse_streams`. `status` is `"ok"`
  (HTTP 200), or `"degraded"` (HTTP 503) when the gateway is configured but
  its listener is not up. Counts are `null` when the engine cannot be asked.
  """

  @task_states [:pending, :running, :completed, :failed]

  @doc "The report, as a map; `gateway` names the gateway whose state it describes."
  @spec report(atom()) :: map()
  def report(gateway \\ InterfaceService) do
    {uptime_ms, _} = :erlang.statistics(:wall_clock)
    state = gateway(gateway)
    counts = counts()

    %{
      status: if(state.up == false, do: "degraded", else: "ok"),
      node: Atom.to_string(node()),
      pid: String.to_integer(System.pid()),
      uptime_ms: uptime_ms,
      version: version(),
      engine: SwarmService.RuvSwarm.engine_loaded?(),
      gateway_url: state.url,
      gateway_up: state.up,
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
    case listening_port(InterfaceService) do
      {:ok, port} -> port
      :error -> configured_gateway_port()
    end
  end

  # Asks the gateway's listener for its bound port: an answer means the
  # listener is up with its socket open.
  defp listening_port(name) do
    {:ok, InterfaceService.port(name)}
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

  defp gateway(name) do
    case listening_port(name) do
      {:ok, _port} ->
        %{url: InterfaceService.url(name) <> "/mcp", up: true}

      :error ->
        case configured_gateway_port() do
          nil -> %{url: nil, up: nil}
          port -> %{url: "http://127.0.0.1:#{port}/mcp", up: false}
        end
    end
  end

  # The report must be served even when the engine cannot be read.
  defp counts do
    %{swarms: swarms, agents: agents, tasks: tasks} = SwarmService.RuvSwarm.totals()
    %{swarms: swarms, agents: agents.total, tasks: Map.take(tasks, @task_states)}
  rescue
    _ -> %{swarms: nil, agents: nil, tasks: nil}
  catch
    :exit, _ -> %{swarms: nil, agents: nil, tasks: nil}
  end

  defp version do
    case Application.spec(:swarm_service, :vsn) do
      nil -> nil
      vsn -> List.to_string(vsn)
    end
  end
end
