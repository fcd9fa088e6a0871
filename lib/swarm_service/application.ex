defmodule SwarmService.Application do
  @moduledoc false
  # The tree reads top to bottom as "what depends on what": the log
  # forwarder comes first, then the cluster (membership after distribution
  # is up, then the replicated knowledge that follows membership), the
  # registry, every swarm's processes under SwarmSupervisor, and the
  # gateway (last) calls into all of them.
  # `:rest_for_one`: if something restarts, everything after it does too.
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      # First so it stops last: the PID file outlives the rest of the node.
      SwarmService.CLI.Runtime,
      SwarmService.Native.LogForwarder,
      SwarmService.Cluster,
      SwarmService.Cluster.Knowledge,
      SwarmService.Coordination,
      {Registry, keys: :unique, name: SwarmService.SwarmRegistry},
      {DynamicSupervisor, name: SwarmService.SwarmSupervisor, strategy: :one_for_one},
      SwarmService.HealthEndpoint,
      InterfaceService
    ]

    Supervisor.start_link(children, strategy: :rest_for_one, name: SwarmService.Supervisor)
  end
end
