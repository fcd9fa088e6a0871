defmodule InterfaceService.SseStream do
  @moduledoc false
  # The server-sent-events plumbing shared by /sse/discoveries
  # (InterfaceService.Sse) and MCP's streams (InterfaceService.Mcp.Http):
  # the response head, the event framing, and the wait for messages with
  # keep-alive comments that ends when the client hangs up. What goes into
  # the events (ids, replay, JSON-RPC messages) is the callers' business.

  alias InterfaceService.HttpConn

  @doc "Starts a 200 text/event-stream response for the request `conn`; returns it for writing."
  @spec open(map()) :: HttpConn.t()
  def open(conn) do
    # No caching, and no proxy buffering (nginx), so events arrive as sent.
    headers = [
      {"Content-Type", "text/event-stream"},
      {"Cache-Control", "no-cache"},
      {"X-Accel-Buffering", "no"}
    ]

    HttpConn.start_chunked(conn.req, 200, headers ++ conn.cors)
    conn.req
  end

  @doc "Writes one event of type `event` with `data` (one line of JSON) and, if given, an `id`."
  @spec send_event(HttpConn.t(), String.t(), iodata(), term()) :: :ok
  def send_event(resp, event, data, id \\ nil) do
    id_line = if id == nil, do: [], else: ["id: ", to_string(id), "\n"]
    HttpConn.write_chunk(resp, ["event: ", event, "\n", id_line, "data: ", data, "\n\n"])
  end

  @doc """
  Passes every message the process receives to `handle` (with `state`)
  until it returns `:stop`, writing a keep-alive comment after each
  `keepalive_ms` of silence. A client that hangs up ends the process at
  once (exit `:normal`), so the stream stops holding its resources.
  `handle` gets every other message too and should ignore what it does
  not know.
  """
  @spec listen(HttpConn.t(), timeout(), state, (term(), state -> {:cont, state} | :stop)) ::
          :ok
        when state: term()
  def listen(resp, keepalive_ms, state, handle) do
    HttpConn.watch_close(resp.socket)
    loop(resp, keepalive_ms, state, handle)
  end

  defp loop(resp, keepalive_ms, state, handle) do
    socket = resp.socket

    receive do
      {:tcp_closed, ^socket} ->
        exit(:normal)

      {:tcp_error, ^socket, _reason} ->
        exit(:normal)

      # What the client sends is ignored; the watch is armed again.
      {:tcp, ^socket, _data} ->
        HttpConn.watch_close(socket)
        loop(resp, keepalive_ms, state, handle)

      message ->
        case handle.(message, state) do
          {:cont, state} -> loop(resp, keepalive_ms, state, handle)
          :stop -> :ok
        end
    after
      keepalive_ms ->
        HttpConn.write_chunk(resp, ": keep-alive\n\n")
        loop(resp, keepalive_ms, state, handle)
    end
  end
end
