defmodule InterfaceService.HttpConn do
  @moduledoc false
  # HTTP/1.1 on one accepted socket, run in the connection's own process
  # (mochiweb's socket server accepts and hands the socket over; this
  # module replaces its request loop and request/response modules).
  #
  # Why not mochiweb_http: it parses with {packet, http} and {active, once},
  # so every header line costs a setopts call and a message; it keeps
  # headers in a gb_tree lowercased on every lookup; and it forces a full
  # garbage collection after every keep-alive request. Here the head is
  # read with plain recv calls (usually one) and parsed with
  # erlang:decode_packet/3 (the same parser the socket option uses), and the
  # heap is collected only once a connection has gone idle.
  #
  # Reads are passive recv calls. {active, N} saves the driver a poll-set
  # update per read, but measured no faster at 64 clients and slower for a
  # lone client (p50 of GET /health 130 -> 230 us on a quiet machine).
  #
  # Limits and timeouts are mochiweb's: 300 s for the next request line,
  # 30 s between header reads, 1000 headers, 8 KiB per line.
  #
  # Per-request flags (close after this response, body consumed) live in
  # the process dictionary, as mochiweb's did, so handlers need not thread
  # the request through every call.

  defstruct [
    :socket,
    :method,
    :raw_path,
    :version,
    :headers,
    :peer,
    buffer: "",
    over_capacity: false
  ]

  @type t :: %__MODULE__{}

  @idle_timeout 300_000
  @header_timeout 30_000
  # A connection idle this long gets its heap collected once.
  @idle_gc_ms 2_000
  @max_headers 1000
  @max_line 8192
  @server "MochiWeb/1.0 (Any of you quaids got a smint?)"

  @force_close :gateway_force_close
  @body_read :gateway_body_read
  # Bytes read past a request body: the start of the next request.
  @surplus :gateway_surplus

  @doc """
  The connection loop, called by mochiweb's acceptor with the accepted
  socket. `handler` gets each request (`t()`) and must answer it.
  `counter` counts open connections; above `max` every request on the
  connection is marked `over_capacity` (the handler refuses it).
  """
  def serve(socket, _mochiweb_opts, {handler, counter, max}) do
    over = :atomics.add_get(counter, 1, 1) > max

    try do
      peer =
        case :inet.peername(socket) do
          {:ok, {ip, _port}} -> ip |> :inet.ntoa() |> to_string()
          _ -> "unknown"
        end

      next(%__MODULE__{socket: socket, peer: peer, over_capacity: over}, handler, "")
    after
      :atomics.sub(counter, 1, 1)
    end
  end

  defp next(base, handler, buffer) do
    # A connection over the cap gets one answer (503) and is not waited for long.
    idle = if base.over_capacity, do: @header_timeout, else: @idle_timeout

    case read_head(base.socket, buffer, idle) do
      {:ok, method, uri, version, headers, rest} ->
        req = %{
          base
          | method: method,
            raw_path: uri(uri),
            version: version,
            headers: headers,
            buffer: rest
        }

        handler.(req)
        after_response(req, handler)

      :bad_request ->
        bad_request(base)
    end
  end

  defp after_response(req, handler) do
    if should_close?(req) do
      :gen_tcp.close(req.socket)
      exit({:shutdown, :should_close})
    else
      # A body the handler read took its bytes from the buffer; whatever
      # followed it was kept aside.
      buffer = if Process.delete(@body_read), do: Process.delete(@surplus) || "", else: req.buffer
      next(req, handler, buffer)
    end
  end

  # --- reading the head -----------------------------------------------------

  defp read_head(socket, buffer, idle) do
    with {:ok, method, uri, version, rest} <- request_line(socket, buffer, idle),
         {:ok, headers, rest} <- header_lines(socket, rest, %{}, 0) do
      {:ok, method, uri, version, headers, rest}
    end
  end

  defp request_line(socket, buffer, idle) do
    case :erlang.decode_packet(:http_bin, buffer, packet_size: @max_line) do
      {:ok, {:http_request, method, uri, version}, rest} ->
        {:ok, method, uri, version, rest}

      # Empty lines before a request are allowed (RFC 9112 §2.2).
      {:ok, {:http_error, line}, rest} when line in ["\r\n", "\n"] ->
        request_line(socket, rest, idle)

      {:more, _} ->
        request_line(socket, buffer <> wait_request(socket, buffer, idle), idle)

      _invalid ->
        :bad_request
    end
  end

  # The first bytes of a request: an idle keep-alive connection is
  # garbage-collected once, then waits out the rest of the idle timeout.
  defp wait_request(socket, "", idle) do
    case recv(socket, @idle_gc_ms) do
      {:ok, data} ->
        data

      :timeout ->
        :erlang.garbage_collect()
        recv!(socket, idle - @idle_gc_ms)
    end
  end

  defp wait_request(socket, _partial, _idle), do: recv!(socket, @header_timeout)

  defp header_lines(_socket, _buffer, _headers, @max_headers), do: :bad_request

  defp header_lines(socket, buffer, headers, count) do
    case :erlang.decode_packet(:httph_bin, buffer, packet_size: @max_line) do
      {:ok, {:http_header, _, field, _, value}, rest} ->
        header_lines(socket, rest, add_header(headers, field, value), count + 1)

      {:ok, :http_eoh, rest} ->
        {:ok, headers, rest}

      {:more, _} ->
        header_lines(socket, buffer <> recv!(socket, @header_timeout), headers, count)

      _invalid ->
        :bad_request
    end
  end

  # Names by lowercase; a repeated header's values are joined with ", ".
  defp add_header(headers, field, value) do
    name = field_name(field)
    value = trim(value)

    case headers do
      %{^name => old} -> %{headers | name => old <> ", " <> value}
      _ -> Map.put(headers, name, value)
    end
  end

  # decode_packet drops the spaces before a value, not those after it.
  defp trim(""), do: ""

  defp trim(value) do
    case :binary.last(value) do
      c when c in [?\s, ?\t] -> String.trim(value)
      _ -> value
    end
  end

  # decode_packet names the headers it knows with atoms in canonical case.
  for field <-
        ~w(Cache-Control Connection Date Pragma Transfer-Encoding Upgrade Via Accept Accept-Charset
                  Accept-Encoding Accept-Language Authorization From Host If-Modified-Since
                  If-Match If-None-Match If-Range If-Unmodified-Since Max-Forwards
                  Proxy-Authorization Range Referer User-Agent Age Location Proxy-Authenticate
                  Public Retry-After Server Vary Warning Www-Authenticate Allow Content-Base
                  Content-Encoding Content-Language Content-Length Content-Location Content-Md5
                  Content-Range Content-Type Etag Expires Last-Modified Accept-Ranges Set-Cookie
                  Set-Cookie2 X-Forwarded-For Cookie Keep-Alive Proxy-Connection) do
    defp field_name(unquote(String.to_atom(field))), do: unquote(String.downcase(field))
  end

  # Other names come in canonical case too ("Mcp-Session-Id"); the ones
  # the gateway reads are looked up rather than lowercased each time.
  for field <- ~w(Origin Expect Mcp-Session-Id Mcp-Protocol-Version Mcp-Method Mcp-Name
                  Last-Event-Id) do
    defp field_name(unquote(field)), do: unquote(String.downcase(field))
  end

  defp field_name(field) when is_atom(field), do: field |> Atom.to_string() |> String.downcase()
  defp field_name(field), do: String.downcase(field, :ascii)

  defp uri({:abs_path, path}), do: path
  defp uri({:absoluteURI, _scheme, _host, _port, path}), do: path
  defp uri(:*), do: "*"
  defp uri({:scheme, host, port}), do: host <> ":" <> port
  defp uri(other) when is_binary(other), do: other

  defp bad_request(base) do
    # As mochiweb answered: an HTTP/0.9-style request, so the reply closes.
    req = %{base | method: :GET, raw_path: "/", version: {0, 9}, headers: %{}}
    Process.put(@force_close, true)
    respond(req, 400, [], "")
    :gen_tcp.close(base.socket)
    exit({:shutdown, :invalid_request})
  end

  # --- request helpers for handlers --------------------------------------------

  @doc "A request header by lowercase name, or nil."
  def header(%__MODULE__{headers: headers}, name), do: Map.get(headers, name)

  @doc "Closes the connection after this response."
  def force_close, do: Process.put(@force_close, true)

  @doc """
  Reads the request body, at most `limit` bytes, within `timeout` ms for
  the whole body. Returns `{:ok, binary}`, `{:error, :too_large}` or
  `{:error, :bad_length}`; a client that stops sending ends the connection.
  """
  def read_body(%__MODULE__{} = req, limit, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout

    case body_length(req) do
      :none ->
        {:ok, ""}

      :bad ->
        {:error, :bad_length}

      len when is_integer(len) and len > limit ->
        {:error, :too_large}

      0 ->
        Process.put(@body_read, true)
        {:ok, ""}

      len when is_integer(len) ->
        continue(req, len)
        {body, surplus} = take(req.socket, req.buffer, len, deadline)
        done_reading(req.socket, surplus)
        {:ok, body}

      :chunked ->
        continue(req, nil)

        case chunks(req.socket, req.buffer, limit, deadline, 0, []) do
          {:ok, body, surplus} ->
            done_reading(req.socket, surplus)
            {:ok, body}

          error ->
            error
        end
    end
  end

  # Transfer-Encoding other than chunked, or Content-Length values that are
  # not one non-negative integer (repeats must agree), are refused.
  defp body_length(%__MODULE__{headers: headers}) do
    case headers do
      %{"transfer-encoding" => te} ->
        if String.downcase(te, :ascii) == "chunked", do: :chunked, else: :bad

      %{"content-length" => value} ->
        case Integer.parse(value) do
          {n, ""} when n >= 0 -> n
          _ -> repeated_length(value)
        end

      _ ->
        :none
    end
  end

  # "5, 5" (the header sent twice) is 5; values that disagree are refused.
  defp repeated_length(value) do
    value
    |> String.split(",")
    |> Enum.map(&Integer.parse(String.trim(&1)))
    |> Enum.uniq()
    |> case do
      [{n, ""}] when n >= 0 -> n
      _ -> :bad
    end
  end

  # "Expect: 100-continue" clients wait for this before sending the body.
  defp continue(%__MODULE__{version: {1, 1}} = req, len) do
    if header(req, "expect") |> expects_continue?() and
         (len == nil or byte_size(req.buffer) < len) do
      send!(req.socket, ["HTTP/1.1 100 Continue\r\n\r\n"])
    end
  end

  defp continue(_req, _len), do: :ok

  defp expects_continue?(nil), do: false
  defp expects_continue?(value), do: String.downcase(value, :ascii) == "100-continue"

  defp done_reading(_socket, surplus) do
    # Bytes past the body belong to the next (pipelined) request.
    if surplus != "", do: Process.put(@surplus, surplus)
    Process.put(@body_read, true)
  end

  # {first n bytes, the rest}, reading from the socket as needed.
  defp take(socket, buffer, n, deadline) do
    size = byte_size(buffer)

    if size >= n do
      {binary_part(buffer, 0, n), binary_part(buffer, n, size - n)}
    else
      take(socket, buffer <> recv_by!(socket, deadline), n, deadline)
    end
  end

  defp chunks(socket, buffer, limit, deadline, total, acc) do
    with {:ok, line, rest} <- line(socket, buffer, deadline),
         {:ok, size} <- chunk_size(line) do
      cond do
        size == 0 ->
          case trailers(socket, rest, deadline) do
            {:ok, surplus} -> {:ok, acc |> Enum.reverse() |> IO.iodata_to_binary(), surplus}
            error -> error
          end

        total + size > limit ->
          {:error, :too_large}

        true ->
          case take(socket, rest, size + 2, deadline) do
            {<<data::binary-size(size), "\r\n">>, rest} ->
              chunks(socket, rest, limit, deadline, total + size, [data | acc])

            _ ->
              {:error, :bad_length}
          end
      end
    end
  end

  defp chunk_size(line) do
    hex = line |> String.split(";", parts: 2) |> hd() |> String.trim()

    case Integer.parse(hex, 16) do
      {n, ""} when n >= 0 -> {:ok, n}
      _ -> {:error, :bad_length}
    end
  end

  defp trailers(socket, buffer, deadline) do
    case line(socket, buffer, deadline) do
      {:ok, "", rest} -> {:ok, rest}
      {:ok, _trailer, rest} -> trailers(socket, rest, deadline)
      error -> error
    end
  end

  defp line(socket, buffer, deadline) do
    case :binary.split(buffer, "\r\n") do
      [line, rest] ->
        {:ok, line, rest}

      [_] when byte_size(buffer) > @max_line ->
        {:error, :bad_length}

      [_] ->
        line(socket, buffer <> recv_by!(socket, deadline), deadline)
    end
  end

  # Body reads share one deadline: a client trickling bytes cannot hold
  # the connection past it.
  defp recv_by!(socket, deadline),
    do: recv!(socket, max(deadline - System.monotonic_time(:millisecond), 0))

  defp recv!(socket, timeout) do
    case recv(socket, timeout) do
      {:ok, data} -> data
      :timeout -> closed(socket)
    end
  end

  # The next bytes from the client, or :timeout; a closed socket ends the
  # connection.
  defp recv(socket, timeout) do
    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, data} -> {:ok, data}
      {:error, :timeout} -> :timeout
      {:error, _closed} -> closed(socket)
    end
  end

  @doc """
  For streams: delivers `{:tcp_closed, socket}` as soon as the client hangs
  up (and `{:tcp, socket, data}` for anything it sends; call again after).
  """
  def watch_close(socket), do: :inet.setopts(socket, active: :once)

  @doc "Ends a stream's watch: the socket is read by the request loop again."
  def unwatch(socket) do
    :inet.setopts(socket, active: false)
    flush(socket)
  end

  # What the client sent during the stream is dropped, as it always was.
  defp flush(socket) do
    receive do
      {:tcp, ^socket, _} -> flush(socket)
    after
      0 -> :ok
    end
  end

  defp closed(socket) do
    :gen_tcp.close(socket)
    exit({:shutdown, :recv_error})
  end

  # --- responses ------------------------------------------------------------------

  @doc "Sends a complete response; `headers` are `{name, value}` pairs."
  def respond(%__MODULE__{} = req, status, headers, body) do
    length = IO.iodata_length(body)

    head = [
      status_line(req.version, status),
      header_lines(headers),
      "Content-Length: ",
      Integer.to_string(length),
      "\r\n" | standard_headers(req)
    ]

    send!(req.socket, if(req.method == :HEAD, do: head, else: [head | body]))
  end

  @doc """
  Starts a streamed response (chunked on HTTP/1.1; on HTTP/1.0 the body
  runs until the connection closes). Write with `write_chunk/2`; an empty
  chunk ends the stream.
  """
  def start_chunked(%__MODULE__{} = req, status, headers) do
    framing =
      cond do
        req.method == :HEAD ->
          "Content-Length: 0\r\n"

        req.version >= {1, 1} ->
          "Transfer-Encoding: chunked\r\n"

        true ->
          force_close()
          []
      end

    send!(req.socket, [
      status_line(req.version, status),
      header_lines(headers),
      framing | standard_headers(req)
    ])
  end

  @doc "Writes one chunk of a streamed response."
  def write_chunk(%__MODULE__{method: :HEAD}, _data), do: :ok

  def write_chunk(%__MODULE__{version: version} = req, data) when version >= {1, 1} do
    size = IO.iodata_length(data)
    send!(req.socket, [Integer.to_string(size, 16), "\r\n", data, "\r\n"])
  end

  def write_chunk(%__MODULE__{} = req, data), do: send!(req.socket, data)

  defp standard_headers(req) do
    close = if should_close?(req), do: "Connection: close\r\n", else: []

    [close, "Date: ", :mochiweb_clock.rfc1123(), "\r\nServer: ", @server, "\r\n\r\n"]
  end

  defp header_lines(headers), do: Enum.map(headers, fn {k, v} -> [k, ": ", v, "\r\n"] end)

  for code <- [200, 202, 204, 400, 401, 403, 404, 405, 406, 409, 413, 415, 429, 500, 503, 504] do
    line = "#{code} #{:httpd_util.reason_phrase(code)}\r\n"
    defp status_text(unquote(code)), do: unquote(line)
  end

  defp status_text(code),
    do: [Integer.to_string(code), " ", :httpd_util.reason_phrase(code), "\r\n"]

  defp status_line({1, 0}, status), do: ["HTTP/1.0 ", status_text(status)]
  defp status_line(_version, status), do: ["HTTP/1.1 ", status_text(status)]

  defp send!(socket, data) do
    case :gen_tcp.send(socket, data) do
      :ok -> :ok
      {:error, _} -> exit({:shutdown, :send_error})
    end
  end

  # mochiweb's keep-alive rules: close when asked to, for HTTP/1.0 without
  # keep-alive, and when the handler left a request body unread (its bytes
  # would be taken for the next request).
  defp should_close?(req) do
    Process.get(@force_close) == true or req.version < {1, 0} or
      connection(req) == "close" or
      (req.version == {1, 0} and connection(req) != "keep-alive") or
      (Process.get(@body_read) != true and body_length(req) not in [:none, 0])
  end

  defp connection(req) do
    case header(req, "connection") do
      nil -> nil
      value -> String.downcase(value, :ascii)
    end
  end
end
