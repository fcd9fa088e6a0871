defmodule SwarmService.IdsTest do
  # Ids are parsed in one place, the engine (parse_id/1); the cluster code
  # (Locator, Commands) reads them through SwarmService.Ids.
  use ExUnit.Case, async: true

  alias SwarmService.{Ids, Native, RuvSwarm}
  alias SwarmService.Test.Executors

  test "every kind of id the engine makes parses to its swarm, kind and numbers" do
    {:ok, s} = RuvSwarm.spawn_swarm(agents: 1, executor: {:module, Executors.Echo})
    on_exit(fn -> RuvSwarm.destroy_swarm(s) end)
    {:ok, [agent]} = RuvSwarm.list_agents(s)
    {:ok, t} = RuvSwarm.orchestrate(s, %{input: 1})
    {:ok, _} = RuvSwarm.await_task(t, 5_000)
    {:ok, d} = RuvSwarm.share_discovery(s, type: "x", content: 1)

    assert {:ok, %{kind: :swarm, swarm_id: ^s, seq: nil}} = Ids.parse(s)
    assert {:ok, %{kind: :agent, swarm_id: ^s, seq: 1}} = Ids.parse(agent.id)
    assert {:ok, %{kind: :task, swarm_id: ^s, seq: 1, unit: nil}} = Ids.parse(t)
    assert {:ok, %{kind: :discovery, swarm_id: ^s, seq: 1}} = Ids.parse(d)

    assert {:ok, %{kind: :work, swarm_id: ^s, seq: 1, task_id: ^t, unit: 2, attempt: 3}} =
             Ids.parse("#{t}/2/3")

    for id <- [s, agent.id, t, d, "#{t}/0/1"], do: assert(Ids.swarm_of(id) == s)
  end

  test "anything else is refused, never crashes, and has no swarm" do
    bad = [
      "",
      "nonsense",
      "swarm-",
      "swarm-zz-1",
      "swarm-1f-1.task-",
      "swarm-1f-1.task-+1",
      "swarm-1f-1.task-1/x/1",
      "swarm-1f-1.task-1/1",
      "swarm-1f-1.agent-1/0/1",
      "x.task-1",
      "swarm-1f-1.task-99999999999999999999999",
      String.duplicate("a", 100_000),
      <<0xFF, 0xFE>>
    ]

    for id <- bad do
      assert {:error, {:invalid_argument, _}} = Native.parse_id(id), inspect(id)
      assert Ids.swarm_of(id) == nil
    end

    for term <- [nil, 1, :atom, {"swarm-1f-1"}, ["swarm-1f-1"]] do
      assert {:error, {:invalid_argument, _}} = Native.parse_id(term)
      assert Ids.swarm_of(term) == nil
    end
  end
end
