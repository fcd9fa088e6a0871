defmodule InterfaceService.HttpConnTest do
  # HTTP/1.1 as clients see it on the wire: keep-alive, pipelining, chunked
  # and 100-continue bodies, HEAD, HTTP/1.0, malformed requests, and the cap
  # on open connections.
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

  test "a chunked request body is read, and the connection stays usable", %{gw: gw, sid: sid} do
    sock = connect(gw)
    {a, b} = String.split_at(@ping, 10)

    :ok =
      :gen_tcp.send(
        sock,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" <>
          "Mcp-Session-Id: #{sid}\r\nTransfer-Encoding: chunked\r\n\r\n" <>
          "a;ext=1\r\n#{a}\r\n#{Integer.to_string(byte_size(b), 16)}\r\n#{b}\r\n0\r\nX-Trailer: 1\r\n\r\n"
      )

    assert {200, _, body} = read_response(sock)
    assert json(body)["result"] == %{}
    :ok = :gen_tcp.send(sock, post_mcp(sid, @ping))
    assert {200, _, _} = read_response(sock)
    :gen_tcp.close(sock)
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

  test "HEAD gets the headers without a body; HTTP/1.0 closes unless kept alive", %{gw: gw} do
    answer = raw(gw.port, "HEAD /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer =~ "HTTP/1.1 200 OK"
    assert [_, ""] = String.split(answer, "\r\n\r\n")

    answer = raw(gw.port, "GET /health HTTP/1.0\r\n\r\n")
    assert answer =~ "HTTP/1.0 200 OK"
    assert answer =~ "Connection: close"

    sock = connect(gw)
    :ok = :gen_tcp.send(sock, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert {200, head, _} = read_response(sock)
    refute head =~ "Connection: close"
    :ok = :gen_tcp.send(sock, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert {200, _, _} = read_response(sock)
    :gen_tcp.close(sock)
  end

  test "malformed requests get 400 and the connection is closed", %{gw: gw} do
    assert raw(gw.port, "NOT HTTP AT ALL\r\n\r\n") =~ "HTTP/1.1 400 Bad Request"

    long = String.duplicate("a", 10_000)
    assert raw(gw.port, "GET /#{long} HTTP/1.1\r\nHost: localhost\r\n\r\n") =~ "HTTP/1.1 400"

    assert raw(gw.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-#{long}: 1\r\n\r\n") =~
             "HTTP/1.1 400"

    # Content-Length values that disagree.
    assert raw(
             gw.port,
             "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" <>
               "Content-Length: 2, 3\r\n\r\n{}"
           ) =~ "HTTP/1.1 400"

    # The same length twice is one length.
    assert raw(
             gw.port,
             "POST /api/mcp/swarm_list HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" <>
               "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"
           ) =~ "HTTP/1.1 200"

    {200, _, _} = http(:get, gw.url <> "/health")
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
    assert answer =~ "Connection: close"
    assert answer =~ "Retry-After: 1"
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
end
