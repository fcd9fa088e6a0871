defmodule InterfaceService.Mcp.Session do
  @moduledoc false
  # MCP sessions (revisions up to 2025-11-25) live in one ETS table owned by
  # the gateway supervisor:
  #   {id, version, created_ms, last_seen_ms, log_level, stream_pid, owner}
  # `owner` is the client that opened it (its token's identity, or its
  # address when the gateway has no tokens): no other client can use or
  # end it, and each client may hold at most max_sessions_per_client.
  # and calls in flight in another, keyed {session_id, request_id}, so
  # notifications/cancelled can find and stop the work.

  alias InterfaceService.Config

  @log_levels ~w(debug info notice warning error critical alert emergency)

  @doc "Opens a session for `owner`; the id is 32 random bytes, base64url (visible ASCII)."
  @spec create(Config.t(), String.t(), term()) ::
          {:ok, String.t()} | {:error, :too_many_sessions | :too_many_client_sessions}
  def create(%Config{tabs: %{sessions: tab}} = config, version, owner) do
    cond do
      :ets.info(tab, :size) >= config.max_sessions ->
        {:error, :too_many_sessions}

      owned(tab, owner) >= config.max_sessions_per_client ->
        {:error, :too_many_client_sessions}

      true ->
        id = Base.url_encode64(:crypto.strong_rand_bytes(32), padding: false)
        now = now()
        true = :ets.insert_new(tab, {id, version, now, now, nil, nil, owner})
        {:ok, id}
    end
  end

  defp owned(tab, owner),
    do:
      :ets.select_count(tab, [
        {{:_, :_, :_, :_, :_, :_, :"$1"}, [{:"=:=", :"$1", {:const, owner}}], [true]}
      ])

  @doc "Finds a live session of `owner` and marks it used; expired sessions are removed."
  @spec touch(Config.t(), String.t(), term()) :: {:ok, tuple()} | :error
  def touch(%Config{tabs: %{sessions: tab}} = config, id, owner) do
    case :ets.lookup(tab, id) do
      [{^id, _v, _c, last, _l, _s, ^owner} = session] ->
        now = now()

        if now - last > config.session_ttl_ms do
          remove(config, id)
          :error
        else
          # Skip the write when the session was touched this very second:
          # keeps hot sessions from contending on one row.
          if now - last > 1000, do: :ets.update_element(tab, id, {4, now})
          {:ok, session}
        end

      # Missing, or another client's: the same answer, nothing revealed.
      _ ->
        :error
    end
  end

  @doc """
  Ends a session of `owner` (`:any` for the sweeper): its GET stream is
  closed and calls in flight are stopped.
  """
  @spec delete(Config.t(), String.t(), term()) :: :ok | :error
  def delete(%Config{tabs: %{sessions: tab}} = config, id, owner) do
    case :ets.lookup(tab, id) do
      [{^id, _v, _c, _l, _lvl, _stream, session_owner}]
      when owner == :any or session_owner == owner ->
        remove(config, id)

      _ ->
        :error
    end
  end

  defp remove(%Config{tabs: %{sessions: tab, inflight: inflight}}, id) do
    case :ets.take(tab, id) do
      [{^id, _v, _c, _l, _lvl, stream, _owner}] ->
        if is_pid(stream), do: send(stream, :mcp_session_closed)

        for {{^id, _req}, worker, request} <- :ets.match_object(inflight, {{id, :_}, :_, :_}) do
          send(request, {:mcp_cancelled, worker})
        end

        :ets.match_delete(inflight, {{id, :_}, :_, :_})
        :ok

      [] ->
        :error
    end
  end

  @doc "Valid log levels, lowest first."
  def log_levels, do: @log_levels

  @doc "Sets the minimum level of log notifications sent to the session."
  @spec set_log_level(Config.t(), String.t(), String.t()) :: :ok | {:error, :invalid_level}
  def set_log_level(%Config{tabs: %{sessions: tab}}, id, level) do
    if level in @log_levels do
      :ets.update_element(tab, id, {5, level})
      :ok
    else
      {:error, :invalid_level}
    end
  end

  @doc "Attaches the GET stream process; only one per session."
  @spec attach_stream(Config.t(), String.t(), pid()) :: :ok | {:error, :conflict}
  def attach_stream(%Config{tabs: %{sessions: tab}}, id, pid) do
    case :ets.lookup(tab, id) do
      [{^id, _v, _c, _l, _lvl, old, _owner}] when is_pid(old) ->
        if Process.alive?(old), do: {:error, :conflict}, else: do_attach(tab, id, pid)

      [_] ->
        do_attach(tab, id, pid)

      [] ->
        {:error, :conflict}
    end
  end

  defp do_attach(tab, id, pid) do
    :ets.update_element(tab, id, {6, pid})
    :ok
  end

  @doc "Detaches the GET stream when it closes."
  def detach_stream(%Config{tabs: %{sessions: tab}}, id, pid) do
    :ets.select_replace(tab, [
      {{id, :"$1", :"$2", :"$3", :"$4", pid, :"$5"}, [],
       [{{id, :"$1", :"$2", :"$3", :"$4", nil, :"$5"}}]}
    ])

    :ok
  end

  @doc """
  Sends a `notifications/message` log entry to the session's GET stream when
  one is open and the level is at or above the session's level.
  """
  @spec log(Config.t(), String.t() | nil, String.t(), term()) :: :ok
  def log(_config, nil, _level, _data), do: :ok

  def log(%Config{tabs: %{sessions: tab}}, id, level, data) do
    case :ets.lookup(tab, id) do
      [{^id, _v, _c, _l, min, stream, _owner}] when is_pid(stream) ->
        if rank(level) >= rank(min || "info") do
          send(
            stream,
            {:mcp_notify,
             %{
               jsonrpc: "2.0",
               method: "notifications/message",
               params: %{level: level, logger: "ruv_swarm", data: data}
             }}
          )
        end

        :ok

      _ ->
        :ok
    end
  end

  defp rank(level), do: Enum.find_index(@log_levels, &(&1 == level)) || 0

  # --- calls in flight ---------------------------------------------------------

  @doc "Registers a running call so it can be cancelled."
  def register_call(%Config{tabs: %{inflight: tab}}, session_id, request_id, worker) do
    :ets.insert(tab, {{session_id, request_id}, worker, self()})
    :ok
  end

  @doc "Forgets a finished call."
  def unregister_call(%Config{tabs: %{inflight: tab}}, session_id, request_id) do
    :ets.delete(tab, {session_id, request_id})
    :ok
  end

  @doc "Stops a call in flight (notifications/cancelled). Unknown ids are ignored, as the spec asks."
  @spec cancel_call(Config.t(), String.t() | nil, term()) :: :ok
  def cancel_call(%Config{tabs: %{inflight: tab}}, session_id, request_id) do
    case :ets.take(tab, {session_id, request_id}) do
      # The waiting request stops its worker (they are linked: killing the
      # worker from here would take the request with it).
      [{_key, worker, request}] ->
        send(request, {:mcp_cancelled, worker})
        :ok

      [] ->
        :ok
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  defmodule Sweeper do
    @moduledoc false
    # Removes expired sessions and idle rate-limit buckets periodically.
    use GenServer

    def start_link(config), do: GenServer.start_link(__MODULE__, config)

    @impl true
    def init(config) do
      schedule(config)
      {:ok, config}
    end

    @impl true
    def handle_info(:sweep, config) do
      cutoff = System.monotonic_time(:millisecond) - config.session_ttl_ms

      expired =
        :ets.select(config.tabs.sessions, [
          {{:"$1", :_, :_, :"$2", :_, :_, :_}, [{:<, :"$2", cutoff}], [:"$1"]}
        ])

      Enum.each(expired, &InterfaceService.Mcp.Session.delete(config, &1, :any))
      InterfaceService.RateLimiter.sweep(config.tabs.rate)
      schedule(config)
      {:noreply, config}
    end

    defp schedule(config) do
      Process.send_after(self(), :sweep, min(max(div(config.session_ttl_ms, 4), 50), 60_000))
    end
  end
end
