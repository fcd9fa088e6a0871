defmodule InterfaceService.Mcp.Protocol do
  @moduledoc """
  MCP over JSON-RPC 2.0, independent of the HTTP transport.

  Revisions spoken:

    * `2025-11-25`, `2025-06-18`, `2025-03-26`: the handshake era
      (`initialize`, sessions). A client asking `initialize` for any other
      version is answered with `2025-11-25`, as the specification asks.
    * `2026-07-28`: stateless. Every request carries
      `_meta["io.modelcontextprotocol/protocolVersion"]` and
      `_meta["io.modelcontextprotocol/clientCapabilities"]`; `server/discover`
      replaces the handshake; results carry `resultType`.

  This module classifies messages, answers the methods that need no
  transport state and builds tool results; `InterfaceService.Mcp.Http`
  runs tool calls and owns sessions, streams and cancellation.
  """

  alias SwarmService.Errors
  alias InterfaceService.{Json, Tools}

  @modern "2026-07-28"
  @handshake ["2025-11-25", "2025-06-18", "2025-03-26"]
  @latest_handshake "2025-11-25"

  @parse_error -32_700
  @invalid_request -32_600
  @method_not_found -32_601
  @invalid_params -32_602
  @internal_error -32_603
  @header_mismatch -32_020
  @unsupported_version -32_022

  @version_key "io.modelcontextprotocol/protocolVersion"
  @capabilities_key "io.modelcontextprotocol/clientCapabilities"

  @instructions "Swarm engine on the BEAM. Start with swarm_init, then agent_spawn and task_orchestrate; " <>
                  "poll task_status/task_results or pass wait_ms. External agents use task_claim/task_complete."

  @typedoc "A decoded JSON-RPC message."
  @type message :: map()
  @type error :: {:error, integer(), String.t()} | {:error, integer(), String.t(), term()}

  @doc "Every protocol version the gateway speaks, newest first."
  @spec supported_versions() :: [String.t()]
  def supported_versions, do: [@modern | @handshake]

  @doc "Versions negotiated with `initialize`."
  @spec handshake_versions() :: [String.t()]
  def handshake_versions, do: @handshake

  @doc "The stateless revision."
  @spec modern_version() :: String.t()
  def modern_version, do: @modern

  @doc """
  Classifies one JSON-RPC message: `{:request, id, method, params}`,
  `{:notification, method, params}`, `:response`, or `{:invalid, id, reason}`.
  """
  @spec classify(term()) ::
          {:request, String.t() | integer(), String.t(), map()}
          | {:notification, String.t(), map()}
          | :response
          | {:invalid, term(), String.t()}
  def classify(%{"jsonrpc" => "2.0", "method" => method} = msg) when is_binary(method) do
    params = Map.get(msg, "params")

    cond do
      not (is_map(params) or is_nil(params)) ->
        {:invalid, valid_id(msg["id"]), "params must be an object"}

      not Map.has_key?(msg, "id") ->
        {:notification, method, params || %{}}

      valid_id(msg["id"]) == nil ->
        {:invalid, nil, "id must be a string or an integer"}

      true ->
        {:request, msg["id"], method, params || %{}}
    end
  end

  def classify(%{"jsonrpc" => "2.0", "id" => _} = msg)
      when is_map_key(msg, "result") or is_map_key(msg, "error"),
      do: :response

  def classify(msg) when is_map(msg) do
    {:invalid, valid_id(msg["id"]), "not a JSON-RPC 2.0 request, notification or response"}
  end

  def classify(_), do: {:invalid, nil, "a JSON-RPC message must be an object"}

  defp valid_id(id) when is_binary(id) or is_integer(id), do: id
  defp valid_id(_), do: nil

  @doc "A JSON-RPC success response."
  @spec result(term(), map()) :: map()
  def result(id, result), do: %{jsonrpc: "2.0", id: id, result: result}

  @doc "A JSON-RPC error response."
  @spec error(term(), integer(), String.t(), term()) :: map()
  def error(id, code, message, data \\ nil) do
    err = %{code: code, message: message}
    %{jsonrpc: "2.0", id: id, error: if(is_nil(data), do: err, else: Map.put(err, :data, data))}
  end

  # --- the handshake era ---------------------------------------------------------

  @doc "Negotiates the version for `initialize` params; `{:error, ...}` when they are malformed."
  @spec negotiate(map()) :: {:ok, String.t()} | error()
  def negotiate(%{"protocolVersion" => v}) when is_binary(v) do
    {:ok, if(v in @handshake, do: v, else: @latest_handshake)}
  end

  def negotiate(_),
    do: {:error, @invalid_params, "initialize needs params.protocolVersion (a string)"}

  @doc "The `initialize` result for a negotiated version."
  @spec initialize_result(String.t()) :: map()
  def initialize_result(version) do
    %{
      protocolVersion: version,
      capabilities: %{tools: %{listChanged: false}, logging: %{}},
      serverInfo: server_info(),
      instructions: @instructions
    }
  end

  defp server_info do
    vsn =
      case :application.get_key(:swarm_service, :vsn) do
        {:ok, v} -> to_string(v)
        _ -> "0.0.0"
      end

    %{name: "ruv-swarm", title: "ruv_swarm on the BEAM", version: vsn}
  end

  # --- the stateless revision ------------------------------------------------------

  @doc """
  Checks a 2026-07-28 request: the `_meta` envelope, then the mirrored
  headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), then the
  version. `headers` is a map of lowercase header names to values.
  """
  @spec check_modern(String.t(), map(), %{optional(String.t()) => String.t() | nil}) ::
          :ok | error()
  def check_modern(method, params, headers) do
    meta = Map.get(params, "_meta")

    cond do
      not is_map(meta) or not Map.has_key?(meta, @version_key) or
          not Map.has_key?(meta, @capabilities_key) ->
        {:error, @invalid_params,
         "params._meta must carry #{@version_key} and #{@capabilities_key}"}

      headers["mcp-protocol-version"] != meta[@version_key] ->
        {:error, @header_mismatch,
         "MCP-Protocol-Version header does not match params._meta[#{@version_key}]"}

      headers["mcp-method"] != method ->
        {:error, @header_mismatch,
         "Mcp-Method header is missing or does not match the request method"}

      name_mismatch?(method, params, headers["mcp-name"]) ->
        {:error, @header_mismatch,
         "Mcp-Name header is missing or does not match the request's name"}

      meta[@version_key] != @modern ->
        unsupported(meta[@version_key])

      true ->
        :ok
    end
  end

  defp name_mismatch?(method, params, header)
       when method in ["tools/call", "prompts/get", "resources/read"] do
    key = if method == "resources/read", do: "uri", else: "name"

    case Map.get(params, key) do
      nil -> false
      value -> decode_header(header) != value
    end
  end

  defp name_mismatch?(_method, _params, _header), do: false

  # Header values that are not plain visible ASCII travel as =?base64?...?=.
  defp decode_header("=?base64?" <> rest) do
    with true <- String.ends_with?(rest, "?="),
         {:ok, decoded} <- Base.decode64(String.slice(rest, 0..-3//1)),
         true <- String.valid?(decoded) do
      decoded
    else
      _ -> :invalid
    end
  end

  defp decode_header(value), do: value

  @doc "The -32022 error for a version the gateway does not speak."
  @spec unsupported(term()) :: error()
  def unsupported(requested) do
    {:error, @unsupported_version, "unsupported protocol version",
     %{
       supported: supported_versions(),
       requested: if(is_binary(requested), do: requested, else: inspect(requested))
     }}
  end

  @doc "The `server/discover` result."
  @spec discover_result() :: map()
  def discover_result do
    %{
      resultType: "complete",
      supportedVersions: supported_versions(),
      capabilities: %{tools: %{}},
      instructions: @instructions,
      ttlMs: 3_600_000,
      cacheScope: "public",
      _meta: %{"io.modelcontextprotocol/serverInfo" => server_info()}
    }
  end

  # --- methods shared by both eras ---------------------------------------------------

  @doc """
  `tools/list` with opaque, stable cursors. The cursor names an offset into
  the (fixed-order) tool list; anything that does not decode to one is -32602.
  """
  @spec tools_list(map(), pos_integer(), :legacy | :modern) :: {:ok, map()} | error()
  def tools_list(params, page_size, era) do
    # Our tools, then those of the managed MCP servers (<prefix>__<tool>).
    tools = Tools.definitions() ++ SwarmService.McpServers.gateway_tools()

    with {:ok, offset} <- decode_cursor(Map.get(params, "cursor"), length(tools)) do
      page = Enum.slice(tools, offset, page_size)
      next = offset + page_size

      result = %{tools: page}

      result =
        if next < length(tools),
          do: Map.put(result, :nextCursor, encode_cursor(next)),
          else: result

      result =
        if era == :modern,
          do: Map.merge(result, %{resultType: "complete", ttlMs: 60_000, cacheScope: "public"}),
          else: result

      {:ok, result}
    end
  end

  defp encode_cursor(offset),
    do: Base.url_encode64("tools:" <> Integer.to_string(offset), padding: false)

  defp decode_cursor(nil, _total), do: {:ok, 0}

  defp decode_cursor(cursor, total) when is_binary(cursor) do
    with {:ok, "tools:" <> n} <- Base.url_decode64(cursor, padding: false),
         {offset, ""} when offset > 0 and offset < total <- Integer.parse(n) do
      {:ok, offset}
    else
      _ -> {:error, @invalid_params, "invalid cursor"}
    end
  end

  defp decode_cursor(_cursor, _total), do: {:error, @invalid_params, "invalid cursor"}

  @doc """
  Turns a `Tools.call/3` outcome into a `tools/call` result (or a protocol
  error for an unknown tool). Engine and argument errors are tool results
  with `isError: true`, so the model sees them and can correct itself.

  A successful result is encoded once: its text content is that JSON, and
  `structuredContent` is the same bytes as `{:json, binary}`, which
  `encode!/1` writes as they are.
  """
  @spec tool_result(String.t(), Tools.result()) :: {:ok, map()} | error()
  def tool_result(name, outcome) do
    case outcome do
      {:ok, {:mcp_result, result}} ->
        # A managed MCP server's own CallToolResult, relayed as it is.
        {:ok, result}

      {:ok, structured} ->
        text = IO.iodata_to_binary(Json.encode_term!(structured))

        {:ok,
         %{
           content: [%{type: "text", text: text}],
           structuredContent: {:json, text},
           isError: false
         }}

      {:error, :unknown_tool} ->
        {:error, Errors.rpc_code(:unknown_tool), "Unknown tool: #{String.slice(name, 0, 100)}"}

      {:error, reason} ->
        %{message: message, code: code} = Errors.for_client(reason)

        {:ok,
         %{
           content: [%{type: "text", text: message}],
           structuredContent: %{error: message, code: code},
           isError: true
         }}
    end
  end

  @doc """
  Encodes a JSON-RPC message, or a batch (list) of them. A `tools/call`
  result whose `structuredContent` is already JSON (`{:json, binary}`, see
  `tool_result/3`) has those bytes spliced in instead of encoded again.
  """
  @spec encode!(map() | [map()]) :: iodata()
  def encode!(messages) when is_list(messages),
    do: ["[", Enum.map_intersperse(messages, ",", &encode!/1), "]"]

  def encode!(
        %{
          jsonrpc: "2.0",
          id: id,
          result: %{structuredContent: {:json, structured}} = result
        } = msg
      )
      when map_size(msg) == 3 and map_size(result) > 1 do
    # The other members of result (at least content and isError) are
    # encoded as one object, which is then opened up to join them.
    "{" <> members =
      result |> Map.delete(:structuredContent) |> Json.encode!() |> IO.iodata_to_binary()

    [
      ~s({"jsonrpc":"2.0","id":),
      if(is_integer(id), do: Integer.to_string(id), else: Json.encode!(id)),
      ~s(,"result":{"structuredContent":),
      structured,
      ",",
      members,
      "}"
    ]
  end

  def encode!(msg), do: Json.encode!(msg)

  @doc "Validates `tools/call` params: `{:ok, name, arguments, progress_token}`."
  @spec call_params(map()) :: {:ok, String.t(), map(), term()} | error()
  def call_params(%{"name" => name} = params) when is_binary(name) do
    args = Map.get(params, "arguments") || %{}
    token = get_in(params, ["_meta", "progressToken"])

    cond do
      not is_map(args) ->
        {:error, @invalid_params, "arguments must be an object"}

      not (is_nil(token) or is_binary(token) or is_integer(token)) ->
        {:error, @invalid_params, "invalid progressToken"}

      true ->
        {:ok, name, args, token}
    end
  end

  def call_params(_), do: {:error, @invalid_params, "tools/call needs params.name (a string)"}

  @doc "The HTTP status for a JSON-RPC error code on the stateless revision."
  @spec modern_http_status(integer()) :: pos_integer()
  def modern_http_status(code) when code in [@parse_error, @invalid_request, @invalid_params],
    do: 400

  def modern_http_status(code) when code in [@header_mismatch, @unsupported_version], do: 400
  def modern_http_status(@method_not_found), do: 404
  def modern_http_status(@internal_error), do: 500
  def modern_http_status(_), do: 200
end
