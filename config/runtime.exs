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

parse_string = fn _name, value -> String.trim(value) end
parse_strings = fn _name, value -> parse_list.(value) end

# choices: [{"text", value}] in the order the error message lists them.
parse_choice = fn choices ->
  fn name, value ->
    case List.keyfind(choices, value |> String.trim() |> String.downcase(), 0) do
      {_, chosen} ->
        chosen

      nil ->
        raise "#{name} must be #{Enum.map_join(choices, " or ", &elem(&1, 0))}, got #{inspect(value)}"
    end
  end
end

# [{key, parsed}] for each variable that is set, parsed by its parser.
from_env = fn specs ->
  for {var, key, parse} <- specs, value = System.get_env(var), value != nil do
    {key, parse.(var, value)}
  end
end

# Tests start their own gateways on ephemeral ports, so the application's
# listener is off there unless RUV_SWARM_GATEWAY says otherwise.
default_enabled = if config_env() == :test, do: "off", else: "on"

parse_hosts = fn name, value ->
  if String.trim(value) == "*", do: :any, else: parse_strings.(name, value)
end

gateway =
  [
    enabled:
      parse_bool.("RUV_SWARM_GATEWAY", System.get_env("RUV_SWARM_GATEWAY", default_enabled))
  ] ++
    from_env.([
      {"RUV_SWARM_IP", :ip, parse_string},
      {"RUV_SWARM_PORT", :port, parse_int},
      {"RUV_SWARM_TOKENS", :tokens, parse_strings},
      {"RUV_SWARM_ALLOWED_HOSTS", :allowed_hosts, parse_hosts},
      {"RUV_SWARM_ALLOWED_ORIGINS", :allowed_origins, parse_hosts},
      {"RUV_SWARM_RATE_LIMIT", :rate_limit, parse_int},
      {"RUV_SWARM_RATE_BURST", :rate_burst, parse_int},
      {"RUV_SWARM_MAX_BODY_BYTES", :max_body_bytes, parse_int},
      {"RUV_SWARM_MAX_SSE_STREAMS", :max_sse_streams, parse_int},
      {"RUV_SWARM_MAX_CONNECTIONS", :max_connections, parse_int},
      {"RUV_SWARM_MAX_CONNECTIONS_PER_ADDRESS", :max_connections_per_address, parse_int},
      {"RUV_SWARM_HEADER_TIMEOUT_MS", :header_timeout_ms, parse_int},
      {"RUV_SWARM_SEND_TIMEOUT_MS", :send_timeout_ms, parse_int},
      {"RUV_SWARM_MAX_STREAM_QUEUE_BYTES", :max_stream_queue_bytes, parse_int},
      {"RUV_SWARM_DRAIN_TIMEOUT_MS", :drain_timeout_ms, parse_int},
      {"RUV_SWARM_MAX_SESSIONS", :max_sessions, parse_int},
      {"RUV_SWARM_MAX_SESSIONS_PER_CLIENT", :max_sessions_per_client, parse_int},
      {"RUV_SWARM_REQUEST_TIMEOUT_MS", :request_timeout_ms, parse_int},
      {"RUV_SWARM_SESSION_TTL_MS", :session_ttl_ms, parse_int},
      {"RUV_SWARM_PUBLIC_URL", :public_url, parse_string},
      {"RUV_SWARM_ALLOW_CLAUDE", :allow_claude, parse_bool}
    ])

config :swarm_service, InterfaceService, gateway

# Comma-separated entries, each "command [fixed args] [*]": `tr` (no
# arguments), `tr a-z A-Z` (exactly these), `grep -F *` (this prefix, then
# anything). See SwarmService.Executor.Allowlist.
if allow = System.get_env("RUV_SWARM_COMMAND_ALLOWLIST") do
  config :swarm_service, :command_allowlist, parse_list.(allow)
end

# Cluster settings (see SwarmService.Cluster and SwarmService.Cluster.Knowledge,
# which validate them when the cluster starts). Node names become atoms here
# with String.to_atom: they are operator-supplied configuration, read once at
# boot, never request input, so they cannot flood the atom table.
parse_nodes = fn _name, value -> value |> parse_list.() |> Enum.map(&String.to_atom/1) end

cluster =
  from_env.([
    {"RUV_SWARM_CLUSTER", :adapter, parse_choice.([{"otp", :otp}, {"local", :local}])},
    {"RUV_SWARM_SEEDS", :seeds, parse_nodes},
    {"RUV_SWARM_MEMBERS", :members, parse_nodes},
    {"RUV_SWARM_COOKIE", :cookie, parse_string},
    {"RUV_SWARM_NET_TICKTIME", :net_ticktime, parse_int}
  ])

if cluster != [], do: config(:swarm_service, SwarmService.Cluster, cluster)

if ms = System.get_env("RUV_SWARM_ANTI_ENTROPY_MS") do
  config :swarm_service, SwarmService.Cluster.Knowledge,
    anti_entropy_ms: parse_int.("RUV_SWARM_ANTI_ENTROPY_MS", ms)
end

# Engine memory quotas in bytes (see SwarmService.Quotas, which validates
# them at boot): the default quota of each swarm and the node's over all.
quotas =
  from_env.([
    {"RUV_SWARM_SWARM_MEMORY_BYTES", :swarm_bytes, parse_int},
    {"RUV_SWARM_NODE_MEMORY_BYTES", :node_bytes, parse_int}
  ])

if quotas != [] do
  config :swarm_service,
         :memory_quotas,
         Keyword.merge(Application.get_env(:swarm_service, :memory_quotas, []), quotas)
end

# The Claude Code CLI run by {:claude, opts} agents (default: claude on PATH).
if claude = System.get_env("RUV_SWARM_CLAUDE") do
  config :swarm_service, :claude_binary, claude
end

# Swarm caps (see SwarmService.SwarmCaps): per node and per client.
swarm_caps =
  from_env.([
    {"RUV_SWARM_MAX_SWARMS", :max_swarms, parse_int},
    {"RUV_SWARM_MAX_SWARMS_PER_CLIENT", :max_swarms_per_client, parse_int}
  ])

if swarm_caps != [], do: config(:swarm_service, SwarmService.SwarmCaps, swarm_caps)
