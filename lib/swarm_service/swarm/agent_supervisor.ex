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
      case restore(swarm_id, sup) do
        # A Raft member that rejoined its cluster builds its engine once
        # it hears from the leader: its agents are rebuilt then.
        {:error, :swarm_not_found} -> restore_when_built(swarm_id, sup)
        _ -> :ok
      end

      {:ok, sup}
    end
  end

  @build_wait_ms 120_000

  defp restore_when_built(swarm_id, sup) do
    if SwarmService.Raft.server(swarm_id) do
      deadline = System.monotonic_time(:millisecond) + @build_wait_ms

      Task.start(fn ->
        ref = Process.monitor(sup)
        wait_and_restore(swarm_id, sup, ref, deadline)
      end)
    end

    :ok
  end

  defp wait_and_restore(swarm_id, sup, ref, deadline) do
    receive do
      {:DOWN, ^ref, :process, _, _} -> :ok
    after
      100 ->
        case Native.swarm_status(swarm_id) do
          {:ok, _} ->
            start_missing(swarm_id, sup)

          _ ->
            if System.monotonic_time(:millisecond) < deadline,
              do: wait_and_restore(swarm_id, sup, ref, deadline)
        end
    end
  end

  # How long start_agent/3 waits for a supervisor that is being restarted.
  @restart_wait_ms 2_000

  @doc """
  Starts an agent process for a swarm homed here. If the supervisor is
  being restarted meanwhile, waits for its successor (whose rebuild may
  already have started this agent: then that process is the answer).
  """
  def start_agent(swarm_id, agent_id, executor) do
    deadline = System.monotonic_time(:millisecond) + @restart_wait_ms
    start_until(swarm_id, agent_id, executor, deadline)
  end

  defp start_until(swarm_id, agent_id, executor, deadline) do
    case GenServer.whereis(Swarm.via({:agents, swarm_id})) do
      sup when is_pid(sup) ->
        try do
          case start_child(sup, swarm_id, agent_id, executor) do
            # Ended while it was starting by a rebuild of the supervisor
            # (which kills every process still named as the agent), when
            # attaching took long enough (a durable swarm's attach waits
            # for the disk): the rebuild may already have started it again.
            {:error, :killed} -> retry(swarm_id, agent_id, executor, deadline, :killed)
            started -> started
          end
        catch
          :exit, reason -> retry(swarm_id, agent_id, executor, deadline, reason)
        end

      nil ->
        retry(swarm_id, agent_id, executor, deadline, :noproc)
    end
  end

  defp retry(swarm_id, agent_id, executor, deadline, reason) do
    # (The swarm itself may be gone: then there is nothing to wait for.)
    if System.monotonic_time(:millisecond) < deadline and
         Registry.lookup(SwarmService.SwarmRegistry, {:swarm, swarm_id}) != [] do
      Process.sleep(1)
      start_until(swarm_id, agent_id, executor, deadline)
    else
      {:error, reason}
    end
  end

  defp start_child(sup, swarm_id, agent_id, executor) do
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
  #
  # A process the engine still names belongs to the previous incarnation of
  # this supervisor (this one has no children yet): killed with it, it may
  # not have ended yet, above all when it is busy, so skipping it as "alive"
  # lost the agent for good once it did end (its DOWN takes it offline).
  # It is ended here, and waited for, before its successor attaches; the
  # successor's attach then takes back whatever work it held, and that work
  # is retried (at-least-once). The old process's DOWN, arriving later at
  # the server, names a pid the engine no longer holds and is ignored.
  defp restore(swarm_id, sup) do
    here = Atom.to_string(node())

    with {:ok, agents} <- Native.agent_processes(swarm_id),
         {:ok, listed} <- Native.agent_list(swarm_id) do
      local = for a <- listed, a.node == here, into: MapSet.new(), do: a.id
      agents = Enum.filter(agents, fn {agent_id, _, _} -> MapSet.member?(local, agent_id) end)

      # (And any process still registered as one of these agents, which
      # would make its successor's start answer :already_started.)
      agents
      |> Enum.flat_map(fn {agent_id, pid, _} ->
        named =
          for {p, _} <- Registry.lookup(SwarmService.SwarmRegistry, {:home_agent, agent_id}),
              do: p

        if(is_pid(pid) and node(pid) == node(), do: [pid], else: []) ++ named
      end)
      |> Enum.uniq()
      |> end_all()

      for {agent_id, _pid, executor} <- agents, do: start_child(sup, swarm_id, agent_id, executor)
    end
  end

  # Meanwhile this supervisor may have started agents itself (spawned
  # since): only those with no process yet are started.
  defp start_missing(swarm_id, sup) do
    here = Atom.to_string(node())

    with {:ok, agents} <- Native.agent_processes(swarm_id),
         {:ok, listed} <- Native.agent_list(swarm_id) do
      local = for a <- listed, a.node == here, into: MapSet.new(), do: a.id

      for {agent_id, _pid, executor} <- agents,
          MapSet.member?(local, agent_id),
          Registry.lookup(SwarmService.SwarmRegistry, {:home_agent, agent_id}) == [],
          do: start_child(sup, swarm_id, agent_id, executor)
    end
  end

  @end_wait_ms 5_000

  defp end_all(pids) do
    refs =
      for pid <- pids do
        ref = Process.monitor(pid)
        Process.exit(pid, :kill)
        ref
      end

    deadline = System.monotonic_time(:millisecond) + @end_wait_ms

    for ref <- refs do
      left = max(deadline - System.monotonic_time(:millisecond), 0)

      receive do
        {:DOWN, ^ref, :process, _, _} -> :ok
      after
        left -> Process.demonitor(ref, [:flush])
      end
    end
  end
end
