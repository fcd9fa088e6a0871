defmodule SwarmService.Cluster.HLC do
  @moduledoc """
  A hybrid logical clock: timestamps `{physical_ms, logical}` that stay close
  to wall-clock time yet never go backwards and always order a write after
  everything its node had seen when it wrote.

    * `tick/2` stamps a local event: the wall clock if it moved past the
      last stamp, else the last stamp with the logical counter plus one. So
      stamps of one node strictly increase, even if the wall clock steps
      back (NTP) or many events share a millisecond.
    * `merge/2` takes in a stamp received from another node: the clock
      becomes the larger of the two, so the next local stamp is larger than
      every stamp seen. A write that follows (causally) another one always
      gets the larger stamp, whatever the clocks of the two nodes say.

  Stamps compare as tuples (Erlang term order): physical time first, then
  the counter. The clock is a plain value; its owner keeps it (one process
  per node, `SwarmService.Cluster.Knowledge`).

  A node whose wall clock runs ahead pulls every clock that merges its
  stamps ahead with it, and its writes win last-writer-wins conflicts
  until the others' wall clocks catch up: keep clocks synchronised (NTP).

      iex> alias SwarmService.Cluster.HLC
      iex> clock = HLC.new()
      iex> a = HLC.tick(clock, 1_000)
      {1_000, 0}
      iex> b = HLC.tick(a, 1_000)
      {1_000, 1}
      iex> HLC.tick(b, 999)
      {1_000, 2}
      iex> clock = HLC.merge(b, {5_000, 3})
      iex> HLC.tick(clock, 1_001)
      {5_000, 4}
  """

  @typedoc "A timestamp: wall-clock milliseconds and a logical counter."
  @type stamp :: {non_neg_integer(), non_neg_integer()}
  @typedoc "A clock: the last stamp it issued or merged."
  @type t :: stamp()

  @doc "A clock that has seen nothing."
  @spec new() :: t()
  def new, do: {0, 0}

  @doc """
  A stamp for a local event at wall-clock time `now_ms` (default: the
  system clock); the stamp is also the new clock.
  """
  @spec tick(t(), non_neg_integer()) :: stamp()
  def tick({last_ms, counter}, now_ms \\ now_ms()) do
    if now_ms > last_ms, do: {now_ms, 0}, else: {last_ms, counter + 1}
  end

  @doc "The clock after receiving `stamp` from another node."
  @spec merge(t(), stamp()) :: t()
  def merge(clock, {ms, counter} = stamp)
      when is_integer(ms) and ms >= 0 and is_integer(counter) and counter >= 0,
      do: max(clock, stamp)

  @doc "`:gt`, `:eq` or `:lt`: how `a` orders against `b`."
  @spec compare(stamp(), stamp()) :: :gt | :eq | :lt
  def compare(a, b) when a > b, do: :gt
  def compare(a, b) when a == b, do: :eq
  def compare(_a, _b), do: :lt

  @doc "The wall clock in milliseconds (`System.os_time/1`)."
  @spec now_ms() :: integer()
  def now_ms, do: System.os_time(:millisecond)
end
