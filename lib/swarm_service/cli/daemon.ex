defmodule SwarmService.CLI.Daemon do
  @moduledoc """
  Starting a node in the background and stopping a running one.

  A detached node is a fresh VM started through `setsid` with stdin from
  `/dev/null` and stdout/stderr to `logs/boot.log`, running the same
  command line in the foreground: `elixir -S mix swarm.server ...` from a
  source tree, `bin/ruv-swarm start ...` from a release. Because the shell
  scripts in between `exec`, the PID the launcher reports is the VM's own,
  so a node that dies while booting is noticed at once and its boot output
  shown, instead of waiting for a timeout.
  """

  alias SwarmService.CLI.{HealthClient, OSProcess, PidFile}

  @poll_ms 25

  @doc """
  Launches `argv` (program first) detached with extra `env`, appending its
  output to `boot_log`. Returns the OS PID.
  """
  @spec launch([String.t()], [{String.t(), String.t()}], Path.t(), Path.t()) ::
          {:ok, pos_integer()} | {:error, String.t()}
  def launch([program | _] = argv, env, dir, boot_log) do
    # setsid: the node must not die with the terminal or get its Ctrl-C.
    setsid = if System.find_executable("setsid"), do: "setsid ", else: "nohup "
    script = ~s(#{setsid}"$@" </dev/null >"$RUV_SWARM_BOOT_LOG" 2>&1 & echo $!)
    env = [{"RUV_SWARM_BOOT_LOG", boot_log} | env]

    case System.cmd("/bin/sh", ["-c", script, "sh" | argv], env: env, cd: dir) do
      {out, 0} ->
        case Integer.parse(String.trim(out)) do
          {pid, ""} -> {:ok, pid}
          _ -> {:error, "could not start #{program}: #{String.trim(out)}"}
        end

      {out, status} ->
        {:error, "could not start #{program} (exit #{status}): #{String.trim(out)}"}
    end
  end

  @doc """
  Waits until the node `pid` has claimed `pid_file` and answers `/health` on
  `health_port`. Fails as soon as the process exits.
  """
  @spec await_healthy(pos_integer(), Path.t(), :inet.port_number(), non_neg_integer()) ::
          {:ok, map()} | {:error, :exited | :timeout}
  def await_healthy(pid, pid_file, health_port, timeout_ms) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    poll(pid, pid_file, health_port, deadline)
  end

  defp poll(pid, pid_file, health_port, deadline) do
    cond do
      not OSProcess.alive?(pid) ->
        {:error, :exited}

      System.monotonic_time(:millisecond) > deadline ->
        {:error, :timeout}

      true ->
        with {:ok, %{"pid" => ^pid}} <- PidFile.read(pid_file),
             # "ok" means the gateway accepts connections too.
             {:ok, 200, %{"pid" => ^pid, "status" => "ok"} = report} <-
               HealthClient.get(health_port, 1_000) do
          {:ok, report}
        else
          _ ->
            Process.sleep(@poll_ms)
            poll(pid, pid_file, health_port, deadline)
        end
    end
  end

  @doc """
  Stops the node `info` names (a PID file's contents: `"pid"`, `"start_time"`,
  `"boot_id"`): SIGTERM (the VM shuts its applications down in order), then
  SIGKILL if it is still there after `timeout_ms`. Before every signal the
  process's identity is checked again (`OSProcess.same_process?/1`): a
  process that is not the node, or cannot be identified, is never
  signalled; once the identity no longer matches the node is gone.
  """
  @spec stop(map(), non_neg_integer()) ::
          {:stopped, non_neg_integer()} | {:killed, non_neg_integer()} | {:error, String.t()}
  def stop(%{"pid" => pid} = info, timeout_ms) do
    started = System.monotonic_time(:millisecond)
    elapsed = fn -> System.monotonic_time(:millisecond) - started end

    if OSProcess.same_process?(info) do
      with :ok <- OSProcess.signal(pid, :term) do
        if OSProcess.wait_gone(info, timeout_ms) do
          {:stopped, elapsed.()}
        else
          with :ok <- signal_same(info, :kill) do
            if OSProcess.wait_gone(info, 5_000),
              do: {:killed, elapsed.()},
              else: {:error, "pid #{pid} survived SIGKILL"}
          end
        end
      end
    else
      {:error, "pid #{pid} is not the node that wrote the PID file; not signalled"}
    end
  end

  defp signal_same(%{"pid" => pid} = info, signal) do
    # Gone in between: nothing to kill, and the PID may be someone else's.
    if OSProcess.same_process?(info), do: OSProcess.signal(pid, signal), else: :ok
  end

  @doc "The last `n` lines of `path`, for showing why a boot failed."
  @spec tail(Path.t(), pos_integer()) :: String.t()
  def tail(path, n) do
    case File.read(path) do
      {:ok, text} -> text |> String.split("\n") |> Enum.take(-n) |> Enum.join("\n")
      {:error, _} -> ""
    end
  end
end
