defmodule SwarmService.Application do
  @moduledoc false
  # Minimal application so the command line has something to start; the
  # engine and gateway add their children here.
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      # First, so it is stopped last: the PID file outlives everything else.
      SwarmService.CLI.Runtime,
      SwarmService.HealthEndpoint
    ]

    Supervisor.start_link(children, strategy: :rest_for_one, name: SwarmService.Supervisor)
  end
end
