defmodule InterfaceService.ClientErrorsTest do
  # Every mistake a client can make is answered with a 4xx and our sentence,
  # over REST and as an MCP tool error; nothing internal is ever shown.
  use InterfaceService.GatewayCase, async: true

  setup do
    gw = start_gateway(command_allowlist: ["echo *"])
    %{"swarm_id" => sid} = ok!(gw, "swarm_init", %{"topology" => "mesh"})
    %{gw: gw, sid: sid}
  end

  defp post(gw, tool, args) do
    {status, _, body} = http(:post, gw.url <> "/api/mcp/" <> tool, [], encode(args))
    refute body =~ ~r/Elixir\.|\{:|#(PID|Reference|Function)|stacktrace|\.ex:\d/, body
    {status, json(body)}
  end

  defp ok!(gw, tool, args) do
    {200, %{"success" => true} = result} = post(gw, tool, args)
    result
  end

  test "a NUL byte in a command is refused, not run truncated", %{gw: gw, sid: sid} do
    for argv <- [["ec\0ho", "hi"], ["echo", "h\0i"]] do
      assert {400, %{"code" => "invalid_arguments", "error" => error}} =
               post(gw, "agent_spawn", %{"swarm_id" => sid, "command" => argv})

      assert error =~ "NUL"
    end

    assert %{"agents" => %{"total" => 0}} = ok!(gw, "swarm_status", %{"swarm_id" => sid})
  end

  test "the Elixir API refuses NUL in argv, :cd and :env with a sentence" do
    {:ok, sid} = SwarmService.RuvSwarm.spawn_swarm(storage: :memory)

    for executor <- [
          {:command, ["ec\0ho"], []},
          {:command, ["echo", "a\0"], []},
          {:command, ["echo"], [cd: "/tmp\0x"]},
          {:command, ["echo"], [env: %{"A" => "b\0"}]}
        ] do
      assert {:error, {:invalid_argument, msg}} =
               SwarmService.RuvSwarm.spawn_agent(sid, executor: executor)

      assert msg =~ "NUL"
    end

    SwarmService.RuvSwarm.destroy_swarm(sid)
  end

  test "state conflicts and unknown ids are 409 and 404", %{gw: gw, sid: sid} do
    ok!(gw, "agent_spawn", %{"swarm_id" => sid, "command" => ["echo", "done"]})

    %{"task_id" => tid, "status" => "completed"} =
      ok!(gw, "task_orchestrate", %{"swarm_id" => sid, "task" => "x", "wait_ms" => 10_000})

    assert {409, %{"code" => "task_finished", "error" => "the task already finished (completed)"}} =
             post(gw, "task_cancel", %{"task_id" => tid})

    assert {404, %{"code" => "task_not_found"}} = post(gw, "task_cancel", %{"task_id" => "t-x"})
    assert {404, %{"code" => "swarm_not_found"}} = post(gw, "agent_spawn", %{"swarm_id" => "s"})
    assert {404, %{"code" => "agent_not_found"}} = post(gw, "agent_metrics", %{"agent_id" => "a"})

    assert {404, %{"code" => "not_found"}} =
             post(gw, "memory_get", %{"swarm_id" => sid, "key" => "none"})

    assert {400, %{"code" => "invalid_argument"}} =
             post(gw, "agent_list", %{"swarm_id" => sid, "cursor" => "forged"})
  end

  test "wrong types, unknown values and out-of-range numbers are 400", %{gw: gw, sid: sid} do
    for {tool, args} <- [
          {"swarm_init", %{"topology" => "blob"}},
          {"swarm_init", %{"max_agents" => -1}},
          {"swarm_init", %{"max_agents" => 1.0e300}},
          {"swarm_init", %{"storage" => "tape"}},
          {"agent_spawn", %{"swarm_id" => 5}},
          {"agent_spawn", %{"swarm_id" => sid, "command" => "echo"}},
          {"task_orchestrate", %{"swarm_id" => sid, "task" => "x", "priority" => "ultra"}},
          {"task_orchestrate", %{"swarm_id" => sid, "task" => "x", "wait_ms" => 10 ** 10}},
          {"memory_store", %{"swarm_id" => sid, "key" => "", "value" => 1}},
          {"benchmark_run", %{"iterations" => 10 ** 10}}
        ] do
      assert {400, %{"success" => false, "error" => "invalid arguments: " <> _}} =
               post(gw, tool, args),
             "#{tool} #{inspect(args)}"
    end
  end

  test "swarm_init chooses the storage: a memory swarm has no Raft log", %{gw: gw, sid: durable} do
    %{"swarm_id" => fast} = ok!(gw, "swarm_init", %{"storage" => "memory"})
    {:ok, %{durable: logged}} = SwarmService.RuvSwarm.cluster_status()
    ids = Enum.map(logged, & &1.id)
    assert durable in ids
    refute fast in ids
  end

  test "a body that is not a JSON object is 400, an unknown tool 404", %{gw: gw} do
    {400, _, body} = http(:post, gw.url <> "/api/mcp/swarm_list", [], "{not json")
    assert json(body)["error"] == "the body is not valid JSON"
    {400, _, _} = http(:post, gw.url <> "/api/mcp/swarm_list", [], "[1]")
    {404, _, _} = http(:post, gw.url <> "/api/mcp/no_such_tool", [], "{}")
  end

  test "the same mistakes over MCP are tool errors with the same sentence", %{gw: gw, sid: sid} do
    session = open_session(gw.url)

    {200, %{"result" => %{"isError" => true, "structuredContent" => error}}} =
      rpc(gw.url, session, "tools/call", %{
        name: "agent_spawn",
        arguments: %{swarm_id: sid, command: ["ec\0ho"]}
      })

    assert error == %{
             "code" => "invalid_arguments",
             "error" => "invalid arguments: command cannot contain NUL bytes"
           }
  end

  @tag :capture_log
  test "a reason the catalogue lacks is a 500 naming its tag, never the term" do
    gw = start_gateway(api: __MODULE__.OddApi)
    {status, body} = post(gw, "swarm_list", %{})
    assert status == 500

    assert body == %{
             "success" => false,
             "code" => "odd",
             "error" => "internal error (odd): the node logged the details"
           }
  end

  defmodule OddApi do
    def list_swarms, do: {:error, {:odd, self(), make_ref(), "secret"}}
    def format_error(r), do: inspect(r)
  end
end
