defmodule SwarmService.Raft do
  @moduledoc """
  Durable swarms. A `storage: :disk` swarm is a Ra (Raft) cluster whose state
  machine is the swarm's engine (`SwarmService.Swarm.Machine`): every command
  that changes the swarm is appended to its log, written to disk (fdatasync)
  on a majority of its members and only then applied and answered, so an
  acknowledged command survives a kill -9 of any minority of them, or of
  all. Ra snapshots the engine's whole state now and then, which keeps the
  log short.

  A swarm has up to `replicas` members (`create/4`), one per node, each
  with its own server name and engine instance; Ra elects the leader, whose
  engine alone sends anything (work, outcomes, events).

  This process starts the node's Ra system (data under `data_dir/0`), keeps
  the catalogue of the durable swarms this node is a member of
  (`SwarmService.Raft.Catalogue`) and on boot restarts the Ra server of
  every swarm in it, so the engines are rebuilt before anything else can
  reach them. Which swarms are durable here is an ETS table read by
  `server/1` on every command.

  Data directory: `RUV_SWARM_DATA_DIR`, else `$RUV_SWARM_HOME/data`, else
  `config :swarm_service, :data_dir`, else `~/.ruv-swarm/data`; each node
  uses a folder named after it inside.
  """
  use GenServer
  require Logger

  alias SwarmService.Native
  alias SwarmService.Raft.Catalogue
  alias SwarmService.Swarm.Machine

  @system :ruv_swarm
  @table __MODULE__
  # Server name slots free for reuse, and the highest slot ever named.
  @free Module.concat(__MODULE__, FreeNames)
  # A command not committed in this time answers {:error, {:not_committed, ms}}.
  @default_command_timeout_ms 2_000
  # Swarms recovered at once on boot.
  @recovery_concurrency 8

  @typedoc "A Ra server id: the swarm's server name on a node."
  @type server :: {atom(), node()}

  @doc false
  def start_link(_arg), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc """
  The node's data directory (the Ra WAL, segments, snapshots and the
  catalogue), as fixed when this process started: a node named later (a
  test VM, `Node.start/1` in iex) keeps using the folder it booted with.
  """
  @spec data_dir() :: Path.t()
  def data_dir do
    case :persistent_term.get({__MODULE__, :data_dir}, nil) do
      nil -> configured_dir()
      dir -> dir
    end
  end

  defp configured_dir do
    home = System.get_env("RUV_SWARM_HOME")

    base =
      System.get_env("RUV_SWARM_DATA_DIR") ||
        (home && Path.join(home, "data")) ||
        Application.get_env(:swarm_service, :data_dir) ||
        Path.join(Path.expand(System.get_env("HOME") || "."), ".ruv-swarm/data")

    Path.join(Path.expand(base), Atom.to_string(node()))
  end

  @doc "The Ra server of a durable swarm on this node, or nil (in-memory or unknown swarm)."
  @spec server(String.t() | nil) :: server() | nil
  def server(swarm_id) when is_binary(swarm_id) do
    case row(swarm_id) do
      [{_, name, _executor, _slot, _cluster, _nodes}] -> {name, node()}
      [] -> nil
    end
  end

  def server(_other), do: nil

  @doc "The nodes of a durable swarm's Ra members, as this node (a member) knows them."
  @spec member_nodes(String.t()) :: [node()]
  def member_nodes(swarm_id) do
    case row(swarm_id) do
      [{_, _name, _executor, _slot, _cluster, nodes}] -> nodes
      [] -> []
    end
  end

  @doc """
  The node of a durable swarm's leader as this member last heard (Ra's
  leaderboard), or nil when it knows none (an election is under way).
  """
  @spec leader_node(String.t()) :: node() | nil
  def leader_node(swarm_id) do
    with [{_, _name, _executor, _slot, cluster, _nodes}] <- row(swarm_id),
         {_, leader} <- :ra_leaderboard.lookup_leader(cluster) do
      leader
    else
      _ -> nil
    end
  end

  # While this process (re)starts its table is missing: no durable swarm
  # is reachable here until it has recovered them.
  defp row(swarm_id) do
    :ets.lookup(@table, swarm_id)
  rescue
    ArgumentError -> []
  end

  @doc "Durable swarms on this node with their default executors."
  @spec swarms() :: [{String.t(), term()}]
  def swarms, do: for({id, _name, executor, _, _, _} <- :ets.tab2list(@table), do: {id, executor})

  @doc """
  What this node recovered when it booted: `swarms`, `agents`, `tasks`,
  `memory_entries` and the `ms` it took (all 0 when there was nothing).
  Swarms with other members count in `rejoined`: their engines catch up
  once a majority of their members is back.
  """
  @spec recovered() :: map()
  def recovered do
    :persistent_term.get({__MODULE__, :recovered}, %{
      swarms: 0,
      rejoined: 0,
      agents: 0,
      tasks: 0,
      memory_entries: 0,
      ms: 0
    })
  end

  @doc """
  The Raft view of a durable swarm on this node: its `members` (nodes),
  `leader` (node), `term`, `commit_index`, `last_applied` and the index of
  its latest `snapshot_index` (0 before the first). nil for another swarm.
  """
  @spec status(String.t()) :: map() | nil
  def status(swarm_id) do
    with {_, _} = server <- server(swarm_id),
         {:ok, state, _} <- :ra_server_proc.local_state_query(server, :all, 1_000) do
      o = :ra_server.overview(state)
      snapshot = get_in(o, [:log, :snapshot_index])

      %{
        members: o |> Map.get(:cluster, %{}) |> Map.keys() |> Enum.map(&elem(&1, 1)),
        leader: with({_, n} <- o[:leader_id], do: n),
        term: o[:current_term],
        commit_index: o[:commit_index],
        last_applied: o[:last_applied],
        snapshot_index: if(is_integer(snapshot), do: snapshot, else: 0)
      }
    else
      _ -> nil
    end
  catch
    :exit, _ -> nil
  end

  @doc """
  Creates a durable swarm with up to `replicas` Ra members, on the ready
  members of the cluster (this node alone when it is alone). Each member
  node writes its catalogue entry and starts its server; the first
  command, once committed (on disk on a majority), creates the engine
  instance from `create` on every member (see `SwarmService.Swarm.Machine`).
  Answers `{:ok, member_nodes}`, or the first error (nothing is left
  behind then).

  Members are chosen by rendezvous hashing of the swarm id over the ready
  nodes, and the first one is asked to lead: both memberships and
  leaderships spread evenly over the cluster.
  """
  @spec create(String.t(), map(), term(), pos_integer()) :: {:ok, [node()]} | {:error, term()}
  def create(swarm_id, create, executor, replicas \\ 3) do
    nodes = placement(swarm_id, replicas)

    prepared =
      for n <- nodes do
        case call(n, :prepare, [swarm_id]) do
          {:ok, slot, uid} -> {n, slot, uid}
          error -> {n, error}
        end
      end

    case Enum.find(prepared, &match?({_, {:error, _}}, &1)) do
      nil ->
        members = for {n, slot, _uid} <- prepared, do: {server_name(slot), n}

        common = %{
          id: swarm_id,
          create: create,
          executor: executor,
          members: members,
          cluster_name: swarm_id,
          replicas: max(replicas, 1)
        }

        started =
          for {n, slot, uid} <- prepared,
              do: call(n, :join, [Map.merge(common, %{slot: slot, uid: uid})])

        with :ok <- Enum.find(started, :ok, &(&1 != :ok)),
             :ok <- elect(hd(members)),
             :ok <- command(local_or_first(members), :noop) do
          {:ok, nodes}
        else
          error ->
            abort(swarm_id, nodes)
            error
        end

      {_n, error} ->
        abort(swarm_id, nodes)
        error
    end
  end

  defp local_or_first(members), do: Enum.find(members, hd(members), &(elem(&1, 1) == node()))

  defp elect({_, n} = id) when n == node(), do: trigger_election(id)
  defp elect({_, n} = id), do: call(n, :trigger_election, [id])

  @doc false
  def trigger_election(id) do
    :ra.trigger_election(id)
    :ok
  end

  defp abort(swarm_id, nodes), do: for(n <- nodes, do: call(n, :delete, [swarm_id]))

  defp call(n, fun, args) when n == node(), do: Kernel.apply(__MODULE__, fun, args)

  defp call(n, fun, args) do
    case SwarmService.Swarm.Locator.safe_call(n, fun, args, __MODULE__, 10_000) do
      {:error, {kind, reason}} when kind in [:exit, :error, :throw] ->
        {:error, {:member_unavailable, n, reason}}

      result ->
        result
    end
  end

  # Rendezvous hashing: each swarm ranks the nodes by hash(swarm, node)
  # and takes the first ones; adding a node moves few swarms.
  defp placement(swarm_id, replicas) do
    SwarmService.Swarm.Locator.ready_members()
    |> Enum.sort_by(&:erlang.phash2({swarm_id, &1}))
    |> Enum.take(max(replicas, 1))
  end

  @doc false
  # Step one of create/4 on a member node: a server name and uid.
  def prepare(swarm_id) do
    {:ok, take_slot(), :ra.new_uid(swarm_id)}
  end

  @doc false
  # Step two of create/4 on a member node: the catalogue entry (before
  # anything can be acknowledged), the Ra server, and the swarm's
  # processes (its ticker acts only while this member leads).
  def join(entry) do
    with :ok <- Catalogue.write(data_dir(), entry),
         :ok <- start_server(entry, :new) do
      insert(entry)
      start_processes(entry)
      :ok
    else
      {:error, _} = error ->
        Catalogue.remove(data_dir(), entry.id)
        :ets.insert(@free, {entry.slot})
        error
    end
  end

  defp insert(entry) do
    nodes = for {_, n} <- members(entry), do: n
    cluster = Map.get(entry, :cluster_name, server_name(entry.slot))

    :ets.insert(
      @table,
      {entry.id, server_name(entry.slot), entry.executor, entry.slot, cluster, nodes}
    )
  end

  defp start_processes(entry) do
    case SwarmService.Swarm.start(entry.id, executor: entry.executor) do
      {:ok, _} -> :ok
      {:error, {:already_started, _}} -> :ok
      error -> Logger.error("swarm #{entry.id}: processes not started: #{inspect(error)}")
    end
  end

  # Entries written before swarms had several members name only this node.
  defp members(entry), do: Map.get(entry, :members, [{server_name(entry.slot), node()}])

  @doc """
  Deletes a durable swarm on this node: its catalogue entry first (so a
  crash in between never brings it back), then its Ra server and data,
  then the engine instance and the swarm's processes. Every member does
  this when it applies the swarm's `:destroy` command.
  """
  @spec delete(String.t()) :: :ok
  def delete(swarm_id) do
    Catalogue.remove(data_dir(), swarm_id)

    case :ets.take(@table, swarm_id) do
      [{_, name, _executor, slot, _cluster, _nodes}] ->
        :ra.force_delete_server(@system, {name, node()})
        :ets.insert(@free, {slot})

      [] ->
        :ok
    end

    SwarmService.Swarm.stop(swarm_id)
    Native.swarm_destroy(swarm_id)
    :ok
  end

  @doc """
  Destroys a durable swarm everywhere: a `:destroy` command in its log,
  which each member applies by deleting its copy (a member that is down
  meanwhile does it when it replays the log).
  """
  @spec destroy(String.t()) :: :ok | {:error, term()}
  def destroy(swarm_id) do
    with {_, _} = server <- server(swarm_id) || {:error, :swarm_not_found},
         :ok <- command(server, :destroy) do
      # Gone here at once; the other members follow as they apply it.
      delete(swarm_id)
      SwarmService.Swarm.Locator.forget(swarm_id)
    end
  end

  @doc """
  Gives the durable swarms this node leads the members they lack: a swarm
  created while fewer than its `replicas` nodes were ready gains one on
  each ready node that joins (rendezvous order), which catches up from the
  leader's log or snapshot. Called when a member becomes ready; one pass
  at a time.
  """
  @spec grow() :: :ok
  def grow, do: GenServer.cast(__MODULE__, :grow)

  defp grow_all do
    ready = SwarmService.Swarm.Locator.ready_members()

    for {id, name, _executor, _slot, _cluster, nodes} <- :ets.tab2list(@table),
        leader_node(id) == node(),
        entry = Catalogue.read(data_dir(), id),
        is_map(entry),
        wanted = Map.get(entry, :replicas, 1),
        length(nodes) < wanted,
        candidate <- Enum.take(placement(id, wanted) -- nodes, 1),
        candidate in ready do
      add_member(entry, {name, node()}, candidate)
    end

    :ok
  end

  defp add_member(entry, leader, n) do
    with {:ok, slot, uid} <- call(n, :prepare, [entry.id]),
         new = {server_name(slot), n},
         members = members(entry) ++ [new],
         :ok <-
           call(n, :join, [%{entry | members: members} |> Map.merge(%{slot: slot, uid: uid})]),
         {:ok, _, _} <- :ra.add_member(leader, new, command_timeout()) do
      for {_, m} <- members, m != n, do: call(m, :set_members, [entry.id, members])
      Logger.info("swarm #{entry.id}: member added on #{n}")
    else
      error ->
        Logger.warning("swarm #{entry.id}: no member added on #{n}: #{inspect(error, limit: 8)}")
        call(n, :delete, [entry.id])
    end
  end

  @doc false
  # A member's record of who the members are (routing, quorum, restarts).
  def set_members(swarm_id, members) do
    with %{} = entry <- Catalogue.read(data_dir(), swarm_id),
         entry = %{entry | members: members},
         :ok <- Catalogue.write(data_dir(), entry) do
      insert(entry)
      :ok
    end
  end

  @doc false
  # Called by the machine when it applies :destroy: after a moment, so
  # that the server answers the command before it is deleted.
  def destroyed(swarm_id), do: Process.send_after(__MODULE__, {:delete, swarm_id}, 100)

  @doc """
  How many Ra server names (atoms) this node has made: one per slot, and a
  slot is reused once its swarm is gone, so this is the most durable swarms
  that existed at once, never a count of swarms ever created.
  """
  @spec name_atoms() :: non_neg_integer()
  def name_atoms, do: :ets.lookup_element(@free, :highest, 2)

  @doc """
  Appends `command` to the swarm's log and answers the engine's reply once
  it is committed and applied. `{:error, {:not_committed, ms}}` when it is
  not committed within the command timeout (`config :swarm_service,
  :raft_command_timeout_ms`, default 2000): it may still be applied later.
  """
  @spec command(server(), term()) :: term()
  def command(server, command) do
    timeout = command_timeout()

    case :ra.process_command(server, command, timeout) do
      {:ok, reply, _leader} ->
        reply

      {:timeout, _} ->
        if quorum_lost?(server),
          do: {:error, :no_quorum},
          else: {:error, {:not_committed, timeout}}

      {:error, :noproc} ->
        {:error, :swarm_not_found}

      {:error, reason} ->
        {:error, {:raft, reason}}
    end
  catch
    # The server stopped while we waited (the swarm was destroyed).
    :exit, _ -> {:error, :swarm_not_found}
  end

  # Fewer than a majority of the swarm's members are connected: no
  # command can commit until the cluster heals.
  defp quorum_lost?({name, _node}) do
    case :ets.match(@table, {:_, name, :_, :_, :_, :"$1"}) do
      [[nodes]] ->
        live = [node() | Node.list()]
        2 * Enum.count(nodes, &(&1 in live)) <= length(nodes)

      _ ->
        false
    end
  end

  defp command_timeout,
    do: Application.get_env(:swarm_service, :raft_command_timeout_ms, @default_command_timeout_ms)

  # ---- the process ---------------------------------------------------------------

  @impl true
  def init([]) do
    # Ra reports every election and snapshot at info level.
    :logger.set_application_level(:ra, :warning)
    dir = configured_dir()
    :persistent_term.put({__MODULE__, :data_dir}, dir)

    with :ok <- File.mkdir_p(dir),
         {:ok, _} <- Application.ensure_all_started(:ra),
         {:ok, _} <- start_system(dir) do
      :ets.new(@table, [:named_table, :public, read_concurrency: true])
      :ets.new(@free, [:named_table, :public, :ordered_set])
      recover(dir)
      {:ok, %{dir: dir}}
    else
      {:error, reason} -> {:stop, {:raft_not_started, dir, reason}}
    end
  end

  @impl true
  def handle_cast(:grow, state) do
    grow_all()
    {:noreply, state}
  end

  @impl true
  def handle_info({:delete, swarm_id}, state) do
    delete(swarm_id)
    SwarmService.Swarm.Locator.forget(swarm_id)
    {:noreply, state}
  end

  defp start_system(dir) do
    config =
      Map.merge(:ra_system.default_config(), %{
        name: @system,
        data_dir: String.to_charlist(dir),
        wal_data_dir: String.to_charlist(dir),
        names: :ra_system.derive_names(@system)
      })

    case :ra_system.start(config) do
      {:ok, pid} -> {:ok, pid}
      {:error, {:already_started, pid}} -> {:ok, pid}
      error -> error
    end
  end

  # Restarts every swarm of the catalogue and waits until each has applied
  # its log (a no-op command first: Ra 2.2 may answer the first read after a
  # restart from stale state). A swarm that cannot be recovered is logged
  # with the reason and left out; the others still start.
  defp recover(dir) do
    started = System.monotonic_time(:millisecond)
    {entries, broken} = Catalogue.read_all(dir)
    for {file, reason} <- broken, do: Logger.error("swarm catalogue #{file}: #{reason}")

    results =
      entries
      |> Task.async_stream(&recover_one/1,
        max_concurrency: @recovery_concurrency,
        timeout: :infinity,
        ordered: false
      )
      |> Enum.map(fn {:ok, result} -> result end)

    recovered = for {:ok, entry, status} <- results, do: {entry, status}

    for {:error, entry, reason} <- results do
      Logger.error("swarm #{entry.id} not recovered: #{inspect(reason, limit: 10)}")
    end

    for {entry, _} <- recovered, do: insert(entry)

    # The slots of swarms not recovered stay taken: their data is still on
    # disk for someone to look at. While a catalogue file cannot be read,
    # every server Ra knows may be its swarm's: none is deleted as an
    # orphan, and their slots stay taken too.
    known = MapSet.new(entries, &server_name(&1.slot))
    orphans = for {name, _uid} <- registered(), not MapSet.member?(known, name), do: name

    kept =
      if broken == [] do
        Enum.each(orphans, &:ra.force_delete_server(@system, {&1, node()}))
        []
      else
        orphans
      end

    used = MapSet.new(Enum.map(entries, & &1.slot) ++ Enum.flat_map(kept, &slot_of/1))
    highest = Enum.max([0 | MapSet.to_list(used)])
    :ets.insert(@free, {:highest, highest})
    for n <- 1..highest//1, not MapSet.member?(used, n), do: :ets.insert(@free, {n})

    # (Built outside Logger.info/1, whose argument is skipped below :info.)
    summary = recovery_summary(recovered, System.monotonic_time(:millisecond) - started)
    if entries != [] or broken != [], do: Logger.info(summary)
  end

  # A lone member commits at once; one of several waits for a majority of
  # its members, which may still be booting, so it is not waited for.
  defp recover_one(entry) do
    alone? = length(members(entry)) == 1

    with :ok <- start_server(entry, :existing),
         :ok <- if(alone?, do: command({server_name(entry.slot), node()}, :noop), else: :ok),
         {:ok, status} <- if(alone?, do: Native.swarm_status(entry.id), else: {:ok, :rejoined}) do
      {:ok, entry, status}
    else
      error -> {:error, entry, error}
    end
  end

  defp recovery_summary(recovered, ms) do
    {rejoined, recovered} = Enum.split_with(recovered, &match?({_, :rejoined}, &1))
    sum = fn count -> recovered |> Enum.map(fn {_, s} -> count.(s) end) |> Enum.sum() end

    summary = %{
      swarms: length(recovered),
      rejoined: length(rejoined),
      agents: sum.(& &1.agents.total),
      tasks: sum.(fn s -> s.tasks |> Map.values() |> Enum.sum() end),
      memory_entries: sum.(& &1.memory_entries),
      ms: ms
    }

    :persistent_term.put({__MODULE__, :recovered}, summary)

    "recovered #{summary.swarms} durable swarm(s) in #{ms} ms: #{summary.agents} agents, " <>
      "#{summary.tasks} tasks, #{summary.memory_entries} memory entries; " <>
      "#{summary.rejoined} replicated swarm(s) rejoining their members"
  end

  # The servers Ra has registered on this node; those the catalogue does
  # not know are left over from a destroy interrupted after its catalogue
  # entry went.
  defp registered do
    :ra_directory.list_registered(@system)
  rescue
    _ -> []
  end

  defp slot_of(name) do
    with "ruv_swarm_" <> n <- Atom.to_string(name),
         {slot, ""} when slot > 0 <- Integer.parse(n) do
      [slot]
    else
      _ -> []
    end
  end

  defp start_server(entry, mode) do
    id = {server_name(entry.slot), node()}

    restarted = if mode == :existing, do: :ra.restart_server(@system, id), else: {:error, :new}

    # A lone member elects itself at once rather than after a timeout;
    # one of several is elected with the others (create/4 asks one).
    alone? = length(members(entry)) == 1

    case restarted do
      :ok ->
        if alone?, do: :ra.trigger_election(id)
        :ok

      {:error, {:already_started, _}} ->
        :ok

      # New, or a server whose name registration Ra lost (a node killed right
      # after creating it): started from its saved config, same uid, so its
      # log and snapshot are found again.
      {:error, _} ->
        case :ra.start_server(@system, server_config(entry)) do
          :ok ->
            if alone?, do: :ra.trigger_election(id)
            :ok

          {:error, {:already_started, _}} ->
            :ok

          error ->
            error
        end
    end
  end

  defp server_config(entry) do
    name = server_name(entry.slot)
    id = {name, node()}

    %{
      id: id,
      uid: entry.uid,
      cluster_name: Map.get(entry, :cluster_name, name),
      log_init_args: %{uid: entry.uid},
      initial_members: members(entry),
      machine: {:module, Machine, %{swarm_id: entry.id, create: entry.create}}
    }
  end

  # Ra names servers with atoms, and atoms are never freed: a server is
  # named by a numbered slot, reused when its swarm is gone, so the atoms
  # made are bounded by the most durable swarms alive at once. Nothing from
  # a request becomes an atom (swarm ids are looked up in the table).
  defp server_name(slot) when is_integer(slot) and slot > 0,
    do: String.to_atom("ruv_swarm_" <> Integer.to_string(slot))

  defp take_slot do
    case :ets.first(@free) do
      n when is_integer(n) ->
        # Another create may have taken it first.
        if :ets.take(@free, n) == [{n}], do: n, else: take_slot()

      _ ->
        :ets.update_counter(@free, :highest, 1)
    end
  end
end
