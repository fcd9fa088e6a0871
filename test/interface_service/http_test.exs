defmodule InterfaceService.HttpTest do
  # HTTP/1.1 as clients see it on the wire (Cowboy plus our framing guard):
  # keep-alive, pipelining, chunked and 100-continue bodies, HEAD, HTTP/1.0,
  # malformed and smuggling requests, head limits, and the connection caps.
  use InterfaceService.GatewayCase, async: true
  import SwarmService.Test.Eventually

  @ping ~s({"jsonrpc":"2.0","id":1,"method":"ping"})

  defp connect(gw) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, gw.port, [:binary, active: false])
    sock
  end

  # Reads one response (head and Content-Length body): {status, head, body}.
  # Bytes past it (the next pipelined response) are kept for the next call.
  defp read_response(sock) do
    buf = Process.delete({:unread, sock}) || ""

    case :binary.split(buf, "\r\n\r\n") do
      [head, rest] ->
        len =
          case Regex.run(~r/\r\ncontent-length: (\d+)/i, head) do
            [_, n] -> String.to_integer(n)
            nil -> 0
          end

        rest = read_at_least(sock, rest, len)
        Process.put({:unread, sock}, binary_part(rest, len, byte_size(rest) - len))
        <<"HTTP/1.", _, " ", status::binary-size(3), _::binary>> = head
        {String.to_integer(status), head, binary_part(rest, 0, len)}

      [_] ->
        {:ok, more} = :gen_tcp.recv(sock, 0, 10_000)
        Process.put({:unread, sock}, buf <> more)
        read_response(sock)
    end
  end

  defp read_at_least(_sock, buf, len) when byte_size(buf) >= len, do: buf

  defp read_at_least(sock, buf, len) do
    {:ok, more} = :gen_tcp.recv(sock, 0, 10_000)
    read_at_least(sock, buf <> more, len)
  end

  defp post_mcp(sid, body, extra \\ "") do
    "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" <>
      "Mcp-Session-Id: #{sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n" <>
      extra <> "Content-Length: #{byte_size(body)}\r\n\r\n" <> body
  end

  setup do
    gw = start_gateway()
    %{gw: gw, sid: open_session(gw.url)}
  end

  test "keep-alive and pipelined requests are answered in order on one connection", %{
    gw: gw,
    sid: sid
  } do
    sock = connect(gw)
    # Two requests in one write, then a third after the answers.
    :ok =
      :gen_tcp.send(
        sock,
        post_mcp(sid, @ping) <> "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
      )

    assert {200, head, body} = read_response(sock)
    refute head =~ ~r/connection: close/i
    assert json(body)["result"] == %{}
    assert {200, _, body} = read_response(sock)
    assert json(body)["status"] == "ok"
    # Header values lose surrounding blanks; an empty one is still a header.
    :ok =
      :gen_tcp.send(sock, post_mcp(sid, @ping, "Accept:  application/json \t\r\nX-Empty:\r\n"))

    assert {200, _, _} = read_response(sock)
    :ok = :gen_tcp.send(sock, post_mcp(sid, @ping))
    assert {200, _, _} = read_response(sock)
    :gen_tcp.close(sock)
  end

  test "a chunked request body is read, and its connection closes after the answer", %{
    gw: gw,
    sid: sid
  } do
    {a, b} = String.split_at(@ping, 10)

    answer =
      raw(
        gw.port,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" <>
          "Mcp-Session-Id: #{sid}\r\nTransfer-Encoding: chunked\r\n\r\n" <>
          "a;ext=1\r\n#{a}\r\n#{Integer.to_string(byte_size(b), 16)}\r\n#{b}\r\n0\r\n\r\n"
      )

    assert answer =~ "HTTP/1.1 200"
    assert answer =~ ~r/connection: close/i
    assert answer =~ ~s("result":{})
  end

  test "Content-Length with Transfer-Encoding: the smuggled request behind it is never served",
       %{gw: gw, sid: sid} do
    smuggled = "GET /api/mcp HTTP/1.1\r\nHost: localhost\r\n\r\n"

    answer =
      raw(
        gw.port,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" <>
          "Mcp-Session-Id: #{sid}\r\nContent-Length: #{byte_size(@ping) + 5}\r\n" <>
          "Transfer-Encoding: chunked\r\n\r\n" <>
          "#{Integer.to_string(byte_size(@ping), 16)}\r\n#{@ping}\r\n0\r\n\r\n" <> smuggled
      )

    # One answer (the chunked body, read as chunked), then the close.
    assert [_] = Regex.scan(~r/HTTP\/1\.1 \d{3}/, answer)
    assert answer =~ ~r/connection: close/i
    refute answer =~ "tools"
  end

  test "a Content-Length that is not plain digits is 400 and closes", %{gw: gw} do
    for length <- ["+2", "-0", "2, 2", "0x2", " "] do
      answer =
        raw(
          gw.port,
          "POST /api/mcp/swarm_list HTTP/1.1\r\nHost: localhost\r\n" <>
            "Content-Length: #{length}\r\n\r\n{}GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )

      assert answer =~ "HTTP/1.1 400", "Content-Length: #{inspect(length)} got #{answer}"
      assert [_] = Regex.scan(~r/HTTP\/1\.1 \d{3}/, answer)
    end
  end

  test "Expect: 100-continue gets 100 Continue before the body is sent", %{gw: gw, sid: sid} do
    sock = connect(gw)
    [head, body] = String.split(post_mcp(sid, @ping, "Expect: 100-continue\r\n"), "\r\n\r\n")
    :ok = :gen_tcp.send(sock, head <> "\r\n\r\n")
    assert {:ok, "HTTP/1.1 100 Continue\r\n\r\n"} = :gen_tcp.recv(sock, 0, 10_000)
    :ok = :gen_tcp.send(sock, body)
    assert {200, _, _} = read_response(sock)
    :gen_tcp.close(sock)
  end

  test "HEAD gets the headers without a body (also on /metrics); HTTP/1.0 is answered", %{
    gw: gw
  } do
    answer = raw(gw.port, "HEAD /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer =~ "HTTP/1.1 200 OK"
    assert [_, ""] = String.split(answer, "\r\n\r\n")

    answer = raw(gw.port, "HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer =~ "HTTP/1.1 200 OK"
    assert answer =~ "text/plain"
    assert [_, ""] = String.split(answer, "\r\n\r\n")

    # Answered as HTTP/1.1 (a server sends its own version, RFC 9110 §6.2),
    # and closed unless the client asked to keep it.
    answer = raw(gw.port, "GET /health HTTP/1.0\r\n\r\n")
    assert answer =~ "HTTP/1.1 200 OK"
    assert answer =~ ~r/connection: close/i

    sock = connect(gw)
    :ok = :gen_tcp.send(sock, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert {200, head, _} = read_response(sock)
    refute head =~ ~r/connection: close/i
    :ok = :gen_tcp.send(sock, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert {200, _, _} = read_response(sock)
    :gen_tcp.close(sock)
  end

  test "malformed requests get a 4xx with the reason, and the connection is closed", %{gw: gw} do
    answer = raw(gw.port, "NOT HTTP AT ALL\r\n\r\n")
    assert answer =~ "HTTP/1.1 400 Bad Request"
    assert answer =~ ~r/connection: close/i
    assert answer =~ ~s({"error":")

    assert raw(gw.port, "GET /health HTTP/9.9\r\nHost: localhost\r\n\r\n") =~ "HTTP/1.1 505"

    long = String.duplicate("a", 10_000)
    assert raw(gw.port, "GET /#{long} HTTP/1.1\r\nHost: localhost\r\n\r\n") =~ "HTTP/1.1 414"

    assert raw(gw.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-#{long}: 1\r\n\r\n") =~
             "HTTP/1.1 431"

    many = for i <- 1..65, into: "", do: "X-H#{i}: 1\r\n"

    assert raw(gw.port, "GET /health HTTP/1.1\r\nHost: localhost\r\n#{many}\r\n") =~
             "HTTP/1.1 431"

    # Content-Length values that disagree.
    assert raw(
             gw.port,
             "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" <>
               "Content-Length: 2, 3\r\n\r\n{}"
           ) =~ "HTTP/1.1 400"

    {200, _, _} = http(:get, gw.url <> "/health")
  end

  test "a request head over 64 KiB in all is refused with 431 even within every per-header limit",
       %{gw: gw} do
    sock = connect(gw)
    :ok = :gen_tcp.send(sock, "GET /health HTTP/1.1\r\nHost: localhost\r\n")
    header = "X-Pad: " <> String.duplicate("p", 8_000) <> "\r\n"

    # 60 headers of 8 KB each: each is allowed, their sum is not. The head
    # never ends; the server must answer long before it could.
    Enum.reduce_while(1..60, :ok, fn _, :ok ->
      case :gen_tcp.send(sock, header) do
        :ok -> {:cont, :ok}
        {:error, _} -> {:halt, :closed}
      end
    end)

    assert {:ok, answer} = :gen_tcp.recv(sock, 0, 5_000)
    assert answer =~ "HTTP/1.1 431"
    assert answer =~ "65536"
    :gen_tcp.close(sock)
  end

  test "a client that sends no request in header_timeout_ms is disconnected; others are served" do
    gw = start_gateway(header_timeout_ms: 300)
    idle = connect(gw)
    slow = connect(gw)
    # A slowloris client: a byte now and then, never a whole head.
    :ok = :gen_tcp.send(slow, "GET /health HTTP/1.1\r\n")

    for _ <- 1..3 do
      Process.sleep(100)
      _ = :gen_tcp.send(slow, "X")
    end

    assert {:error, :closed} = :gen_tcp.recv(idle, 0, 2_000)
    assert {:ok, answer} = :gen_tcp.recv(slow, 0, 2_000)
    assert answer =~ "HTTP/1.1 408"
    assert {200, _, _} = http(:get, gw.url <> "/health")
  end

  test "connections over max_connections get 503 and are closed; leaving frees a place" do
    gw = start_gateway(max_connections: 2)
    a = connect(gw)
    b = connect(gw)

    for sock <- [a, b] do
      :ok = :gen_tcp.send(sock, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
      assert {200, _, _} = read_response(sock)
    end

    answer = raw(gw.port, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer =~ "HTTP/1.1 503"
    assert answer =~ ~r/connection: close/i
    assert answer =~ ~r/retry-after: 1/i
    assert answer =~ "too many open connections"

    # MCP clients get a JSON-RPC error.
    answer =
      raw(
        gw.port,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
      )

    assert answer =~ "HTTP/1.1 503"
    assert answer =~ ~s("code":-32000)

    :gen_tcp.close(a)

    eventually(fn ->
      raw(gw.port, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n") =~ "HTTP/1.1 200"
    end)

    # A polling connection may still be counted for a moment (then the
    # scrape itself is refused, or sees three): ask until it is gone.
    # Raw: a refusal carries Retry-After, which httpc would retry without end.
    body =
      eventually(fn ->
        answer =
          raw(gw.port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")

        # b and the scrape's own connection.
        answer =~ "HTTP/1.1 200" and answer =~ "ruv_swarm_gateway_connections 2\n" and answer
      end)

    # At least the two above (polling may have been refused again meanwhile).
    [_, refused] = Regex.run(~r/rejected_total{reason="connection_cap"} (\d+)/, body)
    assert String.to_integer(refused) >= 2
    :gen_tcp.close(b)
  end

  test "one address flooding up to its cap leaves other addresses and /health served" do
    gw = start_gateway(max_connections_per_address: 5, max_connections: 100)
    flood = for _ <- 1..5, do: connect(gw)
    config = InterfaceService.config(gw.name)
    eventually(fn -> InterfaceService.Listener.connections(config) == 5 end)

    # From the same address, a sixth is refused at once...
    answer = raw(gw.port, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer =~ "HTTP/1.1 503"

    # ...while another loopback address is served.
    {:ok, other} =
      :gen_tcp.connect({127, 0, 0, 1}, gw.port, [:binary, active: false, ip: {127, 0, 0, 2}])

    :ok = :gen_tcp.send(other, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert {200, _, body} = read_response(other)
    assert json(body)["status"] == "ok"
    Enum.each([other | flood], &:gen_tcp.close/1)
  end

  test "near the connection cap, idle kept-alive connections are closed early" do
    gw = start_gateway(max_connections: 8, header_timeout_ms: 30_000)
    held = for _ <- 1..6, do: connect(gw)
    config = InterfaceService.config(gw.name)
    eventually(fn -> InterfaceService.Listener.connections(config) == 6 end)

    # The seventh opens past three quarters of the cap: idle after a request,
    # it is closed within about a second, not after 30 s.
    late = connect(gw)
    :ok = :gen_tcp.send(late, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert {200, _, _} = read_response(late)
    assert {:error, :closed} = :gen_tcp.recv(late, 0, 3_000)
    Enum.each(held, &:gen_tcp.close/1)
  end
end
