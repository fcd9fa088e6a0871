defmodule SwarmService.UsageTest do
  # What work cost, as executors report it: kept per attempt, summed per
  # agent and per swarm, resumable sessions, progress messages, and the
  # cost budget that stops dispatch.
  use ExUnit.Case, async: false

  import SwarmService.Test.Eventually

  alias SwarmService.{Executor, Native, Raft, RuvSwarm}

  defmodule Costly do
    @moduledoc false
    # Each unit costs $0.006 and opens a session named after its task; the
    # result says which session the unit was told to resume.
    @behaviour SwarmService.Executor
    def run(task, ctx) do
      {:ok, %{input: task.input, resumed: ctx.session_id},
       %{
         usage: %{
           input_tokens: 100,
           output_tokens: 20,
           cache_read_tokens: 5,
           cache_creation_tokens: 7,
           cost_usd: 0.006,
           turns: 3,
           duration_ms: 40,
           session_id: "sess-" <> task.task_id,
           # Keys the engine does not know are ignored.
           model: "some-model"
         }
       }}
    end
  end

  defmodule CostlyFailure do
    @moduledoc false
    @behaviour SwarmService.Executor
    def run(_task, _ctx), do: {:error, "the call failed", %{usage: %{cost_usd: 0.001, turns: 1}}}
  end

  defmodule Talker do
    @moduledoc false
    # Reports what it does, then waits to be told to finish.
    @behaviour SwarmService.Executor
    def run(%{input: parent}, ctx) do
      :ok = Executor.progress(ctx, nil, "thinking")
      :ok = Executor.progress(ctx, 0.5, "tool: Read")
      :ok = Executor.progress(ctx, nil, String.duplicate("é", 800))
      :ok = Executor.progress(ctx, 0.75)
      send(parent, {:talked, self()})

      receive do
        :finish -> {:ok, :done}
      end
    end
  end

  defp swarm(opts) do
    {:ok, id} = RuvSwarm.spawn_swarm(Keyword.merge([storage: :memory], opts))
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  test "usage of a unit is on its attempt, summed on its agent and swarm; the next unit sees the session" do
    s = swarm(agents: 1, executor: {:module, Costly})
    {:ok, t1} = RuvSwarm.orchestrate(s, %{input: "one"})
    assert {:ok, %{input: "one", resumed: nil}} = RuvSwarm.await_task(t1)
    {:ok, t2} = RuvSwarm.orchestrate(s, %{input: "two"})
    session = "sess-" <> t1
    assert {:ok, %{input: "two", resumed: ^session}} = RuvSwarm.await_task(t2)

    {:ok, %{units: [unit]}} = RuvSwarm.task_results(t1)
    assert [%{outcome: :completed, usage: usage, agent_id: agent}] = unit.history

    assert usage == %{
             input_tokens: 100,
             output_tokens: 20,
             cache_read_tokens: 5,
             cache_creation_tokens: 7,
             cost_usd: 0.006,
             turns: 3,
             duration_ms: 40,
             session_id: session
           }

    totals = %{
      input_tokens: 200,
      output_tokens: 40,
      cache_read_tokens: 10,
      cache_creation_tokens: 14,
      cost_usd: 0.012,
      turns: 6
    }

    {:ok, metrics} = RuvSwarm.agent_metrics(agent)
    assert metrics.usage == totals
    assert metrics.session_id == "sess-" <> t2

    {:ok, status} = RuvSwarm.swarm_status(s)
    assert status.usage == totals
    assert status.budget == %{max_cost_usd: nil, spent_usd: 0.012, exhausted: false}
    assert RuvSwarm.totals().usage.cost_usd >= 0.012
  end

  test "a failure's usage is booked too" do
    s = swarm(agents: 1, executor: {:module, CostlyFailure})
    {:ok, t} = RuvSwarm.orchestrate(s, %{input: "x", retries: 2, backoff_ms: 0})
    assert {:error, {:failed, _}} = RuvSwarm.await_task(t)
    {:ok, %{units: [unit]}} = RuvSwarm.task_results(t)
    assert [%{usage: %{cost_usd: 0.001}}, %{usage: %{cost_usd: 0.001, turns: 1}}] = unit.history
    {:ok, %{usage: %{cost_usd: 0.002, turns: 2}}} = RuvSwarm.swarm_status(s)
  end

  test "an external agent reports usage with complete_task/4; bad usage is refused with a reason" do
    s = swarm([])
    {:ok, a} = RuvSwarm.spawn_agent(s, executor: :external)
    {:ok, t} = RuvSwarm.orchestrate(s, "by hand")
    {:ok, w} = RuvSwarm.claim_task(a)

    assert {:error, {:invalid_argument, "usage cost_usd must be a number" <> _}} =
             RuvSwarm.complete_task(w.work_id, a, "r", usage: %{cost_usd: -1})

    assert {:error, {:invalid_argument, "usage input_tokens must be an integer" <> _}} =
             RuvSwarm.complete_task(w.work_id, a, "r", usage: %{input_tokens: 1.5})

    assert :ok = RuvSwarm.complete_task(w.work_id, a, "r", usage: %{cost_usd: 0.25, turns: 1})
    {:ok, %{units: [%{history: [%{usage: %{cost_usd: 0.25}}]}]}} = RuvSwarm.task_results(t)
    {:ok, %{usage: %{cost_usd: 0.25, turns: 1}}} = RuvSwarm.agent_metrics(a)
  end

  test "progress/3 messages reach subscribers; a nil fraction keeps the last one" do
    s = swarm(agents: 1, executor: {:module, Talker})
    :ok = RuvSwarm.subscribe(s)
    {:ok, t} = RuvSwarm.orchestrate(s, %{input: self()})
    assert_receive {:talked, worker}, 5_000

    progress =
      for _ <- 1..4 do
        assert_receive {:swarm_event, ^s, %{type: :task_progress, task_id: ^t} = e}, 5_000
        {e.progress, e.message}
      end

    assert [{nil, "thinking"}, {0.5, "tool: Read"}, {0.5, long}, {0.75, nil}] = progress
    # Cut to 1,000 bytes, whole characters only.
    assert byte_size(long) == 1_000 and String.valid?(long)
    send(worker, :finish)
    assert {:ok, :done} = RuvSwarm.await_task(t)

    ctx = %{work_id: "swarm-x.task-1/0/1", agent_id: "a"}
    assert {:error, {:invalid_argument, _}} = Executor.progress(ctx, "half", nil)
  end

  test "a spent budget stops dispatch and says why; raising it resumes" do
    s = swarm(agents: 1, executor: {:module, Costly}, max_cost_usd: 0.01)
    tasks = for i <- 1..4, do: elem(RuvSwarm.orchestrate(s, %{input: i}), 1)
    [t1, t2, t3, t4] = tasks
    assert {:ok, _} = RuvSwarm.await_task(t1)
    assert {:ok, _} = RuvSwarm.await_task(t2)

    # The second unit's cost spent the budget; nothing was dispatched after it.
    {:ok, status} =
      eventually(fn ->
        with {:ok, %{budget: %{exhausted: true}}} = st <- RuvSwarm.swarm_status(s), do: st
      end)

    assert status.budget == %{max_cost_usd: 0.01, spent_usd: 0.012, exhausted: true}
    assert status.counters.units_dispatched == 2

    reason = "the swarm's cost budget of $0.01 is spent (spent $0.012)"
    assert {:ok, %{status: :pending, waiting_reason: ^reason}} = RuvSwarm.task_status(t3)
    assert {:ok, %{status: :pending, waiting_reason: ^reason}} = RuvSwarm.task_status(t4)
    assert {:ok, %{waiting_reason: nil}} = RuvSwarm.task_status(t1)
    assert {:error, :timeout} = RuvSwarm.await_task(t3, 50)

    assert {:error, {:invalid_argument, "max_cost_usd must be a number" <> _}} =
             RuvSwarm.set_budget(s, -1)

    :ok = RuvSwarm.set_budget(s, 1)
    assert {:ok, _} = RuvSwarm.await_task(t3)
    assert {:ok, _} = RuvSwarm.await_task(t4)
    {:ok, %{budget: budget}} = RuvSwarm.swarm_status(s)
    assert budget.max_cost_usd == 1.0 and not budget.exhausted
  end

  test "a budget is validated where it enters" do
    assert {:error, {:invalid_argument, "max_cost_usd must be" <> _}} =
             RuvSwarm.spawn_swarm(max_cost_usd: "lots", storage: :memory)
  end

  test "export and import keep totals, budget and the agent's session" do
    s = swarm([])
    {:ok, a} = RuvSwarm.spawn_agent(s, executor: :external)
    :ok = RuvSwarm.set_budget(s, 0.5)
    {:ok, _} = RuvSwarm.orchestrate(s, "x")
    {:ok, w} = RuvSwarm.claim_task(a)
    :ok = RuvSwarm.complete_task(w.work_id, a, 1, usage: %{cost_usd: 0.2, session_id: "s1"})
    {:ok, before} = RuvSwarm.swarm_status(s)
    {:ok, snap} = Native.swarm_export(s)
    assert snap.max_cost_micros == 500_000 and snap.usage.cost_micros == 200_000
    :ok = Native.swarm_destroy(s)
    {:ok, ^s} = Native.swarm_import(snap)
    {:ok, again} = Native.swarm_status(s)
    assert again.usage == before.usage and again.budget == before.budget
    {:ok, %{session_id: "s1", usage: %{cost_usd: 0.2}}} = Native.agent_get(a)
  end

  describe "a durable swarm" do
    test "keeps usage, sessions and its budget across a restart of its Raft server" do
      {:ok, s} =
        RuvSwarm.spawn_swarm(
          storage: :disk,
          agents: 1,
          executor: {:module, Costly},
          max_cost_usd: 0.01
        )

      on_exit(fn -> RuvSwarm.destroy_swarm(s) end)
      tasks = for i <- 1..3, do: elem(RuvSwarm.orchestrate(s, %{input: i}), 1)
      for t <- Enum.take(tasks, 2), do: assert({:ok, _} = RuvSwarm.await_task(t))

      {:ok, before} =
        eventually(fn ->
          with {:ok, %{budget: %{exhausted: true}}} = st <- RuvSwarm.swarm_status(s), do: st
        end)

      {:ok, [agent]} = RuvSwarm.list_agents(s)
      {:ok, results} = RuvSwarm.task_results(hd(tasks))

      {name, _} = Raft.server(s)
      old = Process.whereis(name)
      Process.exit(old, :kill)
      eventually(fn -> is_pid(Process.whereis(name)) and Process.whereis(name) != old end)
      assert :ok = Raft.command(Raft.server(s), :noop)

      {:ok, again} = RuvSwarm.swarm_status(s)
      assert again.usage == before.usage
      assert again.budget == %{max_cost_usd: 0.01, spent_usd: 0.012, exhausted: true}
      {:ok, agent_again} = RuvSwarm.agent_metrics(agent.id)
      assert agent_again.usage == agent.usage and agent_again.session_id == agent.session_id
      {:ok, results_again} = RuvSwarm.task_results(hd(tasks))
      assert hd(hd(results_again.units).history).usage == hd(hd(results.units).history).usage

      assert {:ok, %{waiting_reason: "the swarm's cost budget" <> _}} =
               RuvSwarm.task_status(List.last(tasks))

      # The budget set after the restart goes through the log too.
      :ok = RuvSwarm.set_budget(s, nil)
      assert {:ok, _} = RuvSwarm.await_task(List.last(tasks), 10_000)
    end
  end
end
