defmodule InterfaceService.Endpoint do
  @moduledoc false
  # The Cowboy handler every gateway request goes through, and its pipeline:
  #   connection over capacity -> Host -> Origin -> (CORS preflight) ->
  #   /health -> bearer token (failed attempts rate limited per address) ->
  #   rate limit -> route.
  # Cowboy runs each request in its own process, so anything a handler
  # raises is answered 500 here and never reaches the connection or the
  # listener. /ws hands the request over to InterfaceService.EventSocket.

  require Logger

  alias InterfaceService.{Auth, Conn, Dashboard, EventSocket, Metrics, RateLimiter, Rest, Sse}
  alias SwarmService.Health
  alias InterfaceService.Mcp.Http, as: McpHttp

  # Failed bearer tokens per client address: a guesser gets 429, not answers.
  @auth_failures_per_s 10
  @auth_failures_burst 20

  @doc false
  def init(req, {config, capacity}) do
    t0 = System.monotonic_time(:microsecond)
    conn = Conn.new(req, config)

    result =
      try do
        pipeline(conn, capacity)
      rescue
        e ->
          Logger.error(
            "gateway: #{conn.route} request failed: " <>
              Exception.format(:error, e, __STACKTRACE__)
          )

          internal_error(conn)
      catch
        :throw, reason ->
          Logger.error("gateway: #{conn.route} request threw #{inspect(reason, limit: 20)}")
          internal_error(conn)
      end

    {conn, socket} =
      case result do
        {:websocket, conn, socket} -> {conn, socket}
        conn -> {conn, nil}
      end

    tool = Process.delete(:gateway_tool) || conn.tool

    Metrics.observe(
      config.tabs.metrics,
      conn.route,
      tool,
      conn.status || 0,
      System.monotonic_time(:microsecond) - t0
    )

    if socket,
      do: {:cowboy_websocket, conn.req, socket, EventSocket.options(config)},
      else: {:ok, conn.req, nil}
  end

  # The WebSocket callbacks: Cowboy calls the module that upgraded.
  @doc false
  defdelegate websocket_init(state), to: EventSocket
  @doc false
  defdelegate websocket_handle(frame, state), to: EventSocket
  @doc false
  defdelegate websocket_info(message, state), to: EventSocket
  @doc false
  defdelegate terminate(reason, req, state), to: EventSocket

  defp internal_error(%Conn{status: nil} = conn),
    do: conn |> Conn.close() |> Conn.send_json(500, %{error: "internal error"})

  # Headers were already sent (a stream): nothing more can be said.
  defp internal_error(conn), do: conn

  defp pipeline(conn, :over_capacity) do
    Metrics.reject(conn.config.tabs.metrics, :connection_cap)

    conn
    |> Conn.close()
    |> Conn.reject(503, "too many open connections, try again later", [{"retry-after", "1"}])
  end

  defp pipeline(conn, :ok) do
    config = conn.config

    with :ok <- check(conn, Auth.check_host(config, Conn.header(conn, "host")), 403, "Host"),
         :ok <- check(conn, Auth.check_origin(config, Conn.header(conn, "origin")), 403, "Origin") do
      conn = cors(conn)

      cond do
        conn.method == :OPTIONS -> preflight(conn)
        conn.path == "/health" -> health(conn)
        # The dashboard's page and assets hold no data: served before the
        # token check (a browser cannot send a token on navigation); the
        # page asks for one and sends it on /ws.
        Dashboard.Static.asset?(conn.path) -> Dashboard.Static.serve(conn)
        true -> authenticated(conn)
      end
    end
  end

  defp authenticated(conn) do
    config = conn.config

    case Auth.check_token(config, token_header(conn)) do
      {:ok, identity} ->
        client =
          if config.tokens == [] and not agent?(identity), do: Conn.peer(conn), else: identity

        conn = %{conn | client: client}

        case RateLimiter.take(config.tabs.rate, client, config.rate_limit, config.rate_burst) do
          :ok -> route(conn)
          {:error, retry_ms} -> rate_limited(conn, :rate_limited, retry_ms)
        end

      {:error, kind} ->
        failed_auth(conn, kind)
    end
  end

  defp agent?("agent:" <> _), do: true
  defp agent?(_identity), do: false

  # Browsers cannot set headers on a WebSocket: the token may come as the
  # subprotocol "bearer.<token>".
  defp token_header(%Conn{path: "/ws"} = conn) do
    with nil <- Conn.header(conn, "authorization") do
      case EventSocket.subprotocol_token(conn) do
        nil -> nil
        token -> "Bearer " <> token
      end
    end
  end

  defp token_header(conn), do: Conn.header(conn, "authorization")

  defp failed_auth(conn, kind) do
    config = conn.config
    key = {:auth_failed, Conn.peer(conn)}

    case RateLimiter.take(config.tabs.rate, key, @auth_failures_per_s, @auth_failures_burst) do
      :ok ->
        Metrics.reject(config.tabs.metrics, :unauthorized)

        challenge =
          if kind == :invalid,
            do: ~s(Bearer realm="ruv_swarm", error="invalid_token"),
            else: ~s(Bearer realm="ruv_swarm")

        Conn.reject(conn, 401, "missing or invalid bearer token", [
          {"www-authenticate", challenge}
        ])

      {:error, retry_ms} ->
        rate_limited(conn, :auth_rate_limited, retry_ms)
    end
  end

  @doc false
  def rate_limited(conn, reason, retry_ms) do
    Metrics.reject(conn.config.tabs.metrics, reason)
    retry_s = Integer.to_string(div(retry_ms + 999, 1000))

    what =
      if reason == :auth_rate_limited, do: "too many failed logins", else: "rate limit exceeded"

    Conn.reject(conn, 429, "#{what}, retry in #{retry_s} s", [{"retry-after", retry_s}])
  end

  defp check(_conn, :ok, _status, _what), do: :ok

  defp check(conn, {:error, reason}, status, what) do
    Metrics.reject(conn.config.tabs.metrics, reason)
    Conn.reject(conn, status, "#{what} header not allowed", [])
  end

  defp route(%{path: "/mcp"} = conn), do: McpHttp.handle(conn)
  defp route(%{path: "/api/mcp" <> rest} = conn), do: Rest.handle(conn, rest)
  defp route(%{path: "/sse/discoveries"} = conn), do: Sse.discoveries(conn)
  defp route(%{path: "/sse/events"} = conn), do: Sse.events(conn)
  defp route(%{path: "/ws"} = conn), do: EventSocket.upgrade(conn)
  defp route(%{path: "/metrics", method: m} = conn) when m in [:GET, :HEAD], do: metrics(conn)
  defp route(%{path: "/metrics"} = conn), do: Conn.method_not_allowed(conn, "GET, HEAD")
  defp route(conn), do: Conn.send_json(conn, 404, %{error: "not found"})

  defp health(%{method: method} = conn) when method in [:GET, :HEAD] do
    config = conn.config
    report = Health.report(config.name)

    report =
      Map.merge(report, %{
        sessions: :ets.info(config.tabs.sessions, :size),
        sse_streams: :atomics.get(config.tabs.sse, 1)
      })

    status = if report.status == "ok", do: 200, else: 503
    Conn.send_json(conn, status, report, [{"cache-control", "no-store"}])
  end

  defp health(conn), do: Conn.method_not_allowed(conn, "GET, HEAD")

  defp metrics(conn) do
    body = Metrics.render(conn.config)
    Conn.send_resp(conn, 200, [{"content-type", "text/plain; version=0.0.4"}], body)
  end

  # CORS: only for origins that passed the allow-list above.
  defp cors(conn) do
    case Conn.header(conn, "origin") do
      nil ->
        conn

      origin ->
        %{
          conn
          | cors: [
              {"access-control-allow-origin", origin},
              {"vary", "origin"},
              {"access-control-expose-headers",
               "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, Retry-After"}
            ]
        }
    end
  end

  defp preflight(conn) do
    Conn.send_resp(
      conn,
      204,
      [
        {"access-control-allow-methods", "GET, POST, DELETE, OPTIONS"},
        {"access-control-allow-headers",
         "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID"},
        {"access-control-max-age", "600"}
      ],
      ""
    )
  end
end
