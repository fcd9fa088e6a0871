# Starts the node with its gateway (on the real engine) for the dashboard's
# browser tests, and, when DASHBOARD_AUTH_PORT is set, a second gateway of
# the same node that requires the token DASHBOARD_TOKEN (test/dashboard/run.sh
# sets the ports, the token and the command allow-list).
env = Application.get_env(:swarm_service, InterfaceService, [])
Application.put_env(:swarm_service, InterfaceService, Keyword.merge(env, enabled: true))
{:ok, _} = Application.ensure_all_started(:swarm_service)

if port = System.get_env("DASHBOARD_AUTH_PORT") do
  {:ok, pid} =
    InterfaceService.start_link(
      name: DashboardAuthGateway,
      port: String.to_integer(port),
      tokens: [System.fetch_env!("DASHBOARD_TOKEN")]
    )

  # The script's process ends; the gateway stays.
  Process.unlink(pid)
end

IO.puts("gateway up at #{InterfaceService.url()}")
