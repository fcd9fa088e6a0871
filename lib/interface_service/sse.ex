defmodule InterfaceService.Sse do
  @moduledoc false
  # GET /sse/discoveries?swarm_id=..[&type=..&agent_id=..&min_confidence=..]
  # Streams the swarm's discoveries as server-sent events, with keep-alive
  # comments. The number of open streams is capped (503 above the cap).
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

    with {:ok, swarm_id, filters} <- parse(conn, params) do
      counter = conn.config.tabs.sse

      if :atomics.add_get(counter, 1, 1) > conn.config.max_sse_streams do
        :atomics.sub(counter, 1, 1)
        InterfaceService.Metrics.reject(conn.config.tabs.metrics, :sse_cap)
        Conn.send_json(conn, 503, %{error: "too many open streams"}, [{"Retry-After", "5"}])
      else
        try do
          stream(conn, swarm_id, filters)
        after
          :atomics.sub(counter, 1, 1)
        end
      end
    end
  end

  def discoveries(conn), do: Conn.method_not_allowed(conn, "GET")

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
