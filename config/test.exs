import Config

config :logger, level: :warning

# Each test run keeps its durable swarms in a folder of its own (the test
# helper removes it at exit), never in ~/.ruv-swarm.
config :swarm_service, data_dir: Path.join(System.tmp_dir!(), "ruv-swarm-test-#{System.pid()}")
