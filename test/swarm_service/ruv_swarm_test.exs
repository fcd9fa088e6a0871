defmodule SwarmService.RuvSwarmTest do
  use ExUnit.Case, async: true

  alias SwarmService.RuvSwarm
  alias SwarmService.Test.Executors
  import SwarmService.Test.Eventually

  doctest SwarmService.RuvSwarm

  defp swarm!(opts \\ %{}) do
    {:ok, id} = RuvSwarm.spawn_swarm(opts)
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  describe "spawn_swarm/1" do
    test "accepts exactly the documented map and reports what it made" do
      id = swarm!(%{topology: :mesh, agents: 5, strategy: :adaptive})
      {:ok, s} = RuvSwarm.swarm_status(id)
      assert %{topology: :mesh, strategy: :adaptive, max_agents: 100} = s
      assert s.agents == %{total: 5, idle: 5, busy: 0, offline: 0}
      assert {:ok, agents} = RuvSwarm.list_agents(id)
      assert length(agents) == 5
      assert Enum.all?(agents, &(&1.dispatch == :pull))
    end

    test "accepts keyword lists, a name and max_agents" do
      id = swarm!(topology: :star, name: "review crew", max_agents: 3, agents: 2)
      {:ok, s} = RuvSwarm.swarm_status(id)
      assert {s.name, s.topology, s.max_agents, s.agents.total} == {"review crew", :star, 3, 2}
      assert {:ok, swarms} = RuvSwarm.list_swarms()
      assert Enum.any?(swarms, &(&1.id == id and &1.agents == 2))
    end

    test "rejects bad options with a reason a person can act on" do
      assert {:error, {:invalid_argument, msg}} = RuvSwarm.spawn_swarm(%{strategy: :random})
      assert msg =~ "balanced"
      assert {:error, {:invalid_argument, msg}} = RuvSwarm.spawn_swarm(agents: -1)
      assert msg =~ "agents"
      assert {:error, {:invalid_argument, _}} = RuvSwarm.spawn_swarm(agents: 5, max_agents: 2)
      assert {:error, {:invalid_argument, _}} = RuvSwarm.spawn_swarm(max_agents: 100_001)
      assert {:error, {:invalid_argument, msg}} = RuvSwarm.spawn_swarm(%{colour: :blue})
      assert msg =~ ":colour"
      assert {:error, {:invalid_argument, _}} = RuvSwarm.spawn_swarm("mesh")

      assert {:error, {:too_large, "name", _, 256}} =
               RuvSwarm.spawn_swarm(name: String.duplicate("x", 300))

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.spawn_swarm(executor: {:module, NoSuchModule})
    end

    test "string names of enums work without creating atoms" do
      id = swarm!(topology: "ring", strategy: "specialized")
      assert {:ok, %{topology: :ring, strategy: :specialized}} = RuvSwarm.swarm_status(id)
      name = "never-an-atom-#{System.unique_integer([:positive])}"
      assert {:error, {:invalid_argument, _}} = RuvSwarm.spawn_swarm(topology: name)

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.orchestrate(id, description: "x", priority: name)

      assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
    end
  end

  test "destroy_swarm removes it and its ids stop resolving" do
    id = swarm!(agents: 1)
    {:ok, [agent]} = RuvSwarm.list_agents(id)
    {:ok, task} = RuvSwarm.orchestrate(id, "x")
    assert :ok = RuvSwarm.destroy_swarm(id)
    assert {:error, :swarm_not_found} = RuvSwarm.swarm_status(id)
    assert {:error, :agent_not_found} = RuvSwarm.agent_metrics(agent.id)
    assert {:error, :task_not_found} = RuvSwarm.task_status(task)
    assert {:error, :swarm_not_found} = RuvSwarm.destroy_swarm(id)
  end

  test "a full swarm refuses agents" do
    id = swarm!(max_agents: 2, agents: 2)
    assert {:error, {:swarm_full, 2}} = RuvSwarm.spawn_agent(id, type: :coder)
    assert RuvSwarm.format_error({:swarm_full, 2}) =~ "maximum of 2"
  end

  test "agents carry type, capabilities and metrics" do
    id = swarm!()

    {:ok, a} =
      RuvSwarm.spawn_agent(id, type: :analyst, capabilities: ["sql", "stats"], name: "ana")

    {:ok, m} = RuvSwarm.agent_metrics(a)

    assert %{
             type: "analyst",
             name: "ana",
             capabilities: ["sql", "stats"],
             status: :idle,
             load: +0.0
           } = m

    assert %{completed: 0, failed: 0} = m.metrics
    assert {:error, {:invalid_argument, _}} = RuvSwarm.spawn_agent(id, capacity: 0)
    assert {:error, :swarm_not_found} = RuvSwarm.spawn_agent("swarm-nope-1", type: :coder)
  end

  describe "tasks" do
    test "queue while nobody can run them, with priority and results" do
      id = swarm!()
      {:ok, low} = RuvSwarm.orchestrate(id, description: "low", priority: :low)
      {:ok, high} = RuvSwarm.orchestrate(id, %{description: "high", priority: :high})
      {:ok, agent} = RuvSwarm.spawn_agent(id, executor: :external)
      assert {:ok, %{task_id: ^high} = work} = RuvSwarm.claim_task(agent, lease_ms: 1_000)
      assert {:ok, %{status: :running}} = RuvSwarm.task_status(high)
      assert :ok = RuvSwarm.complete_task(work.work_id, agent, %{answer: 42})
      assert :ignored = RuvSwarm.complete_task(work.work_id, agent, :late_duplicate)
      assert {:ok, %{status: :completed, result: %{answer: 42}}} = RuvSwarm.task_results(high)
      assert {:ok, %{answer: 42}} = RuvSwarm.await_task(high, 10)
      assert {:ok, %{task_id: ^low}} = RuvSwarm.claim_task(agent)
      assert {:error, :no_task} = RuvSwarm.claim_task(agent)
    end

    test "bad tasks are rejected before anything runs" do
      id = swarm!()

      assert {:error, {:invalid_argument, msg}} =
               RuvSwarm.orchestrate(id, priority: :urgent, description: "x")

      assert msg =~ "critical"
      assert {:error, {:invalid_argument, _}} = RuvSwarm.orchestrate(id, %{})

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.orchestrate(id, description: "x", max_agents: 0)

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.orchestrate(id, description: "x", retries: 0)

      assert {:error, {:too_large, "task", _, _}} =
               RuvSwarm.orchestrate(id, input: :binary.copy("a", 2_000_000))

      assert {:error, {:dependency_cycle, "a -> c -> b -> a"}} =
               RuvSwarm.orchestrate(id,
                 subtasks: [
                   %{name: "a", depends_on: ["c"]},
                   %{name: "b", depends_on: ["a"]},
                   %{name: "c", depends_on: ["b"]}
                 ]
               )

      assert {:error, {:invalid_argument, msg}} =
               RuvSwarm.orchestrate(id, subtasks: [%{name: "a", depends_on: ["ghost"]}])

      assert msg =~ "ghost"
      assert {:ok, %{tasks: tasks}} = RuvSwarm.swarm_status(id)
      assert Enum.all?(Map.values(tasks), &(&1 == 0))
      assert {:error, :swarm_not_found} = RuvSwarm.orchestrate("swarm-0-0", "x")
    end

    test "cancel_task finishes it as cancelled, once" do
      id = swarm!()
      {:ok, t} = RuvSwarm.orchestrate(id, "x")
      assert :ok = RuvSwarm.cancel_task(t)
      assert {:ok, %{status: :cancelled}} = RuvSwarm.task_status(t)
      assert {:error, {:task_finished, "cancelled"}} = RuvSwarm.cancel_task(t)
      assert {:error, :cancelled} = RuvSwarm.await_task(t, 10)
      assert {:error, :task_not_found} = RuvSwarm.cancel_task(id <> ".task-999")
    end

    test "await_task times out on work nobody does" do
      id = swarm!()
      {:ok, t} = RuvSwarm.orchestrate(id, "x")
      assert {:error, :timeout} = RuvSwarm.await_task(t, 20)
      # Giving up leaves nothing behind: the task's end sends this caller nothing.
      :ok = RuvSwarm.cancel_task(t)
      assert {:error, :cancelled} = RuvSwarm.await_task(t, 1_000)
      refute_received {:swarm_task_done, ^t, _}
    end
  end

  describe "memory" do
    test "store, get, version, tags, namespaces, delete" do
      id = swarm!()
      {:ok, v1} = RuvSwarm.memory_store(id, "k", %{a: 1})
      {:ok, v2} = RuvSwarm.memory_store(id, "k", %{a: 2}, tags: ["t"])
      assert v2 > v1
      assert {:ok, %{value: %{a: 2}, version: ^v2, tags: ["t"]}} = RuvSwarm.memory_get(id, "k")
      assert {:error, :not_found} = RuvSwarm.memory_get(id, "k", namespace: "other")

      assert {:error, {:version_conflict, ^v1, ^v2}} =
               RuvSwarm.memory_store(id, "k", 3, if_version: v1)

      assert {:ok, _} = RuvSwarm.memory_store(id, "k", 3, if_version: v2)
      assert :ok = RuvSwarm.memory_delete(id, "k")
      assert {:error, :not_found} = RuvSwarm.memory_delete(id, "k")
      assert {:error, :not_found} = RuvSwarm.memory_get(id, "k")
    end

    test "entries expire after their TTL" do
      id = swarm!()
      {:ok, _} = RuvSwarm.memory_store(id, "short", "v", ttl_ms: 300)
      assert {:ok, _} = RuvSwarm.memory_get(id, "short")
      Process.sleep(350)
      assert {:error, :not_found} = RuvSwarm.memory_get(id, "short")
    end

    test "search by prefix, tags and text" do
      id = swarm!()
      RuvSwarm.memory_store(id, "user/1", "Alice writes Rust", tags: ["people"])
      RuvSwarm.memory_store(id, "user/2", "Bob writes Elixir", tags: ["people", "beam"])
      RuvSwarm.memory_store(id, "config", %{debug: true}, namespace: "sys")
      keys = fn {:ok, entries} -> Enum.map(entries, & &1.key) end
      assert keys.(RuvSwarm.memory_search(id, %{prefix: "user/"})) == ["user/1", "user/2"]
      assert keys.(RuvSwarm.memory_search(id, %{tags: ["beam"]})) == ["user/2"]
      assert keys.(RuvSwarm.memory_search(id, "rust")) == ["user/1"]
      assert keys.(RuvSwarm.memory_search(id, %{namespace: "sys"})) == ["config"]
      assert keys.(RuvSwarm.memory_search(id, %{prefix: "user/"}, limit: 1)) == ["user/1"]
      assert {:error, {:invalid_argument, _}} = RuvSwarm.memory_search(id, %{limit: 0})
    end

    test "values over the limit are refused" do
      id = swarm!()
      big = :binary.copy("x", 1_100_000)
      assert {:error, {:too_large, "value", _, _}} = RuvSwarm.memory_store(id, "big", big)

      assert {:error, {:too_large, "key", _, 256}} =
               RuvSwarm.memory_store(id, String.duplicate("k", 257), 1)
    end
  end

  describe "events and discoveries" do
    test "subscribers get every mutation as an event" do
      id = swarm!()
      :ok = RuvSwarm.subscribe(id)
      {:ok, agent} = RuvSwarm.spawn_agent(id, type: :coder)
      {:ok, task} = RuvSwarm.orchestrate(id, "x")
      {:ok, _} = RuvSwarm.memory_store(id, "k", 1)

      assert_receive {:swarm_event, ^id,
                      %{type: :agent_joined, agent_id: ^agent, agent_type: "coder"}}

      assert_receive {:swarm_event, ^id, %{type: :task_submitted, task_id: ^task}}
      assert_receive {:swarm_event, ^id, %{type: :memory_stored, key: "k", version: 1}}
      :ok = RuvSwarm.unsubscribe(id)
      {:ok, _} = RuvSwarm.memory_store(id, "k2", 1)
      refute_receive {:swarm_event, ^id, _}, 50
    end

    test "discoveries reach subscribers whose filters match, and are logged" do
      id = swarm!()
      {:ok, agent} = RuvSwarm.spawn_agent(id, [])
      :ok = RuvSwarm.subscribe_discoveries(id, type: "bug", min_confidence: 0.5)

      {:ok, d1} =
        RuvSwarm.share_discovery(id,
          type: "bug",
          content: "nil deref",
          confidence: 0.9,
          agent_id: agent
        )

      {:ok, _} = RuvSwarm.share_discovery(id, type: "bug", content: "maybe", confidence: 0.2)
      {:ok, _} = RuvSwarm.share_discovery(id, %{type: "idea", content: "cache it"})
      assert_receive {:swarm_discovery, ^id, %{id: ^d1, content: "nil deref", agent_id: ^agent}}
      refute_receive {:swarm_discovery, ^id, _}, 50
      assert {:ok, [%{content: "cache it"}]} = RuvSwarm.recent_discoveries(id, type: "idea")
      assert {:ok, all} = RuvSwarm.recent_discoveries(id)
      assert length(all) == 3

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.share_discovery(id, type: "x", confidence: 2)

      assert {:error, {:invalid_argument, _}} = RuvSwarm.share_discovery(id, content: "no type")
    end
  end

  test "ids stay unique when many processes create at once" do
    id = swarm!(max_agents: 10_000)

    results =
      1..20
      |> Task.async_stream(
        fn _ ->
          {:ok, s} = RuvSwarm.spawn_swarm()
          agents = for _ <- 1..50, do: elem(RuvSwarm.spawn_agent(id, []), 1)
          tasks = for _ <- 1..50, do: elem(RuvSwarm.orchestrate(id, "t"), 1)
          RuvSwarm.destroy_swarm(s)
          [s | agents ++ tasks]
        end,
        max_concurrency: 20
      )
      |> Enum.flat_map(fn {:ok, ids} -> ids end)

    assert length(results) == 20 * 101
    assert length(Enum.uniq(results)) == length(results)
  end

  test "killing the swarm's processes loses no acknowledged state" do
    id = swarm!(agents: 2, executor: {:module, Executors.Upcase})
    {:ok, _} = RuvSwarm.memory_store(id, "k", "kept")
    {:ok, t} = RuvSwarm.orchestrate(id, "before")
    assert {:ok, "BEFORE"} = RuvSwarm.await_task(t, 1_000)
    [{sup, _}] = Registry.lookup(SwarmService.SwarmRegistry, {:swarm, id})
    [{server, _}] = Registry.lookup(SwarmService.SwarmRegistry, {:server, id})
    Process.exit(server, :kill)

    eventually(fn ->
      match?(
        [{p, _}] when p != server,
        Registry.lookup(SwarmService.SwarmRegistry, {:server, id})
      )
    end)

    assert Process.alive?(sup)
    assert {:ok, %{value: "kept"}} = RuvSwarm.memory_get(id, "k")
    assert {:ok, %{status: :completed, result: "BEFORE"}} = RuvSwarm.task_results(t)
    # Agents were restarted with the server and work again.
    eventually(fn -> match?({:ok, %{agents: %{idle: 2}}}, RuvSwarm.swarm_status(id)) end)
    {:ok, t2} = RuvSwarm.orchestrate(id, "after")
    assert {:ok, "AFTER"} = RuvSwarm.await_task(t2, 1_000)
  end

  test "one swarm's trouble does not block another" do
    # Swarm A: its only agent is stuck on a task that never ends.
    a = swarm!(agents: 1, executor: {:module, Executors.Notify, self()})
    {:ok, _} = RuvSwarm.orchestrate(a, "stuck")
    assert_receive {:started, _, _, _}
    for _ <- 1..100, do: RuvSwarm.orchestrate(a, "queued behind")
    # Swarm B keeps working.
    b = swarm!(agents: 2, executor: {:module, Executors.Upcase})

    for i <- 1..20 do
      {:ok, t} = RuvSwarm.orchestrate(b, "b#{i}")
      assert {:ok, "B#{i}"} == RuvSwarm.await_task(t, 1_000)
    end

    assert {:ok, %{tasks: %{pending: 100}}} = RuvSwarm.swarm_status(a)
  end
end
