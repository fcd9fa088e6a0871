# Starts the node with the gateway for the independent MCP client test.
# Uses the real engine (SwarmService.RuvSwarm) when it is part of the build;
# otherwise the in-memory stand-in from test/support, and says so.
real = SwarmService.RuvSwarm

api =
  if Code.ensure_loaded?(real) and function_exported?(real, :spawn_swarm, 1) do
    real
  else
    {:ok, _} = Application.ensure_all_started(:jiffy)
    {:ok, _} = InterfaceService.Test.FakeRuvSwarm.start()
    InterfaceService.Test.FakeRuvSwarm
  end

env = Application.get_env(:swarm_service, InterfaceService, [])
Application.put_env(:swarm_service, InterfaceService, Keyword.merge(env, api: api, enabled: true))
{:ok, _} = Application.ensure_all_started(:swarm_service)
IO.puts("gateway up at #{InterfaceService.url()} (engine: #{inspect(api)})")
