defmodule SwarmService.Cluster.ExecutorPlacementTest do
  # An agent placed on a node that cannot load its executor module is
  # refused; a unit that fails leaves a log line on the node it failed on.
  use ExUnit.Case, async: false

  alias SwarmService.RuvSwarm
  alias SwarmService.Test.{LogForwarder, PeerCluster}
  alias SwarmService.Test.Executors.Raise
  import SwarmService.Test.Eventually

  @moduletag :cluster
  @moduletag timeout: 120_000

  # A module only the test node and the node it is loaded on have (not on
  # disk, so not on any peer's code path).
  @only_here SwarmService.Test.OnlyHereExecutor

  defp rpc(node, fun, args), do: PeerCluster.rpc(node, RuvSwarm, fun, args)

  defp load_only_here(node) do
    [{@only_here, bin}] =
      Code.compile_quoted(
        quote do
          defmodule unquote(@only_here) do
            @moduledoc false
            @behaviour SwarmService.Executor
            def run(_task, _ctx), do: {:ok, :ran}
          end
        end
      )

    {:module, @only_here} =
      PeerCluster.rpc(node, :code, :load_binary, [@only_here, ~c"nofile", bin])
  end

  test "spawn_agent on a node that cannot load the executor module answers :executor_unavailable" do
    [a, b] = PeerCluster.start(2, members: :all)
    load_only_here(a)
    assert PeerCluster.rpc(b, Code, :ensure_loaded?, [@only_here]) == false

    {:ok, swarm} = rpc(a, :spawn_swarm, [%{max_agents: 5}])
    executor = {:module, @only_here, nil}

    assert rpc(a, :spawn_agent, [swarm, %{node: b, executor: executor}]) ==
             {:error, {:executor_unavailable, b, @only_here}}

    # Asked from b (the caller), which cannot load it either: refused there.
    assert {:error, {:invalid_argument, _}} =
             rpc(b, :spawn_agent, [swarm, %{node: a, executor: executor}])

    # Nothing was registered; on a, which has the module, it is accepted and runs.
    assert {:ok, %{agents: %{total: 0}}} = rpc(a, :swarm_status, [swarm])
    {:ok, _} = rpc(a, :spawn_agent, [swarm, %{node: a, executor: executor}])
    {:ok, t} = rpc(a, :orchestrate, [swarm, %{input: 1}])
    assert rpc(a, :await_task, [t, 10_000]) == {:ok, :ran}

    assert RuvSwarm.format_error({:executor_unavailable, b, @only_here}) =~ "cannot load"
  end

  test "every failed unit is logged, with agent, work id and reason, on the node it failed on" do
    [a, b] = PeerCluster.start(2, members: :all)
    :ok = PeerCluster.rpc(b, LogForwarder, :attach, [self()])
    {:ok, swarm} = rpc(a, :spawn_swarm, [%{max_agents: 5}])
    {:ok, agent} = rpc(a, :spawn_agent, [swarm, %{node: b, executor: {:module, Raise, nil}}])

    {:ok, t} = rpc(a, :orchestrate, [swarm, %{input: 1, retries: 2, backoff_ms: 1}])
    assert {:error, {:failed, _}} = rpc(a, :await_task, [t, 10_000])

    for attempt <- 1..2 do
      work_id = "#{t}/0/#{attempt}"
      assert_receive {:peer_log, ^b, :warning, line}, 5_000
      assert line =~ agent and line =~ work_id and line =~ "deliberate failure"
    end

    eventually(fn -> match?({:ok, %{status: :failed}}, rpc(a, :task_status, [t])) end)
  end
end
