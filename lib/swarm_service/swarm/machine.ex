defmodule SwarmService.Swarm.Machine do
  @moduledoc """
  The engine as a Ra state machine (`:ra_machine`): one per durable swarm.

  `apply/3` applies one logged command to the swarm's engine instance (the
  NIF's, in this VM) after setting the engine's clock to the command's
  `system_time`, which the leader stamped when it appended the command. The
  engine is deterministic in that mode (time from the clock, randomness from
  the seed it was created with, nothing decided by which processes are
  alive), so replaying the same log, or installing the same snapshot, gives
  the same swarm on every member and after every restart.

  The machine state is small: the swarm id, how its engine is created, the
  agent processes it monitors, and between snapshots a count of commands.
  The engine itself is the instance in the NIF; it is rebuilt (created, or
  imported from a snapshot) the first time the Ra server process touches it,
  so a restarted server never applies its log on top of an engine that
  already saw it. Every 16,384 commands the machine hands Ra a snapshot:
  the engine's whole state (`SwarmService.Native.swarm_save/1`; not the
  portable, lossy `swarm_export/1`, which restarts work in flight) with
  this state.

  Agent processes are monitored by the leader (Ra `monitor` effects, set
  again in `state_enter(:leader, _)`): a process that exits, or that a new
  leader finds gone, becomes a logged `{:down, pid, reason}` that takes its
  agent offline, so its work is retried.

  The log's vocabulary:
    * `:noop` — nothing (used to wait until the log is applied);
    * `{:native, fun, args}` — one engine mutation, `apply(Native, fun, args)`
      for the engine mutations listed in `@logged` (`work_progress`,
      `work_complete` and `work_fail` in both arities: with a message or
      usage, and without, as logs written before those existed hold them);
    * `{:attach, agent_id, pid}` — the agent's process (monitored);
    * `{:down, pid, reason}` — from Ra, for a monitored process.
  """
  @behaviour :ra_machine
  require Logger

  alias SwarmService.Native

  @snapshot_every 16_384

  # The engine mutations a log may carry. Reads never enter the log.
  @logged [
    :agent_add,
    :agent_remove,
    :agent_worker_lost,
    :task_submit,
    :task_cancel,
    :work_claim,
    :work_progress,
    :work_complete,
    :work_fail,
    :memory_store,
    :memory_delete,
    :discovery_share,
    :swarm_tick,
    :swarm_coordinate,
    :swarm_set_budget,
    # Who listens: replicated, so listeners survive a change of leader.
    :swarm_subscribe,
    :swarm_unsubscribe,
    :discovery_subscribe,
    :task_watch,
    :task_unwatch
  ]

  @impl :ra_machine
  def init(%{swarm_id: id, create: create}) do
    # agents: agent id => its process; watched: the same, by process.
    %{
      id: id,
      create: create,
      snapshot: nil,
      since_snapshot: 0,
      agents: %{},
      watched: %{},
      time: 0,
      destroyed: false
    }
  end

  @impl :ra_machine
  def apply(_meta, _command, %{destroyed: true} = state),
    do: {state, {:error, :swarm_not_found}, []}

  def apply(_meta, :destroy, state) do
    SwarmService.Raft.destroyed(state.id)
    {%{state | destroyed: true}, :ok, []}
  end

  def apply(meta, command, state) do
    now = Map.fetch!(meta, :system_time)
    state = %{state | time: max(Map.get(state, :time, 0), now)}

    case ensure_engine(state, now) do
      {:ok, state} ->
        # (Fails only for an engine destroyed under the log: the swarm is
        # being deleted.)
        case Native.swarm_set_clock(state.id, now) do
          :ok ->
            {state, reply, effects} = run_safely(command, state)
            snapshot(meta, state, reply, effects)

          error ->
            {state, error, []}
        end

      {:error, _} = error ->
        {state, error, []}
    end
  end

  # Only the leader's engine sends anything (work, outcomes, events): while
  # Raft replays the log into a rebuilt engine, or on a member that follows,
  # the engine applies commands with its messages muted. A new leader then
  # sends every agent the work it holds (at-least-once), and watches every
  # agent process again: one already gone answers at once, as a
  # {:down, ...} command that takes its agent offline.
  #
  # A member restarted from a snapshot builds its engine here, so that it
  # can answer reads before the next command arrives.
  @impl :ra_machine
  def state_enter(role, %{destroyed: false} = state) do
    Process.put({__MODULE__, :role}, role)

    cond do
      Process.get({__MODULE__, state.id}) ->
        deliver(state.id, role)

      role in [:leader, :follower] and Map.get(state, :time, 0) > 0 ->
        ensure_engine(state, state.time)

      true ->
        :ok
    end

    if role == :leader,
      do: for({_agent, pid} <- state.agents, do: {:monitor, :process, pid}),
      else: []
  end

  def state_enter(_role, _state), do: []

  # The new leader's ticker runs the timers that fell due meanwhile.
  defp deliver(id, role) do
    _ = Native.swarm_set_delivery(id, role == :leader)

    if role == :leader do
      Native.swarm_redeliver(id)
      nudge_ticker(id)
    end
  end

  defp nudge_ticker(id) do
    case Registry.lookup(SwarmService.SwarmRegistry, {:server, id}) do
      [{pid, _}] -> send(pid, {:swarm_wakeup, id})
      [] -> :ok
    end
  rescue
    ArgumentError -> :ok
  end

  @impl :ra_machine
  def overview(state), do: %{swarm_id: state.id, agents_monitored: map_size(state.agents)}

  # ---- commands ------------------------------------------------------------------

  # A command the engine refuses with an exception (a term it cannot
  # decode) fails that command only: a crash here would stop the server,
  # and on restart it would replay the same command and stop again.
  defp run_safely(command, state) do
    run(command, state)
  rescue
    e ->
      {state, {:error, {:invalid_argument, "command refused: " <> Exception.message(e)}}, []}
  end

  defp run(:noop, state), do: {state, :ok, []}

  # An agent removed from the engine is no longer watched.
  defp run({:native, :agent_remove, [agent_id]}, state) do
    case Native.agent_remove(agent_id) do
      {:ok, _} = reply ->
        case Map.fetch(state.agents, agent_id) do
          {:ok, pid} -> {unwatch(state, agent_id, pid), reply, [{:demonitor, :process, pid}]}
          :error -> {state, reply, []}
        end

      error ->
        {state, error, []}
    end
  end

  # Pids in a command are the callers' own, on any node; the engine here
  # can only send to local ones, so a remote one is given its relay.
  defp run({:native, fun, args}, state) when fun in @logged and is_list(args) do
    {state, Kernel.apply(Native, fun, Enum.map(args, &stand_in/1)), []}
  end

  defp run({:attach, agent_id, pid}, state) when is_pid(pid) do
    local = stand_in(pid)
    # (Remembered for the agent's {:down, ...}: the relay ends with it.)
    if local != pid, do: Process.put({__MODULE__, :stand_in, pid}, local)

    case Native.agent_attach(agent_id, local) do
      :ok ->
        {state, demonitor} =
          case Map.fetch(state.agents, agent_id) do
            {:ok, ^pid} -> {state, []}
            {:ok, old} -> {unwatch(state, agent_id, old), [{:demonitor, :process, old}]}
            :error -> {state, []}
          end

        state = %{
          state
          | agents: Map.put(state.agents, agent_id, pid),
            watched: Map.put(state.watched, pid, agent_id)
        }

        {state, :ok, demonitor ++ [{:monitor, :process, pid}]}

      error ->
        {state, error, []}
    end
  end

  defp run({:down, pid, reason}, state) do
    case Map.fetch(state.watched, pid) do
      {:ok, agent_id} ->
        local = Process.get({__MODULE__, :stand_in, pid}, pid)
        _ = Native.agent_detach(agent_id, local, "agent process exited: " <> short(reason))
        Process.delete({__MODULE__, :stand_in, pid})
        {unwatch(state, agent_id, pid), :ok, []}

      :error ->
        {state, :ok, []}
    end
  end

  defp run(other, state) do
    {state, {:error, {:invalid_argument, "not a swarm log command: #{short(other)}"}}, []}
  end

  # A pid of this node's previous incarnation (a log replayed after a
  # restart) is not a local pid to the engine: any dead pid stands for it.
  defp stand_in(pid) when is_pid(pid) and node(pid) != node(),
    do: SwarmService.Cluster.Relay.local(pid)

  defp stand_in(pid) when is_pid(pid) do
    if Process.alive?(pid), do: pid, else: dead_pid()
  end

  defp stand_in(other), do: other

  defp dead_pid do
    case :persistent_term.get({__MODULE__, :dead_pid}, nil) do
      nil ->
        {pid, ref} = spawn_monitor(fn -> :ok end)

        receive do
          {:DOWN, ^ref, :process, _, _} -> :ok
        end

        :persistent_term.put({__MODULE__, :dead_pid}, pid)
        pid

      pid ->
        pid
    end
  end

  defp unwatch(state, agent_id, pid) do
    %{state | agents: Map.delete(state.agents, agent_id), watched: Map.delete(state.watched, pid)}
  end

  # ---- the engine instance ---------------------------------------------------------

  # Built once per Ra server process (the process dictionary goes with it):
  # from the snapshot Ra recovered or installed, else from the create
  # arguments, replacing whatever instance this VM still holds.
  defp ensure_engine(%{snapshot: nil} = state, now) do
    if Process.get({__MODULE__, state.id}) do
      {:ok, state}
    else
      # (Replaces any instance of this swarm the VM still holds.)
      c = state.create

      with {:ok, _} <-
             Native.swarm_create_replicated(
               state.id,
               c.name,
               c.topology,
               c.strategy,
               c.max_agents,
               c.memory_quota,
               c.seed,
               now
             ) do
        built(state)
      end
    end
  end

  defp ensure_engine(%{snapshot: snapshot} = state, now) do
    with {:ok, _} <- Native.swarm_load_replicated(snapshot, now) do
      built(%{state | snapshot: nil})
    end
  end

  defp built(state) do
    Process.put({__MODULE__, state.id}, true)
    deliver(state.id, Process.get({__MODULE__, :role}))

    # The swarm's server (the ticker) hears of deadlines again.
    case Registry.lookup(SwarmService.SwarmRegistry, {:server, state.id}) do
      [{pid, _}] -> Native.swarm_set_owner(state.id, pid)
      [] -> :ok
    end

    {:ok, state}
  rescue
    # No registry yet (the node is booting): the server registers itself.
    ArgumentError -> {:ok, state}
  end

  # Every @snapshot_every commands Ra gets the state as of this index to
  # write as a snapshot; the log before it can go.
  defp snapshot(meta, state, reply, effects) do
    state = %{state | since_snapshot: state.since_snapshot + 1}

    if state.since_snapshot >= @snapshot_every do
      case Native.swarm_save(state.id) do
        {:ok, saved} ->
          state = %{state | since_snapshot: 0}
          cursor = {:release_cursor, meta.index, %{state | snapshot: saved}}
          {state, reply, effects ++ [cursor]}

        {:error, reason} ->
          Logger.warning("swarm #{state.id}: no snapshot taken: #{short(reason)}")
          {state, reply, effects}
      end
    else
      {state, reply, effects}
    end
  end

  defp short(term), do: inspect(term, limit: 5, printable_limit: 200)
end
