Code.require_file("../cli/cli_helpers.exs", __DIR__)

defmodule SwarmService.McpServersCliTest do
  # `mix swarm.mcp start --mcp-config` starts the servers of an mcpServers
  # file with a detached node, and `stop` leaves none of their processes.
  use ExUnit.Case, async: false

  import SwarmService.CLITest.Helpers
  import SwarmService.Test.Eventually
  alias SwarmService.CLI.PidFile
  alias SwarmService.Test.McpPeers

  @moduletag timeout: 180_000
  @tag_var "RUV_MCP_TEST_TAG"

  test "start --mcp-config runs the file's servers; stop ends them all within 2 s" do
    tag = "cli#{System.unique_integer([:positive])}x#{System.os_time()}"
    on_exit(fn -> for p <- McpPeers.tagged(@tag_var, tag), do: System.cmd("kill", ["-9", p]) end)

    with_home(fn home ->
      config = Path.join(home, "servers.json")
      File.mkdir_p!(home)

      entry = McpPeers.tiny(%{"env" => %{@tag_var => tag}})
      File.write!(config, :jiffy.encode(%{"mcpServers" => %{"a" => entry, "b" => entry}}))

      [port, health] = [free_port(), free_port()]
      name = "mcp_cli_#{System.unique_integer([:positive])}@127.0.0.1"

      assert {0, _, _} =
               cli(
                 ~w(start --detached --port #{port} --health-port #{health} --name #{name}) ++
                   ["--mcp-config", config]
               )

      {:ok, %{"pid" => pid}} = PidFile.read(Path.join(home, "mcp-server.pid"))

      try do
        # Both servers' Python processes are running under the node.
        eventually(fn -> length(McpPeers.tagged(@tag_var, tag)) >= 2 end, 60_000)

        assert {0, out, _} = cli(["stop"])
        assert out =~ "stopped (pid #{pid})"
        eventually(fn -> McpPeers.tagged(@tag_var, tag) == [] end, 2_000)
      after
        kill(pid)
      end
    end)
  end
end
