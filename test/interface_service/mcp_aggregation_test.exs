defmodule InterfaceService.McpAggregationTest do
  # The gateway shows the tools of managed MCP servers as <prefix>__<tool>
  # next to its own, proxies their calls (MCP and REST), and reports them
  # in /metrics. Against the Python SDK server of test/mcp_peers.
  use InterfaceService.GatewayCase, async: false

  import SwarmService.Test.Eventually
  alias SwarmService.McpServers
  alias SwarmService.Test.McpPeers

  setup do
    on_exit(fn -> for %{name: name} <- McpServers.servers(), do: McpServers.stop(name) end)
    {:ok, _} = McpServers.deploy("tiny", McpPeers.tiny())
    {:ok, _} = McpServers.deploy("second", McpPeers.tiny(%{"prefix" => "py", "deny" => ["die"]}))

    for name <- ["tiny", "second"] do
      eventually(fn -> match?({:ok, %{status: :ready}}, McpServers.server(name)) end, 20_000)
    end

    gw = start_gateway(tools_page_size: 10)
    {:ok, url: gw.url}
  end

  test "tools/list pages through our tools and every server's <prefix>__<tool>", %{url: url} do
    sid = open_session(url)
    names = all_tool_names(url, sid, nil, [])

    own = Enum.map(InterfaceService.Tools.definitions(), & &1.name)
    assert Enum.take(names, length(own)) == own
    downstream = names -- own
    assert "tiny__add" in downstream
    assert "py__add" in downstream
    # Deny lists apply to the gateway too.
    assert "tiny__die" in downstream
    refute "py__die" in downstream
    assert length(names) == length(Enum.uniq(names))

    {200, %{"result" => %{"tools" => first}}} = rpc(url, sid, "tools/list")
    assert length(first) == 10
  end

  defp all_tool_names(url, sid, cursor, acc) do
    params = if cursor, do: %{cursor: cursor}, else: %{}
    {200, %{"result" => page}} = rpc(url, sid, "tools/list", params)
    acc = acc ++ Enum.map(page["tools"], & &1["name"])

    case page["nextCursor"] do
      nil -> acc
      next -> all_tool_names(url, sid, next, acc)
    end
  end

  test "tools/call is proxied and the server's result comes back as it is", %{url: url} do
    sid = open_session(url)
    {200, %{"result" => %{"tools" => _}}} = rpc(url, sid, "tools/list")

    result = call_tool(url, sid, "tiny__add", %{a: 40, b: 2})
    assert result["isError"] == false
    assert result["structuredContent"] == %{"result" => 42}
    assert [%{"type" => "text", "text" => "42"}] = result["content"]

    # A tool error of the server is a tool error for the client.
    assert %{"isError" => true} = call_tool(url, sid, "py__broken", %{})

    # The stateless revision too.
    {200, _, %{"result" => modern}} =
      modern(url, "tools/call", %{"name" => "py__echo", "arguments" => %{"message" => "hi"}})

    assert modern["resultType"] == "complete"
    assert modern["structuredContent"] == %{"result" => "hi"}
  end

  test "REST: POST /api/mcp/<server>__<tool>", %{url: url} do
    {200, _, body} = http(:post, url <> "/api/mcp/tiny__add", [], encode(%{a: 1, b: 2}))
    body = json(body)
    assert body["success"] == true
    assert body["structuredContent"] == %{"result" => 3}

    {200, _, body} = http(:post, url <> "/api/mcp/tiny__broken", [], "{}")
    assert json(body)["success"] == false

    {404, _, _} = http(:post, url <> "/api/mcp/nosuch__add", [], "{}")
  end

  test "/metrics has calls and latency per server and tool, and server states", %{url: url} do
    {:ok, _} = McpServers.call("tiny", "add", %{"a" => 1, "b" => 1})
    {:ok, _} = McpServers.call("tiny", "add", %{"a" => 1, "b" => 1})
    {200, _, text} = http(:get, url <> "/metrics")

    assert text =~ ~s(ruv_swarm_mcp_calls_total{server="tiny",tool="add"} 2\n)
    assert text =~ ~s(ruv_swarm_mcp_errors_total{server="tiny",tool="add"} 0\n)

    assert text =~
             ~r/ruv_swarm_mcp_latency_seconds\{server="tiny",tool="add",quantile="0.99"\} [0-9.]+\n/

    assert text =~ ~s(ruv_swarm_mcp_state{server="tiny",state="ready"} 1\n)
    assert text =~ ~s(ruv_swarm_mcp_restarts_total{server="second"} 0\n)
  end

  test "a stopped server's tools leave tools/list", %{url: url} do
    :ok = McpServers.stop("tiny")
    sid = open_session(url)
    names = all_tool_names(url, sid, nil, [])
    refute "tiny__add" in names
    assert "py__add" in names

    {_, %{"error" => %{"message" => message}}} =
      rpc(url, sid, "tools/call", %{name: "tiny__add", arguments: %{a: 1, b: 1}})

    assert message =~ "Unknown tool: tiny__add"
  end
end
