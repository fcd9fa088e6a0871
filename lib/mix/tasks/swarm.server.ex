defmodule Mix.Tasks.Swarm.Server do
  @shortdoc "Runs a ruv_swarm node in the foreground"
  @moduledoc """
  Runs a ruv_swarm node in the foreground, logging to the terminal, like
  `mix phx.server`:

      mix swarm.server [--port 4102] [--health-port 9898] [--name NODE] [--cookie C]

  The node writes `~/.ruv-swarm/mcp-server.pid` (or `$RUV_SWARM_HOME`), so
  `mix swarm.mcp status` and `mix swarm.mcp stop` work on it from another
  shell. Same as `mix swarm.mcp start`; see `SwarmService.CLI`.
  """
  use Mix.Task

  @impl true
  def run(args) do
    # Compile and load configuration, but let the CLI start the application
    # once it has checked ports and the PID file.
    Mix.Task.run("app.config", [])
    Mix.Tasks.Swarm.Mcp.halt_with(SwarmService.CLI.main(["start" | args]))
  end
end
