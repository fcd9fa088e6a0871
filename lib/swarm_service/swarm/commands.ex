defmodule SwarmService.Swarm.Commands do
  @moduledoc false
  # The swarm commands as they run on a swarm's home node, with arguments
  # already validated by SwarmService.RuvSwarm. Each mutation is applied to
  # the engine and then recorded with the backup (Cluster.Replication)
  # before it is acknowledged; a unit result is recorded *before* it is
  # applied, since applying it makes it visible to waiters at once.
  # Mutations need quorum; reads answer from the engine as it is.
  #
  # A durable swarm's mutations go through its Raft log (engine/3): the
  # engine applies them there (SwarmService.Swarm.Machine) once they are on
  # disk. An in-memory swarm's are applied here directly.
  #
  # Pids given here may belong to other nodes: the engine only addresses
  # local pids, so those are registered through a Cluster.Relay.
  alias SwarmService.{Cluster, Coordination, Executor, Native, Raft, Swarm}
  alias SwarmService.Cluster.{Relay, Replication}
  alias SwarmService.Ids
  alias SwarmService.Swarm.AgentHost

  import Bitwise, only: [<<<: 2]

  # ---- swarms ---------------------------------------------------------------

  # memory_quota: bytes, or nil for the node's default. storage: :disk,
  # :memory, or nil for the default (see storage/1). max_cost_micros: the
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
        max_cost_micros \\ nil
      ) do
    with :ok <- quorum(),
         {:ok, storage} <- storage(storage),
         {:ok, id} <-
           new_engine(storage, name, topology, strategy, max_agents, memory_quota, executor),
         :ok <- initial_budget(id, max_cost_micros) do
      case Swarm.start(id, executor: executor) do
        {:ok, _} ->
          Replication.start(id, executor)
          {:ok, id}

        error ->
          drop_engine(id)
          error
      end
    end
  end

  @no_disk_in_cluster "storage: :disk is not available on a node in a cluster yet: " <>
                        "there a swarm is kept in memory and copied to a backup node"

  # A node on its own keeps its swarms on disk (SwarmService.Raft). A node
  # in a cluster replicates them with the home/backup protocol
  # (Cluster.Replication), whose failover copies are not Raft logs, so
  # there a swarm is in memory (with its backup) and :disk is refused.
  defp storage(wanted) do
    case {wanted, clustered?()} do
      {nil, false} -> {:ok, :disk}
      {nil, true} -> {:ok, :memory}
      {:disk, true} -> {:error, {:invalid_argument, @no_disk_in_cluster}}
      {storage, _} -> {:ok, storage}
    end
  end

  defp clustered? do
    Cluster.members() != [node()] or Cluster.configured_members() not in [[], [node()]]
  end

  defp new_engine(:memory, name, topology, strategy, max_agents, quota, _executor),
    do: Native.swarm_create(name, topology, strategy, max_agents, quota)

  # The seed of the engine's randomness (retry jitter) is chosen here, once:
  # inside the log every member and every replay must draw the same numbers.
  defp new_engine(:disk, name, topology, strategy, max_agents, quota, executor) do
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

    with :ok <- Raft.create(id, create, executor), do: {:ok, id}
  end

  defp initial_budget(_id, nil), do: :ok

  defp initial_budget(id, micros) do
    case engine(id, :swarm_set_budget, [id, micros]) do
      :ok ->
        :ok

      error ->
        drop_engine(id)
        error
    end
  end

  @doc "Sets (nil: lifts) a swarm's cost budget, in micro-dollars."
  def set_budget(swarm_id, max_cost_micros) do
    with :ok <- quorum(),
         :ok <- engine(swarm_id, :swarm_set_budget, [swarm_id, max_cost_micros]) do
      Replication.record(swarm_id, {:budget, max_cost_micros})
    end
  end

  defp drop_engine(id) do
    if Raft.server(id), do: Raft.delete(id), else: Native.swarm_destroy(id)
  end

  def destroy_swarm(id) do
    with :ok <- quorum(),
         :ok <- drop_engine(id) do
      Swarm.stop(id)
      Replication.stop(id)
    end
  end

  def swarm_status(id), do: Native.swarm_status(id)

  @doc "Swarms homed on this node."
  def local_swarms do
    for s <- Native.swarm_list(), Cluster.Directory.home(s.id) == :here, do: s
  end

  # ---- agents ---------------------------------------------------------------

  def add_agent(swarm_id, opts, executor, placement) do
    executor = executor || Swarm.Server.default_executor(swarm_id)

    opts =
      Map.merge(opts, %{
        executor: executor,
        dispatch: if(executor == :external, do: :pull, else: :push)
      })

    with :ok <- quorum(),
         {:ok, place} <- placement_node(placement),
         :ok <- executor_available(executor, place),
         opts = Map.put(opts, :node, Atom.to_string(place)),
         {:ok, agent_id} <- engine(swarm_id, :agent_add, [swarm_id, opts]),
         :ok <- record_item(swarm_id, :agent, agent_id) do
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
    ready = Cluster.Failover.ready_members()

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
    case Replication.safe_call(place, Executor, :loadable?, [mod], @executor_check_ms) do
      true -> :ok
      # false, or no answer in time: it cannot be shown to run there.
      _ -> {:error, {:executor_unavailable, place, mod}}
    end
  end

  defp executor_available(_executor, _place), do: :ok

  defp start_agent_process(_swarm_id, _agent_id, :external, _place), do: :ok

  defp start_agent_process(swarm_id, agent_id, executor, place) when place == node(),
    do: started(Swarm.AgentSupervisor.start_agent(swarm_id, agent_id, executor))

  defp start_agent_process(swarm_id, agent_id, executor, place),
    do:
      started(
        Replication.safe_call(place, AgentHost, :start_agent, [swarm_id, agent_id, executor])
      )

  defp started({:ok, _}), do: :ok
  # Already started by the agent supervisor's rebuild, which raced us.
  defp started({:error, {:already_started, _}}), do: :ok
  # The agent process gave up at init (it could not attach to the engine).
  defp started(:ignore), do: {:error, :not_attached}
  defp started({:error, _} = error), do: error

  def remove_agent(agent_id) do
    with :ok <- quorum(),
         {:ok, pid} <- engine(Ids.swarm_of(agent_id), :agent_remove, [agent_id]) do
      swarm_id = Cluster.Directory.swarm_of(agent_id)
      Replication.record(swarm_id, {:agent_removed, agent_id})
      # The engine holds the process (or the relay of a remote one): ending
      # it ends the agent wherever it runs.
      if is_pid(pid), do: stop_agent_process(swarm_id, pid)
      :ok
    end
  end

  defp stop_agent_process(swarm_id, pid) do
    case Relay.target(pid) do
      ^pid -> Swarm.AgentSupervisor.stop_agent(swarm_id, pid)
      remote -> Replication.safe_call(node(remote), AgentHost, :stop_agent, [remote])
    end
  end

  @doc "An agent process (anywhere) announces itself; its work is sent to it from now on."
  def attach_agent(swarm_id, agent_id, pid) do
    local = Relay.local(pid)

    case Raft.server(swarm_id) do
      # The swarm's leader watches the process (SwarmService.Swarm.Machine).
      nil ->
        with :ok <- Native.agent_attach(agent_id, local) do
          Swarm.Server.watch(swarm_id, agent_id, local)
          :ok
        end

      server ->
        Raft.command(server, {:attach, agent_id, local})
    end
  end

  def list_agents(swarm_id), do: Native.agent_list(swarm_id)
  def list_agents_page(swarm_id, cursor, limit), do: Native.agent_page(swarm_id, cursor, limit)
  def agent_get(agent_id), do: Native.agent_get(agent_id)
  def neighbours(agent_id), do: Native.agent_neighbours(agent_id)

  # ---- tasks ------------------------------------------------------------------

  def submit(swarm_id, task, notify) do
    notify = notify && Relay.local(notify)

    with :ok <- quorum(),
         {:ok, task_id} <- engine(swarm_id, :task_submit, [swarm_id, task, notify]),
         :ok <- record_item(swarm_id, :task, task_id) do
      {:ok, task_id}
    end
  end

  def task_get(task_id, with_results), do: Native.task_get(task_id, with_results)

  def cancel(task_id) do
    with :ok <- quorum(),
         :ok <- engine(Ids.swarm_of(task_id), :task_cancel, [task_id]) do
      record_item(Cluster.Directory.swarm_of(task_id), :task, task_id)
    end
  end

  def watch(task_id, pid), do: Native.task_watch(task_id, Relay.local(pid))
  def unwatch(task_id, pid), do: Native.task_unwatch(task_id, Relay.local(pid))

  def claim(agent_id, lease_ms) do
    with :ok <- quorum(), do: engine(Ids.swarm_of(agent_id), :work_claim, [agent_id, lease_ms])
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

  # usage: the engine's form (Executor.native_usage/1) or nil. The backup
  # gets it with the unit's result: what the attempt cost, for its agent.
  def complete(work_id, agent_id, result, usage) do
    swarm_id = Cluster.Directory.swarm_of(work_id)
    extra = if usage, do: [result, %{agent_id: agent_id, usage: usage}], else: [result]

    with :ok <- quorum(),
         :ok <- Replication.record(swarm_id, fn -> unit_fact(:unit_result, work_id, extra) end) do
      case engine(swarm_id, :work_complete, with_usage([work_id, agent_id, result], usage)) do
        :ok ->
          :ok

        other ->
          Replication.record(swarm_id, fn -> unit_fact(:unit_ignored, work_id, []) end)
          # A result refused for want of room still had its cost booked.
          if usage && match?({:error, {:quota_exceeded, _, _}}, other),
            do: Replication.record(swarm_id, {:unit_usage, work_id, agent_id, usage})

          other
      end
    end
  end

  # Without usage the command is the one logs always held.
  defp with_usage(args, nil), do: args
  defp with_usage(args, usage), do: args ++ [usage]

  defp unit_fact(tag, work_id, extra) do
    case SwarmService.Ids.parse(work_id) do
      {:ok, %{kind: :work, task_id: task_id, unit: unit}} ->
        List.to_tuple([tag, task_id, unit, work_id | extra])

      _ ->
        nil
    end
  end

  def fail(work_id, agent_id, reason, timed_out),
    do: fail(work_id, agent_id, reason, timed_out, nil)

  # A failed attempt's usage reaches the backup once the engine booked it.
  def fail(work_id, agent_id, reason, timed_out, usage) do
    args = with_usage([work_id, agent_id, reason, timed_out], usage)

    with :ok <- quorum(),
         :ok <- engine(Ids.swarm_of(work_id), :work_fail, args) do
      if usage do
        swarm_id = Cluster.Directory.swarm_of(work_id)
        Replication.record(swarm_id, {:unit_usage, work_id, agent_id, usage})
      else
        :ok
      end
    end
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
    with :ok <- quorum(),
         {:ok, version} <- engine(swarm_id, :memory_store, [swarm_id, key, value, opts]),
         namespace = Map.get(opts, :namespace, "default"),
         :ok <- record_memory(swarm_id, namespace, key) do
      {:ok, version}
    end
  end

  def memory_get(swarm_id, key, opts), do: Native.memory_get(swarm_id, key, opts)

  def memory_delete(swarm_id, key, opts) do
    namespace = Map.get(opts, :namespace, "default")

    with :ok <- quorum(),
         {:ok, version} <- version_for_backup(swarm_id, key, opts),
         :ok <- engine(swarm_id, :memory_delete, [swarm_id, key, opts]) do
      if version,
        do: Replication.record(swarm_id, {:memory_deleted, namespace, key, version}),
        else: :ok
    end
  end

  # The backup's tombstone needs the version the delete removes; without a
  # backup there is nothing to read.
  defp version_for_backup(swarm_id, key, opts) do
    if Replication.active?(swarm_id) do
      with {:ok, %{version: version}} <- Native.memory_get(swarm_id, key, opts),
           do: {:ok, version}
    else
      {:ok, nil}
    end
  end

  def memory_search(swarm_id, query), do: Native.memory_search(swarm_id, query)

  # ---- discoveries and events ----------------------------------------------------

  def share_discovery(swarm_id, discovery) do
    with :ok <- quorum(),
         {:ok, id} <- engine(swarm_id, :discovery_share, [swarm_id, discovery]),
         :ok <- record_item(swarm_id, :discovery, id) do
      {:ok, id}
    end
  end

  def subscribe_discoveries(swarm_id, pid, filter) do
    with :ok <- Native.discovery_subscribe(swarm_id, Relay.local(pid), filter) do
      Replication.record(swarm_id, {:subscribed, pid, {:discoveries, filter}})
    end
  end

  def recent_discoveries(swarm_id, filter, limit),
    do: Native.discovery_recent(swarm_id, filter, limit)

  def subscribe(swarm_id, pid) do
    with :ok <- Native.swarm_subscribe(swarm_id, Relay.local(pid)) do
      Replication.record(swarm_id, {:subscribed, pid, :events})
    end
  end

  def unsubscribe(swarm_id, pid) do
    with :ok <- Native.swarm_unsubscribe(swarm_id, Relay.local(pid)) do
      Replication.record(swarm_id, {:unsubscribed, pid})
    end
  end

  # ---- helpers ---------------------------------------------------------------------

  @doc "The swarm's timers: what is due now; answers `{:ok, ms_to_next | nil}`."
  def tick(swarm_id), do: engine(swarm_id, :swarm_tick, [swarm_id])

  # One engine mutation: through the log of a durable swarm, directly for
  # an in-memory one.
  defp engine(swarm_id, fun, args) do
    case Raft.server(swarm_id) do
      nil ->
        Kernel.apply(Native, fun, args)

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

  defp quorum do
    if Cluster.quorum?(), do: :ok, else: {:error, :no_quorum}
  end

  # Exports the element only when the swarm has a backup to send it to. An
  # element gone by now (destroyed in between) has nothing to record.
  defp record_item(swarm_id, kind, id) do
    Replication.record(swarm_id, fn ->
      case Native.export_item(id) do
        {:ok, element} -> {kind, element}
        {:error, _} -> nil
      end
    end)
  end

  defp record_memory(swarm_id, namespace, key) do
    Replication.record(swarm_id, fn ->
      case Native.memory_export(swarm_id, namespace, key) do
        {:ok, entry} -> {:memory, entry}
        {:error, _} -> nil
      end
    end)
  end
end
