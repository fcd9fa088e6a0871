defmodule SwarmService.Cluster.Local do
  @moduledoc """
  The single-node cluster adapter: this node is the only member. For tests
  and for nodes started without distribution (the default when the node is
  not alive).

  `send/2`, `broadcast/2` and `call/5` reach this node only; joining
  another node returns `{:error, {:not_supported, message}}`. There are no
  membership events, but subscriptions behave as with any adapter.
  """
  @behaviour SwarmService.Cluster
  use GenServer

  alias SwarmService.Cluster.Subscribers

  @impl SwarmService.Cluster
  @spec start_link(SwarmService.Cluster.config()) :: GenServer.on_start()
  def start_link(config), do: GenServer.start_link(__MODULE__, config, name: __MODULE__)

  @impl SwarmService.Cluster
  @spec members() :: [node()]
  def members, do: [node()]

  @impl SwarmService.Cluster
  @spec join(node()) :: :ok | {:error, {:not_supported, String.t()}}
  def join(node) when node == node(), do: :ok

  def join(node) do
    {:error,
     {:not_supported,
      "the local cluster adapter runs a single node and cannot join " <>
        "#{inspect(node, limit: 5, printable_limit: 100)}; start the node distributed " <>
        "(--name) with RUV_SWARM_CLUSTER=otp to form a cluster"}}
  end

  @impl SwarmService.Cluster
  @spec leave() :: :ok
  def leave, do: :ok

  @impl SwarmService.Cluster
  @spec subscribe(pid()) :: :ok
  def subscribe(pid), do: GenServer.call(__MODULE__, {:subscribe, pid})

  @impl SwarmService.Cluster
  @spec send(SwarmService.Cluster.dest(), term()) :: :ok
  def send({name, node}, message) when node == node() do
    case Process.whereis(name) do
      nil -> :ok
      pid -> Kernel.send(pid, message)
    end

    :ok
  end

  def send({_name, _other}, _message), do: :ok

  @impl SwarmService.Cluster
  @spec broadcast(atom(), term()) :: :ok
  def broadcast(name, message), do: __MODULE__.send({name, node()}, message)

  @impl SwarmService.Cluster
  @spec call(node(), module(), atom(), list(), timeout()) :: term()
  def call(node, module, fun, args, timeout) when node == node(),
    do: erpc(node, module, fun, args, timeout)

  def call(node, _module, _fun, _args, _timeout), do: {:error, {:nodedown, node}}

  @doc false
  # :erpc.call/5 with the two failures of the contract as values. Works on
  # a node without distribution too (erpc calls to node() stay local).
  def erpc(node, module, fun, args, timeout) do
    :erpc.call(node, module, fun, args, timeout)
  catch
    :error, {:erpc, :noconnection} -> {:error, {:nodedown, node}}
    :error, {:erpc, :timeout} -> {:error, :timeout}
  end

  @impl GenServer
  def init(_config), do: {:ok, Subscribers.new()}

  @impl GenServer
  def handle_call({:subscribe, pid}, _from, subs), do: {:reply, :ok, Subscribers.add(subs, pid)}

  @impl GenServer
  def handle_info({:DOWN, _ref, :process, pid, _reason}, subs),
    do: {:noreply, Subscribers.drop(subs, pid)}

  def handle_info(_other, subs), do: {:noreply, subs}
end
