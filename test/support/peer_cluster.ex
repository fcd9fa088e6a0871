defmodule SwarmService.Test.PeerCluster do
  @moduledoc """
  Real multi-node clusters for tests: peer nodes started with OTP's `:peer`,
  running `:swarm_service` with the test node's code and configuration.

      nodes = PeerCluster.start(3, members: :all)
      [a, b, c] = nodes
      PeerCluster.rpc(a, SwarmService.Cluster, :members, [])
      PeerCluster.partition([a, b], [c])
      PeerCluster.heal([a, b], [c])
      PeerCluster.kill(c)
      PeerCluster.restart(c)

  ## How the nodes are set up

    * The test node is distributed (`test/test_helper.exs` calls
      `ensure_distributed/0`) as a **hidden** node: it reaches every peer but
      is nobody's cluster member (`Node.list/0` on a peer never shows it,
      `:net_kernel.monitor_nodes/1` does not report it, `:global` does not
      mesh through it). So it can observe both sides of a partition without
      bridging them. `Node.list(:hidden)` on the test node lists the peers.
    * Each peer is a fresh VM named `peerN-<unique>@127.0.0.1`, with the test
      node's code path and application environment of `:swarm_service`
      (gateway off, cluster adapter `:otp`), plus `opts[:env]`.
    * The control channel is the peer's standard I/O (`connection:
      :standard_io`), not distribution: `rpc/4` keeps working while a peer
      is partitioned from everybody, and a peer's console output (its
      Logger, at `:error` by default) shows up in the test output. A peer
      halts when its control channel closes, so no VM outlives the test run.
    * Peers are started unlinked and stopped by an `ExUnit.Callbacks.on_exit/1`
      callback registered by `start/2` (pass `cleanup: false` outside ExUnit
      and call `stop/1` yourself).

  ## Partitions

  A partition must hold: OTP reconnects automatically whenever a process
  sends to a node it is not connected to, the cluster adapter keeps retrying
  its configured members, and `:global` (OTP 25, `prevent_overlapping_partitions`
  on by default) connects nodes transitively and disconnects nodes to keep
  every partition fully connected. `disconnect_node/1` alone is therefore
  undone within milliseconds. `partition/2` gives each side its own cookie
  first (`:erlang.set_cookie/1` on every peer), then disconnects every pair
  across the sides: any reconnection attempt now fails its handshake. The
  test node keeps per-node cookies for each peer so it can still reach both
  sides. `heal/2` restores the common cookie and connects the sides again.
  `test/swarm_service/cluster/peer_cluster_test.exs` checks that a partition
  holds for seconds while the adapter retries and `:global` runs.
  """
  import ExUnit.Assertions

  @table __MODULE__
  @host "127.0.0.1"
  @boot_timeout 30_000
  @wait_timeout 15_000
  @rpc_timeout 15_000

  # The OS environment a peer must not inherit from the test VM: it would
  # make the peer manage PID files or listen on fixed ports.
  @unset_env ~w(RUV_SWARM_MANAGED RUV_SWARM_DAEMON RUV_SWARM_NODE RUV_SWARM_HEALTH_PORT
                RUV_SWARM_GATEWAY RUV_SWARM_PORT)

  @doc """
  Makes the test node distributed (if it is not yet): starts `epmd -daemon`
  and names the node `test-<os pid>-<n>@127.0.0.1`, hidden, with a random
  cookie. Returns `node()`.
  """
  @spec ensure_distributed() :: node()
  def ensure_distributed do
    unless Node.alive?() do
      epmd = System.find_executable("epmd") || raise "epmd not found: install erlang"
      {_, 0} = System.cmd(epmd, ["-daemon"], stderr_to_stdout: true)
      # Test-only: node names of test VMs are generated here, not user input.
      name = String.to_atom("test-#{System.pid()}-#{System.unique_integer([:positive])}@#{@host}")

      case :net_kernel.start(name, %{name_domain: :longnames, hidden: true}) do
        {:ok, _} -> :ok
        {:error, reason} -> raise "cannot start distribution as #{name}: #{inspect(reason)}"
      end

      Node.set_cookie(random_cookie())
    end

    node()
  end

  @doc "A fresh node name `<prefix>-<unique>@127.0.0.1` (nothing is started)."
  @spec node_name(String.t()) :: node()
  def node_name(prefix \\ "peer") do
    String.to_atom("#{prefix}-#{System.pid()}-#{System.unique_integer([:positive])}@#{@host}")
  end

  @doc """
  Starts `n` peer nodes running `:swarm_service` and returns their names.

  Options:
    * `:env` — application environment of `:swarm_service` merged over the
      test node's (one level deep: a keyword value such as
      `SwarmService.Cluster: [seeds: [...]]` is merged, not replaced)
    * `:members` — `:all` sets the cluster's configured members
      (`SwarmService.Cluster` `:members`) to exactly the started nodes
    * `:names` — node names to use (see `node_name/1`), default fresh ones
    * `:connect` — `true` (default): connect every peer to every other one
      and wait until each sees all the others as connected members; `false`:
      leave connecting to the peers' own configuration (seeds)
    * `:log_level` — the peers' Logger level, default `:error`
    * `:cleanup` — `true` (default): stop the peers when the test (or the
      module, if called from `setup_all`) exits
    * `:dist_tls` — path of an ssl_dist options file: the peers' VMs run
      distribution over TLS (`-proto_dist inet_tls -ssl_dist_optfile F`).
      The test node speaks plain TCP and so never connects to them: drive
      them with `rpc/4` (the control channel), which needs no distribution.
  """
  @spec start(pos_integer(), keyword()) :: [node()]
  def start(n, opts \\ []) when is_integer(n) and n > 0 do
    ensure_distributed()
    ensure_table()
    names = Keyword.get_lazy(opts, :names, fn -> for i <- 1..n, do: node_name("peer#{i}") end)
    unless length(names) == n, do: raise(ArgumentError, ":names must list #{n} nodes")

    env = peer_env(opts, names)
    group = make_ref()
    cookie = Node.get_cookie()
    log_level = Keyword.get(opts, :log_level, :error)
    dist_tls = Keyword.get(opts, :dist_tls)

    if Keyword.get(opts, :cleanup, true), do: ExUnit.Callbacks.on_exit(fn -> stop(names) end)

    names
    |> Task.async_stream(
      fn name ->
        boot(%{
          node: name,
          env: env,
          group: group,
          cookie: cookie,
          log_level: log_level,
          dist_tls: dist_tls
        })
      end,
      timeout: @boot_timeout * 2,
      ordered: true
    )
    |> Enum.each(fn {:ok, :ok} -> :ok end)

    if Keyword.get(opts, :connect, true), do: mesh(names)
    names
  end

  @doc "Stops the given peers (those still running); forgets them."
  @spec stop([node()]) :: :ok
  def stop(nodes) do
    for node <- nodes, info <- lookup(node) do
      if info.pid, do: stop_peer(info)
      :ets.delete(@table, node)
    end

    :ok
  end

  @doc """
  Kills a peer abruptly (`kill -9` of its OS processes: no application
  shutdown, sockets closed by the OS) and waits until the test node sees it
  gone. `restart/1` brings it back.
  """
  @spec kill(node()) :: :ok
  def kill(node) do
    info = fetch!(node)

    if info.pid do
      ref = Process.monitor(info.pid)
      kill_tree(info.os_pid)

      receive do
        {:DOWN, ^ref, _, _, _} -> :ok
      after
        @wait_timeout -> flunk("peer #{node} did not die")
      end

      :ets.insert(@table, {node, %{info | pid: nil, os_pid: nil}})
      wait_until("#{node} to disconnect", fn -> node not in Node.list(:connected) end)
    end

    :ok
  end

  @doc """
  Starts a fresh VM under the same name, with the same environment and
  cookie (a peer restarted during a partition comes back on its side), kills
  it first if it still runs, connects it to the live peers of its `start/2`
  call that share its cookie and waits until they all see each other
  (`connect: false` leaves reconnecting to the cluster adapter).
  """
  @spec restart(node(), keyword()) :: :ok
  def restart(node, opts \\ []) do
    info = fetch!(node)
    if info.pid, do: kill(node)
    boot(info)

    same_side =
      for {n, i} <- :ets.tab2list(@table),
          i.group == info.group and i.pid != nil and i.cookie == info.cookie,
          do: n

    if Keyword.get(opts, :connect, true), do: mesh(same_side), else: :ok
  end

  @doc """
  Cuts every connection between the two sides and keeps them cut (see the
  moduledoc): each side gets its own cookie, then every pair across the
  sides is disconnected. Waits until no node of one side is connected to a
  node of the other. Peers inside a side stay connected.
  """
  @spec partition([node()], [node()]) :: :ok
  def partition(side_a, side_b) do
    set_side_cookie(side_a, random_cookie())
    set_side_cookie(side_b, random_cookie())

    for a <- live(side_a), b <- side_b do
      rpc(a, :erlang, :disconnect_node, [b])
    end

    # :global (prevent_overlapping_partitions) reacts to the cut by
    # disconnecting nodes *inside* a side as well; reconnect those until
    # both sides are whole and apart, three checks in a row.
    settle("partition #{inspect(side_a)} | #{inspect(side_b)}", fn ->
      mesh_once(side_a)
      mesh_once(side_b)

      meshed?(side_a) and meshed?(side_b) and separated?(side_a, side_b) and
        separated?(side_b, side_a)
    end)
  end

  @doc """
  Undoes `partition/2`: restores the common cookie on both sides, connects
  them again and waits until every live node of both sides sees every other.
  """
  @spec heal([node()], [node()]) :: :ok
  def heal(side_a, side_b) do
    cookie = Node.get_cookie()
    set_side_cookie(side_a ++ side_b, cookie)
    mesh(side_a ++ side_b)
  end

  @doc "Runs `apply(m, f, a)` on the peer over its control channel (works across partitions)."
  @spec rpc(node(), module(), atom(), list(), timeout()) :: term()
  def rpc(node, m, f, a, timeout \\ @rpc_timeout) do
    case fetch!(node) do
      %{pid: nil} -> raise ArgumentError, "peer #{node} is not running (killed?)"
      %{pid: pid} -> :peer.call(pid, m, f, a, timeout)
    end
  end

  @doc "The OS process id of a running peer (a string), or nil."
  @spec os_pid(node()) :: String.t() | nil
  def os_pid(node), do: fetch!(node).os_pid

  @doc "Whether the peer's VM is running (started and not killed)."
  @spec alive?(node()) :: boolean()
  def alive?(node), do: match?([%{pid: pid}] when is_pid(pid), lookup(node))

  @doc false
  # A :logger filter installed on every peer. While a partition holds,
  # connection attempts across it fail their handshake by design (different
  # cookies) and dist_util logs each one as an error; drop just those.
  def drop_rejected_handshakes(%{msg: {:report, %{format: format}}} = event, _extra)
      when is_list(format) do
    if :string.find(format, ~c"rejected. Invalid challenge reply") != :nomatch,
      do: :stop,
      else: event
  end

  def drop_rejected_handshakes(event, _extra), do: event

  # ---- booting ----------------------------------------------------------------

  defp boot(%{node: node} = info) do
    [name, host] = node |> Atom.to_string() |> String.split("@", parts: 2)

    peer_opts = %{
      name: String.to_charlist(name),
      host: String.to_charlist(host),
      longnames: true,
      connection: :standard_io,
      args: [~c"-setcookie", Atom.to_charlist(info.cookie) | tls_args(info[:dist_tls])],
      env: Enum.map(@unset_env, &{String.to_charlist(&1), false}),
      wait_boot: @boot_timeout
    }

    {:ok, pid} = start_peer(peer_opts, node, 5)
    os_pid = :peer.call(pid, :os, :getpid, []) |> List.to_string()
    info = Map.merge(info, %{pid: pid, os_pid: os_pid})
    :ets.insert(@table, {node, info})

    true = :peer.call(pid, :code, :set_path, [:code.get_path()])
    :ok = :peer.call(pid, :application, :load, [:logger])
    :ok = :peer.call(pid, :application, :set_env, [[logger: logger_env(info.log_level)]])

    :ok = :peer.call(pid, :application, :load, [:swarm_service])
    :ok = :peer.call(pid, :application, :set_env, [[swarm_service: info.env], [persistent: true]])

    case :peer.call(pid, :application, :ensure_all_started, [:swarm_service], @boot_timeout) do
      {:ok, _} -> :ok
      other -> flunk("swarm_service did not start on #{node}: #{inspect(other)}")
    end

    # (Only where this module is compiled to disk: not when a script
    # loaded it with Code.require_file, as bench/knowledge.exs does.)
    if match?({:module, _}, :peer.call(pid, :code, :ensure_loaded, [__MODULE__])) do
      :ok =
        :peer.call(pid, :logger, :add_primary_filter, [
          :partition_noise,
          {&__MODULE__.drop_rejected_handshakes/2, nil}
        ])
    end

    # The test node reaches the peer with the peer's current cookie (a TLS
    # peer it cannot reach: it is plain TCP).
    :erlang.set_cookie(node, info.cookie)
    if info[:dist_tls] == nil, do: true = Node.connect(node)
    :ok
  end

  defp tls_args(nil), do: []

  defp tls_args(optfile),
    do: [~c"-proto_dist", ~c"inet_tls", ~c"-ssl_dist_optfile", String.to_charlist(optfile)]

  # A restarted peer may find its name still registered in epmd for a few
  # milliseconds after the old VM died: retry.
  defp start_peer(peer_opts, node, attempts) do
    case :peer.start(peer_opts) do
      {:ok, pid, ^node} ->
        {:ok, pid}

      other when attempts > 1 ->
        _ = other
        Process.sleep(200)
        start_peer(peer_opts, node, attempts - 1)

      other ->
        flunk("cannot start peer #{node}: #{inspect(other)}")
    end
  end

  # Stopping is killing: nothing of a peer's state matters after a test,
  # and a peer that halts by itself races its helper processes (below).
  defp stop_peer(%{pid: pid, os_pid: os_pid}) do
    ref = Process.monitor(pid)
    kill_tree(os_pid)

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    after
      @wait_timeout -> :peer.stop(pid)
    end
  catch
    :exit, _ -> :ok
  end

  # SIGKILL to the VM and its helper processes (erl_child_setup and its
  # port programs such as inet_gethost) in one go: a helper that outlives
  # the VM by a moment reports a broken pipe on the test's stderr.
  defp kill_tree(os_pid) do
    # (Short-lived helpers may be gone already: kill's status is moot.)
    _ = System.cmd("kill", ["-9" | descendants([os_pid])], stderr_to_stdout: true)
    :ok
  end

  defp descendants([]), do: []

  defp descendants([pid | rest]) do
    {children, _} = System.cmd("pgrep", ["-P", pid])
    [pid | descendants(String.split(children) ++ rest)]
  end

  defp peer_env(opts, names) do
    base =
      Application.get_all_env(:swarm_service)
      |> deep_merge([
        {InterfaceService, [enabled: false]},
        {SwarmService.Cluster, [adapter: :otp]}
      ])
      |> deep_merge(Keyword.get(opts, :env, []))

    case Keyword.get(opts, :members) do
      nil -> base
      :all -> deep_merge(base, [{SwarmService.Cluster, [members: names]}])
      list when is_list(list) -> deep_merge(base, [{SwarmService.Cluster, [members: list]}])
    end
  end

  defp deep_merge(base, overrides) do
    Keyword.merge(base, overrides, fn _key, a, b ->
      if Keyword.keyword?(a) and Keyword.keyword?(b) and a != [] and b != [],
        do: Keyword.merge(a, b),
        else: b
    end)
  end

  defp logger_env(level) do
    Application.get_all_env(:logger) |> Keyword.put(:level, level)
  end

  # ---- connections -------------------------------------------------------------

  # Connects every live node of `nodes` to every other one and waits until
  # each sees all the others.
  defp mesh(nodes) do
    settle("#{inspect(nodes)} to see each other", fn ->
      mesh_once(nodes)
      meshed?(nodes)
    end)
  end

  defp mesh_once(nodes) do
    nodes = live(nodes)

    for a <- nodes, seen = rpc(a, :erlang, :nodes, []), b <- nodes, b != a, b not in seen do
      rpc(a, :net_kernel, :connect_node, [b])
    end
  end

  defp meshed?(nodes) do
    nodes = live(nodes)

    Enum.all?(nodes, fn n ->
      seen = rpc(n, :erlang, :nodes, [])
      Enum.all?(nodes -- [n], &(&1 in seen)) and members?(n, nodes)
    end)
  end

  # With the OTP adapter a connected node is a member once the two adapters
  # have greeted each other.
  defp members?(n, nodes) do
    rpc(n, SwarmService.Cluster, :adapter, []) != SwarmService.Cluster.OTP or
      Enum.all?(nodes, &(&1 in rpc(n, SwarmService.Cluster, :members, [])))
  end

  defp separated?(side, other) do
    Enum.all?(live(side), fn n ->
      seen = rpc(n, :erlang, :nodes, [])
      not Enum.any?(other, &(&1 in seen))
    end)
  end

  defp set_side_cookie(side, cookie) do
    for node <- side, info <- lookup(node) do
      if info.pid, do: true = rpc(node, :erlang, :set_cookie, [cookie])
      :erlang.set_cookie(node, cookie)
      :ets.insert(@table, {node, %{info | cookie: cookie}})
    end
  end

  defp live(nodes), do: Enum.filter(nodes, &alive?/1)

  defp wait_until(what, fun), do: settle(what, fun, 1)

  # Polls `fun` until it returns true `times` times in a row (20 ms apart).
  defp settle(what, fun, times \\ 3) do
    deadline = System.monotonic_time(:millisecond) + @wait_timeout
    settle(what, fun, times, times, deadline)
  end

  defp settle(what, fun, left, times, deadline) do
    left = if fun.(), do: left - 1, else: times

    cond do
      left == 0 ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        flunk("timed out waiting for #{what}")

      true ->
        Process.sleep(20)
        settle(what, fun, left, times, deadline)
    end
  end

  # ---- bookkeeping ----------------------------------------------------------------

  # A public table owned by a process that lives as long as the test VM,
  # so any test process can start, kill and stop peers.
  defp ensure_table do
    if :ets.whereis(@table) == :undefined do
      parent = self()

      {pid, ref} =
        spawn_monitor(fn ->
          try do
            :ets.new(@table, [:named_table, :public, :set])
            send(parent, {:table_ready, self()})
            Process.sleep(:infinity)
          rescue
            ArgumentError -> send(parent, {:table_ready, self()})
          end
        end)

      receive do
        {:table_ready, ^pid} -> Process.demonitor(ref, [:flush])
      end
    end

    :ok
  end

  defp lookup(node) do
    if :ets.whereis(@table) == :undefined,
      do: [],
      else: for({_, info} <- :ets.lookup(@table, node), do: info)
  end

  defp fetch!(node) do
    case lookup(node) do
      [info] ->
        info

      [] ->
        raise ArgumentError, "#{inspect(node)} is not a peer started by #{inspect(__MODULE__)}"
    end
  end

  defp random_cookie do
    # Test-only atoms, a handful per partition.
    String.to_atom(
      "ruv-test-" <> Base.url_encode64(:crypto.strong_rand_bytes(12), padding: false)
    )
  end
end
