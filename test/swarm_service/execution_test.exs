defmodule SwarmService.ExecutionTest do
  use ExUnit.Case, async: true

  alias SwarmService.{Agent, Native, RuvSwarm}
  alias SwarmService.Test.Executors
  import SwarmService.Test.Eventually

  defp swarm!(opts) do
    {:ok, id} = RuvSwarm.spawn_swarm(opts)
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  # Generous: a loaded CI machine may take seconds to start a process.
  defp run!(swarm, task, timeout \\ 10_000) do
    {:ok, t} = RuvSwarm.orchestrate(swarm, task)
    {t, RuvSwarm.await_task(t, timeout)}
  end

  defp ok({:ok, _} = result), do: result
  defp ok(_), do: nil

  defp agent_ids(swarm) do
    {:ok, agents} = RuvSwarm.list_agents(swarm)
    Enum.map(agents, & &1.id)
  end

  defp pids(swarm) do
    {:ok, procs} = Native.agent_processes(swarm)
    Map.new(procs, fn {id, pid, _} -> {id, pid} end)
  end

  describe "module executors" do
    test "the result is what the agent produced" do
      s = swarm!(agents: 3, executor: {:module, Executors.Upcase})
      assert {_, {:ok, "HELLO SWARM"}} = run!(s, "hello swarm")
      {:ok, status} = RuvSwarm.swarm_status(s)
      assert status.tasks.completed == 1 and status.agents.idle == 3
    end

    test "parallel fans out to distinct agents and aggregates in order" do
      s = swarm!(agents: 4, executor: {:module, Executors.Echo})
      {_, {:ok, results}} = run!(s, %{input: "q", strategy: :parallel, max_agents: 3})
      assert Enum.map(results, & &1.unit) == ["part-1", "part-2", "part-3"]
      assert results |> Enum.map(& &1.agent) |> Enum.uniq() |> length() == 3
      assert Enum.all?(results, &(&1.input == "q"))
    end

    test "sequential pipes each step's output into the next, in ring order on a ring" do
      s = swarm!(topology: :ring, agents: 4, executor: {:module, Executors.Trail})
      ring = agent_ids(s)
      {_, {:ok, trail}} = run!(s, %{input: [], strategy: :sequential, max_agents: 4})
      assert length(trail) == 4
      start = Enum.find_index(ring, &(&1 == hd(trail)))
      assert trail == Enum.map(0..3, &Enum.at(ring, rem(start + &1, 4)))
    end

    test "subtask DAGs run in dependency order with their dependencies' results" do
      s = swarm!(agents: 3, executor: {:module, Executors.Echo})

      subtasks = [
        %{name: "fetch", input: "url"},
        %{name: "parse", input: "p", depends_on: ["fetch"]},
        %{name: "lint", input: "l", depends_on: ["fetch"]},
        %{name: "report", input: "r", depends_on: ["parse", "lint"]}
      ]

      {_, {:ok, results}} = run!(s, %{description: "build", subtasks: subtasks})
      assert Map.keys(results) |> Enum.sort() == ["fetch", "lint", "parse", "report"]
      assert results["fetch"].deps == %{}
      assert Map.keys(results["report"].deps) |> Enum.sort() == ["lint", "parse"]
      assert results["report"].deps["parse"].deps["fetch"].input == "url"
    end

    test "executors share memory and discoveries and report progress" do
      s = swarm!(agents: 2, executor: {:module, Executors.Researcher})
      :ok = RuvSwarm.subscribe(s)
      :ok = RuvSwarm.subscribe_discoveries(s, type: "finding", min_confidence: 0.8)

      {t, {:ok, %{"b" => %{seen: ["a"]}}}} =
        run!(s,
          subtasks: [%{name: "a", input: "alpha"}, %{name: "b", input: "beta", depends_on: ["a"]}]
        )

      assert {:ok, %{value: "found alpha"}} = RuvSwarm.memory_get(s, "notes/a")
      assert_receive {:swarm_discovery, ^s, %{content: "alpha", confidence: 0.9}}
      assert_receive {:swarm_discovery, ^s, %{content: "beta"}}
      assert_receive {:swarm_event, ^s, %{type: :task_assigned, task_id: ^t}}
      assert_receive {:swarm_event, ^s, %{type: :task_started, task_id: ^t}}
      assert_receive {:swarm_event, ^s, %{type: :task_progress, task_id: ^t, progress: 0.5}}
      assert_receive {:swarm_event, ^s, %{type: :task_completed, task_id: ^t}}
    end

    test "priorities: a critical task overtakes queued ones" do
      s = swarm!(agents: 1, executor: {:module, Executors.Notify, self()})
      {:ok, first} = RuvSwarm.orchestrate(s, "first")
      assert_receive {:started, _, _, worker}
      {:ok, low} = RuvSwarm.orchestrate(s, description: "low", priority: :low)
      {:ok, crit} = RuvSwarm.orchestrate(s, description: "crit", priority: :critical)
      send(worker, :release)
      assert_receive {:started, work_id, _, worker}
      assert String.starts_with?(work_id, crit <> "/")
      send(worker, :release)
      assert_receive {:started, work_id, _, worker}
      assert String.starts_with?(work_id, low <> "/")
      send(worker, :release)
      for t <- [first, crit, low], do: assert({:ok, :released} = RuvSwarm.await_task(t, 1_000))
    end

    test "cancellation stops the running attempt and frees the agent" do
      s = swarm!(agents: 1, executor: {:module, Executors.Notify, self()})
      {:ok, t} = RuvSwarm.orchestrate(s, "long")
      assert_receive {:started, _, _, worker}
      ref = Process.monitor(worker)
      :ok = RuvSwarm.cancel_task(t)
      assert_receive {:DOWN, ^ref, :process, ^worker, :killed}
      assert {:error, :cancelled} = RuvSwarm.await_task(t, 100)
      {:ok, next} = RuvSwarm.orchestrate(s, "next")
      assert_receive {:started, _, _, worker2}
      send(worker2, :release)
      assert {:ok, :released} = RuvSwarm.await_task(next, 1_000)
    end
  end

  describe "failures lose nothing" do
    test "a worker killed mid-task: that attempt is retried, its agent carries on" do
      s = swarm!(agents: 1, executor: {:module, Executors.DieOnce})
      [agent] = agent_ids(s)
      agent_pid = pids(s)[agent]
      # The slot's worker is known to the engine after its first task, so
      # the next work goes to it directly.
      {_, {:ok, {:warm, 1, worker}}} = run!(s, %{input: :warm})
      {_, {:ok, {:warm, 1, ^worker}}} = run!(s, %{input: :warm})
      :ok = RuvSwarm.subscribe(s)
      {t, {:ok, {:die, 2, worker2}}} = run!(s, %{input: :die, backoff_ms: 1})
      refute worker2 == worker
      assert_receive {:swarm_event, ^s, %{type: :task_retried, task_id: ^t, reason: reason}}
      assert reason =~ "executor crashed: :killed"
      assert pids(s)[agent] == agent_pid
      {_, {:ok, {:after, 1, ^worker2}}} = run!(s, %{input: :after})
    end

    test "work queued behind a cancelled or timed-out attempt starts in the freed slot" do
      s = swarm!(agents: 1, executor: {:module, Executors.Notify, self()})
      # After its first task the slot's worker is known to the engine, which
      # then sends the slot's work to it directly.
      {:ok, warm} = RuvSwarm.orchestrate(s, "warm")
      assert_receive {:started, _, _, w0}
      send(w0, :release)
      {:ok, :released} = RuvSwarm.await_task(warm, 1_000)

      for stop <- [:cancel, :timeout] do
        {:ok, a} = RuvSwarm.orchestrate(s, %{input: "a", timeout_ms: 200, retries: 1})
        assert_receive {:started, wid_a, _, _}
        assert String.starts_with?(wid_a, a)
        # Queued: the agent's only slot is busy.
        {:ok, b} = RuvSwarm.orchestrate(s, "b")
        if stop == :cancel, do: :ok = RuvSwarm.cancel_task(a)

        assert_receive {:started, wid_b, _, wb}, 2_000
        assert String.starts_with?(wid_b, b)
        send(wb, :release)
        assert {:ok, :released} = RuvSwarm.await_task(b, 1_000)
      end
    end

    test "cancelling one attempt on a multi-slot agent leaves the others running" do
      {:ok, s} = RuvSwarm.spawn_swarm(max_agents: 1)
      on_exit(fn -> RuvSwarm.destroy_swarm(s) end)

      {:ok, _} =
        RuvSwarm.spawn_agent(s, capacity: 2, executor: {:module, Executors.Notify, self()})

      {:ok, a} = RuvSwarm.orchestrate(s, "a")
      {:ok, b} = RuvSwarm.orchestrate(s, "b")
      assert_receive {:started, _, _, wa}
      assert_receive {:started, _, _, wb}
      refute wa == wb
      send(wa, :release)
      send(wb, :release)
      assert {:ok, :released} = RuvSwarm.await_task(a, 1_000)
      assert {:ok, :released} = RuvSwarm.await_task(b, 1_000)

      # Both workers are now known to the engine; cancel one of two tasks.
      {:ok, c} = RuvSwarm.orchestrate(s, "c")
      assert_receive {:started, wid_c, _, wc}
      {:ok, d} = RuvSwarm.orchestrate(s, "d")
      assert_receive {:started, _, _, wd}
      assert String.starts_with?(wid_c, c)
      assert wc in [wa, wb] and wd in [wa, wb]
      ref = Process.monitor(wc)
      :ok = RuvSwarm.cancel_task(c)
      assert_receive {:DOWN, ^ref, :process, ^wc, :killed}
      assert Process.alive?(wd)
      send(wd, :release)
      assert {:ok, :released} = RuvSwarm.await_task(d, 1_000)
      assert {:error, :cancelled} = RuvSwarm.await_task(c, 100)
      # The freed slot gets a fresh worker.
      {:ok, e} = RuvSwarm.orchestrate(s, "e")
      assert_receive {:started, _, _, we}
      refute we == wc
      send(we, :release)
      assert {:ok, :released} = RuvSwarm.await_task(e, 1_000)
    end

    test "an agent process crash: the task is retried on another agent" do
      s = swarm!(agents: 2, executor: {:module, Executors.Crash, self()})
      {t, {:ok, {:survived, 2, agent}}} = run!(s, %{input: "x", backoff_ms: 1})
      assert_received {:crashing, crashed}
      assert agent != crashed
      {:ok, %{units: [unit]}} = RuvSwarm.task_status(t)
      assert unit.attempts == 2
      # The crashed agent was restarted by its supervisor.
      eventually(fn ->
        match?({:ok, %{agents: %{offline: 0, total: 2}}}, RuvSwarm.swarm_status(s))
      end)
    end

    test "an executor exception fails the attempt with the exception's message" do
      s = swarm!(agents: 2, executor: {:module, Executors.Raise})
      {t, result} = run!(s, %{input: "x", retries: 2, backoff_ms: 1})
      assert {:error, {:failed, msg}} = result
      assert msg =~ "after 2 attempt(s)" and msg =~ "deliberate failure"
      {:ok, %{units: [%{attempts: 2}]}} = RuvSwarm.task_status(t)
    end

    test "retries go to another agent, with the failing agent's metrics showing it" do
      s = swarm!(agents: 2, executor: {:module, Executors.Flaky})
      [bad, good] = agent_ids(s)
      :persistent_term.put({Executors.Flaky, :bad}, [bad])
      on_exit(fn -> :persistent_term.erase({Executors.Flaky, :bad}) end)

      for _ <- 1..4 do
        assert {_, {:ok, ^good}} = run!(s, %{input: "x", backoff_ms: 1})
      end

      {:ok, %{metrics: m}} = RuvSwarm.agent_metrics(good)
      assert m.completed == 4
    end

    test "an attempt over its timeout is retried, then the task times out" do
      s = swarm!(agents: 2, executor: {:module, Executors.Sleep})
      :ok = RuvSwarm.subscribe(s)
      {t, result} = run!(s, %{input: 5_000, timeout_ms: 50, retries: 2, backoff_ms: 1})
      assert {:error, {:timed_out, msg}} = result
      assert msg =~ "timed out"
      assert_receive {:swarm_event, ^s, %{type: :task_retried, task_id: ^t, attempt: 2}}
      assert_receive {:swarm_event, ^s, %{type: :task_timed_out, task_id: ^t}}
      eventually(fn -> match?({:ok, %{agents: %{idle: 2}}}, RuvSwarm.swarm_status(s)) end)
    end

    test "an agent removed mid-task: the task finishes on another agent" do
      s = swarm!(agents: 2, executor: {:module, Executors.Notify, self()})
      {:ok, t} = RuvSwarm.orchestrate(s, %{input: "x", backoff_ms: 1})
      assert_receive {:started, _, agent, _}
      :ok = RuvSwarm.remove_agent(agent)
      assert_receive {:started, _, other, worker}, 1_000
      assert other != agent
      send(worker, :release)
      assert {:ok, :released} = RuvSwarm.await_task(t, 1_000)
      assert {:error, :agent_not_found} = RuvSwarm.agent_metrics(agent)
    end

    test "an external claimant that vanishes: its lease runs out and the work goes back" do
      s = swarm!(agents: 2)
      [a, b] = agent_ids(s)
      {:ok, t} = RuvSwarm.orchestrate(s, %{input: "x", backoff_ms: 1})
      {:ok, w1} = RuvSwarm.claim_task(a, lease_ms: 30)
      # After the lease and a short backoff, the work is claimable again.
      {:ok, w2} = eventually(fn -> ok(RuvSwarm.claim_task(b, lease_ms: 1_000)) end)
      assert w2.task_id == t and w2.work_id != w1.work_id
      assert :ignored = RuvSwarm.complete_task(w1.work_id, a, "too late")
      assert :ok = RuvSwarm.complete_task(w2.work_id, b, "done")
      assert {:ok, "done"} = RuvSwarm.await_task(t, 100)
    end

    test "an external agent may fail its claim and another picks it up" do
      s = swarm!(agents: 2)
      [a, b] = agent_ids(s)
      {:ok, t} = RuvSwarm.orchestrate(s, %{input: "x", backoff_ms: 1, retries: 2})
      {:ok, w1} = RuvSwarm.claim_task(a)
      assert :ok = RuvSwarm.fail_task(w1.work_id, a, "no network")
      # Once its backoff is over the unit waits in the queue again.
      eventually(fn -> match?({:ok, %{units: [%{status: :pending}]}}, RuvSwarm.task_status(t)) end)

      assert {:error, :no_task} = RuvSwarm.claim_task(a), "excluded while b is available"
      {:ok, w2} = RuvSwarm.claim_task(b)
      :ok = RuvSwarm.fail_task(w2.work_id, b, "still no network")
      assert {:error, {:failed, msg}} = RuvSwarm.await_task(t, 100)
      assert msg =~ "still no network"
    end
  end

  describe "command executors" do
    test "input on stdin, stdout as the result" do
      s = swarm!(agents: 2, executor: {:command, ["tr", "a-z", "A-Z"], []})
      assert {_, {:ok, "PIPED THROUGH TR"}} = run!(s, "piped through tr")
    end

    test "one agent runs many commands in a row on its reused worker" do
      s = swarm!(agents: 1, executor: {:command, ["tr", "a-z", "A-Z"], []})

      for i <- 1..30 do
        assert {_, {:ok, out}} = run!(s, "run #{i}")
        assert out == "RUN #{i}"
      end
    end

    test "a non-zero exit fails the attempt with the status and stderr" do
      argv = ["sh", "-c", "echo 'disk on fire' >&2; exit 3"]
      s = swarm!(agents: 1, executor: {:command, argv, []})
      assert {_, {:error, {:failed, msg}}} = run!(s, %{input: "x", retries: 1})
      assert msg =~ "exit status 3" and msg =~ "disk on fire"
    end

    test "working directory and environment are set" do
      dir = System.tmp_dir!() |> Path.join("ruv_cmd_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      argv = ["sh", "-c", "pwd; printf %s \"$GREETING\""]
      s = swarm!(agents: 1, executor: {:command, argv, cd: dir, env: %{"GREETING" => "hi"}})
      assert {_, {:ok, out}} = run!(s, "")
      assert out == Path.expand(dir) <> "\nhi"
    end

    test "a timeout kills the whole process tree" do
      marker = "#{System.unique_integer([:positive])}.5"
      argv = ["sh", "-c", "sleep #{marker} & sleep #{marker}; wait"]
      s = swarm!(agents: 1, executor: {:command, argv, timeout_ms: 200})
      assert {_, {:error, {:timed_out, msg}}} = run!(s, %{input: "", retries: 1}, 3_000)
      assert msg =~ "killed"
      eventually(fn -> System.cmd("pgrep", ["-f", "sleep #{marker}"]) |> elem(0) == "" end)
    end

    test "output over the cap kills the command" do
      s = swarm!(agents: 1, executor: {:command, ["yes"], max_output_bytes: 10_000})
      assert {_, {:error, {:failed, msg}}} = run!(s, %{input: "", retries: 1})
      assert msg =~ "output exceeded 10000 bytes"
    end

    test "bad command specs are refused up front" do
      assert {:error, {:invalid_argument, msg}} =
               RuvSwarm.spawn_swarm(agents: 1, executor: {:command, ["no-such-binary-xyz"], []})

      assert msg =~ "not found"

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.spawn_swarm(executor: {:command, "ls -la", []})

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.spawn_swarm(executor: {:command, ["ls"], shell: true})
    end
  end

  describe "topologies route differently" do
    defp inbox_sources(s) do
      agents = pids(s)
      eventually(fn -> Enum.all?(agents, fn {_, pid} -> Agent.inbox(pid) != [] end) end)

      for {id, pid} <- agents, into: %{} do
        [%{from: from}] = Agent.inbox(pid)
        {id, from}
      end
    end

    test "mesh: the origin reaches every peer directly" do
      s = swarm!(topology: :mesh, agents: 4, executor: {:module, Executors.Echo})
      [a0 | rest] = agent_ids(s)
      :ok = RuvSwarm.coordinate_agents(s, :sync)
      sources = inbox_sources(s)
      assert sources[a0] == nil
      assert Enum.all?(rest, &(sources[&1] == a0))
    end

    test "ring: each agent hears from its neighbour" do
      s = swarm!(topology: :ring, agents: 4, executor: {:module, Executors.Echo})
      ids = agent_ids(s)
      :ok = RuvSwarm.coordinate_agents(s, :sync, from: Enum.at(ids, 1))
      sources = inbox_sources(s)
      assert sources[Enum.at(ids, 2)] == Enum.at(ids, 1)
      assert sources[Enum.at(ids, 3)] == Enum.at(ids, 2)
      assert sources[Enum.at(ids, 0)] == Enum.at(ids, 3)
      assert {:ok, [_, _] = neighbours} = RuvSwarm.neighbours(Enum.at(ids, 0))
      assert Enum.sort(neighbours) == Enum.sort([Enum.at(ids, 3), Enum.at(ids, 1)])
    end

    test "star: the hub delegates work and relays coordination" do
      s = swarm!(topology: :star, agents: 4, executor: {:module, Executors.Echo})
      [hub | spokes] = agent_ids(s)
      {_, {:ok, results}} = run!(s, %{input: "x", max_agents: 3})
      assert Enum.sort(Enum.map(results, & &1.agent)) == Enum.sort(spokes)
      assert Enum.all?(results, &(hd(&1.route) == hub))
      :ok = RuvSwarm.coordinate_agents(s, :sync, from: List.last(spokes))
      sources = inbox_sources(s)
      assert sources[hub] == List.last(spokes)
      assert Enum.all?(Enum.drop(spokes, -1), &(sources[&1] == hub))
    end

    test "hierarchical: coordinators split work down the tree, leaves do it" do
      s = swarm!(topology: :hierarchical, agents: 5, executor: {:module, Executors.Echo})
      [root, c1, l2, l3, l4] = agent_ids(s)
      {_, {:ok, results}} = run!(s, %{input: "x", max_agents: 5})
      assert Enum.sort(Enum.map(results, & &1.agent)) == Enum.sort([l2, l3, l4])
      assert Enum.find(results, &(&1.agent == l4)).route == [root, c1, l4]
      :ok = RuvSwarm.coordinate_agents(s, :sync)
      sources = inbox_sources(s)
      assert {sources[c1], sources[l2], sources[l4]} == {root, root, c1}
    end
  end
end
