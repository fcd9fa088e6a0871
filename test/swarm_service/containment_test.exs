defmodule SwarmService.ContainmentTest do
  # Every OS process a command agent starts stays under the node's control
  # (issue #11). Processes are counted from /proc: each test tags what it
  # starts with a unique environment variable and reads /proc/*/environ.
  # Cleanup only ever signals processes carrying this test's tag.
  use ExUnit.Case, async: false

  import SwarmService.Test.Eventually
  alias SwarmService.Executor.Launcher
  alias SwarmService.RuvSwarm
  alias SwarmService.Test.PeerCluster

  @tag_var "RUV_CONTAINMENT_TAG"

  setup do
    tag = "t#{System.unique_integer([:positive])}x#{System.os_time()}"
    on_exit(fn -> for pid <- tagged(tag), do: System.cmd("kill", ["-9", pid]) end)
    %{tag: tag}
  end

  # Live (non-zombie) processes whose environment holds our tag.
  defp tagged(tag) do
    needle = "#{@tag_var}=#{tag}\0"

    for dir <- Path.wildcard("/proc/[0-9]*"),
        {:ok, env} <- [File.read(dir <> "/environ")],
        String.contains?(env, needle),
        not zombie?(dir),
        do: Path.basename(dir)
  end

  defp zombie?(dir) do
    case File.read(dir <> "/stat") do
      {:ok, stat} -> match?([_, " Z" <> _], String.split(stat, ")", parts: 2))
      _ -> true
    end
  end

  defp none_left(tag, timeout \\ 5_000), do: eventually(fn -> tagged(tag) == [] end, timeout)

  defp swarm!(opts) do
    {:ok, id} = RuvSwarm.spawn_swarm(opts)
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  defp cmd(tag, script, opts \\ []),
    do: {:command, ["sh", "-c", script], Keyword.put(opts, :env, %{@tag_var => tag})}

  defp run(swarm, input, timeout \\ 10_000) do
    {:ok, t} = RuvSwarm.orchestrate(swarm, %{input: input, retries: 1})
    RuvSwarm.await_task(t, timeout)
  end

  test "a double-forked child does not survive a timeout", %{tag: tag} do
    s = swarm!(agents: 1, executor: cmd(tag, "(sleep 6003 &) & sleep 6003", timeout_ms: 300))
    assert {:error, {:timed_out, _}} = run(s, "")
    none_left(tag)
  end

  test "a double-forked child does not survive task_cancel", %{tag: tag} do
    s = swarm!(agents: 1, executor: cmd(tag, "(sleep 6003 &) & sleep 6003"))
    {:ok, t} = RuvSwarm.orchestrate(s, "x")
    eventually(fn -> length(tagged(tag)) >= 2 end)
    RuvSwarm.cancel_task(t)
    none_left(tag)
  end

  test "a double-forked child does not survive swarm_destroy", %{tag: tag} do
    {:ok, s} = RuvSwarm.spawn_swarm(agents: 1, executor: cmd(tag, "(sleep 6003 &) & sleep 6003"))
    {:ok, _} = RuvSwarm.orchestrate(s, "x")
    eventually(fn -> length(tagged(tag)) >= 2 end)
    RuvSwarm.destroy_swarm(s)
    none_left(tag)
  end

  test "a double-forked child does not survive remove_agent", %{tag: tag} do
    s = swarm!(agents: 0, max_agents: 1)
    {:ok, a} = RuvSwarm.spawn_agent(s, executor: cmd(tag, "(sleep 6003 &) & sleep 6003"))
    {:ok, _} = RuvSwarm.orchestrate(s, "x")
    eventually(fn -> length(tagged(tag)) >= 2 end)
    RuvSwarm.remove_agent(a)
    none_left(tag)
  end

  test "exit 0 with a child still holding stdout is a success, and the child ends", %{tag: tag} do
    s = swarm!(agents: 1, executor: cmd(tag, "sleep 6004 & echo done", timeout_ms: 3_000))
    assert {:ok, "done\n"} = run(s, "")
    none_left(tag)
  end

  test "children of a command that exits normally end with it", %{tag: tag} do
    script = "sleep 6005 >/dev/null 2>&1 & (setsid sleep 6005 >/dev/null 2>&1 &); echo ok"
    s = swarm!(agents: 1, executor: cmd(tag, script))
    assert {:ok, "ok\n"} = run(s, "")
    none_left(tag)
  end

  test "a failure says that leftover processes were killed", %{tag: tag} do
    s = swarm!(agents: 1, executor: cmd(tag, "sleep 6006 >/dev/null 2>&1 & echo bad >&2; exit 4"))
    assert {:error, {:failed, msg}} = run(s, "")
    assert msg =~ "exit status 4: bad"
    assert msg =~ "1 leftover process"
    none_left(tag)
  end

  test "a command that kills its launcher still leaves nothing in its group", %{tag: tag} do
    s = swarm!(agents: 1, executor: cmd(tag, "sleep 6012 & kill -9 $PPID; sleep 6012"))
    assert {:error, {:failed, msg}} = run(s, "")
    assert msg =~ "launcher exited unexpectedly"
    none_left(tag)
  end

  test "a command forking as fast as it can leaves no survivor", %{tag: tag} do
    s =
      swarm!(agents: 1, executor: cmd(tag, "while :; do (sleep 6007 &) & done", timeout_ms: 300))

    assert {:error, {:timed_out, _}} = run(s, "")
    none_left(tag)
  end

  test "200 tasks, each with a grandchild and a double-forked great-grandchild, leave nothing",
       %{tag: tag} do
    script = "sleep 6008 >/dev/null & (sh -c 'sleep 6008 &' &) ; cat"
    s = swarm!(agents: 4, executor: cmd(tag, script))

    ids = for i <- 1..200, do: elem(RuvSwarm.orchestrate(s, "task #{i}"), 1)

    for {id, i} <- Enum.with_index(ids, 1),
        do: assert({:ok, "task #{i}"} == RuvSwarm.await_task(id, 30_000))

    none_left(tag)
  end

  test "a child gets a minimal environment, never the node's settings or tokens", %{tag: tag} do
    System.put_env("RUV_SWARM_TOKENS", "node-secret-#{tag}")
    on_exit(fn -> System.delete_env("RUV_SWARM_TOKENS") end)

    s = swarm!(agents: 1, executor: {:command, ["env"], env: %{"EXTRA" => "1"}})
    assert {:ok, out} = run(s, "")
    refute out =~ "node-secret"
    refute out =~ "RUV_SWARM"
    names = out |> String.split("\n", trim: true) |> Enum.map(&hd(String.split(&1, "=")))
    assert "EXTRA" in names
    assert names -- ~w(PATH HOME LANG TMPDIR EXTRA) == []
  end

  test "limits are applied to the command" do
    s =
      swarm!(
        agents: 1,
        executor:
          {:command, ["sh", "-c", "ulimit -n; ulimit -t"],
           limits: [open_files: 64, cpu_seconds: 7]}
      )

    assert {:ok, "64\n7\n"} = run(s, "")

    assert {:error, {:invalid_argument, _}} =
             RuvSwarm.spawn_swarm(executor: {:command, ["true"], limits: [bogus: 1]})
  end

  test "the tree ends when the Elixir process owning the launcher dies", %{tag: tag} do
    parent = self()
    sh = System.find_executable("sh")

    owner =
      spawn(fn ->
        {:ok, _} =
          Launcher.open(sh, ["-c", "(sleep 6011 &) ; sleep 6011"], env: [{@tag_var, tag}])

        send(parent, :opened)
        Process.sleep(:infinity)
      end)

    assert_receive :opened
    eventually(fn -> length(tagged(tag)) >= 2 end)
    Process.exit(owner, :kill)
    none_left(tag)
  end

  test "a long-lived child talks over stdin/stdout, as an MCP stdio server would", %{tag: tag} do
    {:ok, l} = Launcher.open(System.find_executable("cat"), [], env: [{@tag_var, tag}])
    assert_receive msg
    assert {:started, pid} = Launcher.event(l, msg)
    assert is_integer(pid)

    for line <- ["one\n", "two\n"] do
      :ok = Launcher.write(l, line)
      assert_receive msg
      assert {:stdout, ^line} = Launcher.event(l, msg)
    end

    :ok = Launcher.close_input(l)
    assert_receive msg
    assert {:exit, %{status: {:exited, 0}, leftovers: 0}} = Launcher.event(l, msg)
    assert_receive msg
    assert {:launcher_exit, 0} = Launcher.event(l, msg)
    none_left(tag)
  end

  @tag timeout: 120_000
  test "kill -9 of a node running 20 command agents leaves none of their processes", %{tag: tag} do
    [peer] = PeerCluster.start(1)
    script = "sleep 6009 >/dev/null & (sleep 6009 >/dev/null &) ; sleep 6009"

    {:ok, s} =
      PeerCluster.rpc(peer, RuvSwarm, :spawn_swarm, [[agents: 20, executor: cmd(tag, script)]])

    for i <- 1..20, do: {:ok, _} = PeerCluster.rpc(peer, RuvSwarm, :orchestrate, [s, "t#{i}"])
    # At least three tagged processes per agent (sh may exec its last sleep).
    eventually(fn -> length(tagged(tag)) >= 60 end, 30_000)

    {_, 0} = System.cmd("kill", ["-9", PeerCluster.os_pid(peer)])
    none_left(tag, 2_000)
  end
end
