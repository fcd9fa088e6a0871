# Cluster benchmark on loopback peer nodes (OTP :peer), run with
#   MIX_ENV=test mix run bench/cluster.exs      (or `make bench-cluster`)
# It needs the test support modules (peer cluster, load helpers), hence the
# test environment. Prints a table and one JSON line per measurement.
#
#   * a call made on a non-home node vs the same call on the home node
#     (swarm_status, p50/p99, and their ratio)
#   * failover after a kill -9 of a swarm's Raft leader is measured by
#     bench/durability.exs (`MIX_ENV=test mix run bench/durability.exs`)
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
nodes = PeerCluster.start(3, members: :all, cleanup: false)
{:ok, swarm} = rpc.(hd(nodes), RuvSwarm, :spawn_swarm, [%{agents: 10}])
{:ok, status} = rpc.(hd(nodes), RuvSwarm, :cluster_status, [])
a = Enum.find(status.swarms, &(&1.id == swarm)).leader
[b | _] = nodes -- [a]
_warm = rpc.(b, ClusterLoad, :time_status_calls, [swarm, 2_000])
local = rpc.(a, ClusterLoad, :time_status_calls, [swarm, 20_000])
remote = rpc.(b, ClusterLoad, :time_status_calls, [swarm, 20_000])
ClusterBench.row("swarm_status on the leader's node", local, "us")
ClusterBench.row("swarm_status on another node", remote, "us")

IO.puts(
  "cross-node / leader ratio at p50: #{Float.round(Bench.Percentile.of(remote, 0.5) / max(Bench.Percentile.of(local, 0.5), 1), 1)}x"
)

PeerCluster.stop(nodes)
