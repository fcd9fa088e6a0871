# A proxied `echo` of @modelcontextprotocol/server-everything (stdio) three
# ways in one run:
#
#   direct   a minimal client: JSON-RPC lines over a port straight to the
#            server (the floor: the server's own time plus one pipe each way)
#   actor    SwarmService.McpServers.call/4 (actor -> launcher -> rmcp client
#            -> server)
#   gateway  POST /api/mcp/everything__echo on the gateway (keep-alive HTTP
#            over loopback, the gateway's worker, then the actor)
#
# and calls/s through the actor at 1 and 64 callers. Goals (issue 12):
# <= 100 us added through the actor, <= 300 us through the gateway.
#
#     make bench-mcp            # or: mix run bench/mcp_servers.exs
#     N=2000 mix run bench/mcp_servers.exs
#
# Prints a table and one JSON line per measurement.

Code.require_file("percentile.exs", __DIR__)
alias SwarmService.McpServers

n = String.to_integer(System.get_env("N", "3000"))
node = System.find_executable("node") || raise "node is not on PATH"

everything =
  Path.expand(
    "_build/mcp_peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
  )

File.exists?(everything) || raise "#{everything} is missing: run `make mcp-peers`"

defmodule Bench.Direct do
  # The smallest correct client: initialize, initialized, then calls.
  def open(node, script) do
    port =
      Port.open({:spawn_executable, node}, [
        :binary,
        {:line, 1_000_000},
        :exit_status,
        args: [script, "stdio"]
      ])

    send_msg(port, %{
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: %{
        protocolVersion: "2025-11-25",
        capabilities: %{},
        clientInfo: %{name: "bench", version: "1"}
      }
    })

    await(port, 0)
    send_msg(port, %{jsonrpc: "2.0", method: "notifications/initialized"})
    port
  end

  def call(port, id) do
    send_msg(port, %{
      jsonrpc: "2.0",
      id: id,
      method: "tools/call",
      params: %{name: "echo", arguments: %{message: "bench"}}
    })

    await(port, id)
  end

  defp send_msg(port, msg), do: Port.command(port, [:jiffy.encode(msg), "\n"])

  defp await(port, id, acc \\ "") do
    receive do
      {^port, {:data, {:noeol, part}}} ->
        await(port, id, acc <> part)

      {^port, {:data, {:eol, line}}} ->
        case :jiffy.decode(acc <> line, [:return_maps]) do
          %{"id" => ^id} = msg -> msg
          _ -> await(port, id)
        end
    after
      10_000 -> raise "no answer from the direct server"
    end
  end
end

defmodule Bench.Http do
  # Keep-alive HTTP/1.1 over one loopback socket, Content-Length bodies.
  def open(port) do
    {:ok, s} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false, nodelay: true])
    s
  end

  def post(s, path, body) do
    :ok =
      :gen_tcp.send(s, [
        "POST ",
        path,
        " HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ",
        Integer.to_string(byte_size(body)),
        "\r\n\r\n",
        body
      ])

    read(s, "")
  end

  defp read(s, acc) do
    case :binary.split(acc, "\r\n\r\n") do
      [head, rest] ->
        [_, len] = Regex.run(~r/content-length: *(\d+)/i, head)
        len = String.to_integer(len)
        body(s, rest, len)

      [_] ->
        {:ok, data} = :gen_tcp.recv(s, 0, 10_000)
        read(s, acc <> data)
    end
  end

  defp body(_s, rest, len) when byte_size(rest) >= len, do: binary_part(rest, 0, len)

  defp body(s, rest, len) do
    {:ok, data} = :gen_tcp.recv(s, 0, 10_000)
    body(s, rest <> data, len)
  end
end

sample = fn count, f ->
  for i <- 1..min(count, 500), do: f.(i)

  for i <- 1..count do
    t0 = System.monotonic_time(:nanosecond)
    f.(i)
    System.monotonic_time(:nanosecond) - t0
  end
  |> Enum.sort()
end

report = fn name, sorted, base ->
  p50 = Bench.Percentile.of(sorted, 0.50) / 1000
  p99 = Bench.Percentile.of(sorted, 0.99) / 1000

  row = %{
    bench: "mcp_servers",
    path: name,
    n: length(sorted),
    p50_us: Float.round(p50, 1),
    p99_us: Float.round(p99, 1),
    added_p50_us: base && Float.round(p50 - base.p50, 1),
    added_p99_us: base && Float.round(p99 - base.p99, 1)
  }

  IO.puts(
    String.pad_trailing(name, 9) <>
      "p50 #{String.pad_leading(to_string(row.p50_us), 8)} us  p99 #{String.pad_leading(to_string(row.p99_us), 8)} us" <>
      if(base, do: "  added p50 #{row.added_p50_us} us, p99 #{row.added_p99_us} us", else: "")
  )

  IO.puts(IO.iodata_to_binary(:jiffy.encode(row, [:use_nil])))
  %{p50: p50, p99: p99}
end

IO.puts("echo of server-everything (stdio), #{n} calls per path, one caller\n")

direct = Bench.Direct.open(node, everything)
base = report.("direct", sample.(n, fn i -> Bench.Direct.call(direct, i) end), nil)
Port.close(direct)

{:ok, _} =
  McpServers.deploy("everything", %{
    "command" => node,
    "args" => [everything, "stdio"],
    "max_concurrency" => 64
  })

Stream.repeatedly(fn -> McpServers.server("everything") end)
|> Enum.find(&match?({:ok, %{status: :ready}}, &1))

echo = fn _ -> {:ok, _} = McpServers.call("everything", "echo", %{"message" => "bench"}) end
report.("actor", sample.(n, echo), base)

name = :bench_mcp_gateway

{:ok, _} =
  Supervisor.start_link(
    [
      {InterfaceService,
       name: name, port: 0, api: SwarmService.RuvSwarm, enabled: true, rate_limit: 0}
    ],
    strategy: :one_for_one
  )

sock = Bench.Http.open(InterfaceService.port(name))
body = ~s({"message":"bench"})

gateway = fn _ ->
  ~s({"success":true,) <> _ = Bench.Http.post(sock, "/api/mcp/everything__echo", body)
end

report.("gateway", sample.(n, gateway), base)

IO.puts("\ncalls/s through the actor")

for callers <- [1, 64] do
  per = div(n * 2, callers) |> max(20)
  t0 = System.monotonic_time(:microsecond)

  1..callers
  |> Enum.map(fn _ -> Task.async(fn -> for _ <- 1..per, do: echo.(nil) end) end)
  |> Task.await_many(120_000)

  secs = (System.monotonic_time(:microsecond) - t0) / 1_000_000
  rate = round(callers * per / secs)
  IO.puts("#{String.pad_leading(Integer.to_string(callers), 3)} callers: #{rate} calls/s")

  IO.puts(
    IO.iodata_to_binary(
      :jiffy.encode(%{
        bench: "mcp_servers",
        callers: callers,
        calls: callers * per,
        calls_per_s: rate
      })
    )
  )
end

McpServers.stop("everything")
