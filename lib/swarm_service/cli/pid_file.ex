defmodule SwarmService.CLI.PidFile do
  @moduledoc """
  The PID file of a node started by the command line.

  The file is JSON (`pid`, `node`, `started_at`, ports, URLs, mode) so that
  `status` can describe the node without talking to it. It is written with
  mode 0600 to a temporary file and renamed into place, so a reader never
  sees half a file.

  Claiming the file is guarded by a lock file created with `O_EXCL`
  (`mcp-server.pid.lock`): two nodes starting at once cannot both decide the
  PID file is free. The file records the identity of the node's process
  (`start_time`, field 22 of `/proc/<pid>/stat`, and `boot_id`, see
  `SwarmService.CLI.OSProcess`) next to its node name: a PID file whose
  process is gone, or whose PID now belongs to any other process (another
  program, another Erlang VM, a file without an identity), is stale and is
  replaced; nothing ever signals such a process. A
  file that cannot be read or parsed is reported, never silently replaced:
  a person should look before a possibly running node is orphaned.
  """

  alias SwarmService.CLI.{OSProcess, Paths}

  @typedoc "Contents of the PID file, string keys as decoded from JSON."
  @type info :: %{required(String.t()) => term()}

  @lock_wait_ms 3_000

  @doc """
  Reads the PID file: `:none` when absent, `{:running, info}` when its
  process is alive and is the one that wrote it, `{:stale, info}` when not
  (`stale_reason/1` says why), `{:error, message}` when the file is
  unreadable or corrupt.
  """
  @spec state(Path.t()) :: :none | {:running, info} | {:stale, info} | {:error, String.t()}
  def state(path) do
    case read(path) do
      {:ok, %{"pid" => pid} = info} ->
        cond do
          OSProcess.same_process?(info) -> {:running, info}
          OSProcess.alive?(pid) -> {:stale, Map.put(info, "stale_reason", :other_process)}
          true -> {:stale, Map.put(info, "stale_reason", :not_running)}
        end

      other ->
        other
    end
  end

  @doc "Why a `{:stale, info}` file is stale, for messages."
  @spec stale_reason(info) :: String.t()
  def stale_reason(%{"pid" => pid, "stale_reason" => :other_process}),
    do: "pid #{pid} is another process, not the node that wrote the file"

  def stale_reason(%{"pid" => pid}), do: "pid #{pid} is not running"

  @doc "Reads and validates the PID file."
  @spec read(Path.t()) :: {:ok, info} | :none | {:error, String.t()}
  def read(path) do
    case File.read(path) do
      {:ok, body} ->
        case InterfaceService.Json.decode(body) do
          {:ok, %{"pid" => pid} = info} when is_integer(pid) and pid > 0 ->
            {:ok, info}

          _ ->
            {:error,
             "PID file #{path} is corrupt; if no ruv-swarm node is running, delete it and retry"}
        end

      {:error, :enoent} ->
        :none

      {:error, reason} ->
        {:error, "cannot read PID file " <> Paths.describe(path, reason)}
    end
  end

  @doc """
  Claims the PID file for the calling OS process: writes `info` (which must
  hold `"pid"`) unless another live node holds it. Returns `{:ok, note}`
  where `note` mentions a stale file that was replaced, or an error.
  """
  @spec claim(Path.t(), info) ::
          {:ok, nil | String.t()} | {:already_running, info} | {:error, String.t()}
  def claim(path, %{"pid" => pid} = info) do
    # Who the claimant is, so nobody mistakes a later process for it.
    info =
      case OSProcess.identity(pid) do
        {:ok, identity} -> Map.merge(info, identity)
        :error -> info
      end

    with_lock(path, fn ->
      case state(path) do
        :none ->
          with :ok <- write(path, info), do: {:ok, nil}

        {:stale, old} ->
          with :ok <- write(path, info),
               do: {:ok, "removed stale PID file (#{stale_reason(old)})"}

        {:running, old} ->
          {:already_running, old}

        {:error, _} = error ->
          error
      end
    end)
  end

  @doc "Removes the PID file if it still names `pid` (never another node's file)."
  @spec release(Path.t(), pos_integer()) :: :ok
  def release(path, pid) do
    case read(path) do
      {:ok, %{"pid" => ^pid}} -> _ = File.rm(path)
      _ -> :ok
    end

    :ok
  end

  @doc "Removes a stale PID file; used after a forced stop."
  @spec remove(Path.t()) :: :ok
  def remove(path) do
    _ = File.rm(path)
    :ok
  end

  @doc "Writes `info` atomically with mode 0600."
  @spec write(Path.t(), info) :: :ok | {:error, String.t()}
  def write(path, info) do
    write_private(path, [:jiffy.encode(info, [:use_nil, :pretty]), ?\n])
  end

  @doc "Writes `body` to `path` atomically (temporary file + rename), mode 0600."
  @spec write_private(Path.t(), iodata()) :: :ok | {:error, String.t()}
  def write_private(path, body) do
    tmp = "#{path}.#{System.pid()}.tmp"

    # Create empty and chmod before the content goes in, so the data is never
    # readable by others, whatever the umask.
    with :ok <- posix(tmp, File.write(tmp, "")),
         :ok <- posix(tmp, File.chmod(tmp, 0o600)),
         :ok <- posix(tmp, File.write(tmp, body)),
         :ok <- posix(path, File.rename(tmp, path)) do
      :ok
    else
      error ->
        _ = File.rm(tmp)
        error
    end
  end

  defp with_lock(path, fun) do
    lock = path <> ".lock"
    deadline = System.monotonic_time(:millisecond) + @lock_wait_ms

    case acquire(lock, deadline) do
      :ok ->
        try do
          fun.()
        after
          _ = File.rm(lock)
        end

      error ->
        error
    end
  end

  defp acquire(lock, deadline) do
    case File.open(lock, [:write, :exclusive]) do
      {:ok, io} ->
        IO.binwrite(io, System.pid())
        File.close(io)

      {:error, :eexist} ->
        holder = lock |> File.read() |> holder_pid()

        cond do
          # An empty lock is one being written right now, unless it is old.
          (holder == nil and old?(lock)) or (holder != nil and not OSProcess.alive?(holder)) ->
            # Left behind by a start that died while holding it.
            _ = File.rm(lock)
            acquire(lock, deadline)

          System.monotonic_time(:millisecond) >= deadline ->
            {:error, "another start is in progress (lock #{lock} held by pid #{holder})"}

          true ->
            Process.sleep(20)
            acquire(lock, deadline)
        end

      {:error, reason} ->
        {:error, "cannot create lock " <> Paths.describe(lock, reason)}
    end
  end

  defp old?(lock) do
    case File.stat(lock, time: :posix) do
      {:ok, %{mtime: mtime}} -> System.os_time(:second) - mtime > 2
      {:error, _} -> true
    end
  end

  defp holder_pid({:ok, text}) do
    case Integer.parse(String.trim(text)) do
      {pid, ""} when pid > 0 -> pid
      _ -> nil
    end
  end

  defp holder_pid(_), do: nil

  defp posix(_path, :ok), do: :ok

  defp posix(path, {:error, reason}),
    do: {:error, "cannot write " <> Paths.describe(path, reason)}
end
