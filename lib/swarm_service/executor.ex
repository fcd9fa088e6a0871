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
    * `{:mcp, server, tool}` — each unit is one call of a tool of a managed
      external MCP server; see `SwarmService.Executor.Mcp`;
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
          arg: term,
          session_id: String.t() | nil
        }
  @type usage :: %{
          optional(:input_tokens) => non_neg_integer,
          optional(:output_tokens) => non_neg_integer,
          optional(:cache_read_tokens) => non_neg_integer,
          optional(:cache_creation_tokens) => non_neg_integer,
          optional(:cost_usd) => number,
          optional(:turns) => non_neg_integer,
          optional(:duration_ms) => non_neg_integer,
          optional(:session_id) => String.t()
        }
  @type spec ::
          {:module, module}
          | {:module, module, term}
          | {:command, [String.t()], keyword}
          | {:claude, keyword}
          | {:mcp, String.t(), String.t()}
          | :external

  @callback run(task, context) ::
              {:ok, term}
              | {:ok, term, %{usage: usage}}
              | {:error, term}
              | {:error, term, %{usage: usage}}

  @doc "Reports progress (0.0..1.0) of the current attempt; emits a `:task_progress` event."
  @spec progress(context, number) :: :ok | :ignored | {:error, term}
  def progress(%{work_id: work_id, agent_id: agent_id}, fraction) when is_number(fraction) do
    SwarmService.Swarm.Home.run(work_id, :progress, [work_id, agent_id, fraction])
  end

  @doc """
  Reports progress of the current attempt with a message saying what the
  agent is doing (assistant text, a tool call's name): a `:task_progress`
  event with `progress:` and `message:`. `fraction` may be `nil` when it
  is unknown (the event then carries the attempt's last fraction, or nil);
  `message` may be `nil`. A message is cut to the engine's
  `max_progress_message_bytes` (1,000 bytes) at a character boundary.
  Answers `:ignored` when the attempt is no longer running.
  """
  @spec progress(context, number | nil, String.t() | nil) :: :ok | :ignored | {:error, term}
  def progress(%{work_id: work_id, agent_id: agent_id}, fraction, message)
      when (is_number(fraction) or is_nil(fraction)) and (is_binary(message) or is_nil(message)) do
    message = message && cut(message, SwarmService.Limits.get(:max_progress_message_bytes))
    SwarmService.Swarm.Home.run(work_id, :progress, [work_id, agent_id, fraction, message])
  end

  def progress(_context, _fraction, _message),
    do: invalid("progress takes a fraction (a number or nil) and a message (a string or nil)")

  # At most `max` bytes, never half a character.
  defp cut(text, max) when byte_size(text) <= max, do: text
  defp cut(text, max), do: whole_chars(binary_part(text, 0, max))

  defp whole_chars(text) do
    if String.valid?(text) or byte_size(text) == 0,
      do: text,
      else: whole_chars(binary_part(text, 0, byte_size(text) - 1))
  end

  @usage_counts [
    :input_tokens,
    :output_tokens,
    :cache_read_tokens,
    :cache_creation_tokens,
    :turns,
    :duration_ms
  ]

  @doc false
  # An executor's usage map as the engine takes it (cost in integer
  # micro-dollars), or why it cannot be taken. nil stays nil.
  @spec native_usage(term) :: {:ok, map | nil} | {:error, {:invalid_argument, String.t()}}
  def native_usage(nil), do: {:ok, nil}

  def native_usage(usage) when is_map(usage) do
    max = SwarmService.Limits.get(:max_usage_value)

    Enum.reduce_while(@usage_counts ++ [:cost_usd, :session_id], {:ok, %{}}, fn key, {:ok, acc} ->
      case usage_field(key, Map.get(usage, key), max) do
        {:ok, nil} -> {:cont, {:ok, acc}}
        {:ok, {k, v}} -> {:cont, {:ok, Map.put(acc, k, v)}}
        error -> {:halt, error}
      end
    end)
  end

  def native_usage(other),
    do: invalid("usage must be a map, got: #{inspect(other, limit: 5, printable_limit: 100)}")

  defp usage_field(_key, nil, _max), do: {:ok, nil}

  defp usage_field(key, n, max) when key in @usage_counts do
    if is_integer(n) and n >= 0 and n <= max,
      do: {:ok, {key, n}},
      else: invalid("usage #{key} must be an integer between 0 and #{max}")
  end

  defp usage_field(:cost_usd, usd, max) do
    if is_number(usd) and usd >= 0 and usd * 1_000_000 <= max,
      do: {:ok, {:cost_micros, round(usd * 1_000_000)}},
      else:
        invalid("usage cost_usd must be a number of dollars between 0 and #{div(max, 1_000_000)}")
  end

  defp usage_field(:session_id, id, _max) do
    max = SwarmService.Limits.get(:max_session_id_bytes)

    if is_binary(id) and byte_size(id) in 1..max and String.valid?(id),
      do: {:ok, {:session_id, id}},
      else: invalid("usage session_id must be a string of 1 to #{max} bytes")
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
  def validate({:mcp, server, tool}), do: SwarmService.Executor.Mcp.validate(server, tool)

  def validate(other) do
    invalid(
      "executor must be :external, {:module, mod}, {:module, mod, arg} or " <>
        "{:command, argv, opts}, {:claude, opts} or {:mcp, server, tool}, got: #{inspect(other, limit: 5, printable_limit: 100)}"
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
