defmodule SwarmService.Cluster.KnowledgeClusterTest do
  # The knowledge repository replicated across real peer nodes: delivery,
  # conflict resolution, quorum, partitions, restarts and repair.
  use ExUnit.Case, async: false
  import SwarmService.Test.Eventually
  alias SwarmService.Cluster.Knowledge
  alias SwarmService.Test.{PeerCluster, Relay}

  @moduletag :cluster
  @moduletag timeout: 30_000

  # Anti-entropy every 300 ms keeps the repair tests short.
  @env [
    {Knowledge, [anti_entropy_ms: 300]},
    {SwarmService.Cluster, [retry_ms: 50, max_retry_ms: 500]}
  ]

  setup do
    %{nodes: PeerCluster.start(3, members: :all, env: @env)}
  end

  defp put(node, key, value), do: PeerCluster.rpc(node, Knowledge, :put, [key, value])
  defp get(node, key), do: PeerCluster.rpc(node, Knowledge, :get, [key])
  defp value(node, key), do: with({:ok, %{value: v}} <- get(node, key), do: v)
  defp info(node), do: PeerCluster.rpc(node, Knowledge, :info, [])

  defp in_sync?(nodes), do: nodes |> Enum.map(&info/1) |> Enum.uniq() |> length() == 1

  test "a write on one node is visible on all", %{nodes: [a | _] = nodes} do
    assert {:ok, stamp} = put(a, "hello", %{from: a})

    for n <- nodes do
      eventually(fn -> match?({:ok, %{stamp: ^stamp, node: ^a}}, get(n, "hello")) end, 2_000)
    end

    assert PeerCluster.rpc(List.last(nodes), Knowledge, :list, [[prefix: "hel"]]) ==
             {:ok, [%{key: "hello", value: %{from: a}, stamp: stamp, node: a}]}
  end

  test "concurrent writes to one key converge to the same winner everywhere", %{nodes: nodes} do
    for round <- 1..10 do
      key = "race-#{round}"

      acked =
        nodes
        |> Enum.map(fn n -> Task.async(fn -> {n, put(n, key, {n, round})} end) end)
        |> Enum.map(&Task.await/1)

      # The documented rule: the largest {stamp, node} wins.
      {winner, {:ok, stamp}} = Enum.max_by(acked, fn {n, {:ok, s}} -> {s, n} end)

      for n <- nodes do
        eventually(fn -> match?({:ok, %{stamp: ^stamp, node: ^winner}}, get(n, key)) end, 2_000)
      end
    end

    eventually(fn -> in_sync?(nodes) end)
  end

  test "a node without quorum refuses writes", %{nodes: [a, b, c]} do
    PeerCluster.partition([a, b], [c])
    assert put(c, "minority", 1) == {:error, :no_quorum}
    assert PeerCluster.rpc(c, Knowledge, :delete, ["anything"]) == {:error, :no_quorum}
    assert {:ok, _} = put(a, "majority", 1)
    assert get(c, "minority") == {:error, :not_found}
  end

  test "writes on the majority during a partition reach the minority after it heals", %{
    nodes: [a, b, c] = nodes
  } do
    {:ok, _} = put(a, "before", 0)
    eventually(fn -> value(c, "before") == 0 end)
    PeerCluster.partition([a, b], [c])

    acked =
      for i <- 1..30 do
        writer = if rem(i, 2) == 0, do: a, else: b
        {:ok, _} = put(writer, "during/#{i}", i)
        i
      end

    :ok = PeerCluster.rpc(b, Knowledge, :delete, ["before"])
    assert put(c, "during/1", :lost) == {:error, :no_quorum}
    assert value(c, "before") == 0

    PeerCluster.heal([a, b], [c])
    eventually(fn -> in_sync?(nodes) end, 5_000)

    for n <- nodes, i <- acked, do: assert(value(n, "during/#{i}") == i)
    for n <- nodes, do: assert(get(n, "before") == {:error, :not_found})
  end

  test "a restarted node pulls everything", %{nodes: [a, b, c] = nodes} do
    for i <- 1..20, do: {:ok, _} = put(a, "old/#{i}", i)
    PeerCluster.kill(c)
    for i <- 1..20, do: {:ok, _} = put(b, "new/#{i}", i)

    PeerCluster.restart(c)
    eventually(fn -> in_sync?(nodes) end, 5_000)
    assert {:ok, entries} = PeerCluster.rpc(c, Knowledge, :list, [[limit: 100]])
    assert length(entries) == 40
    assert value(c, "old/7") == 7 and value(c, "new/20") == 20
  end

  test "kill -9 of every node: every acknowledged write and delete is back after the restart",
       %{nodes: [a, b, c] = nodes} do
    acked =
      for i <- 1..30 do
        {:ok, _} = put(Enum.at(nodes, rem(i, 3)), "k/#{i}", %{i: i})
        i
      end

    :ok = PeerCluster.rpc(b, Knowledge, :delete, ["k/3"])
    {:ok, _} = put(c, "k/4", :rewritten)
    for n <- nodes, do: PeerCluster.kill(n)
    for n <- nodes, do: PeerCluster.restart(n)

    # (A write is acknowledged once a majority holds it: the third node
    # may pull it from them after the restart.)
    for n <- [a, b, c] do
      eventually(
        fn ->
          Enum.all?(acked -- [3, 4], &(value(n, "k/#{&1}") == %{i: &1})) and
            get(n, "k/3") == {:error, :not_found} and value(n, "k/4") == :rewritten
        end,
        5_000
      )
    end
  end

  test "a dropped delta is repaired by anti-entropy", %{nodes: [a, _b, c] = nodes} do
    # c's replica stops receiving: a relay takes its registered name, so
    # deltas sent to c reach the test process instead.
    real = PeerCluster.rpc(c, Process, :whereis, [Knowledge])
    true = PeerCluster.rpc(c, Process, :unregister, [Knowledge])
    sink = PeerCluster.rpc(c, Relay, :start, [Knowledge, self()])

    {:ok, stamp} = put(a, "dropped", :value)

    assert_receive {:relay, ^c,
                    {:knowledge_delta, ^a, [{"dropped", ^stamp, ^a, :value, false}], _}},
                   2_000

    PeerCluster.rpc(c, Relay, :stop, [sink])
    eventually(fn -> PeerCluster.rpc(c, Process, :whereis, [Knowledge]) == nil end)
    true = PeerCluster.rpc(c, Process, :register, [real, Knowledge])
    assert get(c, "dropped") == {:error, :not_found}

    # No new write, no membership change: only anti-entropy can bring it.
    eventually(fn -> value(c, "dropped") == :value end, 3_000)
    eventually(fn -> in_sync?(nodes) end)
  end

  test "a deleted key stays deleted when an older write arrives late", %{nodes: [a, b, c] = nodes} do
    {:ok, stamp} = put(a, "gone", 1)
    :ok = PeerCluster.rpc(b, Knowledge, :delete, ["gone"])
    eventually(fn -> Enum.all?(nodes, &(get(&1, "gone") == {:error, :not_found})) end)

    late = {:knowledge_delta, a, [{"gone", stamp, a, 1, false}], nil}
    PeerCluster.rpc(c, Kernel, :send, [Knowledge, late])
    assert %{tombstones: 1} = info(c)
    assert get(c, "gone") == {:error, :not_found}
  end
end
