# Memory quota benchmark: what the engine holds when clients push it.
#
#   mix run bench/quota.exs                       # 256 MiB per swarm, 512 MiB per node
#   mix run bench/quota.exs --swarm-mib 1024 --node-mib 8192
#
# Four swarms each take 1 MB string values (memory_store) until refused,
# then 1 MB pending task inputs until refused, then the node is emptied.
# Reports, per phase: writes accepted, the first refusal, the bytes of what
# was accepted, what memory_usage/0 reports as held (and its ratio to the
# bytes accepted: 1.00 means each value is held once), the Rust allocator's
# live bytes and the VM's resident memory. Prints a table and one JSON line.

{opts, _, _} =
  OptionParser.parse(System.argv(), strict: [swarm_mib: :integer, node_mib: :integer])

swarm_mib = opts[:swarm_mib] || 256
node_mib = opts[:node_mib] || 512

Code.require_file("rss.exs", __DIR__)
alias SwarmService.{Quotas, RuvSwarm}

defmodule Bench.Quota do
  # Writes with `write.(swarm, i)` round robin until every swarm refused once.
  def fill(swarms, write) do
    Enum.reduce_while(Stream.iterate(0, &(&1 + 1)), {0, nil, MapSet.new(swarms)}, fn i,
                                                                                     {n, first,
                                                                                      open} ->
      s = Enum.at(swarms, rem(i, length(swarms)))

      cond do
        MapSet.size(open) == 0 ->
          {:halt, {n, first}}

        s not in open ->
          {:cont, {n, first, open}}

        true ->
          case write.(s, i) do
            {:ok, _} -> {:cont, {n + 1, first, open}}
            {:error, reason} -> {:cont, {n, first || reason, MapSet.delete(open, s)}}
          end
      end
    end)
  end

  # Destroyed swarms are freed on a thread of their own: wait until the
  # allocator's count stops falling (at most 5 s).
  def settle(last \\ nil, tries \\ 50) do
    now = SwarmService.Native.engine_memory().allocated_bytes

    if now == last or tries == 0 do
      :ok
    else
      Process.sleep(100)
      settle(now, tries - 1)
    end
  end

  def row(phase, accepted, first, value_bytes) do
    {:ok, u} = RuvSwarm.memory_usage()

    %{
      phase: phase,
      accepted: accepted,
      refusal: first && RuvSwarm.format_error(first),
      accepted_mib: Float.round(accepted * value_bytes / 1_048_576, 1),
      held_mib: Float.round(u.held_bytes / 1_048_576, 1),
      held_ratio: if(accepted > 0, do: Float.round(u.held_bytes / (accepted * value_bytes), 3)),
      engine_mib: Float.round(u.engine_bytes / 1_048_576, 1),
      rss_mib: Float.round(Bench.Rss.mib(), 1)
    }
  end
end

:ok = Quotas.set(swarm_mib * 1_048_576, node_mib * 1_048_576)
value = :binary.copy("v", 1_000_000)
bytes = :erlang.external_size(value)

swarms =
  for i <- 1..4 do
    {:ok, s} = RuvSwarm.spawn_swarm(name: "quota-#{i}", storage: :memory)
    {:ok, _} = RuvSwarm.spawn_agent(s, executor: :external)
    s
  end

idle = Bench.Quota.row("idle", 0, nil, bytes)

{n, first} = Bench.Quota.fill(swarms, fn s, i -> RuvSwarm.memory_store(s, "k#{i}", value) end)
stored = Bench.Quota.row("memory_store 1 MB", n, first, bytes)

for s <- swarms,
    {:ok, entries} = RuvSwarm.memory_search(s, %{limit: 1_000}),
    e <- entries,
    do: :ok = RuvSwarm.memory_delete(s, e.key)

{n, first} = Bench.Quota.fill(swarms, fn s, _ -> RuvSwarm.orchestrate(s, %{input: value}) end)
pending = Bench.Quota.row("pending tasks, 1 MB input", n, first, bytes)

for s <- swarms, do: RuvSwarm.destroy_swarm(s)
:erlang.garbage_collect()
Bench.Quota.settle()
empty = Bench.Quota.row("swarms destroyed", 0, nil, bytes)
:ok = Quotas.apply_config()

rows = [idle, stored, pending, empty]
IO.puts("quotas: #{swarm_mib} MiB per swarm, #{node_mib} MiB per node, 4 swarms\n")

IO.puts(
  String.pad_trailing("phase", 28) <>
    String.pad_leading("accepted", 9) <>
    String.pad_leading("MiB in", 9) <>
    String.pad_leading("held", 9) <>
    String.pad_leading("ratio", 7) <>
    String.pad_leading("engine", 9) <> String.pad_leading("RSS", 9)
)

for r <- rows do
  IO.puts(
    String.pad_trailing(r.phase, 28) <>
      String.pad_leading("#{r.accepted}", 9) <>
      String.pad_leading("#{r.accepted_mib}", 9) <>
      String.pad_leading("#{r.held_mib}", 9) <>
      String.pad_leading("#{r.held_ratio || "-"}", 7) <>
      String.pad_leading("#{r.engine_mib}", 9) <> String.pad_leading("#{r.rss_mib}", 9)
  )

  if r.refusal, do: IO.puts("  first refusal: " <> r.refusal)
end

IO.puts(
  :jiffy.encode(%{bench: "quota", swarm_mib: swarm_mib, node_mib: node_mib, rows: rows}, [
    :use_nil
  ])
)
