defmodule SwarmService.Cluster.SwarmClusterTest do
  # Swarms across real peer nodes: routing, remote agents, failover,
  # partitions, rolling restarts and a chaos run. Each test starts its own
  # peers and stops them when it ends.
  use ExUnit.Case, async: false

  alias SwarmService.Cluster.Replica
  alias SwarmService.RuvSwarm
  alias SwarmService.Test.{ClusterLoad, PeerCluster}
  alias SwarmService.Test.Executors.Where
  import SwarmService.Test.Eventually

  @moduletag :cluster
  @moduletag timeout: 120_000

  defp rpc(node, fun, args), do: PeerCluster.rpc(node, RuvSwarm, fun, args)

  defp swarm_on(node, opts) do
    {:ok, id} = rpc(node, :spawn_swarm, [opts])
    id
  end

  defp placement(node, swarm) do
    {:ok, status} = rpc(node, :cluster_status, [])
    Enum.find(status.swarms, &(&1.id == swarm))
  end

  defp run!(node, swarm, input) do
    {:ok, task} = rpc(node, :orchestrate, [swarm, %{input: input}])
    rpc(node, :await_task, [task, 10_000])
  end

  test "any node answers calls about any swarm; agents run on the nodes they were placed on" do
    [a, b, c] = PeerCluster.start(3, members: :all)
    swarm = swarm_on(a, %{topology: :mesh, executor: {:module, Where, nil}, max_agents: 10})

    {:ok, on_b} = rpc(c, :spawn_agent, [swarm, %{node: b}])
    {:ok, _on_c} = rpc(a, :spawn_agent, [swarm, %{node: c}])

    %{home: ^a, backup: backup} = placement(b, swarm)
    assert backup in [b, c]

    for n <- [a, b, c] do
      assert {:ok, %{agents: %{total: 2}}} = rpc(n, :swarm_status, [swarm])
    end

    {:ok, agents} = rpc(b, :list_agents, [swarm])
    assert Enum.sort(Enum.map(agents, & &1.node)) == Enum.sort([to_string(b), to_string(c)])

    # Work submitted on c runs on the agents on b and c, never on a.
    nodes =
      for i <- 1..20, into: MapSet.new() do
        {:ok, %{node: ran_on}} = run!(Enum.at([a, b, c], rem(i, 3)), swarm, i)
        ran_on
      end

    assert MapSet.subset?(nodes, MapSet.new([b, c]))

    assert {:ok, %{agents: 2, nodes: per_node}} =
             rpc(b, :coordinate_across_cluster, [swarm, :hello])

    assert per_node == %{to_string(b) => 1, to_string(c) => 1}

    {:ok, listed} = rpc(c, :list_swarms, [])
    assert [^swarm] = Enum.map(listed, & &1.id)

    # Removing a remote agent stops its process there.
    :ok = rpc(a, :remove_agent, [on_b])
    assert {:ok, %{agents: %{total: 1}}} = rpc(b, :swarm_status, [swarm])

    eventually(fn ->
      PeerCluster.rpc(b, Registry, :lookup, [SwarmService.SwarmRegistry, {:agent, on_b}]) == []
    end)

    assert :ok = rpc(b, :destroy_swarm, [swarm])
    assert {:error, :swarm_not_found} = rpc(c, :swarm_status, [swarm])
  end

  test "the home node dies: its backup takes over with every acknowledged write" do
    [a, b, c] = PeerCluster.start(3, members: :all)
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, agents: 2})
    {:ok, _} = rpc(a, :spawn_agent, [swarm, %{node: b}])
    {:ok, _} = rpc(a, :spawn_agent, [swarm, %{node: c}])
    %{backup: backup} = placement(a, swarm)
    [other] = [b, c] -- [backup]

    {:ok, done} = rpc(b, :orchestrate, [swarm, %{input: "before"}])
    {:ok, _} = rpc(b, :await_task, [done, 10_000])
    {:ok, v} = rpc(c, :memory_store, [swarm, "plan", %{step: 1}, [tags: ["x"]]])

    # A task the engine times out on its own (no call to copy with): its
    # outcome reaches the backup just after it happens.
    {:ok, late} = rpc(b, :orchestrate, [swarm, %{input: 5_000, timeout_ms: 50, retries: 1}])
    assert {:error, {:timed_out, _}} = rpc(b, :await_task, [late, 10_000])

    eventually(fn ->
      {snapshot, _subscribers} = PeerCluster.rpc(backup, Replica, :snapshot, [swarm])
      Enum.any?(snapshot.tasks, &(&1.id == late and &1.status == :timed_out))
    end)

    # Tasks that cannot run yet (no agent has the capability): they must
    # survive as queued work.
    queued =
      for i <- 1..5,
          do: elem(rpc(c, :orchestrate, [swarm, %{input: i, capabilities: ["gpu"]}]), 1)

    watcher = PeerCluster.rpc(other, ClusterLoad, :watch_completions, [swarm, self()])
    assert is_pid(watcher)

    PeerCluster.kill(a)

    assert_receive {:failover, %{from: ^a, to: ^backup}}, 10_000
    %{home: ^backup, backup: new_backup} = placement(other, swarm)
    assert new_backup == other

    assert {:ok, %{input: "before"}} = rpc(other, :await_task, [done, 1_000])
    assert {:error, {:timed_out, _}} = rpc(other, :await_task, [late, 1_000])
    {:ok, done_result} = rpc(other, :task_results, [done])
    assert done_result.status == :completed

    assert {:ok, %{value: %{step: 1}, version: ^v, tags: ["x"]}} =
             rpc(b, :memory_get, [swarm, "plan"])

    for t <- queued, do: assert({:ok, %{status: :pending}} = rpc(other, :task_status, [t]))

    # The two agents that lived on a continue on the new home; the ones on
    # b and c re-attached to it.
    {:ok, agents} = rpc(other, :list_agents, [swarm])
    assert length(agents) == 4
    assert Enum.count(agents, &(&1.node == to_string(backup))) >= 2

    eventually(fn ->
      match?({:ok, %{agents: %{offline: 0}}}, rpc(other, :swarm_status, [swarm]))
    end)

    # New work and new ids after the failover.
    {:ok, %{input: "after"}} = run!(other, swarm, "after")
    {:ok, v2} = rpc(other, :memory_store, [swarm, "plan", %{step: 2}])
    assert v2 > v
  end

  test "an agent's node dies: the work it held goes back to the queue and finishes elsewhere" do
    [a, b, c] = PeerCluster.start(3, members: :all)
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, max_agents: 10})
    {:ok, _} = rpc(a, :spawn_agent, [swarm, %{node: b}])

    # Slow work lands on the only agent, on b.
    tasks = for _ <- 1..3, do: elem(rpc(a, :orchestrate, [swarm, %{input: 2_000, retries: 3}]), 1)
    eventually(fn -> match?({:ok, %{agents: %{busy: 1}}}, rpc(a, :swarm_status, [swarm])) end)

    {:ok, _} = rpc(a, :spawn_agent, [swarm, %{node: c}])
    PeerCluster.kill(b)

    for t <- tasks do
      assert {:ok, %{node: ^c}} = rpc(a, :await_task, [t, 15_000])
    end
  end

  test "a partition: the minority refuses writes, the majority takes over, healing converges" do
    [a, b, c] = PeerCluster.start(3, members: :all)
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, agents: 1})
    {:ok, _} = rpc(a, :memory_store, [swarm, "k", "before"])

    PeerCluster.partition([a], [b, c])

    # A write on the majority side right away waits for the failover rather
    # than failing: its old home is already out of reach, so nothing was sent.
    {:ok, v} = rpc(c, :memory_store, [swarm, "k", "majority"])
    assert %{home: home} = placement(c, swarm)
    assert home in [b, c]

    assert {:error, :no_quorum} = rpc(a, :memory_store, [swarm, "k", "minority"])
    assert {:error, :no_quorum} = rpc(a, :orchestrate, [swarm, "minority"])
    # Reads still answer on the minority side.
    assert {:ok, %{value: "before"}} = rpc(a, :memory_get, [swarm, "k"])

    {:ok, %{input: "during"}} = run!(b, swarm, "during")

    PeerCluster.heal([a], [b, c])

    for n <- [a, b, c] do
      eventually(fn -> match?(%{home: home} when home != a, placement(n, swarm)) end, 10_000)

      eventually(fn ->
        match?({:ok, %{value: "majority", version: ^v}}, rpc(n, :memory_get, [swarm, "k"]))
      end)
    end

    # a stepped down: it no longer runs the swarm itself.
    assert PeerCluster.rpc(a, SwarmService.Swarm.Commands, :local_swarms, []) == []
    {:ok, %{input: "healed"}} = run!(a, swarm, "healed")
  end

  test "a rolling restart of every node keeps swarms, tasks and memory" do
    nodes = PeerCluster.start(3, members: :all)
    [a | _] = nodes
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, agents: 2})
    {:ok, done} = rpc(a, :orchestrate, [swarm, %{input: "kept"}])
    {:ok, _} = rpc(a, :await_task, [done, 10_000])
    {:ok, _} = rpc(a, :memory_store, [swarm, "k", 1])

    for n <- nodes do
      PeerCluster.restart(n)
      survivor = hd(nodes -- [n])

      eventually(
        fn ->
          match?(%{home: h, backup: b} when b != nil and h != b, placement(survivor, swarm)) and
            match?({:ok, _}, rpc(survivor, :swarm_status, [swarm]))
        end,
        10_000
      )
    end

    for n <- nodes do
      assert {:ok, %{status: :completed, result: %{input: "kept"}}} =
               rpc(n, :task_results, [done])

      assert {:ok, %{value: 1}} = rpc(n, :memory_get, [swarm, "k"])
    end

    {:ok, %{input: "after"}} = run!(List.last(nodes), swarm, "after")
  end

  test "chaos: nodes die and return under load; nothing acknowledged is lost, nothing completes twice" do
    nodes = PeerCluster.start(5, members: :all)
    [a, b, c, d, e] = nodes
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, max_agents: 20})
    for n <- nodes, do: {:ok, _} = rpc(a, :spawn_agent, [swarm, %{node: n}])

    # Two watchers on nodes that stay up count completions independently.
    watchers =
      for n <- [d, e], do: PeerCluster.rpc(n, ClusterLoad, :watch_completions, [swarm, self()])

    loads =
      for n <- [d, e], do: PeerCluster.rpc(n, ClusterLoad, :start, [swarm, self(), to_string(n)])

    for victim <- [a, b, c] do
      Process.sleep(300)
      PeerCluster.kill(victim)
      Process.sleep(700)
      PeerCluster.restart(victim)
    end

    Process.sleep(300)
    for pid <- loads, do: send(pid, :stop)
    for _ <- loads, do: assert_receive({:load_stopped, _, _}, 10_000)

    acked_tasks = collect(:acked_task)
    acked_memory = collect_memory()
    assert length(acked_tasks) > 50

    # Every acknowledged task completes, exactly once per watcher.
    for t <- acked_tasks do
      assert {:ok, %{input: _}} = rpc(d, :await_task, [t, 20_000])
    end

    # Late events have arrived by now (the awaits above saw every task done).
    Process.sleep(500)
    completions = collect_completions()
    seen = completions |> Enum.map(&elem(&1, 1)) |> MapSet.new()
    assert MapSet.size(seen) > 0

    for w <- watchers do
      ids = for {^w, id} <- completions, do: id
      dupes = ids -- Enum.uniq(ids)
      assert dupes == [], "reported complete twice: #{inspect(Enum.take(dupes, 5))}"
    end

    for {key, n} <- acked_memory do
      assert {:ok, %{value: ^n}} = rpc(e, :memory_get, [swarm, key])
    end
  end

  defp collect(tag) do
    receive do
      {^tag, id} -> [id | collect(tag)]
    after
      0 -> []
    end
  end

  defp collect_memory do
    receive do
      {:acked_memory, key, n} -> [{key, n} | collect_memory()]
    after
      0 -> []
    end
  end

  defp collect_completions do
    receive do
      {:completed, watcher, id} -> [{watcher, id} | collect_completions()]
    after
      0 -> []
    end
  end

  test "after a failover the new home has the cost, sessions and budget the old one booked" do
    [a, b, c] = PeerCluster.start(3, members: :all)

    swarm =
      swarm_on(a, %{
        executor: {:module, SwarmService.Test.Executors.Costly, nil},
        agents: 1,
        max_cost_usd: 0.01
      })

    %{backup: backup} = placement(a, swarm)
    [other] = [b, c] -- [backup]
    tasks = for i <- 1..3, do: elem(rpc(b, :orchestrate, [swarm, %{input: i}]), 1)
    for t <- Enum.take(tasks, 2), do: assert({:ok, _} = rpc(b, :await_task, [t, 10_000]))
    {:ok, [agent]} = rpc(b, :list_agents, [swarm])
    assert agent.session_id == "sess-" <> Enum.at(tasks, 1)

    PeerCluster.kill(a)
    eventually(fn -> match?(%{home: ^backup}, placement(other, swarm)) end, 15_000)

    {:ok, status} = rpc(other, :swarm_status, [swarm])
    assert status.usage.cost_usd == 0.012 and status.usage.input_tokens == 20
    assert status.budget == %{max_cost_usd: 0.01, spent_usd: 0.012, exhausted: true}
    {:ok, moved} = rpc(other, :agent_metrics, [agent.id])
    assert moved.usage == agent.usage and moved.session_id == agent.session_id

    assert {:ok, %{status: :pending, waiting_reason: "the swarm's cost budget" <> _}} =
             rpc(other, :task_status, [List.last(tasks)])
  end
end
