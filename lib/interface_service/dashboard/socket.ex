defmodule InterfaceService.Dashboard.Socket do
  @moduledoc """
  The dashboard's operations on the gateway's WebSocket (`GET /ws`,
  `InterfaceService.EventSocket` hands them over here). Every frame is a
  JSON object with `op` and, optionally, `ref` (an integer echoed in the
  answer so the page can match answers to requests):

    * `{"op": "dashboard", "since": {"epoch": e, "rev": n}}` — join the
      live picture: answers `{"type": "joined", "epoch": e}`, then a
      `snapshot` (or, when `since` is recent enough, only the `delta`s
      after it), then a `delta` at most every 250 ms while something
      changes (see `InterfaceService.Dashboard.Hub`).
    * `{"op": "task", "task_id": id}` — one task in full: units (the
      DAG), attempts, durations, previews of errors and results, usage,
      progress lines.
    * `{"op": "agent", "agent_id": id}` — one agent: metrics, usage,
      neighbours and a timeline of the units it ran lately.
    * `{"op": "topology", "swarm_id": id}` — the swarm's agents in order
      with their neighbours (the graph's edges; at most 500 agents).
    * `{"op": "memory_search", "swarm_id": id, "text": t}` and
      `{"op": "discoveries", "swarm_id": id}`.
    * `{"op": "action", "action": a, ...}` with `a` one of
      `create_swarm`, `destroy_swarm`, `spawn_agent`, `remove_agent`,
      `submit_task`, `cancel_task`, `retry_task` — answers
      `{"type": "result", "ok": true, ...}` or `{"type": "result", "ok":
      false, "error": sentence}` with the sentence of
      `SwarmService.Errors.for_client/1`.

  Auth is the socket's: a client that passed the gateway's token check.
  A Claude agent's swarm-scoped token may not open the dashboard. Each
  socket may make `@ops_per_s` requests a second (burst `@ops_burst`);
  beyond that it is told to slow down. Names and values from the page
  are matched against fixed vocabularies and never become atoms.
  """

  alias InterfaceService.Dashboard.{Hub, Model}
  alias InterfaceService.Json
  alias SwarmService.Errors

  @ops ~w(dashboard task agent topology memory_search discoveries action)
  @ops_per_s 20
  @ops_burst 40
  @max_topology_agents 500
  @max_timeline_tasks 20

  @topologies InterfaceService.Choices.topologies()
  @strategies InterfaceService.Choices.strategies()
  @priorities InterfaceService.Choices.priorities()
  @task_strategies InterfaceService.Choices.task_strategies()
  @storages %{"memory" => :memory, "disk" => :disk}

  @doc "The `op` values this module answers."
  @spec ops() :: [String.t()]
  def ops, do: @ops

  @doc """
  Handles one decoded frame whose `op` is in `ops/0`, on the socket's
  process. `state` is the socket's state (with `:api`, `:client`,
  `:config`). Returns Cowboy WebSocket commands and the new state.
  """
  @spec handle(map(), map()) :: {list(), map()}
  def handle(%{"op" => op} = msg, state) do
    ref = ref(msg)

    case take_token(state) do
      {:ok, state} ->
        if agent_client?(state) do
          {[error(ref, "an agent's token opens its own swarm only, not the dashboard")], state}
        else
          run(op, msg, ref, state)
        end

      {:error, state} ->
        {[error(ref, "too many dashboard requests, slow down")], state}
    end
  end

  @doc """
  Handles the hub's messages on the socket's process: a delta is sent on
  as a text frame; a drop, or the hub going down, closes the socket (the
  page reconnects).
  """
  @spec info(term(), map()) :: {list(), map()}
  def info({:dashboard_delta, epoch, _rev, json}, state) do
    cond do
      Map.get(state, :dashboard) != epoch ->
        {[], state}

      # Behind by more than the hub allows (the socket could not write):
      # close rather than queue; the page reconnects and resumes.
      queued() > Hub.max_pending() ->
        {[{:close, 1013, "too slow: the dashboard fell behind"}], Map.delete(state, :dashboard)}

      true ->
        {[{:text, json}], state}
    end
  end

  def info({:dashboard_dropped, reason}, state),
    do: {[{:close, 1013, reason}], Map.delete(state, :dashboard)}

  def info({:DOWN, ref, :process, _pid, _reason}, %{dashboard_monitor: ref} = state),
    do:
      {[{:close, 1012, "the dashboard restarted"}],
       Map.drop(state, [:dashboard, :dashboard_monitor])}

  def info(_other, state), do: {[], state}

  defp queued do
    {:message_queue_len, n} = Process.info(self(), :message_queue_len)
    n
  end

  defp agent_client?(%{client: "agent:" <> _}), do: true
  defp agent_client?(_), do: false

  defp ref(%{"ref" => ref}) when is_integer(ref), do: ref
  defp ref(_), do: nil

  # ---- the operations ----------------------------------------------------------

  defp run("dashboard", msg, ref, state) do
    since =
      case msg["since"] do
        %{"epoch" => e, "rev" => r} when is_binary(e) and is_integer(r) -> {e, r}
        _ -> nil
      end

    case Hub.join(hub(state), since) do
      {:ok, epoch, how, frames} ->
        joined = reply(%{type: "joined", ref: ref, epoch: epoch, how: how})

        # If the hub goes (it is restarted), the socket closes and the page
        # reconnects to the new one rather than waiting for deltas forever.
        monitor =
          Map.get_lazy(state, :dashboard_monitor, fn ->
            Process.monitor(GenServer.whereis(hub(state)))
          end)

        {[joined | Enum.map(frames, &{:text, &1})],
         state |> Map.put(:dashboard, epoch) |> Map.put(:dashboard_monitor, monitor)}

      {:error, message} ->
        {[error(ref, message)], state}
    end
  catch
    :exit, _ -> {[error(ref, "the dashboard is not running on this gateway")], state}
  end

  defp run("task", %{"task_id" => id}, ref, state) when is_binary(id) do
    with {:ok, t} <- state.api.task_results(id) do
      hub_info =
        safe_read(state, fn m -> {Model.progress(m, id), Model.definition(m, id)} end, {[], nil})

      {progress, definition} = hub_info
      deps = definition_deps(definition)

      units =
        t.units
        |> Enum.with_index()
        |> Enum.map(fn {u, i} ->
          history = Map.get(u, :history, [])

          %{
            index: i,
            name: u.name,
            status: u.status,
            agent_id: u.agent_id,
            attempts: u.attempts,
            error: Model.preview(u.error),
            result: Model.preview(Map.get(u, :result)),
            # The engine reports each unit's dependencies; what the
            # dashboard recorded at submit time covers an engine without.
            depends_on: Map.get(u, :depends_on) || Map.get(deps, u.name, []),
            duration_ms: Enum.sum(for h <- history, is_integer(h.duration_ms), do: h.duration_ms),
            history:
              for h <- history do
                %{
                  attempt: h.attempt,
                  agent_id: h.agent_id,
                  outcome: h.outcome,
                  error: Model.preview(h.error),
                  duration_ms: h.duration_ms,
                  usage: usage(h.usage)
                }
              end
          }
        end)

      total_usage = sum_usage(for u <- units, h <- u.history, h.usage, do: h.usage)

      answer = %{
        type: "task",
        ref: ref,
        task: %{
          id: t.id,
          swarm_id: t.swarm_id,
          status: t.status,
          priority: t.priority,
          strategy: t.strategy,
          description: Model.preview(t.description),
          created_at: t.created_at,
          started_at: t.started_at,
          finished_at: t.finished_at,
          attempts: t.attempts,
          error: Model.preview(t.error),
          result: Model.preview(t.result),
          waiting_reason: Model.preview(Map.get(t, :waiting_reason)),
          units: units,
          usage: total_usage,
          progress: progress,
          dag_known:
            definition != nil or length(units) <= 1 or
              Enum.all?(t.units, &Map.has_key?(&1, :depends_on))
        }
      }

      {[reply(answer)], state}
    else
      {:error, reason} -> {[error(ref, reason)], state}
    end
  end

  defp run("agent", %{"agent_id" => id}, ref, state) when is_binary(id) do
    with {:ok, a} <- state.api.agent_metrics(id) do
      neighbours =
        case state.api.neighbours(id) do
          {:ok, list} -> Enum.take(list, 100)
          _ -> []
        end

      timeline = timeline(state, id)

      answer = %{
        type: "agent",
        ref: ref,
        agent:
          Map.merge(Json.to_json(Map.drop(a, [:usage, :metrics])), %{
            "metrics" => Json.to_json(Map.get(a, :metrics, %{})),
            "usage" => usage(Map.get(a, :usage)),
            "neighbours" => neighbours,
            "persona" => to_string(Map.get(a, :type, "")),
            "executor" => executor_label(a),
            "timeline" => timeline
          })
      }

      {[reply(answer)], state}
    else
      {:error, reason} -> {[error(ref, reason)], state}
    end
  end

  defp run("topology", %{"swarm_id" => id}, ref, state) when is_binary(id) do
    with {:ok, agents} <- state.api.list_agents(id),
         {:ok, status} <- state.api.swarm_status(id) do
      shown = Enum.take(agents, @max_topology_agents)

      edges =
        for a <- shown,
            {:ok, ns} <- [state.api.neighbours(a.id)],
            n <- ns,
            a.id < n,
            do: [a.id, n]

      answer = %{
        type: "topology",
        ref: ref,
        swarm_id: id,
        topology: status.topology,
        agents:
          for a <- shown do
            %{id: a.id, name: a.name, type: to_string(a.type), status: a.status, load: a.load}
          end,
        edges: Enum.uniq(edges),
        truncated: length(agents) > @max_topology_agents
      }

      {[reply(answer)], state}
    else
      {:error, reason} -> {[error(ref, reason)], state}
    end
  end

  defp run("memory_search", %{"swarm_id" => id} = msg, ref, state) when is_binary(id) do
    query =
      %{limit: 100}
      |> put_text(:text, msg["text"])
      |> put_text(:namespace, msg["namespace"])
      |> put_text(:prefix, msg["prefix"])

    case state.api.memory_search(id, query) do
      {:ok, entries} ->
        rows =
          for e <- entries do
            %{
              key: e.key,
              namespace: e.namespace,
              version: e.version,
              tags: e.tags,
              updated_at: e.updated_at,
              expires_at: e.expires_at,
              value: Model.preview(e.value)
            }
          end

        {[reply(%{type: "memory", ref: ref, swarm_id: id, entries: rows})], state}

      {:error, reason} ->
        {[error(ref, reason)], state}
    end
  end

  defp run("discoveries", %{"swarm_id" => id}, ref, state) when is_binary(id) do
    case state.api.recent_discoveries(id, [], 100) do
      {:ok, list} ->
        rows =
          for d <- list do
            %{
              id: d.id,
              at: d.at,
              type: d.type,
              agent_id: d.agent_id,
              confidence: d.confidence,
              tags: d.tags,
              content: Model.preview(d.content)
            }
          end

        {[reply(%{type: "discoveries", ref: ref, swarm_id: id, discoveries: rows})], state}

      {:error, reason} ->
        {[error(ref, reason)], state}
    end
  end

  defp run("action", %{"action" => action} = msg, ref, state) when is_binary(action) do
    case action(action, msg, state) do
      {:ok, extra} ->
        {[reply(Map.merge(%{type: "result", ref: ref, action: action, ok: true}, extra))], state}

      {:error, reason} ->
        {[reply(%{type: "result", ref: ref, action: action, ok: false, error: sentence(reason)})],
         state}
    end
  end

  defp run(op, _msg, ref, state), do: {[error(ref, "#{op}: missing or invalid arguments")], state}

  # ---- actions -------------------------------------------------------------------

  defp action("create_swarm", msg, state) do
    with {:ok, topology} <- choice(msg, "topology", @topologies, :mesh),
         {:ok, strategy} <- choice(msg, "strategy", @strategies, :balanced),
         {:ok, storage} <- choice(msg, "storage", @storages, :memory),
         {:ok, agents} <- count(msg, "agents", 0, 1000),
         {:ok, executor} <- executor(msg, state) do
      opts =
        %{
          topology: topology,
          strategy: strategy,
          storage: storage,
          agents: agents || 0,
          executor: executor,
          owner: state.client
        }
        |> put_text(:name, msg["name"])
        |> put_count(msg, "max_agents", :max_agents)

      with {:ok, id} <- state.api.spawn_swarm(opts), do: {:ok, %{swarm_id: id}}
    end
  end

  defp action("destroy_swarm", %{"swarm_id" => id}, state) when is_binary(id) do
    with :ok <- state.api.destroy_swarm(id), do: {:ok, %{swarm_id: id}}
  end

  defp action("spawn_agent", %{"swarm_id" => id} = msg, state) when is_binary(id) do
    with {:ok, executor} <- executor(msg, state) do
      opts =
        %{executor: executor}
        |> put_text(:type, msg["type"])
        |> put_text(:name, msg["name"])
        |> then(fn o ->
          case msg["capabilities"] do
            caps when is_list(caps) -> Map.put(o, :capabilities, caps)
            _ -> o
          end
        end)

      with {:ok, agent_id} <- state.api.spawn_agent(id, opts), do: {:ok, %{agent_id: agent_id}}
    end
  end

  defp action("remove_agent", %{"agent_id" => id}, state) when is_binary(id) do
    with :ok <- state.api.remove_agent(id), do: {:ok, %{agent_id: id}}
  end

  defp action("submit_task", %{"swarm_id" => id} = msg, state) when is_binary(id) do
    with {:ok, task} <- task_definition(msg),
         {:ok, task_id} <- state.api.orchestrate(id, task) do
      remember(state, task_id, task)
      {:ok, %{task_id: task_id}}
    end
  end

  defp action("cancel_task", %{"task_id" => id}, state) when is_binary(id) do
    with :ok <- state.api.cancel_task(id), do: {:ok, %{task_id: id}}
  end

  # A retry submits the task again as a new task: the engine has no
  # "retry" for a finished task. What the dashboard submitted itself is
  # submitted again as it was; other tasks with their description,
  # priority and strategy (their input is not readable).
  defp action("retry_task", %{"task_id" => id}, state) when is_binary(id) do
    with {:ok, t} <- state.api.task_status(id),
         :ok <- retryable(t) do
      definition =
        safe_read(state, fn m -> Model.definition(m, id) end, nil) ||
          %{description: t.description, priority: t.priority, strategy: t.strategy}

      with {:ok, task_id} <- state.api.orchestrate(t.swarm_id, definition) do
        remember(state, task_id, definition)
        {:ok, %{task_id: task_id, retry_of: id}}
      end
    end
  end

  defp action(name, _msg, _state) do
    if name in ~w(create_swarm destroy_swarm spawn_agent remove_agent submit_task cancel_task retry_task),
      do: {:error, {:invalid_argument, "#{name}: missing or invalid arguments"}},
      else: {:error, {:invalid_argument, "unknown action"}}
  end

  defp retryable(%{status: status}) when status in [:failed, :cancelled, :timed_out], do: :ok

  defp retryable(%{status: status}),
    do:
      {:error,
       {:invalid_argument,
        "only a failed, cancelled or timed-out task can be retried (this one is #{status})"}}

  defp task_definition(msg) do
    with {:ok, priority} <- choice(msg, "priority", @priorities, :medium),
         {:ok, strategy} <- choice(msg, "strategy", @task_strategies, :parallel),
         {:ok, max_agents} <- count(msg, "max_agents", 1, 1000),
         {:ok, timeout} <- count(msg, "timeout_ms", 1, 86_400_000),
         {:ok, subtasks} <- subtasks(msg["subtasks"]) do
      description = if is_binary(msg["description"]), do: msg["description"], else: ""

      task =
        %{description: description, priority: priority, strategy: strategy}
        |> then(&if(max_agents, do: Map.put(&1, :max_agents, max_agents), else: &1))
        |> then(&if(timeout, do: Map.put(&1, :timeout_ms, timeout), else: &1))
        |> then(&if(subtasks, do: Map.put(&1, :subtasks, subtasks), else: &1))

      {:ok, task}
    end
  end

  defp subtasks(nil), do: {:ok, nil}
  defp subtasks([]), do: {:ok, nil}

  defp subtasks(list) when is_list(list) and length(list) <= 1000 do
    Enum.reduce_while(list, {:ok, []}, fn
      %{"name" => name} = s, {:ok, acc} when is_binary(name) ->
        deps = Enum.filter(List.wrap(s["depends_on"]), &is_binary/1)
        input = if is_binary(s["input"]), do: s["input"], else: name
        {:cont, {:ok, [%{name: name, input: input, depends_on: deps} | acc]}}

      _, _ ->
        {:halt, {:error, {:invalid_argument, "each subtask needs a name"}}}
    end)
    |> case do
      {:ok, subs} -> {:ok, Enum.reverse(subs)}
      error -> error
    end
  end

  defp subtasks(_), do: {:error, {:invalid_argument, "subtasks must be a list of at most 1000"}}

  defp definition_deps(%{subtasks: subs}) when is_list(subs),
    do: Map.new(subs, fn s -> {s.name, s.depends_on} end)

  defp definition_deps(_), do: %{}

  # Agents the page spawns are external (they pull work) or run an
  # allow-listed command, as the gateway's agent_spawn tool allows.
  defp executor(%{"command" => text}, state) when is_binary(text) and text != "" do
    argv = String.split(text)
    allowlist = state.config.command_allowlist

    if SwarmService.Executor.Command.allowed?(argv, allowlist),
      do: {:ok, {:command, argv, []}},
      else: {:error, {:command_not_allowed, hd(argv)}}
  end

  defp executor(_msg, _state), do: {:ok, :external}

  defp executor_label(%{dispatch: :pull}), do: "external (pulls work)"
  defp executor_label(%{dispatch: :push}), do: "supervised executor (pushed work)"
  defp executor_label(_), do: nil

  defp remember(state, task_id, task) do
    Hub.define(hub(state), task_id, task)
  catch
    _, _ -> :ok
  end

  # ---- helpers -------------------------------------------------------------------

  # The units the agent ran lately: those whose start the hub saw (a
  # task_started event), and the attempts by this agent in the swarm's
  # last tasks, whose start is then the task's (tasks the hub learnt of
  # before it watched the swarm). Durations and outcomes come from the
  # tasks' attempt histories.
  defp timeline(state, agent_id) do
    swarm_id = SwarmService.Ids.swarm_of(agent_id)

    {units, recent} =
      safe_read(
        state,
        fn m ->
          {Model.timeline(m, agent_id), Model.recent_tasks(m, swarm_id, @max_timeline_tasks)}
        end,
        {[], []}
      )

    results =
      (Enum.map(units, & &1.task_id) ++ recent)
      |> Enum.uniq()
      |> Enum.take(2 * @max_timeline_tasks)
      |> Map.new(fn tid ->
        case state.api.task_results(tid) do
          {:ok, t} -> {tid, t}
          _ -> {tid, nil}
        end
      end)

    seen = MapSet.new(units, &{&1.task_id, &1.unit, &1.attempt})

    observed =
      for u <- units do
        attempt = find_attempt(results[u.task_id], u.unit, agent_id, u.attempt)

        %{
          task_id: u.task_id,
          unit: u.unit,
          started_at: u.started_at,
          duration_ms: attempt && attempt.duration_ms,
          outcome: (attempt && attempt.outcome) || "running",
          error: attempt && Model.preview(attempt.error)
        }
      end

    inferred =
      for tid <- recent,
          %{units: tunits} = t <- [results[tid]],
          tu <- tunits,
          h <- Map.get(tu, :history, []),
          h.agent_id == agent_id,
          not MapSet.member?(seen, {tid, tu.name, h.attempt}) and
            not MapSet.member?(seen, {tid, tu.name, nil}) do
        %{
          task_id: tid,
          unit: tu.name,
          started_at: t.started_at || t.created_at,
          duration_ms: h.duration_ms,
          outcome: h.outcome,
          error: Model.preview(h.error)
        }
      end

    Enum.sort_by(observed ++ inferred, &(-(&1.started_at || 0)))
  end

  defp find_attempt(%{units: tunits}, unit, agent_id, attempt) do
    with %{} = tu <- Enum.find(tunits, &(&1.name == unit)) do
      Enum.find(
        Map.get(tu, :history, []),
        &(&1.agent_id == agent_id and (attempt == nil or &1.attempt == attempt))
      )
    end
  end

  defp find_attempt(_task, _unit, _agent_id, _attempt), do: nil

  defp usage(nil), do: nil

  defp usage(u) when is_map(u),
    do:
      Map.take(u, [
        :input_tokens,
        :output_tokens,
        :cache_read_tokens,
        :cache_creation_tokens,
        :cost_usd,
        :turns
      ])

  defp sum_usage([]), do: nil

  defp sum_usage(list) do
    Enum.reduce(list, %{}, fn u, acc ->
      Map.merge(acc, u, fn _k, a, b -> if is_number(a) and is_number(b), do: a + b, else: a end)
    end)
  end

  defp choice(msg, key, allowed, default) do
    case msg[key] do
      nil ->
        {:ok, default}

      "" ->
        {:ok, default}

      v when is_binary(v) ->
        lookup(allowed, key, v)

      _ ->
        {:error,
         {:invalid_argument, "#{key} must be one of: #{Enum.join(Map.keys(allowed), ", ")}"}}
    end
  end

  defp lookup(allowed, key, v) do
    case Map.fetch(allowed, v) do
      {:ok, atom} ->
        {:ok, atom}

      :error ->
        {:error,
         {:invalid_argument, "#{key} must be one of: #{Enum.join(Map.keys(allowed), ", ")}"}}
    end
  end

  defp count(msg, key, min, max) do
    case msg[key] do
      nil -> {:ok, nil}
      "" -> {:ok, nil}
      n when is_integer(n) and n >= min and n <= max -> {:ok, n}
      _ -> {:error, {:invalid_argument, "#{key} must be an integer in #{min}..#{max}"}}
    end
  end

  defp put_count(opts, msg, key, atom) do
    case msg[key] do
      n when is_integer(n) and n > 0 -> Map.put(opts, atom, n)
      _ -> opts
    end
  end

  defp put_text(opts, key, v) when is_binary(v) and v != "", do: Map.put(opts, key, v)
  defp put_text(opts, _key, _v), do: opts

  defp hub(state), do: Hub.name(state.config)

  defp safe_read(state, fun, default) do
    Hub.read(hub(state), fun)
  catch
    :exit, _ -> default
  end

  defp take_token(state) do
    now = System.monotonic_time(:millisecond)
    {tokens, last} = Map.get(state, :dashboard_bucket, {@ops_burst, now})
    tokens = min(@ops_burst, tokens + (now - last) * @ops_per_s / 1000)

    if tokens >= 1,
      do: {:ok, Map.put(state, :dashboard_bucket, {tokens - 1, now})},
      else: {:error, Map.put(state, :dashboard_bucket, {tokens, now})}
  end

  defp sentence(reason) when is_binary(reason), do: reason
  defp sentence(reason), do: Errors.for_client(reason).message

  defp reply(term), do: {:text, Json.encode_term!(term)}
  defp error(ref, reason), do: reply(%{type: "error", ref: ref, error: sentence(reason)})
end
