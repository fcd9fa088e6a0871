defmodule SwarmService.Swarm.Recovery do
  @moduledoc false
  # Boot step after SwarmSupervisor: starts the processes of every durable
  # swarm SwarmService.Raft recovered (its ticker and its agent supervisor,
  # which rebuilds the agent processes the engine lists). Nothing to keep
  # running afterwards, so it answers :ignore.
  require Logger

  alias SwarmService.{Raft, Swarm}

  def child_spec(_arg), do: %{id: __MODULE__, start: {__MODULE__, :start_link, []}}

  def start_link do
    for {id, executor} <- Raft.swarms() do
      case Swarm.start(id, executor: executor) do
        {:ok, _} -> :ok
        {:error, {:already_started, _}} -> :ok
        error -> Logger.error("swarm #{id}: processes not started: #{inspect(error, limit: 10)}")
      end
    end

    :ignore
  end
end
