defmodule InterfaceService.Dashboard.Overview do
  @moduledoc """
  What the dashboard's Overview, Cluster and MCP-servers views show about
  the node itself, read once a second by `InterfaceService.Dashboard.Hub`:
  node name, uptime, agents and tasks by status over the node's swarms,
  engine and VM memory, the gateway's request and error counters (as
  increments since the previous reading), the cluster as
  `SwarmService.RuvSwarm.cluster_status/0` reports it, and the managed MCP
  servers (`SwarmService.McpServers.servers/0`).

  Every read tolerates an API that lacks it or fails: the answer then says
  `enabled: false` or leaves the value out, and the dashboard shows that.
  """

  alias InterfaceService.Dashboard.Model

  @doc """
  Reads the overview. `previous` is the gateway counters of the last
  reading (nil at first); answers `{%{info: map, calls: n, errors: n},
  counters}` where `calls` and `errors` are the increments since
  `previous`.
  """
  @spec read(InterfaceService.Config.t(), map() | nil, [map()], Model.t()) ::
          {%{info: map(), calls: non_neg_integer(), errors: non_neg_integer()}, map()}
  def read(config, previous, swarms, model) do
    counters = gateway_counters(config)

    {calls, errors} =
      case previous do
        %{calls: c, errors: e} ->
          {max(counters.calls - c, 0), max(counters.errors - e, 0)}

        _ ->
          {0, 0}
      end

    info = %{
      node: Atom.to_string(node()),
      started_at: started_at(config),
      uptime_s: div(System.monotonic_time(:millisecond) - (config.started_at || 0), 1000),
      vm_uptime_s: div(elem(:erlang.statistics(:wall_clock), 0), 1000),
      otp: List.to_string(:erlang.system_info(:otp_release)),
      schedulers: :erlang.system_info(:schedulers_online),
      processes: :erlang.system_info(:process_count),
      swarms: length(swarms),
      agents: agents_by_status(model),
      tasks: tasks_by_status(model),
      vm_memory: Map.new(:erlang.memory([:total, :processes, :binary, :ets, :atom])),
      engine: engine(config.api),
      gateway: %{
        url: safe(fn -> InterfaceService.Listener.base_url(config) end),
        requests_total: counters.calls,
        errors_total: counters.errors,
        tokens: config.tokens != []
      },
      cluster: cluster(config.api),
      mcp_servers: mcp_servers()
    }

    {%{info: info, calls: calls, errors: errors}, counters}
  end

  defp started_at(config) do
    System.system_time(:millisecond) -
      (System.monotonic_time(:millisecond) - (config.started_at || 0))
  end

  defp agents_by_status(model) do
    Enum.reduce(model.swarms, %{total: 0, idle: 0, busy: 0, offline: 0}, fn {_id, s}, acc ->
      case s.agents do
        %{} = a ->
          Map.merge(acc, Map.take(a, [:total, :idle, :busy, :offline]), fn _, x, y -> x + y end)

        _ ->
          acc
      end
    end)
  end

  defp tasks_by_status(model) do
    Enum.reduce(model.swarms, %{}, fn {_id, s}, acc ->
      case s.tasks do
        %{} = t -> Map.merge(acc, t, fn _, x, y -> x + y end)
        _ -> acc
      end
    end)
  end

  @doc """
  The gateway's request counters: `calls` (requests answered) and
  `errors` (answered with a status of 400 or more, plus requests refused
  before a handler).
  """
  @spec gateway_counters(InterfaceService.Config.t()) :: %{
          calls: non_neg_integer(),
          errors: non_neg_integer()
        }
  def gateway_counters(%{tabs: %{metrics: tab}}) do
    :ets.foldl(
      fn
        {{:requests, _route, _tool, status}, n}, acc when status >= 400 ->
          %{acc | calls: acc.calls + n, errors: acc.errors + n}

        {{:requests, _route, _tool, _status}, n}, acc ->
          %{acc | calls: acc.calls + n}

        {{:rejected, _reason}, n}, acc ->
          %{acc | errors: acc.errors + n}

        _row, acc ->
          acc
      end,
      %{calls: 0, errors: 0},
      tab
    )
  end

  def gateway_counters(_config), do: %{calls: 0, errors: 0}

  defp engine(api) do
    if function_exported?(api, :memory_usage, 0) do
      case safe(fn -> api.memory_usage() end) do
        {:ok, m} ->
          %{
            enabled: true,
            engine_bytes: m.engine_bytes,
            held_bytes: m.held_bytes,
            node_memory_quota: m.node_memory_quota
          }

        _ ->
          %{enabled: false}
      end
    else
      %{enabled: false}
    end
  end

  defp cluster(api) do
    with true <- function_exported?(api, :cluster_status, 0),
         {:ok, status} <- safe(fn -> api.cluster_status() end) do
      members =
        for m <- Map.get(status, :members, []),
            do: %{node: to_string(m.node), up: m.up, configured: Map.get(m, :configured)}

      %{
        enabled: true,
        self: to_string(Map.get(status, :self, node())),
        adapter: inspect(Map.get(status, :adapter)),
        quorum: Map.get(status, :quorum),
        leader: Map.get(status, :leader) && to_string(status.leader),
        members: members,
        # Every durable swarm of the cluster, as its Raft leader reports it.
        durable:
          for d <- Enum.take(Map.get(status, :swarms, []), 200) do
            %{
              id: d.id,
              leader: str(Map.get(d, :leader)),
              members: Enum.map(Map.get(d, :members, []), &str/1),
              term: Map.get(d, :term),
              commit_index: Map.get(d, :commit_index),
              last_applied: Map.get(d, :last_applied),
              snapshot_index: Map.get(d, :snapshot_index)
            }
          end
      }
    else
      _ -> %{enabled: false}
    end
  end

  defp str(nil), do: nil
  defp str(a) when is_atom(a), do: Atom.to_string(a)
  defp str(other), do: Model.preview(other)

  # The managed MCP servers, from their catalog (no actor is waited for).
  defp mcp_servers do
    case safe(&SwarmService.McpServers.servers/0) do
      list when is_list(list) -> %{enabled: true, servers: Enum.map(list, &server/1)}
      _ -> %{enabled: true, servers: [], error: "the MCP server registry did not answer"}
    end
  end

  defp server(s) when is_map(s) do
    Map.new(Enum.take(Map.to_list(s), 20), fn {k, v} -> {str(k), plain(v)} end)
  end

  defp server(other), do: %{"name" => Model.preview(other)}

  defp plain(v) when is_number(v) or is_boolean(v) or is_nil(v), do: v
  defp plain(v) when is_binary(v), do: Model.preview(v)
  defp plain(v) when is_atom(v), do: Atom.to_string(v)
  defp plain(v) when is_list(v), do: v |> Enum.take(50) |> Enum.map(&plain/1)
  defp plain(%{} = m), do: server(m)
  defp plain(v), do: Model.preview(v)

  defp safe(fun) do
    fun.()
  rescue
    _ -> {:error, :unavailable}
  catch
    :exit, _ -> {:error, :unavailable}
  end
end
