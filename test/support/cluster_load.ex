defmodule SwarmService.Test.ClusterLoad do
  @moduledoc false
  # Load that runs on peer nodes during cluster tests and reports to the
  # test process what the cluster acknowledged and what it reported done.
  alias SwarmService.RuvSwarm

  @doc """
  Submits a task and writes a memory entry, then pauses `pause_ms`, until
  told `:stop`. Sends `{:acked_task, task_id}` and `{:acked_memory, key, n}`
  for each acknowledged call to `collector`; failed calls are not
  acknowledged and not reported.
  """
  def start(swarm_id, collector, tag, pause_ms \\ 2) do
    spawn(fn -> loop(swarm_id, collector, tag, pause_ms, 0) end)
  end

  defp loop(swarm_id, collector, tag, pause_ms, n) do
    receive do
      :stop -> send(collector, {:load_stopped, tag, n})
    after
      pause_ms ->
        key = "#{tag}-#{n}"

        with {:ok, task_id} <- RuvSwarm.orchestrate(swarm_id, %{input: key}),
             do: send(collector, {:acked_task, task_id})

        with {:ok, _version} <- RuvSwarm.memory_store(swarm_id, key, n),
             do: send(collector, {:acked_memory, key, n})

        loop(swarm_id, collector, tag, pause_ms, n + 1)
    end
  end

  @doc """
  Subscribes (from this node) to the swarm's events and forwards
  `{:completed, self(), task_id}` for each task_completed event and
  `{:failover, event}` for failovers to `collector`.
  """
  def watch_completions(swarm_id, collector) do
    parent = self()

    pid =
      spawn(fn ->
        :ok = RuvSwarm.subscribe(swarm_id)
        send(parent, :subscribed)
        forward(collector)
      end)

    receive do
      :subscribed -> pid
    after
      5_000 -> raise "subscription timed out"
    end
  end

  @doc "Times `n` calls of `swarm_status(swarm_id)` made on this node; sorted µs."
  def time_status_calls(swarm_id, n) do
    for _ <- 1..n do
      {us, {:ok, _}} = :timer.tc(RuvSwarm, :swarm_status, [swarm_id])
      us
    end
    |> Enum.sort()
  end

  @doc "Times `n` `memory_store` calls made on this node, one after another; sorted µs."
  def time_writes(swarm_id, n) do
    value = String.duplicate("x", 100)

    for i <- 1..n do
      {us, {:ok, _}} = :timer.tc(RuvSwarm, :memory_store, [swarm_id, "w#{i}", value])
      us
    end
    |> Enum.sort()
  end

  @doc """
  Trivial tasks/s through the swarm from this node: `submitters`
  processes each keep `window` tasks in flight until `total` are done.
  """
  def tasks_per_second(swarm_id, total, submitters, window) do
    per = div(total, submitters)
    t0 = System.monotonic_time(:microsecond)

    1..submitters
    |> Enum.map(fn _ -> Task.async(fn -> submit_loop(swarm_id, per, window, 0) end) end)
    |> Enum.each(&Task.await(&1, :infinity))

    round(per * submitters / ((System.monotonic_time(:microsecond) - t0) / 1_000_000))
  end

  defp submit_loop(_s, 0, _window, 0), do: :ok

  defp submit_loop(s, left, window, open) when left > 0 and open < window do
    {:ok, _} = RuvSwarm.orchestrate(s, %{description: "t", input: 1}, notify: self())
    submit_loop(s, left - 1, window, open + 1)
  end

  defp submit_loop(s, left, window, open) do
    receive do
      {:swarm_task_done, _, {:ok, _}} -> submit_loop(s, left, window, open - 1)
    end
  end

  defp forward(collector) do
    receive do
      {:swarm_event, _, %{type: :task_completed, task_id: id}} ->
        send(collector, {:completed, self(), id})

      {:swarm_event, _, %{type: :failover} = event} ->
        send(collector, {:failover, event})

      _ ->
        :ok
    end

    forward(collector)
  end
end
