defmodule InterfaceService.Tools.Recent do
  @moduledoc """
  The swarm (and task) most recently created in each scope, so that a call
  without `swarm_id` (ruv-swarm's tools take `swarmId` as optional) means
  "the swarm I just made".

  A scope is an MCP session id, or `:node` for REST and other callers
  without a session: two sessions never see each other's recent swarm.

  The entries live in an ETS table owned by this process; reads go to the
  table directly, writes through the process, which keeps the table
  bounded: at most `max_scopes` scopes (10,000 by default), the one written
  longest ago evicted first. A destroyed swarm is forgotten in every scope
  (`forget/1`).

  Only one table exists per node: the application starts its owner once,
  before the gateway, and every gateway in the node (tests run several)
  shares it. While no table exists, `swarm/1` and `task/1` answer `nil` and
  writes are dropped, so a call that names its swarm never depends on it.
  """
  use GenServer

  @table __MODULE__
  @default_max_scopes 10_000

  @type scope :: term()

  @doc false
  def child_spec(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}
  end

  @doc "Starts the owner of the table (`:ignore` when one already runs)."
  @spec start_link(keyword()) :: GenServer.on_start() | :ignore
  def start_link(opts \\ []) do
    case GenServer.start_link(__MODULE__, opts, name: __MODULE__) do
      {:error, {:already_started, _pid}} -> :ignore
      other -> other
    end
  end

  @doc "The swarm most recently created in `scope`, or nil."
  @spec swarm(scope) :: String.t() | nil
  def swarm(scope), do: field(scope, 2)

  @doc "The task most recently submitted in `scope`, or nil."
  @spec task(scope) :: String.t() | nil
  def task(scope), do: field(scope, 3)

  @doc "Records `swarm_id` as the scope's recent swarm (its recent task is cleared)."
  @spec put_swarm(scope, String.t()) :: :ok
  def put_swarm(scope, swarm_id), do: write_call({:put, scope, swarm_id, nil})

  @doc "Records `task_id` (of `swarm_id`) as the scope's recent task."
  @spec put_task(scope, String.t(), String.t()) :: :ok
  def put_task(scope, swarm_id, task_id) do
    # The task's swarm becomes the recent one only if the scope has none.
    write_call({:put_task, scope, swarm_id, task_id})
  end

  @doc "Forgets `swarm_id` (destroyed) in every scope."
  @spec forget(String.t()) :: :ok
  def forget(swarm_id), do: write_call({:forget, swarm_id})

  defp field(scope, pos) do
    case :ets.lookup(@table, scope) do
      [entry] -> elem(entry, pos - 1)
      [] -> nil
    end
  rescue
    ArgumentError -> nil
  end

  # A call, not a cast: the next request of the session (maybe served by
  # another process) must already see the write.
  defp write_call(msg) do
    case GenServer.whereis(__MODULE__) do
      nil -> :ok
      pid -> GenServer.call(pid, msg)
    end
  catch
    :exit, _ -> :ok
  end

  # --- server -------------------------------------------------------------------

  @impl true
  def init(opts) do
    # {scope, swarm_id, task_id, stamp}, and {stamp, scope} in write order.
    :ets.new(@table, [:set, :protected, :named_table, read_concurrency: true])
    order = :ets.new(:tools_recent_order, [:ordered_set, :private])
    max = Keyword.get(opts, :max_scopes, @default_max_scopes)
    {:ok, %{order: order, max: max, stamp: 0}}
  end

  @impl true
  def handle_call({:put, scope, swarm_id, task_id}, _from, state),
    do: {:reply, :ok, write(state, scope, swarm_id, task_id)}

  def handle_call({:put_task, scope, swarm_id, task_id}, _from, state) do
    swarm =
      case :ets.lookup(@table, scope) do
        [{^scope, current, _, _}] when is_binary(current) -> current
        _ -> swarm_id
      end

    {:reply, :ok, write(state, scope, swarm, task_id)}
  end

  def handle_call({:forget, swarm_id}, _from, state) do
    spec = [{{:"$1", swarm_id, :_, :"$2"}, [], [{{:"$1", :"$2"}}]}]

    for {scope, stamp} <- :ets.select(@table, spec) do
      :ets.delete(@table, scope)
      :ets.delete(state.order, stamp)
    end

    {:reply, :ok, state}
  end

  defp write(state, scope, swarm_id, task_id) do
    case :ets.lookup(@table, scope) do
      [{^scope, _, _, old}] -> :ets.delete(state.order, old)
      [] -> :ok
    end

    stamp = state.stamp + 1
    :ets.insert(@table, {scope, swarm_id, task_id, stamp})
    :ets.insert(state.order, {stamp, scope})
    evict(state.order, :ets.info(@table, :size) - state.max)
    %{state | stamp: stamp}
  end

  defp evict(_order, excess) when excess <= 0, do: :ok

  defp evict(order, excess) do
    oldest = :ets.first(order)
    [{^oldest, scope}] = :ets.lookup(order, oldest)
    :ets.delete(order, oldest)
    :ets.delete(@table, scope)
    evict(order, excess - 1)
  end
end
