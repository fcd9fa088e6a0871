defmodule InterfaceService.FramingGuard do
  @moduledoc false
  # A Cowboy stream handler in front of cowboy_stream_h, for the HTTP/1.1
  # framing rules Cowboy leaves to the application (RFC 9112 §6):
  #   * A Content-Length that is not plain digits (Cowboy accepts "+19") is
  #     400 and the connection is closed.
  #   * A chunked request is the last one on its connection: the response
  #     says `connection: close`. A request carrying both Content-Length and
  #     Transfer-Encoding is read as chunked (Cowboy drops the length), so
  #     bytes smuggled behind it are never taken for another request.
  #   * While the gateway drains (shutting down) every response closes its
  #     connection.
  #   * Cowboy's own early refusals (400, 408, 414, 431, 505) get a JSON body
  #     with the reason and close the connection.
  # After a response, the connection may sit idle for the listener's
  # request_timeout (header_timeout_ms, or 1 s near the connection cap)
  # before the next request: Cowboy would otherwise keep it for the whole
  # idle_timeout that guards a request in progress.
  # It also counts requests in flight for the drain (a stream that has sent
  # its headers no longer counts: it lasts as long as its client wants) and
  # tells InterfaceService.Transport where request heads begin and end.

  @behaviour :cowboy_stream

  alias InterfaceService.Transport

  # The stream after which the connection closes; Cowboy may already have
  # read pipelined requests behind it.
  @last :gateway_last_stream

  @impl true
  def init(stream_id, req, opts) do
    Transport.body_started()
    gateway = opts.gateway
    last = Process.get(@last)

    case framing(req) do
      # Bytes behind a request that ends the connection (chunked, refused)
      # are never served: no handler runs, nothing is answered.
      _ when is_integer(last) and stream_id > last ->
        {[], %{next: nil, gateway: gateway, busy: false}}

      {:refuse, message} ->
        Process.put(@last, stream_id)
        {[json_response(400, message), :stop], %{next: nil, gateway: gateway, busy: false}}

      close ->
        if close, do: Process.put(@last, stream_id)
        :atomics.add(gateway.busy, 1, 1)
        {commands, next} = :cowboy_stream.init(stream_id, req, opts)
        keepalive = Map.get(opts, :request_timeout, 5_000)
        state = %{next: next, gateway: gateway, busy: true, close: close, keepalive: keepalive}
        rewrite(commands, state)
    end
  end

  defp framing(%{headers: %{"content-length" => length}}) do
    if digits?(length), do: false, else: {:refuse, "invalid Content-Length"}
  end

  # Cowboy removed Transfer-Encoding: a body of unknown length is chunked.
  defp framing(%{has_body: true, body_length: :undefined}), do: true
  defp framing(_req), do: false

  defp digits?(<<>>), do: false
  defp digits?(value), do: for(<<c <- value>>, reduce: true, do: (ok -> ok and c in ?0..?9))

  @impl true
  def data(stream_id, is_fin, data, %{next: next} = state) do
    {commands, next} = :cowboy_stream.data(stream_id, is_fin, data, next)
    rewrite(commands, %{state | next: next})
  end

  @impl true
  def info(_stream_id, _info, %{next: nil} = state), do: {[], state}

  def info(stream_id, info, %{next: next} = state) do
    {commands, next} = :cowboy_stream.info(stream_id, info, next)
    rewrite(commands, %{state | next: next})
  end

  @impl true
  def terminate(stream_id, reason, state) do
    state = done(state)
    Transport.next_head()
    if state.next, do: :cowboy_stream.terminate(stream_id, reason, state.next), else: :ok
  end

  @impl true
  def early_error(stream_id, reason, partial_req, {:response, status, headers, _body}, opts) do
    message =
      case reason do
        {_kind, _what, text} when is_atom(text) -> Atom.to_string(text)
        {_kind, _what, text} when is_binary(text) or is_list(text) -> to_string(text)
        _ -> "bad request"
      end

    body = ~s({"error":) <> IO.iodata_to_binary(:jiffy.encode(message)) <> "}"

    headers =
      Map.merge(headers, %{
        "connection" => "close",
        "content-type" => "application/json",
        "content-length" => Integer.to_string(byte_size(body))
      })

    :cowboy_stream.early_error(
      stream_id,
      reason,
      partial_req,
      {:response, status, headers, body},
      opts
    )
  end

  defp rewrite(commands, state) do
    close = state.close or draining?(state.gateway)

    {commands, state} =
      Enum.flat_map_reduce(commands, state, fn
        {:response, status, headers, body}, st ->
          {[
             {:response, status, closing(headers, close), body},
             {:set_options, %{idle_timeout: st.keepalive}}
           ], st}

        {:data, :fin, _data} = command, st ->
          {[command, {:set_options, %{idle_timeout: st.keepalive}}], st}

        {:headers, status, headers}, st ->
          {[{:headers, status, closing(headers, close)}], done(st)}

        {:switch_protocol, _, _, _} = command, st ->
          Transport.upgraded()
          {[command], done(st)}

        command, st ->
          {[command], st}
      end)

    {commands, state}
  end

  defp closing(headers, true), do: Map.put(headers, "connection", "close")
  defp closing(headers, false), do: headers

  # No longer in flight (finished, or a stream that lasts as long as its client).
  defp done(%{busy: true} = state) do
    :atomics.sub(state.gateway.busy, 1, 1)
    %{state | busy: false}
  end

  defp done(state), do: state

  defp draining?(gateway), do: :atomics.get(gateway.draining, 1) == 1

  defp json_response(status, message) do
    body = IO.iodata_to_binary(:jiffy.encode(%{error: message}))

    {:response, status,
     %{
       "connection" => "close",
       "content-type" => "application/json"
     }, body}
  end
end
