defmodule InterfaceService.Test.FakeRuvSwarm do
  @moduledoc false
  # An in-memory stand-in for SwarmService.RuvSwarm with the same contract,
  # used by the gateway tests when the engine is not part of the build. It
  # keeps real state (swarms, agents, tasks, memory, subscribers), so the
  # gateway's conversions are tested against behaviour, not canned answers.
  use Agent

  def start do
    case Agent.start(fn -> %{swarms: %{}, agents: %{}, tasks: %{}, memory: %{}, subs: %{}, dsubs: %{}, seq: 0} end,
           name: __MODULE__
         ) do
      {:ok, pid} -> {:ok, pid}
      {:error, {:already_started, pid}} -> {:ok, pid}
    end
  end

  defp id(prefix) do
    prefix <> "-" <> Base.url_encode64(:crypto.strong_rand_bytes(9), padding: false)
  end

  defp get(fun), do: Agent.get(__MODULE__, fun)
  defp update(fun), do: Agent.get_and_update(__MODULE__, fun)

  defp event(swarm_id, event) do
    for pid <- get(&Map.get(&1.subs, swarm_id, [])), do: send(pid, {:swarm_event, swarm_id, event})
    :ok
  end

  def spawn_swarm(opts) do
    opts = Map.new(opts)
    sid = id("swarm")

    swarm = %{
      id: sid,
      name: Map.get(opts, :name, sid),
      topology: Map.get(opts, :topology, :mesh),
      strategy: Map.get(opts, :strategy, :balanced),
      max_agents: Map.get(opts, :max_agents, 100),
      created_at: System.system_time(:millisecond)
    }

    update(fn s -> {:ok, put_in(s, [:swarms, sid], swarm)} end)
    for _ <- 1..Map.get(opts, :agents, 0)//1, do: spawn_agent(sid, %{type: Map.get(opts, :agent_type, "worker")})
    {:ok, sid}
  end

  def destroy_swarm(sid) do
    update(fn s ->
      if Map.has_key?(s.swarms, sid),
        do: {:ok, %{s | swarms: Map.delete(s.swarms, sid)}},
        else: {{:error, :swarm_not_found}, s}
    end)
  end

  def list_swarms do
    {:ok,
     get(fn s ->
       for {_, sw} <- s.swarms, do: Map.put(sw, :agents, Enum.count(s.agents, fn {_, a} -> a.swarm_id == sw.id end))
     end)}
  end

  def swarm_status(sid) do
    get(fn s ->
      case s.swarms[sid] do
        nil ->
          {:error, :swarm_not_found}

        sw ->
          agents = for {_, a} <- s.agents, a.swarm_id == sid, do: a
          tasks = for {_, t} <- s.tasks, t.swarm_id == sid, do: t
          count = fn list, st -> Enum.count(list, &(&1.status == st)) end

          {:ok,
           Map.merge(sw, %{
             agents: %{total: length(agents), idle: count.(agents, :idle), busy: count.(agents, :busy), offline: 0},
             tasks:
               Map.new(
                 [:pending, :assigned, :running, :completed, :failed, :cancelled, :timed_out],
                 &{&1, count.(tasks, &1)}
               ),
             memory_entries: Enum.count(s.memory, fn {{m, _, _}, _} -> m == sid end),
             discoveries: 0,
             events: 0
           })}
      end
    end)
  end

  def spawn_agent(sid, opts) do
    opts = Map.new(opts)
    aid = id("agent")

    result =
      update(fn s ->
        case s.swarms[sid] do
          nil ->
            {{:error, :swarm_not_found}, s}

          sw ->
            if Enum.count(s.agents, fn {_, a} -> a.swarm_id == sid end) >= sw.max_agents do
              {{:error, {:swarm_full, sw.max_agents}}, s}
            else
              agent = %{
                id: aid,
                swarm_id: sid,
                name: Map.get(opts, :name, aid),
                type: Map.get(opts, :type, "worker"),
                capabilities: Map.get(opts, :capabilities, []),
                status: :idle,
                dispatch: if(match?({:command, _, _}, opts[:executor]), do: :push, else: :pull),
                capacity: Map.get(opts, :capacity, 1),
                load: 0,
                node: node(),
                executor: Map.get(opts, :executor, :external),
                metrics: %{completed: 0, failed: 0, latency_ms: 0.0, success_rate: 1.0}
              }

              {{:ok, aid}, put_in(s, [:agents, aid], agent)}
            end
        end
      end)

    with {:ok, _} <- result, do: event(sid, %{type: :agent_joined, agent_id: aid})
    result
  end

  def list_agents(sid) do
    get(fn s ->
      if Map.has_key?(s.swarms, sid),
        do: {:ok, for({_, a} <- s.agents, a.swarm_id == sid, do: Map.delete(a, :executor))},
        else: {:error, :swarm_not_found}
    end)
  end

  def agent_metrics(aid) do
    case get(& &1.agents[aid]) do
      nil -> {:error, :agent_not_found}
      a -> {:ok, Map.delete(a, :executor)}
    end
  end

  def orchestrate(sid, task) do
    task = if is_binary(task), do: %{description: task}, else: Map.new(task)
    tid = id("task")

    result =
      update(fn s ->
        if Map.has_key?(s.swarms, sid) do
          t = %{
            id: tid,
            swarm_id: sid,
            status: :pending,
            priority: Map.get(task, :priority, :medium),
            strategy: Map.get(task, :strategy, :adaptive),
            description: task[:description],
            input: task[:input],
            created_at: System.system_time(:millisecond),
            started_at: nil,
            finished_at: nil,
            error: nil,
            result: nil,
            units: []
          }

          {{:ok, tid}, put_in(s, [:tasks, tid], t)}
        else
          {{:error, :swarm_not_found}, s}
        end
      end)

    with {:ok, _} <- result, do: event(sid, %{type: :task_submitted, task_id: tid})
    result
  end

  def task_status(tid) do
    case get(& &1.tasks[tid]) do
      nil -> {:error, :task_not_found}
      t -> {:ok, Map.drop(t, [:result, :input])}
    end
  end

  def task_results(tid) do
    case get(& &1.tasks[tid]) do
      nil -> {:error, :task_not_found}
      t -> {:ok, Map.take(t, [:id, :status, :result, :error, :units])}
    end
  end

  def cancel_task(tid) do
    update(fn s ->
      case s.tasks[tid] do
        nil -> {{:error, :task_not_found}, s}
        _ -> {:ok, put_in(s, [:tasks, tid, :status], :cancelled)}
      end
    end)
  end

  def await_task(tid, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout

    Stream.repeatedly(fn -> get(& &1.tasks[tid]) end)
    |> Enum.reduce_while(nil, fn t, _ ->
      cond do
        t == nil -> {:halt, {:error, :task_not_found}}
        t.status == :completed -> {:halt, {:ok, t.result}}
        t.status in [:failed, :cancelled] -> {:halt, {:error, t.status}}
        System.monotonic_time(:millisecond) > deadline -> {:halt, {:error, :timeout}}
        true -> Process.sleep(5) && {:cont, nil}
      end
    end)
  end

  def claim_task(aid, _opts \\ []) do
    update(fn s ->
      with %{} = agent <- s.agents[aid],
           {tid, _} <- Enum.find(s.tasks, fn {_, t} -> t.swarm_id == agent.swarm_id and t.status == :pending end) do
        work = "work-" <> tid
        t = s.tasks[tid]
        s = put_in(s, [:tasks, tid], %{t | status: :running, started_at: System.system_time(:millisecond)})
        {{:ok, %{work_id: work, task_id: tid, input: t.input, description: t.description, context: %{}}}, s}
      else
        nil -> {{:error, :agent_not_found}, s}
        _ -> {{:error, :no_task}, s}
      end
    end)
  end

  def complete_task("work-" <> tid, _aid, result) do
    finish(tid, %{status: :completed, result: result})
  end

  def complete_task(_, _, _), do: {:error, :not_found}

  def fail_task("work-" <> tid, _aid, reason), do: finish(tid, %{status: :failed, error: reason})
  def fail_task(_, _, _), do: {:error, :not_found}

  defp finish(tid, changes) do
    result =
      update(fn s ->
        case s.tasks[tid] do
          nil -> {{:error, :task_not_found}, s}
          t -> {{:ok, t.swarm_id}, put_in(s, [:tasks, tid], Map.merge(t, changes))}
        end
      end)

    with {:ok, sid} <- result, do: event(sid, %{type: :"task_#{changes.status}", task_id: tid})
  end

  def coordinate_agents(sid, message) do
    if get(&Map.has_key?(&1.swarms, sid)),
      do: event(sid, %{type: :coordination, message: message}),
      else: {:error, :swarm_not_found}
  end

  def memory_store(sid, key, value, opts \\ []) do
    ns = Keyword.get(opts, :namespace, "default")

    update(fn s ->
      if Map.has_key?(s.swarms, sid) do
        version = (get_in(s, [:memory, {sid, ns, key}, :version]) || 0) + 1
        now = System.system_time(:millisecond)

        entry = %{
          key: key,
          namespace: ns,
          value: value,
          version: version,
          tags: Keyword.get(opts, :tags, []),
          created_at: now,
          updated_at: now,
          expires_at: nil
        }

        {{:ok, version}, put_in(s, [:memory, {sid, ns, key}], entry)}
      else
        {{:error, :swarm_not_found}, s}
      end
    end)
  end

  def memory_get(sid, key, opts \\ []) do
    ns = Keyword.get(opts, :namespace, "default")

    get(fn s ->
      cond do
        not Map.has_key?(s.swarms, sid) -> {:error, :swarm_not_found}
        entry = s.memory[{sid, ns, key}] -> {:ok, entry}
        true -> {:error, :not_found}
      end
    end)
  end

  def memory_delete(sid, key, opts \\ []) do
    ns = Keyword.get(opts, :namespace, "default")
    update(fn s -> {:ok, %{s | memory: Map.delete(s.memory, {sid, ns, key})}} end)
  end

  def memory_search(sid, query, _opts \\ []) do
    query = Map.new(query)

    get(fn s ->
      if Map.has_key?(s.swarms, sid) do
        entries =
          for {{^sid, _ns, key}, e} <- s.memory,
              String.starts_with?(key, Map.get(query, :prefix, "")),
              Enum.all?(Map.get(query, :tags, []), &(&1 in e.tags)),
              do: e

        {:ok, Enum.take(entries, Map.get(query, :limit, 100))}
      else
        {:error, :swarm_not_found}
      end
    end)
  end

  def memory_usage, do: {:ok, %{engine_bytes: get(&(:erlang.external_size(&1.memory))), swarms: get(&map_size(&1.swarms))}}

  def share_discovery(sid, discovery) do
    discovery = Map.new(discovery)
    did = id("disc")

    if get(&Map.has_key?(&1.swarms, sid)) do
      d = Map.merge(%{id: did, agent_id: nil, confidence: 1.0, tags: [], at: System.system_time(:millisecond)}, discovery)

      for {pid, filters} <- get(&Map.get(&1.dsubs, sid, [])), matches?(d, filters) do
        send(pid, {:swarm_discovery, sid, d})
      end

      {:ok, did}
    else
      {:error, :swarm_not_found}
    end
  end

  defp matches?(d, filters) do
    Enum.all?(filters, fn
      {:type, t} -> to_string(d.type) == t
      {:agent_id, a} -> d.agent_id == a
      {:min_confidence, c} -> d.confidence >= c
    end)
  end

  def subscribe(sid) do
    pid = self()

    update(fn s ->
      if Map.has_key?(s.swarms, sid),
        do: {:ok, update_in(s.subs, &Map.update(&1, sid, [pid], fn l -> [pid | l] end))},
        else: {{:error, :swarm_not_found}, s}
    end)
  end

  def subscribe_discoveries(sid, filters \\ []) do
    pid = self()

    update(fn s ->
      if Map.has_key?(s.swarms, sid),
        do: {:ok, update_in(s.dsubs, &Map.update(&1, sid, [{pid, filters}], fn l -> [{pid, filters} | l] end))},
        else: {{:error, :swarm_not_found}, s}
    end)
  end

  def format_error(:swarm_not_found), do: "no swarm with that id"
  def format_error(:task_not_found), do: "no task with that id"
  def format_error(:agent_not_found), do: "no agent with that id"
  def format_error(:not_found), do: "not found"
  def format_error({:swarm_full, max}), do: "the swarm already has its maximum of #{max} agents"
  def format_error(other), do: inspect(other)
end
