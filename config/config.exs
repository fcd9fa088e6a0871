import Config

config :logger, :console, format: "$time [$level] $message $metadata\n", metadata: [:swarm_id]

# Engine memory quotas in bytes (SwarmService.Quotas): each swarm's default
# and the node's over all swarms. Overridden by RUV_SWARM_SWARM_MEMORY_BYTES
# and RUV_SWARM_NODE_MEMORY_BYTES (config/runtime.exs).
config :swarm_service, :memory_quotas,
  swarm_bytes: 1_073_741_824,
  node_bytes: 8_589_934_592

import_config "#{config_env()}.exs"
