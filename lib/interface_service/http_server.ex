defmodule InterfaceService.HttpServer do
  @moduledoc false
  # The mochiweb listener and the per-request pipeline:
  #   Host -> Origin -> (CORS preflight) -> /health -> bearer token -> rate
  #   limit -> route.
  # mochiweb runs every connection in its own process, so a slow or hostile
  # client only ever occupies its own process; anything a handler raises is
  # answered 500 on that connection and never reaches the listener.

  require Logger

  alias InterfaceService.{Auth, Config, Json, Metrics, RateLimiter, Rest, Sse}
  alias InterfaceService.Mcp.Http, as: McpHttp

  @spec child_spec(Config.t()) :: Supervisor.child_spec()
  def child_spec(config) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [config]}, type: :worker}
  end

  @spec start_link(Config.t()) :: {:ok, pid()} | {:error, term()}
  def start_link(%Config{} = config) do
    opts = [
      name: :undefined,
      ip: config.ip,
      port: config.port,
      loop: fn req -> handle(req, config) end,
      nodelay: true,
      backlog: 1024,
      acceptor_pool_size: 32
    ]

    case :mochiweb_http.start_link(opts) do
      {:ok, pid} ->
        :ets.insert(config.tabs.http, {:listener, pid})
        {:ok, pid}

      {:error, reason} ->
        {:error, {:listen_failed, "#{:inet.ntoa(config.ip)}:#{config.port}", reason}}
    end
  end

  @doc "The bound port."
  def port(%Config{tabs: %{http: tab}}) do
    [{:listener, pid}] = :ets.lookup(tab, :listener)
    :mochiweb_socket_server.get(pid, :port)
  end

  @doc "The base URL clients should use."
  def base_url(%Config{public_url: url}) when is_binary(url), do: url

  def base_url(%Config{ip: ip} = config) do
    host =
      case ip do
        {_, _, _, _, _, _, _, _} -> "[#{:inet.ntoa(ip)}]"
        _ -> to_string(:inet.ntoa(ip))
      end

    "http://#{host}:#{port(config)}"
  end

  # --- the pipeline -------------------------------------------------------------

  @doc false
  def handle(req, config) do
    t0 = System.monotonic_time(:microsecond)
    {path, query} = split_path(:mochiweb_request.get(:raw_path, req))

    conn = %{
      req: req,
      config: config,
      headers: headers_of(req),
      method: :mochiweb_request.get(:method, req),
      path: path,
      query: query,
      route: route_label(path),
      tool: "-",
      status: nil,
      client: nil,
      cors: []
    }

    conn =
      try do
        pipeline(conn)
      rescue
        e ->
          Logger.error(
            "gateway: #{conn.route} request failed: " <>
              Exception.format(:error, e, __STACKTRACE__)
          )

          internal_error(conn)
      catch
        :throw, reason ->
          Logger.error("gateway: #{conn.route} request threw #{inspect(reason)}")
          internal_error(conn)
      end

    tool = Process.delete(:gateway_tool) || conn.tool

    Metrics.observe(
      config.tabs.metrics,
      conn.route,
      tool,
      conn.status || 0,
      System.monotonic_time(:microsecond) - t0
    )
  end

  defp internal_error(%{status: nil} = conn),
    do: send_json(conn, 500, %{error: "internal error"}, [{"Connection", "close"}])

  # Headers were already sent (a stream): nothing more can be said.
  defp internal_error(conn), do: conn

  defp pipeline(conn) do
    config = conn.config

    with :ok <-
           check(
             conn,
             Auth.check_host(config, header(conn, "host")),
             403,
             "Host header not allowed"
           ),
         :ok <-
           check(
             conn,
             Auth.check_origin(config, header(conn, "origin")),
             403,
             "Origin not allowed"
           ) do
      conn = cors(conn)

      cond do
        conn.method == :OPTIONS -> preflight(conn)
        conn.path == "/health" -> health(conn)
        true -> authenticated(conn)
      end
    end
  end

  defp authenticated(conn) do
    config = conn.config

    case Auth.check_token(config, header(conn, "authorization")) do
      {:ok, identity} ->
        client = if config.tokens == [], do: peer(conn), else: identity
        conn = %{conn | client: client}

        case RateLimiter.take(config.tabs.rate, client, config.rate_limit, config.rate_burst) do
          :ok ->
            route(conn)

          {:error, retry_ms} ->
            Metrics.reject(config.tabs.metrics, :rate_limited)
            retry_s = Integer.to_string(div(retry_ms + 999, 1000))

            reject(conn, 429, "rate limit exceeded, retry in #{retry_s} s", [
              {"Retry-After", retry_s}
            ])
        end

      {:error, kind} ->
        Metrics.reject(config.tabs.metrics, :unauthorized)

        challenge =
          if kind == :invalid,
            do: ~s(Bearer realm="ruv_swarm", error="invalid_token"),
            else: ~s(Bearer realm="ruv_swarm")

        reject(conn, 401, "missing or invalid bearer token", [{"WWW-Authenticate", challenge}])
    end
  end

  defp check(_conn, :ok, _status, _msg), do: :ok

  defp check(conn, {:error, reason}, status, msg) do
    Metrics.reject(conn.config.tabs.metrics, reason)
    reject(conn, status, msg, [])
  end

  defp route(%{path: "/mcp"} = conn), do: McpHttp.handle(conn)
  defp route(%{path: "/api/mcp" <> rest} = conn), do: Rest.handle(conn, rest)
  defp route(%{path: "/sse/discoveries"} = conn), do: Sse.discoveries(conn)
  defp route(%{path: "/metrics", method: :GET} = conn), do: metrics(conn)
  defp route(%{path: "/metrics"} = conn), do: method_not_allowed(conn, "GET")
  defp route(conn), do: send_json(conn, 404, %{error: "not found"})

  defp route_label("/mcp"), do: "mcp"
  defp route_label("/api/mcp" <> _), do: "rest"
  defp route_label("/sse/discoveries"), do: "sse"
  defp route_label("/health"), do: "health"
  defp route_label("/metrics"), do: "metrics"
  defp route_label(_), do: "other"

  defp health(%{method: method} = conn) when method in [:GET, :HEAD] do
    config = conn.config

    send_json(conn, 200, %{
      status: "ok",
      engine: config.api.engine_loaded?(),
      uptime_s: div(System.monotonic_time(:millisecond) - config.started_at, 1000),
      sessions: :ets.info(config.tabs.sessions, :size),
      sse_streams: :atomics.get(config.tabs.sse, 1),
      version: app_version()
    })
  end

  defp health(conn), do: method_not_allowed(conn, "GET")

  defp metrics(conn) do
    body = Metrics.render(conn.config)
    send_resp(conn, 200, [{"Content-Type", "text/plain; version=0.0.4"}], body)
  end

  # CORS: only for origins that passed the allow-list above.
  defp cors(conn) do
    case header(conn, "origin") do
      nil ->
        conn

      origin ->
        %{
          conn
          | cors: [
              {"Access-Control-Allow-Origin", origin},
              {"Vary", "Origin"},
              {"Access-Control-Expose-Headers",
               "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, Retry-After"}
            ]
        }
    end
  end

  defp preflight(conn) do
    send_resp(
      conn,
      204,
      [
        {"Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"},
        {"Access-Control-Allow-Headers",
         "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID"},
        {"Access-Control-Max-Age", "600"}
      ],
      ""
    )
  end

  # --- helpers shared by the handlers -----------------------------------------

  @doc false
  def header(%{headers: headers}, name), do: Map.get(headers, name)

  # All request headers once, by lowercase name: mochiweb lowercases the
  # name on every single lookup, which was the gateway's largest cost.
  # Repeated headers are joined with ", " as HTTP allows.
  defp headers_of(req) do
    req
    |> then(&:mochiweb_request.get(:headers, &1))
    |> :mochiweb_headers.to_list()
    |> Enum.reduce(%{}, fn {name, value}, acc ->
      key = name |> to_string() |> String.downcase(:ascii)
      value = to_string(value)
      Map.update(acc, key, value, &(&1 <> ", " <> value))
    end)
  end

  @doc false
  def peer(%{req: req}) do
    case :mochiweb_socket.peername(:mochiweb_request.get(:socket, req)) do
      {:ok, {ip, _port}} -> ip |> :inet.ntoa() |> to_string()
      _ -> "unknown"
    end
  end

  @doc false
  # For streams: deliver {:tcp_closed, socket} as soon as the client hangs up.
  def watch_close(socket), do: :mochiweb_socket.setopts(socket, active: :once)

  @doc false
  def query_params(%{query: ""}), do: %{}

  def query_params(%{query: query}) do
    URI.decode_query(query)
  rescue
    _ -> %{}
  end

  @doc false
  def send_resp(conn, status, headers, body) do
    :mochiweb_request.respond({status, headers ++ conn.cors, body}, conn.req)
    %{conn | status: status}
  end

  @doc false
  def send_json(conn, status, term, headers \\ []) do
    send_resp(conn, status, [{"Content-Type", "application/json"} | headers], Json.encode!(term))
  end

  @doc false
  def method_not_allowed(conn, allow) do
    send_json(conn, 405, %{error: "method not allowed"}, [{"Allow", allow}])
  end

  # A refusal before any handler ran, shaped for the route's clients.
  @doc false
  def reject(%{route: "mcp"} = conn, status, msg, headers) do
    send_json(
      conn,
      status,
      %{jsonrpc: "2.0", id: nil, error: %{code: -32_000, message: msg}},
      headers
    )
  end

  def reject(%{route: "rest"} = conn, status, msg, headers),
    do: send_json(conn, status, %{success: false, error: msg}, headers)

  def reject(conn, status, msg, headers), do: send_json(conn, status, %{error: msg}, headers)

  @doc """
  Reads the request body up to the configured limit.
  Returns `{:ok, binary}`, `{:error, :too_large}` or `{:error, :bad_length}`.
  """
  def read_body(%{req: req, config: config}) do
    limit = config.max_body_bytes

    case content_length(req) do
      :none ->
        {:ok, ""}

      :bad ->
        {:error, :bad_length}

      :chunked ->
        try do
          body =
            :mochiweb_request.stream_body(
              65_536,
              fn
                {0, _footer}, {_n, acc} ->
                  acc |> Enum.reverse() |> IO.iodata_to_binary()

                {len, bin}, {n, acc} ->
                  if n + len > limit, do: throw(:too_large), else: {n + len, [bin | acc]}
              end,
              {0, []},
              req
            )

          {:ok, body}
        catch
          :throw, :too_large -> {:error, :too_large}
        end

      len when len > limit ->
        {:error, :too_large}

      0 ->
        {:ok, ""}

      len ->
        {:ok, :mochiweb_request.recv(len, config.body_timeout_ms, req)}
    end
  end

  defp content_length(req) do
    case :mochiweb_request.get_header_value(~c"transfer-encoding", req) do
      :undefined ->
        case :mochiweb_request.get_combined_header_value(~c"content-length", req) do
          :undefined ->
            :none

          value ->
            case Integer.parse(to_string(value)) do
              {n, ""} when n >= 0 -> n
              _ -> :bad
            end
        end

      te ->
        if String.downcase(to_string(te)) == "chunked", do: :chunked, else: :bad
    end
  end

  @doc false
  # The request body, or the error reply already sent for it (too large,
  # timed out, malformed).
  def read_body_or_reply(conn) do
    case read_body(conn) do
      {:ok, body} -> {:ok, body}
      {:error, reason} -> body_error(conn, reason)
    end
  end

  @doc """
  Answers a body that cannot be read, then closes the connection: the
  unread bytes would otherwise be taken for the next request.
  """
  def body_error(conn, :too_large) do
    Metrics.reject(conn.config.tabs.metrics, :too_large)

    conn
    |> close()
    |> reject(413, "request body larger than #{conn.config.max_body_bytes} bytes", [])
  end

  def body_error(conn, :bad_length) do
    Metrics.reject(conn.config.tabs.metrics, :bad_request)
    conn |> close() |> reject(400, "invalid Content-Length or Transfer-Encoding", [])
  end

  defp close(conn) do
    # mochiweb would take the unread body for the next request; forcing the
    # close before responding also makes mochiweb say "Connection: close".
    Process.put(:mochiweb_request_force_close, true)
    conn
  end

  defp split_path(raw) do
    raw = :erlang.list_to_binary(raw)

    case :binary.split(raw, "?") do
      [path, query] -> {path, query}
      [path] -> {path, ""}
    end
  end

  defp app_version do
    case :application.get_key(:swarm_service, :vsn) do
      {:ok, vsn} -> to_string(vsn)
      _ -> "dev"
    end
  end
end
