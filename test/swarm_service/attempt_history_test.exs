defmodule SwarmService.AttemptHistoryTest do
  use ExUnit.Case, async: true

  alias SwarmService.RuvSwarm

  defmodule Flaky do
    @moduledoc false
    # Fails a unit's first attempt, succeeds on the next.
    @behaviour SwarmService.Executor
    def run(%{attempt: 1}, _ctx), do: {:error, "flaky: first try"}
    def run(%{input: input}, _ctx), do: {:ok, {:done, input}}
  end

  test "a failed attempt shows in task_results with its reason and agent, and in agent_metrics" do
    {:ok, s} = RuvSwarm.spawn_swarm(agents: 2, executor: {:module, Flaky})
    on_exit(fn -> RuvSwarm.destroy_swarm(s) end)

    {:ok, t} = RuvSwarm.orchestrate(s, %{input: "job", retries: 3, backoff_ms: 1})
    assert {:ok, {:done, "job"}} = RuvSwarm.await_task(t, 5_000)

    {:ok, %{units: [unit]}} = RuvSwarm.task_results(t)
    assert [first, second] = unit.history
    assert %{attempt: 1, outcome: :failed, agent_id: failed_on} = first
    assert first.error =~ "flaky: first try"
    assert is_integer(first.duration_ms) and first.duration_ms >= 0
    assert %{attempt: 2, outcome: :completed, error: nil} = second
    assert second.agent_id != failed_on

    {:ok, agent} = RuvSwarm.agent_metrics(failed_on)
    assert agent.metrics.failed == 1
    assert agent.metrics.last_error =~ "flaky: first try"

    {:ok, other} = RuvSwarm.agent_metrics(second.agent_id)
    assert other.metrics.failed == 0 and other.metrics.last_error == nil
  end

  test "a task that never ran has an empty history" do
    {:ok, s} = RuvSwarm.spawn_swarm(agents: 0)
    on_exit(fn -> RuvSwarm.destroy_swarm(s) end)
    {:ok, t} = RuvSwarm.orchestrate(s, "nobody runs this")
    assert {:ok, %{units: [%{history: []}]}} = RuvSwarm.task_results(t)
  end
end
