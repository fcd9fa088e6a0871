# Starts the node with the gateway (on the real engine) for the dashboard's
# browser tests (test/dashboard/run.sh sets the port, tokens and allow-list).
env = Application.get_env(:swarm_service, InterfaceService, [])
Application.put_env(:swarm_service, InterfaceService, Keyword.merge(env, enabled: true))
{:ok, _} = Application.ensure_all_started(:swarm_service)
IO.puts("gateway up at #{InterfaceService.url()}")
