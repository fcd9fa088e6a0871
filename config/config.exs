import Config

config :logger, :console, format: "$time [$level] $message $metadata\n", metadata: [:swarm_id]

import_config "#{config_env()}.exs"
