defmodule InterfaceService.ClaudeAgentsTest do
  # Claude agents over the gateway: spawning them is a setting, and each
  # gets a token that opens its own swarm only, revoked with the agent.
  # Runs the node's one gateway name (InterfaceService): not async.
  use InterfaceService.GatewayCase, async: false

  alias SwarmService.RuvSwarm

  @fake Path.expand("../support/fake_claude_stream", __DIR__)

  setup do
    Application.put_env(:swarm_service, :claude_binary, @fake)
    on_exit(fn -> Application.delete_env(:swarm_service, :claude_binary) end)
    :ok
  end

  defp post(gw, tool, args, headers \\ []) do
    {status, _, body} = http(:post, gw.url <> "/api/mcp/" <> tool, headers, encode(args))
    {status, json(body)}
  end

  test "agent_spawn with executor claude is refused unless the gateway allows it" do
    gw = start_gateway()
    {200, %{"swarm_id" => sid}} = post(gw, "swarm_init", %{})

    assert {403, %{"error" => error}} =
             post(gw, "agent_spawn", %{"swarm_id" => sid, "executor" => "claude"})

    assert error =~ "--allow-claude"
    assert {200, %{"claude_agents" => false}} = post(gw, "features_detect", %{})
  end

  test "a claude agent uses its own swarm through the gateway, and nothing else" do
    opts = [name: InterfaceService, port: 0, allow_claude: true, tokens: ["operator-token-1"]]
    start_supervised!({InterfaceService, Keyword.merge([api: engine_api(), enabled: true], opts)})
    gw = %{url: InterfaceService.url()}
    auth = [{"authorization", "Bearer operator-token-1"}]
    {200, %{"claude_agents" => true}} = post(gw, "features_detect", %{}, auth)
    {:ok, other} = RuvSwarm.spawn_swarm(storage: :memory)
    System.put_env("FAKE_CLAUDE_OTHER_SWARM", other)

    on_exit(fn ->
      System.delete_env("FAKE_CLAUDE_OTHER_SWARM")
      RuvSwarm.destroy_swarm(other)
    end)

    {200, %{"swarm_id" => sid}} = post(gw, "swarm_init", %{}, auth)

    {200, %{"agent_id" => agent, "executor" => "claude"}} =
      post(
        gw,
        "agent_spawn",
        %{"swarm_id" => sid, "executor" => "claude", "max_turns" => 2},
        auth
      )

    # The stand-in reads its mode from the node's environment only through
    # :env; a gateway client cannot set that, so the mode goes in via Elixir.
    :ok = RuvSwarm.remove_agent(agent)

    {:ok, _} =
      RuvSwarm.spawn_agent(sid,
        executor:
          {:claude, env: %{"FAKE_CLAUDE_MODE" => "mcp", "FAKE_CLAUDE_OTHER_SWARM" => other}}
      )

    {:ok, t} = RuvSwarm.orchestrate(sid, %{input: "parsers need tests", retries: 1})
    {:ok, report} = RuvSwarm.await_task(t, 15_000)
    report = :jiffy.decode(report, [:return_maps])

    # Stored into its own swarm (no swarm_id needed); the rest refused.
    assert %{"store" => 200, "init" => 403, "other" => 403} = report
    assert {:ok, %{value: "parsers need tests"}} = RuvSwarm.memory_get(sid, "learned")

    # Its token streams its own swarm's events, not another's.
    auth_line = "Authorization: #{report["token"]}\r\n"

    other_stream =
      raw(
        port(gw),
        "GET /sse/events?swarm_id=#{other} HTTP/1.1\r\nHost: localhost\r\n#{auth_line}Connection: close\r\n\r\n"
      )

    assert other_stream =~ "HTTP/1.1 403"

    own =
      stream_open(port(gw), "/sse/events?swarm_id=#{sid}", [{"authorization", report["token"]}])

    assert stream_read(own, "subscribed") =~ "HTTP/1.1 200"
    :gen_tcp.close(own)

    # Removed, its token opens nothing.
    {:ok, [%{id: worker}]} = agents(sid)
    :ok = RuvSwarm.remove_agent(worker)
    token = [{"authorization", report["token"]}]
    eventually(fn -> match?({401, _}, post(gw, "swarm_status", %{"swarm_id" => sid}, token)) end)
  end

  defp port(%{url: url}), do: URI.parse(url).port

  defp agents(sid) do
    with {:ok, %{agents: agents}} <- RuvSwarm.list_agents_page(sid, limit: 10), do: {:ok, agents}
  end

  defp eventually(fun), do: SwarmService.Test.Eventually.eventually(fun)
end
