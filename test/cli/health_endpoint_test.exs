Code.require_file("cli_helpers.exs", __DIR__)

defmodule SwarmService.HealthEndpointTest do
  # Starts a named listener, so not async.
  use ExUnit.Case, async: false

  alias SwarmService.CLI.HealthClient
  alias SwarmService.HealthEndpoint

  test "without a configured port it starts no listener" do
    assert {:ok, sup} = HealthEndpoint.start_link(name: :health_off, port: nil)
    assert Supervisor.which_children(sup) == []
    assert HealthEndpoint.port() == nil
    Supervisor.stop(sup)
  end

  test "serves /health as JSON on its own port, and nothing else" do
    {:ok, sup} = HealthEndpoint.start_link(name: :health_on, port: 0)
    port = HealthEndpoint.port()
    assert is_integer(port)

    assert {:ok, code, report} = HealthClient.get(port)
    assert code in [200, 503]
    assert report["pid"] == String.to_integer(System.pid())
    assert report["node"] == Atom.to_string(node())
    assert is_integer(report["uptime_ms"]) and is_integer(report["memory_bytes"])
    assert report["status"] in ["ok", "degraded"]
    assert Map.has_key?(report, "swarms") and Map.has_key?(report, "tasks")

    {:ok, {{_, 404, _}, _, _}} = :httpc.request(~c"http://127.0.0.1:#{port}/other")

    {:ok, {{_, 405, _}, headers, _}} =
      :httpc.request(:post, {~c"http://127.0.0.1:#{port}/health", [], ~c"text/plain", ""}, [], [])

    assert {~c"allow", ~c"GET, HEAD"} in headers
    Supervisor.stop(sup)
  end

  test "counts come from the engine" do
    {:ok, _} = Application.ensure_all_started(:swarm_service)
    {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm(%{topology: :mesh, agents: 2})
    report = SwarmService.Health.report()
    assert report.swarms >= 1
    assert report.agents >= 2
    assert %{pending: _, running: _, completed: _, failed: _} = report.tasks
    SwarmService.RuvSwarm.destroy_swarm(swarm)
  end
end
