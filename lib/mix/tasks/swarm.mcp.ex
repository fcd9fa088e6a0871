defmodule Mix.Tasks.Swarm.Mcp do
  @shortdoc "Starts, stops and inspects a ruv_swarm node (start|stop|status|restart|tools)"
  @moduledoc """
  Manages a ruv_swarm node from a source tree:

      mix swarm.mcp start [--detached] [--port P] [--health-port 9898] [--name NODE] [--cookie C]
      mix swarm.mcp stop [--timeout MS]
      mix swarm.mcp status        # exit 0 when running, 3 when not
      mix swarm.mcp restart
      mix swarm.mcp tools

  A release ships the same commands as `bin/ruv-swarm`. See
  `SwarmService.CLI` for details, files and exit statuses.
  """
  use Mix.Task

  @impl true
  def run(args) do
    Mix.Task.run("app.config", [])
    halt_with(SwarmService.CLI.main(args))
  end

  @doc false
  # Mix turns `exit({:shutdown, n})` into exit status n.
  @spec halt_with(non_neg_integer()) :: :ok
  def halt_with(0), do: :ok
  def halt_with(code), do: exit({:shutdown, code})
end
