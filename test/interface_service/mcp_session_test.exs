defmodule InterfaceService.McpSessionTest do
  # Revisions 2025-11-25 / 2025-06-18 / 2025-03-26 over real HTTP.
  use InterfaceService.GatewayCase, async: true

  setup do
    gw = start_gateway(tools_page_size: 10)
    {:ok, url: gw.url, gw: gw}
  end

  test "initialize opens a session with a random visible-ASCII id", %{url: url} do
    {200, headers, body} =
      mcp(url, %{
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: %{protocolVersion: "2025-11-25", capabilities: %{}}
      })

    sid = headers["mcp-session-id"]
    assert sid =~ ~r/^[\x21-\x7E]{32,}$/
    assert %{"result" => result} = json(body)
    assert result["protocolVersion"] == "2025-11-25"
    assert result["capabilities"]["tools"] == %{"listChanged" => false}
    assert result["serverInfo"]["name"] == "ruv-swarm"
    refute sid == open_session(url)
  end

  test "older revisions are echoed, unknown ones answered with the latest", %{url: url} do
    for v <- ["2025-06-18", "2025-03-26"], do: assert(is_binary(open_session(url, v)))

    {200, _, body} =
      mcp(url, %{
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: %{protocolVersion: "1999-01-01", capabilities: %{}}
      })

    assert json(body)["result"]["protocolVersion"] == "2025-11-25"
  end

  test "a missing session id is 400, an unknown one 404, a deleted one 404", %{url: url} do
    {400, _, _} = mcp(url, %{jsonrpc: "2.0", id: 1, method: "ping"})
    {404, _, _} = mcp(url, %{jsonrpc: "2.0", id: 1, method: "ping"}, session("nope"))

    sid = open_session(url)
    assert {200, %{"result" => %{}}} = rpc(url, sid, "ping")
    {200, _, _} = http(:delete, url <> "/mcp", session(sid))
    {404, _, _} = mcp(url, %{jsonrpc: "2.0", id: 1, method: "ping"}, session(sid))
    {404, _, _} = http(:delete, url <> "/mcp", session(sid))
    {400, _, _} = http(:delete, url <> "/mcp")
  end

  test "sessions expire after the idle ttl" do
    # Long enough that opening the session never outlives it on a loaded machine.
    gw = start_gateway(session_ttl_ms: 1_000)
    sid = open_session(gw.url)
    Process.sleep(2_100)
    {404, _, _} = mcp(gw.url, %{jsonrpc: "2.0", id: 1, method: "ping"}, session(sid))
  end

  test "an unsupported MCP-Protocol-Version is 400", %{url: url} do
    sid = open_session(url)

    {400, _, body} =
      mcp(url, %{jsonrpc: "2.0", id: 1, method: "ping"}, [
        {"mcp-session-id", sid},
        {"mcp-protocol-version", "2024-01-01"}
      ])

    assert json(body)["error"]["code"] == -32022
    # A missing header means 2025-03-26 and is accepted.
    {200, _, _} = mcp(url, %{jsonrpc: "2.0", id: 1, method: "ping"}, [{"mcp-session-id", sid}])
  end

  test "JSON-RPC errors: -32700, -32600, -32601, -32602", %{url: url} do
    sid = open_session(url)
    {400, _, body} = http(:post, url <> "/mcp", session(sid), "{not json")
    assert %{"id" => nil, "error" => %{"code" => -32700}} = json(body)

    {400, _, body} = mcp(url, %{jsonrpc: "1.0", id: 1, method: "ping"}, session(sid))
    assert json(body)["error"]["code"] == -32600

    {400, _, body} = mcp(url, %{jsonrpc: "2.0", id: %{"x" => 1}, method: "ping"}, session(sid))
    assert json(body)["error"]["code"] == -32600

    assert {200, %{"error" => %{"code" => -32601}}} = rpc(url, sid, "prompts/list")

    assert {200, %{"error" => %{"code" => -32602}}} =
             rpc(url, sid, "tools/call", %{name: "no_such_tool"})

    assert {200, %{"error" => %{"code" => -32602}}} =
             rpc(url, sid, "tools/call", %{arguments: %{}})

    assert {200, %{"error" => %{"code" => -32602}}} =
             rpc(url, sid, "logging/setLevel", %{level: "loud"})

    assert {200, %{"result" => %{}}} = rpc(url, sid, "logging/setLevel", %{level: "debug"})
  end

  test "notifications and responses are answered 202 with no body", %{url: url} do
    sid = open_session(url)

    assert {202, _, ""} =
             mcp(url, %{jsonrpc: "2.0", method: "notifications/roots/list_changed"}, session(sid))

    assert {202, _, ""} = mcp(url, %{jsonrpc: "2.0", id: 5, result: %{}}, session(sid))
  end

  test "tools/list pages with stable cursors; a bad cursor is -32602", %{url: url} do
    sid = open_session(url)
    {200, %{"result" => page1}} = rpc(url, sid, "tools/list")
    assert length(page1["tools"]) == 10
    cursor = page1["nextCursor"]
    {200, %{"result" => page2}} = rpc(url, sid, "tools/list", %{cursor: cursor})
    {200, %{"result" => again}} = rpc(url, sid, "tools/list", %{cursor: cursor})
    assert page2 == again
    {200, %{"result" => page3}} = rpc(url, sid, "tools/list", %{cursor: page2["nextCursor"]})
    refute Map.has_key?(page3, "nextCursor")

    names = Enum.map(page1["tools"] ++ page2["tools"] ++ page3["tools"], & &1["name"])
    assert names == Enum.map(InterfaceService.Tools.definitions(), & &1.name)

    for bad <- ["garbage", Base.url_encode64("tools:999", padding: false), 42] do
      assert {200, %{"error" => %{"code" => -32602}}} =
               rpc(url, sid, "tools/list", %{cursor: bad})
    end
  end

  test "tools/call returns content, structuredContent and isError", %{url: url} do
    sid = open_session(url)
    init = call_tool(url, sid, "swarm_init", %{topology: "ring", max_agents: 7, agents: 2})
    assert init["isError"] == false
    swarm = init["structuredContent"]["swarm_id"]
    assert [%{"type" => "text", "text" => text}] = init["content"]
    assert json(text) == init["structuredContent"]

    status = call_tool(url, sid, "swarm_status", %{swarm_id: swarm})
    assert status["isError"] == false
    assert status["structuredContent"]["topology"] == "ring"
    assert status["structuredContent"]["max_agents"] == 7
    assert status["structuredContent"]["agents"]["total"] == 2

    bad = call_tool(url, sid, "swarm_init", %{topology: "blob"})
    assert bad["isError"] == true
    assert hd(bad["content"])["text"] =~ "topology must be one of hierarchical, mesh, ring, star"

    missing = call_tool(url, sid, "swarm_status", %{swarm_id: "swarm-does-not-exist"})
    assert missing["isError"] == true
    assert missing["structuredContent"]["code"] == "swarm_not_found"
  end

  test "2025-03-26 accepts batches; later revisions refuse them", %{url: url} do
    sid = open_session(url, "2025-03-26")

    batch = [
      %{jsonrpc: "2.0", id: 1, method: "ping"},
      %{jsonrpc: "2.0", method: "notifications/initialized"},
      %{jsonrpc: "2.0", id: 2, method: "tools/list"}
    ]

    {200, _, body} = mcp(url, batch, session(sid, "2025-03-26"))
    assert [%{"id" => 1}, %{"id" => 2, "result" => %{"tools" => _}}] = json(body)

    sid2 = open_session(url)
    {400, _, body} = mcp(url, batch, session(sid2))
    assert json(body)["error"]["code"] == -32600
  end

  test "a call with a progressToken is answered as an SSE stream of progress then the result", %{
    url: url
  } do
    sid = open_session(url)

    msg = %{
      jsonrpc: "2.0",
      id: 9,
      method: "tools/call",
      params: %{
        name: "benchmark_run",
        arguments: %{iterations: 20},
        _meta: %{progressToken: "p1"}
      }
    }

    {200, headers, body} = mcp(url, msg, session(sid))
    assert headers["content-type"] =~ "text/event-stream"

    events = for "data: " <> data <- String.split(body, "\n"), do: json(data)

    progress = Enum.filter(events, &(&1["method"] == "notifications/progress"))
    assert length(progress) == 3
    assert Enum.map(progress, & &1["params"]["progress"]) == [1, 2, 3]
    assert Enum.all?(progress, &(&1["params"]["progressToken"] == "p1"))

    assert %{"id" => 9, "result" => %{"isError" => false, "structuredContent" => sc}} =
             List.last(events)

    assert length(sc["results"]) == 3
  end

  test "notifications/cancelled stops a running call", %{url: url} do
    sid = open_session(url)

    {:ok, swarm} =
      Map.fetch(call_tool(url, sid, "swarm_init", %{})["structuredContent"], "swarm_id")

    parent = self()

    spawn_link(fn ->
      started = System.monotonic_time(:millisecond)

      result =
        rpc(
          url,
          sid,
          "tools/call",
          %{name: "swarm_monitor", arguments: %{swarm_id: swarm, duration_ms: 10_000}},
          "long"
        )

      send(parent, {:done, result, System.monotonic_time(:millisecond) - started})
    end)

    Process.sleep(300)

    {202, _, _} =
      mcp(
        url,
        %{jsonrpc: "2.0", method: "notifications/cancelled", params: %{requestId: "long"}},
        session(sid)
      )

    assert_receive {:done, {200, %{"error" => %{"code" => -32800}}}, elapsed}, 5000
    assert elapsed < 5000
  end

  test "calls that exceed the request timeout are stopped and reported" do
    gw = start_gateway(request_timeout_ms: 200)
    sid = open_session(gw.url)
    swarm = call_tool(gw.url, sid, "swarm_init", %{})["structuredContent"]["swarm_id"]
    result = call_tool(gw.url, sid, "swarm_monitor", %{swarm_id: swarm, duration_ms: 5000})
    assert result["isError"]
    assert hd(result["content"])["text"] =~ "did not finish within 200 ms"
  end

  test "GET opens the session's SSE stream; without SSE in Accept it is 405", %{url: url, gw: gw} do
    sid = open_session(url)
    {405, _, _} = http(:get, url <> "/mcp", session(sid) ++ [{"accept", "application/json"}])

    sock =
      stream_open(gw.port, "/mcp", [{"accept", "text/event-stream"}, {"mcp-session-id", sid}])

    assert stream_read(sock, "stream open") =~ "text/event-stream"
    # A tool error is logged to the stream as notifications/message.
    {200, %{"result" => %{"isError" => true}}} =
      rpc(url, sid, "tools/call", %{name: "swarm_status", arguments: %{swarm_id: "x"}})

    assert stream_read(sock, "notifications/message") =~ "swarm_status"
    # A second GET stream for the same session is refused.
    {409, _, _} = http(:get, url <> "/mcp", [{"accept", "text/event-stream"} | session(sid)])
    # Ending the session ends the stream (the terminating zero-length chunk).
    {200, _, _} = http(:delete, url <> "/mcp", session(sid))
    assert stream_read(sock, "0\r\n\r\n") =~ "0"
    :gen_tcp.close(sock)
  end

  test "other HTTP methods are 405", %{url: url} do
    {405, headers, _} = http(:put, url <> "/mcp", [], "{}")
    assert headers["allow"] =~ "POST"
  end
end
