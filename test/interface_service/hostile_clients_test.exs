defmodule InterfaceService.HostileClientsTest do
  # The attacks found on the old gateway, each replayed: stolen sessions,
  # session floods, batches around the rate limit, token guessing, SSE
  # clients that never read, streams that leave, and a shutdown under load.
  # Not async: one test traces calls of every new process.
  use InterfaceService.GatewayCase, async: false
  import SwarmService.Test.Eventually

  @token_a "token-of-client-a-000"
  @token_b "token-of-client-b-000"

  defp auth(token), do: [{"authorization", "Bearer " <> token}]

  defp initialize(url, headers) do
    mcp(
      url,
      %{
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: %{protocolVersion: "2025-11-25", capabilities: %{}, clientInfo: %{name: "t"}}
      },
      headers
    )
  end

  defp read_until_closed(sock, acc) do
    case :gen_tcp.recv(sock, 0, 5_000) do
      {:ok, data} -> read_until_closed(sock, acc <> data)
      {:error, :closed} -> {:ok, acc}
      {:error, reason} -> {:error, reason, acc}
    end
  end

  defp post(url, tool, args, headers \\ []),
    do: http(:post, url <> "/api/mcp/" <> tool, headers, encode(args))

  test "a session belongs to the token that opened it: another token can neither use nor end it" do
    gw = start_gateway(tokens: [@token_a, @token_b])
    {200, headers, _} = initialize(gw.url, auth(@token_a))
    sid = headers["mcp-session-id"]
    ping = %{jsonrpc: "2.0", id: 1, method: "ping"}

    assert {404, _, _} = mcp(gw.url, ping, auth(@token_b) ++ session(sid))
    assert {404, _, _} = http(:delete, gw.url <> "/mcp", auth(@token_b) ++ session(sid))
    assert {200, _, body} = mcp(gw.url, ping, auth(@token_a) ++ session(sid))
    assert json(body)["result"] == %{}
    assert {200, _, _} = http(:delete, gw.url <> "/mcp", auth(@token_a) ++ session(sid))
  end

  test "sessions are capped per client with Retry-After; other clients still get theirs" do
    gw = start_gateway(tokens: [@token_a, @token_b], max_sessions_per_client: 2)
    {200, _, _} = initialize(gw.url, auth(@token_a))
    {200, _, _} = initialize(gw.url, auth(@token_a))

    # Raw: httpc would retry a 503 with Retry-After by itself.
    body =
      encode(%{
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: %{protocolVersion: "2025-11-25", capabilities: %{}}
      })

    answer =
      raw(
        gw.port,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer #{@token_a}\r\n" <>
          "Content-Type: application/json\r\nContent-Length: #{byte_size(body)}\r\n\r\n" <> body
      )

    assert answer =~ "HTTP/1.1 503"
    assert answer =~ ~r/retry-after: 60/i
    assert answer =~ "already has 2 open sessions"
    assert {200, _, _} = initialize(gw.url, auth(@token_b))
  end

  test "every call inside a JSON-RPC batch is counted by the rate limiter" do
    gw = start_gateway(rate_limit: 5, rate_burst: 10)
    {200, headers, _} = initialize(gw.url, [{"mcp-protocol-version", "2025-03-26"}])
    sid = headers["mcp-session-id"]
    batch = for i <- 1..50, do: %{jsonrpc: "2.0", id: i, method: "ping"}
    body = encode(batch)

    answer =
      raw(
        gw.port,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" <>
          "Mcp-Session-Id: #{sid}\r\nMCP-Protocol-Version: 2025-03-26\r\n" <>
          "Content-Length: #{byte_size(body)}\r\n\r\n" <> body
      )

    assert answer =~ "HTTP/1.1 429"
    assert answer =~ ~r/retry-after: \d+/i
    refute answer =~ ~s("result")
  end

  test "failed bearer tokens are rate limited per address; a valid token still gets in" do
    gw = start_gateway(tokens: [@token_a])

    statuses =
      for i <- 1..40 do
        request =
          "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer guess-#{i}\r\n" <>
            "Connection: close\r\n\r\n"

        [_, status] = Regex.run(~r/^HTTP\/1\.1 (\d{3})/, raw(gw.port, request))
        status
      end

    assert "401" in statuses
    assert Enum.count(statuses, &(&1 == "429")) >= 15
    assert {200, _, _} = http(:get, gw.url <> "/metrics", auth(@token_a))
  end

  test "an SSE client that never reads is dropped; its stream is unsubscribed and counted out" do
    gw = start_gateway(max_stream_queue_bytes: 4_096, send_timeout_ms: 500)
    {200, _, body} = post(gw.url, "swarm_init", %{})
    swarm = json(body)["swarm_id"]

    {:ok, sock} =
      :gen_tcp.connect({127, 0, 0, 1}, gw.port, [:binary, active: false, recbuf: 4_096])

    :ok =
      :gen_tcp.send(
        sock,
        "GET /sse/discoveries?swarm_id=#{swarm} HTTP/1.1\r\nHost: localhost\r\n\r\n"
      )

    config = InterfaceService.config(gw.name)
    eventually(fn -> :atomics.get(config.tabs.sse, 1) == 1 end)
    content = String.duplicate("x", 60_000)

    # Far more than the socket buffers hold; the client reads nothing.
    for _ <- 1..200 do
      {:ok, _} = SwarmService.RuvSwarm.share_discovery(swarm, %{type: "big", content: content})
    end

    eventually(fn -> :atomics.get(config.tabs.sse, 1) == 0 end, 10_000)

    {200, _, metrics} = http(:get, gw.url <> "/metrics")
    assert metrics =~ ~r/rejected_total\{reason="slow_stream_client"\} [1-9]/
    :gen_tcp.close(sock)
  end

  test "a closed discovery stream is unsubscribed from the engine at once" do
    gw = start_gateway()
    {200, _, body} = post(gw.url, "swarm_init", %{})
    swarm = json(body)["swarm_id"]

    :erlang.trace(:new_processes, true, [:call, {:tracer, self()}])
    :erlang.trace_pattern({SwarmService.RuvSwarm, :unsubscribe, 1}, true, [:local])

    try do
      sock = stream_open(gw.port, "/sse/discoveries?swarm_id=#{swarm}&type=x", [])
      stream_read(sock, "subscribed")
      :gen_tcp.close(sock)

      assert_receive {:trace, _pid, :call, {SwarmService.RuvSwarm, :unsubscribe, [^swarm]}},
                     2_000
    after
      :erlang.trace(:new_processes, false, [:call])
      :erlang.trace_pattern({SwarmService.RuvSwarm, :unsubscribe, 1}, false, [:local])
    end
  end

  test "stopping the gateway answers the request in flight, then refuses new connections" do
    gw = start_gateway(drain_timeout_ms: 5_000)
    body = encode(%{})

    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, gw.port, [:binary, active: false])

    # A request whose body is still on its way when the stop begins.
    :ok =
      :gen_tcp.send(
        sock,
        "POST /api/mcp/swarm_list HTTP/1.1\r\nHost: localhost\r\n" <>
          "Content-Length: #{byte_size(body)}\r\n\r\n"
      )

    config = InterfaceService.config(gw.name)
    eventually(fn -> :atomics.get(config.tabs.busy, 1) == 1 end)

    client =
      Task.async(fn ->
        eventually(fn -> :atomics.get(config.tabs.draining, 1) == 1 end)
        Process.sleep(200)
        :ok = :gen_tcp.send(sock, body)
        read_until_closed(sock, "")
      end)

    :ok = :gen_tcp.controlling_process(sock, client.pid)
    # Returns once the gateway is down: after the drain.
    assert :ok = stop_supervised(gw.name)
    assert {:ok, answer} = Task.await(client, 10_000)
    assert answer =~ "HTTP/1.1 200"
    assert answer =~ ~r/connection: close/i
    assert answer =~ ~s("success":true)
    assert {:error, :econnrefused} = :gen_tcp.connect({127, 0, 0, 1}, gw.port, [:binary])
  end

  test "a client creating swarms without end hits its cap with a 429 and a sentence" do
    old = Application.get_env(:swarm_service, SwarmService.SwarmCaps, [])
    Application.put_env(:swarm_service, SwarmService.SwarmCaps, max_swarms_per_client: 3)
    on_exit(fn -> Application.put_env(:swarm_service, SwarmService.SwarmCaps, old) end)
    # A token of its own: other tests' swarms from this address do not count.
    token = "swarm-cap-client-#{System.unique_integer([:positive])}"
    gw = start_gateway(tokens: [token])
    me = auth(token)

    ids =
      for _ <- 1..3 do
        {200, _, body} = post(gw.url, "swarm_init", %{}, me)
        json(body)["swarm_id"]
      end

    {429, _, body} = post(gw.url, "swarm_init", %{}, me)
    assert %{"success" => false, "error" => error} = json(body)
    assert error =~ "already has 3 swarms"

    {200, _, _} = post(gw.url, "swarm_destroy", %{swarm_id: hd(ids)}, me)
    {200, _, body} = post(gw.url, "swarm_init", %{}, me)
    Enum.each([json(body)["swarm_id"] | tl(ids)], &SwarmService.RuvSwarm.destroy_swarm/1)
  end
end
