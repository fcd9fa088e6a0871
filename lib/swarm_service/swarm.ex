defmodule SwarmService.Swarm do
  @moduledoc false
  # The processes of one swarm: its server (timers, agent monitors) and the
  # supervisor of its agent processes. `:rest_for_one` because agents
  # report to the server. The swarm's state itself lives in the engine, so
  # none of these processes holds anything that a restart could lose.
  use Supervisor

  alias SwarmService.Swarm.Server

  def start(swarm_id, opts) do
    DynamicSupervisor.start_child(SwarmService.SwarmSupervisor, %{
      id: swarm_id,
      start: {__MODULE__, :start_link, [{swarm_id, opts}]},
      type: :supervisor,
      restart: :transient
    })
  end

  def stop(swarm_id) do
    case Registry.lookup(SwarmService.SwarmRegistry, {:swarm, swarm_id}) do
      [{pid, _}] -> DynamicSupervisor.terminate_child(SwarmService.SwarmSupervisor, pid)
      [] -> :ok
    end
  end

  def start_link({swarm_id, opts}) do
    Supervisor.start_link(__MODULE__, {swarm_id, opts}, name: via({:swarm, swarm_id}))
  end

  def via(key), do: {:via, Registry, {SwarmService.SwarmRegistry, key}}

  @impl true
  def init({swarm_id, opts}) do
    children = [
      {Server, {swarm_id, opts}},
      {SwarmService.Swarm.AgentSupervisor, swarm_id}
    ]

    # Its children hold no state (the engine does), so restarting them is
    # always safe: the default intensity (3 in 5 s) stopped the whole swarm,
    # for good, on the fourth kill of its agent supervisor.
    Supervisor.init(children, strategy: :rest_for_one, max_restarts: 1_000, max_seconds: 5)
  end
end
