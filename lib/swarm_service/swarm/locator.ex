defmodule SwarmService.Swarm.Locator do
  @moduledoc false
  # Where each swarm lives, as far as routing needs to know, and which
  # members are ready to host swarms and agents.
  #
  # A durable swarm lives on its Ra members (who leads is Ra's business,
  # asked of a member); an in-memory swarm on the one node that created
  # it. Nothing here decides anything: the truth is each node's own (its
  # Ra catalogue, its engine), this table only caches it. A creating node
  # tells every member; a node that has not heard (it joined later, a
  # message was lost) asks them all the first time it meets the id. A
  # stale row costs one extra hop: a member that is no longer the leader
  # forwards to the one that is.
  #
  # Members greet each other once their swarm processes are up (this
  # process is started after them); only greeted members are "ready".
  use GenServer

  alias SwarmService.{Cluster, Ids, Native, Raft}

  @table __MODULE__
  @ready Module.concat(__MODULE__, Ready)
  @ask_ms 2_000

  @typedoc "`{:raft, member_nodes}` or `{:memory, node}`."
  @type where :: {:raft, [node()]} | {:memory, node()}

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc "Records where a swarm created here lives, and tells every member."
  @spec put(String.t(), where()) :: :ok
  def put(swarm_id, where) do
    true = :ets.insert(@table, {swarm_id, where})
    Cluster.broadcast(__MODULE__, {:put, swarm_id, where})
  end

  @doc "Forgets a destroyed swarm, everywhere."
  @spec forget(String.t()) :: :ok
  def forget(swarm_id) do
    :ets.delete(@table, swarm_id)
    Cluster.broadcast(__MODULE__, {:forget, swarm_id})
  end

  @doc """
  The node to run a command about `id` (a swarm, agent, task or work id)
  on: `:here`, or another node. A durable swarm with a member here runs
  at its leader; an unknown id runs here (and answers "not found").
  """
  @spec home(term()) :: :here | node()
  def home(id) do
    swarm = Ids.swarm_of(id)

    cond do
      swarm == nil -> :here
      Raft.server(swarm) -> at(Raft.leader_node(swarm))
      true -> remote(swarm)
    end
  end

  defp at(nil), do: :here
  defp at(node) when node == node(), do: :here
  defp at(node), do: node

  defp remote(swarm) do
    case lookup(swarm) do
      {:memory, node} -> at(node)
      {:raft, nodes} -> at(first_live(nodes))
      nil -> :here
    end
  end

  # A member of the swarm that is up (a dead one cannot forward).
  defp first_live(nodes) do
    live = Cluster.members()
    Enum.find(nodes, &(&1 in live)) || List.first(nodes)
  end

  @doc "Where `swarm_id` lives: from the cache, else asked of every member."
  @spec lookup(String.t()) :: where() | nil
  def lookup(swarm_id) do
    case :ets.lookup(@table, swarm_id) do
      [{_, where}] -> where
      [] -> ask(swarm_id)
    end
  rescue
    # This node is (re)starting: it knows of no swarm yet.
    ArgumentError -> nil
  end

  defp ask(swarm_id) do
    found =
      (Cluster.members() -- [node()])
      |> Task.async_stream(&safe_call(&1, :local, [swarm_id]),
        timeout: @ask_ms + 500,
        on_timeout: :kill_task
      )
      |> Enum.find_value(fn
        {:ok, {kind, _} = where} when kind in [:raft, :memory] -> where
        _ -> nil
      end)

    if found, do: :ets.insert(@table, {swarm_id, found})
    found
  rescue
    ArgumentError -> nil
  end

  @doc "What this node knows first-hand of `swarm_id` (answers `lookup/1` elsewhere)."
  @spec local(String.t()) :: where() | nil
  def local(swarm_id) do
    cond do
      Raft.server(swarm_id) -> {:raft, Raft.member_nodes(swarm_id)}
      match?({:ok, _}, Native.swarm_status(swarm_id)) -> {:memory, node()}
      true -> nil
    end
  end

  @doc """
  Live members whose swarm processes are up (they greeted), this node
  included: the only ones a swarm or agent may be placed on.
  """
  @spec ready_members() :: [node()]
  def ready_members do
    Enum.filter(Cluster.members(), &(&1 == node() or ready?(&1)))
  end

  defp ready?(n) do
    :ets.member(@ready, n)
  rescue
    ArgumentError -> false
  end

  @doc "Calls `fun` on `node`, with any failure as an `{:error, _}` value."
  def safe_call(node, fun, args, module \\ __MODULE__, timeout \\ @ask_ms) do
    Cluster.call(node, module, fun, args, timeout)
  catch
    kind, reason -> {:error, {kind, reason}}
  end

  # ---- the process ---------------------------------------------------------------

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, read_concurrency: true])
    :ets.new(@ready, [:named_table, :set, :protected, read_concurrency: true])
    Cluster.subscribe(self())
    for n <- Cluster.members(), n != node(), do: hello(n, true)
    {:ok, nil}
  end

  defp hello(n, answer?), do: Cluster.send({__MODULE__, n}, {:hello, node(), answer?})

  @impl true
  def handle_info({:put, swarm_id, {kind, _} = where}, state)
      when is_binary(swarm_id) and kind in [:raft, :memory] do
    :ets.insert(@table, {swarm_id, where})
    {:noreply, state}
  end

  def handle_info({:forget, swarm_id}, state) when is_binary(swarm_id) do
    :ets.delete(@table, swarm_id)
    {:noreply, state}
  end

  def handle_info({:hello, n, answer?}, state) when is_atom(n) do
    :ets.insert(@ready, {n})
    if answer?, do: hello(n, false)
    # Durable swarms made while fewer nodes were ready may take it on.
    Raft.grow()
    {:noreply, state}
  end

  def handle_info({:cluster, :member_up, n}, state) do
    hello(n, true)
    {:noreply, state}
  end

  def handle_info({:cluster, :member_down, n}, state) do
    :ets.delete(@ready, n)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}
end
