defmodule SwarmService.Ids do
  @moduledoc false
  # What an id names, as the engine parses it (SwarmService.Native.parse_id/1,
  # built on ruv_swarm_core::ids): the Elixir side never splits ids itself.
  #
  #   swarm-1f2e3d4c-7                  kind: :swarm
  #   swarm-1f2e3d4c-7.agent-3          kind: :agent, seq: 3
  #   swarm-1f2e3d4c-7.task-42          kind: :task, seq: 42
  #   swarm-1f2e3d4c-7.disc-5           kind: :discovery, seq: 5
  #   swarm-1f2e3d4c-7.task-42/0/1      kind: :work, seq: 42 (the task's),
  #                                     task_id, unit: 0, attempt: 1
  #
  # Each parsed id is a map with :kind, :swarm_id, :seq, :task_id, :unit and
  # :attempt (nil where they do not apply).
  alias SwarmService.Native

  @doc "The parsed id, or {:error, {:invalid_argument, msg}}."
  def parse(id) when is_binary(id), do: Native.parse_id(id)
  def parse(_), do: {:error, {:invalid_argument, "an id must be a string"}}

  @doc "The swarm id inside any id, or nil when it is not an id."
  def swarm_of(id) do
    case parse(id) do
      {:ok, %{swarm_id: swarm_id}} -> swarm_id
      {:error, _} -> nil
    end
  end

  @doc "The sequence number of an agent, task or discovery id (raises on anything else)."
  def seq!(id) do
    {:ok, %{seq: seq}} = parse(id)
    true = is_integer(seq)
    seq
  end
end
