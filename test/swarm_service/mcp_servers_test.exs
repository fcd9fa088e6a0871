defmodule SwarmService.McpServersTest do
  # External MCP servers as supervised actors (issue #12), against real
  # third-party servers: @modelcontextprotocol/server-everything (stdio and
  # Streamable HTTP), server-filesystem, and a server written with the
  # official Python SDK (test/mcp_peers/tiny_server.py). `make mcp-peers`
  # installs them; a missing one fails with that hint.
  #
  # Stdio servers get a unique tag in their environment, so the tests can
  # count their OS processes in /proc; cleanup only signals tagged ones.
  use ExUnit.Case, async: false

  import SwarmService.Test.Eventually
  alias SwarmService.RuvSwarm
  alias SwarmService.McpServers
  alias SwarmService.Test.{McpPeers, PeerCluster}

  @tag_var "RUV_MCP_TEST_TAG"

  setup do
    tag = "m#{System.unique_integer([:positive])}x#{System.os_time()}"

    on_exit(fn ->
      for %{name: name} <- McpServers.servers(), do: McpServers.stop(name)
      for pid <- McpPeers.tagged(@tag_var, tag), do: System.cmd("kill", ["-9", pid])
    end)

    %{tag: tag}
  end

  defp tagged(tag), do: McpPeers.tagged(@tag_var, tag)

  defp deploy!(name, entry) do
    assert {:ok, %{name: ^name}} = RuvSwarm.mcp_deploy(name, entry)
    ready!(name)
  end

  defp ready!(name, timeout \\ 20_000) do
    eventually(
      fn ->
        {:ok, info} = McpServers.server(name)
        info.status == :ready && info
      end,
      timeout
    )
  end

  defp status(name) do
    {:ok, info} = McpServers.server(name)
    info.status
  end

  defp everything(tag, mode \\ "stdio") do
    %{
      "command" => McpPeers.node!(),
      "args" => [McpPeers.everything!(), mode],
      "env" => %{@tag_var => tag}
    }
  end

  defp tiny(tag, extra \\ %{}) do
    McpPeers.tiny(Map.merge(%{"env" => %{@tag_var => tag}}, extra))
  end

  defp text(%{"content" => content}), do: for(%{"text" => t} <- content, into: "", do: t)

  describe "real servers" do
    test "server-everything over stdio: tools, a call, metrics, and stop leaves no process",
         %{tag: tag} do
      info = deploy!("everything", everything(tag))
      assert info.transport == :stdio
      assert info.protocol in ["2025-11-25", "2026-07-28"]
      names = Enum.map(info.tools, & &1["name"])
      assert "echo" in names

      assert {:ok, tools} = RuvSwarm.mcp_tools("everything")
      assert Enum.find(tools, &(&1["name"] == "echo"))["inputSchema"]["type"] == "object"

      assert {:ok, result} = RuvSwarm.mcp_call("everything", "echo", %{"message" => "hello"})
      assert text(result) == "Echo: hello"

      assert [%{name: "everything", status: :ready, restarts: 0}] =
               Enum.map(RuvSwarm.mcp_servers(), &Map.take(&1, [:name, :status, :restarts]))

      [metrics] = RuvSwarm.mcp_metrics()
      assert %{calls: 1, errors: 0, timeouts: 0, overloaded: 0} = metrics.tools["echo"]
      assert is_integer(metrics.tools["echo"].p50_us)

      assert tagged(tag) != []
      client = McpServers.os_pid("everything")
      assert McpPeers.alive?(client)

      assert :ok = RuvSwarm.mcp_stop("everything")
      eventually(fn -> tagged(tag) == [] and not McpPeers.alive?(client) end, 2_000)
      assert {:error, {:mcp_server_not_found, "everything"}} = RuvSwarm.mcp_tools("everything")
      assert {:error, {:mcp_server_not_found, _}} = RuvSwarm.mcp_call("everything", "echo", %{})
    end

    test "server-everything over Streamable HTTP", %{tag: tag} do
      port = McpPeers.free_port()

      McpPeers.spawn_owned(McpPeers.node!(), [McpPeers.everything!(), "streamableHttp"], %{
        "PORT" => Integer.to_string(port),
        @tag_var => tag
      })

      eventually(
        fn -> match?({:ok, _}, :gen_tcp.connect({127, 0, 0, 1}, port, [], 200)) end,
        15_000
      )

      info = deploy!("remote", %{"url" => "http://127.0.0.1:#{port}/mcp"})
      assert info.transport == :http
      assert "echo" in Enum.map(info.tools, & &1["name"])

      assert {:ok, result} = RuvSwarm.mcp_call("remote", "echo", %{"message" => "over http"})
      assert text(result) == "Echo: over http"
    end

    test "server-filesystem on a temporary folder", %{tag: tag} do
      dir = Path.join(System.tmp_dir!(), "mcp_fs_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      on_exit(fn -> File.rm_rf!(dir) end)
      File.write!(Path.join(dir, "note.txt"), "swarm notes")
      dir = Path.expand(dir) |> resolve_links()

      deploy!("files", %{
        "command" => McpPeers.node!(),
        "args" => [McpPeers.filesystem!(), dir],
        "env" => %{@tag_var => tag}
      })

      assert {:ok, listing} = RuvSwarm.mcp_call("files", "list_directory", %{"path" => dir})
      assert text(listing) =~ "note.txt"

      assert {:ok, file} =
               RuvSwarm.mcp_call("files", "read_text_file", %{
                 "path" => Path.join(dir, "note.txt")
               })

      assert text(file) =~ "swarm notes"

      # Outside the allowed folder: the server's own refusal, as a tool error.
      assert {:ok, %{"isError" => true}} =
               RuvSwarm.mcp_call("files", "read_text_file", %{"path" => "/etc/hostname"})
    end

    test "a server written with the official Python SDK: results, tool errors, progress, list_changed",
         %{tag: tag} do
      deploy!("tiny", tiny(tag))

      assert {:ok, %{"structuredContent" => %{"result" => 5}, "isError" => false}} =
               RuvSwarm.mcp_call("tiny", "add", %{"a" => 2, "b" => 3})

      assert {:ok, %{"isError" => true}} = RuvSwarm.mcp_call("tiny", "broken", %{})

      me = self()
      on_progress = fn p -> send(me, {:progress, p}) end
      assert {:ok, _} = RuvSwarm.mcp_call("tiny", "steps", %{}, on_progress: on_progress)
      for i <- 1..3, do: assert_received({:progress, %{progress: p, total: 3.0}} when p == i)

      refute "extra" in tool_names("tiny")
      assert {:ok, _} = RuvSwarm.mcp_call("tiny", "grow", %{})
      eventually(fn -> "extra" in tool_names("tiny") end, 3_000)
      assert {:ok, %{"isError" => false}} = RuvSwarm.mcp_call("tiny", "extra", %{})
    end

    test "the executor {:mcp, server, tool}: an agent's units are tool calls", %{tag: tag} do
      deploy!("tiny", tiny(tag))
      {:ok, s} = RuvSwarm.spawn_swarm(agents: 1, executor: {:mcp, "tiny", "add"})
      on_exit(fn -> RuvSwarm.destroy_swarm(s) end)

      {:ok, t} = RuvSwarm.orchestrate(s, %{input: %{a: 20, b: 22}})
      assert {:ok, %{"structuredContent" => %{"result" => 42}}} = RuvSwarm.await_task(t, 10_000)

      # A tool error fails the attempt with the tool's message.
      {:ok, s2} = RuvSwarm.spawn_swarm(agents: 1, executor: {:mcp, "tiny", "broken"})
      on_exit(fn -> RuvSwarm.destroy_swarm(s2) end)
      {:ok, t2} = RuvSwarm.orchestrate(s2, %{input: %{}, retries: 1})
      assert {:error, {:failed, message}} = RuvSwarm.await_task(t2, 10_000)
      assert message =~ "broken"

      assert {:error, {:invalid_argument, _}} =
               RuvSwarm.spawn_swarm(agents: 1, executor: {:mcp, :tiny, 1})
    end
  end

  defp tool_names(server) do
    {:ok, tools} = McpServers.tools(server)
    Enum.map(tools, & &1["name"])
  end

  defp resolve_links(path) do
    case :file.read_link_all(path) do
      {:ok, target} -> to_string(target)
      _ -> path
    end
  end

  describe "failures" do
    test "a hanging tool times out and the server gets notifications/cancelled", %{tag: tag} do
      marker = Path.join(System.tmp_dir!(), "mcp_cancel_#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm(marker) end)
      deploy!("tiny", tiny(tag, %{"env" => %{@tag_var => tag, "TINY_CANCEL_MARKER" => marker}}))

      {us, result} = :timer.tc(fn -> RuvSwarm.mcp_call("tiny", "hang", %{}, timeout: 400) end)
      assert result == {:error, {:mcp_timeout, 400}}
      assert us < 1_400_000
      assert RuvSwarm.format_error(elem(result, 1)) =~ "did not answer within 400 ms"
      # The Python SDK cancels the handler when notifications/cancelled arrives.
      eventually(fn -> File.read(marker) == {:ok, "cancelled"} end, 3_000)

      # A caller that goes away (a cancelled gateway request) cancels its call
      # downstream and frees its place.
      File.rm(marker)
      caller = spawn(fn -> RuvSwarm.mcp_call("tiny", "hang", %{}, timeout: 60_000) end)

      eventually(fn ->
        {:ok, i} = McpServers.server("tiny")
        i.in_flight == 1
      end)

      Process.exit(caller, :kill)
      eventually(fn -> File.read(marker) == {:ok, "cancelled"} end, 3_000)
      {:ok, i} = McpServers.server("tiny")
      assert i.in_flight == 0

      # Per-tool timeouts from the configuration.
      :ok = RuvSwarm.mcp_stop("tiny")
      deploy!("tiny", tiny(tag, %{"tool_timeouts" => %{"hang" => 200}}))
      assert {:error, {:mcp_timeout, 200}} = RuvSwarm.mcp_call("tiny", "hang", %{})
      [m] = RuvSwarm.mcp_metrics()
      assert m.tools["hang"].timeouts == 1
      # The server is still healthy.
      assert {:ok, _} = RuvSwarm.mcp_call("tiny", "add", %{"a" => 1, "b" => 1})
    end

    test "150 concurrent calls of a slow tool: exactly 100 admitted, 50 refused at once",
         %{tag: tag} do
      deploy!("tiny", tiny(tag, %{"max_concurrency" => 100}))

      results =
        1..150
        |> Enum.map(fn _ ->
          Task.async(fn ->
            :timer.tc(fn -> RuvSwarm.mcp_call("tiny", "slow", %{"seconds" => 2}) end)
          end)
        end)
        |> Task.await_many(30_000)

      {ok, refused} = Enum.split_with(results, fn {_, r} -> match?({:ok, _}, r) end)
      assert length(ok) == 100
      assert length(refused) == 50
      assert Enum.all?(refused, fn {_, r} -> r == {:error, :overloaded} end)
      # Refused at once, not queued behind the slow calls.
      assert Enum.all?(refused, fn {us, _} -> us < 1_000_000 end)
      [m] = RuvSwarm.mcp_metrics()
      assert m.tools["slow"].overloaded == 50
      assert m.tools["slow"].calls == 100
    end

    test "the concurrency limit queues calls within the mailbox", %{tag: tag} do
      deploy!("tiny", tiny(tag, %{"max_concurrency" => 2}))

      tasks =
        for _ <- 1..4,
            do: Task.async(fn -> RuvSwarm.mcp_call("tiny", "slow", %{"seconds" => 0.5}) end)

      eventually(fn ->
        {:ok, i} = McpServers.server("tiny")
        i.in_flight == 2 and i.waiting == 2
      end)

      {us, results} = :timer.tc(fn -> Task.await_many(tasks, 10_000) end)
      assert Enum.all?(results, &match?({:ok, _}, &1))
      # Two rounds of 0.5 s.
      assert us >= 700_000
    end

    test "a server that dies mid-call fails that call, restarts, and others are unaffected",
         %{tag: tag} do
      deploy!("tiny", tiny(tag, %{"backoff_ms" => 50}))
      deploy!("other", tiny(tag))

      assert {:error, {:mcp_closed, "tiny", _}} = RuvSwarm.mcp_call("tiny", "die", %{})
      assert {:ok, _} = RuvSwarm.mcp_call("other", "add", %{"a" => 1, "b" => 2})

      info = ready!("tiny", 10_000)
      assert info.restarts >= 1
      assert {:ok, _} = RuvSwarm.mcp_call("tiny", "add", %{"a" => 1, "b" => 2})
    end

    test "a server that prints non-JSON on stdout still works; others unaffected", %{tag: tag} do
      deploy!("garbage", tiny(tag, %{"args" => [McpPeers.tiny_server(), "garbage"]}))
      deploy!("other", tiny(tag))

      assert {:ok, %{"isError" => false}} =
               RuvSwarm.mcp_call("garbage", "add", %{"a" => 1, "b" => 2})

      assert {:ok, _} = RuvSwarm.mcp_call("other", "add", %{"a" => 1, "b" => 2})
      assert status("garbage") == :ready
    end

    test "a server that exits at start goes to crash_loop, refuses at once, and recovers when fixed",
         %{tag: tag} do
      flag = Path.join(System.tmp_dir!(), "mcp_fixed_#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm(flag) end)

      script =
        ~s([ -f "#{flag}" ] || exit 1; exec "#{McpPeers.python!()}" "#{McpPeers.tiny_server()}")

      assert {:ok, _} =
               RuvSwarm.mcp_deploy("flaky", %{
                 "command" => "sh",
                 "args" => ["-c", script],
                 "env" => %{@tag_var => tag},
                 "backoff_ms" => 20,
                 "probe_interval_ms" => 500
               })

      eventually(fn -> status("flaky") == :crash_loop end, 10_000)
      {:ok, info} = McpServers.server("flaky")
      assert info.restarts >= 5
      assert info.last_error =~ "the server exited (exit status: 1) before it was ready"

      {us, result} = :timer.tc(fn -> RuvSwarm.mcp_call("flaky", "add", %{"a" => 1, "b" => 1}) end)
      assert result == {:error, {:mcp_unavailable, "flaky", :crash_loop}}
      assert us < 100_000
      assert RuvSwarm.format_error(elem(result, 1)) =~ "crash_loop"

      # No restart storm while the circuit is open: only probes.
      restarts = info.restarts
      Process.sleep(300)
      {:ok, later} = McpServers.server("flaky")
      assert later.restarts - restarts <= 1

      File.write!(flag, "")
      ready!("flaky", 5_000)
      assert {:ok, _} = RuvSwarm.mcp_call("flaky", "add", %{"a" => 1, "b" => 1})
    end

    test "an HTTP server that answers 500 never becomes ready and harms nothing", %{tag: tag} do
      l =
        McpPeers.spawn_owned(McpPeers.python!(), [McpPeers.http_500_server()], %{@tag_var => tag})

      port = read_port(l)
      deploy!("other", tiny(tag))

      assert {:ok, _} =
               RuvSwarm.mcp_deploy("broken", %{
                 "url" => "http://127.0.0.1:#{port}/mcp",
                 "backoff_ms" => 20,
                 "probe_interval_ms" => 60_000
               })

      eventually(fn -> status("broken") == :crash_loop end, 15_000)
      {:ok, info} = McpServers.server("broken")
      assert info.last_error =~ "500"

      assert {:error, {:mcp_unavailable, "broken", :crash_loop}} =
               RuvSwarm.mcp_call("broken", "x", %{})

      assert {:ok, _} = RuvSwarm.mcp_call("other", "add", %{"a" => 1, "b" => 2})
    end

    test "a crash of the actor ends the old process tree and the server comes back", %{tag: tag} do
      deploy!("tiny", tiny(tag))
      old = tagged(tag)
      client = McpServers.os_pid("tiny")
      assert old != [] and is_integer(client)

      [{actor, _}] = Registry.lookup(SwarmService.McpServers.Registry, {:server, "tiny"})
      Process.exit(actor, :kill)

      eventually(
        fn ->
          live = tagged(tag)
          Enum.all?(old, &(&1 not in live)) and not McpPeers.alive?(client)
        end,
        2_000
      )

      ready!("tiny")
      assert {:ok, _} = RuvSwarm.mcp_call("tiny", "add", %{"a" => 1, "b" => 2})
    end

    @tag timeout: 120_000
    test "kill -9 of the node leaves none of its MCP servers' processes", %{tag: tag} do
      [peer] = PeerCluster.start(1)

      for name <- ["a", "b"] do
        {:ok, _} = PeerCluster.rpc(peer, RuvSwarm, :mcp_deploy, [name, tiny(tag)])
      end

      deploy_everything = everything(tag)
      {:ok, _} = PeerCluster.rpc(peer, RuvSwarm, :mcp_deploy, ["c", deploy_everything])

      eventually(
        fn ->
          PeerCluster.rpc(peer, RuvSwarm, :mcp_servers, [])
          |> Enum.count(&(&1.status == :ready)) == 3
        end,
        30_000
      )

      assert length(tagged(tag)) >= 3
      {_, 0} = System.cmd("kill", ["-9", PeerCluster.os_pid(peer)])
      eventually(fn -> tagged(tag) == [] end, 2_000)
    end
  end

  describe "deploy" do
    test "invalid entries are refused naming server and field; duplicates and prefixes are refused",
         %{tag: tag} do
      assert {:error, {:invalid_argument, message}} = RuvSwarm.mcp_deploy("x", %{"args" => []})
      assert message =~ ~s(server "x": command or url)

      deploy!("tiny", tiny(tag))
      assert {:error, {:mcp_server_exists, "tiny"}} = RuvSwarm.mcp_deploy("tiny", tiny(tag))

      assert {:error, {:mcp_prefix_taken, "tiny"}} =
               RuvSwarm.mcp_deploy("tiny2", tiny(tag, %{"prefix" => "tiny"}))
    end

    test "a whole mcpServers document: the valid entries start, the others are reported",
         %{tag: tag} do
      doc = %{
        "mcpServers" => %{
          "one" => tiny(tag),
          "two" => %{"command" => "no-such-command-zz"},
          "off" => Map.put(tiny(tag), "disabled", true)
        }
      }

      assert {:ok, %{deployed: ["one"], errors: [%{server: "two", error: error}]}} =
               McpServers.deploy_config(doc)

      assert error =~ "command"
      ready!("one")
      assert {:error, {:mcp_server_not_found, "off"}} = McpServers.server("off")
    end

    test "allow and deny lists decide which tools are shown and callable", %{tag: tag} do
      deploy!("tiny", tiny(tag, %{"allow" => ["add", "echo"], "deny" => ["echo"]}))
      assert tool_names("tiny") == ["add"]

      assert {:error, {:mcp_tool_not_found, "tiny", "echo"}} =
               RuvSwarm.mcp_call("tiny", "echo", %{"message" => "x"})
    end

    test "secrets from ${VAR} reach the server but never its info, metrics or errors", %{tag: tag} do
      var = "RUV_MCP_SECRET_#{System.unique_integer([:positive])}"
      System.put_env(var, "hunter2-very-secret")
      on_exit(fn -> System.delete_env(var) end)

      deploy!("tiny", tiny(tag, %{"env" => %{@tag_var => tag, "API_KEY" => "${#{var}}"}}))
      # The server has it in its environment...
      [pid | _] = tagged(tag)
      assert File.read!("/proc/#{pid}/environ") =~ "API_KEY=hunter2-very-secret"
      # ...and it is on no command line of the node's processes.
      client = McpServers.os_pid("tiny")
      refute File.read!("/proc/#{client}/cmdline") =~ "hunter2"
      refute inspect(RuvSwarm.mcp_servers()) =~ "hunter2"
      refute inspect(RuvSwarm.mcp_metrics()) =~ "hunter2"
    end
  end

  defp read_port(launcher, acc \\ "") do
    port = launcher.port

    receive do
      {^port, _} = msg ->
        case SwarmService.Executor.Launcher.event(launcher, msg) do
          {:stdout, bytes} ->
            acc = acc <> bytes

            case Integer.parse(acc) do
              {n, "\n" <> _} -> n
              _ -> read_port(launcher, acc)
            end

          _ ->
            read_port(launcher, acc)
        end
    after
      10_000 -> flunk("the HTTP 500 server did not print its port")
    end
  end
end
