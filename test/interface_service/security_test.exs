defmodule InterfaceService.SecurityTest do
  # Hostile or wrong requests get clear errors and harm nobody else.
  use InterfaceService.GatewayCase, async: true

  @token "s3cret-token-for-tests"

  test "bearer tokens: 401 with WWW-Authenticate, then accepted; /health needs none" do
    gw = start_gateway(tokens: [@token, "another-token-1"])

    msg = %{
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: %{protocolVersion: "2025-11-25", capabilities: %{}}
    }

    {401, headers, _} = mcp(gw.url, msg)
    assert headers["www-authenticate"] == ~s(Bearer realm="ruv_swarm")

    {401, headers, _} = mcp(gw.url, msg, [{"authorization", "Bearer wrong-token"}])
    assert headers["www-authenticate"] =~ "invalid_token"

    {200, _, _} = mcp(gw.url, msg, [{"authorization", "Bearer " <> @token}])
    {200, _, _} = mcp(gw.url, msg, [{"authorization", "bearer another-token-1"}])
    {401, _, _} = http(:post, gw.url <> "/api/mcp/swarm_list", [], "{}")
    {401, _, _} = http(:get, gw.url <> "/metrics")
    {200, _, body} = http(:get, gw.url <> "/health")
    assert json(body)["status"] == "ok"
  end

  test "a listener off loopback refuses to start without tokens" do
    assert_raise ArgumentError, ~r/not loopback.*tokens/, fn ->
      InterfaceService.Config.new!(ip: "0.0.0.0", tokens: [])
    end

    assert %{ip: {0, 0, 0, 0}} = InterfaceService.Config.new!(ip: "0.0.0.0", tokens: [@token])
  end

  test "options are validated with errors that name them" do
    assert_raise ArgumentError, ~r/:port.*0\.\.65535/, fn ->
      InterfaceService.Config.new!(port: 70_000)
    end

    assert_raise ArgumentError, ~r/:ip/, fn -> InterfaceService.Config.new!(ip: "not-an-ip") end

    assert_raise ArgumentError, ~r/unknown InterfaceService option :colour/, fn ->
      InterfaceService.Config.new!(colour: 1)
    end

    assert_raise ArgumentError, ~r/:tokens/, fn ->
      InterfaceService.Config.new!(tokens: ["short"])
    end

    assert_raise ArgumentError, ~r/:api.*a module that can be loaded/, fn ->
      InterfaceService.Config.new!(api: NoSuchEngineApi)
    end
  end

  test "Origin and Host outside the allow-list are 403" do
    gw = start_gateway()
    {403, _, _} = http(:get, gw.url <> "/health", [{"origin", "http://evil.example"}])
    {200, headers, _} = http(:get, gw.url <> "/health", [{"origin", "http://localhost:3000"}])
    assert headers["access-control-allow-origin"] == "http://localhost:3000"

    answer = raw(gw.port, "GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert answer =~ "HTTP/1.1 403"

    answer =
      raw(
        gw.port,
        "GET /health HTTP/1.1\r\nHost: localhost:#{gw.port}\r\nConnection: close\r\n\r\n"
      )

    assert answer =~ "HTTP/1.1 200"

    gw2 = start_gateway(allowed_origins: ["https://app.example"])
    {200, _, _} = http(:get, gw2.url <> "/health", [{"origin", "https://app.example"}])
    {403, _, _} = http(:get, gw2.url <> "/health", [{"origin", "http://localhost"}])
  end

  test "per-client token bucket: 429 with Retry-After once the burst is spent" do
    gw = start_gateway(rate_limit: 1, rate_burst: 3)
    statuses = for _ <- 1..5, do: elem(http(:get, gw.url <> "/api/mcp"), 0)
    assert Enum.take(statuses, 3) == [200, 200, 200]
    {429, headers, body} = http(:get, gw.url <> "/api/mcp")
    assert String.to_integer(headers["retry-after"]) >= 1
    assert json(body)["error"] =~ "rate limit"
    # /health is not rate limited (probes must always get through).
    {200, _, _} = http(:get, gw.url <> "/health")
    {200, _, body} = http(:get, gw.url <> "/health")
    assert json(body)["status"] == "ok"
  end

  test "bodies over the limit are 413 and the connection is closed" do
    gw = start_gateway(max_body_bytes: 1000)

    big =
      encode(%{jsonrpc: "2.0", id: 1, method: "ping", params: %{pad: String.duplicate("x", 2000)}})

    {413, _, _} = http(:post, gw.url <> "/mcp", [], big)
    {413, _, _} = http(:post, gw.url <> "/api/mcp/swarm_list", [], big)

    chunked =
      "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" <>
        "400\r\n" <>
        String.duplicate("x", 1024) <>
        "\r\n400\r\n" <> String.duplicate("x", 1024) <> "\r\n0\r\n\r\n"

    assert raw(gw.port, chunked) =~ "HTTP/1.1 413"
  end

  test "malformed framing is 400, not a crash" do
    gw = start_gateway()

    answer =
      raw(
        gw.port,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}"
      )

    assert answer =~ "HTTP/1.1 400"
    {200, _, _} = http(:get, gw.url <> "/health")
  end

  test "a body trickled byte by byte is cut off at body_timeout_ms for the whole body" do
    gw = start_gateway(body_timeout_ms: 300)
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, gw.port, [:binary, active: false])

    :ok =
      :gen_tcp.send(
        sock,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
      )

    # Each byte comes well within the timeout; the body as a whole does not.
    started = System.monotonic_time(:millisecond)

    closed_after =
      Enum.find_value(1..30, fn _ ->
        Process.sleep(100)

        case :gen_tcp.send(sock, "x") do
          :ok ->
            case :gen_tcp.recv(sock, 0, 0) do
              {:error, :timeout} -> nil
              _closed_or_answered -> System.monotonic_time(:millisecond) - started
            end

          {:error, _} ->
            System.monotonic_time(:millisecond) - started
        end
      end)

    assert closed_after != nil, "the trickling client was never cut off"
    assert closed_after < 2_000
    :gen_tcp.close(sock)
  end

  test "a slow client does not stall anyone else" do
    gw = start_gateway(body_timeout_ms: 5000)
    {:ok, slow} = :gen_tcp.connect({127, 0, 0, 1}, gw.port, [:binary, active: false])
    # Promises 100 bytes and sends 2.
    :ok =
      :gen_tcp.send(
        slow,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\""
      )

    tasks = for _ <- 1..20, do: Task.async(fn -> elem(http(:get, gw.url <> "/health"), 0) end)
    assert Enum.map(tasks, &Task.await(&1, 5000)) == List.duplicate(200, 20)
    :gen_tcp.close(slow)
  end

  @tag :capture_log
  test "a crashing tool answers -32603 on its own request and the listener keeps serving" do
    gw = start_gateway(api: InterfaceService.SecurityTest.CrashingApi)
    sid = open_session(gw.url)

    {200, %{"error" => %{"code" => -32603}}} =
      rpc(gw.url, sid, "tools/call", %{name: "swarm_list", arguments: %{}})

    {500, _, body} = http(:post, gw.url <> "/api/mcp/swarm_list", [], "{}")
    assert json(body)["success"] == false
    assert {200, %{"result" => %{}}} = rpc(gw.url, sid, "ping")
  end

  defmodule CrashingApi do
    def list_swarms, do: raise("engine exploded")
    def format_error(r), do: inspect(r)
  end
end
