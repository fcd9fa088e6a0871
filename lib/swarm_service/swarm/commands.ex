defmodule SwarmService.Swarm.Commands do
  @moduledoc false
  # The swarm commands as they run on a swarm's home node (the Raft
  # leader of a durable swarm, the creating node of an in-memory one; see
  # SwarmService.Swarm.Locator), with arguments already validated by
  # SwarmService.RuvSwarm. Reads answer from the engine here as it is.
  #
  # A durable swarm's mutations go through its Raft log (engine/3): every
  # member's engine applies them (SwarmService.Swarm.Machine) once they are
  # on disk on a majority, and the answer is the leader's. An in-memory
  # swarm's are applied here directly; with configured members they need
  # quorum.
  #
  # Pids given here may belong to other nodes: the engine only addresses
  # local pids, so those are registered through a Cluster.Relay (by each
  # member as it applies the log, for a durable swarm).
  alias SwarmService.{Cluster, Coordination, Executor, Native, Raft, Swarm}
  alias SwarmService.Cluster.Relay
  alias SwarmService.Ids
  alias SwarmService.Swarm.{AgentHost, Locator}

  import Bitwise, only: [<<<: 2]

  # ---- swarms ---------------------------------------------------------------

  # memory_quota: bytes, or nil for the node's default. storage: :disk
  # (the default) or :memory. replicas: how many Ra members a durable
  # swarm has (fewer when fewer members are ready). max_cost_micros: the
  # cost budget, or nil for none; set by the swarm's first command after
  # its creation (a logged one for a durable swarm).
  def create_swarm(
        name,
        topology,
        strategy,
        max_agents,
        executor,
        memory_quota \\ nil,
        storage \\ nil,
        max_cost_micros \\ nil,
        replicas \\ 3
      ) do
    storage = storage || :disk
    args = [name, topology, strategy, max_agents, memory_quota, executor, replicas]

    with :ok <- if(storage == :memory, do: quorum(), else: :ok),
         {:ok, id} <- new_engine(storage, args),
         :ok <- initial_budget(id, max_cost_micros) do
      {:ok, id}
    end
  end

  defp new_engine(:memory, [name, topology, strategy, max_agents, quota, executor, _]) do
    with {:ok, id} <- Native.swarm_create(name, topology, strategy, max_agents, quota) do
      case Swarm.start(id, executor: executor) do
        {:ok, _} ->
          Locator.put(id, {:memory, node()})
          {:ok, id}

        error ->
          Native.swarm_destroy(id)
          error
      end
    end
  end

  # The seed of the engine's randomness (retry jitter) is chosen here, once:
  # inside the log every member and every replay must draw the same numbers.
  # Each member starts the swarm's processes (SwarmService.Raft.join/1).
  defp new_engine(:disk, [name, topology, strategy, max_agents, quota, executor, replicas]) do
    id = Native.new_swarm_id()

    create = %{
      name: name,
      topology: topology,
      strategy: strategy,
      max_agents: max_agents,
      # The default resolved now: it may be another one by the next replay.
      memory_quota: quota || elem(Native.engine_node_room(), 2),
      seed: :rand.uniform(1 <<< 62)
    }

    with {:ok, nodes} <- Raft.create(id, create, executor, replicas) do
      Locator.put(id, {:raft, nodes})
      {:ok, id}
    end
  end

  defp initial_budget(_id, nil), do: :ok

  # (At the swarm's leader, which need not be this node.)
  defp initial_budget(id, micros) do
    case Swarm.Home.run(id, :set_budget, [id, micros]) do
      :ok ->
        :ok

      error ->
        Swarm.Home.run(id, :destroy_swarm, [id])
        error
    end
  end

  @doc "Sets (nil: lifts) a swarm's cost budget, in micro-dollars."
  def set_budget(swarm_id, max_cost_micros) do
    with :ok <- quorum(swarm_id),
         do: engine(swarm_id, :swarm_set_budget, [swarm_id, max_cost_micros])
  end

  defp drop_engine(id) do
    if Raft.server(id), do: Raft.destroy(id), else: drop_memory(id)
  end

  defp drop_memory(id) do
    with :ok <- Native.swarm_destroy(id) do
      Swarm.stop(id)
      Locator.forget(id)
    end
  end

  def destroy_swarm(id) do
    with :ok <- quorum(id), do: drop_engine(id)
  end

  def swarm_status(id), do: Native.swarm_status(id)

  @doc """
  A read answered after a no-op went through the swarm's log from here:
  it sees every write acknowledged before it began (an in-memory swarm's
  one node is its truth already).
  """
  def consistent(id, fun, args) when fun in [:swarm_status, :task_get, :memory_get] do
    barrier =
      case Raft.server(Ids.swarm_of(id)) do
        nil -> :ok
        server -> Raft.command(server, :noop)
      end

    with :ok <- barrier, do: Kernel.apply(__MODULE__, fun, args)
  end

  @doc "Swarms homed on this node (durable ones where it leads, or no leader is known)."
  def local_swarms do
    for s <- Native.swarm_list(), Locator.home(s.id) == :here, do: s
  end

  # ---- agents ---------------------------------------------------------------

  def add_agent(swarm_id, opts, executor, placement) do
    executor = executor || Swarm.Server.default_executor(swarm_id)

    opts =
      Map.merge(opts, %{
        executor: executor,
        dispatch: if(executor == :external, do: :pull, else: :push)
      })

    with :ok <- quorum(swarm_id),
         {:ok, place} <- placement_node(placement),
         :ok <- executor_available(executor, place),
         opts = Map.put(opts, :node, Atom.to_string(place)),
         {:ok, agent_id} <- engine(swarm_id, :agent_add, [swarm_id, opts]) do
      case start_agent_process(swarm_id, agent_id, executor, place) do
        :ok ->
          {:ok, agent_id}

        {:error, reason} ->
          remove_agent(agent_id)

          {:error,
           {:invalid_argument, "agent process failed to start: #{inspect(reason, limit: 5)}"}}
      end
    end
  end

  defp placement_node(nil), do: {:ok, node()}

  defp placement_node(wanted) do
    ready = Locator.ready_members()

    case Enum.find(ready, &(&1 == wanted or Atom.to_string(&1) == wanted)) do
      nil -> {:error, {:invalid_argument, "node #{wanted} is not a live member of the cluster"}}
      found -> {:ok, found}
    end
  end

  # An agent whose node cannot load its executor module would fail every
  # unit it is given (each then retried elsewhere): refused up front. The
  # caller checked its own node; the agent runs on `place`.
  @executor_check_ms 5_000

  defp executor_available({:module, mod, _arg}, place) when place == node() do
    if Executor.loadable?(mod), do: :ok, else: {:error, {:executor_unavailable, place, mod}}
  end

  defp executor_available({:module, mod, _arg}, place) do
    case Locator.safe_call(place, :loadable?, [mod], Executor, @executor_check_ms) do
      true -> :ok
      # false, or no answer in time: it cannot be shown to run there.
      _ -> {:error, {:executor_unavailable, place, mod}}
    end
  end

  defp executor_available(_executor, _place), do: :ok

  defp start_agent_process(_swarm_id, _agent_id, :external, _place), do: :ok

  defp start_agent_process(swarm_id, agent_id, executor, place) when place == node(),
    do: started(host_agent(swarm_id, agent_id, executor))

  defp start_agent_process(swarm_id, agent_id, executor, place),
    do:
      started(
        Locator.safe_call(place, :host_agent, [swarm_id, agent_id, executor], __MODULE__, 10_000)
      )

  @doc false
  # Where an agent placed on this node runs: under the swarm's own agent
  # supervisor when the swarm has one here (it is homed or a Raft member
  # here, and rebuilds its agents when it restarts), else under AgentHost.
  def host_agent(swarm_id, agent_id, executor) do
    if GenServer.whereis(Swarm.via({:agents, swarm_id})),
      do: Swarm.AgentSupervisor.start_agent(swarm_id, agent_id, executor),
      else: AgentHost.start_agent(swarm_id, agent_id, executor)
  end

  defp started({:ok, _}), do: :ok
  # Already started by the agent supervisor's rebuild, which raced us.
  defp started({:error, {:already_started, _}}), do: :ok
  # The agent process gave up at init (it could not attach to the engine).
  defp started(:ignore), do: {:error, :not_attached}
  defp started({:error, _} = error), do: error

  def remove_agent(agent_id) do
    swarm_id = Ids.swarm_of(agent_id)

    with :ok <- quorum(swarm_id),
         {:ok, pid} <- engine(swarm_id, :agent_remove, [agent_id]) do
      # The engine holds the process (or the relay of a remote one): ending
      # it ends the agent wherever it runs.
      if is_pid(pid), do: stop_agent_process(swarm_id, pid)
      :ok
    end
  end

  defp stop_agent_process(swarm_id, pid) do
    case Relay.target(pid) do
      ^pid -> unhost_agent(swarm_id, pid)
      remote -> Locator.safe_call(node(remote), :unhost_agent, [swarm_id, remote], __MODULE__)
    end
  end

  @doc false
  # Ends an agent process of this node, under whichever supervisor
  # host_agent/3 started it.
  def unhost_agent(swarm_id, pid) do
    with true <- GenServer.whereis(Swarm.via({:agents, swarm_id})) != nil,
         :ok <- Swarm.AgentSupervisor.stop_agent(swarm_id, pid) do
      :ok
    else
      _not_there -> AgentHost.stop_agent(pid)
    end
  end

  @doc "An agent process (anywhere) announces itself; its work is sent to it from now on."
  def attach_agent(swarm_id, agent_id, pid) do
    case Raft.server(swarm_id) do
      # The swarm's leader watches the process (SwarmService.Swarm.Machine).
      nil ->
        local = Relay.local(pid)

        with :ok <- Native.agent_attach(agent_id, local) do
          Swarm.Server.watch(swarm_id, agent_id, local)
          :ok
        end

      server ->
        Raft.command(server, {:attach, agent_id, pid})
    end
  end

  def list_agents(swarm_id), do: Native.agent_list(swarm_id)
  def list_agents_page(swarm_id, cursor, limit), do: Native.agent_page(swarm_id, cursor, limit)
  def agent_get(agent_id), do: Native.agent_get(agent_id)
  def neighbours(agent_id), do: Native.agent_neighbours(agent_id)

  # ---- tasks ------------------------------------------------------------------

  def submit(swarm_id, task, notify) do
    with :ok <- quorum(swarm_id), do: engine(swarm_id, :task_submit, [swarm_id, task, notify])
  end

  def task_get(task_id, with_results), do: Native.task_get(task_id, with_results)

  def cancel(task_id) do
    swarm_id = Ids.swarm_of(task_id)
    with :ok <- quorum(swarm_id), do: engine(swarm_id, :task_cancel, [task_id])
  end

  # A waiter of a durable swarm is in its log: it hears of the outcome
  # from whichever member leads by then.
  def watch(task_id, pid), do: engine(Ids.swarm_of(task_id), :task_watch, [task_id, pid])
  def unwatch(task_id, pid), do: engine(Ids.swarm_of(task_id), :task_unwatch, [task_id, pid])

  def claim(agent_id, lease_ms) do
    swarm_id = Ids.swarm_of(agent_id)
    with :ok <- quorum(swarm_id), do: engine(swarm_id, :work_claim, [agent_id, lease_ms])
  end

  @doc "An agent names the worker of a slot; only a worker on this node can be sent to."
  def attach_worker(agent_id, slot, pid, work_id) when node(pid) == node(),
    do: Native.agent_worker(agent_id, slot, pid, work_id)

  def attach_worker(_agent_id, _slot, _pid, _work_id), do: :ignored

  def worker_lost(agent_id, slot, reason),
    do: engine(Ids.swarm_of(agent_id), :agent_worker_lost, [agent_id, slot, reason])

  def progress(work_id, agent_id, progress),
    do: engine(Ids.swarm_of(work_id), :work_progress, [work_id, agent_id, progress])

  def progress(work_id, agent_id, progress, message),
    do: engine(Ids.swarm_of(work_id), :work_progress, [work_id, agent_id, progress, message])

  def complete(work_id, agent_id, result), do: complete(work_id, agent_id, result, nil)

  # usage: the engine's form (Executor.native_usage/1) or nil: what the
  # attempt cost, booked to its agent.
  def complete(work_id, agent_id, result, usage) do
    swarm_id = Ids.swarm_of(work_id)

    with :ok <- quorum(swarm_id),
         do: engine(swarm_id, :work_complete, with_usage([work_id, agent_id, result], usage))
  end

  # Without usage the command is the one logs always held.
  defp with_usage(args, nil), do: args
  defp with_usage(args, usage), do: args ++ [usage]

  def fail(work_id, agent_id, reason, timed_out),
    do: fail(work_id, agent_id, reason, timed_out, nil)

  def fail(work_id, agent_id, reason, timed_out, usage) do
    swarm_id = Ids.swarm_of(work_id)
    args = with_usage([work_id, agent_id, reason, timed_out], usage)
    with :ok <- quorum(swarm_id), do: engine(swarm_id, :work_fail, args)
  end

  # ---- coordination -------------------------------------------------------------

  def coordinate(swarm_id, message, from) do
    with {:ok, hops} <- engine(swarm_id, :swarm_coordinate, [swarm_id, from]) do
      Coordination.start(swarm_id, message, hops)
    end
  end

  @doc "Like coordinate/3, answering how many agents on which node the message reaches."
  def coordinate_across(swarm_id, message, from) do
    with {:ok, agents} <- Native.agent_list(swarm_id),
         :ok <- coordinate(swarm_id, message, from) do
      {:ok, %{agents: length(agents), nodes: Enum.frequencies_by(agents, & &1.node)}}
    end
  end

  def coordination_forward(delivery, agent_id), do: Coordination.forward(delivery, agent_id)

  # ---- memory -------------------------------------------------------------------

  def memory_store(swarm_id, key, value, opts) do
    with :ok <- quorum(swarm_id),
         do: engine(swarm_id, :memory_store, [swarm_id, key, value, opts])
  end

  def memory_get(swarm_id, key, opts), do: Native.memory_get(swarm_id, key, opts)

  def memory_delete(swarm_id, key, opts) do
    with :ok <- quorum(swarm_id), do: engine(swarm_id, :memory_delete, [swarm_id, key, opts])
  end

  def memory_search(swarm_id, query), do: Native.memory_search(swarm_id, query)

  # ---- discoveries and events ----------------------------------------------------

  def share_discovery(swarm_id, discovery) do
    with :ok <- quorum(swarm_id),
         do: engine(swarm_id, :discovery_share, [swarm_id, discovery])
  end

  def subscribe_discoveries(swarm_id, pid, filter),
    do: engine(swarm_id, :discovery_subscribe, [swarm_id, pid, filter])

  def recent_discoveries(swarm_id, filter, limit),
    do: Native.discovery_recent(swarm_id, filter, limit)

  def subscribe(swarm_id, pid), do: engine(swarm_id, :swarm_subscribe, [swarm_id, pid])
  def unsubscribe(swarm_id, pid), do: engine(swarm_id, :swarm_unsubscribe, [swarm_id, pid])

  # ---- helpers ---------------------------------------------------------------------

  @doc "The swarm's timers: what is due now; answers `{:ok, ms_to_next | nil}`."
  def tick(swarm_id), do: engine(swarm_id, :swarm_tick, [swarm_id])

  # One engine mutation: through the log of a durable swarm (its members
  # give remote pids their relays as they apply it), directly for an
  # in-memory one.
  defp engine(swarm_id, fun, args) do
    case Raft.server(swarm_id) do
      nil ->
        Kernel.apply(Native, fun, Enum.map(args, &local_pid/1))

      server ->
        with :ok <- node_room(fun, args), do: Raft.command(server, {:native, fun, args})
    end
  end

  # The node's memory quota, for a durable swarm's write: checked before
  # the write enters the log, since the engine applying the log cannot (the
  # node's other swarms are not the same on every member, nor on a replay).
  @growing [:task_submit, :memory_store, :discovery_share, :work_complete]

  defp node_room(fun, args) when fun in @growing do
    {held, quota, _swarm_default} = Native.engine_node_room()

    if held + :erlang.external_size(args) > quota,
      do: {:error, {:quota_exceeded, "node memory", quota}},
      else: :ok
  end

  defp node_room(_fun, _args), do: :ok

  defp local_pid(pid) when is_pid(pid), do: Relay.local(pid)
  defp local_pid(other), do: other

  # An in-memory swarm's writes need the configured members' majority; a
  # durable swarm's need a majority of its Raft members, which Raft
  # itself requires (SwarmService.Raft.command/2 answers :no_quorum).
  defp quorum(swarm_id) do
    if Raft.server(swarm_id), do: :ok, else: quorum()
  end

  defp quorum do
    if Cluster.quorum?(), do: :ok, else: {:error, :no_quorum}
  end
end
