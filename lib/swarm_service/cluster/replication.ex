defmodule SwarmService.Cluster.Replication do
  @moduledoc false
  # The home side of swarm replication: picks a swarm's backup, sends it a
  # whole snapshot when it becomes backup, then one fact per acknowledged
  # change (see Cluster.Replica for how facts merge).
  #
  # In :sync mode (the default) record/2 returns only once the backup
  # holds the fact, so whatever a caller was told survives the loss of the
  # home. In :async mode the fact is sent and not waited for: faster, and a
  # change acknowledged in the last moments before the home dies may be
  # lost. A backup that cannot be reached is replaced (serialised through
  # Cluster.Failover) and the fact is sent to the new one. When no other
  # member is up the swarm runs without a backup until one joins.
  alias SwarmService.{Cluster, Native}
  alias SwarmService.Cluster.{Directory, Failover, Replica}

  @timeout 5_000

  @doc "Starts replicating a swarm just created here: publishes its row and loads its backup."
  def start(swarm_id, executor) do
    backup = pick_backup(swarm_id, [])
    entry = %{swarm: swarm_id, home: node(), backup: nil, epoch: 1, state: :live}
    entry = if backup, do: load_backup(entry, backup, executor, []), else: entry
    Directory.publish(entry)
    :ok
  end

  @doc "The swarm was destroyed here: its backup forgets it and every node learns it."
  def stop(swarm_id) do
    with %{home: home} = entry when home == node() <- Directory.lookup(swarm_id) do
      if entry.backup, do: safe_call(entry.backup, Replica, :drop, [swarm_id])
      Directory.publish(%{entry | epoch: entry.epoch + 1, state: :destroyed})
    end

    :ok
  end

  @doc """
  Records `fact` (or the fact a zero-arity function builds; nil means
  nothing to record) with the swarm's backup. `{:error, :no_quorum}` when
  the backup knows a newer home: this node was replaced while cut off.
  """
  def record(swarm_id, fact), do: record(swarm_id, fact, mode())

  @doc "Like record/2, without waiting for the backup."
  def record_async(swarm_id, fact), do: record(swarm_id, fact, :async)

  defp record(swarm_id, fact, mode) do
    case backed_up(swarm_id) do
      nil ->
        :ok

      entry ->
        case build(fact) do
          nil -> :ok
          fact -> send_fact(entry, fact, mode)
        end
    end
  end

  @doc "Whether changes to the swarm are being copied to a backup from here."
  def active?(swarm_id), do: backed_up(swarm_id) != nil

  # The swarm's row when it is homed here and has a backup. With no node
  # connected there is no backup to reach (a node that joins later gets the
  # whole swarm as a snapshot), so nothing is looked up.
  defp backed_up(swarm_id) do
    with [_, _ | _] <- SwarmService.Cluster.members(),
         %{home: home, backup: backup} = entry when home == node() and backup != nil <-
           Directory.lookup(swarm_id) do
      entry
    else
      _ -> nil
    end
  end

  defp build(fun) when is_function(fun, 0), do: fun.()
  defp build(fact), do: fact

  defp send_fact(entry, fact, :async) do
    Cluster.send({Replica, entry.backup}, {:apply, entry.swarm, entry.epoch, fact})
  end

  defp send_fact(entry, fact, :sync) do
    case safe_call(entry.backup, Replica, :apply, [entry.swarm, entry.epoch, fact]) do
      :ok ->
        :ok

      {:error, reason} when reason in [:not_loaded, :stale_epoch] ->
        # The backup is being loaded right now by Failover, or was loaded
        # under a newer epoch this row does not show yet (a takeover loads
        # the new backup before it publishes the row). Once that step is
        # done the backup holds everything applied before its snapshot; send
        # again. If we were replaced meanwhile, retry/2 answers :no_quorum.
        retry(Failover.current(entry.swarm), fact)

      {:error, _unreachable} ->
        # A replaced backup holds every fact applied before the snapshot it
        # got, this one included if it was applied already.
        retry(Failover.replace_backup(entry.swarm, entry.backup), fact)
    end
  end

  defp retry(%{home: home, backup: nil}, _fact) when home == node(), do: :ok

  defp retry(%{home: home} = entry, fact) when home == node() do
    case safe_call(entry.backup, Replica, :apply, [entry.swarm, entry.epoch, fact]) do
      :ok -> :ok
      {:error, :stale_epoch} -> {:error, :no_quorum}
      {:error, reason} -> {:error, {:replication_failed, reason}}
    end
  end

  defp retry(_moved, _fact), do: {:error, :no_quorum}

  @doc """
  Makes `backup` the backup of the swarm in `entry` (homed here): sends it
  the whole swarm and returns the new entry (epoch + 1), not yet
  published. `subscribers` are carried over for the next failover.
  """
  def load_backup(entry, backup, executor, subscribers) do
    new = %{entry | backup: backup, epoch: entry.epoch + 1}

    # Outcomes the engine reaches on its own are reported from before the
    # export on, so none falls between the snapshot and the first report.
    with :ok <- Native.swarm_report_outcomes(entry.swarm, true),
         {:ok, snapshot} <- Native.swarm_export(entry.swarm),
         snapshot = Map.merge(snapshot, %{executor: executor, subscribers: subscribers}),
         :ok <- safe_call(backup, Replica, :load, [entry.swarm, new.epoch, snapshot], 30_000) do
      new
    else
      _ -> %{entry | backup: nil, epoch: entry.epoch + 1}
    end
  end

  @doc "A live member other than this node and `avoid`, spread by swarm id; nil if none."
  def pick_backup(swarm_id, avoid) do
    case Failover.ready_members() -- [node() | avoid] do
      [] -> nil
      others -> Enum.at(others, :erlang.phash2(swarm_id, length(others)))
    end
  end

  @doc """
  A call to another member that answers `{:error, reason}` instead of
  raising, whatever happens there (a member that is still booting has no
  such process yet): replication and failover must not crash half-way.
  """
  def safe_call(node, module, fun, args, timeout \\ @timeout) do
    Cluster.call(node, module, fun, args, timeout)
  catch
    kind, reason -> {:error, {kind, reason}}
  end

  @doc "The configured replication mode; raises on a bad value (checked at boot by Failover)."
  def mode do
    case Application.get_env(:swarm_service, :replication, :sync) do
      mode when mode in [:sync, :async] ->
        mode

      other ->
        raise ArgumentError,
              "config :swarm_service, :replication must be :sync or :async, got #{inspect(other)}"
    end
  end
end
