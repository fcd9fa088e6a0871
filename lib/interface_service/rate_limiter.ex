defmodule InterfaceService.RateLimiter do
  @moduledoc false
  # Per-client token bucket, kept as GCRA (one "theoretical arrival time" per
  # client) in ETS and updated with compare-and-swap, so concurrent requests
  # of one client never overdraw the bucket and no process is a bottleneck.

  @doc "Creates the bucket table."
  @spec new_table() :: :ets.tid()
  def new_table, do: :ets.new(:gateway_rate, [:set, :public, write_concurrency: true])

  @doc """
  Takes one token for `key`. `rate` is tokens per second (0 disables the
  limit), `burst` the bucket size. Returns `:ok` or `{:error, retry_after_ms}`.
  """
  @spec take(:ets.tid(), term(), non_neg_integer(), pos_integer(), integer()) ::
          :ok | {:error, pos_integer()}
  def take(tab, key, rate, burst, now_us \\ System.monotonic_time(:microsecond)),
    do: take_n(tab, key, 1, rate, burst, now_us)

  @doc """
  Takes `n` tokens at once (the calls of a JSON-RPC batch), all or none.
  """
  @spec take_n(:ets.tid(), term(), pos_integer(), non_neg_integer(), pos_integer(), integer()) ::
          :ok | {:error, pos_integer()}
  def take_n(tab, key, n, rate, burst, now_us \\ System.monotonic_time(:microsecond))
  def take_n(_tab, _key, _n, 0, _burst, _now), do: :ok

  def take_n(tab, key, n, rate, burst, now_us) do
    interval = max(div(1_000_000, rate), 1)
    take(tab, key, n * interval, interval * burst, now_us, 8)
  end

  # Contention exhausted the retries: let the request through rather than
  # punish a client for the server's own race.
  defp take(_tab, _key, _cost, _limit, _now, 0), do: :ok

  defp take(tab, key, cost, limit, now, tries) do
    case :ets.lookup(tab, key) do
      [] ->
        cond do
          cost > limit -> {:error, max(div(cost - limit + 999, 1000), 1)}
          :ets.insert_new(tab, {key, now + cost}) -> :ok
          true -> take(tab, key, cost, limit, now, tries - 1)
        end

      [{^key, tat} = old] ->
        new_tat = max(tat, now) + cost

        cond do
          new_tat - now > limit ->
            {:error, max(div(new_tat - now - limit + 999, 1000), 1)}

          :ets.select_replace(tab, [{old, [], [{:const, {key, new_tat}}]}]) == 1 ->
            :ok

          true ->
            take(tab, key, cost, limit, now, tries - 1)
        end
    end
  end

  @doc "Drops buckets that are full again (their clients have been idle)."
  @spec sweep(:ets.tid(), integer()) :: non_neg_integer()
  def sweep(tab, now_us \\ System.monotonic_time(:microsecond)) do
    :ets.select_delete(tab, [{{:_, :"$1"}, [{:<, :"$1", now_us}], [true]}])
  end
end
