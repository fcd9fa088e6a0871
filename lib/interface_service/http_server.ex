defmodule InterfaceService.HttpServer do
  @moduledoc false
  # The mochiweb listener and the per-request pipeline:
  #   connection cap -> Host -> Origin -> (CORS preflight) -> /health ->
  #   bearer token -> rate limit -> route.
  # Every connection runs in its own process (mochiweb accepts, HttpConn
  # speaks HTTP), so a slow or hostile client only ever occupies its own
  # process; anything a handler raises is answered 500 on that connection
  # and never reaches the listener.

  require Logger

  alias InterfaceService.{Auth, Config, HttpConn, Json, Metrics, RateLimiter, Rest, Sse}
  alias InterfaceService.Mcp.Http, as: McpHttp

  @spec child_spec(Config.t()) :: Supervisor.child_spec()
  def child_spec(config) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [config]}, type: :worker}
  end

  # Acceptors waiting in accept at any time.
  @acceptors 32

  @spec start_link(Config.t()) :: {:ok, pid()} | {:error, term()}
  def start_link(%Config{} = config) do
    # Open connections, counted by the connection processes themselves.
    connections = :atomics.new(1, signed: true)
    handler = fn req -> handle(req, config) end

    opts = [
      name: :undefined,
      ip: config.ip,
      port: config.port,
      loop: {HttpConn, :serve, [{handler, connections, config.max_connections}]},
      nodelay: true,
      backlog: 1024,
      acceptor_pool_size: @acceptors,
      # mochiweb stops accepting at `max` (connections then wait unanswered
      # in the backlog); it sits above our own cap so that connections
      # over the cap are accepted and told 503 instead.
      max: 2 * config.max_connections + @acceptors
    ]

    # The Date header comes from mochiweb's clock (one ETS read).
    case :mochiweb_clock.start() do
      {:ok, _} -> :ok
      {:error, {:already_started, _}} -> :ok
    end

    case :mochiweb_socket_server.start_link(opts) do
      {:ok, pid} ->
        :ets.insert(config.tabs.http, [{:listener, pid}, {:connections, connections}])
        {:ok, pid}

      {:error, reason} ->
        {:error, {:listen_failed, "#{:inet.ntoa(config.ip)}:#{config.port}", reason}}
    end
  end

  @doc "Open connections (HTTP keep-alive and streams)."
  def connections(%Config{tabs: %{http: tab}}) do
    case :ets.lookup(tab, :connections) do
      [{:connections, counter}] -> :atomics.get(counter, 1)
      [] -> 0
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
    {path, query} = split_path(req.raw_path)

    conn = %{
      req: req,
      config: config,
      headers: req.headers,
      method: req.method,
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

  defp pipeline(%{req: %HttpConn{over_capacity: true}} = conn) do
    Metrics.reject(conn.config.tabs.metrics, :connection_cap)

    conn
    |> close()
    |> reject(503, "too many open connections, try again later", [{"Retry-After", "1"}])
  end

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

  @doc false
  def peer(%{req: req}), do: req.peer

  @doc false
  def query_params(%{query: ""}), do: %{}

  def query_params(%{query: query}) do
    URI.decode_query(query)
  rescue
    _ -> %{}
  end

  @doc false
  def send_resp(conn, status, headers, body) do
    HttpConn.respond(conn.req, status, headers ++ conn.cors, body)
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
    HttpConn.read_body(req, config.max_body_bytes, config.body_timeout_ms)
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
    # The unread body would be taken for the next request; forcing the
    # close before responding also makes the reply say "Connection: close".
    HttpConn.force_close()
    conn
  end

  defp split_path(raw) do
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
