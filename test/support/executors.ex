defmodule SwarmService.Test.Executors do
  @moduledoc false
  # Small real executors used by the tests.

  defmodule Upcase do
    @moduledoc false
    @behaviour SwarmService.Executor
    def run(%{input: input}, _ctx), do: {:ok, String.upcase(to_string(input))}
  end

  defmodule Echo do
    @moduledoc false
    # Returns what it saw, so tests can check inputs, context and routes.
    @behaviour SwarmService.Executor
    def run(task, ctx) do
      {:ok,
       %{
         input: task.input,
         unit: task.unit,
         agent: ctx.agent_id,
         deps: ctx.dependencies,
         route: ctx.route
       }}
    end
  end

  defmodule Append do
    @moduledoc false
    # Appends the arg (or "+") to a string input: shows pipeline order.
    @behaviour SwarmService.Executor
    def run(%{input: input}, ctx), do: {:ok, to_string(input) <> (ctx.arg || "+")}
  end

  defmodule Trail do
    @moduledoc false
    # Appends its agent id to a list input: shows which agents ran a pipeline.
    @behaviour SwarmService.Executor
    def run(%{input: trail}, ctx) when is_list(trail), do: {:ok, trail ++ [ctx.agent_id]}
  end

  defmodule Where do
    @moduledoc false
    # Reports the node it ran on (and sleeps `input` ms if it is a number):
    # shows where a cluster ran work.
    @behaviour SwarmService.Executor
    def run(%{input: input}, ctx) do
      if is_integer(input), do: Process.sleep(input)
      {:ok, %{node: node(), agent: ctx.agent_id, input: input}}
    end
  end

  defmodule Costly do
    @moduledoc false
    # Each unit reports that it cost $0.006 and opened a session named
    # after its task.
    @behaviour SwarmService.Executor
    def run(task, _ctx) do
      usage = %{input_tokens: 10, cost_usd: 0.006, turns: 1, session_id: "sess-" <> task.task_id}
      {:ok, task.input, %{usage: usage}}
    end
  end

  defmodule Sleep do
    @moduledoc false
    @behaviour SwarmService.Executor
    def run(%{input: ms}, _ctx) when is_integer(ms) do
      Process.sleep(ms)
      {:ok, :slept}
    end
  end

  defmodule Raise do
    @moduledoc false
    @behaviour SwarmService.Executor
    def run(_task, _ctx), do: raise("deliberate failure")
  end

  defmodule Flaky do
    @moduledoc false
    # Fails on agents listed in a persistent term, succeeds elsewhere.
    @behaviour SwarmService.Executor
    def run(_task, ctx) do
      if ctx.agent_id in :persistent_term.get({__MODULE__, :bad}, []),
        do: {:error, "bad agent"},
        else: {:ok, ctx.agent_id}
    end
  end

  defmodule Crash do
    @moduledoc false
    # Kills its own agent process on the first attempt, after telling the
    # test process (its arg) which agent that was.
    @behaviour SwarmService.Executor
    def run(task, ctx) do
      if task.attempt == 1 do
        send(ctx.arg, {:crashing, ctx.agent_id})
        # Workers are linked to their agent: kill it through the link.
        {:links, [agent | _]} = Process.info(self(), :links)
        Process.exit(agent, :kill)
        Process.sleep(:infinity)
      else
        {:ok, {:survived, task.attempt, ctx.agent_id}}
      end
    end
  end

  defmodule DieOnce do
    @moduledoc false
    # Kills its own worker process (nothing to rescue) on a first attempt at
    # `:die`; otherwise reports its input, attempt and worker pid.
    @behaviour SwarmService.Executor
    def run(%{input: :die, attempt: 1}, _ctx), do: Process.exit(self(), :kill)
    def run(task, _ctx), do: {:ok, {task.input, task.attempt, self()}}
  end

  defmodule Notify do
    @moduledoc false
    # Tells the test process it started, then waits to be released.
    @behaviour SwarmService.Executor
    def run(task, ctx) do
      send(ctx.arg, {:started, task.work_id, ctx.agent_id, self()})

      receive do
        :release -> {:ok, :released}
      end
    end
  end

  defmodule Researcher do
    @moduledoc false
    # Uses the shared context: reads dependencies, writes memory, publishes
    # a discovery and reports progress.
    @behaviour SwarmService.Executor
    alias SwarmService.RuvSwarm

    def run(task, ctx) do
      SwarmService.Executor.progress(ctx, 0.5)
      {:ok, _} = RuvSwarm.memory_store(ctx.swarm_id, "notes/#{task.unit}", "found #{task.input}")

      {:ok, _} =
        RuvSwarm.share_discovery(ctx.swarm_id,
          agent_id: ctx.agent_id,
          type: "finding",
          content: task.input,
          confidence: 0.9
        )

      {:ok, %{unit: task.unit, seen: Map.keys(ctx.dependencies) |> Enum.sort()}}
    end
  end

  defmodule SlowSquare do
    @moduledoc false
    # Squares an integer input after sleeping a few ms (its arg, default 10):
    # work that is in flight long enough to be interrupted.
    @behaviour SwarmService.Executor
    def run(%{input: n}, ctx) when is_integer(n) do
      Process.sleep(ctx.arg || 10)
      {:ok, n * n}
    end
  end

  defmodule Fail do
    @moduledoc false
    # Fails with its input as the reason: shows how failures are reported.
    @behaviour SwarmService.Executor
    def run(%{input: input}, _ctx), do: {:error, input}
  end
end
