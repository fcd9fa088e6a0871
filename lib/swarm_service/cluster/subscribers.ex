defmodule SwarmService.Cluster.Subscribers do
  @moduledoc false
  # The subscriber set of a cluster adapter process: pid => monitor ref.
  # The adapter passes {:DOWN, ...} messages to drop/2, so a subscriber
  # that exits is forgotten.

  @type t :: %{pid() => reference()}

  @spec new() :: t()
  def new, do: %{}

  @spec add(t(), pid()) :: t()
  def add(subs, pid) do
    if Map.has_key?(subs, pid), do: subs, else: Map.put(subs, pid, Process.monitor(pid))
  end

  @spec drop(t(), pid()) :: t()
  def drop(subs, pid) do
    case Map.pop(subs, pid) do
      {nil, subs} ->
        subs

      {ref, subs} ->
        Process.demonitor(ref, [:flush])
        subs
    end
  end

  @spec notify(t(), :member_up | :member_down, node()) :: :ok
  def notify(subs, event, node) do
    for pid <- Map.keys(subs), do: send(pid, {:cluster, event, node})
    :ok
  end
end
