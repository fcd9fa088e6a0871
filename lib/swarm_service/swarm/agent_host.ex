defmodule SwarmService.Swarm.AgentHost do
  @moduledoc false
  # Supervises the agent processes this node runs for swarms that have no
  # processes here (`spawn_agent(swarm, node: n)` on a node that is not one
  # of the swarm's Raft members, or not the home of an in-memory swarm).
  # They talk to the swarm through SwarmService.Swarm.Home like any caller;
  # the swarm reaches them through a relay.

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
    args = %{swarm_id: swarm_id, agent_id: agent_id, executor: executor, hosted: true}
    DynamicSupervisor.start_child(__MODULE__, {SwarmService.Agent, args})
  end

  @doc "Stops one hosted agent process."
  def stop_agent(pid), do: DynamicSupervisor.terminate_child(__MODULE__, pid)
end
