defmodule InterfaceService.GatewayCase do
  @moduledoc false
  # Starts gateways on ephemeral loopback ports and talks to them over real
  # HTTP with :httpc (and raw :gen_tcp where a test needs broken requests).
  use ExUnit.CaseTemplate
  import ExUnit.Assertions

  using do
    quote do
      import InterfaceService.GatewayCase
    end
  end

  @doc "The API the gateway under test calls: always the real engine."
  def engine_api, do: SwarmService.RuvSwarm

  @doc "Starts a gateway under the test supervisor; returns its base URL and name."
  def start_gateway(opts \\ []) do
    name = :"gateway_test_#{System.unique_integer([:positive])}"
    opts = Keyword.merge([name: name, port: 0, api: engine_api(), enabled: true], opts)
    ExUnit.Callbacks.start_supervised!({InterfaceService, opts}, id: name)
    %{url: InterfaceService.url(name), name: name, port: InterfaceService.port(name)}
  end

  @doc "One HTTP request; returns {status, headers (lowercase names), body}."
  def http(method, url, headers \\ [], body \\ nil) do
    headers = Enum.map(headers, fn {k, v} -> {to_charlist(k), to_charlist(v)} end)
    {ct, headers} = pop_content_type(headers)

    request =
      if body == nil,
        do: {to_charlist(url), headers},
        else: {to_charlist(url), headers, ct || ~c"application/json", body}

    {:ok, {{_, status, _}, resp_headers, resp_body}} =
      :httpc.request(
        method,
        request,
        [timeout: 15_000, autoredirect: false],
        [body_format: :binary],
        profile()
      )

    {status, Map.new(resp_headers, fn {k, v} -> {to_string(k), to_string(v)} end), resp_body}
  end

  # A process may use its own httpc profile (own connections), so a request
  # it has in flight does not queue another process's request behind it.
  defp profile do
    case Process.get(:httpc_profile) do
      nil ->
        {:ok, pid} =
          :inets.start(
            :httpc,
            [profile: :"httpc_#{System.unique_integer([:positive])}"],
            :stand_alone
          )

        Process.put(:httpc_profile, pid)
        pid

      pid ->
        pid
    end
  end

  @doc "Opens a raw GET stream (SSE); returns the socket."
  def stream_open(port, path, headers) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false])
    lines = Enum.map(headers, fn {k, v} -> [k, ": ", v, "\r\n"] end)
    :ok = :gen_tcp.send(sock, ["GET ", path, " HTTP/1.1\r\nhost: 127.0.0.1\r\n", lines, "\r\n"])
    sock
  end

  @doc "Reads from a raw stream until `needle` shows up; returns everything read."
  def stream_read(sock, needle, timeout \\ 10_000, acc \\ "") do
    if String.contains?(acc, needle) do
      acc
    else
      case :gen_tcp.recv(sock, 0, timeout) do
        {:ok, data} ->
          stream_read(sock, needle, timeout, acc <> data)

        {:error, reason} ->
          flunk("stream ended (#{inspect(reason)}) before #{inspect(needle)}; got: #{acc}")
      end
    end
  end

  defp pop_content_type(headers) do
    case List.keytake(headers, ~c"content-type", 0) do
      {{_, ct}, rest} -> {ct, rest}
      nil -> {nil, headers}
    end
  end

  def json(body), do: :jiffy.decode(body, [:return_maps, :use_nil])
  def encode(term), do: IO.iodata_to_binary(:jiffy.encode(term, [:use_nil]))

  @accept {"accept", "application/json, text/event-stream"}

  @doc "POSTs a JSON-RPC message to /mcp (legacy era)."
  def mcp(url, msg, headers \\ []) do
    http(:post, url <> "/mcp", [@accept | headers], encode(msg))
  end

  @doc "initialize + notifications/initialized; returns the session id."
  def open_session(url, version \\ "2025-11-25") do
    {200, headers, body} =
      mcp(url, %{
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: %{
          protocolVersion: version,
          capabilities: %{},
          clientInfo: %{name: "exunit", version: "1"}
        }
      })

    %{"result" => %{"protocolVersion" => ^version}} = json(body)
    sid = Map.fetch!(headers, "mcp-session-id")

    {202, _, _} =
      mcp(url, %{jsonrpc: "2.0", method: "notifications/initialized"}, session(sid, version))

    sid
  end

  def session(sid, version \\ "2025-11-25"),
    do: [{"mcp-session-id", sid}, {"mcp-protocol-version", version}]

  @doc "A request in an open session; returns the decoded JSON-RPC response."
  def rpc(url, sid, method, params \\ %{}, id \\ 1) do
    {status, _headers, body} =
      mcp(url, %{jsonrpc: "2.0", id: id, method: method, params: params}, session(sid))

    {status, json(body)}
  end

  def call_tool(url, sid, name, args) do
    {200, %{"result" => result}} = rpc(url, sid, "tools/call", %{name: name, arguments: args})
    result
  end

  @doc "A 2026-07-28 stateless request with the mirrored headers."
  def modern(url, method, params \\ %{}, extra_headers \\ []) do
    meta = %{
      "io.modelcontextprotocol/protocolVersion" => "2026-07-28",
      "io.modelcontextprotocol/clientCapabilities" => %{}
    }

    params = Map.put(params, "_meta", Map.merge(meta, Map.get(params, "_meta", %{})))

    name_header =
      case params do
        %{"name" => name} -> [{"mcp-name", name}]
        _ -> []
      end

    headers = [{"mcp-protocol-version", "2026-07-28"}, {"mcp-method", method}] ++ name_header

    headers =
      Enum.reduce(extra_headers, headers, fn {k, v}, acc -> List.keystore(acc, k, 0, {k, v}) end)

    headers = Enum.reject(headers, fn {_k, v} -> v == nil end)

    {status, resp_headers, body} =
      mcp(url, %{jsonrpc: "2.0", id: 7, method: method, params: params}, headers)

    {status, resp_headers, if(body == "", do: nil, else: json(body))}
  end

  @doc """
  Sends raw bytes and returns what the server answers: waits up to
  `first_ms` for the first bytes (generous, for loaded machines), then reads
  until the server closes or stays quiet for 300 ms (a kept-alive
  connection).
  """
  def raw(port, data, first_ms \\ 10_000) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false])
    :ok = :gen_tcp.send(sock, data)

    result =
      case :gen_tcp.recv(sock, 0, first_ms) do
        {:ok, data} -> recv_all(sock, data)
        {:error, _} -> ""
      end

    :gen_tcp.close(sock)
    result
  end

  defp recv_all(sock, acc) do
    case :gen_tcp.recv(sock, 0, 300) do
      {:ok, data} -> recv_all(sock, acc <> data)
      {:error, _} -> acc
    end
  end
end
