defmodule SwarmService.McpServers.Stats do
  @moduledoc false
  # Per-tool counters and a bounded reservoir of recent latencies, kept in
  # the server's actor (no shared writes on the call path). Tool names come
  # from callers, so the number of distinct keys is capped.

  @max_tools 200
  @samples 1024
  @other "(other)"

  def new, do: %{}

  def count(stats, tool, kind) do
    update(stats, tool, fn t -> Map.update!(t, kind, &(&1 + 1)) end)
  end

  def observe(stats, tool, latency_us, kind) do
    update(stats, tool, fn t ->
      t = %{t | calls: t.calls + 1, samples: [latency_us | t.samples], n: t.n + 1}

      t =
        if t.n > 2 * @samples,
          do: %{t | samples: Enum.take(t.samples, @samples), n: @samples},
          else: t

      if kind, do: Map.update!(t, kind, &(&1 + 1)), else: t
    end)
  end

  defp update(stats, tool, fun) do
    key =
      cond do
        Map.has_key?(stats, tool) -> tool
        map_size(stats) < @max_tools -> tool
        true -> @other
      end

    Map.put(stats, key, fun.(Map.get(stats, key, empty())))
  end

  defp empty, do: %{calls: 0, errors: 0, timeouts: 0, overloaded: 0, samples: [], n: 0}

  @doc false
  # %{tool => %{calls, errors, timeouts, overloaded, p50_us, p99_us}}
  def summary(stats) do
    Map.new(stats, fn {tool, t} ->
      sorted = t.samples |> Enum.take(@samples) |> Enum.sort()

      {tool,
       %{
         calls: t.calls,
         errors: t.errors,
         timeouts: t.timeouts,
         overloaded: t.overloaded,
         p50_us: percentile(sorted, 0.50),
         p99_us: percentile(sorted, 0.99)
       }}
    end)
  end

  defp percentile([], _q), do: nil

  defp percentile(sorted, q) do
    n = length(sorted)
    Enum.at(sorted, min(n - 1, max(0, ceil(q * n) - 1)))
  end
end
