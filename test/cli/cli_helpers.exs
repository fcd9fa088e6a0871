defmodule SwarmService.CLITest.Helpers do
  @moduledoc false
  # Shared by the command line tests: temporary state directories, free
  # ports, and running `SwarmService.CLI.main/1` with its output captured.

  import ExUnit.CaptureIO

  @doc "Runs `fun.(home)` with RUV_SWARM_HOME pointing at a fresh directory."
  def with_home(fun) do
    home = Path.join(System.tmp_dir!(), "ruv-swarm-test-#{System.unique_integer([:positive])}")
    previous = System.get_env("RUV_SWARM_HOME")
    System.put_env("RUV_SWARM_HOME", home)

    try do
      fun.(home)
    after
      if previous,
        do: System.put_env("RUV_SWARM_HOME", previous),
        else: System.delete_env("RUV_SWARM_HOME")

      File.rm_rf(home)
    end
  end

  @doc "Runs the CLI; returns `{exit_code, stdout, stderr}`."
  def cli(args) do
    parent = self()

    stderr =
      capture_io(:stderr, fn ->
        stdout = capture_io(fn -> send(parent, {:code, SwarmService.CLI.main(args)}) end)
        send(parent, {:stdout, stdout})
      end)

    assert_received_value = fn tag ->
      receive do
        {^tag, value} -> value
      after
        0 -> raise "no #{tag}"
      end
    end

    {assert_received_value.(:code), assert_received_value.(:stdout), stderr}
  end

  @doc "A TCP port that was free a moment ago."
  def free_port do
    {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(socket)
    :gen_tcp.close(socket)
    port
  end

  @doc "The PID of a process that has already exited."
  def dead_pid do
    {out, 0} = System.cmd("sh", ["-c", "echo $$"])
    String.to_integer(String.trim(out))
  end

  @doc "Writes a PID file naming `pid` (and its identity, if it is alive), as a node would."
  def write_pid_file(home, pid, extra \\ %{}) do
    File.mkdir_p!(home)

    identity =
      case SwarmService.CLI.OSProcess.identity(pid) do
        {:ok, identity} -> identity
        :error -> %{}
      end

    info = %{"pid" => pid, "node" => "test@127.0.0.1"} |> Map.merge(identity) |> Map.merge(extra)
    :ok = SwarmService.CLI.PidFile.write(Path.join(home, "mcp-server.pid"), info)
  end

  @doc "Kills an OS process we started, by pid."
  def kill(pid), do: System.cmd("kill", ["-KILL", to_string(pid)], stderr_to_stdout: true)
end
