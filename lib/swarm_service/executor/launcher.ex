defmodule SwarmService.Executor.Launcher do
  @moduledoc """
  Starts an OS process under `ruv_swarm_launch` (`priv/native/`, built from
  `native/ruv_swarm_launch` by `mix compile`) and owns the port that talks
  to it. Every OS process the node starts for an agent goes through here: the
  command executor today, the Claude executor and stdio MCP servers next.

  What the launcher guarantees:

  * the command runs in its own session and process group, and the launcher
    is the subreaper of everything it starts: a double-forked or `setsid`
    descendant is still the launcher's descendant;
  * the whole tree ends, with nothing left behind, when the command exits
    (the unit ends with it; descendants still running are killed and
    counted in `:leftovers`), when `kill/1` is called, when the port closes
    (`close/1`, or the owning Elixir process exits) and when the VM dies
    (end of file on the launcher's stdin, and `PR_SET_PDEATHSIG`);
  * the command gets exactly the environment in `:env` — nothing of the
    node's own environment is inherited (see `base_env/1` for the usual
    minimum);
  * optional working directory and resource limits (`setrlimit`, soft and
    hard, never above the node's own hard limit).

  The owner of the port receives `{port, {:data, _}}` and
  `{port, {:exit_status, _}}` messages; `event/2` turns them into
  `{:started, os_pid}`, `{:stdout, bytes}`, `{:stderr, bytes}` (only with
  `stderr: :stream`), `{:exit, report}` (the last message; the launcher
  exits right after) and `{:launcher_exit, status}` (the launcher itself is
  gone; after a report this is just the end of the port). stdin is fed
  with `write/2` and closed with `close_input/1`.
  """

  @enforce_keys [:port]
  defstruct [:port]

  @typedoc "An open launcher: the port is owned by the process that opened it."
  @type t :: %__MODULE__{port: port()}

  @typedoc """
  How the unit ended: `:status` is `{:exited, code}`, `{:signaled, signal}`,
  `:killed` (after `kill/1`) or `{:spawn_failed, errno}`; `:leftovers` counts
  descendants that were still running and were killed; `:stderr` is the
  last 4 KiB the command wrote to stderr (the reason for a spawn failure).
  """
  @type report :: %{
          status:
            {:exited, non_neg_integer()}
            | {:signaled, pos_integer()}
            | :killed
            | {:spawn_failed, integer()},
          leftovers: non_neg_integer(),
          stderr: binary()
        }

  @typedoc "Resource limits applied to the command (and inherited by what it starts)."
  @type limits :: [
          cpu_seconds: pos_integer(),
          address_space_bytes: pos_integer(),
          open_files: pos_integer(),
          processes: pos_integer()
        ]

  @limit_flags %{
    cpu_seconds: "--rlimit-cpu",
    address_space_bytes: "--rlimit-as",
    open_files: "--rlimit-nofile",
    processes: "--rlimit-nproc"
  }

  @base_env ~w(PATH HOME LANG TMPDIR)

  @doc "Path of the launcher binary."
  @spec executable() :: Path.t()
  def executable do
    case :persistent_term.get({__MODULE__, :executable}, nil) do
      nil ->
        path = Application.app_dir(:swarm_service, ["priv", "native", "ruv_swarm_launch"])
        :persistent_term.put({__MODULE__, :executable}, path)
        path

      path ->
        path
    end
  end

  @doc """
  The environment a child gets by default: `PATH`, `HOME`, `LANG` and
  `TMPDIR` as the node has them (those that are set), with `extra` added
  on top (a map or a list of pairs; later entries win).
  """
  @spec base_env(Enumerable.t()) :: [{String.t(), String.t()}]
  def base_env(extra \\ []) do
    base = for name <- @base_env, value = System.get_env(name), do: {name, value}
    extra = Enum.map(extra, fn {k, v} -> {to_string(k), to_string(v)} end)
    names = MapSet.new(extra, &elem(&1, 0))

    Enum.reject(base, fn {k, _} -> k in names end) ++
      Enum.uniq_by(Enum.reverse(extra), &elem(&1, 0))
  end

  @doc """
  Starts `executable` (an absolute path) with `args` under the launcher.

  Options: `:env` (the complete environment, pairs of strings; default
  `base_env()`), `:cd`, `:limits` (see `t:limits/0`), `:stderr` (`:tail`,
  the default, or `:stream`).
  """
  @spec open(Path.t(), [String.t()], keyword()) :: {:ok, t()} | {:error, String.t()}
  def open(executable, args, opts \\ []) do
    env = Keyword.get_lazy(opts, :env, &base_env/0)

    flags =
      Enum.flat_map(env, fn {k, v} -> ["--env", "#{k}=#{v}"] end) ++
        if(cd = opts[:cd], do: ["--cd", cd], else: []) ++
        Enum.flat_map(Keyword.get(opts, :limits, []), fn {k, v} ->
          [Map.fetch!(@limit_flags, k), Integer.to_string(v)]
        end) ++
        if(opts[:stderr] == :stream, do: ["--stderr", "stream"], else: [])

    port =
      Port.open({:spawn_executable, executable()}, [
        {:packet, 4},
        :binary,
        :exit_status,
        :use_stdio,
        :hide,
        args: flags ++ ["--", executable | args]
      ])

    {:ok, %__MODULE__{port: port}}
  rescue
    e in [ArgumentError, ErlangError] ->
      {:error, "cannot start the launcher #{executable()}: " <> Exception.message(e)}
  end

  @doc "Sends `data` to the command's stdin."
  @spec write(t(), iodata()) :: :ok
  def write(%__MODULE__{port: port}, data), do: command(port, [0 | List.wrap(data)])

  @doc "Closes the command's stdin (end of input)."
  @spec close_input(t()) :: :ok
  def close_input(%__MODULE__{port: port}), do: command(port, [1])

  @doc "Ends the command and its whole tree; a report follows."
  @spec kill(t()) :: :ok
  def kill(%__MODULE__{port: port}), do: command(port, [2])

  @doc "Closes the port: the launcher ends the whole tree and exits, without a report."
  @spec close(t()) :: :ok
  def close(%__MODULE__{port: port}) do
    Port.close(port)
    :ok
  catch
    _, _ -> :ok
  end

  defp command(port, iodata) do
    Port.command(port, iodata)
    :ok
  catch
    # The port is already closed: the exit message says why.
    _, _ -> :ok
  end

  @doc """
  Decodes a message received by the port's owner: `:other` when it is not
  from this launcher.
  """
  @spec event(t(), term()) ::
          {:started, pos_integer()}
          | {:stdout, binary()}
          | {:stderr, binary()}
          | {:exit, report()}
          | {:launcher_exit, integer()}
          | :other
  def event(%__MODULE__{port: port}, {port, {:data, data}}), do: decode(data)
  def event(%__MODULE__{port: port}, {port, {:exit_status, status}}), do: {:launcher_exit, status}
  def event(_launcher, _msg), do: :other

  defp decode(<<0, bytes::binary>>), do: {:stdout, bytes}
  defp decode(<<1, bytes::binary>>), do: {:stderr, bytes}
  defp decode(<<3, pid::32>>), do: {:started, pid}

  defp decode(<<2, kind, value::signed-32, leftovers::32, tail::binary>>) do
    status =
      case kind do
        0 -> {:exited, value}
        1 -> {:signaled, value}
        2 -> {:spawn_failed, value}
        3 -> :killed
      end

    {:exit, %{status: status, leftovers: leftovers, stderr: tail}}
  end

  @doc """
  Kills and closes, then waits (at most `timeout_ms`) for the final report,
  discarding output. Returns the report, or `nil` if none came.
  """
  @spec stop(t(), timeout()) :: report() | nil
  def stop(%__MODULE__{port: port} = launcher, timeout_ms \\ 5_000) do
    kill(launcher)
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    await_report(launcher, port, deadline)
  end

  defp await_report(launcher, port, deadline) do
    wait = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, _} = msg ->
        case event(launcher, msg) do
          {:exit, report} ->
            await_exit(port, deadline)
            report

          {:launcher_exit, _} ->
            nil

          _ ->
            await_report(launcher, port, deadline)
        end
    after
      wait ->
        close(launcher)
        nil
    end
  end

  @doc false
  # After the report, the launcher exits at once: collect its exit status
  # so the port is gone when the caller goes on.
  def await_exit(port, deadline) do
    wait = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:exit_status, _}} -> :ok
    after
      wait ->
        try do
          Port.close(port)
        catch
          _, _ -> :ok
        end

        :ok
    end
  end
end
