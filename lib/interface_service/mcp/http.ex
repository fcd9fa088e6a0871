defmodule InterfaceService.Mcp.Http do
  @moduledoc false
  # MCP Streamable HTTP on /mcp.
  #
  # Which revision a POST speaks is decided by the MCP-Protocol-Version
  # header: 2026-07-28 takes the stateless path; a handshake-era version (or
  # none, meaning 2025-03-26) takes the session path; anything else is 400
  # with -32022. A header-less request whose body carries the 2026 _meta
  # envelope and no session id is taken as stateless too, so it is told
  # which header is missing rather than that it lacks a session.
  #
  # Tool calls run in a worker process: the request process waits for it
  # with the request timeout, streams its progress as SSE when the client
  # asked for progress, and stops it on notifications/cancelled. Tools that
  # answer at once (Tools.inline?/1) run in the request process itself.

  alias InterfaceService.{Conn, Json, SseStream, Tools, Worker}
  alias InterfaceService.Mcp.{Protocol, Session}

  @legacy_default "2025-03-26"
  @json_accepts ["application/json", "text/event-stream", "*/*", "application/*"]
  @cancelled -32_800
  @invalid_request -32_600
  @session_not_found -32_001
  @no_session_id "Mcp-Session-Id header is required"

  def handle(%{method: :POST} = conn), do: post(conn)
  def handle(%{method: :GET} = conn), do: get_stream(conn)
  def handle(%{method: :DELETE} = conn), do: delete(conn)
  def handle(conn), do: Conn.method_not_allowed(conn, "GET, POST, DELETE")

  # --- POST -----------------------------------------------------------------------

  defp post(conn) do
    with :ok <- check_content_type(conn),
         :ok <- check_accept(conn),
         {:ok, body} <- Conn.read_body_or_reply(conn),
         {:ok, msg} <- decode(conn, body) do
      version = Conn.header(conn, "mcp-protocol-version")
      session_id = Conn.header(conn, "mcp-session-id")
      modern = Protocol.modern_version()

      cond do
        version == modern -> modern(conn, msg)
        version in Protocol.handshake_versions() -> legacy(conn, msg, version, session_id)
        version == nil and session_id == nil and modern_envelope?(msg) -> modern(conn, msg)
        version == nil -> legacy(conn, msg, @legacy_default, session_id)
        true -> error_reply(conn, 400, request_id(msg), Protocol.unsupported(version))
      end
    end
  end

  defp check_content_type(conn) do
    case Conn.header(conn, "content-type") do
      "application/json" <> _ ->
        :ok

      value ->
        if value && String.starts_with?(String.downcase(value), "application/json"),
          do: :ok,
          else: invalid_request(conn, 415, "Content-Type must be application/json")
    end
  end

  defp check_accept(conn) do
    case Conn.header(conn, "accept") do
      nil ->
        :ok

      accept ->
        # Lowercase only when the value as sent does not match.
        if String.contains?(accept, "application/json") or
             String.contains?(String.downcase(accept), @json_accepts),
           do: :ok,
           else: invalid_request(conn, 406, "Accept must include application/json")
    end
  end

  defp decode(conn, body) do
    case Json.decode(body) do
      {:ok, msg} ->
        {:ok, msg}

      {:error, :invalid_json} ->
        reply(conn, 400, Protocol.error(nil, -32_700, "Parse error: the body is not valid JSON"))
    end
  end

  defp modern_envelope?(%{
         "params" => %{"_meta" => %{"io.modelcontextprotocol/protocolVersion" => _}}
       }),
       do: true

  defp modern_envelope?(_), do: false

  defp request_id(%{"id" => id}) when is_binary(id) or is_integer(id), do: id
  defp request_id(_), do: nil

  # --- the handshake era (sessions) --------------------------------------------------

  defp legacy(conn, batch, version, session_id) when is_list(batch) do
    cond do
      version != "2025-03-26" ->
        invalid_request(conn, 400, "JSON-RPC batches are not supported in protocol #{version}")

      batch == [] ->
        invalid_request(conn, 400, "empty batch")

      Enum.any?(batch, &match?(%{"method" => "initialize"}, &1)) ->
        invalid_request(conn, 400, "initialize must not be part of a batch")

      true ->
        with {:ok, session} <- session(conn, session_id),
             :ok <- charge_batch(conn, length(batch)) do
          responses =
            Enum.flat_map(batch, fn msg ->
              case Protocol.classify(msg) do
                {:request, id, method, params} ->
                  [legacy_request(conn, session, id, method, params, false)]

                {:notification, method, params} ->
                  legacy_notification(conn, session_id, method, params)
                  []

                :response ->
                  []

                {:invalid, id, reason} ->
                  [Protocol.error(id, @invalid_request, "Invalid Request: " <> reason)]
              end
            end)

          if responses == [], do: accepted(conn), else: reply(conn, 200, responses)
        end
    end
  end

  defp legacy(conn, msg, _version, session_id) do
    case Protocol.classify(msg) do
      {:request, id, "initialize", params} ->
        initialize(conn, id, params)

      {:invalid, id, reason} ->
        invalid_request(conn, 400, "Invalid Request: " <> reason, id)

      classified ->
        with {:ok, session} <- session(conn, session_id) do
          case classified do
            {:request, id, method, params} ->
              case legacy_request(conn, session, id, method, params, true) do
                %{} = response -> reply(conn, 200, response)
                {:streamed, conn} -> conn
              end

            {:notification, method, params} ->
              legacy_notification(conn, session_id, method, params)
              accepted(conn)

            :response ->
              accepted(conn)
          end
        end
    end
  end

  # The request itself paid for one call; the rest of the batch pays too.
  defp charge_batch(_conn, 1), do: :ok

  defp charge_batch(conn, n) do
    config = conn.config

    case InterfaceService.RateLimiter.take_n(
           config.tabs.rate,
           conn.client,
           n - 1,
           config.rate_limit,
           config.rate_burst
         ) do
      :ok -> :ok
      {:error, retry_ms} -> InterfaceService.Endpoint.rate_limited(conn, :rate_limited, retry_ms)
    end
  end

  defp initialize(conn, id, params) do
    with {:ok, version} <- Protocol.negotiate(params) do
      case Session.create(conn.config, version, conn.client) do
        {:ok, session_id} ->
          result = Protocol.result(id, Protocol.initialize_result(version))
          reply(conn, 200, result, [{"Mcp-Session-Id", session_id}])

        {:error, :too_many_sessions} ->
          message = "too many open sessions on this server, try again later"
          reply(conn, 503, Protocol.error(id, -32_603, message), [{"retry-after", "60"}])

        {:error, :too_many_client_sessions} ->
          message =
            "this client already has #{conn.config.max_sessions_per_client} open sessions: " <>
              "end one (DELETE /mcp) or let it expire"

          reply(conn, 503, Protocol.error(id, -32_603, message), [{"retry-after", "60"}])
      end
    else
      {:error, code, message} -> reply(conn, 200, Protocol.error(id, code, message))
    end
  end

  defp session(conn, nil),
    do: invalid_request(conn, 400, "Bad Request: #{@no_session_id} (send initialize first)")

  defp session(conn, session_id) do
    case Session.touch(conn.config, session_id, conn.client) do
      {:ok, session} ->
        {:ok, session}

      :error ->
        session_not_found(conn, "Session not found: it expired or was deleted; initialize again")
    end
  end

  defp legacy_request(conn, session, id, method, params, may_stream) do
    session_id = elem(session, 0)

    case method do
      "ping" ->
        Protocol.result(id, %{})

      "tools/list" ->
        respond_with(id, Protocol.tools_list(params, conn.config.tools_page_size, :legacy))

      "tools/call" ->
        call_tool(conn, id, params, :legacy, session_id, may_stream)

      "logging/setLevel" ->
        case Session.set_log_level(conn.config, session_id, params["level"]) do
          :ok ->
            Protocol.result(id, %{})

          {:error, :invalid_level} ->
            Protocol.error(
              id,
              -32_602,
              "level must be one of #{Enum.join(Session.log_levels(), ", ")}"
            )
        end

      "initialize" ->
        Protocol.error(id, @invalid_request, "session already initialized")

      _ ->
        method_not_found(id, method)
    end
  end

  defp legacy_notification(conn, session_id, "notifications/cancelled", params) do
    case params["requestId"] do
      id when is_binary(id) or is_integer(id) -> Session.cancel_call(conn.config, session_id, id)
      _ -> :ok
    end
  end

  # initialized, roots/list_changed, progress: nothing to do.
  defp legacy_notification(_conn, _session_id, _method, _params), do: :ok

  defp respond_with(id, {:ok, result}), do: Protocol.result(id, result)
  defp respond_with(id, {:error, code, message}), do: Protocol.error(id, code, message)

  defp respond_with(id, {:error, code, message, data}),
    do: Protocol.error(id, code, message, data)

  # --- the stateless revision ------------------------------------------------------------

  defp modern(conn, msg) do
    case Protocol.classify(msg) do
      {:request, id, method, params} ->
        headers = %{
          "mcp-protocol-version" => Conn.header(conn, "mcp-protocol-version"),
          "mcp-method" => Conn.header(conn, "mcp-method"),
          "mcp-name" => Conn.header(conn, "mcp-name")
        }

        case Protocol.check_modern(method, params, headers) do
          :ok -> modern_request(conn, id, method, params)
          error -> error_reply(conn, nil, id, error)
        end

      {:invalid, id, reason} ->
        invalid_request(conn, 400, "Invalid Request: " <> reason, id)

      _notification_or_response ->
        accepted(conn)
    end
  end

  defp modern_request(conn, id, method, params) do
    response =
      case method do
        "server/discover" ->
          Protocol.result(id, Protocol.discover_result())

        "tools/list" ->
          respond_with(id, Protocol.tools_list(params, conn.config.tools_page_size, :modern))

        "tools/call" ->
          call_tool(conn, id, params, :modern, nil, true)

        _ ->
          method_not_found(id, method)
      end

    case response do
      {:streamed, conn} -> conn
      %{error: %{code: code}} -> reply(conn, Protocol.modern_http_status(code), response)
      _ -> reply(conn, 200, response)
    end
  end

  # --- tools/call ------------------------------------------------------------------------

  defp call_tool(conn, id, params, era, session_id, may_stream) do
    case Protocol.call_params(params) do
      {:ok, name, args, token} ->
        # The metrics label; the endpoint reads it when the request is done.
        Process.put(:gateway_tool, if(Tools.known?(name), do: name, else: "unknown"))

        ctx = %{
          api: conn.config.api,
          allowlist: conn.config.command_allowlist,
          allow_claude: conn.config.allow_claude,
          base_url: Conn.base_url(conn),
          request_timeout_ms: conn.config.request_timeout_ms,
          client: conn.client,
          # What "the swarm most recently created" refers to: the session's,
          # or, without a session (stateless revision), the client's.
          scope: if(session_id, do: {:session, session_id}, else: {:client, conn.client})
        }

        ctx = Map.put(ctx, :progress, nil)

        cond do
          token != nil and may_stream and accepts_sse?(conn) ->
            {:streamed, stream_call(conn, id, name, args, token, ctx, era, session_id)}

          # Nothing to cancel or time out: a worker process would only add cost.
          Tools.inline?(name, args) ->
            outcome = Worker.inline(fn -> Tools.call(name, args, ctx) end)
            tool_response(conn, id, name, outcome, era, session_id)

          true ->
            outcome = run_worker(conn, id, name, args, ctx, session_id, nil)
            tool_response(conn, id, name, outcome, era, session_id)
        end

      error ->
        respond_with(id, error)
    end
  end

  defp tool_response(conn, id, name, outcome, era, session_id) do
    case outcome do
      :cancelled ->
        Protocol.error(id, @cancelled, "Request cancelled")

      {:crashed, _reason} ->
        Protocol.error(id, -32_603, "Internal error while running #{name}")

      outcome ->
        case Protocol.tool_result(name, outcome) do
          {:ok, %{isError: true} = result} ->
            Session.log(conn.config, session_id, "warning", %{
              tool: name,
              error: hd(result.content).text
            })

            Protocol.result(id, stamp(result, era))

          {:ok, result} ->
            Protocol.result(id, stamp(result, era))

          error ->
            respond_with(id, error)
        end
    end
  end

  defp stamp(result, :modern), do: Map.put(result, :resultType, "complete")
  defp stamp(result, :legacy), do: result

  defp stream_call(conn, id, name, args, token, ctx, era, session_id) do
    resp = SseStream.open(conn)
    parent = self()
    progress = fn done, total, message -> Worker.report(parent, done, total, message) end

    on_progress = fn done, total, message ->
      params = %{progressToken: token, progress: done}
      params = if total, do: Map.put(params, :total, total), else: params
      params = if message, do: Map.put(params, :message, message), else: params
      write_event(resp, %{jsonrpc: "2.0", method: "notifications/progress", params: params})
    end

    outcome =
      run_worker(conn, id, name, args, Map.put(ctx, :progress, progress), session_id, on_progress)

    case tool_response(conn, id, name, outcome, era, session_id) do
      # A cancelled request gets no response; the stream just ends.
      %{error: %{code: @cancelled}} -> :ok
      response -> write_event(resp, response)
    end

    SseStream.finish(resp)
    resp
  end

  defp run_worker(conn, id, name, args, ctx, session_id, on_progress) do
    register = fn worker ->
      if session_id, do: Session.register_call(conn.config, session_id, id, worker)
    end

    try do
      Worker.run(
        fn -> Tools.call(name, args, ctx) end,
        conn.config.request_timeout_ms,
        register,
        on_progress
      )
    after
      if session_id, do: Session.unregister_call(conn.config, session_id, id)
    end
  end

  defp write_event(resp, msg), do: SseStream.send_event(resp, "message", Protocol.encode!(msg))

  defp accepts_sse?(conn) do
    case Conn.header(conn, "accept") do
      nil ->
        false

      accept ->
        String.contains?(accept, "text/event-stream") or
          String.contains?(String.downcase(accept), "text/event-stream")
    end
  end

  # --- GET: the session's notification stream --------------------------------------------

  defp get_stream(conn) do
    cond do
      Conn.header(conn, "mcp-protocol-version") == Protocol.modern_version() ->
        Conn.method_not_allowed(conn, "POST")

      not accepts_sse?(conn) ->
        Conn.method_not_allowed(conn, "POST, DELETE")

      true ->
        session_id = Conn.header(conn, "mcp-session-id")

        with {:ok, _session} <- session(conn, session_id) do
          case Session.attach_stream(conn.config, session_id, self()) do
            :ok ->
              resp = SseStream.open(conn)
              # Clients see the stream open at once.
              SseStream.write(resp, ": stream open\n\n")

              try do
                SseStream.listen(resp, conn.config.sse_keepalive_ms, nil, &notify(resp, &1, &2))
              after
                Session.detach_stream(conn.config, session_id, self())
              end

              resp

            {:error, :conflict} ->
              invalid_request(conn, 409, "this session already has an open GET stream")
          end
        end
    end
  end

  defp notify(resp, {:mcp_notify, msg}, nil) do
    write_event(resp, msg)
    {:cont, nil}
  end

  defp notify(resp, :mcp_session_closed, nil) do
    SseStream.finish(resp)
    :stop
  end

  defp notify(_resp, _other, nil), do: {:cont, nil}

  # --- DELETE ---------------------------------------------------------------------------

  defp delete(conn) do
    session_id = Conn.header(conn, "mcp-session-id")

    cond do
      Conn.header(conn, "mcp-protocol-version") == Protocol.modern_version() ->
        Conn.method_not_allowed(conn, "POST")

      session_id == nil ->
        invalid_request(conn, 400, "Bad Request: " <> @no_session_id)

      true ->
        case Session.delete(conn.config, session_id, conn.client) do
          :ok -> reply(conn, 200, %{})
          :error -> session_not_found(conn, "Session not found")
        end
    end
  end

  # --- replies ----------------------------------------------------------------------------

  defp reply(conn, status, msg, headers \\ []) do
    Conn.send_resp(
      conn,
      status,
      [{"content-type", "application/json"} | headers],
      Protocol.encode!(msg)
    )
  end

  defp accepted(conn), do: Conn.send_resp(conn, 202, [], "")

  # Anything wrong with the request itself; the HTTP status says what.
  defp invalid_request(conn, status, message, id \\ nil),
    do: reply(conn, status, Protocol.error(id, @invalid_request, message))

  defp session_not_found(conn, message),
    do: reply(conn, 404, Protocol.error(nil, @session_not_found, message))

  defp method_not_found(id, method),
    do: Protocol.error(id, -32_601, "Method not found: #{String.slice(method, 0, 100)}")

  # status nil: pick it from the error code (stateless revision rules).
  defp error_reply(conn, status, id, {:error, code, message}),
    do: error_reply(conn, status, id, {:error, code, message, nil})

  defp error_reply(conn, status, id, {:error, code, message, data}) do
    reply(
      conn,
      status || Protocol.modern_http_status(code),
      Protocol.error(id, code, message, data)
    )
  end
end
