Code.require_file("cli_helpers.exs", __DIR__)

defmodule SwarmService.CLI.PidIdentityTest do
  # Issue #11: a PID file naming a process that is not the node that wrote
  # it (here an unrelated Erlang VM this test starts) is stale: status and
  # stop say so and remove it, start replaces it, and nothing signals it.
  use ExUnit.Case, async: false

  import SwarmService.CLITest.Helpers
  alias SwarmService.CLI.{OSProcess, PidFile}

  setup do
    erl = System.find_executable("erl")

    port =
      Port.open({:spawn_executable, erl}, [
        :nouse_stdio,
        args: ["-noshell", "-eval", "timer:sleep(infinity)."]
      ])

    {:os_pid, pid} = Port.info(port, :os_pid)
    on_exit(fn -> kill(pid) end)
    # A VM: its command line names beam.
    SwarmService.Test.Eventually.eventually(fn -> OSProcess.beam_alive?(pid) end)
    {:ok, identity} = OSProcess.identity(pid)
    %{vm: pid, identity: identity}
  end

  test "status and stop leave an unrelated VM alone and remove the file", %{vm: vm, identity: id} do
    # The PID file of a node that ran before, its pid now reused by this VM.
    for forged <- [%{}, %{"start_time" => id["start_time"] - 1, "boot_id" => id["boot_id"]}] do
      with_home(fn home ->
        pid_file = Path.join(home, "mcp-server.pid")
        File.mkdir_p!(home)

        :ok =
          PidFile.write(pid_file, Map.merge(%{"pid" => vm, "node" => "gone@127.0.0.1"}, forged))

        assert {3, out, _} = cli(["status"])
        assert out =~ "not running"
        assert out =~ "pid #{vm} is another process"
        refute File.exists?(pid_file)

        :ok =
          PidFile.write(pid_file, Map.merge(%{"pid" => vm, "node" => "gone@127.0.0.1"}, forged))

        assert {0, out, _} = cli(["stop", "--timeout", "200"])
        assert out =~ "not running"
        refute File.exists?(pid_file)
        assert OSProcess.alive?(vm), "stop signalled a process it could not identify"

        :ok =
          PidFile.write(pid_file, Map.merge(%{"pid" => vm, "node" => "gone@127.0.0.1"}, forged))

        me = String.to_integer(System.pid())
        assert {:ok, note} = PidFile.claim(pid_file, %{"pid" => me})
        assert note =~ "pid #{vm} is another process"
        assert {:running, %{"pid" => ^me}} = PidFile.state(pid_file)
      end)
    end

    assert OSProcess.alive?(vm)
  end

  test "the file records the node's identity and a matching process is running", %{vm: vm} do
    with_home(fn home ->
      pid_file = Path.join(home, "mcp-server.pid")
      File.mkdir_p!(home)
      me = String.to_integer(System.pid())
      {:ok, nil} = PidFile.claim(pid_file, %{"pid" => me, "node" => "me@127.0.0.1"})
      {:ok, info} = PidFile.read(pid_file)
      assert {:ok, %{"start_time" => st, "boot_id" => boot}} = OSProcess.identity(me)
      assert %{"start_time" => ^st, "boot_id" => ^boot, "node" => "me@127.0.0.1"} = info
      assert {:running, _} = PidFile.state(pid_file)
      # The same file edited to point at another VM is not running.
      :ok = PidFile.write(pid_file, %{info | "pid" => vm})
      assert {:stale, _} = PidFile.state(pid_file)
    end)
  end
end
