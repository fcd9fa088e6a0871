# A swarm of module agents counting words: one unit per chunk in parallel,
# then a merge step that sees every count as a dependency result.
#
#     mix run examples/word_count.exs README.md
defmodule Examples.WordCount do
  alias SwarmService.RuvSwarm

  defmodule Counter do
    @moduledoc false
    @behaviour SwarmService.Executor

    # Chunks count their words; the merge step adds the chunks' counts.
    def run(%{input: {:count, text}}, _ctx) do
      {:ok, text |> String.split(~r/\W+/u, trim: true) |> Enum.frequencies_by(&String.downcase/1)}
    end

    def run(%{input: :merge}, ctx) do
      {:ok,
       ctx.dependencies
       |> Map.values()
       |> Enum.reduce(%{}, &Map.merge(&1, &2, fn _, a, b -> a + b end))}
    end
  end

  @doc "Word frequencies of `text`, counted by a swarm in `chunks` pieces."
  def run(text, chunks \\ 4) do
    {:ok, swarm} =
      RuvSwarm.spawn_swarm(topology: :mesh, agents: chunks, executor: {:module, Counter})

    lines = String.split(text, "\n")
    size = max(1, div(length(lines) + chunks - 1, chunks))

    parts =
      lines
      |> Enum.chunk_every(size)
      |> Enum.with_index(1)
      |> Enum.map(fn {part, i} ->
        %{name: "chunk-#{i}", input: {:count, Enum.join(part, "\n")}}
      end)

    merge = %{name: "merge", input: :merge, depends_on: Enum.map(parts, & &1.name)}

    {:ok, task} =
      RuvSwarm.orchestrate(swarm, description: "word count", subtasks: parts ++ [merge])

    result = RuvSwarm.await_task(task, 10_000)
    RuvSwarm.destroy_swarm(swarm)
    with {:ok, by_name} <- result, do: {:ok, by_name["merge"]}
  end
end

# Run as a script (not when a test loads this file).
path = List.first(System.argv())

if path && Process.whereis(ExUnit.Server) == nil do
  {:ok, counts} = Examples.WordCount.run(File.read!(path))

  counts
  |> Enum.sort_by(fn {word, n} -> {-n, word} end)
  |> Enum.take(10)
  |> Enum.each(fn {word, n} ->
    IO.puts("#{String.pad_leading(Integer.to_string(n), 6)}  #{word}")
  end)
end
