Code.require_file("cli_helpers.exs", __DIR__)

defmodule SwarmService.CLI.PidFileTest do
  use ExUnit.Case, async: true

  import SwarmService.CLITest.Helpers
  alias SwarmService.CLI.PidFile

  setup do
    dir = Path.join(System.tmp_dir!(), "pid-file-test-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf(dir) end)
    %{path: Path.join(dir, "mcp-server.pid")}
  end

  test "claim writes JSON with mode 0600 and no temporary files", %{path: path} do
    me = String.to_integer(System.pid())
    assert {:ok, nil} = PidFile.claim(path, %{"pid" => me, "node" => "n@h"})
    assert {:ok, %{"pid" => ^me, "node" => "n@h"}} = PidFile.read(path)
    assert {:ok, %{mode: mode}} = File.stat(path)
    assert Bitwise.band(mode, 0o777) == 0o600
    assert File.ls!(Path.dirname(path)) == ["mcp-server.pid"]
  end

  test "a live VM keeps its claim; a second claim is refused", %{path: path} do
    # The test VM itself is a live Erlang VM.
    me = String.to_integer(System.pid())
    {:ok, nil} = PidFile.claim(path, %{"pid" => me})
    assert {:already_running, %{"pid" => ^me}} = PidFile.claim(path, %{"pid" => me + 1})
    assert {:running, _} = PidFile.state(path)
  end

  test "a stale file is replaced and reported", %{path: path} do
    dead = dead_pid()
    :ok = PidFile.write(path, %{"pid" => dead})
    assert {:stale, %{"pid" => ^dead}} = PidFile.state(path)
    assert {:ok, note} = PidFile.claim(path, %{"pid" => String.to_integer(System.pid())})
    assert note =~ "stale PID file (pid #{dead} is not running)"
  end

  test "a live process that is not a VM does not hold the file", %{path: path} do
    port = Port.open({:spawn_executable, System.find_executable("sleep")}, args: ["30"])
    {:os_pid, pid} = Port.info(port, :os_pid)
    :ok = PidFile.write(path, %{"pid" => pid})
    assert {:stale, _} = PidFile.state(path)
    Port.close(port)
    kill(pid)
  end

  test "corrupt and unreadable files are errors, never overwritten", %{path: path} do
    File.write!(path, "{not json")
    assert {:error, message} = PidFile.claim(path, %{"pid" => 1})
    assert message =~ "is corrupt"
    assert File.read!(path) == "{not json"

    File.write!(path, ~s({"pid": "twelve"}))
    assert {:error, _} = PidFile.state(path)

    File.rm!(path)
    File.mkdir!(path)
    assert {:error, message} = PidFile.state(path)
    assert message =~ "cannot read PID file" and message =~ "is a directory"
  end

  test "release removes only our own file", %{path: path} do
    :ok = PidFile.write(path, %{"pid" => 4242})
    :ok = PidFile.release(path, 1)
    assert File.exists?(path)
    :ok = PidFile.release(path, 4242)
    refute File.exists?(path)
  end

  test "a lock left by a dead process does not block", %{path: path} do
    File.write!(path <> ".lock", Integer.to_string(dead_pid()))
    assert {:ok, nil} = PidFile.claim(path, %{"pid" => String.to_integer(System.pid())})
    refute File.exists?(path <> ".lock")
  end

  test "concurrent claims: exactly one wins", %{path: path} do
    me = String.to_integer(System.pid())

    results =
      1..8
      |> Enum.map(fn _ -> Task.async(fn -> PidFile.claim(path, %{"pid" => me}) end) end)
      |> Enum.map(&Task.await/1)

    assert Enum.count(results, &match?({:ok, _}, &1)) == 1
    assert Enum.count(results, &match?({:already_running, _}, &1)) == 7
  end
end
