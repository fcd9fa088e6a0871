defmodule InterfaceService.Tools.Bench do
  @moduledoc false
  # benchmark_run: times real native calls on a throw-away swarm and reports
  # per-operation percentiles. Progress is reported once per phase.

  alias InterfaceService.Tools

  @phases ["swarm_status", "memory_store", "memory_get"]

  @spec run(pos_integer(), map()) :: {:ok, map()} | {:error, term()}
  def run(iterations, %{api: api} = ctx) do
    with {:ok, swarm} <- api.spawn_swarm(%{name: "benchmark_run", topology: :mesh}) do
      try do
        results =
          @phases
          |> Enum.with_index(1)
          |> Enum.map(fn {phase, i} ->
            stats = measure(phase, api, swarm, iterations)
            Tools.progress(ctx, i, length(@phases), "#{phase} done")
            Map.put(stats, :operation, phase)
          end)

        {:ok, %{iterations: iterations, unit: "microseconds", results: results}}
      after
        api.destroy_swarm(swarm)
      end
    end
  end

  defp measure(phase, api, swarm, n) do
    # One warm-up call so the first sample does not pay for code loading.
    op(phase, api, swarm, 0)

    samples =
      for i <- 1..n do
        t0 = System.monotonic_time(:nanosecond)
        op(phase, api, swarm, i)
        System.monotonic_time(:nanosecond) - t0
      end

    sorted = Enum.sort(samples)
    total = Enum.sum(samples)

    %{
      p50_us: pct(sorted, n, 0.50),
      p99_us: pct(sorted, n, 0.99),
      mean_us: Float.round(total / n / 1000, 2),
      ops_per_s: if(total > 0, do: round(n * 1.0e9 / total), else: nil)
    }
  end

  defp op("swarm_status", api, swarm, _i), do: {:ok, _} = api.swarm_status(swarm)

  defp op("memory_store", api, swarm, i),
    do: {:ok, _} = api.memory_store(swarm, "bench:#{rem(i, 64)}", i, [])

  defp op("memory_get", api, swarm, i),
    do: {:ok, _} = api.memory_get(swarm, "bench:#{rem(i, 64)}", [])

  defp pct(sorted, n, q) do
    idx = min(n - 1, max(0, ceil(q * n) - 1))
    Float.round(Enum.at(sorted, idx) / 1000, 2)
  end
end
