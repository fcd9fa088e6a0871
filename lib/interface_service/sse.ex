defmodule InterfaceService.Sse do
  @moduledoc false
  # GET /sse/discoveries?swarm_id=..[&type=..&agent_id=..&min_confidence=..]
  # Streams the swarm's discoveries as server-sent events, with keep-alive
  # comments. GET /sse/events?swarm_id=..[&type=..] streams the swarm's
  # events (task_progress with its message, task_completed, ...), the ones
  # subscribe/1 gets, optionally of one type. The number of open streams of
  # both kinds is capped (503 above the cap).
  #
  # Every event's id is the discovery's id. A client reconnecting with
  # Last-Event-ID first gets the discoveries it missed, from the swarm's
  # recent ones (the newest @replay_limit matching its filters): those after
  # that id, or all of them when the id is no longer among them (the client
  # missed more than is kept). The stream subscribes before it looks, so
  # nothing shared meanwhile is lost; what arrives both ways is sent once.

  alias SwarmService.Errors
  alias InterfaceService.{Conn, Json, SseStream}

  @replay_limit 1000

  def discoveries(%{method: :GET} = conn) do
    params = Conn.query_params(conn)

    with {:ok, swarm_id, filters} <- parse(conn, params),
         :ok <- allowed(conn, swarm_id),
         do: capped(conn, fn -> stream(conn, swarm_id, filters) end)
  end

  def discoveries(conn), do: Conn.method_not_allowed(conn, "GET")

  def events(%{method: :GET} = conn) do
    params = Conn.query_params(conn)

    with {:ok, swarm_id} <- required(conn, params, "swarm_id"),
         :ok <- allowed(conn, swarm_id),
         do: capped(conn, fn -> event_stream(conn, swarm_id, params["type"]) end)
  end

  def events(conn), do: Conn.method_not_allowed(conn, "GET")

  defp allowed(conn, swarm_id) do
    if InterfaceService.Auth.swarm_allowed?(conn.client, swarm_id),
      do: :ok,
      else: Conn.send_json(conn, 403, %{error: "an agent's token opens its own swarm only"})
  end

  defp capped(conn, stream) do
    counter = conn.config.tabs.sse

    if :atomics.add_get(counter, 1, 1) > conn.config.max_sse_streams do
      :atomics.sub(counter, 1, 1)
      InterfaceService.Metrics.reject(conn.config.tabs.metrics, :sse_cap)
      Conn.send_json(conn, 503, %{error: "too many open streams"}, [{"Retry-After", "5"}])
    else
      try do
        stream.()
      after
        :atomics.sub(counter, 1, 1)
      end
    end
  end

  defp event_stream(conn, swarm_id, type) do
    api = conn.config.api

    case api.subscribe(swarm_id) do
      :ok ->
        resp = SseStream.open(conn)
        SseStream.write(resp, ["retry: 3000\n: subscribed to events of ", swarm_id, "\n\n"])

        try do
          SseStream.listen(resp, conn.config.sse_keepalive_ms, nil, fn
            {:swarm_event, ^swarm_id, event}, state ->
              # The type is compared as text: no atom is made from the query.
              if type in [nil, ""] or Atom.to_string(Map.get(event, :type, :event)) == type,
                do: SseStream.send_event(resp, "event", Json.encode_term!(event), nil)

              {:cont, state}

            _other, state ->
              {:cont, state}
          end)
        after
          api.unsubscribe(swarm_id)
        end

        resp

      {:error, reason} ->
        error = Errors.for_client(reason)
        Conn.send_json(conn, error.http_status, %{error: error.message, code: error.code})
    end
  end

  defp parse(conn, params) do
    with {:ok, swarm_id} <- required(conn, params, "swarm_id"),
         {:ok, confidence} <- confidence(conn, params["min_confidence"]) do
      filters =
        [type: params["type"], agent_id: params["agent_id"], min_confidence: confidence]
        |> Enum.reject(fn {_k, v} -> is_nil(v) or v == "" end)

      {:ok, swarm_id, filters}
    end
  end

  defp required(conn, params, key) do
    case params[key] do
      v when is_binary(v) and v != "" -> {:ok, v}
      _ -> Conn.send_json(conn, 400, %{error: "query parameter #{key} is required"})
    end
  end

  defp confidence(_conn, nil), do: {:ok, nil}

  defp confidence(conn, value) do
    case Float.parse(value) do
      {f, ""} when f >= 0 and f <= 1 -> {:ok, f}
      _ -> Conn.send_json(conn, 400, %{error: "min_confidence must be a number in 0..1"})
    end
  end

  defp stream(conn, swarm_id, filters) do
    api = conn.config.api

    case api.subscribe_discoveries(swarm_id, filters) do
      :ok ->
        resp = SseStream.open(conn)
        SseStream.write(resp, ["retry: 3000\n: subscribed to ", swarm_id, "\n\n"])

        replayed =
          case Conn.header(conn, "last-event-id") do
            nil -> MapSet.new()
            last_id -> replay(resp, api, swarm_id, filters, last_id)
          end

        # Until the client hangs up: the stream counts against the cap, and
        # stays subscribed, exactly until then.
        try do
          SseStream.listen(
            resp,
            conn.config.sse_keepalive_ms,
            replayed,
            &live(resp, swarm_id, &1, &2)
          )
        after
          api.unsubscribe(swarm_id)
        end

        resp

      {:error, reason} ->
        error = Errors.for_client(reason)
        Conn.send_json(conn, error.http_status, %{error: error.message, code: error.code})
    end
  end

  # Sends the recent discoveries after `last_id`; returns the ids sent.
  defp replay(resp, api, swarm_id, filters, last_id) do
    recent =
      case api.recent_discoveries(swarm_id, filters, @replay_limit) do
        {:ok, list} -> list
        _ -> []
      end

    missed =
      case Enum.find_index(recent, &(Map.get(&1, :id) == last_id)) do
        nil -> recent
        i -> Enum.drop(recent, i + 1)
      end

    Enum.each(missed, &write_event(resp, &1))
    MapSet.new(missed, &Map.get(&1, :id))
  end

  defp write_event(resp, discovery) do
    id = Map.get(discovery, :id)
    SseStream.send_event(resp, "discovery", Json.encode_term!(discovery), id)
  end

  # A live discovery of this swarm. `replayed`: ids already sent from the
  # recent list, which may also arrive live once.
  defp live(resp, swarm_id, {:swarm_discovery, swarm_id, discovery}, replayed) do
    id = Map.get(discovery, :id)

    if MapSet.member?(replayed, id) do
      {:cont, MapSet.delete(replayed, id)}
    else
      write_event(resp, discovery)
      {:cont, replayed}
    end
  end

  defp live(_resp, _swarm_id, _other, replayed), do: {:cont, replayed}
end
