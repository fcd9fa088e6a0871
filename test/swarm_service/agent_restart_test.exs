defmodule SwarmService.AgentRestartTest do
  # Killing a swarm's agent supervisor, busy or idle, any number of times,
  # must leave every agent running again (rebuilt from the engine), and work
  # that was running is retried, so every task completes.
  use ExUnit.Case, async: true

  alias SwarmService.{Native, RuvSwarm, Swarm}
  alias SwarmService.Test.Executors
  import SwarmService.Test.Eventually

  @agents 3
  @kills 20

  defp swarm! do
    {:ok, id} =
      RuvSwarm.spawn_swarm(agents: @agents, executor: {:module, Executors.SlowSquare, 5})

    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  defp agent_sup(swarm), do: GenServer.whereis(Swarm.via({:agents, swarm}))

  # The supervisor's children; none while it is being restarted (not yet
  # registered, or killed between the lookup and the call).
  defp children(nil), do: []

  defp children(sup) do
    for {_, pid, _, _} <- DynamicSupervisor.which_children(sup), do: pid
  catch
    :exit, _ -> []
  end

  defp engine_pids(swarm) do
    {:ok, procs} = Native.agent_processes(swarm)
    for {_id, pid, _} <- procs, do: pid
  end

  # The swarm is whole again: a new supervisor runs one live process per
  # agent, each the one the engine sends work to, and none is offline.
  defp recovered?(swarm, old_sup) do
    sup = agent_sup(swarm)
    pids = engine_pids(swarm)

    with true <- is_pid(sup) and sup != old_sup,
         children = children(sup),
         true <- length(children) == @agents,
         true <- Enum.sort(pids) == Enum.sort(children),
         true <- Enum.all?(pids, &(is_pid(&1) and Process.alive?(&1))),
         {:ok, %{agents: agents}} <- RuvSwarm.swarm_status(swarm) do
      agents.total == @agents and agents.offline == 0 and agents.idle + agents.busy == @agents
    end
  end

  defp kill_agent_supervisor(swarm, seen) do
    sup = agent_sup(swarm)
    seen = MapSet.union(seen, MapSet.new(engine_pids(swarm)))
    Process.exit(sup, :kill)
    eventually(fn -> recovered?(swarm, sup) end)
    seen
  end

  defp assert_whole(swarm, seen) do
    eventually(fn -> recovered?(swarm, nil) end)
    current = MapSet.new(engine_pids(swarm))
    assert MapSet.size(current) == @agents
    # Every agent process of an earlier supervisor is gone.
    eventually(fn ->
      seen |> MapSet.difference(current) |> Enum.all?(&(not Process.alive?(&1)))
    end)

    {:ok, status} = RuvSwarm.swarm_status(swarm)
    assert status.agents.offline == 0
    assert status.agents.idle + status.agents.busy == @agents
  end

  defp submit(swarm, inputs) do
    for n <- inputs do
      {:ok, t} = RuvSwarm.orchestrate(swarm, %{input: n, retries: 20, backoff_ms: 1})
      {t, n}
    end
  end

  defp assert_all_done(tasks) do
    for {t, n} <- tasks do
      assert RuvSwarm.await_task(t, 20_000) == {:ok, n * n}, "task #{t} (input #{n})"
    end
  end

  test "busy agents come back after their supervisor is killed #{@kills} times; every task completes" do
    s = swarm!()

    {tasks, seen} =
      Enum.reduce(1..@kills, {[], MapSet.new()}, fn round, {tasks, seen} ->
        batch = submit(s, (round * 10)..(round * 10 + 5))
        # Kill while work is running.
        eventually(fn ->
          match?({:ok, %{agents: %{busy: b}}} when b > 0, RuvSwarm.swarm_status(s))
        end)

        {batch ++ tasks, kill_agent_supervisor(s, seen)}
      end)

    assert_all_done(tasks)
    assert_whole(s, seen)
    # The rebuilt agents still take new work.
    assert_all_done(submit(s, 1..6))
  end

  test "idle agents come back after their supervisor is killed #{@kills} times; new tasks run" do
    s = swarm!()
    seen = Enum.reduce(1..@kills, MapSet.new(), fn _, seen -> kill_agent_supervisor(s, seen) end)
    assert_whole(s, seen)
    assert_all_done(submit(s, 1..6))
  end

  test "agents spawned while their supervisor is being killed each get exactly one process" do
    {:ok, s} = RuvSwarm.spawn_swarm(max_agents: 200, executor: {:module, Executors.SlowSquare, 1})
    on_exit(fn -> RuvSwarm.destroy_swarm(s) end)
    test = self()

    spawner =
      spawn_link(fn ->
        for _ <- 1..60, do: {:ok, _} = RuvSwarm.spawn_agent(s)
        send(test, :spawned)
      end)

    killer = spawn_link(fn -> kill_loop(s, test) end)
    assert_receive :spawned, 30_000
    send(killer, :stop)
    assert_receive {:killer_stopped, ^killer}, 5_000
    refute Process.alive?(spawner)

    eventually(fn ->
      children = children(agent_sup(s))
      pids = engine_pids(s)

      length(children) == 60 and Enum.sort(children) == Enum.sort(pids) and
        match?({:ok, %{agents: %{total: 60, offline: 0}}}, RuvSwarm.swarm_status(s))
    end)

    tasks = submit(s, 1..20)
    assert_all_done(tasks)
  end

  # Kills the agent supervisor every few ms until told to stop.
  defp kill_loop(s, parent) do
    receive do
      :stop -> send(parent, {:killer_stopped, self()})
    after
      3 ->
        if sup = agent_sup(s), do: Process.exit(sup, :kill)
        kill_loop(s, parent)
    end
  end
end
