defmodule SwarmService.Cluster.Knowledge do
  @moduledoc """
  A cluster-wide knowledge repository: one key/value namespace replicated to
  every node of the cluster (`SwarmService.Cluster`).

  ## Consistency model

  What is guaranteed:

    * **Convergence.** Nodes that can talk to each other end up with the
      same entries (eventual consistency), whatever order writes arrive in:
      every write carries a stamp and, per key, the write with the largest
      `{stamp, node}` wins (last-writer-wins). The stamp is a hybrid logical
      clock (`SwarmService.Cluster.HLC`): wall-clock milliseconds plus a
      counter, merged on every receive, so a write always wins over every
      write its node had seen. Two writes with equal stamps are ordered by
      **node priority**: the node whose name sorts last (Erlang term order
      of atoms, i.e. byte order of the names) wins. Every node applies the
      same rule, so concurrent writes to one key settle on the same winner
      everywhere.
    * **Writes need quorum.** `put/3` and `delete/2` return
      `{:error, :no_quorum}` on a node without quorum
      (`SwarmService.Cluster.quorum?/0`), so with a configured member list
      the minority side of a partition cannot write.
    * **An acknowledged write is held by a majority.** With a configured
      member list, `{:ok, stamp}` comes back once a strict majority of the
      configured members (the writer included) have applied the write. It
      survives the loss of any minority of nodes, and it is never undone
      by a partition healing (the other side wrote nothing, having no
      quorum). If the acknowledgements do not arrive within `:timeout`, the
      result is `{:error, :no_quorum}`, but the write may still spread: its
      outcome is unknown, as with any timed-out write. Without a configured
      member list, a write is acknowledged once applied on the writing
      node and sent to the others.
    * **Repair.** Each write is applied locally and sent to every member at
      once. Anything missed — a message dropped, a node partitioned away,
      restarted or new — is repaired by anti-entropy: every
      `:anti_entropy_ms` (1 s) each node sends every other member a digest
      of its entries (one number); only when digests differ do the two
      nodes compare 256 bucket digests, then the versions of the keys in
      the differing buckets, and the node that lacks something pulls it. A
      node also syncs with each member as soon as it comes up, so a
      restarted node (which starts empty) pulls everything at once.

  What is not guaranteed:

    * **No read-your-writes across nodes, no linearizability.** Reads are
      local ETS lookups (no process, no network): another node sees a write
      when its delta arrives, usually within milliseconds, at worst after
      an anti-entropy round once it is connected again.
    * **Last writer wins, not "every write counts".** Of two concurrent
      writes to a key, one is silently replaced. There is no
      compare-and-set. A node whose wall clock runs ahead wins conflicts
      until the others catch up: keep clocks synchronised.
    * **Durable on each node.** Every node keeps the entries it applied in
      `knowledge.log` in its data directory (`SwarmService.Raft.data_dir/0`),
      synced before it acknowledges a write or a peer's delta, and reads
      it back on boot: a whole cluster that stops, even by kill -9, finds
      every acknowledged entry again. What a node missed while down it
      pulls from the others.
    * **Without a configured member list there is no partition
      protection**: every side accepts writes and last-writer-wins merges
      them when the partition heals.

  ## Deletes and tombstones

  `delete/2` writes a tombstone: a deletion is a write like any other, so
  it wins over older writes and loses to newer ones, on every node. A
  tombstone is kept for `:tombstone_ttl_ms` (default one day) after its
  stamp, then purged. The window must exceed the longest partition or
  downtime after which a node may come back with its entries: a node that
  returns with an older value of a key whose tombstone was already purged
  elsewhere would bring that value back. (A restarted node comes back
  empty, so restarts are safe; only a long partition is a risk.) Purging
  keeps memory bounded when keys churn.

  ## Limits

  Keys are binaries of 1 to 256 bytes; values any term up to 1 MiB as
  `:erlang.external_size/1` (the limits of `SwarmService.RuvSwarm`).

  ## Configuration

  `config :swarm_service, SwarmService.Cluster.Knowledge`, `:anti_entropy_ms`
  (`RUV_SWARM_ANTI_ENTROPY_MS`, default `1_000`) and `:tombstone_ttl_ms`
  (default `86_400_000`).
  """
  use GenServer
  import Bitwise

  alias SwarmService.{Cluster, Options}
  alias SwarmService.Cluster.HLC
  alias SwarmService.Cluster.Knowledge.Store

  @table __MODULE__
  @buckets 256
  @max_key_bytes 256
  @max_limit 10_000
  @default_timeout 5_000
  # Deltas sent as answers to pulls are cut into messages of about this size.
  @chunk_bytes 8 * 1024 * 1024
  @summary_chunk 10_000
  # A key pulled from one node is not pulled again (from another) for this long.
  @pull_ttl_ms 5_000

  @type key :: binary()
  @type stamp :: HLC.stamp()
  @type entry :: %{key: key(), value: term(), stamp: stamp(), node: node()}
  @type reason ::
          :no_quorum
          | {:invalid_argument, String.t()}
          | {:too_large, String.t(), pos_integer(), pos_integer()}

  # ETS rows: {key, stamp, node, value, deleted?, hash}. `hash` is the
  # entry's 128-bit digest contribution (see hash/4).

  # ---- API ----------------------------------------------------------------------

  @doc """
  Stores `value` under `key` on every node. Returns `{:ok, stamp}` once the
  write is acknowledged (see the moduledoc), `{:error, :no_quorum}` on a
  node without quorum, or `{:error, reason}` for bad input. Options:
  `:timeout` — how long to wait for a majority's acknowledgements, in ms
  (default 5,000, at most 60,000).

      iex> {:ok, {_ms, _counter}} = SwarmService.Cluster.Knowledge.put("doc/answer", 42)
      iex> {:ok, entry} = SwarmService.Cluster.Knowledge.get("doc/answer")
      iex> {entry.value, entry.node == node()}
      {42, true}
  """
  @spec put(key(), term(), keyword() | map()) :: {:ok, stamp()} | {:error, reason()}
  def put(key, value, opts \\ []) do
    with :ok <- check_key(key),
         {:ok, timeout} <- timeout(opts),
         :ok <- Options.check_payload(value, "value") do
      write(key, value, false, timeout)
    end
  end

  @doc """
  Deletes `key` everywhere by writing a tombstone (last-writer-wins like a
  put). `:ok` also when the key does not exist. Same errors and options as
  `put/3`.
  """
  @spec delete(key(), keyword() | map()) :: :ok | {:error, reason()}
  def delete(key, opts \\ []) do
    with :ok <- check_key(key),
         {:ok, timeout} <- timeout(opts),
         {:ok, _stamp} <- write(key, nil, true, timeout),
         do: :ok
  end

  @doc """
  Reads `key` from this node's replica: `{:ok, %{key, value, stamp, node}}`
  (`node` wrote it) or `{:error, :not_found}`.
  """
  @spec get(key()) :: {:ok, entry()} | {:error, :not_found | {:invalid_argument, String.t()}}
  def get(key) do
    with :ok <- check_key(key) do
      case :ets.lookup(@table, key) do
        [{^key, stamp, node, value, false, _hash}] ->
          {:ok, %{key: key, value: value, stamp: stamp, node: node}}

        _ ->
          {:error, :not_found}
      end
    end
  end

  @doc """
  Entries of this node's replica in key order. Options: `:prefix` (a binary,
  default `""`: all keys) and `:limit` (default 100, at most 10,000).
  """
  @spec list(keyword() | map()) :: {:ok, [entry()]} | {:error, {:invalid_argument, String.t()}}
  def list(opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:prefix, :limit]),
         {:ok, limit} <- Options.count(o, :limit, 100, 1, @max_limit),
         {:ok, prefix} <- prefix(o) do
      {:ok, collect(first_key(prefix), prefix, limit, [])}
    end
  end

  @doc """
  This node's replica at a glance: live `entries`, `tombstones`, and
  `digest`, a number equal on two nodes holding the same entries.
  """
  @spec info() :: %{entries: non_neg_integer(), tombstones: non_neg_integer(), digest: integer()}
  def info, do: GenServer.call(__MODULE__, :info)

  defp write(key, value, deleted?, timeout) do
    GenServer.call(__MODULE__, {:write, key, value, deleted?, timeout}, timeout + 5_000)
  end

  defp check_key(key) when is_binary(key) and byte_size(key) in 1..@max_key_bytes, do: :ok
  defp check_key(_), do: Options.invalid("key must be a binary of 1 to #{@max_key_bytes} bytes")

  defp timeout(opts) do
    with {:ok, o} <- Options.normalize(opts, [:timeout]),
         do: Options.count(o, :timeout, @default_timeout, 0, 60_000)
  end

  defp prefix(o) do
    case Map.get(o, :prefix, "") do
      p when is_binary(p) and byte_size(p) <= @max_key_bytes -> {:ok, p}
      _ -> Options.invalid("prefix must be a binary of at most #{@max_key_bytes} bytes")
    end
  end

  defp first_key(""), do: :ets.first(@table)

  defp first_key(prefix),
    do: if(:ets.member(@table, prefix), do: prefix, else: :ets.next(@table, prefix))

  defp collect(_key, _prefix, 0, acc), do: Enum.reverse(acc)
  defp collect(:"$end_of_table", _prefix, _left, acc), do: Enum.reverse(acc)

  defp collect(key, prefix, left, acc) do
    if has_prefix?(key, prefix) do
      case :ets.lookup(@table, key) do
        [{^key, stamp, node, value, false, _}] ->
          entry = %{key: key, value: value, stamp: stamp, node: node}
          collect(:ets.next(@table, key), prefix, left - 1, [entry | acc])

        _ ->
          collect(:ets.next(@table, key), prefix, left, acc)
      end
    else
      Enum.reverse(acc)
    end
  end

  defp has_prefix?(key, prefix),
    do: byte_size(key) >= byte_size(prefix) and binary_part(key, 0, byte_size(prefix)) == prefix

  # ---- the process ----------------------------------------------------------------

  @doc false
  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(opts) do
    config = config!(opts)
    :ets.new(@table, [:named_table, :ordered_set, :protected, read_concurrency: true])
    :ok = Cluster.subscribe(self())

    state = %{
      config: config,
      clock: HLC.new(),
      digest: 0,
      buckets: Tuple.duplicate(0, @buckets),
      # ref => %{from, stamp, needed, acked, timer}: writes awaiting acks
      writes: %{},
      # key => {version, deadline}: keys asked for, not received yet
      pulls: %{},
      next_gc: 0,
      store: nil
    }

    case Store.open(SwarmService.Raft.data_dir()) do
      {:ok, device, entries} ->
        state = Enum.reduce(entries, state, &load_entry(&2, &1))
        {:ok, %{state | store: device}, {:continue, :sync}}

      {:error, reason} ->
        {:stop, {:knowledge_store, reason}}
    end
  end

  defp load_entry(state, {_key, stamp, _node, _value, _deleted?} = entry) do
    apply_entry(%{state | clock: HLC.merge(state.clock, stamp)}, entry)
  end

  @doc false
  # The validated configuration; raises ArgumentError naming a wrong option.
  def config!(opts) do
    opts = Keyword.merge(Application.get_env(:swarm_service, __MODULE__, []), opts)

    case Enum.find(Keyword.keys(opts), &(&1 not in [:anti_entropy_ms, :tombstone_ttl_ms])) do
      nil -> :ok
      key -> raise ArgumentError, "unknown #{inspect(__MODULE__)} option #{inspect(key)}"
    end

    %{
      anti_entropy_ms:
        int!(
          :anti_entropy_ms,
          Keyword.get(opts, :anti_entropy_ms, 1_000),
          10,
          3_600_000,
          " (RUV_SWARM_ANTI_ENTROPY_MS)"
        ),
      tombstone_ttl_ms:
        int!(
          :tombstone_ttl_ms,
          Keyword.get(opts, :tombstone_ttl_ms, 86_400_000),
          1_000,
          31_536_000_000,
          ""
        )
    }
  end

  defp int!(_key, value, min, max, _source)
       when is_integer(value) and value >= min and value <= max,
       do: value

  defp int!(key, value, min, max, source) do
    raise ArgumentError,
          "invalid knowledge option #{inspect(key)}#{source}: expected an integer between " <>
            "#{min} and #{max}, got #{inspect(value, limit: 5)}"
  end

  @impl true
  def handle_continue(:sync, state) do
    send_digests(state, Cluster.members())
    Process.send_after(self(), :anti_entropy, state.config.anti_entropy_ms)
    {:noreply, state}
  end

  @impl true
  def handle_call({:write, key, value, deleted?, timeout}, from, state) do
    if Cluster.quorum?() do
      stamp = HLC.tick(state.clock)
      entry = {key, stamp, node(), value, deleted?}
      state = apply_entry(%{state | clock: stamp}, entry)
      :ok = Store.sync(state.store)
      others = Cluster.members() -- [node()]

      case acks_needed() do
        0 ->
          send_delta(others, [entry], nil)
          {:reply, {:ok, stamp}, state}

        needed ->
          ref = make_ref()
          send_delta(others, [entry], ref)
          timer = Process.send_after(self(), {:write_timeout, ref}, timeout)
          write = %{from: from, stamp: stamp, needed: needed, acked: MapSet.new(), timer: timer}
          {:noreply, put_in(state.writes[ref], write)}
      end
    else
      {:reply, {:error, :no_quorum}, state}
    end
  end

  def handle_call(:info, _from, state) do
    tombstones = :ets.select_count(@table, [{{:_, :_, :_, :_, true, :_}, [], [true]}])

    {:reply,
     %{
       entries: :ets.info(@table, :size) - tombstones,
       tombstones: tombstones,
       digest: state.digest
     }, state}
  end

  @impl true
  # A delta: entries written (or asked for) elsewhere. `ack` asks for an acknowledgement.
  def handle_info({:knowledge_delta, from, entries, ack}, state)
      when is_atom(from) and is_list(entries) do
    state =
      Enum.reduce(entries, state, fn entry, acc ->
        if valid_entry?(entry) do
          {key, stamp, _node, _value, _deleted} = entry
          acc = %{acc | clock: HLC.merge(acc.clock, stamp), pulls: Map.delete(acc.pulls, key)}
          apply_entry(acc, entry)
        else
          acc
        end
      end)

    # On disk before it counts towards the writer's majority.
    if state.store, do: Store.sync(state.store)
    if is_reference(ack), do: Cluster.send({__MODULE__, from}, {:knowledge_ack, ack, node()})
    {:noreply, state}
  end

  def handle_info({:knowledge_ack, ref, from}, state) do
    case state.writes do
      %{^ref => write} ->
        if from in Cluster.configured_members() do
          write = %{write | acked: MapSet.put(write.acked, from)}

          if MapSet.size(write.acked) >= write.needed do
            Process.cancel_timer(write.timer)
            GenServer.reply(write.from, {:ok, write.stamp})
            {:noreply, %{state | writes: Map.delete(state.writes, ref)}}
          else
            {:noreply, put_in(state.writes[ref], write)}
          end
        else
          {:noreply, state}
        end

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:write_timeout, ref}, state) do
    case Map.pop(state.writes, ref) do
      {nil, _} ->
        {:noreply, state}

      {write, writes} ->
        GenServer.reply(write.from, {:error, :no_quorum})
        {:noreply, %{state | writes: writes}}
    end
  end

  # Anti-entropy, step 1 (every round): our digest to every other member.
  def handle_info(:anti_entropy, state) do
    state = state |> expire_pulls() |> collect_garbage()
    send_digests(state, Cluster.members())
    Process.send_after(self(), :anti_entropy, state.config.anti_entropy_ms)
    {:noreply, state}
  end

  # Step 2, on the receiver: digests differ, so answer with our bucket digests.
  def handle_info({:knowledge_digest, from, digest}, state) when is_atom(from) do
    if digest != state.digest,
      do: Cluster.send({__MODULE__, from}, {:knowledge_buckets, node(), state.buckets})

    {:noreply, state}
  end

  # Step 3: the versions of our keys in the buckets that differ.
  def handle_info({:knowledge_buckets, from, buckets}, state)
      when is_atom(from) and is_tuple(buckets) and tuple_size(buckets) == @buckets do
    differ =
      for i <- 0..(@buckets - 1),
          elem(buckets, i) != elem(state.buckets, i),
          into: MapSet.new(),
          do: i

    if MapSet.size(differ) > 0 do
      :ets.foldl(
        fn {key, stamp, node, _value, deleted?, _hash}, acc ->
          if MapSet.member?(differ, bucket(key)),
            do: [{key, stamp, node, deleted?} | acc],
            else: acc
        end,
        [],
        @table
      )
      |> Enum.chunk_every(@summary_chunk)
      |> Enum.each(&Cluster.send({__MODULE__, from}, {:knowledge_summary, node(), &1}))
    end

    {:noreply, state}
  end

  # Step 4, on the receiver again: pull what is newer there.
  def handle_info({:knowledge_summary, from, summary}, state)
      when is_atom(from) and is_list(summary) do
    now = System.monotonic_time(:millisecond)
    cutoff = HLC.now_ms() - state.config.tombstone_ttl_ms

    wanted =
      for {key, {ms, _} = stamp, node, deleted?} <- summary,
          is_binary(key) and is_integer(ms) and is_atom(node) and is_boolean(deleted?),
          not (deleted? and ms < cutoff),
          newer?({stamp, node}, local_version(key)),
          not pulling?(state.pulls, key, {stamp, node}, now),
          do: {key, {stamp, node}}

    if wanted == [] do
      {:noreply, state}
    else
      Cluster.send({__MODULE__, from}, {:knowledge_pull, node(), Enum.map(wanted, &elem(&1, 0))})
      deadline = now + @pull_ttl_ms

      pulls =
        Enum.reduce(wanted, state.pulls, fn {k, v}, acc -> Map.put(acc, k, {v, deadline}) end)

      {:noreply, %{state | pulls: pulls}}
    end
  end

  # Step 5, on the sender: the entries asked for.
  def handle_info({:knowledge_pull, from, keys}, state) when is_atom(from) and is_list(keys) do
    keys
    |> Enum.flat_map(fn key ->
      case is_binary(key) and :ets.lookup(@table, key) do
        [{^key, stamp, node, value, deleted?, _}] -> [{key, stamp, node, value, deleted?}]
        _ -> []
      end
    end)
    |> chunk_by_size()
    |> Enum.each(&Cluster.send({__MODULE__, from}, {:knowledge_delta, node(), &1, nil}))

    {:noreply, state}
  end

  # A member came up: sync with it now rather than at the next round.
  def handle_info({:cluster, :member_up, node}, state) do
    send_digests(state, [node])
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  # ---- replica -------------------------------------------------------------------

  defp acks_needed do
    case Cluster.configured_members() do
      [] -> 0
      members -> div(length(members), 2) + 1 - if(node() in members, do: 1, else: 0)
    end
  end

  defp send_delta(nodes, entries, ack) do
    Enum.each(nodes, &Cluster.send({__MODULE__, &1}, {:knowledge_delta, node(), entries, ack}))
  end

  defp send_digests(state, nodes) do
    for n <- nodes, n != node() do
      Cluster.send({__MODULE__, n}, {:knowledge_digest, node(), state.digest})
    end
  end

  defp valid_entry?({key, {ms, c}, node, _value, deleted?}),
    do:
      is_binary(key) and byte_size(key) in 1..@max_key_bytes and is_integer(ms) and ms >= 0 and
        is_integer(c) and c >= 0 and is_atom(node) and is_boolean(deleted?)

  defp valid_entry?(_), do: false

  # Applies an entry if it is newer than what this node holds for its key.
  # A tombstone older than the tombstone TTL deletes without being kept.
  defp apply_entry(state, {key, {ms, _} = stamp, node, value, deleted?}) do
    current = :ets.lookup(@table, key)

    if newer?({stamp, node}, version(current)) do
      state = forget(state, current)

      if deleted? and ms < HLC.now_ms() - state.config.tombstone_ttl_ms do
        :ets.delete(@table, key)
        state
      else
        hash = hash(key, stamp, node, deleted?)

        :ets.insert(
          @table,
          {key, stamp, node, if(deleted?, do: nil, else: value), deleted?, hash}
        )

        if state.store, do: Store.append(state.store, {key, stamp, node, value, deleted?})

        toggle(state, key, hash)
      end
    else
      state
    end
  end

  defp forget(state, []), do: state
  defp forget(state, [{key, _, _, _, _, hash}]), do: toggle(state, key, hash)

  # XORs an entry's hash into (or out of) its bucket and the digest.
  defp toggle(state, key, hash) do
    i = bucket(key)

    %{
      state
      | digest: bxor(state.digest, hash),
        buckets: put_elem(state.buckets, i, bxor(elem(state.buckets, i), hash))
    }
  end

  defp version([{_key, stamp, node, _, _, _}]), do: {stamp, node}
  defp version([]), do: nil

  defp local_version(key), do: version(:ets.lookup(@table, key))

  # Last-writer-wins: the larger stamp, then the larger node name.
  defp newer?(_version, nil), do: true
  defp newer?(a, b), do: a > b

  defp pulling?(pulls, key, version, now) do
    case pulls do
      %{^key => {asked, deadline}} -> deadline > now and version <= asked
      _ -> false
    end
  end

  defp expire_pulls(state) do
    now = System.monotonic_time(:millisecond)
    %{state | pulls: Map.reject(state.pulls, fn {_k, {_v, deadline}} -> deadline <= now end)}
  end

  # Purges tombstones older than the TTL, at most every tenth of the TTL
  # (and at most once a minute).
  defp collect_garbage(state) do
    now = System.monotonic_time(:millisecond)

    if now >= state.next_gc do
      cutoff = HLC.now_ms() - state.config.tombstone_ttl_ms
      spec = [{{:"$1", {:"$2", :_}, :_, :_, true, :_}, [{:<, :"$2", cutoff}], [:"$1"]}]

      state =
        Enum.reduce(:ets.select(@table, spec), state, fn key, acc ->
          acc = forget(acc, :ets.lookup(@table, key))
          :ets.delete(@table, key)
          acc
        end)

      interval = min(max(div(state.config.tombstone_ttl_ms, 10), 1_000), 60_000)
      %{state | next_gc: now + interval}
    else
      state
    end
  end

  defp bucket(key), do: :erlang.phash2(key, @buckets)

  # 128 bits of SHA-256 over a fixed encoding of the entry's identity, the
  # same on every node and OTP release (term_to_binary is not).
  defp hash(key, {ms, counter}, node, deleted?) do
    <<h::unsigned-128, _::binary>> =
      :crypto.hash(:sha256, [
        <<byte_size(key)::32>>,
        key,
        <<ms::64, counter::64>>,
        if(deleted?, do: "d", else: "v"),
        Atom.to_string(node)
      ])

    h
  end

  defp chunk_by_size(entries) do
    entries
    |> Enum.chunk_while(
      {[], 0},
      fn {_, _, _, value, _} = entry, {acc, size} ->
        entry_size = :erlang.external_size(value)

        if acc != [] and size + entry_size > @chunk_bytes,
          do: {:cont, Enum.reverse(acc), {[entry], entry_size}},
          else: {:cont, {[entry | acc], size + entry_size}}
      end,
      fn
        {[], _} -> {:cont, {[], 0}}
        {acc, _} -> {:cont, Enum.reverse(acc), {[], 0}}
      end
    )
  end
end
