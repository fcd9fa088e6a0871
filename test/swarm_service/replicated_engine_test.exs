defmodule SwarmService.ReplicatedEngineTest do
  # The engine side of durable swarms (native/ruv_swarm_nif/src/replicated.rs):
  # a replicated swarm is a pure function of the commands applied to it, so
  # a replay (where every logged pid is dead) reaches the state of the
  # original run (where they were alive).
  use ExUnit.Case, async: true

  alias SwarmService.Native

  defp create(id, seed \\ 7) do
    {:ok, ^id} = Native.swarm_create_replicated(id, "r", :mesh, :balanced, 10, nil, seed, 1_000)

    id
  end

  defp dead_pid do
    pid = spawn(fn -> :ok end)
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, _, _, _}
    pid
  end

  # One run of commands, with `pid` as the agent's process and the clock of
  # each command given, as Swarm.Machine applies them.
  defp run(id, pid) do
    at = fn now, fun, args ->
      :ok = Native.swarm_set_clock(id, now)
      apply(Native, fun, args)
    end

    {:ok, agent} =
      at.(1_000, :agent_add, [id, %{dispatch: :push, executor: :external, node: "n"}])

    :ok = at.(1_001, :agent_attach, [agent, pid])
    {:ok, t1} = at.(1_002, :task_submit, [id, %{description: "one", timeout_ms: 500}, nil])
    {:ok, _} = at.(1_003, :task_submit, [id, %{description: "two", retries: 3}, pid])
    {:ok, _} = at.(1_004, :memory_store, [id, "k", "v", %{ttl_ms: 2_000}])
    {:ok, _} = at.(1_010, :swarm_tick, [id])
    # The first attempt times out at 1,502; retried with jitter.
    {:ok, _} = at.(1_600, :swarm_tick, [id])
    {:ok, _} = at.(9_000, :swarm_tick, [id])
    {:ok, t1}
  end

  test "the same commands give the same state, whether the agent's process is alive or not" do
    id = Native.new_swarm_id()
    create(id)
    {:ok, _} = run(id, self())
    {:ok, live} = Native.swarm_save(id)
    :ok = Native.swarm_destroy(id)

    create(id)
    {:ok, _} = run(id, dead_pid())
    {:ok, replay} = Native.swarm_save(id)
    :ok = Native.swarm_destroy(id)

    assert live == replay
    # The live run did deliver the work.
    assert_received {:swarm_work, _, _}
  end

  test "the random state comes from the seed: the same seed draws the same retry jitter" do
    id = Native.new_swarm_id()

    [one, same, other] =
      for seed <- [1, 1, 2] do
        create(id, seed)
        {:ok, _} = run(id, dead_pid())
        {:ok, state} = Native.swarm_save(id)
        :ok = Native.swarm_destroy(id)
        state
      end

    assert one == same
    assert one != other
  end

  test "a saved state loads into an engine that continues exactly like the original" do
    id = create(Native.new_swarm_id())
    {:ok, _} = run(id, dead_pid())
    {:ok, saved} = Native.swarm_save(id)
    {:ok, ^id} = Native.swarm_load_replicated(saved, 9_000)
    {:ok, again} = Native.swarm_save(id)
    assert again == saved

    assert {:error, {:invalid_argument, "corrupt swarm state" <> _}} =
             Native.swarm_load_replicated(<<1, 0, 0>>, 0)

    assert {:error, {:invalid_argument, _}} = Native.swarm_load_replicated(<<>>, 0)
    :ok = Native.swarm_destroy(id)
  end

  test "work for an agent without a reachable process goes to the owner as a notice" do
    id = create(Native.new_swarm_id())
    :ok = Native.swarm_set_owner(id, self())
    {:ok, agent} = Native.agent_add(id, %{dispatch: :push, executor: :external, node: "n"})
    # Attached from the log with a pid of a process that is gone.
    :ok = Native.agent_attach(agent, dead_pid())
    {:ok, _} = Native.task_submit(id, %{description: "x"}, nil)
    assert_receive {:swarm_agent_unreachable, ^id, ^agent}
    # The agent stays as the log left it: busy with that work.
    assert {:ok, %{status: :busy}} = Native.agent_get(agent)
    :ok = Native.swarm_destroy(id)
  end

  test "an in-memory swarm keeps the node's clock and local pids only" do
    {:ok, id} = Native.swarm_create("m", :mesh, :balanced, 10, nil)

    assert {:error, {:invalid_argument, "the swarm is not replicated" <> _}} =
             Native.swarm_set_clock(id, 5)

    assert {:error, {:invalid_argument, "notify must be a local pid"}} =
             Native.task_submit(id, %{description: "x"}, dead_pid_elsewhere())

    assert {:error, {:invalid_argument, "notify must be a pid"}} =
             Native.task_submit(id, %{description: "x"}, :not_a_pid)

    :ok = Native.swarm_destroy(id)
  end

  test "a replicated swarm's id must be a swarm id" do
    assert {:error, {:invalid_argument, _}} =
             Native.swarm_create_replicated("nope", "r", :mesh, :balanced, 10, nil, 1, 1)
  end

  # A pid of another incarnation of this node: what a replayed log holds.
  defp dead_pid_elsewhere do
    bin = :erlang.term_to_binary(self())
    # The creation is the last 4 bytes of a NEW_PID_EXT; change it.
    size = byte_size(bin) - 4
    <<head::binary-size(size), creation::32>> = bin
    :erlang.binary_to_term(<<head::binary, creation + 1::32>>)
  end
end
