defmodule SwarmService.Executor.Command do
  @moduledoc """
  Runs an OS command as an agent's executor: `{:command, argv, opts}`.

  * `argv` is a list: the executable (a path, or a name looked up in `PATH`)
    and its arguments. It is never parsed by a shell.
  * The task input goes to the command's stdin (binaries as they are, other
    terms as JSON when they can be encoded, else `inspect/1`), followed by
    the result of each finished dependency as a `## <name>` section; stdout
    is the result, stderr is kept for the error message.
  * A non-zero exit status fails the attempt with the status and the end of
    stderr. A timeout (`:timeout_ms`, else the task's timeout) kills the
    command and every process it started.
  * The command runs under `SwarmService.Executor.Launcher`: every process
    it starts, however it forks, ends with the attempt — when the command
    exits (descendants still running are killed; a failure says how many),
    times out, is cancelled, its agent or swarm goes, the worker dies or
    the node dies.
  * The command's environment is `PATH`, `HOME`, `LANG`, `TMPDIR` (as the
    node has them) plus `:env`: never the node's own settings or tokens.
  * Options: `:timeout_ms`, `:cd`, `:env` (a map or list of string pairs),
    `:max_output_bytes` (default 1 MiB; exceeding it kills the command),
    `:limits` (`cpu_seconds:`, `address_space_bytes:`, `open_files:`,
    `processes:`; `setrlimit` in the launcher, see `Launcher`).

  This is how a swarm drives `claude -p` sub-agents:
  `{:command, ["claude", "-p", "--output-format", "text"], timeout_ms: 300_000}`.
  Which commands the gateway may start is the `:command_allowlist` setting
  (see `allowed?/2`).
  """

  require Logger
  alias SwarmService.Executor.Launcher

  @default_max_output 1_048_576

  @doc false
  def validate(argv, opts) do
    with :ok <- check_argv(argv),
         :ok <- check_opts(opts),
         {:ok, exe} <- resolve(hd(argv)) do
      {:ok, {:command, [exe | tl(argv)], opts}}
    end
  end

  defp check_argv([exe | args]) when is_binary(exe) and exe != "" do
    cond do
      not Enum.all?(args, &is_binary/1) -> invalid("command arguments must all be strings")
      # The OS ends a C string at NUL: "a\0b" would silently run as "a".
      Enum.any?([exe | args], &nul?/1) -> invalid("command argv cannot contain NUL bytes")
      true -> :ok
    end
  end

  defp check_argv(_), do: invalid("command argv must be a non-empty list of strings")

  defp check_opts(opts) do
    Enum.reduce_while(opts, :ok, fn
      {:timeout_ms, t}, :ok when is_integer(t) and t > 0 -> {:cont, :ok}
      {:max_output_bytes, n}, :ok when is_integer(n) and n > 0 -> {:cont, :ok}
      {:cd, dir}, :ok when is_binary(dir) -> {:cont, no_nul(:cd, [dir])}
      {:env, env}, :ok when is_map(env) or is_list(env) -> {:cont, check_env(env)}
      {:limits, limits}, :ok when is_list(limits) -> {:cont, check_limits(limits)}
      other, :ok -> {:halt, invalid("unknown or invalid command option #{inspect(other)}")}
    end)
  end

  defp check_env(env) do
    if Enum.all?(env, &match?({k, v} when is_binary(k) and k != "" and is_binary(v), &1)),
      do: no_nul(:env, Enum.flat_map(env, fn {k, v} -> [k, v] end)),
      else: invalid("command :env takes string names and values")
  end

  defp no_nul(option, strings) do
    if Enum.any?(strings, &nul?/1),
      do: invalid("command :#{option} cannot contain NUL bytes"),
      else: :ok
  end

  defp nul?(string), do: String.contains?(string, <<0>>)

  @limit_keys [:cpu_seconds, :address_space_bytes, :open_files, :processes]

  defp check_limits(limits) do
    if Enum.all?(limits, &match?({k, n} when k in @limit_keys and is_integer(n) and n > 0, &1)),
      do: :ok,
      else: invalid("command :limits take #{inspect(@limit_keys)} as positive integers")
  end

  defp resolve(exe) do
    path = if String.contains?(exe, "/"), do: exe, else: System.find_executable(exe)

    cond do
      path == nil -> invalid("command #{inspect(exe)} not found in PATH")
      not File.regular?(path) -> invalid("command #{inspect(exe)} does not exist")
      true -> {:ok, Path.expand(path)}
    end
  end

  @doc """
  Whether a gateway client may start `argv` (or a bare executable, meaning
  no arguments) under `allowlist`, the gateway's `:command_allowlist`
  setting. See `SwarmService.Executor.Allowlist` for the entry format.
  """
  @spec allowed?([String.t()] | String.t(), [String.t()]) :: boolean
  defdelegate allowed?(argv, allowlist), to: SwarmService.Executor.Allowlist

  @doc false
  # Runs one attempt in the calling (worker) process through the launcher
  # (SwarmService.Executor.Launcher). Returns {:ok, stdout}, {:error, reason}
  # or {:timeout, reason}. Honours {:cancel, work_id, reason} messages for
  # this work. The command's whole process tree is gone when this returns
  # (or, when this process is killed, as soon as the port closes).
  def run([exe | args], opts, input, %{work_id: work_id, timeout_ms: task_timeout}) do
    timeout = Keyword.get(opts, :timeout_ms, task_timeout)
    max_out = Keyword.get(opts, :max_output_bytes, @default_max_output)

    launch_opts = [
      env: Launcher.base_env(Keyword.get(opts, :env, [])),
      cd: opts[:cd],
      limits: Keyword.get(opts, :limits, [])
    ]

    Process.delete({__MODULE__, :pgid})

    case Launcher.open(exe, args, launch_opts) do
      {:ok, launcher} ->
        Launcher.write(launcher, input)
        Launcher.close_input(launcher)
        deadline = if timeout, do: System.monotonic_time(:millisecond) + timeout
        collect(launcher, {[], 0, max_out}, {deadline, timeout}, work_id, exe)

      {:error, _} = error ->
        error
    end
  end

  defp collect(launcher, {acc, size, max_out} = out, {deadline, timeout} = limit, work_id, exe) do
    wait =
      if deadline, do: max(deadline - System.monotonic_time(:millisecond), 0), else: :infinity

    receive do
      {:cancel, ^work_id, reason} ->
        Launcher.stop(launcher)
        {:error, "cancelled: #{reason}"}

      {:EXIT, from, reason} when is_pid(from) ->
        # Our agent is gone (the only process we are linked to): closing the
        # port makes the launcher end the whole tree. Ports of earlier runs
        # also send EXITs; they are not pids and are ignored.
        Launcher.close(launcher)
        exit(reason)

      {port, _} = msg when port == launcher.port ->
        case Launcher.event(launcher, msg) do
          {:stdout, chunk} ->
            size = size + byte_size(chunk)

            if size > max_out do
              Launcher.stop(launcher)
              {:error, "output exceeded #{max_out} bytes; command killed"}
            else
              collect(launcher, {[acc | chunk], size, max_out}, limit, work_id, exe)
            end

          {:exit, report} ->
            Process.delete({__MODULE__, :pgid})
            Launcher.await_exit(launcher.port, System.monotonic_time(:millisecond) + 5_000)
            outcome(report, IO.iodata_to_binary(acc), exe)

          {:launcher_exit, status} ->
            # The launcher was killed (by the command itself?): its command
            # died with it (parent-death signal); what is left of the
            # command's process group is ended here.
            kill_group(Process.delete({__MODULE__, :pgid}))
            {:error, "the command launcher exited unexpectedly (status #{status})"}

          {:started, pgid} ->
            Process.put({__MODULE__, :pgid}, pgid)
            collect(launcher, out, limit, work_id, exe)

          _ ->
            collect(launcher, out, limit, work_id, exe)
        end
    after
      wait ->
        Launcher.stop(launcher)
        {:timeout, "command timed out after #{timeout} ms and was killed"}
    end
  end

  @doc false
  # Ends what is left of a command's process group after its launcher died.
  def kill_group(nil), do: :ok

  def kill_group(pgid) when is_integer(pgid) and pgid > 1 do
    _ = System.cmd("kill", ["-KILL", "--", "-#{pgid}"], stderr_to_stdout: true)
    :ok
  end

  defp outcome(%{status: {:exited, 0}, leftovers: n}, stdout, exe) do
    if n > 0 do
      Logger.warning(
        "command #{exe} exited 0 and left #{n} process(es) running; they were killed"
      )
    end

    {:ok, stdout}
  end

  defp outcome(%{status: {:exited, code}} = r, _stdout, _exe),
    do: {:error, "exit status #{code}: " <> stderr_tail(r.stderr) <> leftovers(r)}

  defp outcome(%{status: {:signaled, sig}} = r, _stdout, _exe),
    do: {:error, "killed by signal #{sig}: " <> stderr_tail(r.stderr) <> leftovers(r)}

  defp outcome(%{status: {:spawn_failed, _}, stderr: why}, _stdout, _exe),
    do: {:error, "could not start the command: " <> why}

  defp outcome(%{status: :killed}, _stdout, _exe), do: {:error, "command killed"}

  defp leftovers(%{leftovers: 0}), do: ""
  defp leftovers(%{leftovers: n}), do: " (#{n} leftover process(es) were killed)"

  defp stderr_tail(""), do: "(no stderr)"

  defp stderr_tail(text) when byte_size(text) > 2_000,
    do: "..." <> binary_part(text, byte_size(text), -2_000)

  defp stderr_tail(text), do: String.trim(text)

  @doc false
  # What the command reads: the input, then each dependency's result.
  def stdin_of(%{input: input, context: deps}) when map_size(deps) == 0, do: stdin_bytes(input)

  def stdin_of(%{input: input, context: deps}) do
    sections =
      for {name, result} <- Enum.sort(deps), do: ["\n\n## ", name, "\n", stdin_bytes(result)]

    IO.iodata_to_binary([stdin_bytes(input) | sections])
  end

  defp stdin_bytes(input) when is_binary(input), do: input
  defp stdin_bytes(nil), do: ""

  defp stdin_bytes(input) do
    :jiffy.encode(input, [:use_nil])
  catch
    _, _ -> inspect(input, limit: :infinity, printable_limit: :infinity)
  end

  defp invalid(msg), do: {:error, {:invalid_argument, msg}}
end
