defmodule SwarmService.Executor.ClaudeMemory do
  @moduledoc """
  What Claude agents asked and answered, kept in their swarm's memory so
  later tasks can build on it.

  Every unit a claude agent finishes is stored in the swarm's memory
  namespace `"claude_qa"` under the key `<task id>/<unit>`: the value is the
  text `"Q: <prompt>\\n\\nA: <answer>"` (each cut to 8 KiB), the tags are
  `"claude_qa"`, `"agent:<id>"`, `"task:<id>"` and `"persona:<name>"` when
  there is one. `memory_search/3` finds them by text and tags like any
  other entry.

  With `recall: n` a claude agent's prompt starts with the `n` stored
  answers of its swarm that share the most words with it (words of four
  letters or more, common ones left out, case-insensitive; 1,000 entries
  are looked at), under `## Earlier answers in this swarm`.
  """

  require Logger
  alias SwarmService.RuvSwarm

  @namespace "claude_qa"
  @max_part_bytes 8_192
  @scanned 1_000

  @doc "The memory namespace of the questions and answers."
  @spec namespace() :: String.t()
  def namespace, do: @namespace

  @doc "`prompt` with the `n` best matching earlier answers of the swarm before it."
  @spec recall(String.t(), String.t(), non_neg_integer()) :: String.t()
  def recall(_swarm_id, prompt, 0), do: prompt

  def recall(swarm_id, prompt, n) do
    words = words(prompt)

    best =
      case RuvSwarm.memory_search(swarm_id, %{namespace: @namespace, limit: @scanned}) do
        {:ok, entries} ->
          entries
          |> Enum.filter(&is_binary(&1.value))
          |> Enum.map(&{MapSet.size(MapSet.intersection(words, words(&1.value))), &1})
          |> Enum.filter(fn {score, _} -> score > 0 end)
          |> Enum.sort_by(fn {score, e} -> {-score, e.key} end)
          |> Enum.take(n)

        {:error, _} ->
          []
      end

    case best do
      [] ->
        prompt

      found ->
        earlier = for {_, e} <- found, do: ["### ", e.key, "\n", e.value, "\n\n"]

        IO.iodata_to_binary([
          "## Earlier answers in this swarm\n\n",
          earlier,
          "## Task\n\n",
          prompt
        ])
    end
  end

  @doc "Stores one finished unit's prompt and answer (a failure to store is logged, not raised)."
  @spec record(map(), String.t(), String.t() | nil, String.t(), term()) :: :ok
  def record(work, agent_id, persona, prompt, answer) do
    swarm_id = SwarmService.Ids.swarm_of(work.work_id)
    answer = if is_binary(answer), do: answer, else: :jiffy.encode(answer, [:use_nil])
    text = "Q: " <> cut(prompt) <> "\n\nA: " <> cut(answer)

    tags =
      ["claude_qa", "agent:" <> agent_id, "task:" <> work.task_id] ++
        if(persona, do: ["persona:" <> persona], else: [])

    key = "#{work.task_id}/#{work.unit}"

    case RuvSwarm.memory_store(swarm_id, key, text, namespace: @namespace, tags: tags) do
      {:ok, _} ->
        :ok

      {:error, reason} ->
        Logger.warning(
          "agent #{agent_id}: answer of #{key} not kept in memory: #{RuvSwarm.format_error(reason)}"
        )
    end
  end

  defp cut(text) when byte_size(text) <= @max_part_bytes, do: text
  defp cut(text), do: String.slice(binary_part(text, 0, @max_part_bytes), 0..-2//1) <> "…"

  # Words that say nothing about the subject.
  @common MapSet.new(~w(that this with from have does what when which were will would there their
                      about into than then them they your been more most some such only also
                      could should must just like make made each other after before now how why))

  defp words(text) do
    ~r/[[:alnum:]]{4,}/u
    |> Regex.scan(String.downcase(text))
    |> List.flatten()
    |> MapSet.new()
    |> MapSet.difference(@common)
  end
end
