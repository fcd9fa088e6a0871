defmodule InterfaceService.EventSocket do
  @moduledoc false
  # GET /ws: a WebSocket (its callbacks are reached through
  # InterfaceService.Endpoint, the handler Cowboy knows) that pushes swarm events live (for the dashboard
  # and any other client). The client sends JSON text frames:
  #   {"op": "subscribe", "swarm_id": "..."}    -> {"type": "subscribed", ...}
  #   {"op": "unsubscribe", "swarm_id": "..."}  -> {"type": "unsubscribed", ...}
  #   {"op": "ping"}                            -> {"type": "pong"}
  # and the dashboard's operations (InterfaceService.Dashboard.Socket:
  # "dashboard", "task", "agent", "topology", "memory_search",
  # "discoveries", "action"),
  # and receives {"type": "event", "swarm_id": ..., "event": {...}} for every
  # event of the swarms it subscribed to (SwarmService.RuvSwarm.subscribe/1),
  # and {"type": "error", "error": "..."} for a request it got wrong.
  #
  # Auth is the gateway's: a bearer token in Authorization, or, since
  # browsers cannot set headers on a WebSocket, as the subprotocol
  # "bearer.<token>" offered beside "ruv-swarm" (the one the server picks).
  # A client that falls behind (its mailbox over @max_queue messages, which
  # only happens while its socket is blocked) is closed with 1013, and a
  # socket that cannot be written for send_timeout_ms is closed by the
  # listener. Subscriptions end with the socket.

  alias InterfaceService.{Conn, Dashboard, Json}

  @subprotocol "ruv-swarm"
  @max_subscriptions 100
  @max_queue 10_000
  @ping_ms 30_000
  @dashboard_ops Dashboard.Socket.ops()

  @doc false
  def options(_config), do: %{idle_timeout: 3 * @ping_ms, max_frame_size: 65_536, compress: false}

  @doc "The token offered as the subprotocol `bearer.<token>`, if any."
  @spec subprotocol_token(Conn.t()) :: String.t() | nil
  def subprotocol_token(conn) do
    Enum.find_value(offered(conn), fn
      "bearer." <> token when token != "" -> token
      _ -> nil
    end)
  end

  defp offered(conn) do
    case Conn.header(conn, "sec-websocket-protocol") do
      nil -> []
      value -> value |> String.split(",") |> Enum.map(&String.trim/1)
    end
  end

  @doc false
  # Called by the endpoint once the request passed auth and rate limits.
  def upgrade(%Conn{method: :GET} = conn) do
    if :cowboy_websocket.is_upgrade_request(conn.req) do
      offered = offered(conn)

      cond do
        offered == [] ->
          {:websocket, %{conn | status: 101}, state(conn)}

        @subprotocol in offered ->
          req = :cowboy_req.set_resp_header("sec-websocket-protocol", @subprotocol, conn.req)
          {:websocket, %{conn | req: req, status: 101}, state(conn)}

        true ->
          Conn.send_json(conn, 400, %{error: "offer the subprotocol #{@subprotocol}"})
      end
    else
      Conn.send_json(conn, 400, %{error: "this endpoint speaks WebSocket only"})
    end
  end

  def upgrade(conn), do: Conn.method_not_allowed(conn, "GET")

  defp state(conn),
    do: %{api: conn.config.api, swarms: MapSet.new(), client: conn.client, config: conn.config}

  @doc false
  def websocket_init(state) do
    Process.send_after(self(), :ping, @ping_ms)
    {[], state}
  end

  @doc false
  def websocket_handle({:text, text}, state) do
    case Json.decode(text) do
      {:ok, %{"op" => "subscribe", "swarm_id" => id}} when is_binary(id) ->
        subscribe(id, state)

      {:ok, %{"op" => "unsubscribe", "swarm_id" => id}} when is_binary(id) ->
        unsubscribe(id, state)

      {:ok, %{"op" => "ping"}} ->
        {[reply(%{type: "pong"})], state}

      # The dashboard's operations (InterfaceService.Dashboard.Socket).
      {:ok, %{"op" => op} = msg} when op in @dashboard_ops ->
        Dashboard.Socket.handle(msg, state)

      {:ok, _} ->
        {[error("expected {\"op\": \"subscribe\"|\"unsubscribe\"|\"ping\", ...}")], state}

      {:error, _} ->
        {[error("the frame is not valid JSON")], state}
    end
  end

  def websocket_handle({:binary, _}, state), do: {[error("send JSON text frames")], state}
  def websocket_handle(_frame, state), do: {[], state}

  @doc false
  def websocket_info({:swarm_event, id, event}, state) do
    case Process.info(self(), :message_queue_len) do
      {:message_queue_len, n} when n > @max_queue ->
        {[{:close, 1013, "too slow: events are dropped"}], state}

      _ ->
        {[reply(%{type: "event", swarm_id: id, event: event})], state}
    end
  end

  def websocket_info({:dashboard_delta, _, _, _} = msg, state),
    do: Dashboard.Socket.info(msg, state)

  def websocket_info({:dashboard_dropped, _} = msg, state), do: Dashboard.Socket.info(msg, state)
  def websocket_info({:DOWN, _, _, _, _} = msg, state), do: Dashboard.Socket.info(msg, state)

  def websocket_info(:ping, state) do
    Process.send_after(self(), :ping, @ping_ms)
    {[:ping], state}
  end

  def websocket_info(_other, state), do: {[], state}

  @doc false
  def terminate(_reason, _req, state) when is_map(state) do
    Enum.each(state.swarms, &state.api.unsubscribe/1)
  end

  def terminate(_reason, _req, _state), do: :ok

  defp subscribe(id, state) do
    cond do
      MapSet.member?(state.swarms, id) ->
        {[reply(%{type: "subscribed", swarm_id: id})], state}

      not InterfaceService.Auth.swarm_allowed?(state.client, id) ->
        {[error("an agent's token opens its own swarm only")], state}

      MapSet.size(state.swarms) >= @max_subscriptions ->
        {[error("at most #{@max_subscriptions} subscriptions per socket")], state}

      true ->
        case state.api.subscribe(id) do
          :ok ->
            {[reply(%{type: "subscribed", swarm_id: id})],
             %{state | swarms: MapSet.put(state.swarms, id)}}

          {:error, reason} ->
            {[error(SwarmService.Errors.for_client(reason).message)], state}
        end
    end
  end

  defp unsubscribe(id, state) do
    if MapSet.member?(state.swarms, id), do: state.api.unsubscribe(id)

    {[reply(%{type: "unsubscribed", swarm_id: id})],
     %{state | swarms: MapSet.delete(state.swarms, id)}}
  end

  defp reply(term), do: {:text, Json.encode_term!(term)}
  defp error(message), do: reply(%{type: "error", error: message})
end
