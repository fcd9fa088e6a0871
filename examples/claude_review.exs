# A swarm of `claude -p` sub-agents: each reviews one file, then a last step
# reads every review (its dependencies' results arrive on stdin as
# `## <name>` sections) and writes the summary.
#
#     mix run examples/claude_review.exs lib/swarm_service/*.ex
#
# Needs the `claude` CLI on PATH (Claude Code). RUV_SWARM_CLAUDE overrides
# the command, e.g. RUV_SWARM_CLAUDE="claude -p --model sonnet".
defmodule Examples.ClaudeReview do
  alias SwarmService.RuvSwarm

  @doc "Reviews `files` with command agents running `argv`; returns the summary."
  def run(files, argv \\ ["claude", "-p"], timeout_ms \\ 300_000) do
    {:ok, swarm} =
      RuvSwarm.spawn_swarm(
        topology: :star,
        agents: min(length(files), 4) + 1,
        executor: {:command, argv, timeout_ms: timeout_ms}
      )

    reviews =
      for file <- files do
        %{
          name: Path.basename(file),
          input: "Review this file for bugs, briefly:\n\n" <> File.read!(file)
        }
      end

    summary = %{
      name: "summary",
      input: "Summarise these code reviews in five bullet points.",
      depends_on: Enum.map(reviews, & &1.name)
    }

    {:ok, task} =
      RuvSwarm.orchestrate(swarm,
        description: "review",
        subtasks: reviews ++ [summary],
        retries: 2
      )

    result = RuvSwarm.await_task(task, timeout_ms * 3)
    RuvSwarm.destroy_swarm(swarm)

    with {:ok, by_name} <- result, do: {:ok, by_name["summary"]}
  end
end

# Run as a script (not when a test loads this file).
if System.argv() != [] and Process.whereis(ExUnit.Server) == nil do
  argv = String.split(System.get_env("RUV_SWARM_CLAUDE", "claude -p"))

  case Examples.ClaudeReview.run(System.argv(), argv) do
    {:ok, summary} -> IO.puts(summary)
    {:error, reason} -> IO.puts(:stderr, SwarmService.RuvSwarm.format_error(reason))
  end
end
