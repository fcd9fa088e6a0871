defmodule InterfaceService.EventSocketTest do
  # GET /ws as a browser would use it: the upgrade (with the token as a
  # subprotocol), subscribe, events pushed live, errors for bad frames.
  use InterfaceService.GatewayCase, async: true

  @token "websocket-token-0001"

  # A minimal WebSocket client on :gen_tcp: masked text frames out,
  # unmasked frames in (RFC 6455).
  defp ws_connect(port, protocols) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false])
    key = Base.encode64(:crypto.strong_rand_bytes(16))

    proto =
      if protocols == [],
        do: "",
        else: "Sec-WebSocket-Protocol: #{Enum.join(protocols, ", ")}\r\n"

    :ok =
      :gen_tcp.send(
        sock,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" <>
          "Sec-WebSocket-Key: #{key}\r\nSec-WebSocket-Version: 13\r\n#{proto}\r\n"
      )

    {:ok, head} = :gen_tcp.recv(sock, 0, 5_000)
    {sock, head}
  end

  defp send_text(sock, text) do
    mask = :crypto.strong_rand_bytes(4)
    len = byte_size(text)
    true = len < 126
    :ok = :gen_tcp.send(sock, [<<1::1, 0::3, 1::4, 1::1, len::7>>, mask, masked(text, mask)])
  end

  defp masked(data, <<a, b, c, d>>) do
    data
    |> :binary.bin_to_list()
    |> Enum.with_index()
    |> Enum.map(fn {byte, i} -> Bitwise.bxor(byte, Enum.at([a, b, c, d], rem(i, 4))) end)
    |> :binary.list_to_bin()
  end

  # The next text frame's JSON (pings from the server are skipped).
  defp recv_json(sock) do
    {:ok, <<_fin::1, _::3, opcode::4, 0::1, len7::7>>} = :gen_tcp.recv(sock, 2, 5_000)

    len =
      case len7 do
        126 -> with {:ok, <<n::16>>} <- :gen_tcp.recv(sock, 2, 5_000), do: n
        127 -> with {:ok, <<n::64>>} <- :gen_tcp.recv(sock, 8, 5_000), do: n
        n -> n
      end

    {:ok, payload} = if len == 0, do: {:ok, ""}, else: :gen_tcp.recv(sock, len, 5_000)
    if opcode == 1, do: json(payload), else: recv_json(sock)
  end

  # Reads frames until one matches.
  defp recv_until(sock, fun) do
    msg = recv_json(sock)
    if fun.(msg), do: msg, else: recv_until(sock, fun)
  end

  test "subscribe, then the swarm's events arrive live; bad frames get an error, not a close" do
    gw = start_gateway()
    {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm(%{topology: :mesh})
    {sock, head} = ws_connect(gw.port, [])
    assert head =~ "HTTP/1.1 101"

    send_text(sock, "not json")
    assert %{"type" => "error", "error" => "the frame is not valid JSON"} = recv_json(sock)

    send_text(sock, ~s({"op":"subscribe","swarm_id":"nope"}))
    assert %{"type" => "error"} = recv_json(sock)

    send_text(sock, ~s({"op":"subscribe","swarm_id":"#{swarm}"}))
    assert %{"type" => "subscribed", "swarm_id" => ^swarm} = recv_json(sock)

    {:ok, agent} = SwarmService.RuvSwarm.spawn_agent(swarm, %{type: :researcher})

    event = recv_until(sock, &(&1["type"] == "event"))
    assert event["swarm_id"] == swarm
    assert event["event"]["type"] == "agent_joined"
    assert inspect(event["event"]) =~ agent

    send_text(sock, ~s({"op":"ping"}))
    assert %{"type" => "pong"} = recv_until(sock, &(&1["type"] == "pong"))

    # More than a request head may hold (64 KiB) in all: a socket is not a head.
    pad = String.duplicate("p", 100)
    for _ <- 1..700, do: send_text(sock, ~s({"op":"ping","pad":"#{pad}"}))
    for _ <- 1..700, do: assert(%{"type" => "pong"} = recv_until(sock, &(&1["type"] == "pong")))

    :gen_tcp.close(sock)
    SwarmService.RuvSwarm.destroy_swarm(swarm)
  end

  test "with tokens, the upgrade needs one: as a header or as the subprotocol bearer.<token>" do
    gw = start_gateway(tokens: [@token])

    {sock, head} = ws_connect(gw.port, [])
    assert head =~ "HTTP/1.1 401"
    :gen_tcp.close(sock)

    {sock, head} = ws_connect(gw.port, ["ruv-swarm", "bearer.#{@token}"])
    assert head =~ "HTTP/1.1 101"
    assert head =~ ~r/sec-websocket-protocol: ruv-swarm/i
    refute head =~ @token
    send_text(sock, ~s({"op":"ping"}))
    assert %{"type" => "pong"} = recv_json(sock)
    :gen_tcp.close(sock)
  end

  test "a plain GET on /ws is told to upgrade" do
    gw = start_gateway()
    {400, _, body} = http(:get, gw.url <> "/ws")
    assert json(body)["error"] =~ "WebSocket"
  end
end
