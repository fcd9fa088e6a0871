defmodule SwarmService.McpServers.Prometheus do
  @moduledoc false
  # The managed MCP servers' metrics in the Prometheus text format, for the
  # gateway's /metrics. Server names are validated at deploy; tool names
  # come from the servers, so label values are escaped.

  @counters [
    calls: "Tool calls answered (results and errors).",
    errors: "Calls that failed or returned isError.",
    timeouts: "Calls that timed out (notifications/cancelled sent).",
    overloaded: "Calls refused because the mailbox of 100 was full."
  ]

  @states [:starting, :ready, :backoff, :crash_loop]

  def render(metrics \\ SwarmService.McpServers.metrics()) do
    [
      for {kind, help} <- @counters do
        name = "ruv_swarm_mcp_#{kind}_total"

        [
          "# HELP #{name} #{help}\n# TYPE #{name} counter\n",
          for m <- metrics, {tool, t} <- Enum.sort(m.tools) do
            [name, labels(m.name, tool), " ", Integer.to_string(Map.fetch!(t, kind)), "\n"]
          end
        ]
      end,
      "# HELP ruv_swarm_mcp_latency_seconds Latency of recent calls (last 1024), by quantile.\n",
      "# TYPE ruv_swarm_mcp_latency_seconds gauge\n",
      for m <- metrics,
          {tool, t} <- Enum.sort(m.tools),
          {q, v} <- [{"0.5", t.p50_us}, {"0.99", t.p99_us}],
          v do
        [
          "ruv_swarm_mcp_latency_seconds",
          labels(m.name, tool, q),
          " ",
          :erlang.float_to_binary(v / 1_000_000, [:compact, decimals: 6]),
          "\n"
        ]
      end,
      "# HELP ruv_swarm_mcp_restarts_total Reconnections after a failure.\n",
      "# TYPE ruv_swarm_mcp_restarts_total counter\n",
      for m <- metrics do
        [
          "ruv_swarm_mcp_restarts_total{server=\"",
          m.name,
          "\"} ",
          Integer.to_string(m.restarts),
          "\n"
        ]
      end,
      "# HELP ruv_swarm_mcp_in_flight Calls in flight plus waiting, by server.\n",
      "# TYPE ruv_swarm_mcp_in_flight gauge\n",
      for m <- metrics do
        [
          "ruv_swarm_mcp_in_flight{server=\"",
          m.name,
          "\"} ",
          Integer.to_string(m.in_flight + m.waiting),
          "\n"
        ]
      end,
      "# HELP ruv_swarm_mcp_state 1 for the state each server is in.\n",
      "# TYPE ruv_swarm_mcp_state gauge\n",
      for m <- metrics, s <- @states do
        [
          "ruv_swarm_mcp_state{server=\"",
          m.name,
          "\",state=\"",
          Atom.to_string(s),
          "\"} ",
          if(m.status == s, do: "1", else: "0"),
          "\n"
        ]
      end
    ]
  end

  defp labels(server, tool), do: ["{server=\"", server, "\",tool=\"", escape(tool), "\"}"]

  defp labels(server, tool, q),
    do: ["{server=\"", server, "\",tool=\"", escape(tool), "\",quantile=\"", q, "\"}"]

  defp escape(value) do
    value
    |> String.replace("\\", "\\\\")
    |> String.replace("\"", "\\\"")
    |> String.replace("\n", "\\n")
  end
end
