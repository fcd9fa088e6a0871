defmodule SwarmService.Cluster.Failover do
  @moduledoc false
  # Reacts to members going down and coming back, on every node.
  #
  # * A member is lost: for each swarm whose home it was and whose backup
  #   we are, we take over (if we are on the quorum side): import the
  #   replica into the engine, start the swarm's processes, pick a new
  #   backup and load it, publish the new directory row (epoch + 1), have
  #   agents on other live nodes re-attach, re-subscribe subscribers and
  #   tell them with a :failover event. Agents that ran on a lost node are
  #   moved here, so the swarm keeps its agents. For each swarm homed here
  #   whose backup it was, we pick and load a new backup.
  # * A member joins (or returns): we send it the rows of the swarms homed
  #   here, give a backup to swarms that had none, and restart the agents
  #   placed on it.
  # * A directory row changed (Cluster.Directory tells us): if we were home
  #   and no longer are (we were replaced while cut off), we step down;
  #   if we hold a replica we are no longer backup for, we drop it; agents
  #   we host for a swarm that moved are stopped (the new home restarts
  #   the ones it wants).
  #
  # Everything here runs in this one process per node, so a takeover and a
  # backup replacement for the same swarm never interleave.
  use GenServer
  require Logger

  alias SwarmService.{Cluster, Native, Swarm}
  alias SwarmService.Cluster.{Directory, Relay, Replica, Replication}
  alias SwarmService.Swarm.AgentHost

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc """
  Replaces `dead` as the backup of a swarm homed here (if it still is the
  backup) and returns the swarm's current row.
  """
  def replace_backup(swarm_id, dead),
    do: GenServer.call(__MODULE__, {:replace_backup, swarm_id, dead}, 60_000)

  @ready __MODULE__.Ready

  @doc """
  Live members whose swarm processes are up (they said hello), this node
  included: the only ones a swarm may be placed on or backed up to.
  """
  def ready_members do
    Enum.filter(Cluster.members(), &(&1 == node() or :ets.member(@ready, &1)))
  end

  @doc "The swarm's row once any failover step in progress is done."
  def current(swarm_id), do: GenServer.call(__MODULE__, {:current, swarm_id}, 60_000)

  @impl true
  def init(nil) do
    Replication.mode()
    :ets.new(@ready, [:named_table, :set, :protected, read_concurrency: true])
    Cluster.subscribe(self())
    # A member that connects may still be booting, so members greet each
    # other once their swarm processes are up (this one is last in the tree).
    for n <- Cluster.members(), n != node(), do: hello(n, true)
    schedule_sweep()
    {:ok, nil}
  end

  # Besides reacting to events, look again now and then: a takeover that
  # had to wait for quorum happens as soon as quorum is back.
  @sweep_ms 1_000
  defp schedule_sweep, do: Process.send_after(self(), :sweep, @sweep_ms)

  defp hello(n, answer?), do: Cluster.send({__MODULE__, n}, {:hello, node(), answer?})

  @impl true
  def handle_call({:current, swarm_id}, _from, state),
    do: {:reply, Directory.lookup(swarm_id), state}

  def handle_call({:replace_backup, swarm_id, dead}, _from, state) do
    {:reply, do_replace_backup(Directory.lookup(swarm_id), dead), state}
  end

  @impl true
  def handle_info({:cluster, :member_down, lost}, state) do
    # Failover time is measured from here: the moment the member is
    # declared down.
    :ets.delete(@ready, lost)
    sweep(System.monotonic_time(:millisecond))
    {:noreply, state}
  end

  def handle_info(:sweep, state) do
    sweep(System.monotonic_time(:millisecond))
    schedule_sweep()
    {:noreply, state}
  end

  def handle_info({:cluster, :member_up, joined}, state) do
    # Answered only if its swarm processes run (a healed partition);
    # a booting member greets us itself when it is ready.
    hello(joined, true)
    {:noreply, state}
  end

  def handle_info({:hello, joined, answer?}, state) do
    if answer?, do: hello(joined, false)

    if Enum.member?(Cluster.members(), joined) do
      :ets.insert(@ready, {joined})

      for entry <- Directory.entries(), entry.home == node() do
        Replication.safe_call(joined, Directory, :put, [entry])
        if entry.state == :live, do: guarded(entry, fn -> welcome(entry, joined) end)
      end
    end

    {:noreply, state}
  end

  def handle_info({:directory_changed, previous, entry}, state) do
    guarded(entry, fn -> follow(previous, entry) end)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp follow(previous, entry) do
    cond do
      entry.state == :destroyed or entry.home != node() ->
        # Replaced while cut off (our own destroy needs no second stop).
        if previous.home == node() and entry.home != node() and previous.state == :live,
          do: step_down(entry)

        if entry.backup != node(), do: Replica.drop(entry.swarm)
        if previous.home != entry.home or entry.state == :destroyed, do: AgentHost.release(entry)

      true ->
        :ok
    end
  end

  # Takes over swarms whose home is gone and whose backup we are; replaces
  # lost backups of swarms homed here.
  defp sweep(since) do
    members = Cluster.members()

    for entry <- Directory.entries(), entry.state == :live do
      guarded(entry, fn -> sweep_entry(entry, members, since) end)
    end
  end

  # One swarm's trouble must not stop this process (and the takeovers of
  # the other swarms with it).
  defp guarded(entry, fun) do
    fun.()
  catch
    kind, reason ->
      Logger.error(
        "swarm #{entry.swarm}: failover step failed: " <>
          Exception.format(kind, reason, __STACKTRACE__)
      )
  end

  defp sweep_entry(entry, members, since) do
    cond do
      entry.home not in members and entry.backup == node() ->
        take_over(entry, entry.home, since)

      entry.home == node() and entry.backup != nil and entry.backup not in members ->
        do_replace_backup(entry, entry.backup)

      entry.home == node() and entry.backup == nil ->
        give_backup(entry)

      true ->
        :ok
    end
  end

  # ---- losing the home: take over ----------------------------------------------

  defp take_over(entry, lost, since) do
    if Cluster.quorum?() do
      case Replica.snapshot(entry.swarm) do
        {snapshot, subscribers} -> import(entry, lost, snapshot, subscribers, since)
        nil -> Logger.error("swarm #{entry.swarm}: home #{lost} lost and no replica here")
      end
    else
      :no_quorum
    end
  end

  defp import(entry, lost, snapshot, subscribers, since) do
    live = MapSet.new(Enum.map(Cluster.members(), &Atom.to_string/1))
    here = Atom.to_string(node())

    # Agents whose node is gone continue here.
    agents =
      for a <- snapshot.agents do
        if MapSet.member?(live, a.node), do: a, else: %{a | node: here}
      end

    # The new backup is in the row from the start: a change made here
    # before it is loaded waits for the load (Replication) instead of being
    # acknowledged with no copy anywhere.
    backup = Replication.pick_backup(entry.swarm, [lost])
    taken = %{entry | home: node(), backup: backup, epoch: entry.epoch + 1}

    # The row first: the swarm's agent processes attach to their home as
    # they start, and that must be this node.
    with {:ok, id} <- Native.swarm_import(%{snapshot | agents: agents}),
         _ <- Directory.put(taken),
         :ok <- resubscribe(id, subscribers, lost),
         # Agents we hosted for the old home now run under the swarm here.
         :ok <- AgentHost.release(taken),
         {:ok, _} <- Swarm.start(id, executor: snapshot.executor) do
      Replica.drop(id)

      taken =
        if backup,
          do: Replication.load_backup(taken, backup, snapshot.executor, subscribers),
          else: taken

      Directory.publish(taken)
      adopt_remote_agents(taken, agents)
      took_ms = System.monotonic_time(:millisecond) - since
      announce(taken, subscribers, lost, took_ms)

      Logger.warning(
        "swarm #{id}: took over from #{lost} in #{took_ms} ms (epoch #{taken.epoch})"
      )
    else
      error -> Logger.error("swarm #{entry.swarm}: takeover failed: #{inspect(error)}")
    end
  end

  defp adopt_remote_agents(entry, agents) do
    here = Atom.to_string(node())

    agents
    |> Enum.filter(&(&1.dispatch == :push and &1.node != here))
    |> Enum.group_by(& &1.node, &{&1.id, &1.executor})
    |> Enum.each(fn {name, list} ->
      case Enum.find(Cluster.members(), &(Atom.to_string(&1) == name)) do
        nil -> :ok
        n -> Replication.safe_call(n, AgentHost, :adopt, [entry.swarm, entry.epoch, list])
      end
    end)
  end

  # Before the agents start, so no event of the new home is missed.
  # Straight to the engine: the new backup gets the subscribers with its
  # snapshot.
  defp resubscribe(swarm_id, subscribers, lost) do
    for {pid, what} <- subscribers, node(pid) != lost do
      try do
        case what do
          :events -> Native.swarm_subscribe(swarm_id, Relay.local(pid))
          {:discoveries, f} -> Native.discovery_subscribe(swarm_id, Relay.local(pid), f)
        end
      rescue
        # A pid of an earlier incarnation of a restarted node: gone.
        ArgumentError -> :ok
      end
    end

    :ok
  end

  defp announce(entry, subscribers, lost, took_ms) do
    event = %{type: :failover, from: lost, to: node(), epoch: entry.epoch, took_ms: took_ms}

    for pid <- subscribers |> Enum.map(&elem(&1, 0)) |> Enum.uniq(), node(pid) != lost do
      send(pid, {:swarm_event, entry.swarm, event})
    end
  end

  # ---- losing the backup ------------------------------------------------------------

  # Rows change only on the quorum side: a cut-off minority that bumped
  # epochs could otherwise outbid the majority's rows when it heals.
  defp do_replace_backup(%{home: home, backup: dead} = entry, dead) when home == node() do
    if Cluster.quorum?(), do: replace(entry, dead), else: entry
  end

  defp do_replace_backup(entry, _dead), do: entry

  defp replace(entry, dead) do
    case Replication.pick_backup(entry.swarm, [dead]) do
      nil ->
        new = %{entry | backup: nil, epoch: entry.epoch + 1}
        Directory.publish(new)
        new

      backup ->
        executor = Swarm.Server.default_executor(entry.swarm)
        new = Replication.load_backup(entry, backup, executor, [])
        Directory.publish(new)
        new
    end
  end

  # ---- a member (re)joins -----------------------------------------------------------

  defp welcome(entry, joined) do
    if entry.backup == nil, do: give_backup(entry)
    restart_agents_on(entry, joined)
  end

  # A swarm that ran without a backup (no other member was up) gets one.
  defp give_backup(entry) do
    with true <- Cluster.quorum?(),
         backup when backup != nil <- Replication.pick_backup(entry.swarm, []) do
      executor = Swarm.Server.default_executor(entry.swarm)
      Directory.publish(Replication.load_backup(entry, backup, executor, []))
    end
  end

  defp restart_agents_on(%{swarm: swarm_id} = entry, joined) do
    name = Atom.to_string(joined)

    with {:ok, agents} <- Native.agent_list(swarm_id),
         {:ok, processes} <- Native.agent_processes(swarm_id) do
      without_process = for {id, nil, executor} <- processes, into: %{}, do: {id, executor}

      list =
        for a <- agents,
            a.node == name,
            Map.has_key?(without_process, a.id),
            do: {a.id, without_process[a.id]}

      if list != [],
        do: Replication.safe_call(joined, AgentHost, :adopt, [swarm_id, entry.epoch, list])
    end
  end

  # ---- replaced while cut off ------------------------------------------------------------

  defp step_down(entry) do
    Logger.warning("swarm #{entry.swarm}: #{entry.home} is its home now; stepping down")
    Native.swarm_destroy(entry.swarm)
    Swarm.stop(entry.swarm)
  end
end
