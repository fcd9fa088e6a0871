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

  def start_agent(sup, swarm_id, agent_id, executor) do
    args = %{swarm_id: swarm_id, agent_id: agent_id, executor: executor}
    DynamicSupervisor.start_child(sup, {SwarmService.Agent, args})
  end

  defp restore(swarm_id, sup) do
    case Native.agent_processes(swarm_id) do
      {:ok, agents} ->
        for {agent_id, pid, executor} <- agents, not (is_pid(pid) and Process.alive?(pid)) do
          start_agent(sup, swarm_id, agent_id, executor)
        end

      {:error, _} ->
        :ok
    end
  end
end
