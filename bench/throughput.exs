# End-to-end task throughput and latency with a trivial module executor,
# and how fast command agents start.
#
#     mix run bench/throughput.exs
#     QUICK=1 mix run bench/throughput.exs
#
# Goals (issue 3, one node): >= 100,000 trivial tasks/s end to end;
# p99 submit-to-result <= 1 ms at half that rate.

alias SwarmService.RuvSwarm

defmodule Bench.Trivial do
  # Gives back its input: the submit time, so the harness needs no table of
  # tasks in flight to compute a latency.
  @behaviour SwarmService.Executor
  def run(%{input: input}, _ctx), do: {:ok, input}
end

defmodule Bench.Histogram do
  # Latencies counted in 1 µs buckets (the last one holds everything
  # slower) in a :counters array: recording allocates nothing, so the
  # harness never grows a large heap whose garbage collection would take a
  # core away from the system under test.
  @buckets 100_000

  def new, do: :counters.new(@buckets, [:write_concurrency])

  def record(h, ns), do: :counters.add(h, min(div(ns, 1000), @buckets - 1) + 1, 1)

  def count(h), do: Enum.reduce(1..@buckets, 0, &(&2 + :counters.get(h, &1)))

  @doc "Upper bounds (µs) of the latencies at the given fractions, e.g. [0.5, 0.99]."
  def percentiles(h, fractions) do
    total = count(h)
    targets = Enum.map(fractions, &max(1, ceil(&1 * total)))
    walk(h, 1, 0, targets, [])
  end

  defp walk(_h, _i, _seen, [], acc), do: Enum.reverse(acc)

  defp walk(_h, i, _seen, targets, acc) when i > @buckets,
    do: Enum.reverse(acc, Enum.map(targets, fn _ -> @buckets * 1.0 end))

  defp walk(h, i, seen, [t | rest] = targets, acc) do
    seen = seen + :counters.get(h, i)

    if seen >= t,
      do: walk_same(h, i, seen, rest, [i * 1.0 | acc]),
      else: walk(h, i + 1, seen, targets, acc)
  end

  # Several fractions may fall in one bucket.
  defp walk_same(h, i, seen, [t | rest], acc) when seen >= t,
    do: walk_same(h, i, seen, rest, [i * 1.0 | acc])

  defp walk_same(h, i, seen, targets, acc), do: walk(h, i + 1, seen, targets, acc)
end

defmodule Bench.Throughput do
  # Each submitter keeps up to `window` tasks in flight and records its own
  # submit-to-result latencies, so no single harness process sits between
  # the swarm and its callers. A latency ends when the result is in the
  # submitter's hands: the `notify` message carries the result, which is
  # the submit time the task was given as input.
  def submitter(swarm, n, window, hist), do: loop(swarm, n, window, 0, hist)

  defp loop(_swarm, 0, _window, 0, _hist), do: :ok

  defp loop(swarm, left, window, open, hist) when left > 0 and open < window do
    submit(swarm, self())
    loop(swarm, left - 1, window, open + 1, hist)
  end

  defp loop(swarm, left, window, open, hist) do
    receive do
      {:swarm_task_done, _id, {:ok, t0}} ->
        Bench.Histogram.record(hist, System.monotonic_time(:nanosecond) - t0)
        loop(swarm, left, window, open - 1, hist)
    end
  end

  defp submit(swarm, notify) do
    t0 = System.monotonic_time(:nanosecond)
    {:ok, _} = RuvSwarm.orchestrate(swarm, %{input: t0}, notify: notify)
  end

  # As fast as `submitters` processes with `window` tasks in flight each can
  # go: {tasks/s, histogram}.
  def saturate(swarm, total, submitters, window \\ 64) do
    hist = Bench.Histogram.new()
    t0 = System.monotonic_time(:nanosecond)

    1..submitters
    |> Enum.map(fn _ ->
      Task.async(fn -> submitter(swarm, div(total, submitters), window, hist) end)
    end)
    |> Enum.each(&Task.await(&1, :infinity))

    seconds = (System.monotonic_time(:nanosecond) - t0) / 1.0e9
    {Bench.Histogram.count(hist) / seconds, hist}
  end

  # Open loop at a fixed rate, in 1 ms batches. A separate collector takes
  # results the moment they arrive, so the pacer's sleeps never add to the
  # measured latency.
  def paced(swarm, rate, seconds) do
    per_ms = max(1, div(rate, 1000))
    batches = trunc(seconds * 1000)
    parent = self()
    hist = Bench.Histogram.new()
    collector = spawn_link(fn -> collect(parent, batches * per_ms, hist) end)
    start = System.monotonic_time(:millisecond)

    for batch <- 0..(batches - 1) do
      wait = start + batch - System.monotonic_time(:millisecond)
      if wait > 0, do: Process.sleep(wait)
      for _ <- 1..per_ms, do: submit(swarm, collector)
    end

    receive do
      :collected -> hist
    end
  end

  defp collect(parent, 0, _hist), do: send(parent, :collected)

  defp collect(parent, left, hist) do
    receive do
      {:swarm_task_done, _id, {:ok, t0}} ->
        Bench.Histogram.record(hist, System.monotonic_time(:nanosecond) - t0)
        collect(parent, left - 1, hist)
    end
  end
end

quick = System.get_env("QUICK") in ["1", "true"]
total = if quick, do: 20_000, else: 100_000
submitters = System.schedulers_online() * 2

IO.puts("\n== end-to-end trivial tasks (module executor) ==")

IO.puts(
  "agents     tasks/s    p50 us    p99 us   (saturated, #{submitters} callers x 64 in flight)"
)

rows =
  for agents <- [1, 100, 10_000] do
    {:ok, s} =
      RuvSwarm.spawn_swarm(
        agents: agents,
        max_agents: agents,
        executor: {:module, Bench.Trivial},
        storage: :memory
      )

    # Warm up: every agent gets its worker process before measuring.
    Bench.Throughput.saturate(s, max(2_000, 2 * agents), submitters)
    {rate, hist} = Bench.Throughput.saturate(s, total, submitters)
    [p50, p99] = Bench.Histogram.percentiles(hist, [0.5, 0.99])

    IO.puts(
      String.pad_leading("#{agents}", 6) <>
        String.pad_leading("#{round(rate)}", 12) <>
        String.pad_leading(:erlang.float_to_binary(p50, decimals: 1), 10) <>
        String.pad_leading(:erlang.float_to_binary(p99, decimals: 1), 10)
    )

    RuvSwarm.destroy_swarm(s)
    %{bench: "throughput", agents: agents, tasks_per_s: rate, p50_us: p50, p99_us: p99}
  end

best = Enum.max_by(rows, & &1.tasks_per_s)
half = trunc(best.tasks_per_s / 2)

# The pacer submits in 1 ms bursts; one agent (one slot) must run a burst's
# tasks one after another, so its latency shows the burst, not the engine.
# The goal is judged at 100 agents; 1 agent is printed for comparison.
IO.puts("\n== submit-to-result latency at half the best rate (#{half} tasks/s) ==")
IO.puts("agents    p50 us    p90 us    p99 us  p99.9 us")

paced_rows =
  for agents <- [1, 100] do
    {:ok, s} =
      RuvSwarm.spawn_swarm(
        agents: agents,
        max_agents: agents,
        executor: {:module, Bench.Trivial},
        storage: :memory
      )

    Bench.Throughput.saturate(s, 2_000, submitters)
    hist = Bench.Throughput.paced(s, half, if(quick, do: 1, else: 3))
    RuvSwarm.destroy_swarm(s)
    [p50, p90, p99, p999] = Bench.Histogram.percentiles(hist, [0.5, 0.9, 0.99, 0.999])

    IO.puts(
      String.pad_leading("#{agents}", 6) <>
        Enum.map_join(
          [p50, p90, p99, p999],
          &String.pad_leading(:erlang.float_to_binary(&1, decimals: 1), 10)
        )
    )

    %{
      bench: "throughput",
      agents: agents,
      paced_rate: half,
      p50_us: p50,
      p99_us: p99,
      p999_us: p999
    }
  end

paced = Enum.find(paced_rows, &(&1.agents == 100))

IO.puts("\n== command agents ==")
n = if quick, do: 500, else: 2_000
{:ok, s} = RuvSwarm.spawn_swarm(max_agents: n, storage: :memory)
t0 = System.monotonic_time(:microsecond)
for _ <- 1..n, do: {:ok, _} = RuvSwarm.spawn_agent(s, executor: {:command, ["cat"], []})
started = n / ((System.monotonic_time(:microsecond) - t0) / 1.0e6)
IO.puts("command agents started: #{round(started)}/s")
cmd_tasks = if quick, do: 200, else: 1_000
t0 = System.monotonic_time(:microsecond)

ids = for i <- 1..cmd_tasks, do: elem(RuvSwarm.orchestrate(s, "line #{i}"), 1)
for id <- ids, do: {:ok, _} = RuvSwarm.await_task(id, 30_000)
cmd_rate = cmd_tasks / ((System.monotonic_time(:microsecond) - t0) / 1.0e6)
IO.puts("command tasks (an OS process each, `cat`): #{round(cmd_rate)}/s")
RuvSwarm.destroy_swarm(s)

summary = %{
  bench: "throughput",
  summary: true,
  best_tasks_per_s: best.tasks_per_s,
  paced_p99_us: paced.p99_us,
  command_agents_started_per_s: started,
  command_tasks_per_s: cmd_rate,
  goals_met: best.tasks_per_s >= 100_000 and paced.p99_us <= 1_000
}

IO.puts("")
for row <- rows ++ paced_rows ++ [summary], do: IO.puts(:jiffy.encode(row))
