defmodule SwarmService.Swarm.AgentHost do
  @moduledoc false
  # Supervises the agent processes this node runs for swarms homed on other
  # nodes (`spawn_agent(swarm, node: n)`). They talk to their home through
  # SwarmService.Swarm.Home like any caller; the home reaches them through
  # a relay. Each is registered as {:agent, id} with the swarm and the
  # directory epoch it was started under, so that when the swarm moves to
  # a new home the ones started for the old home can be told apart from
  # the ones the new home adopted.
  alias SwarmService.Cluster.Directory

  def child_spec(_) do
    %{
      id: __MODULE__,
      start:
        {DynamicSupervisor, :start_link,
         [[name: __MODULE__, strategy: :one_for_one, max_restarts: 1_000, max_seconds: 5]]},
      type: :supervisor
    }
  end

  @doc "Starts an agent process here for a swarm homed elsewhere."
  def start_agent(swarm_id, agent_id, executor) do
    epoch =
      case Directory.lookup(swarm_id) do
        %{epoch: e} -> e
        nil -> 0
      end

    start(swarm_id, epoch, agent_id, executor)
  end

  @doc "Stops one hosted agent process."
  def stop_agent(pid), do: DynamicSupervisor.terminate_child(__MODULE__, pid)

  @doc """
  The swarm's (new) home asks for these agents to run here: any older
  process of the same agent is replaced.
  """
  def adopt(swarm_id, epoch, agents) do
    for {agent_id, executor} <- agents do
      with [{old, _}] <- Registry.lookup(SwarmService.SwarmRegistry, {:agent, agent_id}) do
        stop_agent(old)
      end

      start(swarm_id, epoch, agent_id, executor)
    end

    :ok
  end

  @doc "The swarm moved or was destroyed: stops the agents started under an older epoch."
  def release(%{swarm: swarm_id, epoch: epoch}) do
    spec = [
      {{{:agent, :_}, :"$1", {:"$2", :"$3"}}, [{:==, :"$2", swarm_id}, {:<, :"$3", epoch}],
       [:"$1"]}
    ]

    for pid <- Registry.select(SwarmService.SwarmRegistry, spec), do: stop_agent(pid)
    :ok
  end

  defp start(swarm_id, epoch, agent_id, executor) do
    args = %{swarm_id: swarm_id, agent_id: agent_id, executor: executor, epoch: epoch}
    DynamicSupervisor.start_child(__MODULE__, {SwarmService.Agent, args})
  end
end
