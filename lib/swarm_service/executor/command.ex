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
  * Options: `:timeout_ms`, `:cd`, `:env` (a map or list of string pairs),
    `:max_output_bytes` (default 1 MiB; exceeding it kills the command).

  This is how a swarm drives `claude -p` sub-agents:
  `{:command, ["claude", "-p", "--output-format", "text"], timeout_ms: 300_000}`.
  Which commands the gateway may start is the `:command_allowlist` setting
  (see `allowed?/2`).
  """

  @default_max_output 1_048_576
  # stdin and stderr are redirected by this fixed script; the command and
  # its arguments are passed as positional parameters, never interpolated.
  @launcher "exec \"$@\" <\"$RUV_SWARM_STDIN\" 2>\"$RUV_SWARM_STDERR\""

  @doc false
  def validate(argv, opts) do
    with :ok <- check_argv(argv),
         :ok <- check_opts(opts),
         {:ok, exe} <- resolve(hd(argv)) do
      {:ok, {:command, [exe | tl(argv)], opts}}
    end
  end

  defp check_argv([exe | args]) when is_binary(exe) and exe != "" do
    if Enum.all?(args, &is_binary/1),
      do: :ok,
      else: invalid("command arguments must all be strings")
  end

  defp check_argv(_), do: invalid("command argv must be a non-empty list of strings")

  defp check_opts(opts) do
    Enum.reduce_while(opts, :ok, fn
      {:timeout_ms, t}, :ok when is_integer(t) and t > 0 -> {:cont, :ok}
      {:max_output_bytes, n}, :ok when is_integer(n) and n > 0 -> {:cont, :ok}
      {:cd, dir}, :ok when is_binary(dir) -> {:cont, :ok}
      {:env, env}, :ok when is_map(env) or is_list(env) -> {:cont, :ok}
      other, :ok -> {:halt, invalid("unknown or invalid command option #{inspect(other)}")}
    end)
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
  Whether `executable` is on `allowlist` (the gateway passes its
  `:command_allowlist` setting): an exact entry, or a bare name whose
  resolved path is an entry. A matching base name alone is never enough:
  it would let `/tmp/x/claude` pass for `claude`.
  """
  @spec allowed?(String.t(), [String.t()]) :: boolean
  def allowed?(executable, allowlist) when is_binary(executable) do
    executable in allowlist or
      (not String.contains?(executable, "/") and
         case System.find_executable(executable) do
           nil -> false
           path -> path in allowlist
         end)
  end

  @doc false
  # Runs one attempt in the calling (worker) process. Returns {:ok, stdout},
  # {:error, reason} or {:timeout, reason}. Honours {:cancel, work_id,
  # reason} messages for this work.
  def run([exe | args], opts, input, %{work_id: work_id, timeout_ms: task_timeout}) do
    timeout = Keyword.get(opts, :timeout_ms, task_timeout)
    max_out = Keyword.get(opts, :max_output_bytes, @default_max_output)
    dir = Path.join(System.tmp_dir!(), "ruv_swarm_exec")
    File.mkdir_p!(dir)
    base = Path.join(dir, "#{System.os_time()}-#{:erlang.unique_integer([:positive])}")
    stdin_path = base <> ".in"
    stderr_path = base <> ".err"
    File.write!(stdin_path, input)

    env =
      [{"RUV_SWARM_STDIN", stdin_path}, {"RUV_SWARM_STDERR", stderr_path}] ++
        Enum.map(Keyword.get(opts, :env, []), fn {k, v} -> {to_string(k), to_string(v)} end)

    port_opts =
      [
        :binary,
        :exit_status,
        :use_stdio,
        :hide,
        args: ["-c", @launcher, "ruv_swarm_exec", exe | args],
        env: Enum.map(env, fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)
      ] ++ if(cd = opts[:cd], do: [cd: cd], else: [])

    try do
      port = Port.open({:spawn_executable, "/bin/sh"}, port_opts)
      # nil when the command already exited (and the port closed).
      os_pid = with {:os_pid, pid} <- Port.info(port, :os_pid), do: pid
      deadline = if timeout, do: System.monotonic_time(:millisecond) + timeout

      result = collect(port, os_pid, {[], 0, max_out}, {deadline, timeout}, work_id)
      finish(result, stderr_path)
    after
      File.rm(stdin_path)
      File.rm(stderr_path)
    end
  end

  defp collect(port, os_pid, {acc, size, max_out}, {deadline, timeout} = limit, work_id) do
    wait =
      if deadline, do: max(deadline - System.monotonic_time(:millisecond), 0), else: :infinity

    receive do
      {^port, {:data, chunk}} ->
        size = size + byte_size(chunk)

        if size > max_out do
          kill_tree(port, os_pid)
          {:error, "output exceeded #{max_out} bytes; command killed"}
        else
          collect(port, os_pid, {[acc | chunk], size, max_out}, limit, work_id)
        end

      {^port, {:exit_status, 0}} ->
        {:ok, IO.iodata_to_binary(acc)}

      {^port, {:exit_status, status}} ->
        {:exit, status}

      {:cancel, ^work_id, reason} ->
        kill_tree(port, os_pid)
        {:error, "cancelled: #{reason}"}

      {:EXIT, from, reason} when is_pid(from) ->
        # Our agent is gone (the only process we are linked to): take the
        # command down with us. Ports of earlier runs also send EXITs; they
        # are not pids and are ignored.
        kill_tree(port, os_pid)
        exit(reason)
    after
      wait ->
        kill_tree(port, os_pid)
        {:timeout, "command timed out after #{timeout} ms and was killed"}
    end
  end

  defp finish({:exit, status}, stderr_path) do
    {:error, "exit status #{status}: " <> stderr_tail(stderr_path)}
  end

  defp finish(other, _), do: other

  defp stderr_tail(path) do
    case File.read(path) do
      {:ok, ""} ->
        "(no stderr)"

      {:ok, text} when byte_size(text) > 2_000 ->
        "..." <> binary_part(text, byte_size(text), -2_000)

      {:ok, text} ->
        String.trim(text)

      {:error, _} ->
        "(no stderr)"
    end
  end

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

  # Kills the command and every descendant (found through /proc), so a
  # timed-out `claude -p` leaves no children behind.
  defp kill_tree(port, nil), do: close(port)

  defp kill_tree(port, os_pid) do
    # One kill for the whole tree; ones that already exited are skipped by kill.
    pids = Enum.map([os_pid | descendants(os_pid)], &Integer.to_string/1)
    System.cmd("kill", ["-KILL" | pids], stderr_to_stdout: true)
    close(port)
  end

  defp close(port) do
    try do
      Port.close(port)
    catch
      _, _ -> :ok
    end

    :ok
  end

  defp descendants(root) do
    children =
      Path.wildcard("/proc/[0-9]*/stat")
      |> Enum.flat_map(fn stat ->
        with {:ok, text} <- File.read(stat),
             [_, rest] <- String.split(text, ") ", parts: 2),
             [_state, ppid | _] <- String.split(rest, " ", parts: 3) do
          [{String.to_integer(Path.basename(Path.dirname(stat))), String.to_integer(ppid)}]
        else
          _ -> []
        end
      end)

    walk([root], children, [])
  end

  defp walk([], _all, found), do: found

  defp walk([p | rest], all, found) do
    kids = for {pid, ^p} <- all, do: pid
    walk(kids ++ rest, all, kids ++ found)
  end

  defp invalid(msg), do: {:error, {:invalid_argument, msg}}
end
