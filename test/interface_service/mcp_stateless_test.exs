defmodule InterfaceService.McpStatelessTest do
  # Revision 2026-07-28 on the same /mcp endpoint.
  use InterfaceService.GatewayCase, async: true

  setup do
    {:ok, url: start_gateway().url}
  end

  test "server/discover needs no session and lists every version", %{url: url} do
    {200, headers, %{"result" => result}} = modern(url, "server/discover")
    refute Map.has_key?(headers, "mcp-session-id")
    assert result["resultType"] == "complete"
    assert result["supportedVersions"] == ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]
    assert result["capabilities"]["tools"] == %{}
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "ruv-swarm"
    assert is_integer(result["ttlMs"]) and result["cacheScope"] in ["public", "private"]
  end

  test "tools/list and tools/call work statelessly and carry resultType", %{url: url} do
    {200, _, %{"result" => list}} = modern(url, "tools/list")
    assert list["resultType"] == "complete"
    assert length(list["tools"]) == length(InterfaceService.Tools.definitions())

    {200, _, %{"result" => init}} =
      modern(url, "tools/call", %{"name" => "swarm_init", "arguments" => %{"topology" => "star"}})

    assert init["resultType"] == "complete"
    swarm = init["structuredContent"]["swarm_id"]

    {200, _, %{"result" => status}} =
      modern(url, "tools/call", %{"name" => "swarm_status", "arguments" => %{"swarm_id" => swarm}})

    assert status["structuredContent"]["topology"] == "star"
  end

  test "Mcp-Method / Mcp-Name / MCP-Protocol-Version must mirror the body (-32020, 400)", %{
    url: url
  } do
    {400, _, %{"error" => %{"code" => -32020}}} =
      modern(url, "tools/list", %{}, [{"mcp-method", "tools/call"}])

    {400, _, %{"error" => %{"code" => -32020}}} =
      modern(url, "tools/list", %{}, [{"mcp-method", nil}])

    {400, _, %{"error" => %{"code" => -32020}}} =
      modern(url, "tools/call", %{"name" => "swarm_list", "arguments" => %{}}, [
        {"mcp-name", "swarm_init"}
      ])

    {400, _, %{"error" => %{"code" => -32020}}} =
      modern(url, "tools/call", %{"name" => "swarm_list", "arguments" => %{}}, [{"mcp-name", nil}])

    # Base64-wrapped header values are decoded before comparing.
    {200, _, %{"result" => _}} =
      modern(url, "tools/call", %{"name" => "swarm_list", "arguments" => %{}}, [
        {"mcp-name", "=?base64?" <> Base.encode64("swarm_list") <> "?="}
      ])

    # The body's envelope says 2026-07-28 but no version header came along.
    {400, _, %{"error" => %{"code" => -32020}}} =
      modern(url, "tools/list", %{}, [{"mcp-protocol-version", nil}])
  end

  test "a missing _meta envelope is -32602", %{url: url} do
    {400, _, body} =
      mcp(url, %{jsonrpc: "2.0", id: 1, method: "tools/list", params: %{}}, [
        {"mcp-protocol-version", "2026-07-28"},
        {"mcp-method", "tools/list"}
      ])

    assert json(body)["error"]["code"] == -32602
  end

  test "an unsupported version is -32022 with HTTP 400 and the supported list", %{url: url} do
    {400, _, %{"error" => error}} =
      modern(
        url,
        "tools/list",
        %{"_meta" => %{"io.modelcontextprotocol/protocolVersion" => "2027-01-01"}},
        [
          {"mcp-protocol-version", "2027-01-01"}
        ]
      )

    assert error["code"] == -32022
    assert error["data"]["requested"] == "2027-01-01"
    assert "2026-07-28" in error["data"]["supported"]
  end

  test "unknown and removed methods are 404 with -32601", %{url: url} do
    for method <- ["resources/list", "initialize", "ping", "logging/setLevel"] do
      assert {404, _, %{"error" => %{"code" => -32601}}} = modern(url, method)
    end
  end

  test "notifications are 202; GET and DELETE are 405", %{url: url} do
    {202, _, nil} =
      http(
        :post,
        url <> "/mcp",
        [{"mcp-protocol-version", "2026-07-28"}, {"mcp-method", "notifications/cancelled"}],
        encode(%{jsonrpc: "2.0", method: "notifications/cancelled", params: %{requestId: 1}})
      )
      |> then(fn {s, h, b} -> {s, h, if(b == "", do: nil, else: b)} end)

    {405, _, _} =
      http(:get, url <> "/mcp", [
        {"mcp-protocol-version", "2026-07-28"},
        {"accept", "text/event-stream"}
      ])

    {405, _, _} = http(:delete, url <> "/mcp", [{"mcp-protocol-version", "2026-07-28"}])
  end

  test "tool errors stay tool results (isError) on the stateless path", %{url: url} do
    {200, _, %{"result" => result}} =
      modern(url, "tools/call", %{"name" => "swarm_status", "arguments" => %{"swarm_id" => 5}})

    assert result["isError"]
    assert hd(result["content"])["text"] =~ "arguments.swarm_id must be string"
  end
end
