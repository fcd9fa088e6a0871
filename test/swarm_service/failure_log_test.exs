defmodule SwarmService.FailureLogTest do
  # A unit that fails on an agent of this node leaves a warning here naming
  # the agent, the work and the reason, whether the executor failed, raised,
  # or the attempt ran out of time.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  alias SwarmService.RuvSwarm
  alias SwarmService.Test.Executors

  defp swarm!(opts) do
    {:ok, id} = RuvSwarm.spawn_swarm(opts)
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  test "a raising executor's failed attempts are logged with agent, work id and reason" do
    s = swarm!(agents: 1, executor: {:module, Executors.Raise})
    {:ok, [agent]} = RuvSwarm.list_agents(s)

    log =
      capture_log([level: :warning], fn ->
        {:ok, t} = RuvSwarm.orchestrate(s, %{input: 1, retries: 2, backoff_ms: 1})
        assert {:error, {:failed, _}} = RuvSwarm.await_task(t, 5_000)
        send(self(), {:task, t})
      end)

    assert_received {:task, t}

    for attempt <- 1..2 do
      assert log =~
               "agent #{agent.id}: work #{t}/0/#{attempt} failed: executor raised: deliberate failure"
    end
  end

  test "an attempt that times out is logged; a long reason is cut short" do
    s = swarm!(agents: 1, executor: {:module, Executors.Sleep})
    {:ok, [agent]} = RuvSwarm.list_agents(s)

    log =
      capture_log([level: :warning], fn ->
        {:ok, t} = RuvSwarm.orchestrate(s, %{input: 5_000, timeout_ms: 50, retries: 1})
        assert {:error, {:timed_out, _}} = RuvSwarm.await_task(t, 5_000)
        # The engine sent the agent its cancel when the attempt timed out:
        # once the agent answers, it has handled it.
        {:ok, [{_, pid, _}]} = SwarmService.Native.agent_processes(s)
        :sys.get_state(pid)
        send(self(), {:task, t})
      end)

    assert_received {:task, t}

    assert log =~
             ~r/agent #{Regex.escape(agent.id)}: work #{Regex.escape(t)}\/0\/1 failed: timed out after \d+ ms/

    s2 = swarm!(agents: 1, executor: {:module, Executors.Fail})

    log =
      capture_log([level: :warning], fn ->
        {:ok, t} = RuvSwarm.orchestrate(s2, %{input: String.duplicate("é", 5_000), retries: 1})
        assert {:error, {:failed, _}} = RuvSwarm.await_task(t, 5_000)
      end)

    [line] = for l <- String.split(log, "\n"), l =~ "failed: ", do: l
    assert String.length(line) < 800
  end
end
