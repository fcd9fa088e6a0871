defmodule SwarmService.Cluster.OTP do
  @moduledoc """
  The cluster adapter on plain OTP distribution.

    * **Membership** is the set of connected nodes that run this adapter:
      when a node connects (`:net_kernel.monitor_nodes/1`) the two adapters
      greet each other, and only then is the other node a member
      (`:member_up`); it stops being one when its connection goes
      (`:member_down`). `members/0` is this node and those, sorted. A node
      that connects without running it — `iex --remsh`, an observer, a
      hidden node such as the test node of `SwarmService.Test.PeerCluster`
      — is never a member: no swarm is placed there, no broadcast is sent
      there.
    * **Messages**: `send/2` is `send/2` to `{name, node}` with
      `:noconnect` (a node that is not connected is not implicitly
      connected; the message is dropped), `broadcast/2` sends to every
      member, `call/5` is `:erpc.call/5` with `{:error, {:nodedown, node}}`
      and `{:error, :timeout}` as values.
    * **Seeds and reconnection**: at start, the node connects to its seeds
      (`:seeds`) and configured members (`:members`), and to nodes it
      joined with `join/1` later on. While one of these is not connected —
      not up yet, crashed, restarted, on the other side of a partition — it
      is retried with exponential backoff from `:retry_ms` (200 ms) doubling
      to `:max_retry_ms` (5 s), with jitter. So a node that boots before its
      seeds waits for them, and a healed partition or restarted node rejoins
      by itself. Connection attempts run in their own process: a slow
      attempt never blocks the adapter.
    * **Leaving**: `leave/0` tells the members (so they stop retrying this
      node), disconnects from all of them and stops reconnecting; a node
      that connects while this node is out is disconnected again. `join/1`
      ends that state.
    * **Failure detection**: a node that crashes or whose host closes its
      sockets is seen down at once (the TCP connection closes). A node that
      stops answering without closing its connection (frozen VM, cut
      cable) is seen down by the distribution ticks: with `net_ticktime` T
      (`RUV_SWARM_NET_TICKTIME`, OTP default 60 s, tick intensity 4) it is
      declared down after between 0.75 T and T seconds of silence. Lower T
      detects faster but risks false alarms on a busy or slow network; all
      nodes of a cluster should use the same value. `:net_kernel.set_net_ticktime/2`
      applies it when the adapter starts.

  `:global` (OTP 25, `prevent_overlapping_partitions` on by default) also
  connects nodes transitively, so a node connected to one member soon
  sees all of them, and it disconnects nodes so that every partition is
  fully connected.
  """
  @behaviour SwarmService.Cluster
  use GenServer
  require Logger

  alias SwarmService.Cluster.{Local, Subscribers}

  @impl SwarmService.Cluster
  @spec start_link(SwarmService.Cluster.config()) :: GenServer.on_start()
  def start_link(config), do: GenServer.start_link(__MODULE__, config, name: __MODULE__)

  # The members other than this node, written by the adapter process only.
  @members :swarm_cluster_otp_members

  @impl SwarmService.Cluster
  @spec members() :: [node()]
  def members do
    Enum.sort([node() | :ets.select(@members, [{{:"$1"}, [], [:"$1"]}])])
  rescue
    # The adapter is not running (yet): no other member is known.
    ArgumentError -> [node()]
  end

  # How long join/1 waits for the joined node's adapter to greet this one.
  @greeting_ms 5_000

  @impl SwarmService.Cluster
  @spec join(node()) :: :ok | {:error, term()}
  def join(node) when node == node(), do: :ok

  def join(node) when is_atom(node) and node not in [nil, true, false] do
    :ok = GenServer.call(__MODULE__, :rejoin)

    with true <- :net_kernel.connect_node(node),
         :ok <- GenServer.call(__MODULE__, {:joined, node}),
         true <- greeted?(node, System.monotonic_time(:millisecond) + @greeting_ms) do
      :ok
    else
      :not_member ->
        {:error,
         {:invalid_argument, "#{node} is reachable but does not run ruv_swarm's cluster adapter"}}

      _ ->
        {:error, {:nodedown, node}}
    end
  end

  def join(other),
    do: {:error, {:invalid_argument, "join needs a node name, got #{inspect(other, limit: 5)}"}}

  defp greeted?(node, deadline) do
    cond do
      :ets.member(@members, node) -> true
      node not in Node.list() -> false
      System.monotonic_time(:millisecond) >= deadline -> :not_member
      true -> retry_greeted?(node, deadline)
    end
  end

  defp retry_greeted?(node, deadline) do
    Process.sleep(10)
    greeted?(node, deadline)
  end

  @impl SwarmService.Cluster
  @spec leave() :: :ok
  def leave, do: GenServer.call(__MODULE__, :leave, 15_000)

  @impl SwarmService.Cluster
  @spec subscribe(pid()) :: :ok
  def subscribe(pid), do: GenServer.call(__MODULE__, {:subscribe, pid})

  @impl SwarmService.Cluster
  @spec send(SwarmService.Cluster.dest(), term()) :: :ok
  def send({_name, node} = dest, message) when node == node(), do: Local.send(dest, message)

  def send(dest, message) do
    _ = :erlang.send(dest, message, [:noconnect])
    :ok
  end

  @impl SwarmService.Cluster
  @spec broadcast(atom(), term()) :: :ok
  def broadcast(name, message) do
    Enum.each(members(), &__MODULE__.send({name, &1}, message))
  end

  @impl SwarmService.Cluster
  @spec call(node(), module(), atom(), list(), timeout()) :: term()
  def call(node, module, fun, args, timeout) do
    if node == node() or node in Node.list(),
      do: Local.erpc(node, module, fun, args, timeout),
      else: {:error, {:nodedown, node}}
  end

  # ---- the process -----------------------------------------------------------------

  @impl GenServer
  def init(config) do
    if Node.alive?() do
      if config.cookie, do: Node.set_cookie(config.cookie)
      if config.net_ticktime, do: :net_kernel.set_net_ticktime(config.net_ticktime, 0)
      :ok = :net_kernel.monitor_nodes(true)
      :ets.new(@members, [:named_table, :protected, :set, read_concurrency: true])
      # Nodes connected before this adapter started learn of it here.
      Enum.each(Node.list(), &greet(&1, true))

      state = %{
        config: config,
        subs: Subscribers.new(),
        # nodes to stay connected to: seeds, configured members, joined nodes
        targets: MapSet.new(config.seeds ++ config.members) |> MapSet.delete(node()),
        # members that announced they left (not retried until they come back)
        departed: MapSet.new(),
        # node => %{delay: ms, timer: ref | nil, attempt: pid | nil}
        retry: %{},
        left?: false
      }

      {:ok, retry_all(state)}
    else
      {:stop,
       "the otp cluster adapter needs a distributed node: start it with --name " <>
         "(or RUV_SWARM_NODE), or set RUV_SWARM_CLUSTER=local"}
    end
  end

  @impl GenServer
  def handle_call({:subscribe, pid}, _from, state),
    do: {:reply, :ok, %{state | subs: Subscribers.add(state.subs, pid)}}

  def handle_call(:rejoin, _from, %{left?: true} = state),
    do: {:reply, :ok, retry_all(%{state | left?: false})}

  def handle_call(:rejoin, _from, state), do: {:reply, :ok, state}

  def handle_call({:joined, node}, _from, state),
    do: {:reply, :ok, %{state | targets: MapSet.put(state.targets, node)}}

  def handle_call(:leave, _from, state) do
    state = Enum.reduce(Map.keys(state.retry), %{state | left?: true}, &cancel_retry(&2, &1))
    _ = GenServer.multi_call(Node.list(), __MODULE__, {:departing, node()}, 5_000)
    # :global.disconnect/0 removes just this node: disconnecting peer by
    # peer would make :global (prevent_overlapping_partitions) reconnect
    # and disconnect nodes while the connections go one by one.
    _ = :global.disconnect()
    Enum.each(Node.list(), &:erlang.disconnect_node/1)
    Logger.info("cluster: #{node()} left the cluster")
    {:reply, :ok, state}
  end

  def handle_call({:departing, node}, _from, state) do
    state = cancel_retry(state, node)
    {:reply, :ok, %{state | departed: MapSet.put(state.departed, node)}}
  end

  @impl GenServer
  def handle_info({:nodeup, node}, state) do
    state = cancel_retry(%{state | departed: MapSet.delete(state.departed, node)}, node)

    if state.left?,
      do: :erlang.disconnect_node(node),
      else: greet(node, true)

    {:noreply, state}
  end

  # The other node's adapter: it is a member from now on. A greeting sent
  # on nodeup asks for an answer, so each side learns of the other
  # whoever connected, also when a greeting of an earlier connection
  # arrived before that connection's nodedown.
  def handle_info({:member_hello, node, answer?}, state) when is_atom(node) do
    if not state.left? and node in Node.list() do
      if answer?, do: greet(node, false)

      unless :ets.member(@members, node) do
        :ets.insert(@members, {node})
        Subscribers.notify(state.subs, :member_up, node)
        Logger.info("cluster: #{node} up")
      end
    end

    {:noreply, state}
  end

  def handle_info({:nodedown, node}, state) do
    if :ets.member(@members, node) do
      :ets.delete(@members, node)
      Subscribers.notify(state.subs, :member_down, node)
      unless state.left?, do: Logger.info("cluster: #{node} down")
    end

    {:noreply, maybe_retry(cancel_retry(state, node), node)}
  end

  def handle_info({:connect, node}, state) do
    case state.retry do
      %{^node => entry} ->
        if wanted?(state, node) do
          me = self()
          pid = spawn(fn -> Kernel.send(me, {:connected, node, self(), connect(node)}) end)
          {:noreply, put_in(state.retry[node], %{entry | timer: nil, attempt: pid})}
        else
          {:noreply, %{state | retry: Map.delete(state.retry, node)}}
        end

      _ ->
        {:noreply, state}
    end
  end

  # Only the result of the entry's current attempt counts.
  def handle_info({:connected, node, pid, ok?}, state) do
    case state.retry do
      %{^node => %{attempt: ^pid} = entry} ->
        if not ok? and wanted?(state, node) do
          {:noreply, put_in(state.retry[node], schedule(entry, node, entry.delay, state))}
        else
          {:noreply, %{state | retry: Map.delete(state.retry, node)}}
        end

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:DOWN, _ref, :process, pid, _reason}, state),
    do: {:noreply, %{state | subs: Subscribers.drop(state.subs, pid)}}

  def handle_info(_other, state), do: {:noreply, state}

  # ---- reconnection ----------------------------------------------------------------

  defp greet(node, answer?),
    do: :erlang.send({__MODULE__, node}, {:member_hello, node(), answer?}, [:noconnect])

  defp connect(node) do
    :net_kernel.connect_node(node) == true
  catch
    _, _ -> false
  end

  defp wanted?(state, node) do
    not state.left? and MapSet.member?(state.targets, node) and
      not MapSet.member?(state.departed, node) and node not in Node.list()
  end

  defp retry_all(state), do: Enum.reduce(state.targets, state, &maybe_retry(&2, &1))

  # Starts retrying `node` (first attempt now) unless it is connected,
  # not wanted, or already being retried.
  defp maybe_retry(state, node) do
    if wanted?(state, node) and not Map.has_key?(state.retry, node) do
      Kernel.send(self(), {:connect, node})
      put_in(state.retry[node], %{delay: state.config.retry_ms, timer: nil, attempt: nil})
    else
      state
    end
  end

  # The next attempt in `wait` ms (plus up to 25 % jitter); the one after
  # waits twice as long, up to :max_retry_ms.
  defp schedule(entry, node, wait, state) do
    jitter = :rand.uniform(max(div(wait, 4), 1)) - 1

    %{
      entry
      | delay: min(wait * 2, state.config.max_retry_ms),
        attempt: nil,
        timer: Process.send_after(self(), {:connect, node}, wait + jitter)
    }
  end

  defp cancel_retry(state, node) do
    case Map.pop(state.retry, node) do
      {nil, _} ->
        state

      {entry, retry} ->
        if entry.timer, do: Process.cancel_timer(entry.timer)
        %{state | retry: retry}
    end
  end
end
