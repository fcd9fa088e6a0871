# Cluster benchmark on loopback peer nodes (OTP :peer), run with
#   MIX_ENV=test mix run bench/cluster.exs      (or `make bench-cluster`)
# It needs the test support modules (peer cluster, load helpers), hence the
# test environment. Prints a table and one JSON line per measurement.
#
#   * a call made on a non-home node vs the same call on the home node
#     (swarm_status, p50/p99, and their ratio)
#   * failover: from the home being declared down on its backup to the swarm
#     answering from the backup (the `took_ms` of the :failover event), p50
#     over several kills, with loopback failure detection (a killed VM's
#     sockets close at once, so nodedown is immediate)
#   * knowledge convergence (a write until visible on all 5 nodes) is
#     measured by bench/knowledge.exs: `mix run --no-start bench/knowledge.exs`
Code.require_file("percentile.exs", __DIR__)
alias SwarmService.Test.{ClusterLoad, PeerCluster}
alias SwarmService.RuvSwarm

defmodule ClusterBench do
  def row(name, sorted, unit) do
    IO.puts(
      String.pad_trailing(name, 44) <>
        "p50 #{Bench.Percentile.of(sorted, 0.5)} #{unit}   p99 #{Bench.Percentile.of(sorted, 0.99)} #{unit}   n=#{length(sorted)}"
    )

    IO.puts(
      :jiffy.encode(%{
        bench: name,
        unit: unit,
        p50: Bench.Percentile.of(sorted, 0.5),
        p99: Bench.Percentile.of(sorted, 0.99),
        n: length(sorted)
      })
    )
  end
end

ExUnit.start(autorun: false)
Logger.configure(level: :error)
rpc = &PeerCluster.rpc/4

# ---- cross-node calls -------------------------------------------------------
[a, b, c] = PeerCluster.start(3, members: :all, cleanup: false)
{:ok, swarm} = rpc.(a, RuvSwarm, :spawn_swarm, [%{agents: 10}])
_warm = rpc.(b, ClusterLoad, :time_status_calls, [swarm, 2_000])
local = rpc.(a, ClusterLoad, :time_status_calls, [swarm, 20_000])
remote = rpc.(b, ClusterLoad, :time_status_calls, [swarm, 20_000])
ClusterBench.row("swarm_status on the home node", local, "us")
ClusterBench.row("swarm_status on another node", remote, "us")

IO.puts(
  "cross-node / home ratio at p50: #{Float.round(Bench.Percentile.of(remote, 0.5) / max(Bench.Percentile.of(local, 0.5), 1), 1)}x"
)

PeerCluster.stop([a, b, c])

# ---- failover --------------------------------------------------------------------
nodes = PeerCluster.start(3, members: :all, cleanup: false)

took =
  for round <- 1..5 do
    live = nodes
    home = Enum.at(live, rem(round, 3))
    {:ok, s} = rpc.(home, RuvSwarm, :spawn_swarm, [%{agents: 5}])
    for i <- 1..200, do: {:ok, _} = rpc.(home, RuvSwarm, :memory_store, [s, "k#{i}", i])
    {:ok, status} = rpc.(home, RuvSwarm, :cluster_status, [])
    %{backup: backup} = Enum.find(status.swarms, &(&1.id == s))
    [watcher_node] = live -- [home, backup]
    _ = rpc.(watcher_node, ClusterLoad, :watch_completions, [s, self()])
    PeerCluster.kill(home)

    ms =
      receive do
        {:failover, %{took_ms: ms}} -> ms
      after
        10_000 -> raise "no failover in round #{round}"
      end

    PeerCluster.restart(home)
    ms
  end

ClusterBench.row("failover after the home is declared down", Enum.sort(took), "ms")
PeerCluster.stop(nodes)
