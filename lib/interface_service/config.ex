defmodule InterfaceService.Config do
  @moduledoc """
  Options of the gateway, validated where they enter.

  Options come from `config :swarm_service, InterfaceService, [...]` (see
  `config/runtime.exs` for the environment variables) merged with the keyword
  list given to `InterfaceService.start_link/1`. Every option is checked here
  once; a wrong value stops the gateway from starting with an `ArgumentError`
  that names the option, the value and what is expected.

  | option | default | meaning |
  |---|---|---|
  | `:enabled` | `true` | start the listener at all |
  | `:ip` | `{127, 0, 0, 1}` | address to bind (tuple or string) |
  | `:port` | `4102` | TCP port, `0` picks a free one |
  | `:tokens` | `[]` | accepted bearer tokens (held as SHA-256 digests); required when `:ip` is not loopback |
  | `:allowed_hosts` | loopback names | `Host` header names accepted, or `:any` |
  | `:allowed_origins` | loopback origins | `Origin` values accepted, or `:any` |
  | `:rate_limit` | `500` | requests per second per client, `0` disables |
  | `:rate_burst` | `2 * rate_limit` | bucket size |
  | `:max_body_bytes` | `1_048_576` | request body limit (413 above) |
  | `:max_sse_streams` | `1000` | open `/sse/discoveries` streams (503 above) |
  | `:max_connections` | `2048` | open TCP connections; requests on connections above it get 503 and the connection is closed |
  | `:max_connections_per_address` | `256` | open TCP connections from one client address (503 above), so one flooding address leaves room for the others |
  | `:header_timeout_ms` | `5_000` | longest a client may take to send a request head, and longest a kept-alive connection may sit idle between requests |
  | `:send_timeout_ms` | `10_000` | longest one write to a client may block; a client that stops reading is disconnected |
  | `:max_stream_queue_bytes` | `1_048_576` | bytes of SSE events waiting for a slow client before its stream is dropped |
  | `:drain_timeout_ms` | `10_000` | at shutdown, how long requests in flight may take to finish (no new connections are accepted meanwhile) |
  | `:request_timeout_ms` | `30_000` | longest a tool call may run |
  | `:body_timeout_ms` | `15_000` | longest the client may take to send a body |
  | `:session_ttl_ms` | `3_600_000` | idle time after which an MCP session expires |
  | `:max_sessions` | `10_000` | open MCP sessions (503 above) |
  | `:max_sessions_per_client` | `1000` | open MCP sessions per token (or per address without tokens); 503 with `Retry-After` above |
  | `:sse_keepalive_ms` | `15_000` | interval of SSE keep-alive comments |
  | `:tools_page_size` | `100` | tools per `tools/list` page |
  | `:public_url` | derived | base URL used in links handed to clients |
  | `:api` | `SwarmService.RuvSwarm` | module implementing the public API |
  | `:command_allowlist` | app env | commands (and arguments) clients may start as agents, see `SwarmService.Executor.Allowlist` |
  | `:allow_claude` | `false` | whether clients may spawn Claude Code agents (`agent_spawn` with `executor: "claude"`) |
  """

  require Logger

  @loopback_hosts ["localhost", "127.0.0.1", "::1", "[::1]"]

  @defaults [
    enabled: true,
    ip: {127, 0, 0, 1},
    port: 4102,
    tokens: [],
    allowed_hosts: :default,
    allowed_origins: :default,
    rate_limit: 500,
    rate_burst: nil,
    max_body_bytes: 1_048_576,
    max_sse_streams: 1000,
    max_connections: 2048,
    max_connections_per_address: 256,
    header_timeout_ms: 5_000,
    send_timeout_ms: 10_000,
    max_stream_queue_bytes: 1_048_576,
    drain_timeout_ms: 10_000,
    request_timeout_ms: 30_000,
    body_timeout_ms: 15_000,
    session_ttl_ms: 3_600_000,
    max_sessions: 10_000,
    max_sessions_per_client: 1000,
    sse_keepalive_ms: 15_000,
    tools_page_size: 100,
    public_url: nil,
    api: SwarmService.RuvSwarm,
    command_allowlist: nil,
    allow_claude: false,
    name: InterfaceService
  ]

  @enforce_keys [:ip, :port]
  defstruct Keyword.keys(@defaults) ++ [:tabs, :started_at]

  @type t :: %__MODULE__{}

  @doc "The option names and their defaults."
  @spec defaults() :: keyword()
  def defaults, do: @defaults

  @doc """
  Builds a validated configuration from the application environment merged
  with `overrides`. Raises `ArgumentError` on the first invalid option.
  """
  @spec new!(keyword()) :: t()
  def new!(overrides \\ []) do
    unless Keyword.keyword?(overrides),
      do: raise(ArgumentError, "InterfaceService options must be a keyword list")

    env = Application.get_env(:swarm_service, InterfaceService, [])
    opts = @defaults |> Keyword.merge(env) |> Keyword.merge(overrides)

    case Enum.find(Keyword.keys(opts), &(not Keyword.has_key?(@defaults, &1))) do
      nil -> :ok
      key -> raise ArgumentError, "unknown InterfaceService option #{inspect(key)}"
    end

    ip = ip!(opts[:ip])
    port = int!(:port, opts[:port], 0, 65_535)
    tokens = tokens!(opts[:tokens])

    if tokens == [] and not loopback?(ip) do
      raise ArgumentError,
            "InterfaceService listens on #{:inet.ntoa(ip)}, which is not loopback: " <>
              "set bearer tokens (RUV_SWARM_TOKENS or the :tokens option) first"
    end

    rate = int!(:rate_limit, opts[:rate_limit], 0, 10_000_000)
    burst = if opts[:rate_burst], do: opts[:rate_burst], else: max(rate * 2, 1)

    %__MODULE__{
      enabled: bool!(:enabled, opts[:enabled]),
      ip: ip,
      port: port,
      tokens: tokens,
      allowed_hosts: hosts!(opts[:allowed_hosts], ip),
      allowed_origins: origins!(opts[:allowed_origins]),
      rate_limit: rate,
      rate_burst: int!(:rate_burst, burst, 1, 100_000_000),
      max_body_bytes: int!(:max_body_bytes, opts[:max_body_bytes], 1, 1_073_741_824),
      max_sse_streams: int!(:max_sse_streams, opts[:max_sse_streams], 0, 1_000_000),
      max_connections: int!(:max_connections, opts[:max_connections], 1, 1_000_000),
      max_connections_per_address:
        int!(:max_connections_per_address, opts[:max_connections_per_address], 1, 1_000_000),
      header_timeout_ms: int!(:header_timeout_ms, opts[:header_timeout_ms], 100, 600_000),
      send_timeout_ms: int!(:send_timeout_ms, opts[:send_timeout_ms], 100, 600_000),
      max_stream_queue_bytes:
        int!(:max_stream_queue_bytes, opts[:max_stream_queue_bytes], 1024, 1_073_741_824),
      drain_timeout_ms: int!(:drain_timeout_ms, opts[:drain_timeout_ms], 0, 600_000),
      request_timeout_ms: int!(:request_timeout_ms, opts[:request_timeout_ms], 1, 86_400_000),
      body_timeout_ms: int!(:body_timeout_ms, opts[:body_timeout_ms], 1, 3_600_000),
      session_ttl_ms: int!(:session_ttl_ms, opts[:session_ttl_ms], 1, 2_592_000_000),
      max_sessions: int!(:max_sessions, opts[:max_sessions], 1, 10_000_000),
      max_sessions_per_client:
        int!(:max_sessions_per_client, opts[:max_sessions_per_client], 1, 10_000_000),
      sse_keepalive_ms: int!(:sse_keepalive_ms, opts[:sse_keepalive_ms], 10, 3_600_000),
      tools_page_size: int!(:tools_page_size, opts[:tools_page_size], 1, 1000),
      public_url: public_url!(opts[:public_url]),
      api: module!(:api, opts[:api]),
      command_allowlist:
        allowlist!(
          opts[:command_allowlist] || Application.get_env(:swarm_service, :command_allowlist, [])
        ),
      allow_claude: bool!(:allow_claude, opts[:allow_claude]),
      name: opts[:name]
    }
  end

  @doc "True when `ip` is a loopback address."
  @spec loopback?(:inet.ip_address()) :: boolean()
  def loopback?({127, _, _, _}), do: true
  def loopback?({0, 0, 0, 0, 0, 0, 0, 1}), do: true
  def loopback?(_), do: false

  @doc "Host names that are always acceptable for a loopback listener."
  @spec loopback_hosts() :: [String.t()]
  def loopback_hosts, do: @loopback_hosts

  defp ip!(ip) when is_tuple(ip) do
    case :inet.ntoa(ip) do
      {:error, _} -> bad!(:ip, ip, "an IPv4 or IPv6 address")
      _ -> ip
    end
  end

  defp ip!(ip) when is_binary(ip) do
    case :inet.parse_address(String.to_charlist(ip)) do
      {:ok, tuple} -> tuple
      {:error, _} -> bad!(:ip, ip, "an IPv4 or IPv6 address such as \"127.0.0.1\"")
    end
  end

  defp ip!(ip), do: bad!(:ip, ip, "an IPv4 or IPv6 address")

  defp int!(_key, value, min, max) when is_integer(value) and value >= min and value <= max,
    do: value

  defp int!(key, value, min, max), do: bad!(key, value, "an integer in #{min}..#{max}")

  defp bool!(_key, value) when is_boolean(value), do: value
  defp bool!(key, value), do: bad!(key, value, "true or false")

  # Kept as SHA-256 digests: hashed once here rather than per request, and
  # a crash report or :sys.get_state/1 shows no token.
  defp tokens!(tokens) when is_list(tokens) do
    Enum.map(tokens, fn
      t when is_binary(t) and byte_size(t) >= 8 -> :crypto.hash(:sha256, t)
      t -> bad!(:tokens, t, "strings of at least 8 characters")
    end)
  end

  defp tokens!(nil), do: []
  defp tokens!(other), do: bad!(:tokens, other, "a list of strings")

  defp hosts!(:any, _ip), do: :any

  defp hosts!(:default, ip) do
    Enum.uniq(@loopback_hosts ++ [ip |> :inet.ntoa() |> to_string()])
  end

  defp hosts!(list, ip) when is_list(list) do
    extra =
      Enum.map(list, fn
        h when is_binary(h) and h != "" -> String.downcase(h)
        h -> bad!(:allowed_hosts, h, "host names as strings")
      end)

    Enum.uniq(hosts!(:default, ip) ++ extra)
  end

  defp hosts!(other, _ip), do: bad!(:allowed_hosts, other, ":any or a list of host names")

  defp origins!(:any), do: :any
  defp origins!(:default), do: :loopback

  defp origins!(list) when is_list(list) do
    Enum.map(list, fn
      o when is_binary(o) and o != "" -> o |> String.downcase() |> String.trim_trailing("/")
      o -> bad!(:allowed_origins, o, "origins such as \"https://example.com\"")
    end)
  end

  defp origins!(other), do: bad!(:allowed_origins, other, ":any or a list of origins")

  defp public_url!(nil), do: nil

  defp public_url!("http" <> _ = url), do: String.trim_trailing(url, "/")

  defp public_url!(other), do: bad!(:public_url, other, "an http(s) URL")

  # Checked here so a wrong module fails the start, not every tool call.
  defp module!(key, mod) when is_atom(mod) and mod not in [nil, true, false] do
    if Code.ensure_loaded?(mod), do: mod, else: bad!(key, mod, "a module that can be loaded")
  end

  defp module!(key, other), do: bad!(key, other, "a module")

  defp allowlist!(list) when is_list(list) do
    entries =
      Enum.map(list, fn c ->
        case SwarmService.Executor.Allowlist.parse(c) do
          {:ok, _} -> c
          {:error, why} -> bad!(:command_allowlist, c, "allow-list entries (#{why})")
        end
      end)

    for warning <- SwarmService.Executor.Allowlist.warnings(entries), do: Logger.warning(warning)
    entries
  end

  defp allowlist!(other), do: bad!(:command_allowlist, other, "a list of executable names")

  defp bad!(key, value, expected) do
    raise ArgumentError,
          "invalid InterfaceService option #{inspect(key)}: got #{inspect(value)}, expected #{expected}"
  end
end
