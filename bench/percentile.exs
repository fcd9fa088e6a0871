# Shared by the benchmarks (`Code.require_file("percentile.exs", __DIR__)`),
# so every p50/p99 they print is computed the same way.
defmodule Bench.Percentile do
  @doc """
  Nearest-rank percentile of an ascending list: the smallest sample with at
  least `p` of the samples at or below it (`p` in 0.0..1.0).
  """
  def of([], _p), do: nil

  def of(sorted, p) do
    n = length(sorted)
    Enum.at(sorted, min(n - 1, max(0, ceil(p * n) - 1)))
  end
end
