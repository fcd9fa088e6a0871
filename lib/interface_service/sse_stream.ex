defmodule InterfaceService.SseStream do
  @moduledoc false
  # The server-sent-events plumbing shared by /sse/discoveries
  # (InterfaceService.Sse) and MCP's streams (InterfaceService.Mcp.Http):
  # the response head, the event framing, and the wait for messages with
  # keep-alive comments that ends when the client hangs up.
  #
  # Writes never block the stream's process and never pile up without
  # bound: each event is handed to the connection process, which acks it
  # once it takes it to the socket. Bytes handed over but not yet acked
  # are counted; over max_stream_queue_bytes the client is too slow and its
  # stream is dropped. A write the socket cannot take within send_timeout_ms
  # closes the connection (the listener's socket options).

  alias InterfaceService.{Conn, Metrics}

  @queue :gateway_sse_queue

  @doc "Starts a 200 text/event-stream response for the request `conn`; returns the streaming conn."
  @spec open(Conn.t()) :: Conn.t()
  def open(conn) do
    # The client hanging up reaches this process as an exit from the
    # connection: trapped, so the caller's cleanup (unsubscribe) runs.
    Process.flag(:trap_exit, true)
    Process.put(@queue, {:queue.new(), 0})

    # No caching, and no proxy buffering (nginx), so events arrive as sent.
    conn =
      Conn.stream_reply(conn, 200, [
        {"content-type", "text/event-stream"},
        {"cache-control", "no-cache"},
        {"x-accel-buffering", "no"}
      ])

    # A stream is quiet on the client's side by nature: no idle timeout.
    :cowboy_req.cast({:set_options, %{idle_timeout: :infinity}}, conn.req)
    conn
  end

  @doc "Writes raw bytes to the stream; drops a client that is too far behind."
  @spec write(Conn.t(), iodata()) :: :ok
  def write(conn, data) do
    size = IO.iodata_length(data)
    {queue, bytes} = take_acks(conn.req.pid, Process.get(@queue))

    if bytes + size > conn.config.max_stream_queue_bytes do
      Metrics.reject(conn.config.tabs.metrics, :slow_stream_client)
      exit({:shutdown, :slow_client})
    end

    :cowboy_req.cast({:data, self(), :nofin, data}, conn.req)
    Process.put(@queue, {:queue.in(size, queue), bytes + size})
    :ok
  end

  # Every ack the connection has sent so far frees the oldest write.
  defp take_acks(pid, {queue, bytes}) do
    receive do
      {:data_ack, ^pid} ->
        {{:value, size}, queue} = :queue.out(queue)
        take_acks(pid, {queue, bytes - size})
    after
      0 -> {queue, bytes}
    end
  end

  @doc "Ends the stream."
  @spec finish(Conn.t()) :: :ok
  def finish(conn) do
    :cowboy_req.cast({:data, self(), :fin, ""}, conn.req)
  end

  @doc "Writes one event of type `event` with `data` (one line of JSON) and, if given, an `id`."
  @spec send_event(Conn.t(), String.t(), iodata(), term()) :: :ok
  def send_event(conn, event, data, id \\ nil) do
    id_line = if id == nil, do: [], else: ["id: ", to_string(id), "\n"]
    write(conn, ["event: ", event, "\n", id_line, "data: ", data, "\n\n"])
  end

  @doc """
  Passes every message the process receives to `handle` (with `state`)
  until it returns `:stop`, writing a keep-alive comment after each
  `keepalive_ms` of silence. A client that hangs up ends the process
  (exit `:normal`) once the caller's `after` blocks have run. `handle` gets
  every other message too and should ignore what it does not know.
  """
  @spec listen(Conn.t(), timeout(), state, (term(), state -> {:cont, state} | :stop)) :: :ok
        when state: term()
  def listen(conn, keepalive_ms, state, handle) do
    pid = conn.req.pid

    receive do
      {:EXIT, ^pid, _reason} ->
        exit(:normal)

      {:data_ack, ^pid} ->
        Process.put(@queue, take_ack(Process.get(@queue)))
        listen(conn, keepalive_ms, state, handle)

      message ->
        case handle.(message, state) do
          {:cont, state} -> listen(conn, keepalive_ms, state, handle)
          :stop -> :ok
        end
    after
      keepalive_ms ->
        write(conn, ": keep-alive\n\n")
        listen(conn, keepalive_ms, state, handle)
    end
  end

  defp take_ack({queue, bytes}) do
    {{:value, size}, queue} = :queue.out(queue)
    {queue, bytes - size}
  end
end
