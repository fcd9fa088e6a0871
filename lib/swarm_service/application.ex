defmodule SwarmService.Application do
  @moduledoc false
  # The tree reads top to bottom as "what depends on what": the log
  # forwarder comes first, then cluster membership and the replicated
  # knowledge that follows it, the registry, the durable swarms' Raft logs
  # (recovered before anything can reach them), every swarm's processes
  # under SwarmSupervisor, the locator (which greets the other members once
  # all that is up), and the gateway (last), which calls into all of them.
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
      # Gateway tokens of Claude agents, scoped to their swarms.
      SwarmService.Executor.ClaudeAccess,
      # Durable swarms: the Ra system, and every swarm's engine rebuilt from
      # its log before anything else can reach it.
      SwarmService.Raft,
      {DynamicSupervisor, name: SwarmService.SwarmSupervisor, strategy: :one_for_one},
      # The processes of the durable swarms just recovered.
      SwarmService.Swarm.Recovery,
      # How many swarms may exist: counted from those just recovered.
      SwarmService.SwarmCaps,
      # Agent processes for swarms homed on other nodes.
      SwarmService.Swarm.AgentHost,
      # Where swarms live; greets the members once this node can host swarms.
      SwarmService.Swarm.Locator,
      SwarmService.HealthEndpoint,
      # One per node, shared by every gateway (tests run several): which
      # swarm each MCP session or REST caller created last.
      SwarmService.McpServers,
      InterfaceService.Tools.Recent,
      InterfaceService,
      # Returns the C heap's freed pages to the OS once code loading
      # settles (boot, first requests): depends on nothing, so it is last.
      SwarmService.Native.HeapTrimmer
    ]

    # Without its engine the node would start and fail every call; the
    # NIF loader has already logged why it could not load. The memory
    # quotas reach the engine before any swarm exists.
    with {:module, _} <- Code.ensure_loaded(SwarmService.Native),
         :ok <- SwarmService.Quotas.apply_config() do
      Supervisor.start_link(children, strategy: :rest_for_one, name: SwarmService.Supervisor)
    else
      {:error, {:invalid_argument, _} = reason} ->
        {:error, {:bad_memory_quotas, reason}}

      {:error, reason} ->
        {:error, {:engine_not_loaded, reason}}
    end
  end
end
