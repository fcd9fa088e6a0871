defmodule SwarmService.Cluster.RaftClusterTest do
  # Durable swarms on real peer nodes, each swarm a 3-member Ra cluster:
  # routing from any node, kill -9 of the leader under load, a 1|2
  # partition and its healing, a rolling restart, kill -9 of every node,
  # and a chaos run. Every acknowledged operation of a load is recorded
  # and checked afterwards, not a sample.
  use ExUnit.Case, async: false

  alias SwarmService.RuvSwarm
  alias SwarmService.Test.{ClusterLoad, PeerCluster}
  alias SwarmService.Test.Executors.Where
  import SwarmService.Test.Eventually

  @moduletag :cluster
  @moduletag timeout: 180_000

  defp rpc(node, fun, args), do: PeerCluster.rpc(node, RuvSwarm, fun, args)

  defp swarm_on(node, opts) do
    {:ok, id} = rpc(node, :spawn_swarm, [opts])
    id
  end

  # The swarm's Raft view, as cluster_status on `node` reports it.
  defp raft(node, swarm) do
    {:ok, status} = rpc(node, :cluster_status, [])
    Enum.find(status.swarms, &(&1.id == swarm))
  end

  # The leader `node` sees, once it is one of `among` (an election after
  # a kill takes a moment, and until then the dead leader is still named).
  defp leader(node, swarm, among \\ nil) do
    eventually(
      fn ->
        with %{leader: l} when l != nil <- raft(node, swarm),
             true <- among == nil or l in among,
             do: l
      end,
      10_000
    )
  end

  defp await(node, task),
    do: PeerCluster.rpc(node, RuvSwarm, :await_task, [task, 30_000], 35_000)

  defp run!(node, swarm, input) do
    {:ok, task} = rpc(node, :orchestrate, [swarm, %{input: input}])
    rpc(node, :await_task, [task, 15_000])
  end

  # One agent on each node, so that work goes on wherever a node dies.
  defp agents_everywhere(swarm, nodes) do
    for n <- nodes, do: {:ok, _} = rpc(hd(nodes), :spawn_agent, [swarm, %{node: n}])
  end

  test "a durable swarm has three Raft members; any node answers; work runs where agents are" do
    [a, b, c] = nodes = PeerCluster.start(3, members: :all)
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, max_agents: 10})
    {:ok, on_b} = rpc(c, :spawn_agent, [swarm, %{node: b}])
    {:ok, _on_c} = rpc(a, :spawn_agent, [swarm, %{node: c}])

    view = raft(b, swarm)
    assert Enum.sort(view.members) == Enum.sort(nodes)
    assert view.leader in nodes and view.term >= 1 and view.commit_index >= 1

    for n <- nodes do
      assert {:ok, %{agents: %{total: 2}}} = rpc(n, :swarm_status, [swarm])
    end

    ran_on =
      for i <- 1..12, into: MapSet.new() do
        {:ok, %{node: where}} = run!(Enum.at(nodes, rem(i, 3)), swarm, i)
        where
      end

    assert MapSet.subset?(ran_on, MapSet.new([b, c]))
    {:ok, listed} = rpc(c, :list_swarms, [])
    assert [^swarm] = Enum.map(listed, & &1.id)

    :ok = rpc(a, :remove_agent, [on_b])
    assert {:ok, %{agents: %{total: 1}}} = rpc(b, :swarm_status, [swarm])

    eventually(fn ->
      PeerCluster.rpc(b, Registry, :lookup, [SwarmService.SwarmRegistry, {:home_agent, on_b}]) ==
        []
    end)

    # Destroyed on every member: nothing of it is left on any node.
    :ok = rpc(b, :destroy_swarm, [swarm])

    for n <- nodes do
      eventually(fn ->
        {:error, :swarm_not_found} == rpc(n, :swarm_status, [swarm]) and
          PeerCluster.rpc(n, SwarmService.Raft, :server, [swarm]) == nil
      end)
    end
  end

  test "a swarm made while its node was alone gains members as nodes join, with everything" do
    [a] = PeerCluster.start(1)
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, agents: 1})
    {:ok, done} = rpc(a, :orchestrate, [swarm, %{input: "early"}])
    {:ok, _} = rpc(a, :await_task, [done, 10_000])
    {:ok, _} = rpc(a, :memory_store, [swarm, "k", "alone"])
    assert [^a] = raft(a, swarm).members

    [b, c] = PeerCluster.start(2)
    for n <- [b, c], do: true = PeerCluster.rpc(n, Node, :connect, [a])

    eventually(fn -> Enum.sort(raft(a, swarm).members) == Enum.sort([a, b, c]) end, 15_000)

    # The new members caught up with the log: their own engines hold it.
    for n <- [b, c] do
      eventually(fn ->
        match?(
          {:ok, %{value: "alone"}},
          PeerCluster.rpc(n, SwarmService.Native, :memory_get, [swarm, "k", %{}])
        )
      end)
    end

    # The swarm now outlives the node it was made on.
    PeerCluster.kill(a)
    eventually(fn -> match?({:ok, _}, rpc(b, :memory_store, [swarm, "k", "after"])) end, 10_000)
    assert {:ok, %{status: :completed}} = rpc(c, :task_status, [done])
  end

  test "swarms' members and leaders spread over the nodes" do
    nodes = PeerCluster.start(3, members: :all)
    swarms = for i <- 1..12, do: swarm_on(Enum.at(nodes, rem(i, 3)), %{replicas: 1})
    where = for s <- swarms, do: raft(hd(nodes), s).leader
    counts = Enum.frequencies(where)
    assert map_size(counts) == 3, "all 12 single-member swarms on #{inspect(counts)}"
  end

  test "kill -9 of the leader under load: every acknowledged write is there, nothing completes twice" do
    nodes = PeerCluster.start(3, members: :all)
    swarm = swarm_on(hd(nodes), %{executor: {:module, Where, nil}, max_agents: 10})
    agents_everywhere(swarm, nodes)
    victim = leader(hd(nodes), swarm)
    survivors = nodes -- [victim]
    [s1, s2] = survivors

    watcher = PeerCluster.rpc(s1, ClusterLoad, :watch_completions, [swarm, self()])

    loads =
      for n <- survivors, do: PeerCluster.rpc(n, ClusterLoad, :start, [swarm, self(), "#{n}"])

    Process.sleep(500)
    killed_at = System.monotonic_time(:millisecond)
    PeerCluster.kill(victim)
    assert leader(s2, swarm, survivors) in survivors
    # A write succeeds again soon after the kill.
    eventually(fn -> match?({:ok, _}, rpc(s2, :memory_store, [swarm, "probe", 1])) end, 10_000)
    took = System.monotonic_time(:millisecond) - killed_at
    assert took < 10_000
    Process.sleep(700)

    for pid <- loads, do: send(pid, :stop)
    for _ <- loads, do: assert_receive({:load_stopped, _, _}, 60_000)

    acked_tasks = collect_tasks()
    acked_memory = collect_memory()
    assert length(acked_tasks) > 30

    for t <- acked_tasks do
      assert {:ok, %{input: _}} = await(s1, t)
    end

    for {key, n} <- acked_memory do
      assert {:ok, %{value: ^n}} = rpc(s2, :memory_get, [swarm, key])
    end

    Process.sleep(300)
    ids = for {:completed, ^watcher, id} <- collect_completions(), do: id
    assert ids -- Enum.uniq(ids) == [], "a task reported complete twice"
    {:ok, status} = rpc(s1, :swarm_status, [swarm])
    assert status.counters.units_completed == status.tasks.completed

    # The killed node comes back and catches up with everything.
    PeerCluster.restart(victim)

    eventually(
      fn ->
        PeerCluster.rpc(victim, SwarmService.Native, :memory_get, [swarm, "probe", %{}])
        |> elem(0) ==
          :ok
      end,
      15_000
    )
  end

  test "a 1|2 partition: the minority answers :no_quorum, the majority goes on, healing converges" do
    [a, b, c] = PeerCluster.start(3, members: :all)
    swarm = swarm_on(a, %{executor: {:module, Where, nil}})
    agents_everywhere(swarm, [a, b, c])
    {:ok, _} = rpc(a, :memory_store, [swarm, "k", "before"])
    # The minority is the leader's node: the worst case.
    minority = leader(a, swarm)
    [m1, m2] = [a, b, c] -- [minority]

    PeerCluster.partition([minority], [m1, m2])

    {t_us, answer} = :timer.tc(fn -> rpc(minority, :memory_store, [swarm, "k", "minority"]) end)
    assert answer == {:error, :no_quorum}
    assert t_us < 3_500_000, "no_quorum took #{div(t_us, 1000)} ms"
    # A plain read on the cut-off leader answers from its last state; a
    # linearizable one refuses rather than risk being stale.
    assert {:ok, %{value: "before"}} = rpc(minority, :memory_get, [swarm, "k"])
    assert {:error, :no_quorum} = rpc(minority, :memory_get, [swarm, "k", [consistent: true]])

    {:ok, v} =
      eventually(
        fn ->
          with {:ok, _} = ok <- rpc(m1, :memory_store, [swarm, "k", "majority"]), do: ok
        end,
        10_000
      )

    {:ok, %{input: "during"}} = run!(m2, swarm, "during")
    assert {:ok, %{value: "majority"}} = rpc(m2, :memory_get, [swarm, "k", %{consistent: true}])

    PeerCluster.heal([minority], [m1, m2])

    for n <- [a, b, c] do
      eventually(
        fn ->
          match?({:ok, %{value: "majority", version: ^v}}, rpc(n, :memory_get, [swarm, "k"]))
        end,
        15_000
      )
    end

    # The old leader's own engine caught up too (it follows now).
    eventually(fn ->
      match?(
        {:ok, %{value: "majority"}},
        PeerCluster.rpc(minority, SwarmService.Native, :memory_get, [swarm, "k", %{}])
      )
    end)

    {:ok, %{input: "healed"}} = run!(minority, swarm, "healed")
  end

  test "a rolling restart of every node keeps swarms, tasks and memory" do
    nodes = PeerCluster.start(3, members: :all)
    [a | _] = nodes
    swarm = swarm_on(a, %{executor: {:module, Where, nil}})
    agents_everywhere(swarm, nodes)
    {:ok, done} = rpc(a, :orchestrate, [swarm, %{input: "kept"}])
    {:ok, _} = rpc(a, :await_task, [done, 10_000])
    {:ok, _} = rpc(a, :memory_store, [swarm, "k", 1])

    for n <- nodes do
      PeerCluster.restart(n)
      survivor = hd(nodes -- [n])
      # Back as a member, and the swarm takes writes again.
      eventually(
        fn -> match?({:ok, _}, rpc(survivor, :memory_store, [swarm, "r", n])) end,
        15_000
      )
    end

    for n <- nodes do
      assert {:ok, %{status: :completed, result: %{input: "kept"}}} =
               rpc(n, :task_results, [done])

      assert {:ok, %{value: 1}} = rpc(n, :memory_get, [swarm, "k"])
    end

    {:ok, %{input: "after"}} = run!(List.last(nodes), swarm, "after")
  end

  test "kill -9 of all three nodes, then restart: every acknowledged item is there" do
    nodes = PeerCluster.start(3, members: :all)
    [a, b, c] = nodes
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, max_agents: 10})
    agents_everywhere(swarm, nodes)
    loads = for n <- [b, c], do: PeerCluster.rpc(n, ClusterLoad, :start, [swarm, self(), "#{n}"])
    Process.sleep(800)
    # No :stop: the nodes die with the loads running.
    for n <- nodes, do: PeerCluster.kill(n)
    _ = loads
    acked_tasks = collect_tasks()
    acked_memory = collect_memory()
    assert length(acked_tasks) > 10

    for n <- nodes, do: PeerCluster.restart(n)

    for {key, n} <- acked_memory do
      assert {:ok, %{value: ^n}} =
               eventually(
                 fn -> with {:ok, _} = ok <- rpc(c, :memory_get, [swarm, key]), do: ok end,
                 15_000
               )
    end

    # Every acknowledged task finishes: interrupted work runs again on the
    # agents the nodes restarted.
    for t <- acked_tasks do
      assert {:ok, %{input: _}} = await(b, t)
    end
  end

  test "chaos: nodes die and return under load; nothing acknowledged is lost, nothing completes twice" do
    nodes = PeerCluster.start(5, members: :all)
    [a | _] = nodes
    swarm = swarm_on(a, %{executor: {:module, Where, nil}, max_agents: 20, replicas: 3})
    agents_everywhere(swarm, nodes)
    members = raft(a, swarm).members
    # The load and its observers run on the two nodes that hold no copy.
    [d, e] = nodes -- members

    watchers =
      for n <- [d, e], do: PeerCluster.rpc(n, ClusterLoad, :watch_completions, [swarm, self()])

    loads =
      for n <- [d, e], do: PeerCluster.rpc(n, ClusterLoad, :start, [swarm, self(), to_string(n)])

    # Each member in turn, leader or not: killed, then back (a majority of
    # the swarm's members stays up throughout).
    for victim <- members do
      Process.sleep(300)
      PeerCluster.kill(victim)
      Process.sleep(700)
      PeerCluster.restart(victim)
    end

    Process.sleep(300)
    for pid <- loads, do: send(pid, :stop)
    for _ <- loads, do: assert_receive({:load_stopped, _, _}, 60_000)

    acked_tasks = collect_tasks()
    acked_memory = collect_memory()
    assert length(acked_tasks) > 30

    for t <- acked_tasks do
      result = await(d, t)

      assert match?({:ok, %{input: _}}, result),
             "task #{t}: #{inspect(result)}: #{inspect(rpc(d, :task_results, [t]), limit: 50)}"
    end

    Process.sleep(500)
    completions = collect_completions()

    for w <- watchers do
      ids = for {:completed, ^w, id} <- completions, do: id
      dupes = ids -- Enum.uniq(ids)
      assert dupes == [], "reported complete twice: #{inspect(Enum.take(dupes, 5))}"
    end

    for {key, n} <- acked_memory do
      assert {:ok, %{value: ^n}} = rpc(e, :memory_get, [swarm, key])
    end

    # The agents of the restarted nodes are back at work.
    eventually(
      fn -> match?({:ok, %{agents: %{offline: 0, total: 5}}}, rpc(e, :swarm_status, [swarm])) end,
      10_000
    )
  end

  defp collect_tasks do
    receive do
      {:acked_task, id} -> [id | collect_tasks()]
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
      {:completed, watcher, id} -> [{:completed, watcher, id} | collect_completions()]
    after
      0 -> []
    end
  end
end
