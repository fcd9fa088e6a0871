# Gateway benchmark: `mix run bench/gateway.exs` (MIX_ENV=prod for release-like numbers).
#
# Measures, in one run:
#   * tools/call swarm_status over MCP (2025-11-25 session, JSON responses) at
#     1, 16 and 64 concurrent keep-alive clients: requests/s, p50, p99;
#   * GET /health at 1 client: p50, p99;
#   * the same swarm_status as a native call, and the MCP/native ratio;
#   * the same 64-client load against a bare Cowboy listener in this VM
#     whose handler answers every request with canned bytes of the MCP
#     response's size: HTTP on Cowboy with no work at all, the ceiling for
#     this machine; and the gateway's 64-client throughput as a share of it.
# The client is a small raw :gen_tcp keep-alive HTTP/1.1 client, so the
# numbers are the gateway's and not an HTTP library's. Prints a table and one
# JSON line per measurement. Ratios and percentiles only: nothing is asserted.

Code.require_file("percentile.exs", __DIR__)

defmodule GatewayBench.Client do
  @moduledoc false
  # Minimal keep-alive HTTP/1.1 client: one socket, one request at a time.

  def connect(port) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false, nodelay: true])
    sock
  end

  def request(sock, method, path, headers, body) do
    req = [
      method,
      " ",
      path,
      " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
      Enum.map(headers, fn {k, v} -> [k, ": ", v, "\r\n"] end),
      "Content-Length: ",
      Integer.to_string(byte_size(body)),
      "\r\n\r\n",
      body
    ]

    :ok = :gen_tcp.send(sock, req)
    read_response(sock, "")
  end

  defp read_response(sock, buf) do
    case :binary.match(buf, "\r\n\r\n") do
      {pos, 4} ->
        head = binary_part(buf, 0, pos)
        rest = binary_part(buf, pos + 4, byte_size(buf) - pos - 4)
        len = content_length(head)
        body = read_body(sock, rest, len)
        <<"HTTP/1.1 ", status::binary-size(3), _::binary>> = head
        {String.to_integer(status), head, body}

      :nomatch ->
        {:ok, more} = :gen_tcp.recv(sock, 0, 10_000)
        read_response(sock, buf <> more)
    end
  end

  defp content_length(head) do
    [_, n] = Regex.run(~r/\r\ncontent-length: *(\d+)/i, head)
    String.to_integer(n)
  end

  defp read_body(_sock, buf, len) when byte_size(buf) >= len, do: buf

  defp read_body(sock, buf, len) do
    {:ok, more} = :gen_tcp.recv(sock, len - byte_size(buf), 10_000)
    read_body(sock, buf <> more, len)
  end
end

defmodule GatewayBench.Canned do
  @moduledoc false
  # A bare Cowboy listener: its handler reads the body and answers the same
  # canned bytes to every request. Nothing else.

  def start(response_body) do
    dispatch = :cowboy_router.compile([{:_, [{:_, __MODULE__, response_body}]}])

    {:ok, _} =
      :cowboy.start_clear(
        __MODULE__,
        %{socket_opts: [ip: {127, 0, 0, 1}, port: 0, nodelay: true]},
        %{
          env: %{dispatch: dispatch}
        }
      )

    :ranch.get_port(__MODULE__)
  end

  def init(req, body) do
    {:ok, _, req} = :cowboy_req.read_body(req)
    {:ok, :cowboy_req.reply(200, %{"content-type" => "application/json"}, body, req), body}
  end
end

defmodule GatewayBench do
  @moduledoc false
  alias GatewayBench.Client

  @duration_ms String.to_integer(System.get_env("BENCH_DURATION_MS", "3000"))

  def run do
    {:ok, _} = Application.ensure_all_started(:inets)
    {:ok, _} = Application.ensure_all_started(:cowboy)
    {:ok, _} = Application.ensure_all_started(:jiffy)

    {:ok, _} = Application.ensure_all_started(:swarm_service)
    api = SwarmService.RuvSwarm

    {:ok, _} =
      InterfaceService.start_link(
        name: GatewayBench,
        port: 0,
        enabled: true,
        api: api,
        rate_limit: 0,
        max_sessions: 1000
      )

    port = InterfaceService.port(GatewayBench)
    {:ok, swarm} = api.spawn_swarm(%{topology: :mesh, agents: 4})

    IO.puts(
      "engine: #{inspect(api)}  schedulers: #{System.schedulers_online()}  duration/level: #{@duration_ms} ms\n"
    )

    native = native(api, swarm)
    sid = open_session(port)

    body =
      IO.iodata_to_binary(
        :jiffy.encode(%{
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: %{name: "swarm_status", arguments: %{swarm_id: swarm}}
        })
      )

    headers = [
      {"Content-Type", "application/json"},
      {"Accept", "application/json, text/event-stream"},
      {"Mcp-Session-Id", sid},
      {"MCP-Protocol-Version", "2025-11-25"}
    ]

    # Sanity: the call must really succeed before it is timed.
    sock = Client.connect(port)
    {200, _, resp} = Client.request(sock, "POST", "/mcp", headers, body)
    false = :jiffy.decode(resp, [:return_maps])["result"]["isError"]
    :gen_tcp.close(sock)

    mcp =
      for clients <- [1, 16, 64] do
        load("tools/call swarm_status", clients, port, fn s ->
          Client.request(s, "POST", "/mcp", headers, body)
        end)
      end

    health = load("GET /health", 1, port, fn s -> Client.request(s, "GET", "/health", [], "") end)

    canned = GatewayBench.Canned.start(resp)

    ceiling =
      load("canned Cowboy handler", 64, canned, fn s ->
        Client.request(s, "POST", "/mcp", headers, body)
      end)

    rows = [native | mcp] ++ [health, ceiling]
    print_table(rows)
    ratio = Enum.at(mcp, 0).p50_us / native.p50_us
    IO.puts("\nMCP/native p50 ratio (1 client): #{Float.round(ratio, 1)}x")
    share = List.last(mcp).rps / ceiling.rps
    IO.puts("64-client throughput / canned-Cowboy ceiling: #{Float.round(share, 2)}\n")

    for row <- rows, do: IO.puts(:jiffy.encode(Map.put(row, :bench, "gateway")))

    IO.puts(
      :jiffy.encode(%{
        bench: "gateway",
        name: "mcp_over_native_p50_ratio",
        value: Float.round(ratio, 2)
      })
    )

    IO.puts(
      :jiffy.encode(%{
        bench: "gateway",
        name: "mcp_64_clients_over_cowboy_ceiling",
        value: Float.round(share, 2)
      })
    )
  end

  defp native(api, swarm) do
    n = 50_000
    for _ <- 1..1000, do: api.swarm_status(swarm)

    samples =
      for _ <- 1..n do
        t0 = System.monotonic_time(:nanosecond)
        {:ok, _} = api.swarm_status(swarm)
        System.monotonic_time(:nanosecond) - t0
      end

    stats("native swarm_status", 1, samples, Enum.sum(samples) / 1.0e9)
  end

  defp open_session(port) do
    sock = Client.connect(port)

    init =
      IO.iodata_to_binary(
        :jiffy.encode(%{
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: %{
            protocolVersion: "2025-11-25",
            capabilities: %{},
            clientInfo: %{name: "bench", version: "1"}
          }
        })
      )

    {200, head, _} =
      Client.request(sock, "POST", "/mcp", [{"Content-Type", "application/json"}], init)

    [_, sid] = Regex.run(~r/\r\nmcp-session-id: *([^\r]+)/i, head)
    :gen_tcp.close(sock)
    sid
  end

  defp load(name, clients, port, fun) do
    parent = self()
    start = System.monotonic_time(:millisecond)
    deadline = start + @duration_ms

    pids =
      for _ <- 1..clients do
        spawn_link(fn ->
          sock = Client.connect(port)
          # Warm the connection up.
          fun.(sock)
          send(parent, {:samples, self(), loop(sock, fun, deadline, [])})
          :gen_tcp.close(sock)
        end)
      end

    samples = Enum.flat_map(pids, fn pid -> receive do: ({:samples, ^pid, s} -> s) end)
    elapsed_s = (System.monotonic_time(:millisecond) - start) / 1000
    stats(name, clients, samples, elapsed_s)
  end

  defp loop(sock, fun, deadline, acc) do
    if System.monotonic_time(:millisecond) >= deadline do
      acc
    else
      t0 = System.monotonic_time(:nanosecond)
      {200, _, _} = fun.(sock)
      loop(sock, fun, deadline, [System.monotonic_time(:nanosecond) - t0 | acc])
    end
  end

  defp stats(name, clients, samples, elapsed_s) do
    sorted = Enum.sort(samples)
    n = length(sorted)
    pct = fn q -> Bench.Percentile.of(sorted, q) / 1000 end

    %{
      name: name,
      clients: clients,
      requests: n,
      rps: round(n / elapsed_s),
      p50_us: Float.round(pct.(0.5), 1),
      p99_us: Float.round(pct.(0.99), 1)
    }
  end

  defp print_table(rows) do
    IO.puts(
      String.pad_trailing("measurement", 30) <>
        String.pad_leading("clients", 8) <>
        String.pad_leading("req/s", 10) <>
        String.pad_leading("p50 µs", 10) <> String.pad_leading("p99 µs", 10)
    )

    for r <- rows do
      IO.puts(
        String.pad_trailing(r.name, 30) <>
          String.pad_leading(Integer.to_string(r.clients), 8) <>
          String.pad_leading(Integer.to_string(r.rps), 10) <>
          String.pad_leading(:erlang.float_to_binary(r.p50_us, decimals: 1), 10) <>
          String.pad_leading(:erlang.float_to_binary(r.p99_us, decimals: 1), 10)
      )
    end
  end
end

GatewayBench.run()
