Code.require_file("cli_helpers.exs", __DIR__)

defmodule SwarmService.CLI.CommandsTest do
  @moduledoc false
  # Runs the real commands against a temporary RUV_SWARM_HOME. The lifecycle
  # test starts real detached nodes (`elixir -S mix swarm.server`) on free
  # ports and stops them by pid. Global environment: not async.
  use ExUnit.Case, async: false

  import SwarmService.CLITest.Helpers
  import SwarmService.Test.Eventually
  alias SwarmService.CLI.{HealthClient, OSProcess, PidFile}

  @moduletag timeout: 300_000

  describe "bad input" do
    test "unknown flags and commands: usage error, exit 2" do
      with_home(fn home ->
        assert {2, "", err} = cli(~w(start --bogus))
        assert err =~ "unknown option --bogus" and err =~ "usage:"
        assert {2, _, err} = cli(["frobnicate"])
        assert err =~ ~s(unknown command "frobnicate")
        refute File.exists?(home), "bad usage must not touch the state directory"
      end)
    end

    test "status and stop with nothing running" do
      with_home(fn _home ->
        assert {3, out, ""} = cli(["status"])
        assert out =~ "not running"
        assert {0, out, ""} = cli(["stop"])
        assert out =~ "not running"
      end)
    end

    test "a stale PID file is detected and cleaned" do
      with_home(fn home ->
        dead = dead_pid()
        write_pid_file(home, dead)
        assert {3, out, _} = cli(["status"])
        assert out =~ "removed stale PID file for pid #{dead}"
        refute File.exists?(Path.join(home, "mcp-server.pid"))
      end)
    end

    test "a corrupt PID file: clear message, exit 1, file left for a person to inspect" do
      with_home(fn home ->
        File.mkdir_p!(home)
        pid_file = Path.join(home, "mcp-server.pid")
        File.write!(pid_file, "garbage")

        for args <- [["status"], ["stop"], ~w(start --detached --port #{free_port()})] do
          assert {1, _, err} = cli(args)
          assert err =~ "PID file #{pid_file} is corrupt"
        end

        assert File.read!(pid_file) == "garbage"
      end)
    end

    test "an unreadable PID file: clear message, exit 1" do
      with_home(fn home ->
        File.mkdir_p!(Path.join(home, "mcp-server.pid"))
        assert {1, _, err} = cli(["status"])
        assert err =~ "cannot read PID file" and err =~ "is a directory"
      end)
    end

    test "a missing home directory" do
      missing = Path.join(System.tmp_dir!(), "no-such-dir-#{System.unique_integer([:positive])}")
      previous = System.get_env("RUV_SWARM_HOME")
      System.put_env("RUV_SWARM_HOME", Path.join(missing, "state"))

      try do
        assert {1, _, err} = cli(["status"])
        assert err =~ "parent directory #{missing} does not exist"
        refute File.exists?(missing)
      after
        if previous,
          do: System.put_env("RUV_SWARM_HOME", previous),
          else: System.delete_env("RUV_SWARM_HOME")
      end
    end

    test "HOME unset and no override" do
      home = System.get_env("HOME")
      override = System.get_env("RUV_SWARM_HOME")
      System.delete_env("HOME")
      System.delete_env("RUV_SWARM_HOME")

      try do
        assert {1, _, err} = cli(["status"])
        assert err =~ "set HOME or RUV_SWARM_HOME"
      after
        if home, do: System.put_env("HOME", home)
        if override, do: System.put_env("RUV_SWARM_HOME", override)
      end
    end

    test "no permission to create the state directory" do
      parent = Path.join(System.tmp_dir!(), "ruv-swarm-ro-#{System.unique_integer([:positive])}")
      File.mkdir_p!(parent)
      File.chmod!(parent, 0o555)
      state = Path.join(parent, "state")

      try do
        if root?() do
          # root ignores file modes: run the command as `nobody`.
          {out, code} = run_as_nobody(["status"], state)
          assert code == 1, out
          assert out =~ "cannot create #{state}: permission denied"
        else
          System.put_env("RUV_SWARM_HOME", state)
          assert {1, _, err} = cli(["status"])
          assert err =~ "permission denied"
          System.delete_env("RUV_SWARM_HOME")
        end
      after
        File.chmod!(parent, 0o755)
        File.rm_rf!(parent)
      end
    end

    test "a port already in use: exit 1, nothing started, no PID file" do
      with_home(fn home ->
        {:ok, busy} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
        {:ok, port} = :inet.port(busy)

        assert {1, _, err} = cli(~w(start --detached --port #{port} --health-port #{free_port()}))
        assert err =~ "port #{port} (gateway) is already in use; choose another with --port"

        assert {1, _, err} = cli(~w(start --detached --port #{free_port()} --health-port #{port}))
        assert err =~ "port #{port} (health endpoint) is already in use"

        refute File.exists?(Path.join(home, "mcp-server.pid"))
        refute File.exists?(Path.join([home, "logs", "boot.log"]))
        :gen_tcp.close(busy)
      end)
    end
  end

  describe "stop" do
    test "forces a node that ignores SIGTERM after the timeout" do
      with_home(fn home ->
        # A VM that ignores SIGTERM stands in for a wedged node.
        # It says when SIGTERM is ignored (a marker file): before that, the
        # signal would still stop it and the test would prove nothing.
        erl = System.find_executable("erl")
        File.mkdir_p!(home)
        ready = Path.join(home, "sigterm-ignored")

        eval =
          ~s|os:set_signal(sigterm, ignore), file:write_file("#{ready}", <<>>), timer:sleep(infinity).|

        port =
          Port.open({:spawn_executable, erl}, [:nouse_stdio, args: ["-noshell", "-eval", eval]])

        {:os_pid, pid} = Port.info(port, :os_pid)

        try do
          eventually(fn -> File.exists?(ready) end)
          write_pid_file(home, pid)

          assert {0, out, ""} = cli(~w(stop --timeout 300))
          assert out =~ "pid #{pid} ignored SIGTERM for 300 ms; killed"
          refute OSProcess.alive?(pid)
          refute File.exists?(Path.join(home, "mcp-server.pid"))
        after
          kill(pid)
        end
      end)
    end
  end

  describe "a detached node" do
    test "start, refuse a second start, status with counts, restart, stop" do
      with_home(fn home ->
        [port, health] = [free_port(), free_port()]
        name = "cli_test_#{System.unique_integer([:positive])}@127.0.0.1"
        pid_file = Path.join(home, "mcp-server.pid")

        assert {0, out, _} =
                 cli(~w(start --detached --port #{port} --health-port #{health} --name #{name}))

        assert out =~ "ruv-swarm started: node #{name}"
        {:ok, %{"pid" => pid} = info} = PidFile.read(pid_file)

        try do
          assert OSProcess.beam_alive?(pid)
          assert Bitwise.band(File.stat!(pid_file).mode, 0o777) == 0o600
          assert info["gateway_url"] == "http://127.0.0.1:#{port}/mcp"
          assert info["mode"] == "detached"

          # The lock: a second start fails and names the running pid.
          assert {1, _, err} =
                   cli(~w(start --detached --port #{free_port()} --health-port #{free_port()}))

          assert err =~ "already running (pid #{pid})"

          # One swarm with five agents, created through the gateway's REST form.
          body = ~s({"topology": "mesh", "agents": 5})

          {:ok, {{_, 200, _}, _, _}} =
            :httpc.request(
              :post,
              {~c"http://127.0.0.1:#{port}/api/mcp/swarm_init", [], ~c"application/json", body},
              [],
              []
            )

          assert {0, out, ""} = cli(["status"])
          assert out =~ "ruv-swarm is running"
          assert out =~ "pid:     #{pid}"
          assert out =~ "node:    #{name}"
          assert out =~ "gateway: http://127.0.0.1:#{port}/mcp (up)"
          assert out =~ "health:  ok"
          assert out =~ "swarms:  1"
          assert out =~ "agents:  5"
          assert out =~ "tasks:   0 pending"

          assert {:ok, 200, %{"status" => "ok", "agents" => 5}} = HealthClient.get(health)

          # Restart keeps ports and name, with a new process.
          assert {0, out, _} = cli(~w(restart --timeout 5000))
          assert out =~ "stopped (pid #{pid})"
          {:ok, %{"pid" => new_pid}} = PidFile.read(pid_file)
          assert new_pid != pid
          refute OSProcess.alive?(pid)
          assert {:ok, 200, %{"node" => ^name}} = HealthClient.get(health)

          # The swarm and its agents were on disk: the new node has them.
          assert {0, out, ""} = cli(["status"])
          assert out =~ "swarms:  1"
          assert out =~ "agents:  5"

          assert {0, out, ""} = cli(["stop"])
          assert out =~ "stopped (pid #{new_pid})"
          refute OSProcess.alive?(new_pid)
          refute File.exists?(pid_file), "a stopped node leaves no PID file"
          assert {3, _, _} = cli(["status"])
          assert {:error, _} = HealthClient.get(health)
          assert File.exists?(Path.join([home, "logs", "ruv-swarm.log"]))
        after
          for {:ok, %{"pid" => p}} <- [PidFile.read(pid_file)], do: kill(p)
          kill(pid)
        end
      end)
    end

    test "restart from another shell keeps the flags and RUV_SWARM_* settings of start" do
      with_home(fn home ->
        [port, health] = [free_port(), free_port()]
        pid_file = Path.join(home, "mcp-server.pid")
        token = "token-#{System.unique_integer([:positive])}-secret"
        System.put_env("RUV_SWARM_TOKENS", token)

        try do
          assert {0, _, _} =
                   cli(
                     ~w(start --detached --port #{port} --health-port #{health} --allow-claude) ++
                       ["--allow-command", "echo *"]
                   )

          assert Bitwise.band(File.stat!(Path.join(home, "settings.json")).mode, 0o777) == 0o600
          assert features(port, token)["allowed_commands"] == ["echo *"]

          # Another shell: neither the token nor the flags.
          System.delete_env("RUV_SWARM_TOKENS")
          assert {0, _, _} = cli(~w(restart --timeout 5000))
          assert {:ok, %{"port" => ^port}} = PidFile.read(pid_file)
          assert {401, _} = features(port, nil)

          assert %{"allowed_commands" => ["echo *"], "claude_agents" => true} =
                   features(port, token)

          # A flag given to restart replaces the stored one.
          assert {0, _, _} = cli(["restart", "--allow-command", "wc", "--timeout", "5000"])
          assert features(port, token)["allowed_commands"] == ["wc"]
          assert {0, _, ""} = cli(["stop"])
        after
          System.delete_env("RUV_SWARM_TOKENS")
          for {:ok, %{"pid" => p}} <- [PidFile.read(pid_file)], do: kill(p)
        end
      end)
    end

    test "a node that fails while booting: its output is shown and nothing is left" do
      with_home(fn home ->
        # Occupy the node name in epmd so the new node cannot take it.
        name = "cli_dup_#{System.unique_integer([:positive])}"
        {_, 0} = System.cmd("epmd", ["-daemon"])

        holder =
          Port.open({:spawn_executable, System.find_executable("erl")}, [
            :nouse_stdio,
            args: ["-noshell", "-name", "#{name}@127.0.0.1", "-eval", "timer:sleep(60000)."]
          ])

        {:os_pid, holder_pid} = Port.info(holder, :os_pid)

        try do
          eventually(fn ->
            match?({_, 0}, System.cmd("epmd", ["-names"])) and name_registered?(name)
          end)

          assert {1, _, err} =
                   cli(
                     ~w(start --detached --port #{free_port()} --health-port #{free_port()} --name #{name}@127.0.0.1)
                   )

          assert err =~ "the node exited while starting"
          assert err =~ "cannot start distribution as #{name}@127.0.0.1"
          refute File.exists?(Path.join(home, "mcp-server.pid"))
        after
          kill(holder_pid)
        end
      end)
    end
  end

  describe "mix tasks" do
    test "mix swarm.mcp status exits 3 when nothing runs; tools lists the gateway's tools" do
      with_home(fn home ->
        env = [{"RUV_SWARM_HOME", home}, {"MIX_ENV", "test"}]
        {out, code} = System.cmd("mix", ~w(swarm.mcp status), env: env, stderr_to_stdout: true)
        assert code == 3, out
        assert out =~ "not running"

        {out, code} = System.cmd("mix", ~w(swarm.mcp tools), env: env, stderr_to_stdout: true)
        assert code == 0, out
        assert out =~ "swarm_init"

        {out, code} =
          System.cmd("mix", ~w(swarm.mcp start --nope), env: env, stderr_to_stdout: true)

        assert code == 2, out
      end)
    end
  end

  describe "foreground" do
    test "mix swarm.server logs to the terminal; stop ends it with status 0 and no PID file" do
      with_home(fn home ->
        [port, health] = [free_port(), free_port()]
        name = "cli_fg_#{System.unique_integer([:positive])}@127.0.0.1"

        server =
          Port.open({:spawn_executable, System.find_executable("mix")}, [
            :binary,
            :exit_status,
            :stderr_to_stdout,
            args: ~w(swarm.server --port #{port} --health-port #{health} --name #{name}),
            env: [{~c"RUV_SWARM_HOME", String.to_charlist(home)}, {~c"MIX_ENV", ~c"test"}]
          ])

        {:os_pid, mix_pid} = Port.info(server, :os_pid)

        try do
          eventually(fn -> match?({:ok, 200, _}, HealthClient.get(health)) end, 30_000)
          # The gateway listens on --port, not the configured default.
          assert {:ok, {{_, 200, _}, _, _}} = :httpc.request(~c"http://127.0.0.1:#{port}/health")

          assert {0, out, ""} = cli(["status"])
          assert out =~ "mode:    foreground"
          assert out =~ "logs:    terminal"
          assert {0, out, ""} = cli(["stop"])
          assert out =~ "stopped"

          output = collect(server, "")
          assert output =~ "running in the foreground"
          assert output =~ "ruv-swarm node #{name} stopped"
          assert output =~ "exit_status=0"
          refute File.exists?(Path.join(home, "mcp-server.pid"))
        after
          kill(mix_pid)
        end
      end)
    end
  end

  # features_detect over REST; the result, or {status, body} when refused.
  defp features(port, token) do
    headers = if token, do: [{~c"authorization", ~c"Bearer #{token}"}], else: []
    url = ~c"http://127.0.0.1:#{port}/api/mcp/features_detect"

    case :httpc.request(:post, {url, headers, ~c"application/json", "{}"}, [],
           body_format: :binary
         ) do
      {:ok, {{_, 200, _}, _, body}} -> :jiffy.decode(body, [:return_maps])
      {:ok, {{_, status, _}, _, body}} -> {status, body}
    end
  end

  defp collect(port, acc) do
    receive do
      {^port, {:data, data}} -> collect(port, acc <> data)
      {^port, {:exit_status, status}} -> acc <> "exit_status=#{status}"
    after
      15_000 -> acc <> "timeout"
    end
  end

  defp name_registered?(name) do
    {out, _} = System.cmd("epmd", ["-names"])
    out =~ "name #{name} at"
  end

  defp root?, do: System.cmd("id", ["-u"]) |> elem(0) |> String.trim() == "0"

  defp run_as_nobody(args, state) do
    code_path = Enum.flat_map(:code.get_path(), &["-pa", List.to_string(&1)])
    expr = "System.halt(SwarmService.CLI.main(#{inspect(args)}))"

    System.cmd(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", System.find_executable("elixir")] ++
        code_path ++ ["-e", expr],
      env: [{"RUV_SWARM_HOME", state}, {"HOME", "/tmp"}],
      stderr_to_stdout: true
    )
  end
end
