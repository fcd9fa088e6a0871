defmodule InterfaceService.Conn do
  @moduledoc false
  # One request as the gateway's handlers see it: the Cowboy request plus
  # what the pipeline learnt about it (route, client, CORS headers), and the
  # helpers every handler answers with. A handler returns the conn; its
  # `status` is what the metrics record.

  alias InterfaceService.{Json, Metrics}

  defstruct [
    :req,
    :config,
    :headers,
    :method,
    :path,
    :query,
    :route,
    :client,
    :peer,
    status: nil,
    tool: "-",
    cors: [],
    close: false
  ]

  @type t :: %__MODULE__{}

  # Methods are matched against this list, never turned into atoms from input.
  @methods %{
    "GET" => :GET,
    "HEAD" => :HEAD,
    "POST" => :POST,
    "PUT" => :PUT,
    "PATCH" => :PATCH,
    "DELETE" => :DELETE,
    "OPTIONS" => :OPTIONS
  }

  @doc "Wraps a Cowboy request."
  @spec new(:cowboy_req.req(), InterfaceService.Config.t()) :: t()
  def new(req, config) do
    path = :cowboy_req.path(req)
    {ip, _port} = :cowboy_req.peer(req)

    %__MODULE__{
      req: req,
      config: config,
      headers: :cowboy_req.headers(req),
      method: Map.get(@methods, :cowboy_req.method(req), :OTHER),
      path: path,
      query: :cowboy_req.qs(req),
      route: route_label(path),
      peer: ip
    }
  end

  defp route_label("/mcp"), do: "mcp"
  defp route_label("/api/mcp" <> _), do: "rest"
  defp route_label("/sse/discoveries"), do: "sse"
  defp route_label("/ws"), do: "ws"
  defp route_label("/health"), do: "health"
  defp route_label("/metrics"), do: "metrics"
  defp route_label(_), do: "other"

  @doc "A request header (lowercase name), or nil."
  @spec header(t(), String.t()) :: String.t() | nil
  def header(%__MODULE__{headers: headers}, name), do: Map.get(headers, name)

  @doc "The client's IP address."
  def peer(%__MODULE__{peer: peer}), do: peer

  @doc "The query string as a map; a malformed one is empty."
  def query_params(%__MODULE__{query: ""}), do: %{}

  def query_params(%__MODULE__{query: query}) do
    URI.decode_query(query)
  rescue
    _ -> %{}
  end

  @doc "Asks for the connection to be closed after this response."
  @spec close(t()) :: t()
  def close(conn), do: %{conn | close: true}

  @doc "Sends a whole response."
  @spec send_resp(t(), non_neg_integer(), [{String.t(), iodata()}], iodata()) :: t()
  def send_resp(conn, status, headers, body) do
    req = :cowboy_req.reply(status, response_headers(conn, headers), body, conn.req)
    %{conn | req: req, status: status}
  end

  @doc "Starts a streamed (chunked) response; returns the conn holding the streaming request."
  @spec stream_reply(t(), non_neg_integer(), [{String.t(), iodata()}]) :: t()
  def stream_reply(conn, status, headers) do
    req = :cowboy_req.stream_reply(status, response_headers(conn, headers), conn.req)
    %{conn | req: req, status: status}
  end

  @doc "The response headers as Cowboy wants them: lowercase names, CORS added."
  def response_headers(conn, headers) do
    headers = if conn.close, do: [{"connection", "close"} | headers], else: headers

    Enum.reduce(headers ++ conn.cors, %{}, fn {name, value}, acc ->
      Map.put(acc, String.downcase(name), value)
    end)
  end

  @doc "Sends `term` as JSON."
  def send_json(conn, status, term, headers \\ []) do
    send_resp(conn, status, [{"content-type", "application/json"} | headers], Json.encode!(term))
  end

  @doc "405 with the allowed methods."
  def method_not_allowed(conn, allow) do
    send_json(conn, 405, %{error: "method not allowed"}, [{"allow", allow}])
  end

  @doc "A refusal before any handler ran, shaped for the route's clients."
  def reject(%{route: "mcp"} = conn, status, msg, headers) do
    send_json(
      conn,
      status,
      %{jsonrpc: "2.0", id: nil, error: %{code: -32_000, message: msg}},
      headers
    )
  end

  def reject(%{route: "rest"} = conn, status, msg, headers),
    do: send_json(conn, status, %{success: false, error: msg}, headers)

  def reject(conn, status, msg, headers), do: send_json(conn, status, %{error: msg}, headers)

  @doc """
  Reads the whole request body within `max_body_bytes` and `body_timeout_ms`
  (for the body as a whole, however slowly it trickles). Returns
  `{:ok, binary}` or `{:error, :too_large | :timeout}`.
  """
  @spec read_body(t()) :: {:ok, binary()} | {:error, :too_large | :timeout}
  def read_body(%__MODULE__{req: req, config: config}) do
    max = config.max_body_bytes

    case :cowboy_req.body_length(req) do
      len when is_integer(len) and len > max ->
        {:error, :too_large}

      _ ->
        deadline = System.monotonic_time(:millisecond) + config.body_timeout_ms
        read_loop(req, max, deadline, [], 0)
    end
  end

  defp read_loop(req, max, deadline, acc, size) do
    remaining = deadline - System.monotonic_time(:millisecond)

    if remaining <= 0 do
      {:error, :timeout}
    else
      # `period`: how long Cowboy gathers data before handing it over;
      # `timeout`: how long it waits for any data at all.
      opts = %{length: min(max - size + 1, 65_536), period: remaining, timeout: remaining + 50}

      try do
        :cowboy_req.read_body(req, opts)
      catch
        :exit, :timeout -> {:error, :timeout}
      else
        {kind, data, req} ->
          size = size + byte_size(data)

          cond do
            size > max -> {:error, :too_large}
            kind == :ok -> {:ok, IO.iodata_to_binary(Enum.reverse([data | acc]))}
            true -> read_loop(req, max, deadline, [data | acc], size)
          end
      end
    end
  end

  @doc "The request body, or the error reply already sent for it."
  def read_body_or_reply(conn) do
    case read_body(conn) do
      {:ok, body} -> {:ok, body}
      {:error, reason} -> body_error(conn, reason)
    end
  end

  @doc """
  Answers a body that cannot be read, and closes the connection: the
  unread bytes would otherwise be taken for the next request.
  """
  def body_error(conn, :too_large) do
    Metrics.reject(conn.config.tabs.metrics, :too_large)

    conn
    |> close()
    |> reject(413, "request body larger than #{conn.config.max_body_bytes} bytes", [])
  end

  def body_error(conn, :timeout) do
    Metrics.reject(conn.config.tabs.metrics, :body_timeout)

    conn
    |> close()
    |> reject(408, "request body not received within #{conn.config.body_timeout_ms} ms", [])
  end

  @doc "The base URL clients should use in links: public_url, else the Host they used."
  def base_url(conn) do
    case {conn.config.public_url, header(conn, "host")} do
      {url, _} when is_binary(url) -> url
      # The Host header already passed the allow-list.
      {nil, host} when is_binary(host) -> "http://" <> host
      _ -> InterfaceService.Listener.base_url(conn.config)
    end
  end
end
