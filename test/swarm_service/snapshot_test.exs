defmodule SwarmService.SnapshotTest do
  # A swarm exported to plain terms, destroyed, and imported again under the
  # same ids: what a backup node does when the home node dies.
  # Not async: one test counts atoms, which other tests' code loading moves.
  use ExUnit.Case, async: false
  import Bitwise

  alias SwarmService.{Native, RuvSwarm, Swarm}
  alias SwarmService.Test.Executors

  defp seq(id), do: id |> String.split("-") |> List.last() |> String.to_integer()

  defp destroy_on_exit(id), do: on_exit(fn -> RuvSwarm.destroy_swarm(id) end)

  # In-flight work is queued again on import: unfinished tasks read as pending.
  defp requeued(snapshot) do
    update_in(snapshot.tasks, fn tasks ->
      for t <- tasks do
        if t.status == :running, do: %{t | status: :pending}, else: t
      end
    end)
  end

  defp started!(task_id) do
    assert_receive {:started, work_id, agent_id, worker}, 5_000
    assert String.starts_with?(work_id, task_id <> "/")
    {agent_id, worker}
  end

  # A swarm with one push agent (a module executor that waits to be
  # released), one external agent, and tasks in every state.
  defp busy_swarm do
    executor = {:module, Executors.Notify, self()}
    {:ok, s} = RuvSwarm.spawn_swarm(topology: :ring, name: "home", executor: executor)
    destroy_on_exit(s)
    {:ok, push} = RuvSwarm.spawn_agent(s, type: :coder, capabilities: ["elixir"])
    {:ok, ext} = RuvSwarm.spawn_agent(s, executor: :external, capabilities: ["ext"], name: "ext")

    # In flight on the push agent when exported; then one queued behind it.
    elixir = ["elixir"]

    {:ok, inflight} =
      RuvSwarm.orchestrate(s, %{description: "in flight", input: 1, capabilities: elixir})

    {^push, worker} = started!(inflight)

    {:ok, queued} =
      RuvSwarm.orchestrate(s, %{
        input: 2,
        priority: :high,
        timeout_ms: 60_000,
        capabilities: elixir
      })

    # Completed, failed and cancelled through the external agent.
    {:ok, done} = RuvSwarm.orchestrate(s, %{input: "x", capabilities: ["ext"]})
    {:ok, w} = RuvSwarm.claim_task(ext)
    :ok = RuvSwarm.complete_task(w.work_id, ext, %{answer: 42})
    {:ok, failed} = RuvSwarm.orchestrate(s, %{input: "y", capabilities: ["ext"], retries: 1})
    {:ok, w} = RuvSwarm.claim_task(ext)
    :ok = RuvSwarm.fail_task(w.work_id, ext, "no luck")
    {:ok, cancelled} = RuvSwarm.orchestrate(s, %{input: "z", capabilities: ["nobody"]})
    :ok = RuvSwarm.cancel_task(cancelled)

    # A DAG half done: a completed, b claimed (in flight), c waiting.
    {:ok, dag} =
      RuvSwarm.orchestrate(s,
        description: "dag",
        capabilities: ["ext"],
        subtasks: [
          %{name: "a", input: :a},
          %{name: "b", input: :b, depends_on: ["a"]},
          %{name: "c", input: :c, depends_on: ["a", "b"]}
        ]
      )

    {:ok, w} = RuvSwarm.claim_task(ext)
    assert w.task_id == dag
    :ok = RuvSwarm.complete_task(w.work_id, ext, {:result, :a})
    {:ok, %{task_id: ^dag}} = RuvSwarm.claim_task(ext)

    {:ok, _} = RuvSwarm.memory_store(s, "plan", %{step: 1}, tags: ["draft", "v1"])
    {:ok, _} = RuvSwarm.memory_store(s, "lease", "short lived", ttl_ms: 60_000)
    {:ok, _} = RuvSwarm.memory_store(s, "gone", "expires", ttl_ms: 1)
    {:ok, _} = RuvSwarm.memory_store(s, "plan", %{step: 2}, tags: ["draft"], namespace: "other")
    {:ok, d1} = RuvSwarm.share_discovery(s, type: "bug", content: "off by one", agent_id: ext)
    {:ok, d2} = RuvSwarm.share_discovery(s, type: "idea", content: %{x: 1}, confidence: 0.5)
    Process.sleep(5)

    %{
      swarm: s,
      push: push,
      ext: ext,
      inflight: inflight,
      queued: queued,
      done: done,
      failed: failed,
      cancelled: cancelled,
      dag: dag,
      discoveries: [d1, d2],
      executor: executor,
      worker: worker
    }
  end

  test "a swarm comes back under the same ids and finishes its work" do
    ctx = busy_swarm()
    s = ctx.swarm
    {:ok, snap} = Native.swarm_export(s)
    {:ok, done_before} = RuvSwarm.task_results(ctx.done)

    assert snap.id == s and snap.name == "home" and snap.topology == :ring
    assert Enum.map(snap.agents, & &1.id) == [ctx.push, ctx.ext]
    [push, ext] = snap.agents
    assert push.dispatch == :push and push.executor == ctx.executor and push.type == "coder"
    assert ext.dispatch == :pull and ext.executor == :external and ext.name == "ext"
    assert push.node == Atom.to_string(node())

    tasks = Map.new(snap.tasks, &{&1.id, &1})

    assert Enum.map(snap.tasks, & &1.id) ==
             [ctx.inflight, ctx.queued, ctx.done, ctx.failed, ctx.cancelled, ctx.dag]

    assert tasks[ctx.inflight].status == :running
    assert tasks[ctx.queued].status == :pending
    assert tasks[ctx.queued].spec.priority == :high
    assert tasks[ctx.queued].spec.timeout_ms == 60_000
    assert %{status: :completed, result: %{answer: 42}, finished_at: at} = tasks[ctx.done]
    assert is_integer(at)
    assert %{status: :failed, result: nil, error: "unit main failed" <> _} = tasks[ctx.failed]
    assert tasks[ctx.cancelled].status == :cancelled
    assert %{status: :running, units: 3, unit_results: [{0, {:result, :a}}]} = tasks[ctx.dag]

    assert [%{name: "a"}, %{name: "b", depends_on: ["a"]}, %{name: "c"}] =
             tasks[ctx.dag].spec.subtasks

    assert Enum.map(snap.memory, &{&1.namespace, &1.key}) ==
             [{"default", "lease"}, {"default", "plan"}, {"other", "plan"}]

    assert Enum.map(snap.discoveries, & &1.id) == ctx.discoveries

    # Items one by one are the same elements as in the full export.
    {:ok, header} = Native.export_item(s)
    assert header == Map.drop(snap, [:agents, :tasks, :memory, :discoveries])
    for a <- snap.agents, do: assert({:ok, a} == Native.export_item(a.id))
    for t <- snap.tasks, do: assert({:ok, t} == Native.export_item(t.id))
    for d <- snap.discoveries, do: assert({:ok, d} == Native.export_item(d.id))
    for m <- snap.memory, do: assert({:ok, m} == Native.memory_export(s, m.namespace, m.key))
    assert Native.memory_export(s, "default", "gone") == {:error, :not_found}

    # The home node dies; the backup imports what it kept.
    assert Native.swarm_import(snap) == {:error, :swarm_exists}
    :ok = RuvSwarm.destroy_swarm(s)
    # Its blocked worker is let go (its report finds no swarm) before the
    # backup takes over.
    ref = Process.monitor(ctx.worker)
    send(ctx.worker, :release)
    assert_receive {:DOWN, ^ref, :process, _, _}, 5_000
    assert {:ok, ^s} = Native.swarm_import(snap)
    assert {:ok, again} = Native.swarm_export(s)
    assert again == requeued(snap)

    # Finished tasks answer as before.
    assert {:ok, done_after} = RuvSwarm.task_results(ctx.done)
    assert done_after.result == %{answer: 42}

    assert Map.take(done_after, [:status, :result, :created_at, :finished_at, :started_at]) ==
             Map.take(done_before, [:status, :result, :created_at, :finished_at, :started_at])

    assert RuvSwarm.await_task(ctx.done, 0) == {:ok, %{answer: 42}}
    assert {:error, {:failed, "unit main failed" <> _}} = RuvSwarm.await_task(ctx.failed, 0)
    assert RuvSwarm.await_task(ctx.cancelled, 0) == {:error, :cancelled}
    {:ok, m} = RuvSwarm.memory_get(s, "plan")
    assert m.value == %{step: 1} and m.tags == ["draft", "v1"]
    {:ok, lease} = RuvSwarm.memory_get(s, "lease")
    assert is_integer(lease.expires_at)
    assert {:ok, [_, _]} = RuvSwarm.recent_discoveries(s)

    # No process yet: the push agent is offline and listed for restoring.
    {:ok, status} = RuvSwarm.swarm_status(s)
    assert status.agents.offline == 1 and status.agents.idle == 1
    assert {:ok, [{push_id, nil, exec}]} = Native.agent_processes(s)
    assert push_id == ctx.push and exec == ctx.executor

    # The external agent picks up the DAG where it stopped: b sees a's result.
    {:ok, w} = RuvSwarm.claim_task(ctx.ext)
    assert {w.task_id, w.unit, w.context} == {ctx.dag, "b", %{"a" => {:result, :a}}}
    :ok = RuvSwarm.complete_task(w.work_id, ctx.ext, :b_done)
    {:ok, w} = RuvSwarm.claim_task(ctx.ext)
    assert w.unit == "c" and w.context == %{"a" => {:result, :a}, "b" => :b_done}
    :ok = RuvSwarm.complete_task(w.work_id, ctx.ext, :c_done)

    assert RuvSwarm.await_task(ctx.dag) ==
             {:ok, %{"a" => {:result, :a}, "b" => :b_done, "c" => :c_done}}

    # The swarm's processes start; the agent supervisor restores the push
    # agent, which runs the queued work: the high-priority task first.
    {:ok, _} = Swarm.start(s, executor: ctx.executor)
    {agent, worker} = started!(ctx.queued)
    assert agent == ctx.push
    send(worker, :release)
    {^agent, worker} = started!(ctx.inflight)
    send(worker, :release)
    assert RuvSwarm.await_task(ctx.queued) == {:ok, :released}
    assert RuvSwarm.await_task(ctx.inflight) == {:ok, :released}
    assert {:ok, [{^push_id, pid, _}]} = Native.agent_processes(s)
    assert is_pid(pid)

    # New ids and versions continue past everything the home node handed out.
    {:ok, new_agent} = RuvSwarm.spawn_agent(s, executor: :external)
    assert seq(new_agent) == snap.next_ids.agent
    {:ok, new_task} = RuvSwarm.orchestrate(s, %{input: 3, capabilities: ["nobody"]})
    assert seq(new_task) == snap.next_ids.task
    {:ok, version} = RuvSwarm.memory_store(s, "plan", %{step: 3})
    assert version == snap.next_ids.memory_version
    {:ok, d} = RuvSwarm.share_discovery(s, type: "bug")
    assert seq(d) == snap.next_ids.discovery
  end

  test "recorded unit results complete a task on import; the recorded unit count is kept" do
    {:ok, s} = RuvSwarm.spawn_swarm()
    destroy_on_exit(s)
    {:ok, t} = RuvSwarm.orchestrate(s, %{input: "q", strategy: :adaptive, max_agents: 3})
    {:ok, snap} = Native.swarm_export(s)
    :ok = RuvSwarm.destroy_swarm(s)

    # A hedged task recorded with three tries: any one result completes it.
    hedged = fn unit_results ->
      update_in(snap.tasks, fn [task] -> [%{task | units: 3, unit_results: unit_results}] end)
    end

    {:ok, ^s} = Native.swarm_import(hedged.([]))
    {:ok, status} = RuvSwarm.task_status(t)
    assert Enum.map(status.units, & &1.name) == ["try-1", "try-2", "try-3"]
    :ok = Native.swarm_destroy(s)

    {:ok, ^s} = Native.swarm_import(hedged.([{2, :third}]))
    assert RuvSwarm.await_task(t, 0) == {:ok, :third}
    :ok = Native.swarm_destroy(s)
  end

  describe "importing" do
    setup do
      {:ok, s} = RuvSwarm.spawn_swarm(agents: 2)
      {:ok, _} = RuvSwarm.orchestrate(s, "work")
      {:ok, _} = RuvSwarm.memory_store(s, "k", "v")
      {:ok, _} = RuvSwarm.share_discovery(s, type: "t")
      {:ok, snap} = Native.swarm_export(s)
      :ok = RuvSwarm.destroy_swarm(s)
      on_exit(fn -> Native.swarm_destroy(s) end)
      %{snap: snap}
    end

    defp invalid!(term) do
      assert {:error, reason} = Native.swarm_import(term)
      assert_explained(reason)
      reason
    end

    # A rejected snapshot is refused with a documented reason, which
    # format_error/1 puts in words (its fallback for unknown terms is inspect).
    defp assert_explained(reason) do
      text = RuvSwarm.format_error(reason)
      refute text == inspect(reason, limit: 10), "no explanation for #{inspect(reason)}"
      assert text =~ ~r/\w+ \w+/
    end

    defp message!(term) do
      assert {:invalid_argument, msg} = invalid!(term)
      msg
    end

    test "the untouched snapshot imports", %{snap: snap} do
      assert {:ok, id} = Native.swarm_import(snap)
      assert id == snap.id
      assert RuvSwarm.format_error(:swarm_exists) =~ "already"
      assert Native.swarm_import(snap) == {:error, :swarm_exists}
    end

    test "a header alone makes an empty swarm whose ids continue", %{snap: snap} do
      header = Map.drop(snap, [:agents, :tasks, :memory, :discoveries])
      assert {:ok, id} = Native.swarm_import(header)

      assert {:ok, %{agents: [], tasks: [], memory: [], discoveries: []}} =
               Native.swarm_export(id)

      {:ok, agent} = RuvSwarm.spawn_agent(id, executor: :external)
      assert seq(agent) == snap.next_ids.agent
      {:ok, task} = RuvSwarm.orchestrate(id, "next")
      assert seq(task) == snap.next_ids.task
    end

    test "a completed task whose result is nil", %{snap: snap} do
      [task] = snap.tasks
      done = %{task | status: :completed, finished_at: task.created_at + 1, result: nil}
      assert {:ok, _} = Native.swarm_import(%{snap | tasks: [done]})
      assert RuvSwarm.await_task(task.id, 0) == {:ok, nil}
      assert {:ok, %{tasks: [^done]}} = Native.swarm_export(snap.id)
    end

    test "wrong shapes and types", %{snap: snap} do
      assert message!(:nope) =~ "must be a map"
      assert message!([snap]) =~ "must be a map"
      assert message!(Map.delete(snap, :id)) =~ "id is missing"
      assert message!(%{snap | max_agents: "100"}) =~ "max_agents"
      assert message!(%{snap | created_at: -1}) =~ "created_at"
      assert message!(%{snap | agents: :many}) =~ "agents must be a list"
      assert message!(%{snap | agents: [:agent]}) =~ "agents[0]: an agent must be a map"
      assert message!(%{snap | next_ids: %{snap.next_ids | task: 0}}) =~ "next_ids.task"
      [agent | rest] = snap.agents
      assert message!(%{snap | agents: [%{agent | capacity: 0} | rest]}) =~ "agents[0]: capacity"
      [task] = snap.tasks
      assert message!(%{snap | tasks: [%{task | spec: "work"}]}) =~ "spec must be a map"
      assert message!(%{snap | tasks: [%{task | unit_results: [:x]}]}) =~ "unit_results[0]"
      assert message!(%{snap | tasks: [%{task | unit_results: [{5, :r}]}]}) =~ "unit 5"

      completed = %{task | status: :completed, finished_at: 1}
      assert message!(%{snap | tasks: [Map.delete(completed, :result)]}) =~ "needs its result"
      assert message!(%{snap | tasks: [%{completed | finished_at: nil}]}) =~ "needs finished_at"

      assert message!(%{snap | tasks: [%{task | result: :early}]}) =~ "only a completed task"
      assert message!(%{snap | memory: [:m]}) =~ "memory[0]"

      assert message!(%{snap | discoveries: [%{hd(snap.discoveries) | confidence: "high"}]}) =~
               "confidence"

      # Improper lists are not walked.
      assert message!(%{snap | tasks: [task | :tail]}) =~ "tasks must be a list"
      assert message!(%{snap | id: "swarm-a.b"}) =~ "swarm id"
      assert message!(%{snap | id: "home"}) =~ "swarm id"

      assert message!(%{snap | agents: [%{agent | id: "swarm-other-1.agent-1"} | rest]}) =~
               "is not an agent id"
    end

    test "unknown names, given as strings, become errors and not atoms", %{snap: snap} do
      [agent | rest] = snap.agents
      [task] = snap.tasks
      # Warm up (loads code and its atoms) before counting.
      message!(%{snap | topology: "torus"})
      before = :erlang.system_info(:atom_count)
      name = "no_such_atom_#{System.unique_integer([:positive])}"
      assert message!(%{snap | topology: name}) =~ "unknown Topology"
      assert message!(%{snap | strategy: name}) =~ "unknown Strategy"
      assert message!(%{snap | agents: [%{agent | dispatch: name} | rest]}) =~ "unknown Dispatch"
      assert message!(%{snap | tasks: [%{task | status: name}]}) =~ "unknown TaskStatus"

      assert message!(%{snap | tasks: [%{task | spec: %{task.spec | priority: name}}]}) =~
               "unknown Priority"

      assert :erlang.system_info(:atom_count) == before
      assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
      # Atoms from the vocabulary work as strings too.
      assert {:ok, _} = Native.swarm_import(%{snap | topology: "ring", strategy: "adaptive"})
    end

    test "duplicate ids", %{snap: snap} do
      assert message!(%{snap | agents: snap.agents ++ snap.agents}) =~ "appears twice"
      assert message!(%{snap | tasks: snap.tasks ++ snap.tasks}) =~ "appears twice"
      assert message!(%{snap | memory: snap.memory ++ snap.memory}) =~ "appears twice"
      assert message!(%{snap | discoveries: snap.discoveries ++ snap.discoveries}) =~ "twice"
    end

    test "huge lists are refused before they are read; the VM carries on", %{snap: snap} do
      agents = List.duplicate(hd(snap.agents), 100_001)
      assert {:too_large, "agents", 100_001, 100} = invalid!(%{snap | agents: agents})
      tasks = List.duplicate(:t, 1_000_001)
      assert {:too_large, "tasks", 1_000_001, 1_000_000} = invalid!(%{snap | tasks: tasks})
      discoveries = List.duplicate(:d, 1_001)
      assert {:too_large, "discoveries", _, _} = invalid!(%{snap | discoveries: discoveries})
      [task] = snap.tasks
      big = %{task | unit_results: List.duplicate({0, :r}, 5_000)}
      assert {:too_large, "unit_results", _, _} = invalid!(%{snap | tasks: [big]})
      # Still here, and the engine still answers.
      assert {:ok, id} = Native.swarm_import(snap)
      assert {:ok, _} = RuvSwarm.swarm_status(id)
    end

    test "randomly corrupted snapshots get answers, not crashes", %{snap: snap} do
      junk = fn ->
        Enum.random([
          nil,
          -1,
          0,
          1 <<< 70,
          1.5,
          "",
          "ring",
          "swarm-x",
          <<255, 0>>,
          :pull,
          :completed,
          [],
          [nil],
          [:a | :b],
          {0, :r},
          %{},
          self(),
          make_ref()
        ])
      end

      corrupt = fn snap ->
        case Enum.random([:top, :agents, :tasks, :spec, :memory, :discoveries]) do
          :top ->
            Map.put(snap, Enum.random(Map.keys(snap)), junk.())

          :spec ->
            update_in(snap, [:tasks, Access.at(0), :spec], fn spec ->
              Map.put(spec, Enum.random(Map.keys(spec)), junk.())
            end)

          list ->
            update_in(snap, [list, Access.at(0)], fn item ->
              Map.put(item, Enum.random(Map.keys(item)), junk.())
            end)
        end
      end

      message!(%{snap | topology: "torus"})
      atoms = :erlang.system_info(:atom_count)

      for _ <- 1..500 do
        case Native.swarm_import(corrupt.(snap)) do
          {:ok, id} -> :ok = Native.swarm_destroy(id)
          {:error, reason} -> assert_explained(reason)
        end
      end

      assert :erlang.system_info(:atom_count) == atoms
    end

    test "items of unknown ids" do
      assert Native.export_item(:x) == {:error, {:invalid_argument, "id must be a string"}}
      assert Native.export_item("swarm-ffffffff-1") == {:error, :swarm_not_found}
      assert Native.export_item("swarm-ffffffff-1.agent-1") == {:error, :agent_not_found}
      assert Native.export_item("swarm-ffffffff-1.task-1") == {:error, :task_not_found}
      assert Native.export_item("swarm-ffffffff-1.disc-1") == {:error, :not_found}
      assert Native.swarm_export("swarm-ffffffff-1") == {:error, :swarm_not_found}

      assert Native.memory_export("swarm-ffffffff-1", "default", "k") ==
               {:error, :swarm_not_found}
    end
  end
end
