defmodule SwarmService.Executor.Claude do
  @moduledoc """
  Runs Claude Code as an agent's executor: `{:claude, opts}`.

  Each attempt runs the CLI in print mode,
  `claude -p --output-format stream-json --verbose [flags]`, under the
  launcher (`SwarmService.Executor.Launcher`: own process group, the whole
  tree ends with the attempt, the node's death included). The prompt is the
  task's input followed by each dependency's result (as the command
  executor builds its stdin), written to stdin, which is then closed: the
  CLI waits for more input while stdin is an open pipe.

  The output is read line by line as the events it is:

    * `system` (`init`): skipped (the result event carries the session id);
    * `assistant`: its text and the tools it calls become progress of the
      unit (`SwarmService.Executor.progress/3`), visible to `subscribe/1`;
    * `result`: ends the unit — its `result` text is the unit's result
      (decoded JSON with `output: :json`), and `is_error`, turns, duration,
      token usage, `total_cost_usd` and the session id come with it. The
      CLI sometimes finishes without exiting: it is stopped `:grace_ms`
      after its result.

  A result that says rate limited or overloaded is retried (`:retries`
  times, waiting 2 s, 4 s, 8 s, ... within the attempt's time); any other
  error fails the attempt with the CLI's own message.

  The CLI gets the launcher's minimal environment (`PATH`, `HOME`, `LANG`,
  `TMPDIR`) plus its credentials and configuration variables if the node
  has them (`ANTHROPIC_*`, `CLAUDE_CONFIG_DIR`, `XDG_CONFIG_HOME`) and
  `:env`; never the variables by which Claude Code recognises that it runs
  inside another Claude Code session (it refuses to start nested), nor the
  node's own settings and tokens.

  ## Options

    * `:model`, `:max_turns`, `:allowed_tools` / `:disallowed_tools` (lists
      of tool patterns), `:permission_mode` (`"default"`, `"acceptEdits"`,
      `"bypassPermissions"`, `"plan"`), `:append_system_prompt` — the CLI's
      flags of the same names;
    * `:persona` — a persona's system prompt, tone, model and tools
      (`SwarmService.Personas`), read again for every task;
    * `:cd` — working directory; `:env` — extra variables;
    * `:extra_args` — more CLI arguments, as given;
    * `:output` — `:text` (default) or `:json` (the result text decoded);
    * `:recall` — how many earlier answers of the swarm to put before the
      prompt (default 0); every finished unit's prompt and answer are kept
      in the swarm's memory either way (`SwarmService.Executor.ClaudeMemory`);
    * `:resume` — `true` continues the agent's previous session
      (`context.session_id`) when there is one;
    * `:timeout_ms` — the attempt's time, retries included (default: the
      task's timeout);
    * `:grace_ms` — how long the CLI may take to exit after its result
      (default 2,000);
    * `:retries` — rate-limit/overloaded retries (default 3);
    * `:mcp` — `true` (default): when this node runs the gateway, the CLI
      gets an MCP configuration naming it, with a token scoped to the
      agent's swarm (`SwarmService.Executor.ClaudeAccess`), so the
      sub-agent can use the swarm's memory, discoveries and task status;
    * `:mcp_config` — a path given to `--mcp-config` instead;
    * `:binary` — the CLI; default `config :swarm_service, :claude_binary`
      (`RUV_SWARM_CLAUDE`), else `claude` on `PATH`.
  """

  require Logger
  alias SwarmService.Executor.{ClaudeMemory, Command, Launcher}

  @permission_modes ~w(default acceptEdits bypassPermissions plan)
  @passed_env ~w(ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL ANTHROPIC_MODEL
                 CLAUDE_CONFIG_DIR XDG_CONFIG_HOME USER)
  # One line of stream-json larger than this is not believed.
  @max_line_bytes 16 * 1024 * 1024
  # Progress messages are previews, not transcripts.
  @preview_bytes 300

  @typedoc "What one finished CLI run reported (`nil` where it said nothing)."
  @type usage :: %{
          input_tokens: non_neg_integer(),
          output_tokens: non_neg_integer(),
          cache_read_tokens: non_neg_integer(),
          cache_creation_tokens: non_neg_integer(),
          cost_usd: float(),
          turns: non_neg_integer() | nil,
          duration_ms: non_neg_integer() | nil,
          session_id: String.t() | nil
        }

  @doc false
  # Validates the options where the executor enters; {:ok, {:claude, opts}}.
  @spec validate(keyword() | map()) :: {:ok, {:claude, keyword()}} | {:error, term()}
  def validate(opts) when is_map(opts), do: validate(Map.to_list(opts))

  def validate(opts) when is_list(opts) do
    with :ok <- keyword(opts),
         :ok <- Enum.reduce_while(opts, :ok, &check_option/2),
         {:ok, binary} <- binary(opts[:binary]) do
      {:ok, {:claude, Keyword.put(opts, :binary, binary)}}
    end
  end

  def validate(other),
    do: invalid("claude executor options must be a keyword list, got #{short(other)}")

  defp keyword(opts) do
    if Keyword.keyword?(opts),
      do: :ok,
      else: invalid("claude executor options must be a keyword list")
  end

  defp check_option({key, value}, :ok) do
    case check(key, value) do
      :ok -> {:cont, :ok}
      {:error, _} = error -> {:halt, error}
    end
  end

  defp check(key, v) when key in [:model, :append_system_prompt, :cd, :mcp_config] do
    if is_binary(v) and v != "" and not String.contains?(v, <<0>>),
      do: :ok,
      else: invalid("claude :#{key} must be a non-empty string without NUL bytes")
  end

  defp check(key, v) when key in [:max_turns, :timeout_ms, :retries_base_ms] do
    if is_integer(v) and v > 0,
      do: :ok,
      else: invalid("claude :#{key} must be a positive integer")
  end

  defp check(key, v) when key in [:grace_ms, :retries, :recall] do
    if is_integer(v) and v >= 0,
      do: :ok,
      else: invalid("claude :#{key} must be a non-negative integer")
  end

  defp check(key, v) when key in [:allowed_tools, :disallowed_tools, :extra_args] do
    if is_list(v) and Enum.all?(v, &(is_binary(&1) and not String.contains?(&1, <<0>>))),
      do: :ok,
      else: invalid("claude :#{key} must be a list of strings")
  end

  defp check(:permission_mode, v) do
    if v in @permission_modes,
      do: :ok,
      else:
        invalid("claude :permission_mode must be one of #{Enum.join(@permission_modes, ", ")}")
  end

  defp check(:persona, v) when is_binary(v) do
    case SwarmService.Personas.get(v) do
      {:ok, _} ->
        :ok

      {:error, :persona_not_found} ->
        invalid("no persona named #{inspect(v)} (persona_list lists them)")

      {:error, _} = error ->
        error
    end
  end

  defp check(:persona, _), do: invalid("claude :persona must be a persona name")
  defp check(:output, v) when v in [:text, :json], do: :ok
  defp check(:output, _), do: invalid("claude :output must be :text or :json")
  defp check(key, v) when key in [:resume, :mcp] and is_boolean(v), do: :ok
  defp check(:mcp, _), do: invalid("claude :mcp must be true or false")
  defp check(:resume, _), do: invalid("claude :resume must be true or false")
  defp check(:binary, v) when is_binary(v) or is_nil(v), do: :ok
  defp check(:binary, _), do: invalid("claude :binary must be a path")

  defp check(:env, env) when is_map(env) or is_list(env) do
    if Enum.all?(env, &match?({k, v} when is_binary(k) and k != "" and is_binary(v), &1)) and
         not Enum.any?(env, fn {k, v} -> String.contains?(k <> v, <<0>>) end),
       do: :ok,
       else: invalid("claude :env takes string names and values without NUL bytes")
  end

  defp check(key, _v), do: invalid("unknown or invalid claude option #{short(key)}")

  defp binary(given) do
    name =
      given || Application.get_env(:swarm_service, :claude_binary) ||
        System.get_env("RUV_SWARM_CLAUDE") || "claude"

    path = if String.contains?(name, "/"), do: name, else: System.find_executable(name)

    if path && File.regular?(path),
      do: {:ok, Path.expand(path)},
      else:
        invalid(
          "the Claude Code CLI #{inspect(name)} was not found: install it, or set " <>
            "RUV_SWARM_CLAUDE (or the :binary option) to its path"
        )
  end

  @doc """
  The command line of one run: the CLI and its arguments (the prompt goes
  to stdin). `session_id` is the session to resume, or nil.
  """
  @spec argv(keyword(), String.t() | nil) :: [String.t()]
  def argv(opts, session_id \\ nil) do
    flags = [
      {"--model", opts[:model]},
      {"--max-turns", opts[:max_turns] && Integer.to_string(opts[:max_turns])},
      {"--allowedTools", list(opts[:allowed_tools])},
      {"--disallowedTools", list(opts[:disallowed_tools])},
      {"--permission-mode", opts[:permission_mode]},
      {"--append-system-prompt", opts[:append_system_prompt]},
      {"--mcp-config", opts[:mcp_config]},
      {"--resume", if(opts[:resume], do: session_id)}
    ]

    [Keyword.fetch!(opts, :binary), "-p", "--output-format", "stream-json", "--verbose"] ++
      Enum.flat_map(flags, fn
        {_flag, nil} -> []
        {flag, value} -> [flag, value]
      end) ++ Keyword.get(opts, :extra_args, [])
  end

  defp list(nil), do: nil
  defp list([]), do: nil
  defp list(tools), do: Enum.join(tools, ",")

  @doc """
  The environment of the CLI: the launcher's minimum, the node's Claude
  credentials and configuration, then `extra`.
  """
  @spec env(Enumerable.t()) :: [{String.t(), String.t()}]
  def env(extra \\ []) do
    passed = for name <- @passed_env, value = System.get_env(name), do: {name, value}
    Launcher.base_env(passed ++ Enum.to_list(extra))
  end

  @doc false
  # Runs one attempt in the calling (worker) process. `work` is the engine's
  # work map (input, context, work_id, task_id, unit, timeout_ms); `agent`
  # has the agent's id and last session (for :resume); `progress` gets
  # (fraction | nil, message).
  # Returns {:ok, result, %{usage: usage}}, {:error, reason, %{usage: usage}},
  # {:error, reason} or {:timeout, reason}.
  @spec run(keyword(), map(), map(), (number() | nil, String.t() -> any())) ::
          {:ok, term(), map()}
          | {:error, String.t(), map()}
          | {:error, String.t()}
          | {:timeout, String.t()}
  def run(opts, work, agent, progress) do
    # The persona as it is now: edits reach the next task.
    opts = SwarmService.Personas.apply_to(opts)
    timeout = Keyword.get(opts, :timeout_ms, work[:timeout_ms])
    deadline = if timeout, do: System.monotonic_time(:millisecond) + timeout
    prompt = Command.stdin_of(work)
    swarm_id = SwarmService.Ids.swarm_of(work.work_id)
    full_prompt = ClaudeMemory.recall(swarm_id, prompt, Keyword.get(opts, :recall, 0))
    limit = {deadline, timeout}

    outcome =
      try do
        attempt(opts, full_prompt, work.work_id, agent[:session_id], progress, limit, 0)
      catch
        {:cancelled, reason} -> {:error, "cancelled: #{reason}"}
      end

    with {:ok, answer, _meta} <- outcome,
         do: ClaudeMemory.record(work, agent.agent_id, opts[:persona], prompt, answer)

    outcome
  end

  defp attempt(opts, prompt, work_id, session_id, progress, limit, tries) do
    case run_once(opts, prompt, work_id, session_id, progress, limit) do
      {:retryable, message, meta} ->
        wait = Keyword.get(opts, :retries_base_ms, 2_000) * Integer.pow(2, tries)

        if tries < Keyword.get(opts, :retries, 3) and time_left?(limit, wait) do
          progress.(nil, "rate limited (#{message}); retrying in #{wait} ms")
          receive_cancel(work_id, wait)
          attempt(opts, prompt, work_id, session_id, progress, limit, tries + 1)
        else
          {:error, "claude: " <> message, meta}
        end

      other ->
        other
    end
  end

  defp time_left?({nil, _}, _wait), do: true
  defp time_left?({deadline, _}, wait), do: System.monotonic_time(:millisecond) + wait < deadline

  # A cancel that arrives while waiting to retry ends the attempt at once.
  defp receive_cancel(work_id, wait) do
    receive do
      {:cancel, ^work_id, reason} -> throw({:cancelled, reason})
    after
      wait -> :ok
    end
  end

  defp run_once(opts, prompt, work_id, session_id, progress, limit) do
    launch = [env: env(Keyword.get(opts, :env, [])), cd: opts[:cd]]
    [exe | args] = argv(opts, session_id)

    case Launcher.open(exe, args, launch) do
      {:ok, launcher} ->
        Launcher.write(launcher, prompt)
        Launcher.close_input(launcher)
        state = %{buffer: "", result: nil, grace: nil, pgid: nil}
        read(launcher, state, opts, work_id, progress, limit)

      {:error, _} = error ->
        error
    end
  end

  defp read(launcher, state, opts, work_id, progress, {deadline, timeout} = limit) do
    # Until the deadline; once the result is in, until its grace ends.
    wait =
      case Enum.reject([state.grace, deadline], &is_nil/1) do
        [] -> :infinity
        times -> max(Enum.min(times) - System.monotonic_time(:millisecond), 0)
      end

    receive do
      {:cancel, ^work_id, reason} ->
        Launcher.stop(launcher)
        {:error, "cancelled: #{reason}"}

      {:EXIT, from, reason} when is_pid(from) ->
        Launcher.close(launcher)
        exit(reason)

      {port, _} = msg when port == launcher.port ->
        case Launcher.event(launcher, msg) do
          {:stdout, chunk} ->
            case lines(state, chunk, opts, progress) do
              {:ok, state} -> read(launcher, state, opts, work_id, progress, limit)
              {:error, _} = error -> stop(launcher, error)
            end

          {:exit, report} ->
            Launcher.await_exit(launcher.port, System.monotonic_time(:millisecond) + 5_000)
            # A last line without its newline still counts.
            {:ok, state} = line(state, state.buffer, opts, progress)
            finish(state, report, opts)

          {:started, pgid} ->
            read(launcher, %{state | pgid: pgid}, opts, work_id, progress, limit)

          {:launcher_exit, status} ->
            # The launcher was killed: its command died with it; what is
            # left of the command's process group is ended here.
            Command.kill_group(state.pgid)

            finish(
              state,
              %{status: {:exited, status}, leftovers: 0, stderr: "launcher exited"},
              opts
            )

          _ ->
            read(launcher, state, opts, work_id, progress, limit)
        end
    after
      wait ->
        if state.grace do
          # The result is in; the CLI did not exit on its own.
          _ = Launcher.stop(launcher)
          outcome(state.result, opts)
        else
          stop(launcher, {:timeout, "claude timed out after #{timeout} ms and was killed"})
        end
    end
  end

  defp stop(launcher, outcome) do
    _ = Launcher.stop(launcher)
    outcome
  end

  defp lines(state, chunk, opts, progress) do
    [last | complete] = :binary.split(state.buffer <> chunk, "\n", [:global]) |> Enum.reverse()

    if byte_size(last) > @max_line_bytes do
      {:error, "claude wrote a line of more than #{@max_line_bytes} bytes; stopped"}
    else
      complete
      |> Enum.reverse()
      |> Enum.reduce({:ok, %{state | buffer: last}}, fn text, {:ok, s} ->
        line(s, text, opts, progress)
      end)
    end
  end

  defp line(state, text, opts, progress) do
    case decode(String.trim(text)) do
      %{"type" => "assistant", "message" => %{"content" => content}} when is_list(content) ->
        Enum.each(content, &report_content(&1, progress))
        {:ok, state}

      %{"type" => "result"} = result ->
        grace = System.monotonic_time(:millisecond) + Keyword.get(opts, :grace_ms, 2_000)
        {:ok, %{state | result: result, grace: state.grace || grace}}

      _ ->
        # Blank lines, other event types, and anything that is not JSON.
        {:ok, state}
    end
  end

  defp decode(""), do: nil

  defp decode(text) do
    :jiffy.decode(text, [:return_maps, :use_nil])
  catch
    _, _ -> nil
  end

  defp report_content(%{"type" => "text", "text" => text}, progress) when is_binary(text),
    do: progress.(nil, preview(text))

  defp report_content(%{"type" => "tool_use", "name" => name}, progress) when is_binary(name),
    do: progress.(nil, "tool: " <> preview(name))

  defp report_content(_other, _progress), do: :ok

  defp preview(text) do
    text = String.trim(text)

    if byte_size(text) > @preview_bytes,
      do: String.slice(text, 0, @preview_bytes) <> "…",
      else: text
  end

  # The process ended: the result event decides, else how it exited.
  defp finish(%{result: nil}, report, _opts) do
    {:error, "claude exited without a result (#{status(report)}): " <> stderr(report)}
  end

  defp finish(%{result: result}, _report, opts), do: outcome(result, opts)

  defp outcome(result, opts) do
    meta = %{usage: usage(result)}
    text = result["result"]
    error? = result["is_error"] == true or result["subtype"] not in ["success", nil]

    cond do
      error? and retryable?(result) ->
        {:retryable, message(result), meta}

      error? ->
        {:error, "claude: " <> message(result), meta}

      opts[:output] == :json ->
        case decode(to_string(text)) do
          nil ->
            {:error, "claude's result is not the JSON asked for: " <> preview(to_string(text)),
             meta}

          json ->
            {:ok, json, meta}
        end

      true ->
        {:ok, to_string(text || ""), meta}
    end
  end

  defp message(result) do
    case result["result"] do
      text when is_binary(text) and text != "" -> text
      _ -> "#{result["subtype"] || "error"}"
    end
  end

  defp retryable?(result) do
    message(result) =~ ~r/rate.?limit|overloaded|\b429\b|\b529\b/i
  end

  defp usage(result) do
    u = if is_map(result["usage"]), do: result["usage"], else: %{}

    %{
      input_tokens: count(u["input_tokens"]),
      output_tokens: count(u["output_tokens"]),
      cache_read_tokens: count(u["cache_read_input_tokens"]),
      cache_creation_tokens: count(u["cache_creation_input_tokens"]),
      cost_usd: cost(result["total_cost_usd"]),
      turns: maybe_count(result["num_turns"]),
      duration_ms: maybe_count(result["duration_ms"]),
      session_id: if(is_binary(result["session_id"]), do: result["session_id"])
    }
  end

  defp count(n) when is_integer(n) and n >= 0, do: n
  defp count(_), do: 0
  defp maybe_count(n) when is_integer(n) and n >= 0, do: n
  defp maybe_count(_), do: nil
  defp cost(n) when is_number(n) and n >= 0, do: n / 1
  defp cost(_), do: 0.0

  defp status(%{status: {:exited, code}}), do: "exit status #{code}"
  defp status(%{status: {:signaled, sig}}), do: "killed by signal #{sig}"
  defp status(%{status: {:spawn_failed, _}}), do: "could not start"
  defp status(%{status: :killed}), do: "killed"

  defp stderr(%{stderr: ""}), do: "(no stderr)"
  defp stderr(%{stderr: text}), do: String.trim(text)

  defp short(term), do: inspect(term, limit: 5, printable_limit: 100)
  defp invalid(msg), do: {:error, {:invalid_argument, msg}}
end
