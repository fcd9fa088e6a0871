defmodule SwarmService.Cluster.Directory do
  @moduledoc false
  # Which node is home and which is backup for each swarm, on every node.
  #
  # Rows are {swarm_id, home, backup, epoch, state}; `state` is :live or
  # :destroyed (a tombstone, so a late copy of an old row cannot bring a
  # destroyed swarm back). The epoch grows by one at every change of home
  # or backup; between two rows for one swarm the higher epoch wins, so
  # every node converges on the same row whatever order updates arrive in.
  # Reads are plain ETS lookups in the caller; writes go through this
  # process so "compare epochs, then insert" is atomic.
  #
  # A swarm this node has no row for is answered from the local engine
  # (which says :swarm_not_found if it has never heard of it either): a
  # single node without a cluster needs no rows at all.
  use GenServer

  alias SwarmService.Cluster

  @table __MODULE__
  # A destroyed swarm's row outlives it this long: long enough for every
  # stale copy of the live row to have arrived and lost against it.
  @tombstone_ms 60_000

  @type entry :: %{
          swarm: String.t(),
          home: node,
          backup: node | nil,
          epoch: pos_integer,
          state: :live | :destroyed
        }

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc "The swarm id inside any id (`swarm-…`, `swarm-….task-3`, `swarm-….task-3/0/1`)."
  # (Parsed by the engine: SwarmService.Ids. nil for what is not an id.)
  def swarm_of(id), do: SwarmService.Ids.swarm_of(id)

  @doc "Where calls about `id` run: `:here` or the home node."
  def home(id) do
    case lookup(swarm_of(id)) do
      %{home: home, state: :live} when home != node() -> home
      _ -> :here
    end
  end

  @doc "The row of a swarm, or nil."
  def lookup(nil), do: nil

  def lookup(swarm_id) do
    case :ets.lookup(@table, swarm_id) do
      [row] -> to_entry(row)
      [] -> nil
    end
  catch
    :error, :badarg -> nil
  end

  @doc "Every row."
  def entries, do: :ets.tab2list(@table) |> Enum.map(&to_entry/1)

  @doc """
  Offers `entry` to this node's directory; kept if its epoch is higher than
  the row held. Returns the previous row (nil if none) when it was kept,
  `:stale` otherwise.
  """
  def put(entry), do: GenServer.call(__MODULE__, {:put, entry})

  @doc "Offers `entry` to every live member (this node included), and waits."
  def publish(entry) do
    for n <- Cluster.members(), n != node() do
      SwarmService.Cluster.Replication.safe_call(n, __MODULE__, :put, [entry])
    end

    put(entry)
  end

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :set, :protected, read_concurrency: true])
    {:ok, nil}
  end

  @impl true
  def handle_call({:put, %{swarm: id, epoch: epoch} = entry}, _from, state) do
    case lookup(id) do
      %{epoch: held} = previous when held >= epoch ->
        {:reply, if(previous == entry, do: previous, else: :stale), state}

      previous ->
        :ets.insert(@table, to_row(entry))

        # Failover starts after us: a row that changes while it is not
        # (yet, or again) running is seen by its first sweep instead.
        failover = Process.whereis(SwarmService.Cluster.Failover)
        if previous && failover, do: send(failover, {:directory_changed, previous, entry})

        if entry.state == :destroyed,
          do: Process.send_after(self(), {:expire, entry}, @tombstone_ms)

        {:reply, previous, state}
    end
  end

  @impl true
  def handle_info({:expire, %{swarm: id} = tombstone}, state) do
    if lookup(id) == tombstone, do: :ets.delete(@table, id)
    {:noreply, state}
  end

  defp to_row(e), do: {e.swarm, e.home, e.backup, e.epoch, e.state}

  defp to_entry({swarm, home, backup, epoch, state}),
    do: %{swarm: swarm, home: home, backup: backup, epoch: epoch, state: state}
end
