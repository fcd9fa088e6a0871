defmodule SwarmService.Cluster.KnowledgeTest do
  # The knowledge repository on the test node (a single-node cluster):
  # the API, its errors and the last-writer-wins rule. Replication across
  # real nodes: knowledge_cluster_test.exs.
  use ExUnit.Case, async: false
  alias SwarmService.Cluster.Knowledge
  alias SwarmService.RuvSwarm

  doctest Knowledge

  defp unique, do: "kt#{System.unique_integer([:positive])}/"

  test "put, get, delete" do
    k = unique() <> "plan"
    assert {:ok, {ms, _} = stamp} = Knowledge.put(k, %{step: 1})
    assert is_integer(ms)
    assert Knowledge.get(k) == {:ok, %{key: k, value: %{step: 1}, stamp: stamp, node: node()}}

    assert {:ok, stamp2} = Knowledge.put(k, %{step: 2}, timeout: 1_000)
    assert stamp2 > stamp
    assert {:ok, %{value: %{step: 2}}} = Knowledge.get(k)

    assert Knowledge.delete(k) == :ok
    assert Knowledge.get(k) == {:error, :not_found}
    assert Knowledge.delete(k) == :ok
    assert Knowledge.delete(unique() <> "never-written") == :ok
  end

  test "list: key order, prefix, limit, no deleted entries" do
    p = unique()
    for k <- ["c", "a", "b", "d"], do: {:ok, _} = Knowledge.put(p <> k, k)
    {:ok, _} = Knowledge.put(p, "the prefix itself")
    :ok = Knowledge.delete(p <> "b")

    assert {:ok, entries} = Knowledge.list(prefix: p)
    assert Enum.map(entries, & &1.key) == [p, p <> "a", p <> "c", p <> "d"]
    assert {:ok, [%{key: first}, %{key: second}]} = Knowledge.list(%{prefix: p, limit: 2})
    assert {first, second} == {p, p <> "a"}
    assert {:ok, []} = Knowledge.list(prefix: unique())
    assert {:ok, all} = Knowledge.list(limit: 10_000)
    assert Enum.map(all, & &1.key) == Enum.sort(Enum.map(all, & &1.key))
  end

  test "info counts entries and tombstones" do
    before = Knowledge.info()
    k = unique()
    {:ok, _} = Knowledge.put(k, 1)
    assert Knowledge.info().entries == before.entries + 1
    :ok = Knowledge.delete(k)
    after_delete = Knowledge.info()
    assert after_delete.entries == before.entries
    assert after_delete.tombstones == before.tombstones + 1
    assert after_delete.digest != before.digest
  end

  test "bad input gives clear errors" do
    big = :binary.copy("x", 1_100_000)
    long = :binary.copy("k", 257)

    assert {:error, {:invalid_argument, "key must be a binary of 1 to 256 bytes"}} =
             Knowledge.put(:key, 1)

    assert {:error, {:invalid_argument, _}} = Knowledge.put("", 1)
    assert {:error, {:invalid_argument, _}} = Knowledge.put(long, 1)
    assert {:error, {:invalid_argument, _}} = Knowledge.get(123)
    assert {:error, {:invalid_argument, _}} = Knowledge.delete(["k"])
    assert {:error, {:too_large, "value", size, 1_048_576}} = Knowledge.put("big", big)
    assert size > 1_048_576
    assert Knowledge.get("big") == {:error, :not_found}

    assert {:error, {:invalid_argument, msg}} = Knowledge.put("k", 1, %{"timeout" => 1})
    assert msg =~ "unknown option"
    assert {:error, {:invalid_argument, msg}} = Knowledge.put("k", 1, timeout: -1)
    assert msg =~ "timeout"
    assert {:error, {:invalid_argument, _}} = Knowledge.put("k", 1, [:oops])
    assert {:error, {:invalid_argument, msg}} = Knowledge.list(prefix: 7)
    assert msg =~ "prefix"
    assert {:error, {:invalid_argument, msg}} = Knowledge.list(limit: 0)
    assert msg =~ "limit"
  end

  test "input never creates atoms" do
    hostile = fn i ->
      unique = "zz_knowledge_never_an_atom_#{i}_#{System.unique_integer([:positive])}"
      {:error, _} = Knowledge.put(unique, 1, %{unique => 1})
      {:error, _} = Knowledge.list(%{unique => unique})
      {:error, _} = Knowledge.list(prefix: String.to_charlist(unique))
      {:error, _} = Knowledge.delete(unique, [{unique, 1}])
      {:error, :not_found} = Knowledge.get(unique)
    end

    SwarmService.Test.Atoms.assert_no_atoms_made(hostile)
  end

  test "last writer wins: larger stamp, then the node whose name sorts last" do
    k = unique() <> "race"
    {ms, _} = now = {System.os_time(:millisecond), 0}

    deliver = fn entries ->
      send(Knowledge, {:knowledge_delta, :x@h, entries, nil})
      # A call after the message: it has been handled once this returns.
      Knowledge.info()
    end

    # Same stamp from two nodes, in either order: the larger name wins.
    deliver.([{k, now, :b@h, "from b", false}])
    deliver.([{k, now, :a@h, "from a", false}])
    assert {:ok, %{value: "from b", node: :b@h}} = Knowledge.get(k)

    k2 = unique() <> "race"
    deliver.([{k2, now, :a@h, "from a", false}, {k2, now, :b@h, "from b", false}])
    assert {:ok, %{value: "from b"}} = Knowledge.get(k2)

    # An older stamp loses, a newer one wins, a tombstone is a write.
    deliver.([{k, {ms - 1, 99}, :z@h, "older", false}])
    assert {:ok, %{value: "from b"}} = Knowledge.get(k)
    deliver.([{k, {ms, 1}, :a@h, nil, true}])
    assert Knowledge.get(k) == {:error, :not_found}
    deliver.([{k, now, :b@h, "from b again", false}])
    assert Knowledge.get(k) == {:error, :not_found}

    # The clock merged those stamps: a local write now wins over them.
    {:ok, stamp} = Knowledge.put(k, "local")
    assert stamp > {ms, 1}
    assert {:ok, %{value: "local"}} = Knowledge.get(k)
  end

  test "malformed replication messages are ignored" do
    k = unique()
    pid = Process.whereis(Knowledge)
    before = Knowledge.info()

    for msg <- [
          {:knowledge_delta, :x@h, [{k, :not_a_stamp, :x@h, 1, false}], nil},
          {:knowledge_delta, :x@h, [{123, {1, 0}, :x@h, 1, false}], nil},
          {:knowledge_delta, :x@h, :not_a_list, nil},
          {:knowledge_buckets, :x@h, {1, 2}},
          {:knowledge_summary, :x@h, [{k, :bad, :n, :maybe}, :junk]},
          {:knowledge_pull, :x@h, [1, 2, {}]},
          {:knowledge_ack, make_ref(), :x@h},
          :garbage
        ],
        do: send(Knowledge, msg)

    # Same process, same contents: nothing was stored and nothing crashed.
    assert Knowledge.info() == before
    assert Process.whereis(Knowledge) == pid
    assert Knowledge.get(k) == {:error, :not_found}
  end

  test "configuration is validated, naming the option" do
    assert %{anti_entropy_ms: 1_000, tombstone_ttl_ms: 86_400_000} = Knowledge.config!([])

    error = assert_raise ArgumentError, fn -> Knowledge.config!(anti_entropy_ms: 0) end
    assert error.message =~ ":anti_entropy_ms (RUV_SWARM_ANTI_ENTROPY_MS)"

    assert_raise ArgumentError, ~r/:tombstone_ttl_ms/, fn ->
      Knowledge.config!(tombstone_ttl_ms: :day)
    end

    assert_raise ArgumentError, ~r/unknown/, fn -> Knowledge.config!(ttl: 1) end
  end

  test "the public API delegates, and :no_quorum reads as a sentence" do
    k = unique() <> "api"
    assert {:ok, stamp} = RuvSwarm.knowledge_put(k, [1, 2, 3])
    assert {:ok, %{value: [1, 2, 3], stamp: ^stamp}} = RuvSwarm.knowledge_get(k)
    assert {:ok, [%{key: ^k}]} = RuvSwarm.knowledge_list(prefix: k)
    assert RuvSwarm.knowledge_delete(k) == :ok
    assert RuvSwarm.knowledge_get(k) == {:error, :not_found}
    assert RuvSwarm.format_error(:no_quorum) =~ "majority"
  end
end
