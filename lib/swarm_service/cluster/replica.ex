defmodule SwarmService.Cluster.Replica do
  @moduledoc false
  # The backup copy of swarms homed on other nodes: the facts a swarm's
  # home sent us, kept as the elements of an engine snapshot (see
  # Native.swarm_export/1) so that taking over is one Native.swarm_import/1.
  #
  # The home sends a whole snapshot when we become backup (load/3) and then
  # one fact per acknowledged change (apply/3). Facts can arrive out of the
  # order the engine applied them (two callers race), so each kind merges
  # in a way that order cannot spoil: a finished task is never replaced by
  # an unfinished copy, a removed agent stays removed, memory keeps the
  # highest version (deletes are tombstones with the version they removed),
  # discoveries and unit results are write-once per key, and so is what an
  # attempt cost (by work id), added to the swarm's and its agent's totals
  # of the snapshot when one is assembled. Facts carry the
  # sender's epoch: one from an older epoch than we hold is refused, which
  # tells a home that was replaced while cut off that it must step down.
  #
  # Writes are serialised through this process (merges read, then write);
  # reads for a takeover scan the ordered_set by swarm-id prefix.
  use GenServer

  @table __MODULE__
  @finished_kept 10_000

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc "Replaces what we hold for `swarm_id` with `snapshot`."
  def load(swarm_id, epoch, snapshot),
    do: GenServer.call(__MODULE__, {:load, swarm_id, epoch, snapshot}, 30_000)

  @doc "Merges one fact. `{:error, :stale_epoch}` or `{:error, :not_loaded}` tell the home to act."
  def apply(swarm_id, epoch, fact),
    do: GenServer.call(__MODULE__, {:apply, swarm_id, epoch, fact})

  @doc "Forgets a swarm."
  def drop(swarm_id), do: GenServer.call(__MODULE__, {:drop, swarm_id})

  @doc "The epoch held for `swarm_id`, or nil."
  def epoch(swarm_id) do
    case :ets.lookup(@table, {swarm_id, :epoch}) do
      [{_, epoch}] -> epoch
      [] -> nil
    end
  end

  @doc """
  The swarm as a snapshot for Native.swarm_import/1, plus the processes
  subscribed to it (`[{pid, :events | {:discoveries, filter}}]`), or nil.
  """
  def snapshot(swarm_id) do
    case :ets.lookup(@table, {swarm_id, :header}) do
      [{_, header}] -> assemble(header, :ets.match_object(@table, {{swarm_id, :_}, :_}))
      [] -> nil
    end
  end

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :ordered_set, :protected, read_concurrency: true])
    {:ok, nil}
  end

  @impl true
  def handle_call({:load, id, epoch, snapshot}, _from, state) do
    case epoch(id) do
      held when is_integer(held) and held > epoch ->
        {:reply, {:error, :stale_epoch}, state}

      _ ->
        delete_swarm(id)
        :ets.insert(@table, {{id, :epoch}, epoch})
        header = Map.drop(snapshot, [:agents, :tasks, :memory, :discoveries, :subscribers])
        store(id, {:header, header})
        for a <- snapshot.agents, do: store(id, {:agent, a})
        for t <- snapshot.tasks, do: store(id, {:task, t})
        for m <- snapshot.memory, do: store(id, {:memory, m})
        for d <- snapshot.discoveries, do: store(id, {:discovery, d})

        for {pid, what} <- Map.get(snapshot, :subscribers, []),
            do: store(id, {:subscribed, pid, what})

        {:reply, :ok, state}
    end
  end

  def handle_call({:apply, id, epoch, fact}, _from, state),
    do: {:reply, merge(id, epoch, fact), state}

  def handle_call({:drop, id}, _from, state) do
    delete_swarm(id)
    {:reply, :ok, state}
  end

  @impl true
  # Asynchronous replication: nobody waits for the answer.
  def handle_info({:apply, id, epoch, fact}, state) do
    merge(id, epoch, fact)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp merge(id, epoch, fact) do
    case epoch(id) do
      nil ->
        {:error, :not_loaded}

      held when held > epoch ->
        {:error, :stale_epoch}

      held ->
        if epoch > held, do: :ets.insert(@table, {{id, :epoch}, epoch})
        store(id, fact)
        :ok
    end
  end

  defp delete_swarm(id), do: :ets.match_delete(@table, {{id, :_}, :_})

  defp store(id, {:header, header}), do: :ets.insert(@table, {{id, :header}, header})

  defp store(id, {:agent, a}), do: :ets.insert_new(@table, {{id, {:agent, a.id}}, a})
  defp store(id, {:agent_removed, aid}), do: :ets.insert(@table, {{id, {:agent, aid}}, :removed})

  defp store(id, {:task, %{finished_at: nil} = t}),
    do: :ets.insert_new(@table, {{id, {:task, t.id}}, t})

  defp store(id, {:task, t}) do
    :ets.insert(@table, {{id, {:task, t.id}}, t})
    :ets.match_delete(@table, {{id, {:unit, t.id, :_}}, :_})
  end

  defp store(id, {:unit_result, task_id, unit, work_id, result}) do
    # A unit result for a task already recorded as finished adds nothing.
    case :ets.lookup(@table, {id, {:task, task_id}}) do
      [{_, %{finished_at: at}}] when at != nil -> true
      _ -> :ets.insert(@table, {{id, {:unit, task_id, unit}}, {work_id, result}})
    end
  end

  # A result with what its attempt cost.
  defp store(id, {:unit_result, task_id, unit, work_id, result, %{agent_id: agent, usage: usage}}) do
    store(id, {:unit_usage, work_id, agent, usage})
    store(id, {:unit_result, task_id, unit, work_id, result})
  end

  defp store(id, {:unit_usage, work_id, agent_id, usage}),
    do: :ets.insert_new(@table, {{id, {:usage, work_id}}, {agent_id, usage}})

  defp store(id, {:budget, max_cost_micros}) do
    case :ets.lookup(@table, {id, :header}) do
      [{key, header}] ->
        :ets.insert(@table, {key, Map.put(header, :max_cost_micros, max_cost_micros)})

      [] ->
        true
    end
  end

  defp store(id, {:unit_ignored, task_id, unit, work_id}) do
    # The engine refused this result (a newer attempt owns the unit), and
    # booked nothing for it.
    :ets.delete(@table, {id, {:usage, work_id}})

    case :ets.lookup(@table, {id, {:unit, task_id, unit}}) do
      [{key, {^work_id, _}}] -> :ets.delete(@table, key)
      _ -> true
    end
  end

  defp store(id, {:memory, m}), do: put_versioned({id, {:mem, m.namespace, m.key}}, m.version, m)

  defp store(id, {:memory_deleted, namespace, key, version}),
    do: put_versioned({id, {:mem, namespace, key}}, version, :deleted)

  defp store(id, {:discovery, d}), do: :ets.insert_new(@table, {{id, {:discovery, d.id}}, d})

  defp store(id, {:subscribed, pid, what}),
    do: :ets.insert(@table, {{id, {:subscriber, pid, kind(what)}}, what})

  defp store(id, {:unsubscribed, pid}),
    do: :ets.match_delete(@table, {{id, {:subscriber, pid, :_}}, :_})

  defp kind(:events), do: :events
  defp kind({:discoveries, _}), do: :discoveries

  defp put_versioned(key, version, value) do
    case :ets.lookup(@table, key) do
      [{_, {held, _}}] when held >= version -> true
      _ -> :ets.insert(@table, {key, {version, value}})
    end
  end

  defp assemble(header, rows) do
    # What attempts cost since the snapshot, oldest work first.
    costs =
      Enum.sort_by(
        for({{_, {:usage, work_id}}, {agent_id, usage}} <- rows, do: {work_id, agent_id, usage}),
        fn {work_id, _, _} -> work_order(work_id) end
      )

    header = Map.put(header, :usage, add_usage(Map.get(header, :usage, %{}), costs))
    agents = for {{_, {:agent, _}}, a} <- rows, a != :removed, do: charge(a, costs)
    agent_ids = for {{_, {:agent, aid}}, _} <- rows, do: aid

    units =
      Enum.group_by(
        for({{_, {:unit, tid, unit}}, {_work, result}} <- rows, do: {tid, {unit, result}}),
        &elem(&1, 0),
        &elem(&1, 1)
      )

    {finished, open} =
      rows
      |> Enum.flat_map(fn
        {{_, {:task, _}}, t} -> [t]
        _ -> []
      end)
      |> Enum.split_with(&(&1.finished_at != nil))

    open =
      for t <- open do
        recorded = Map.new(Map.get(t, :unit_results, []))

        %{
          t
          | unit_results: Enum.sort(Map.to_list(Map.merge(recorded, Map.new(units[t.id] || []))))
        }
      end

    tasks = Enum.sort_by(Enum.take(sort_by_seq(finished), -@finished_kept) ++ open, &seq(&1.id))
    memory = for {{_, {:mem, _, _}}, {_v, m}} <- rows, m != :deleted, do: m
    versions = for {{_, {:mem, _, _}}, {v, _}} <- rows, do: v
    discoveries = for {{_, {:discovery, _}}, d} <- rows, do: d
    subscribers = for {{_, {:subscriber, pid, _}}, what} <- rows, do: {pid, what}

    next = Map.get(header, :next_ids, %{})

    next_ids = %{
      agent: next_after(next[:agent], agent_ids),
      task: next_after(next[:task], Enum.map(tasks, & &1.id)),
      discovery: next_after(next[:discovery], Enum.map(discoveries, & &1.id)),
      memory_version: max(next[:memory_version] || 1, Enum.max(versions, fn -> 0 end) + 1)
    }

    snapshot =
      Map.merge(header, %{
        next_ids: next_ids,
        agents: sort_by_seq(agents),
        tasks: tasks,
        memory: memory,
        discoveries: sort_by_seq(discoveries)
      })

    {snapshot, subscribers}
  end

  defp sort_by_seq(elements), do: Enum.sort_by(elements, &seq(&1.id))

  @usage_fields [
    :input_tokens,
    :output_tokens,
    :cache_read_tokens,
    :cache_creation_tokens,
    :cost_micros,
    :turns,
    :duration_ms
  ]

  defp add_usage(total, costs) do
    Enum.reduce(costs, total, fn {_, _, usage}, acc ->
      Map.new(@usage_fields, &{&1, Map.get(acc, &1, 0) + Map.get(usage, &1, 0)})
    end)
  end

  # An agent's totals and latest session id, with its attempts' costs.
  defp charge(agent, costs) do
    mine = for {_, agent_id, _} = c <- costs, agent_id == agent.id, do: c

    session =
      Enum.reduce(mine, Map.get(agent, :session_id), fn {_, _, u}, s -> u[:session_id] || s end)

    agent
    |> Map.put(:usage, add_usage(Map.get(agent, :usage, %{}), mine))
    |> Map.put(:session_id, session)
  end

  # "swarm-….task-4/0/2" -> {4, 0, 2}: the order work was handed out in.
  defp work_order(work_id) do
    case SwarmService.Ids.parse(work_id) do
      {:ok, %{kind: :work, task_id: task_id, unit: unit, attempt: attempt}} ->
        {seq(task_id), unit, attempt}

      _ ->
        {0, 0, 0}
    end
  end

  defp next_after(held, ids),
    do: max(held || 1, Enum.max(Enum.map(ids, &seq/1), fn -> 0 end) + 1)

  # "swarm-….task-42" -> 42
  defp seq(id), do: SwarmService.Ids.seq!(id)
end
