# What durability costs: write latency and end-to-end trivial tasks/s for
# `storage: :memory` against `storage: :disk` on one node (each write on
# disk, fdatasync'ed, before it is acknowledged) and `storage: :disk` on 3
# peer nodes (on disk on 2 of 3), failover time over 5 leader kills,
# recovery speed of a large swarm, and disk bytes per task.
#
#     MIX_ENV=test mix run bench/durability.exs
#     QUICK=1 MIX_ENV=test mix run bench/durability.exs     # smaller sizes
#
# (The test environment provides the peer-node and load helpers.)
#
# Goals (issue 15, 2-core machine): :disk write p50 <= 0.5 ms and >= 10,000
# tasks/s; 3 nodes: write p50 <= 1.5 ms and >= 5,000 tasks/s; failover p50
# <= 500 ms; recovery >= 100,000 log entries/s.
#
# Recovery: a swarm with N finished tasks and N memory entries has its Raft
# server killed; the time until it answers again is the load of its latest
# snapshot and the replay of the log after it into a fresh engine. (The
# engine keeps the last 10,000 finished tasks; the snapshot holds those.)

Code.require_file("percentile.exs", __DIR__)
Code.require_file("rss.exs", __DIR__)

defmodule Bench.Durability.Echo do
  @behaviour SwarmService.Executor
  def run(%{input: input}, _ctx), do: {:ok, input}
end

defmodule Bench.Durability do
  alias SwarmService.{Raft, RuvSwarm}

  def quick?, do: System.get_env("QUICK") == "1"

  def write_latency(storage, n) do
    {:ok, s} = RuvSwarm.spawn_swarm(name: "lat-#{storage}", storage: storage)
    value = String.duplicate("x", 100)
    for i <- 1..200, do: {:ok, _} = RuvSwarm.memory_store(s, "warm#{i}", value)

    samples =
      for i <- 1..n do
        t0 = System.monotonic_time(:nanosecond)
        {:ok, _} = RuvSwarm.memory_store(s, "k#{i}", value)
        System.monotonic_time(:nanosecond) - t0
      end
      |> Enum.sort()

    :ok = RuvSwarm.destroy_swarm(s)
    us = fn p -> Float.round(Bench.Percentile.of(samples, p) / 1000, 1) end
    %{p50_us: us.(0.5), p99_us: us.(0.99)}
  end

  # `submitters` processes each keep `window` tasks in flight.
  def tasks_per_second(storage, total, agents, submitters, window) do
    {:ok, s} =
      RuvSwarm.spawn_swarm(
        name: "tput-#{storage}",
        storage: storage,
        agents: agents,
        max_agents: agents,
        executor: {:module, Bench.Durability.Echo, nil}
      )

    tps = SwarmService.Test.ClusterLoad.tasks_per_second(s, total, submitters, window)
    :ok = RuvSwarm.destroy_swarm(s)
    tps
  end

  def dir_bytes(dir) do
    {out, 0} = System.cmd("du", ["-sb", dir])
    out |> String.split() |> hd() |> String.to_integer()
  end

  def recovery(n) do
    {:ok, s} =
      RuvSwarm.spawn_swarm(
        name: "recovery",
        agents: 4,
        max_agents: 4,
        executor: {:module, Bench.Durability.Echo, nil}
      )

    before = dir_bytes(Raft.data_dir())
    fill_tasks(s, n)
    task_bytes = dir_bytes(Raft.data_dir()) - before
    value = String.duplicate("v", 64)

    1..n
    |> Task.async_stream(fn i -> {:ok, _} = RuvSwarm.memory_store(s, "m#{i}", value) end,
      max_concurrency: 32,
      ordered: false
    )
    |> Stream.run()

    server = {name, _} = Raft.server(s)
    overview = overview(server)
    old = Process.whereis(name)
    t0 = System.monotonic_time(:microsecond)
    Process.exit(old, :kill)
    wait_restarted(name, old)
    # As the node's boot does (SwarmService.Raft): a lone member elects
    # itself at once instead of after an election timeout.
    :ra.trigger_election(server)
    :ok = Raft.command(server, :noop)
    ms = (System.monotonic_time(:microsecond) - t0) / 1000
    {:ok, status} = RuvSwarm.swarm_status(s)
    after_overview = overview(server)
    :ok = RuvSwarm.destroy_swarm(s)

    replayed = log_entries_after_snapshot(overview)

    %{
      tasks: n,
      memory_entries: n,
      recovered_completed: status.tasks.completed,
      recovery_ms: Float.round(ms, 1),
      log_entries_replayed: replayed,
      entries_per_s: if(ms > 0, do: round(replayed / (ms / 1000)), else: nil),
      snapshot_index: get_in(after_overview, [:log, :snapshot_index]),
      disk_bytes_per_task: Float.round(task_bytes / n, 1)
    }
  end

  defp overview(server) do
    {:ok, state, _} = :ra_server_proc.local_state_query(server, :all, 5_000)
    :ra_server.overview(state)
  end

  defp log_entries_after_snapshot(overview) do
    last = overview[:last_applied] || overview[:commit_index] || 0
    snap = get_in(overview, [:log, :snapshot_index]) || 0
    last - snap
  end

  defp fill_tasks(s, n), do: SwarmService.Test.ClusterLoad.tasks_per_second(s, n, 8, 128)

  defp wait_restarted(name, old) do
    case Process.whereis(name) do
      pid when is_pid(pid) and pid != old ->
        :ok

      _ ->
        Process.sleep(1)
        wait_restarted(name, old)
    end
  end
end

quick = Bench.Durability.quick?()
writes = if quick, do: 1_000, else: 5_000
tasks = if quick, do: 10_000, else: 50_000
recovery_n = if quick, do: 10_000, else: 100_000

rows =
  for storage <- [:memory, :disk] do
    lat = Bench.Durability.write_latency(storage, writes)
    tps = Bench.Durability.tasks_per_second(storage, tasks, 32, 8, 64)
    row = Map.merge(lat, %{storage: storage, tasks_per_s: tps})
    IO.puts(:jiffy.encode(%{bench: "durability_write", result: row}))
    row
  end

IO.puts("\nstorage   write p50    write p99    tasks/s (32 agents, 8x64 in flight)")

for r <- rows do
  IO.puts(
    String.pad_trailing(to_string(r.storage), 10) <>
      String.pad_trailing("#{r.p50_us} us", 13) <>
      String.pad_trailing("#{r.p99_us} us", 13) <> "#{r.tasks_per_s}"
  )
end

[mem, disk] = rows

IO.puts(
  "disk/memory: write p50 x#{Float.round(disk.p50_us / mem.p50_us, 1)}, tasks/s x#{Float.round(disk.tasks_per_s / mem.tasks_per_s, 2)}"
)

Code.ensure_loaded?(SwarmService.Test.PeerCluster) ||
  raise "run bench/durability.exs with MIX_ENV=test: it needs the peer-node helpers"

alias SwarmService.Test.{ClusterLoad, PeerCluster}
ExUnit.start(autorun: false)
Logger.configure(level: :error)
nodes = PeerCluster.start(3, members: :all, cleanup: false)
[a | _] = nodes
rpc = fn n, m, f, args -> PeerCluster.rpc(n, m, f, args, 600_000) end

{:ok, s} =
  rpc.(a, SwarmService.RuvSwarm, :spawn_swarm, [
    %{agents: 32, max_agents: 32, executor: {:module, SwarmService.Test.Executors.Echo, nil}}
  ])

{:ok, status} = rpc.(a, SwarmService.RuvSwarm, :cluster_status, [])
leader = Enum.find(status.swarms, &(&1.id == s)).leader
_warm = rpc.(leader, ClusterLoad, :time_writes, [s, 200])
lat = rpc.(leader, ClusterLoad, :time_writes, [s, writes])
tps = rpc.(leader, ClusterLoad, :tasks_per_second, [s, tasks, 8, 64])
p = fn q -> Float.round(Bench.Percentile.of(lat, q) / 1, 1) end
row = %{storage: "disk, 3 nodes", p50_us: p.(0.5), p99_us: p.(0.99), tasks_per_s: tps}
IO.puts(:jiffy.encode(%{bench: "durability_write_3_nodes", result: row}))

IO.puts(
  "disk x3   " <>
    String.pad_trailing("#{row.p50_us} us", 13) <>
    String.pad_trailing("#{row.p99_us} us", 13) <> "#{tps}   (calls made on the leader's node)"
)

# Failover: kill -9 the leader's node; time until a write made on a
# survivor succeeds again.
took =
  for _round <- 1..5 do
    {:ok, st} = rpc.(a, SwarmService.RuvSwarm, :cluster_status, [])
    victim = Enum.find(st.swarms, &(&1.id == s)).leader
    [survivor | _] = nodes -- [victim]
    t0 = System.monotonic_time(:millisecond)
    PeerCluster.kill(victim)

    Stream.repeatedly(fn ->
      rpc.(survivor, SwarmService.RuvSwarm, :memory_store, [s, "f", 1])
    end)
    |> Enum.find(&match?({:ok, _}, &1))

    ms = System.monotonic_time(:millisecond) - t0
    PeerCluster.restart(victim)
    # Back as a member before the next kill.
    Stream.repeatedly(fn -> rpc.(victim, SwarmService.Native, :memory_get, [s, "f", %{}]) end)
    |> Enum.find(&match?({:ok, _}, &1))

    ms
  end
  |> Enum.sort()

IO.puts(:jiffy.encode(%{bench: "durability_failover_ms", samples: took}))

IO.puts(
  "failover after kill -9 of the leader: p50 #{Bench.Percentile.of(took, 0.5)} ms " <>
    "(#{inspect(took)} ms over 5 kills)"
)

PeerCluster.stop(nodes)

rec = Bench.Durability.recovery(recovery_n)
IO.puts(:jiffy.encode(%{bench: "durability_recovery", result: rec}))

IO.puts(
  "\nrecovery of #{rec.tasks} finished tasks + #{rec.memory_entries} memory entries: " <>
    "#{rec.recovery_ms} ms, #{rec.log_entries_replayed} log entries replayed " <>
    "(#{rec.entries_per_s}/s), #{rec.disk_bytes_per_task} disk bytes per task"
)

IO.puts("RSS at the end: #{Float.round(Bench.Rss.mib(), 1)} MiB")
