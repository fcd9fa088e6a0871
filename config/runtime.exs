import Config

# Gateway settings from the environment. This file runs at boot, also inside a
# `mix release`, so it only parses strings; InterfaceService.Config validates
# the values (with errors naming the option) when the gateway starts.
parse_bool = fn name, value ->
  case value |> String.trim() |> String.downcase() do
    v when v in ["1", "on", "true", "yes"] -> true
    v when v in ["0", "off", "false", "no"] -> false
    _ -> raise "#{name} must be on or off, got #{inspect(value)}"
  end
end

parse_int = fn name, value ->
  case Integer.parse(String.trim(value)) do
    {int, ""} -> int
    _ -> raise "#{name} must be an integer, got #{inspect(value)}"
  end
end

parse_list = fn value ->
  value |> String.split(",", trim: true) |> Enum.map(&String.trim/1) |> Enum.reject(&(&1 == ""))
end

# Tests start their own gateways on ephemeral ports, so the application's
# listener is off there unless RUV_SWARM_GATEWAY says otherwise.
default_enabled = if config_env() == :test, do: "off", else: "on"

gateway =
  [
    enabled:
      parse_bool.("RUV_SWARM_GATEWAY", System.get_env("RUV_SWARM_GATEWAY", default_enabled))
  ] ++
    Enum.flat_map(
      [
        {"RUV_SWARM_IP", :ip, :string},
        {"RUV_SWARM_PORT", :port, :int},
        {"RUV_SWARM_TOKENS", :tokens, :list},
        {"RUV_SWARM_ALLOWED_HOSTS", :allowed_hosts, :list_or_any},
        {"RUV_SWARM_ALLOWED_ORIGINS", :allowed_origins, :list_or_any},
        {"RUV_SWARM_RATE_LIMIT", :rate_limit, :int},
        {"RUV_SWARM_RATE_BURST", :rate_burst, :int},
        {"RUV_SWARM_MAX_BODY_BYTES", :max_body_bytes, :int},
        {"RUV_SWARM_MAX_SSE_STREAMS", :max_sse_streams, :int},
        {"RUV_SWARM_MAX_CONNECTIONS", :max_connections, :int},
        {"RUV_SWARM_REQUEST_TIMEOUT_MS", :request_timeout_ms, :int},
        {"RUV_SWARM_SESSION_TTL_MS", :session_ttl_ms, :int},
        {"RUV_SWARM_PUBLIC_URL", :public_url, :string}
      ],
      fn {var, key, kind} ->
        case System.get_env(var) do
          nil ->
            []

          value ->
            parsed =
              case kind do
                :string -> String.trim(value)
                :int -> parse_int.(var, value)
                :list -> parse_list.(value)
                :list_or_any -> if String.trim(value) == "*", do: :any, else: parse_list.(value)
              end

            [{key, parsed}]
        end
      end
    )

config :swarm_service, InterfaceService, gateway

if allow = System.get_env("RUV_SWARM_COMMAND_ALLOWLIST") do
  config :swarm_service, :command_allowlist, parse_list.(allow)
end

# Cluster settings (see SwarmService.Cluster and SwarmService.Cluster.Knowledge,
# which validate them when the cluster starts). Node names become atoms here
# with String.to_atom: they are operator-supplied configuration, read once at
# boot, never request input, so they cannot flood the atom table.
parse_nodes = fn value -> value |> parse_list.() |> Enum.map(&String.to_atom/1) end

cluster =
  Enum.flat_map(
    [
      {"RUV_SWARM_CLUSTER", :adapter, :adapter},
      {"RUV_SWARM_SEEDS", :seeds, :nodes},
      {"RUV_SWARM_MEMBERS", :members, :nodes},
      {"RUV_SWARM_COOKIE", :cookie, :string},
      {"RUV_SWARM_NET_TICKTIME", :net_ticktime, :int}
    ],
    fn {var, key, kind} ->
      case System.get_env(var) do
        nil ->
          []

        value ->
          parsed =
            case kind do
              :nodes ->
                parse_nodes.(value)

              :string ->
                String.trim(value)

              :int ->
                parse_int.(var, value)

              :adapter ->
                case value |> String.trim() |> String.downcase() do
                  "otp" -> :otp
                  "local" -> :local
                  _ -> raise "#{var} must be otp or local, got #{inspect(value)}"
                end
            end

          [{key, parsed}]
      end
    end
  )

if cluster != [], do: config(:swarm_service, SwarmService.Cluster, cluster)

if ms = System.get_env("RUV_SWARM_ANTI_ENTROPY_MS") do
  config :swarm_service, SwarmService.Cluster.Knowledge,
    anti_entropy_ms: parse_int.("RUV_SWARM_ANTI_ENTROPY_MS", ms)
end

# How a swarm's changes reach its backup node: sync (default; a change is
# acknowledged once the backup holds it) or async.
if mode = System.get_env("RUV_SWARM_REPLICATION") do
  replication =
    case mode |> String.trim() |> String.downcase() do
      "sync" -> :sync
      "async" -> :async
      _ -> raise "RUV_SWARM_REPLICATION must be sync or async, got #{inspect(mode)}"
    end

  config :swarm_service, :replication, replication
end
