defmodule SwarmService.BadInputPropertyTest do
  # Throws random terms at every public function. Each call must return
  # (never raise, never crash the VM, never create atoms), and swarms made
  # earlier must be intact afterwards.
  # Not async: the atom table is global, and other tests load code.
  use ExUnit.Case, async: false
  import Bitwise

  alias SwarmService.RuvSwarm

  @rounds 3_000

  defp random_term(depth \\ 0) do
    case :rand.uniform(if depth > 2, do: 9, else: 13) do
      1 ->
        :rand.uniform(1 <<< 70) - (1 <<< 69)

      2 ->
        :rand.uniform() * 1.0e12 - 5.0e11

      3 ->
        Enum.random([nil, true, false, :mesh, :ring, :critical, :external, :ok, :error])

      4 ->
        :crypto.strong_rand_bytes(:rand.uniform(40))

      5 ->
        Enum.random([
          "",
          "mesh",
          "swarm-00000000-1",
          "swarm-x.task-1",
          "a/b/c",
          "ü∂",
          "swarm-1.agent-999999999999999999999"
        ])

      6 ->
        <<0xFF, 0xFE, :rand.uniform(255)>>

      7 ->
        self()

      8 ->
        make_ref()

      9 ->
        Enum.random([-1, 0, 1, 100_001, 1 <<< 64, -0.0, 1.5])

      10 ->
        for _ <- 1..:rand.uniform(4), do: random_term(depth + 1)

      11 ->
        List.to_tuple(for _ <- 1..:rand.uniform(3), do: random_term(depth + 1))

      12 ->
        Map.new(for _ <- 1..:rand.uniform(4), do: {random_key(), random_term(depth + 1)})

      13 ->
        for _ <- 1..:rand.uniform(3), do: {random_key(), random_term(depth + 1)}
    end
  end

  defp random_key do
    Enum.random([
      :topology,
      :strategy,
      :agents,
      :max_agents,
      :name,
      :executor,
      :type,
      :capabilities,
      :capacity,
      :description,
      :input,
      :priority,
      :subtasks,
      :depends_on,
      :timeout_ms,
      :retries,
      :namespace,
      :tags,
      :ttl_ms,
      :prefix,
      :text,
      :limit,
      :content,
      :confidence,
      :agent_id,
      :lease_ms,
      :from,
      :min_confidence,
      "topology",
      1,
      {:a}
    ])
  end

  defp calls(ids) do
    arg = fn -> if :rand.uniform(3) == 1, do: Enum.random(ids), else: random_term() end

    [
      fn -> RuvSwarm.spawn_swarm(random_term()) end,
      fn -> RuvSwarm.swarm_status(arg.()) end,
      fn -> RuvSwarm.spawn_agent(arg.(), random_term()) end,
      fn -> RuvSwarm.list_agents(arg.()) end,
      fn -> RuvSwarm.agent_metrics(arg.()) end,
      fn -> RuvSwarm.neighbours(arg.()) end,
      fn -> RuvSwarm.orchestrate(arg.(), random_term()) end,
      fn -> RuvSwarm.task_status(arg.()) end,
      fn -> RuvSwarm.task_results(arg.()) end,
      fn -> RuvSwarm.cancel_task(arg.()) end,
      fn -> RuvSwarm.await_task(arg.(), 0) end,
      fn -> RuvSwarm.claim_task(arg.(), random_term()) end,
      fn -> RuvSwarm.complete_task(arg.(), arg.(), random_term()) end,
      fn -> RuvSwarm.fail_task(arg.(), arg.(), random_term()) end,
      fn -> RuvSwarm.coordinate_agents(arg.(), random_term(), random_term()) end,
      fn -> RuvSwarm.memory_store(arg.(), arg.(), random_term(), random_term()) end,
      fn -> RuvSwarm.memory_get(arg.(), arg.(), random_term()) end,
      fn -> RuvSwarm.memory_delete(arg.(), arg.(), random_term()) end,
      fn -> RuvSwarm.memory_search(arg.(), random_term(), random_term()) end,
      fn -> RuvSwarm.share_discovery(arg.(), random_term()) end,
      fn -> RuvSwarm.subscribe_discoveries(arg.(), random_term()) end,
      fn -> RuvSwarm.recent_discoveries(arg.(), random_term(), random_term()) end,
      fn -> RuvSwarm.remove_agent(arg.()) end,
      fn -> RuvSwarm.destroy_swarm(Enum.random([random_term(), "swarm-00000000-1"])) end
    ]
  end

  defp run_rounds(n, ids, spawned, seed) do
    for _ <- 1..n do
      call = Enum.random(calls(ids))
      result = call.()

      assert result in [:ok, :ignored] or match?({:ok, _}, result) or match?({:error, _}, result),
             "unexpected reply #{inspect(result, limit: 5)} (seed #{inspect(seed)})"

      with {:ok, id} when is_binary(id) <- result,
           true <- String.match?(id, ~r/^swarm-[0-9a-f]+-\d+$/) do
        :ets.insert(spawned, {id})
      end
    end
  end

  test "random terms get answers, not crashes, and earlier swarms stay intact" do
    {:ok, keep} = RuvSwarm.spawn_swarm(topology: :ring, agents: 3, name: "keep")
    {:ok, _} = RuvSwarm.memory_store(keep, "k", "v")
    {:ok, task} = RuvSwarm.orchestrate(keep, "kept task")
    {:ok, before} = RuvSwarm.swarm_status(keep)
    {:ok, [agent | _]} = RuvSwarm.list_agents(keep)
    ids = [keep, agent.id, task, keep <> ".task-999", "swarm-ffffffff-999999"]
    seed = :rand.seed(:exsss)
    spawned = :ets.new(:spawned, [:bag, :public])
    # The first rounds load code (and with it the code's own atoms); atoms
    # are counted over the later rounds only.
    run_rounds(div(@rounds, 3), ids, spawned, seed)
    atoms_before = :erlang.system_info(:atom_count)
    names_before = SwarmService.Raft.name_atoms()
    run_rounds(@rounds, ids, spawned, seed)

    for {id} <- :ets.tab2list(spawned), id != keep, do: RuvSwarm.destroy_swarm(id)

    # Nothing from input became an atom: the only new ones are the names of
    # the durable swarms' Raft servers, one per swarm alive at once.
    assert :erlang.system_info(:atom_count) - atoms_before ==
             SwarmService.Raft.name_atoms() - names_before

    # The earlier swarm is intact (memory and the task may have been touched
    # through its real ids, but it still exists and answers).
    assert {:ok, after_status} = RuvSwarm.swarm_status(keep)
    assert after_status.topology == before.topology and after_status.name == "keep"
    assert {:ok, _} = RuvSwarm.task_status(task)
  end
end
