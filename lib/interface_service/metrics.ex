defmodule InterfaceService.Metrics do
  @moduledoc false
  # Counters and latency histograms in one ETS table, updated with a single
  # update_counter per request; /metrics renders Prometheus text from it and
  # asks the engine for swarm, agent and task gauges at scrape time.

  # Upper bounds in microseconds; the last bucket is +Inf.
  @buckets_us [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000
  ]
  @nb length(@buckets_us)

  @doc "Creates the metrics table."
  @spec new_table() :: :ets.tid()
  def new_table, do: :ets.new(:gateway_metrics, [:set, :public, write_concurrency: true])

  @doc "Records one answered request. `route` and `tool` come from fixed vocabularies."
  @spec observe(:ets.tid(), String.t(), String.t(), non_neg_integer(), non_neg_integer()) :: :ok
  def observe(tab, route, tool, status, duration_us) do
    :ets.update_counter(tab, {:requests, route, tool, status}, {2, 1}, {nil, 0})
    pos = bucket_pos(duration_us, @buckets_us, 4)
    key = {:latency, route, tool}

    :ets.update_counter(
      tab,
      key,
      [{2, duration_us}, {3, 1}, {pos, 1}],
      :erlang.make_tuple(@nb + 4, 0, [{1, key}])
    )

    :ok
  end

  @doc "Counts a rejected request by reason (auth, origin, host, rate_limited, too_large, ...)."
  @spec reject(:ets.tid(), atom()) :: :ok
  def reject(tab, reason) do
    :ets.update_counter(tab, {:rejected, reason}, {2, 1}, {nil, 0})
    :ok
  end

  defp bucket_pos(_us, [], pos), do: pos
  defp bucket_pos(us, [b | _], pos) when us <= b, do: pos
  defp bucket_pos(us, [_ | rest], pos), do: bucket_pos(us, rest, pos + 1)

  @doc "Renders every metric in the Prometheus text exposition format."
  @spec render(InterfaceService.Config.t()) :: iodata()
  def render(config) do
    rows = :ets.tab2list(config.tabs.metrics)

    requests =
      for {{:requests, route, tool, status}, n} <- rows,
          do: [
            "ruv_swarm_gateway_requests_total{route=\"",
            route,
            "\",tool=\"",
            tool,
            "\",status=\"",
            Integer.to_string(status),
            "\"} ",
            Integer.to_string(n),
            "\n"
          ]

    latency =
      for row <- rows, {:latency, route, tool} <- [elem(row, 0)] do
        sum = elem(row, 1)
        count = elem(row, 2)
        labels = ["route=\"", route, "\",tool=\"", tool, "\""]
        counts = for i <- 0..@nb, do: elem(row, 3 + i)
        cumulative = Enum.scan(counts, &+/2)
        bounds = Enum.map(@buckets_us, &format_seconds/1) ++ ["+Inf"]

        [
          Enum.zip_with(bounds, cumulative, fn le, c ->
            [
              "ruv_swarm_gateway_request_duration_seconds_bucket{",
              labels,
              ",le=\"",
              le,
              "\"} ",
              Integer.to_string(c),
              "\n"
            ]
          end),
          [
            "ruv_swarm_gateway_request_duration_seconds_sum{",
            labels,
            "} ",
            format_seconds(sum),
            "\n"
          ],
          [
            "ruv_swarm_gateway_request_duration_seconds_count{",
            labels,
            "} ",
            Integer.to_string(count),
            "\n"
          ]
        ]
      end

    rejected =
      for {{:rejected, reason}, n} <- rows,
          do: [
            "ruv_swarm_gateway_rejected_total{reason=\"",
            Atom.to_string(reason),
            "\"} ",
            Integer.to_string(n),
            "\n"
          ]

    [
      "# HELP ruv_swarm_gateway_requests_total Requests answered, by route, tool and HTTP status.\n",
      "# TYPE ruv_swarm_gateway_requests_total counter\n",
      requests,
      "# HELP ruv_swarm_gateway_request_duration_seconds Time to answer a request.\n",
      "# TYPE ruv_swarm_gateway_request_duration_seconds histogram\n",
      latency,
      "# HELP ruv_swarm_gateway_rejected_total Requests refused before reaching a handler, by reason.\n",
      "# TYPE ruv_swarm_gateway_rejected_total counter\n",
      rejected,
      "# HELP ruv_swarm_gateway_sessions Open MCP sessions.\n",
      "# TYPE ruv_swarm_gateway_sessions gauge\n",
      "ruv_swarm_gateway_sessions ",
      Integer.to_string(:ets.info(config.tabs.sessions, :size)),
      "\n",
      "# HELP ruv_swarm_gateway_connections Open TCP connections.\n",
      "# TYPE ruv_swarm_gateway_connections gauge\n",
      "ruv_swarm_gateway_connections ",
      Integer.to_string(InterfaceService.Listener.connections(config)),
      "\n",
      "# HELP ruv_swarm_gateway_sse_streams Open discovery streams.\n",
      "# TYPE ruv_swarm_gateway_sse_streams gauge\n",
      "ruv_swarm_gateway_sse_streams ",
      Integer.to_string(:atomics.get(config.tabs.sse, 1)),
      "\n",
      engine_gauges(config.api),
      SwarmService.McpServers.Prometheus.render()
    ]
  end

  defp format_seconds(us), do: :erlang.float_to_binary(us / 1_000_000, [:compact, decimals: 6])

  @agent_states [:idle, :busy, :offline]
  @task_states [:pending, :running, :completed, :failed, :cancelled, :timed_out]

  # The engine may be absent or busy; a scrape must still answer.
  defp engine_gauges(api) do
    with {:ok, totals} <- safe(fn -> {:ok, api.totals()} end) do
      [
        "# HELP ruv_swarm_swarms Swarms in this node.\n# TYPE ruv_swarm_swarms gauge\n",
        "ruv_swarm_swarms ",
        Integer.to_string(totals.swarms),
        "\n# HELP ruv_swarm_agents Agents by status.\n# TYPE ruv_swarm_agents gauge\n",
        gauge_lines("ruv_swarm_agents", @agent_states, totals.agents),
        "# HELP ruv_swarm_tasks Tasks by status.\n# TYPE ruv_swarm_tasks gauge\n",
        gauge_lines("ruv_swarm_tasks", @task_states, totals.tasks),
        usage_lines(Map.get(totals, :usage))
      ]
    else
      _ -> ["# engine unavailable: swarm, agent and task gauges omitted\n"]
    end
  end

  @token_kinds [
    input: :input_tokens,
    output: :output_tokens,
    cache_read: :cache_read_tokens,
    cache_creation: :cache_creation_tokens
  ]

  # What the attempts of this node's swarms reported, summed over the
  # swarms (node totals only: no per-swarm label, so the series stay few
  # however many swarms come and go; per swarm, see swarm_status).
  defp usage_lines(nil), do: []

  defp usage_lines(usage) do
    [
      "# HELP ruv_swarm_tokens Tokens the agents of this node's swarms reported, by kind.\n",
      "# TYPE ruv_swarm_tokens gauge\n",
      for {kind, key} <- @token_kinds do
        ["ruv_swarm_tokens{kind=\"", Atom.to_string(kind), "\"} ", int(usage[key]), "\n"]
      end,
      "# HELP ruv_swarm_cost_usd Cost in US dollars the agents of this node's swarms reported.\n",
      "# TYPE ruv_swarm_cost_usd gauge\n",
      "ruv_swarm_cost_usd ",
      :erlang.float_to_binary((usage[:cost_usd] || 0) / 1, [:compact, decimals: 6]),
      "\n# HELP ruv_swarm_turns Turns the agents of this node's swarms reported.\n",
      "# TYPE ruv_swarm_turns gauge\n",
      "ruv_swarm_turns ",
      int(usage[:turns]),
      "\n"
    ]
  end

  defp int(n), do: Integer.to_string(n || 0)

  defp gauge_lines(name, states, counts) do
    for s <- states,
        do: [name, "{status=\"", Atom.to_string(s), "\"} ", Integer.to_string(counts[s]), "\n"]
  end

  defp safe(fun) do
    fun.()
  rescue
    _ -> {:error, :unavailable}
  catch
    :exit, _ -> {:error, :unavailable}
  end
end
