defmodule SwarmService.QuotaTest do
  # Memory quotas: per swarm (spawn_swarm's :memory_quota) and per node
  # (set through the NIF). Not async: the node quota and memory_usage/0 span
  # every swarm of the node.
  use ExUnit.Case, async: false
  import Bitwise

  alias SwarmService.{Native, Quotas, RuvSwarm}

  defmodule Big do
    @moduledoc false
    # Answers a binary of `arg` bytes.
    @behaviour SwarmService.Executor
    def run(_task, ctx), do: {:ok, :binary.copy("r", ctx.arg)}
  end

  # What one memory entry holds: the fixed overhead (quota.rs), namespace,
  # key and the encoded value.
  @entry_overhead 160
  defp entry_bytes(key, value, ns \\ "default"),
    do: @entry_overhead + byte_size(ns) + byte_size(key) + :erlang.external_size(value)

  defp swarm!(opts) do
    {:ok, id} = RuvSwarm.spawn_swarm(opts)
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  defp usage(swarm) do
    {:ok, u} = RuvSwarm.memory_usage()
    Enum.find(u.per_swarm, &(&1.id == swarm))
  end

  defp value(key, n), do: :binary.copy(key, n)

  setup do
    on_exit(fn -> :ok = Quotas.apply_config() end)
  end

  test "a store past the swarm quota is refused and every earlier entry stays readable" do
    s = swarm!(memory_quota: 10_000)
    assert usage(s).memory_quota == 10_000

    for k <- ~w(a b c), do: assert({:ok, _} = RuvSwarm.memory_store(s, k, value(k, 3_000)))

    held = usage(s).memory_bytes
    assert held == Enum.sum(for k <- ~w(a b c), do: entry_bytes(k, value(k, 3_000)))

    assert RuvSwarm.memory_store(s, "d", value("d", 3_000)) ==
             {:error, {:quota_exceeded, "swarm memory", 10_000}}

    # Nothing was lost or changed by the refusal.
    for k <- ~w(a b c) do
      assert {:ok, %{value: v}} = RuvSwarm.memory_get(s, k)
      assert v == value(k, 3_000)
    end

    assert RuvSwarm.memory_get(s, "d") == {:error, :not_found}
    assert usage(s).memory_bytes == held

    # Growing an entry past the quota is refused too; shrinking one is fine.
    assert {:error, {:quota_exceeded, _, _}} = RuvSwarm.memory_store(s, "a", value("a", 4_000))
    assert {:ok, _} = RuvSwarm.memory_store(s, "a", "small")

    # Deleting makes room.
    assert :ok = RuvSwarm.memory_delete(s, "b")
    assert {:ok, _} = RuvSwarm.memory_store(s, "d", value("d", 3_000))
  end

  test "a 1 MB string value is held once: the reported bytes rise by 1 MB, not 2" do
    s = swarm!([])
    before = usage(s)
    {:ok, %{engine_bytes: engine_before}} = RuvSwarm.memory_usage()
    text = :binary.copy("x", 1_000_000) <> " the Needle"
    assert {:ok, _} = RuvSwarm.memory_store(s, "big", text)
    {:ok, %{engine_bytes: engine_after}} = RuvSwarm.memory_usage()
    after_ = usage(s)

    assert after_.memory_bytes - before.memory_bytes == entry_bytes("big", text)
    assert after_.held_bytes - before.held_bytes == entry_bytes("big", text)
    # What the allocator holds grew by about the value too (two copies
    # would be over 2 MB).
    assert engine_after - engine_before < 1_500_000

    # The text is still searched, case-insensitively, as before.
    assert {:ok, [%{key: "big"}]} = RuvSwarm.memory_search(s, "needle")
    assert {:ok, []} = RuvSwarm.memory_search(s, "haystack")
    # Other terms are not searched by content.
    {:ok, _} = RuvSwarm.memory_store(s, "map", %{note: "needle"})
    assert {:ok, [%{key: "big"}]} = RuvSwarm.memory_search(s, "needle")
  end

  test "memory_usage reports every category per swarm and the node's total and quotas" do
    s = swarm!(memory_quota: 1_000_000)
    {:ok, ext} = RuvSwarm.spawn_agent(s, executor: :external)
    {:ok, _} = RuvSwarm.memory_store(s, "k", value("v", 1_000))
    {:ok, _} = RuvSwarm.share_discovery(s, type: "bug", content: value("c", 2_000))
    {:ok, t1} = RuvSwarm.orchestrate(s, %{description: "one", input: value("i", 3_000)})
    {:ok, _t2} = RuvSwarm.orchestrate(s, %{description: "two", input: value("j", 3_000)})
    {:ok, work} = RuvSwarm.claim_task(ext)
    assert :ok = RuvSwarm.complete_task(work.work_id, ext, value("r", 4_000))
    assert {:ok, _} = RuvSwarm.await_task(t1)

    u = usage(s)
    assert u.memory_entries == 1
    assert u.memory_bytes >= 1_000 and u.memory_bytes < 1_500
    assert u.discovery_bytes >= 2_000 and u.discovery_bytes < 2_500
    # Both tasks' inputs, one pending, one finished and kept in the history.
    assert u.task_bytes >= 6_000 and u.task_bytes < 7_500
    # The unit result and the task's aggregate of it.
    assert u.result_bytes >= 8_000 and u.result_bytes < 8_100

    assert u.held_bytes ==
             u.memory_bytes + u.task_bytes + u.result_bytes + u.discovery_bytes

    {:ok, all} = RuvSwarm.memory_usage()
    assert all.held_bytes == Enum.sum(Enum.map(all.per_swarm, & &1.held_bytes))
    {:ok, q} = Quotas.configured()
    assert all.node_memory_quota == q.node_bytes
    assert all.swarm_memory_quota == q.swarm_bytes
    assert all.swarms == length(all.per_swarm)
  end

  test "pending task inputs count against the quota" do
    s = swarm!(memory_quota: 100_000)
    {:ok, _ext} = RuvSwarm.spawn_agent(s, executor: :external)
    input = value("i", 20_000)

    ids =
      for _ <- 1..4 do
        {:ok, id} = RuvSwarm.orchestrate(s, %{input: input})
        id
      end

    assert usage(s).task_bytes > 4 * 20_000

    assert RuvSwarm.orchestrate(s, %{input: input}) ==
             {:error, {:quota_exceeded, "swarm memory", 100_000}}

    # Every accepted task is still there.
    for id <- ids, do: assert({:ok, %{status: :pending}} = RuvSwarm.task_status(id))
    # A finished task keeps its input while it is in the history.
    held = usage(s).task_bytes
    :ok = RuvSwarm.cancel_task(hd(ids))
    assert usage(s).task_bytes == held
  end

  test "finished tasks leaving the history release what they held" do
    s = swarm!([])
    {:ok, big} = RuvSwarm.orchestrate(s, %{input: value("i", 200_000)})
    :ok = RuvSwarm.cancel_task(big)
    held = usage(s).task_bytes
    assert held > 200_000

    # The history keeps the newest 10,000 finished tasks.
    for _ <- 1..10_000 do
      {:ok, id} = RuvSwarm.orchestrate(s, "x")
      :ok = RuvSwarm.cancel_task(id)
    end

    assert RuvSwarm.task_status(big) == {:error, :task_not_found}
    assert usage(s).task_bytes < held - 200_000 + 10_000 * 1_000
    assert usage(s).task_bytes > 0
    before = usage(s).task_bytes
    {:ok, id} = RuvSwarm.orchestrate(s, "x")
    :ok = RuvSwarm.cancel_task(id)
    # One in, one out: the same size.
    assert usage(s).task_bytes == before
  end

  test "a result past the quota fails its attempt with the reason instead of vanishing" do
    s = swarm!(memory_quota: 50_000, agents: 1, executor: {:module, Big, 60_000})
    {:ok, t} = RuvSwarm.orchestrate(s, %{input: "go", retries: 2, backoff_ms: 0})
    assert {:error, {:failed, msg}} = RuvSwarm.await_task(t)
    assert msg =~ "after 2 attempt(s)"
    assert msg =~ "swarm memory quota exceeded"
    assert usage(s).result_bytes < 50_000

    # An external agent hears the refusal itself; its attempt fails too.
    {:ok, ext} = RuvSwarm.spawn_agent(s, executor: :external, capabilities: ["ext"])
    {:ok, t2} = RuvSwarm.orchestrate(s, %{input: "go", retries: 1, capabilities: ["ext"]})
    {:ok, work} = RuvSwarm.claim_task(ext)

    assert RuvSwarm.complete_task(work.work_id, ext, value("r", 60_000)) ==
             {:error, {:quota_exceeded, "swarm memory", 50_000}}

    assert {:error, {:failed, msg}} = RuvSwarm.await_task(t2)
    assert msg =~ "result rejected: swarm memory quota exceeded"
  end

  test "the node quota spans every swarm" do
    a = swarm!(memory_quota: 1_000_000)
    b = swarm!(memory_quota: 1_000_000)
    {:ok, %{held_bytes: held}} = RuvSwarm.memory_usage()
    {:ok, q} = Quotas.configured()
    limit = held + 150_000
    :ok = Quotas.set(q.swarm_bytes, limit)

    assert {:ok, _} = RuvSwarm.memory_store(a, "k", value("a", 100_000))

    # b holds nothing, but the node is nearly full.
    assert RuvSwarm.memory_store(b, "k", value("b", 100_000)) ==
             {:error, {:quota_exceeded, "node memory", limit}}

    assert RuvSwarm.share_discovery(b, type: "x", content: value("c", 100_000)) ==
             {:error, {:quota_exceeded, "node memory", limit}}

    assert {:ok, %{value: v}} = RuvSwarm.memory_get(a, "k")
    assert byte_size(v) == 100_000
    assert usage(b).held_bytes == 0

    # Room made in one swarm is room for the other; so is a destroyed swarm.
    :ok = RuvSwarm.memory_delete(a, "k")
    assert {:ok, _} = RuvSwarm.memory_store(b, "k", value("b", 100_000))

    assert {:error, {:quota_exceeded, "node memory", _}} =
             RuvSwarm.memory_store(a, "k", value("a", 100_000))

    :ok = RuvSwarm.destroy_swarm(b)
    assert {:ok, _} = RuvSwarm.memory_store(a, "k", value("a", 100_000))
  end

  test "an export and import keeps the quota and the accounting" do
    {:ok, s} = RuvSwarm.spawn_swarm(memory_quota: 123_456)
    {:ok, ext} = RuvSwarm.spawn_agent(s, executor: :external)
    {:ok, _} = RuvSwarm.memory_store(s, "k", value("v", 5_000), tags: ["t"])
    {:ok, _} = RuvSwarm.share_discovery(s, type: "bug", content: "c")
    {:ok, _} = RuvSwarm.orchestrate(s, %{input: value("i", 1_000)})
    {:ok, work} = RuvSwarm.claim_task(ext)
    :ok = RuvSwarm.complete_task(work.work_id, ext, "done")
    before = usage(s)
    {:ok, %{held_bytes: node_before}} = RuvSwarm.memory_usage()

    {:ok, snap} = Native.swarm_export(s)
    assert snap.memory_quota == 123_456
    :ok = RuvSwarm.destroy_swarm(s)
    {:ok, %{held_bytes: node_without}} = RuvSwarm.memory_usage()
    assert node_without == node_before - before.held_bytes

    {:ok, ^s} = Native.swarm_import(snap)
    on_exit(fn -> Native.swarm_destroy(s) end)
    # Everything but the record of the ended attempt (40 bytes), which
    # snapshots leave out.
    restored = %{
      before
      | result_bytes: before.result_bytes - 40,
        held_bytes: before.held_bytes - 40
    }

    assert usage(s) == restored
    {:ok, %{held_bytes: node_after}} = RuvSwarm.memory_usage()
    assert node_after == node_before - 40
    # The text of an imported value is searched as before.
    assert {:ok, [%{key: "k"}]} = Native.memory_search(s, %{text: "VVV"})

    # A snapshot from before quotas gets the node's default.
    :ok = Native.swarm_destroy(s)
    {:ok, ^s} = Native.swarm_import(Map.delete(snap, :memory_quota))
    {:ok, q} = Quotas.configured()
    assert usage(s).memory_quota == q.swarm_bytes
  end

  test "quotas are validated: spawn_swarm's option, the NIF setter and the config" do
    assert {:error, {:invalid_argument, msg}} = RuvSwarm.spawn_swarm(memory_quota: 10)
    assert msg =~ "memory_quota"
    assert {:error, {:invalid_argument, _}} = RuvSwarm.spawn_swarm(memory_quota: "1GB")
    assert {:error, {:invalid_argument, _}} = Quotas.set(0, 1 <<< 40)
    assert {:error, {:invalid_argument, _}} = Quotas.set(1 <<< 30, :infinity)
    assert {:error, {:invalid_argument, _}} = Native.swarm_create("s", :mesh, :balanced, 5, -1)

    old = Application.get_env(:swarm_service, :memory_quotas)
    on_exit(fn -> Application.put_env(:swarm_service, :memory_quotas, old) end)
    Application.put_env(:swarm_service, :memory_quotas, swarm_bytes: 1_000, node_bytes: 1 <<< 33)
    assert {:error, {:invalid_argument, msg}} = Quotas.apply_config()
    assert msg =~ "swarm_bytes"
  end

  test "the reason reads as a sentence and maps to a client error at the gateway" do
    reason = {:quota_exceeded, "swarm memory", 1_073_741_824}

    assert RuvSwarm.format_error(reason) =~
             "swarm memory quota exceeded: holding this would go past the limit of 1073741824 bytes"

    assert %{http_status: 409, code: "quota_exceeded"} = SwarmService.Errors.describe(reason)
  end
end
