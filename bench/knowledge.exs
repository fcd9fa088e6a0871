# Replication latency of the cluster knowledge repository.
#
#   mix run --no-start bench/knowledge.exs [--nodes 5] [--writes 200] [--value-bytes 100]
#
# Starts N peer nodes (SwarmService.Test.PeerCluster, all of them configured
# members, so every put waits for a majority's acknowledgement) and writes
# one key at a time, rotating the writer. For each write it measures, on the
# shared wall clock of this host:
#   * visible on all: from just before put/2 on the writer until the last
#     node's replica holds the key (each node polls its ETS table every
#     millisecond, so add up to ~1 ms of resolution);
#   * put acknowledged: how long put/2 took on the writer.
# Prints a table and one JSON line. Goal: visible-on-all p99 <= 50 ms.

Code.require_file("../test/support/peer_cluster.ex", __DIR__)
Code.require_file("percentile.exs", __DIR__)
alias SwarmService.Test.PeerCluster

{opts, _, _} =
  OptionParser.parse(System.argv(),
    strict: [nodes: :integer, writes: :integer, value_bytes: :integer]
  )

n = opts[:nodes] || 5
writes = opts[:writes] || 200
value = :binary.copy("v", opts[:value_bytes] || 100)
warmup = 20

{:ok, _} = Application.ensure_all_started(:crypto)
Application.load(:swarm_service)

# Runs on every peer; its object code is loaded there with :code.load_binary.
{:module, watcher, watcher_bin, _} =
  defmodule Bench.KnowledgeWatcher do
    @table SwarmService.Cluster.Knowledge

    def start(bench) do
      pid = spawn(fn -> loop(bench) end)
      Process.register(pid, __MODULE__)
      :ok
    end

    # Stamps the wall clock, then writes.
    def write(key, value) do
      t0 = System.os_time(:microsecond)
      result = SwarmService.Cluster.Knowledge.put(key, value)
      {t0, System.os_time(:microsecond), result}
    end

    defp loop(bench) do
      receive do
        {:watch, key} ->
          send(bench, {:watching, node(), key})
          poll(key)
          send(bench, {:seen, node(), key, System.os_time(:microsecond)})
          loop(bench)
      end
    end

    defp poll(key) do
      if :ets.member(@table, key) do
        :ok
      else
        receive do
        after
          1 -> poll(key)
        end
      end
    end
  end

nodes = PeerCluster.start(n, members: :all, cleanup: false)

try do
  for node <- nodes do
    {:module, _} = PeerCluster.rpc(node, :code, :load_binary, [watcher, ~c"bench", watcher_bin])
    :ok = PeerCluster.rpc(node, watcher, :start, [self()])
  end

  measure = fn i ->
    key = "bench/#{i}"
    writer = Enum.at(nodes, rem(i, n))
    for node <- nodes, do: send({watcher, node}, {:watch, key})
    for node <- nodes, do: receive(do: ({:watching, ^node, ^key} -> :ok))
    {t0, t1, {:ok, _}} = PeerCluster.rpc(writer, watcher, :write, [key, value])
    seen = for node <- nodes, do: receive(do: ({:seen, ^node, ^key, t} -> t))
    {(Enum.max(seen) - t0) / 1000, (t1 - t0) / 1000}
  end

  for i <- 1..warmup, do: measure.(-i)
  samples = for i <- 1..writes, do: measure.(i)

  pct = fn list, p -> list |> Enum.sort() |> Bench.Percentile.of(p) end

  stats = fn list ->
    %{
      p50_ms: Float.round(pct.(list, 0.5), 2),
      p99_ms: Float.round(pct.(list, 0.99), 2),
      max_ms: Float.round(Enum.max(list), 2)
    }
  end

  visible = stats.(Enum.map(samples, &elem(&1, 0)))
  acked = stats.(Enum.map(samples, &elem(&1, 1)))

  IO.puts(
    "\nknowledge replication (#{n} peer nodes, #{writes} writes, #{byte_size(value)}-byte values)"
  )

  IO.puts("  metric                p50 ms    p99 ms    max ms")

  for {label, s} <- [{"visible on all nodes", visible}, {"put acknowledged", acked}] do
    IO.puts(
      "  #{String.pad_trailing(label, 20)} #{String.pad_leading("#{s.p50_ms}", 7)}   " <>
        "#{String.pad_leading("#{s.p99_ms}", 7)}   #{String.pad_leading("#{s.max_ms}", 7)}"
    )
  end

  IO.puts(
    "  goal: visible-on-all p99 <= 50 ms: #{if visible.p99_ms <= 50, do: "met", else: "MISSED"}\n"
  )

  IO.puts(
    :jiffy.encode(%{
      bench: "knowledge",
      nodes: n,
      writes: writes,
      value_bytes: byte_size(value),
      visible_on_all: visible,
      put_acknowledged: acked
    })
  )
after
  PeerCluster.stop(nodes)
end
