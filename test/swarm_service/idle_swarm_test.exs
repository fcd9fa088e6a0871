defmodule SwarmService.IdleSwarmTest do
  # A swarm with nothing due is never ticked; deadlines made later still
  # fire on time. Not async: traces calls of every process.
  use ExUnit.Case, async: false

  alias SwarmService.RuvSwarm

  test "an idle swarm gets no ticks, and a deadline made after a long idle fires on time" do
    {:ok, swarm} =
      RuvSwarm.spawn_swarm(agents: 1, executor: {:command, ["sleep", "5"], timeout_ms: 300})

    # Let its first tick (at start) pass.
    Process.sleep(300)
    :erlang.trace(:all, true, [:call, {:tracer, self()}])
    :erlang.trace_pattern({SwarmService.Swarm.Commands, :tick, 1}, true, [:local])

    try do
      refute_receive {:trace, _, :call, {SwarmService.Swarm.Commands, :tick, [^swarm]}}, 2_500
    after
      :erlang.trace_pattern({SwarmService.Swarm.Commands, :tick, 1}, false, [:local])
      :erlang.trace(:all, false, [:call])
    end

    t0 = System.monotonic_time(:millisecond)
    {:ok, task} = RuvSwarm.orchestrate(swarm, %{input: "", retries: 1})
    assert {:error, {:timed_out, _}} = RuvSwarm.await_task(task, 5_000)
    assert System.monotonic_time(:millisecond) - t0 < 3_000
    RuvSwarm.destroy_swarm(swarm)
  end
end
