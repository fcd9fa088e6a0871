defmodule SwarmService.RuvSwarm do
  @moduledoc """
  The swarm engine's public API: swarms, agents, tasks, shared memory and
  discoveries, as plain function calls that exchange native terms.

  State lives in the Rust engine (loaded as a NIF), one lock per swarm, so a
  call costs microseconds, one busy swarm never blocks another, and a crash
  of any Elixir process loses no acknowledged state. Agents that do work are
  supervised processes (see `SwarmService.Executor`).

  ## Ids

  Ids are strings. A swarm id looks like `"swarm-1f2e3d4c-7"`; agents, tasks
  and discoveries carry their swarm's id as a prefix
  (`"swarm-1f2e3d4c-7.task-42"`), so any id finds its swarm.

  ## Errors

  Every function returns `{:error, reason}` on bad input instead of raising.
  Reasons are `:swarm_not_found`, `:agent_not_found`, `:task_not_found`,
  `:not_found` (memory key), `:no_task`, `:timeout`, `:cancelled`,
  `{:invalid_argument, message}`, `{:swarm_full, max}`,
  `{:too_large, what, size, limit}`, `{:dependency_cycle, path}`,
  `{:task_finished, status}`, `{:version_conflict, expected, found}`,
  `{:failed, message}`, `{:timed_out, message}`. `format_error/1` turns any
  of them into a sentence.

  ## Limits

  Names, keys, types and tags: 256 bytes. Lists (capabilities, tags): 64
  items. Inputs, values, results and discovery content: 1 MiB encoded.
  Agents per swarm: 100,000. Subtasks per task: 1,000. Timeouts and TTLs:
  one day. Finished tasks kept per swarm: 10,000 (older ones are forgotten).

  ## Example

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm(%{topology: :mesh, agents: 5, strategy: :adaptive})
      iex> {:ok, status} = SwarmService.RuvSwarm.swarm_status(swarm)
      iex> {status.topology, status.agents.total}
      {:mesh, 5}
      iex> SwarmService.RuvSwarm.destroy_swarm(swarm)
      :ok
  """

  alias SwarmService.{Coordination, Executor, Native, Options, Swarm}

  @type id :: String.t()
  @type reason :: atom | tuple
  @type topology :: :mesh | :hierarchical | :ring | :star
  @type strategy :: :balanced | :specialized | :adaptive

  @swarm_keys [
    :topology,
    :strategy,
    :agents,
    :max_agents,
    :name,
    :executor,
    :agent_type,
    :capabilities
  ]
  @agent_keys [:type, :name, :capabilities, :executor, :capacity, :node]
  @task_keys [
    :description,
    :input,
    :priority,
    :capabilities,
    :strategy,
    :max_agents,
    :timeout_ms,
    :retries,
    :backoff_ms,
    :max_backoff_ms,
    :subtasks
  ]
  @subtask_keys [:name, :input, :depends_on, :capabilities]
  @task_statuses [:pending, :assigned, :running, :completed, :failed, :cancelled, :timed_out]
  @memory_keys [:namespace, :tags, :ttl_ms, :if_version]
  @search_keys [:namespace, :prefix, :tags, :text, :limit]
  @discovery_keys [:agent_id, :type, :content, :confidence, :tags]
  @filter_keys [:type, :agent_id, :min_confidence]

  # ---- swarms ---------------------------------------------------------------

  @doc """
  Creates a swarm and its agents. Returns `{:ok, swarm_id}`.

  Options (map or keyword list):
    * `:topology` — `:mesh` (default), `:hierarchical`, `:ring` or `:star`
    * `:strategy` — `:balanced` (default), `:specialized` or `:adaptive`
    * `:agents` — agents to spawn now (default 0)
    * `:max_agents` — 1..100,000 (default: the larger of 100 and `:agents`)
    * `:name` — a label (default `"swarm"`)
    * `:executor` — how the agents work (default `:external`), see
      `SwarmService.Executor`; also the default for later `spawn_agent/2`
    * `:agent_type`, `:capabilities` — for the agents spawned now

      iex> {:ok, id} = SwarmService.RuvSwarm.spawn_swarm(topology: :ring, agents: 3, name: "docs")
      iex> String.starts_with?(id, "swarm-")
      true
      iex> SwarmService.RuvSwarm.spawn_swarm(%{topology: :torus})
      {:error, {:invalid_argument, "topology: unknown Topology \\"torus\\"; expected one of: mesh, hierarchical, ring, star"}}
  """
  @spec spawn_swarm(map | keyword) :: {:ok, id} | {:error, reason}
  def spawn_swarm(opts \\ %{}) do
    with {:ok, o} <- Options.normalize(opts, @swarm_keys),
         {:ok, agents} <- Options.count(o, :agents, 0, 0, 100_000),
         {:ok, max} <- Options.count(o, :max_agents, max(agents, 100), 1, 100_000),
         :ok <- fits(agents, max),
         {:ok, executor} <- Executor.validate(Map.get(o, :executor, :external)),
         {:ok, id} <-
           Native.swarm_create(
             Map.get(o, :name, "swarm"),
             Map.get(o, :topology, :mesh),
             Map.get(o, :strategy, :balanced),
             max
           ) do
      agent_opts = %{
        type: Map.get(o, :agent_type, "researcher"),
        capabilities: Map.get(o, :capabilities, []),
        executor: executor
      }

      with {:ok, _} <- Swarm.start(id, executor: executor),
           :ok <- spawn_n(id, agent_opts, agents) do
        {:ok, id}
      else
        error ->
          destroy_swarm(id)
          normalize_start_error(error)
      end
    end
  end

  defp fits(agents, max) when agents <= max, do: :ok

  defp fits(agents, max),
    do: Options.invalid("agents (#{agents}) must not exceed max_agents (#{max})")

  defp spawn_n(_id, _opts, 0), do: :ok

  defp spawn_n(id, opts, n) do
    case spawn_agent(id, opts) do
      {:ok, _} -> spawn_n(id, opts, n - 1)
      error -> error
    end
  end

  defp normalize_start_error({:error, _} = e), do: e
  defp normalize_start_error(other), do: {:error, {:invalid_argument, inspect(other)}}

  @doc """
  Destroys a swarm: its agents stop, its tasks, memory and discoveries are
  dropped.
  """
  @spec destroy_swarm(id) :: :ok | {:error, reason}
  def destroy_swarm(swarm_id) do
    with :ok <- Native.swarm_destroy(swarm_id) do
      Swarm.stop(swarm_id)
      :ok
    end
  end

  @doc "All swarms on this node, oldest first: id, name, topology, strategy, max_agents, agents, created_at."
  @spec list_swarms() :: {:ok, [map]}
  def list_swarms, do: {:ok, Enum.sort_by(Native.swarm_list(), &{&1.created_at, &1.id})}

  @doc """
  Status of a swarm: topology, strategy, `agents` by status (total, idle,
  busy, offline), `tasks` by status (pending, assigned, running, completed,
  failed, cancelled, timed_out), queued units, memory and discovery counts,
  and `counters` (tasks submitted, units dispatched/completed/failed,
  retries, ...). Costs the same at 10 agents and at 100,000.
  """
  @spec swarm_status(id) :: {:ok, map} | {:error, reason}
  def swarm_status(swarm_id), do: Native.swarm_status(swarm_id)

  @doc """
  Totals over every swarm on this node: `swarms`, `agents` by status (total,
  idle, busy, offline) and `tasks` by status, with the keys of
  `swarm_status/1`.
  """
  @spec totals() :: %{swarms: non_neg_integer, agents: map, tasks: map}
  def totals do
    statuses = for %{id: id} <- Native.swarm_list(), {:ok, s} <- [Native.swarm_status(id)], do: s

    add = fn key, zero ->
      Enum.reduce(statuses, zero, &Map.merge(&2, Map.fetch!(&1, key), fn _, a, b -> a + b end))
    end

    %{
      swarms: length(statuses),
      agents: add.(:agents, Map.new([:total, :idle, :busy, :offline], &{&1, 0})),
      tasks: add.(:tasks, Map.new(@task_statuses, &{&1, 0}))
    }
  end

  @doc "Whether the native engine is loaded (it is unless the NIF failed to build or load)."
  @spec engine_loaded?() :: boolean
  def engine_loaded?, do: Code.ensure_loaded?(Native)

  # ---- agents ---------------------------------------------------------------

  @doc """
  Adds an agent to a swarm. Returns `{:ok, agent_id}`.

  Options: `:type` (atom or string, default `"researcher"`), `:name`,
  `:capabilities` (list of strings), `:capacity` (units of work at once,
  default 1), `:executor` (default: the swarm's, see
  `SwarmService.Executor`). Agents with an executor run as supervised
  processes and are pushed work; `:external` agents pull it with
  `claim_task/2`.

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm(max_agents: 1)
      iex> {:ok, _agent} = SwarmService.RuvSwarm.spawn_agent(swarm, type: :coder, capabilities: ["rust"])
      iex> SwarmService.RuvSwarm.spawn_agent(swarm, type: :coder)
      {:error, {:swarm_full, 1}}
  """
  @spec spawn_agent(id, map | keyword) :: {:ok, id} | {:error, reason}
  def spawn_agent(swarm_id, opts \\ %{}) do
    with {:ok, o} <- Options.normalize(opts, @agent_keys),
         :ok <- local_node(o),
         {:ok, executor} <- Executor.validate(executor_of(swarm_id, o)) do
      native =
        o
        |> Map.take([:type, :name, :capabilities, :capacity])
        |> Map.put(:dispatch, if(executor == :external, do: :pull, else: :push))
        |> Map.put(:node, Atom.to_string(node()))
        |> Map.put(:executor, executor)

      with {:ok, agent_id} <- Native.agent_add(swarm_id, native) do
        start_agent_process(swarm_id, agent_id, executor)
      end
    end
  end

  defp executor_of(swarm_id, o) do
    case Map.fetch(o, :executor) do
      {:ok, e} -> e
      :error when is_binary(swarm_id) -> Swarm.Server.default_executor(swarm_id)
      :error -> :external
    end
  end

  defp local_node(%{node: n}) when n != node() do
    Options.invalid("agents can only be placed on this node (#{node()}) for now")
  end

  defp local_node(_), do: :ok

  defp start_agent_process(_swarm_id, agent_id, :external), do: {:ok, agent_id}

  defp start_agent_process(swarm_id, agent_id, executor) do
    result =
      try do
        Swarm.AgentSupervisor.start_agent(
          Swarm.via({:agents, swarm_id}),
          swarm_id,
          agent_id,
          executor
        )
      catch
        :exit, reason -> {:error, reason}
      end

    case result do
      {:ok, _pid} ->
        {:ok, agent_id}

      {:error, reason} ->
        Native.agent_remove(agent_id)

        {:error,
         {:invalid_argument, "agent process failed to start: #{inspect(reason, limit: 5)}"}}
    end
  end

  @doc "Removes an agent. Work it held is retried on other agents."
  @spec remove_agent(id) :: :ok | {:error, reason}
  def remove_agent(agent_id) do
    with {:ok, pid} <- Native.agent_remove(agent_id) do
      if is_pid(pid) do
        swarm_id = agent_id |> String.split(".") |> hd()
        DynamicSupervisor.terminate_child(Swarm.via({:agents, swarm_id}), pid)
      end

      :ok
    end
  catch
    :exit, _ -> :ok
  end

  @doc """
  The agents of a swarm in join order (the order topologies are built in),
  each with id, name, type, capabilities, status, dispatch, capacity, load,
  node and metrics.
  """
  @spec list_agents(id) :: {:ok, [map]} | {:error, reason}
  def list_agents(swarm_id), do: Native.agent_list(swarm_id)

  @doc """
  One agent with its metrics: `completed`, `failed`, `latency_ms` (moving
  average per attempt) and `success_rate` (moving average).
  """
  @spec agent_metrics(id) :: {:ok, map} | {:error, reason}
  def agent_metrics(agent_id), do: Native.agent_get(agent_id)

  @doc "Agent ids directly connected to `agent_id` in its swarm's topology."
  @spec neighbours(id) :: {:ok, [id]} | {:error, reason}
  def neighbours(agent_id), do: Native.agent_neighbours(agent_id)

  # ---- tasks -----------------------------------------------------------------

  @doc """
  Submits a task. Returns `{:ok, task_id}` at once; the swarm's agents run it.

  `task` is a description string, or a map / keyword list with:
    * `:description`, `:input` (any term; defaults to the description)
    * `:priority` — `:low`, `:medium` (default), `:high`, `:critical`
    * `:capabilities` — agents must have all of them
    * `:strategy` — `:parallel` (default: fan out to up to `:max_agents`
      agents, results as a list), `:sequential` (a pipeline of up to
      `:max_agents` steps, each fed the previous output, in ring order on a
      ring) or `:adaptive` (hedged tries sized by the swarm's observed
      success rate; the first result wins)
    * `:max_agents` — fan-out or pipeline length (default 1)
    * `:subtasks` — a list of `%{name, input, depends_on: [name]}` run as a
      dependency graph; results come back as a map by name, and each step
      sees its dependencies' results. Cycles are rejected.
    * `:timeout_ms` (per attempt), `:retries` (total attempts, default 3),
      `:backoff_ms` / `:max_backoff_ms` (exponential backoff with jitter)

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm()
      iex> {:ok, task} = SwarmService.RuvSwarm.orchestrate(swarm, "summarise the logs")
      iex> {:ok, %{status: :pending}} = SwarmService.RuvSwarm.task_status(task)
      iex> SwarmService.RuvSwarm.orchestrate(swarm, subtasks: [%{name: "a", depends_on: ["b"]}, %{name: "b", depends_on: ["a"]}])
      {:error, {:dependency_cycle, "a -> b -> a"}}
  """
  @spec orchestrate(id, String.t() | map | keyword) :: {:ok, id} | {:error, reason}
  def orchestrate(swarm_id, description) when is_binary(description) do
    orchestrate(swarm_id, %{description: description})
  end

  def orchestrate(swarm_id, task) do
    with {:ok, t} <- Options.normalize(task, @task_keys),
         t = Map.put_new_lazy(t, :input, fn -> Map.get(t, :description) end),
         :ok <- Options.check_payload(t, "task"),
         {:ok, t} <- normalize_subtasks(t) do
      Native.task_submit(swarm_id, t)
    end
  end

  defp normalize_subtasks(%{subtasks: subs} = t) when is_list(subs) do
    subs
    |> Enum.reduce_while({:ok, []}, fn s, {:ok, acc} ->
      case Options.normalize(s, @subtask_keys) do
        {:ok, m} -> {:cont, {:ok, [m | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, list} -> {:ok, %{t | subtasks: Enum.reverse(list)}}
      error -> error
    end
  end

  defp normalize_subtasks(%{subtasks: _}), do: Options.invalid("subtasks must be a list")
  defp normalize_subtasks(t), do: {:ok, t}

  @doc """
  A task's status: `status` (`:pending`, `:assigned`, `:running`,
  `:completed`, `:failed`, `:cancelled`, `:timed_out`), priority, strategy,
  timestamps, total attempts, `error` and each unit's status, agent and
  attempts.
  """
  @spec task_status(id) :: {:ok, map} | {:error, reason}
  def task_status(task_id), do: Native.task_get(task_id, false)

  @doc """
  Like `task_status/1`, plus `result` (the aggregate) and each unit's
  `result`.
  """
  @spec task_results(id) :: {:ok, map} | {:error, reason}
  def task_results(task_id), do: Native.task_get(task_id, true)

  @doc "Cancels a task; agents running it are told to stop."
  @spec cancel_task(id) :: :ok | {:error, reason}
  def cancel_task(task_id), do: Native.task_cancel(task_id)

  @doc """
  Waits up to `timeout_ms` for a task to finish. Returns `{:ok, result}`, or
  `{:error, {:failed, message}}`, `{:error, {:timed_out, message}}`,
  `{:error, :cancelled}`, `{:error, :timeout}` (still running).
  """
  @spec await_task(id, timeout) :: {:ok, term} | {:error, reason}
  def await_task(task_id, timeout_ms \\ 5_000) do
    case Native.task_watch(task_id, self()) do
      :done ->
        outcome(task_id)

      :watching ->
        receive do
          {:swarm_task_done, ^task_id} -> outcome(task_id)
        after
          timeout_ms -> {:error, :timeout}
        end

      {:error, _} = error ->
        error
    end
  end

  defp outcome(task_id) do
    with {:ok, t} <- Native.task_get(task_id, true) do
      case t.status do
        :completed -> {:ok, t.result}
        :failed -> {:error, {:failed, t.error}}
        :timed_out -> {:error, {:timed_out, t.error}}
        :cancelled -> {:error, :cancelled}
      end
    end
  end

  @doc """
  An external agent claims its next unit of work, holding it for
  `:lease_ms` (default 30,000). Returns `{:ok, work}` with `work_id`,
  `task_id`, `input`, `description`, `context` (dependency results) and
  `timeout_ms`, or `{:error, :no_task}`. A lease that runs out puts the work
  back in the queue.
  """
  @spec claim_task(id, keyword | map) :: {:ok, map} | {:error, reason}
  def claim_task(agent_id, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:lease_ms]) do
      Native.work_claim(agent_id, Map.get(o, :lease_ms, 30_000))
    end
  end

  @doc """
  Reports the result of claimed work. Returns `:ok`, or `:ignored` when the
  claim is no longer current (its lease ran out, the task finished or was
  cancelled): completion is idempotent.
  """
  @spec complete_task(id, id, term) :: :ok | :ignored | {:error, reason}
  def complete_task(work_id, agent_id, result) do
    with :ok <- Options.check_payload(result, "result") do
      Native.work_complete(work_id, agent_id, result)
    end
  end

  @doc "Reports that claimed work failed; it is retried (elsewhere if possible) or fails the task."
  @spec fail_task(id, id, String.t() | term) :: :ok | :ignored | {:error, reason}
  def fail_task(work_id, agent_id, reason) do
    text =
      if is_binary(reason), do: reason, else: inspect(reason, limit: 10, printable_limit: 500)

    Native.work_fail(work_id, agent_id, text, false)
  end

  # ---- coordination ----------------------------------------------------------

  @doc """
  Sends `message` to every agent of the swarm along its topology: on a mesh
  from the origin to all peers, on a star through the hub, on a ring from
  neighbour to neighbour, on a hierarchy down the tree. Option `:from` names
  the origin agent (default: the swarm's first agent). Agent processes
  receive `{:swarm_coordination, %{message, from, to, ...}}` and pass it on.
  """
  @spec coordinate_agents(id, term, keyword) :: :ok | {:error, reason}
  def coordinate_agents(swarm_id, message, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:from]),
         :ok <- Options.check_payload(message, "message"),
         {:ok, hops} <- Native.swarm_coordinate(swarm_id, Map.get(o, :from)) do
      Coordination.start(swarm_id, message, hops)
    end
  end

  # ---- memory ----------------------------------------------------------------

  @doc """
  Stores `value` (any term) under `key` in the swarm's memory. Returns
  `{:ok, version}`; versions only grow. Options: `:namespace` (default
  `"default"`), `:tags`, `:ttl_ms`, `:if_version` (store only if the current
  version is this one; 0 = the key must not exist).

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm()
      iex> {:ok, v1} = SwarmService.RuvSwarm.memory_store(swarm, "plan", %{step: 1}, tags: ["draft"])
      iex> {:ok, entry} = SwarmService.RuvSwarm.memory_get(swarm, "plan")
      iex> {entry.value, entry.version == v1, entry.tags}
      {%{step: 1}, true, ["draft"]}
  """
  @spec memory_store(id, String.t(), term, keyword | map) :: {:ok, pos_integer} | {:error, reason}
  def memory_store(swarm_id, key, value, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, @memory_keys),
         :ok <- Options.check_payload(value, "value") do
      Native.memory_store(swarm_id, key, value, o)
    end
  end

  @doc "Reads an entry: value, version, tags, timestamps. `{:error, :not_found}` if absent or expired."
  @spec memory_get(id, String.t(), keyword | map) :: {:ok, map} | {:error, reason}
  def memory_get(swarm_id, key, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:namespace]),
         do: Native.memory_get(swarm_id, key, o)
  end

  @doc "Deletes an entry."
  @spec memory_delete(id, String.t(), keyword | map) :: :ok | {:error, reason}
  def memory_delete(swarm_id, key, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:namespace]),
         do: Native.memory_delete(swarm_id, key, o)
  end

  @doc """
  Searches the swarm's memory. `query` is a text (matched case-insensitively
  against keys and text values) or a map / keyword list of `:namespace`,
  `:prefix` (key prefix), `:tags` (all required), `:text`, `:limit`
  (default 100, at most 1,000). `opts` takes the same keys.
  """
  @spec memory_search(id, String.t() | map | keyword, keyword | map) ::
          {:ok, [map]} | {:error, reason}
  def memory_search(swarm_id, query, opts \\ [])

  def memory_search(swarm_id, text, opts) when is_binary(text),
    do: memory_search(swarm_id, %{text: text}, opts)

  def memory_search(swarm_id, query, opts) do
    with {:ok, q} <- Options.normalize(query, @search_keys),
         {:ok, o} <- Options.normalize(opts, @search_keys) do
      Native.memory_search(swarm_id, Map.merge(q, o))
    end
  end

  @doc "Engine memory: bytes the Rust engine holds, swarm count, memory entries and bytes per swarm."
  @spec memory_usage() :: {:ok, map}
  def memory_usage do
    %{allocated_bytes: bytes, swarms: count} = Native.engine_memory()

    per_swarm =
      for %{id: id} <- Native.swarm_list(), {:ok, s} = Native.swarm_status(id) do
        %{id: id, memory_entries: s.memory_entries, memory_bytes: s.memory_bytes}
      end

    {:ok, %{engine_bytes: bytes, swarms: count, per_swarm: per_swarm}}
  end

  # ---- discoveries and events ------------------------------------------------

  @doc """
  Shares a discovery: `:type` (required), `:content` (any term),
  `:confidence` (0.0..1.0, default 1.0), `:tags`, `:agent_id`. Subscribers
  whose filters match receive `{:swarm_discovery, swarm_id, discovery}`.
  """
  @spec share_discovery(id, map | keyword) :: {:ok, id} | {:error, reason}
  def share_discovery(swarm_id, discovery) do
    with {:ok, d} <- Options.normalize(discovery, @discovery_keys),
         :ok <- Options.check_payload(Map.get(d, :content), "content") do
      Native.discovery_share(swarm_id, d)
    end
  end

  @doc """
  Delivers the swarm's discoveries to the caller as
  `{:swarm_discovery, swarm_id, discovery}`. Filters: `:type`, `:agent_id`,
  `:min_confidence`. Calling again replaces the filters.
  """
  @spec subscribe_discoveries(id, keyword | map) :: :ok | {:error, reason}
  def subscribe_discoveries(swarm_id, filters \\ []) do
    with {:ok, f} <- Options.normalize(filters, @filter_keys),
         do: Native.discovery_subscribe(swarm_id, self(), f)
  end

  @doc "The newest discoveries (up to `limit`, oldest first) matching the filters."
  @spec recent_discoveries(id, keyword | map, pos_integer) :: {:ok, [map]} | {:error, reason}
  def recent_discoveries(swarm_id, filters \\ [], limit \\ 100) do
    with {:ok, f} <- Options.normalize(filters, @filter_keys),
         do: Native.discovery_recent(swarm_id, f, limit)
  end

  @doc """
  Delivers every event of the swarm to the caller as
  `{:swarm_event, swarm_id, %{type: type, seq: n, at: ms, ...}}`. Types:
  `:agent_joined`, `:agent_left`, `:agent_status_changed`,
  `:task_submitted`, `:task_assigned`, `:task_started`, `:task_progress`,
  `:task_retried`, `:task_completed`, `:task_failed`, `:task_cancelled`,
  `:task_timed_out`, `:memory_stored`, `:memory_deleted`, `:memory_expired`,
  `:discovery_shared`, `:coordinated`.
  """
  @spec subscribe(id) :: :ok | {:error, reason}
  def subscribe(swarm_id), do: Native.swarm_subscribe(swarm_id, self())

  @doc "Stops event and discovery delivery to the caller."
  @spec unsubscribe(id) :: :ok | {:error, reason}
  def unsubscribe(swarm_id), do: Native.swarm_unsubscribe(swarm_id, self())

  # ---- cluster knowledge -----------------------------------------------------

  @doc """
  Stores `value` under `key` in the cluster-wide knowledge repository,
  replicated to every node. Needs quorum. Returns `{:ok, stamp}`; see
  `SwarmService.Cluster.Knowledge` for the consistency model and options.
  """
  @spec knowledge_put(String.t(), term, keyword | map) ::
          {:ok, SwarmService.Cluster.Knowledge.stamp()} | {:error, reason}
  def knowledge_put(key, value, opts \\ []),
    do: SwarmService.Cluster.Knowledge.put(key, value, opts)

  @doc "Reads a knowledge entry from this node's replica: `{:ok, %{key, value, stamp, node}}`."
  @spec knowledge_get(String.t()) ::
          {:ok, SwarmService.Cluster.Knowledge.entry()} | {:error, reason}
  def knowledge_get(key), do: SwarmService.Cluster.Knowledge.get(key)

  @doc "Deletes a knowledge entry on every node (a last-writer-wins tombstone). Needs quorum."
  @spec knowledge_delete(String.t()) :: :ok | {:error, reason}
  def knowledge_delete(key), do: SwarmService.Cluster.Knowledge.delete(key)

  @doc "Knowledge entries in key order. Options: `:prefix`, `:limit` (default 100)."
  @spec knowledge_list(keyword | map) ::
          {:ok, [SwarmService.Cluster.Knowledge.entry()]} | {:error, reason}
  def knowledge_list(opts \\ []), do: SwarmService.Cluster.Knowledge.list(opts)

  # ---- errors ----------------------------------------------------------------

  @doc """
  A sentence for any error reason this module returns.

      iex> SwarmService.RuvSwarm.format_error({:swarm_full, 5})
      "the swarm is full: it already has its maximum of 5 agents"
  """
  @spec format_error(term) :: String.t()
  def format_error(:swarm_not_found), do: "no swarm with that id"
  def format_error(:agent_not_found), do: "no agent with that id"

  def format_error(:task_not_found),
    do: "no task with that id (finished tasks are kept for a while only)"

  def format_error(:not_found), do: "no memory entry with that key"
  def format_error(:no_task), do: "no task is waiting for this agent"
  def format_error(:timeout), do: "the task did not finish in time; it is still running"
  def format_error(:cancelled), do: "the task was cancelled"
  def format_error({:invalid_argument, msg}), do: msg

  def format_error(:no_quorum),
    do:
      "no quorum: this node does not reach a majority of the cluster's configured members, " <>
        "so it accepts no cluster-wide writes"

  def format_error({:swarm_full, max}),
    do: "the swarm is full: it already has its maximum of #{max} agents"

  def format_error({:too_large, what, size, limit}),
    do: "#{what} is too large: #{size} exceeds the limit of #{limit}"

  def format_error({:dependency_cycle, path}), do: "subtask dependencies form a cycle: #{path}"
  def format_error({:task_finished, status}), do: "the task already finished (#{status})"

  def format_error({:version_conflict, expected, found}),
    do: "version conflict: expected #{expected}, found #{found}"

  def format_error({:not_pull_agent, id}),
    do: "agent #{id} has an executor; only external agents claim tasks"

  def format_error({:failed, msg}), do: "the task failed: #{msg}"
  def format_error({:timed_out, msg}), do: "the task timed out: #{msg}"
  def format_error(other), do: inspect(other, limit: 10)
end
