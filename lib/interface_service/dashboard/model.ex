defmodule InterfaceService.Dashboard.Model do
  @moduledoc """
  The dashboard's picture of the node as pure data, and the deltas between
  two moments of it.

  `InterfaceService.Dashboard.Hub` owns one model. Swarm events go in with
  `apply_event/3`, periodic reads of the public API with `put_swarm/2`,
  `put_agents/3` and `put_overview/2`; every change marks what it touched as
  dirty, and `take_delta/1` turns the dirty marks into one delta (only the
  records that changed, `nil` for the ones that went away) and clears them.
  `snapshot/1` is the whole picture, sent once to a client that joins.

  Everything here is bounded whatever the load: tasks per swarm
  (`@tasks_per_swarm`, oldest finished ones leave first), events in the log
  (`@max_events`), units in an agent's timeline, progress lines per task,
  records per delta (`@max_tasks_per_delta` tasks, `@max_agents_per_delta`
  agents; the rest come in the next one),
  and the 15-minute series (one bucket per 5 s). Strings from the engine
  are cut to a preview length. No atom is created from any input: event
  types and statuses are atoms the engine made, rendered as strings.
  """

  @tasks_per_swarm 200
  @max_events 500
  @units_per_agent 40
  @progress_per_task 20
  @max_tasks_per_delta 300
  @max_agents_per_delta 1000
  @max_events_per_delta 200
  @bucket_ms 5_000
  @buckets 180
  @latency_samples 400
  @preview 200

  @significant [
    :agent_joined,
    :agent_left,
    :task_submitted,
    :task_retried,
    :task_completed,
    :task_failed,
    :task_cancelled,
    :task_timed_out,
    :memory_stored,
    :memory_deleted,
    :discovery_shared,
    :coordinated,
    :failover
  ]

  @finished [:completed, :failed, :cancelled, :timed_out]

  defstruct swarms: %{},
            agents: %{},
            tasks: %{},
            swarm_tasks: %{},
            timelines: %{},
            progress: %{},
            definitions: %{},
            events: :queue.new(),
            event_count: 0,
            event_seq: 0,
            series: %{},
            overview: %{},
            dirty_swarms: MapSet.new(),
            dirty_agents: MapSet.new(),
            status_agents: MapSet.new(),
            dirty_tasks: MapSet.new(),
            new_events: [],
            new_event_count: 0,
            swarm_agents: %{},
            swarm_task_counts: %{},
            overview_dirty: false,
            rev: 0

  @type t :: %__MODULE__{}

  @doc "An empty model."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc "The bucket width of the series, in milliseconds."
  @spec bucket_ms() :: pos_integer()
  def bucket_ms, do: @bucket_ms

  # ---- swarms and agents ------------------------------------------------------

  @doc """
  Puts or replaces a swarm record (from `list_swarms/0` and `swarm_status/1`);
  marks it dirty only when it changed.
  """
  @spec put_swarm(t(), map()) :: t()
  def put_swarm(model, %{id: id} = swarm) do
    if Map.get(model.swarms, id) == swarm do
      model
    else
      %{
        model
        | swarms: Map.put(model.swarms, id, swarm),
          dirty_swarms: MapSet.put(model.dirty_swarms, id)
      }
    end
  end

  @doc "Forgets a swarm, its agents and its tasks."
  @spec drop_swarm(t(), String.t()) :: t()
  def drop_swarm(model, id) do
    agent_ids = model.swarm_agents |> Map.get(id, MapSet.new()) |> MapSet.to_list()
    task_ids = model.swarm_tasks |> Map.get(id, :queue.new()) |> :queue.to_list()

    %{
      model
      | swarms: Map.delete(model.swarms, id),
        agents: Map.drop(model.agents, agent_ids),
        swarm_agents: Map.delete(model.swarm_agents, id),
        timelines: Map.drop(model.timelines, agent_ids),
        tasks: Map.drop(model.tasks, task_ids),
        progress: Map.drop(model.progress, task_ids),
        definitions: Map.drop(model.definitions, task_ids),
        swarm_tasks: Map.delete(model.swarm_tasks, id),
        swarm_task_counts: Map.delete(model.swarm_task_counts, id),
        dirty_swarms: MapSet.put(model.dirty_swarms, id),
        dirty_agents: Enum.into(agent_ids, model.dirty_agents),
        dirty_tasks: Enum.into(task_ids, model.dirty_tasks)
    }
  end

  @doc """
  Replaces the agents of swarm `swarm_id` with `agents` (from
  `list_agents/1`), marking the changed, added and removed ones dirty.
  """
  @spec put_agents(t(), String.t(), [map()]) :: t()
  def put_agents(model, swarm_id, agents) do
    fresh = Map.new(agents, fn a -> {a.id, agent_record(a)} end)
    # (Each swarm's agent ids are indexed: no scan of every agent.)
    old = Map.get(model.swarm_agents, swarm_id, MapSet.new())
    ids = MapSet.new(Map.keys(fresh))
    gone = MapSet.to_list(MapSet.difference(old, ids))

    changed = for {id, rec} <- fresh, Map.get(model.agents, id) != rec, do: id

    agents_map = model.agents |> Map.drop(gone) |> Map.merge(fresh)

    %{
      model
      | agents: agents_map,
        swarm_agents: Map.put(model.swarm_agents, swarm_id, ids),
        timelines: Map.drop(model.timelines, gone),
        dirty_agents: model.dirty_agents |> MapSet.union(MapSet.new(gone ++ changed))
    }
  end

  defp agent_record(a) do
    metrics = Map.get(a, :metrics, %{})

    %{
      id: a.id,
      swarm_id: a.swarm_id,
      name: Map.get(a, :name),
      type: to_text(Map.get(a, :type)),
      status: Map.get(a, :status),
      load: Map.get(a, :load),
      node: to_text(Map.get(a, :node)),
      capabilities: Map.get(a, :capabilities, []),
      capacity: Map.get(a, :capacity),
      dispatch: Map.get(a, :dispatch),
      running_units: Map.get(a, :running_units),
      completed: Map.get(metrics, :completed, 0),
      failed: Map.get(metrics, :failed, 0),
      success_rate: Map.get(metrics, :success_rate),
      latency_ms: Map.get(metrics, :latency_ms),
      last_error: preview(Map.get(metrics, :last_error)),
      cost_usd: get_in(a, [:usage, :cost_usd])
    }
  end

  # ---- events ----------------------------------------------------------------

  @doc """
  Applies one swarm event (`{:swarm_event, swarm_id, event}` as delivered by
  `SwarmService.RuvSwarm.subscribe/1`). `now` is the node's time in ms.
  """
  @spec apply_event(t(), String.t(), map()) :: t()
  def apply_event(model, swarm_id, %{type: type} = event) do
    model
    |> apply_typed(type, swarm_id, event)
    |> log_event(type, swarm_id, event)
  end

  def apply_event(model, _swarm_id, _event), do: model

  defp apply_typed(model, :task_submitted, swarm_id, %{task_id: id} = e) do
    task = %{
      id: id,
      swarm_id: swarm_id,
      status: :pending,
      description: nil,
      created_at: e[:at],
      finished_at: nil,
      error: nil,
      units_running: 0
    }

    model
    |> put_task(task)
    |> remember_task(swarm_id, id)
    |> count(:submitted, e[:at])
  end

  defp apply_typed(model, type, _swarm_id, %{task_id: id} = e)
       when type in [:task_assigned, :task_started] do
    model =
      if type == :task_started and e[:agent_id] do
        add_unit(model, e[:agent_id], %{
          task_id: id,
          unit: e[:unit],
          started_at: e[:at],
          attempt: e[:attempt]
        })
      else
        model
      end

    update_task(model, id, fn t ->
      if t.status in @finished, do: t, else: %{t | status: :running}
    end)
  end

  defp apply_typed(model, :task_retried, _swarm_id, %{task_id: id}),
    do: update_task(model, id, &if(&1.status in @finished, do: &1, else: &1))

  defp apply_typed(model, :task_progress, _swarm_id, %{task_id: id} = e) do
    line = %{
      at: e[:at],
      agent_id: e[:agent_id],
      unit: e[:unit],
      progress: e[:progress],
      message: preview(e[:message])
    }

    if Map.has_key?(model.tasks, id) do
      lines = Map.get(model.progress, id, [])
      lines = Enum.take([line | lines], @progress_per_task)
      %{model | progress: Map.put(model.progress, id, lines)}
    else
      model
    end
  end

  defp apply_typed(model, type, _swarm_id, %{task_id: id} = e)
       when type in [:task_completed, :task_failed, :task_cancelled, :task_timed_out] do
    status =
      case type do
        :task_completed -> Map.get(e, :status, :completed)
        :task_failed -> :failed
        :task_cancelled -> :cancelled
        :task_timed_out -> :timed_out
      end

    created = get_in(model.tasks, [id, :created_at])

    model =
      update_task(model, id, fn t ->
        %{t | status: status, finished_at: e[:at], error: preview(e[:error])}
      end)

    model =
      if status == :completed,
        do: count(model, :completed, e[:at]),
        else: count(model, :failed, e[:at])

    if status == :completed and is_integer(created) and is_integer(e[:at]),
      do: latency(model, e[:at], e[:at] - created),
      else: model
  end

  defp apply_typed(model, :agent_status_changed, _swarm_id, %{agent_id: id, status: status}) do
    case model.agents do
      %{^id => %{status: ^status}} ->
        model

      # Only the status changed: the delta says so in `agent_status`
      # rather than sending the whole record again.
      %{^id => agent} ->
        %{
          model
          | agents: Map.put(model.agents, id, %{agent | status: status}),
            status_agents: MapSet.put(model.status_agents, id)
        }

      _ ->
        model
    end
  end

  defp apply_typed(model, _type, _swarm_id, _event), do: model

  defp log_event(model, type, swarm_id, e) when type in @significant do
    seq = model.event_seq + 1

    entry = %{
      seq: seq,
      at: e[:at],
      swarm_id: swarm_id,
      type: type,
      task_id: e[:task_id],
      agent_id: e[:agent_id],
      detail: event_detail(type, e)
    }

    events = :queue.in(entry, model.events)

    # A delta carries the first @max_events_per_delta new events; the
    # others are in the log (and in the next snapshot).
    {new_events, new_count} =
      if model.new_event_count < @max_events_per_delta,
        do: {[entry | model.new_events], model.new_event_count + 1},
        else: {model.new_events, model.new_event_count}

    {events, count} =
      if model.event_count >= @max_events,
        do: {:queue.drop(events), model.event_count},
        else: {events, model.event_count + 1}

    %{
      model
      | events: events,
        event_count: count,
        event_seq: seq,
        new_events: new_events,
        new_event_count: new_count
    }
  end

  defp log_event(model, _type, _swarm_id, _e), do: model

  defp event_detail(:discovery_shared, e),
    do: preview(e[:discovery_type] || e[:content] || e[:discovery_id] || e[:id])

  defp event_detail(type, e) when type in [:memory_stored, :memory_deleted],
    do: preview(e[:key])

  defp event_detail(:failover, e), do: preview("#{e[:from]} -> #{e[:to]}")
  defp event_detail(_type, e), do: preview(e[:error] || e[:status] || e[:reason])

  # ---- tasks -----------------------------------------------------------------

  defp put_task(model, %{id: id} = task) do
    %{
      model
      | tasks: Map.put(model.tasks, id, task),
        dirty_tasks: MapSet.put(model.dirty_tasks, id)
    }
  end

  defp update_task(model, id, fun) do
    case model.tasks do
      %{^id => task} ->
        new = fun.(task)

        if new == task,
          do: model,
          else: %{
            model
            | tasks: Map.put(model.tasks, id, new),
              dirty_tasks: MapSet.put(model.dirty_tasks, id)
          }

      _ ->
        model
    end
  end

  @doc """
  Fills in what events do not carry about a task (description, priority,
  strategy, error) from `task_status/1`'s answer.
  """
  @spec put_task_status(t(), map()) :: t()
  def put_task_status(model, %{id: id} = status) do
    update_task(model, id, fn t ->
      Map.merge(t, %{
        description: preview(Map.get(status, :description)),
        priority: Map.get(status, :priority),
        strategy: Map.get(status, :strategy),
        status: Map.get(status, :status, t.status),
        error: preview(Map.get(status, :error)) || t.error,
        units: length(Map.get(status, :units, []))
      })
    end)
  end

  @doc """
  Adds a task the dashboard learnt of by reading it (`task_status/1`)
  rather than from its `task_submitted` event: the tasks a swarm already
  had when the hub subscribed to it. A task already known is left alone.
  """
  @spec backfill_task(t(), map()) :: t()
  def backfill_task(model, %{id: id, swarm_id: swarm_id} = status) do
    if Map.has_key?(model.tasks, id) do
      model
    else
      task = %{
        id: id,
        swarm_id: swarm_id,
        status: Map.get(status, :status, :pending),
        description: nil,
        created_at: Map.get(status, :created_at),
        finished_at: Map.get(status, :finished_at),
        error: nil,
        units_running: 0
      }

      model
      |> put_task(task)
      |> remember_task(swarm_id, id)
      |> put_task_status(status)
    end
  end

  @doc "Tasks whose description is not known yet (to be read with `task_status/1`), at most `n`."
  @spec tasks_to_describe(t(), non_neg_integer()) :: [String.t()]
  def tasks_to_describe(model, n) do
    model.dirty_tasks
    |> Enum.filter(fn id -> match?(%{description: nil}, Map.get(model.tasks, id)) end)
    |> Enum.take(n)
  end

  @doc """
  Records how a task was defined when the dashboard itself submitted it
  (subtasks with their dependencies: the engine's task status does not
  carry them), for the DAG and for a retry.
  """
  @spec put_definition(t(), String.t(), map()) :: t()
  def put_definition(model, task_id, definition),
    do: %{model | definitions: Map.put(model.definitions, task_id, definition)}

  defp remember_task(model, swarm_id, id) do
    q = :queue.in(id, Map.get(model.swarm_tasks, swarm_id, :queue.new()))
    n = Map.get(model.swarm_task_counts, swarm_id, 0) + 1

    {q, n, dropped} =
      if n > @tasks_per_swarm do
        {{:value, old}, q} = :queue.out(q)
        {q, n - 1, [old]}
      else
        {q, n, []}
      end

    %{
      model
      | swarm_tasks: Map.put(model.swarm_tasks, swarm_id, q),
        swarm_task_counts: Map.put(model.swarm_task_counts, swarm_id, n),
        tasks: Map.drop(model.tasks, dropped),
        progress: Map.drop(model.progress, dropped),
        definitions: Map.drop(model.definitions, dropped),
        dirty_tasks: Enum.into(dropped, model.dirty_tasks)
    }
  end

  defp add_unit(model, agent_id, unit) do
    units = Map.get(model.timelines, agent_id, [])

    %{
      model
      | timelines: Map.put(model.timelines, agent_id, Enum.take([unit | units], @units_per_agent))
    }
  end

  # ---- series ----------------------------------------------------------------

  defp bucket(at) when is_integer(at), do: div(at, @bucket_ms)
  defp bucket(_), do: bucket(System.system_time(:millisecond))

  defp count(model, key, at) do
    b = bucket(at)
    row = Map.get(model.series, b, %{})
    row = Map.update(row, key, 1, &(&1 + 1))
    %{model | series: Map.put(model.series, b, row), overview_dirty: true}
  end

  defp latency(model, at, ms) do
    b = bucket(at)
    row = Map.get(model.series, b, %{})
    samples = Map.get(row, :latency, [])
    n = Map.get(row, :latency_n, 0)

    samples = if n < @latency_samples, do: [ms | samples], else: samples
    row = row |> Map.put(:latency, samples) |> Map.put(:latency_n, n + 1)
    %{model | series: Map.put(model.series, b, row)}
  end

  @doc """
  Adds gateway counters for the bucket of `at` (calls and errors since the
  last reading) and forgets buckets older than 15 minutes.
  """
  @spec put_gateway(t(), integer(), non_neg_integer(), non_neg_integer()) :: t()
  def put_gateway(model, at, calls, errors) do
    b = bucket(at)
    row = Map.get(model.series, b, %{})

    row =
      row
      |> Map.update(:calls, calls, &(&1 + calls))
      |> Map.update(:errors, errors, &(&1 + errors))

    oldest = b - @buckets + 1
    series = for {k, v} <- Map.put(model.series, b, row), k >= oldest, into: %{}, do: {k, v}
    %{model | series: series, overview_dirty: true}
  end

  @doc """
  The series for the last 15 minutes ending at `now` (ms): one entry per
  5-second bucket with submitted, completed, failed, calls and errors, and
  latency percentiles (ms) of the tasks completed in the last minute and
  the whole window.
  """
  @spec series(t(), integer()) :: map()
  def series(model, now) do
    last = bucket(now)
    first = last - @buckets + 1

    points =
      for b <- first..last do
        row = Map.get(model.series, b, %{})

        [
          b * @bucket_ms,
          Map.get(row, :submitted, 0),
          Map.get(row, :completed, 0),
          Map.get(row, :failed, 0),
          Map.get(row, :calls, 0),
          Map.get(row, :errors, 0)
        ]
      end

    minute =
      for b <- (last - 11)..last,
          s <- Map.get(model.series, b, %{}) |> Map.get(:latency, []),
          do: s

    all = for {_b, row} <- model.series, s <- Map.get(row, :latency, []), do: s

    %{
      bucket_ms: @bucket_ms,
      columns: ["at", "submitted", "completed", "failed", "calls", "errors"],
      points: points,
      latency_1m: percentiles(minute),
      latency_15m: percentiles(all)
    }
  end

  @doc "p50 and p99 (nearest rank) of a list of numbers; nils when empty."
  @spec percentiles([number()]) :: %{
          p50: number() | nil,
          p99: number() | nil,
          n: non_neg_integer()
        }
  def percentiles([]), do: %{p50: nil, p99: nil, n: 0}

  def percentiles(samples) do
    sorted = Enum.sort(samples)
    n = length(sorted)
    rank = fn p -> Enum.at(sorted, max(0, min(n - 1, ceil(p * n) - 1))) end
    %{p50: rank.(0.5), p99: rank.(0.99), n: n}
  end

  # ---- overview --------------------------------------------------------------

  @doc "Replaces the overview (node, uptime, memory, cluster, MCP servers); dirty if changed."
  @spec put_overview(t(), map()) :: t()
  def put_overview(model, overview) do
    if overview == model.overview,
      do: model,
      else: %{model | overview: overview, overview_dirty: true}
  end

  # ---- reads -----------------------------------------------------------------

  @doc "The units an agent started lately, newest first."
  @spec timeline(t(), String.t()) :: [map()]
  def timeline(model, agent_id), do: Map.get(model.timelines, agent_id, [])

  @doc "The ids of the last `n` tasks of a swarm the dashboard knows, newest first."
  @spec recent_tasks(t(), String.t(), non_neg_integer()) :: [String.t()]
  def recent_tasks(model, swarm_id, n) do
    model.swarm_tasks
    |> Map.get(swarm_id, :queue.new())
    |> :queue.to_list()
    |> Enum.reverse()
    |> Enum.take(n)
  end

  @doc "The last progress lines of a task, newest first."
  @spec progress(t(), String.t()) :: [map()]
  def progress(model, task_id), do: Map.get(model.progress, task_id, [])

  @doc "How the dashboard submitted a task, if it did."
  @spec definition(t(), String.t()) :: map() | nil
  def definition(model, task_id), do: Map.get(model.definitions, task_id)

  @doc "Whether anything changed since the last delta."
  @spec dirty?(t()) :: boolean()
  def dirty?(m) do
    m.overview_dirty or m.new_events != [] or MapSet.size(m.dirty_swarms) > 0 or
      MapSet.size(m.dirty_agents) > 0 or MapSet.size(m.dirty_tasks) > 0 or
      MapSet.size(m.status_agents) > 0
  end

  @doc """
  The changes since the last delta as a map (`rev`, `swarms`, `agents`,
  `tasks`: id => record or nil when gone; `agent_status`: id => status for
  agents whose status alone changed; `events`: new log entries, oldest
  first; `series` and `overview` when they changed), and the model with
  the marks cleared and `rev` advanced. At most `@max_tasks_per_delta` tasks
  and `@max_agents_per_delta` agents go in one delta; the others stay dirty
  for the next.
  """
  @spec take_delta(t(), integer()) :: {map(), t()}
  def take_delta(model, now) do
    rev = model.rev + 1
    {task_ids, rest} = Enum.split(MapSet.to_list(model.dirty_tasks), @max_tasks_per_delta)

    {agent_ids, agents_rest} =
      Enum.split(MapSet.to_list(model.dirty_agents), @max_agents_per_delta)

    delta =
      %{
        type: "delta",
        rev: rev,
        swarms: pick(model.swarms, model.dirty_swarms),
        agents: pick(model.agents, agent_ids),
        agent_status: status_only(model),
        tasks: pick(model.tasks, task_ids),
        events: Enum.reverse(model.new_events)
      }
      |> then(fn d ->
        if model.overview_dirty,
          do: Map.merge(d, %{overview: model.overview, series: series(model, now)}),
          else: d
      end)

    {delta,
     %{
       model
       | rev: rev,
         dirty_swarms: MapSet.new(),
         dirty_agents: MapSet.new(agents_rest),
         status_agents: MapSet.new(),
         dirty_tasks: MapSet.new(rest),
         new_events: [],
         new_event_count: 0,
         overview_dirty: false
     }}
  end

  defp status_only(model) do
    for id <- model.status_agents,
        not MapSet.member?(model.dirty_agents, id),
        %{status: status} <- [Map.get(model.agents, id)],
        into: %{},
        do: {id, status}
  end

  @doc "The whole picture at revision `rev`, for a client that joins."
  @spec snapshot(t(), integer()) :: map()
  def snapshot(model, now) do
    %{
      type: "snapshot",
      rev: model.rev,
      swarms: model.swarms,
      agents: model.agents,
      tasks: model.tasks,
      events: :queue.to_list(model.events),
      overview: model.overview,
      series: series(model, now)
    }
  end

  defp pick(map, ids), do: Map.new(ids, fn id -> {id, Map.get(map, id)} end)

  @doc """
  Cuts a value to a short preview string (nil stays nil): text as it is,
  maps and lists as JSON, anything else inspected; at most `@preview`
  characters.
  """
  @spec preview(term()) :: String.t() | nil
  def preview(nil), do: nil

  def preview(value) do
    # Only the head of a large text is looked at.
    text = value |> to_text() |> head(8 * @preview)

    if String.length(text) > @preview,
      do: String.slice(text, 0, @preview) <> "…",
      else: text
  end

  defp head(text, bytes) when byte_size(text) <= bytes, do: text

  defp head(text, bytes) do
    cut = binary_part(text, 0, bytes)
    # Back off to a character boundary.
    Enum.find_value(0..3, cut, fn drop ->
      part = binary_part(cut, 0, bytes - drop)
      if String.valid?(part), do: part
    end)
  end

  defp to_text(nil), do: nil
  defp to_text(v) when is_binary(v), do: if(String.valid?(v), do: v, else: inspect(v, limit: 50))
  defp to_text(v) when is_atom(v), do: Atom.to_string(v)
  defp to_text(v) when is_number(v), do: to_string(v)

  defp to_text(v) when is_map(v) or is_list(v) do
    IO.iodata_to_binary(InterfaceService.Json.encode_term!(v))
  rescue
    _ -> inspect(v, limit: 50, printable_limit: @preview)
  end

  defp to_text(v), do: inspect(v, limit: 50, printable_limit: @preview)
end
