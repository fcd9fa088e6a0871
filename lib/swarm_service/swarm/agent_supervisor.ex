defmodule SwarmService.Swarm.AgentSupervisor do
  @moduledoc false
  # Supervises a swarm's agent processes. A DynamicSupervisor forgets its
  # children when it restarts, but agent registrations are acknowledged
  # state, so on every start it rebuilds a process for each push agent the
  # engine knows whose process is gone (from the executor spec stored with
  # the agent).
  alias SwarmService.{Native, Swarm}

  def child_spec(swarm_id) do
    %{id: :agents, start: {__MODULE__, :start_link, [swarm_id]}, type: :supervisor}
  end

  def start_link(swarm_id) do
    opts = [
      name: Swarm.via({:agents, swarm_id}),
      strategy: :one_for_one,
      max_restarts: 1_000,
      max_seconds: 5
    ]

    with {:ok, sup} <- DynamicSupervisor.start_link(opts) do
      restore(swarm_id, sup)
      {:ok, sup}
    end
  end

  @doc "Starts an agent process for a swarm homed here."
  def start_agent(swarm_id, agent_id, executor) do
    start_agent(Swarm.via({:agents, swarm_id}), swarm_id, agent_id, executor)
  catch
    :exit, reason -> {:error, reason}
  end

  defp start_agent(sup, swarm_id, agent_id, executor) do
    args = %{swarm_id: swarm_id, agent_id: agent_id, executor: executor}
    DynamicSupervisor.start_child(sup, {SwarmService.Agent, args})
  end

  @doc "Stops one of the swarm's agent processes."
  def stop_agent(swarm_id, pid) do
    DynamicSupervisor.terminate_child(Swarm.via({:agents, swarm_id}), pid)
  catch
    :exit, _ -> :ok
  end

  # Only agents placed on this node: those on other nodes are run there
  # (Swarm.AgentHost).
  defp restore(swarm_id, sup) do
    here = Atom.to_string(node())

    with {:ok, agents} <- Native.agent_processes(swarm_id),
         {:ok, listed} <- Native.agent_list(swarm_id) do
      local = for a <- listed, a.node == here, into: MapSet.new(), do: a.id

      for {agent_id, pid, executor} <- agents,
          MapSet.member?(local, agent_id),
          not (is_pid(pid) and Process.alive?(pid)) do
        start_agent(sup, swarm_id, agent_id, executor)
      end
    end
  end
end
