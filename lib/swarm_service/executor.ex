defmodule SwarmService.Executor do
  @moduledoc """
  How an agent does its work.

  An agent's executor is one of:

    * `{:module, module}` or `{:module, module, arg}` — a module implementing
      this behaviour. `run/2` is called in a fresh process per attempt, so an
      exception or crash fails only that attempt (which is then retried);
    * `{:command, argv, opts}` — an OS command given as an argv list (never a
      shell string); see `SwarmService.Executor.Command`;
    * `{:claude, opts}` — Claude Code in print mode, its stream of events
      read as progress and its result as the unit's; see
      `SwarmService.Executor.Claude`;
    * `:external` — no process: something outside claims work with
      `SwarmService.RuvSwarm.claim_task/2` and reports it with
      `complete_task/3` or `fail_task/3`.

  ## The task and context given to `run/2`

  `task` has `:input` (any term), `:description`, `:task_id`, `:unit` (the
  unit's name), `:attempt` and `:work_id`. `context` has `:swarm_id`,
  `:agent_id`, `:work_id`, `:dependencies` (a map from the name of each
  finished dependency to its result), `:route` (agents the work passed
  through on its way, per the topology) and `:arg` (the `arg` of
  `{:module, module, arg}`, else `nil`).

  During a run an executor may use the swarm memory
  (`SwarmService.RuvSwarm.memory_store/4` with `context.swarm_id`), share
  discoveries (`share_discovery/2` with `agent_id: context.agent_id`) and
  report progress with `progress/2`.
  """

  @type task :: %{
          input: term,
          description: String.t(),
          task_id: String.t(),
          unit: String.t(),
          attempt: pos_integer,
          work_id: String.t()
        }
  @type context :: %{
          swarm_id: String.t(),
          agent_id: String.t(),
          work_id: String.t(),
          dependencies: %{String.t() => term},
          route: [String.t()],
          arg: term
        }
  @type spec ::
          {:module, module}
          | {:module, module, term}
          | {:command, [String.t()], keyword}
          | {:claude, keyword}
          | :external

  @callback run(task, context) :: {:ok, term} | {:error, term}

  @doc "Reports progress (0.0..1.0) of the current attempt; emits a `:task_progress` event."
  @spec progress(context, number) :: :ok | :ignored | {:error, term}
  def progress(%{work_id: work_id, agent_id: agent_id}, fraction) when is_number(fraction) do
    SwarmService.Swarm.Home.run(work_id, :progress, [work_id, agent_id, fraction])
  end

  @doc false
  # Validates an executor spec where it enters; returns it normalised.
  @spec validate(term) :: {:ok, spec} | {:error, {:invalid_argument, String.t()}}
  def validate(:external), do: {:ok, :external}
  def validate({:module, mod}), do: validate({:module, mod, nil})

  def validate({:module, mod, arg}) when is_atom(mod) do
    if loadable?(mod) do
      {:ok, {:module, mod, arg}}
    else
      invalid("executor module #{inspect(mod)} is not loaded or does not define run/2")
    end
  end

  def validate({:command, argv}), do: validate({:command, argv, []})

  def validate({:command, argv, opts}) when is_list(argv) and is_list(opts) do
    SwarmService.Executor.Command.validate(argv, opts)
  end

  def validate({:claude, opts}), do: SwarmService.Executor.Claude.validate(opts)

  def validate(other) do
    invalid(
      "executor must be :external, {:module, mod}, {:module, mod, arg} or " <>
        "{:command, argv, opts} or {:claude, opts}, got: #{inspect(other, limit: 5, printable_limit: 100)}"
    )
  end

  @doc false
  # Whether this node can run `mod` as an executor (asked of the node an
  # agent is placed on).
  @spec loadable?(module) :: boolean
  def loadable?(mod) when is_atom(mod),
    do: Code.ensure_loaded?(mod) and function_exported?(mod, :run, 2)

  defp invalid(msg), do: {:error, {:invalid_argument, msg}}
end
