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
  Reasons are `:swarm_not_found`, `:swarm_exists`, `:agent_not_found`,
  `:task_not_found`, `:not_found` (memory or knowledge key), `:no_task`, `:timeout`,
  `:cancelled`, `{:invalid_argument, message}`, `{:swarm_full, max}`,
  `{:too_large, what, size, limit}`, `{:dependency_cycle, path}`,
  `{:task_finished, status}`, `{:version_conflict, expected, found}`,
  `{:quota_exceeded, what, limit}` (`what` is `"swarm memory"` or
  `"node memory"`, `limit` in bytes: the write would hold more than the
  quota allows; nothing was changed),
  `{:failed, message}`, `{:timed_out, message}`,
  `{:executor_unavailable, node, module}` (the node an agent is placed on
  cannot load its executor module), and on a cluster
  `:no_quorum`, `{:home_down, node}`; for a
  durable swarm `{:not_committed, ms}` (see "Durability") and
  `{:raft, reason}` (its log refused the change).
  `format_error/1` turns any of them into a sentence.

  ## Durability

  A swarm is created with `storage: :disk` unless asked otherwise. It is
  then a Ra (Raft) cluster (`SwarmService.Raft`, on RabbitMQ's Ra) whose
  state machine is the swarm's engine: each of its changes (agent
  registrations and attachments, tasks, cancellations, claims, unit
  results and failures, memory writes and deletes, discoveries,
  subscriptions and `await_task/2` waits, timer ticks) is a command in
  the swarm's log. **An acknowledgement promises that the change is on
  disk (fdatasync) on a majority of the swarm's members** — on the one
  node of a lone node, on 2 of 3 in a cluster — so it survives a kill -9
  of any minority of them, or of every node at once: on boot each node
  replays its swarms' logs (from their latest snapshots), restarts the
  agent processes it hosts, and logs how many swarms, agents, tasks and
  memory entries it recovered.

  Reads (`swarm_status/1`, `task_status/1`, `memory_get/3`, ...) are
  answered by the leader's engine without a log round trip: they see every
  acknowledged write, except that a leader cut off from its majority may
  answer from its last state until it learns it was replaced.

  Effects are at-least-once across a failover: work that was running
  when a leader (or the node of the agent running it) died is sent again,
  and runs again; completion stays exactly-once (a work id carries its
  attempt, so a task still completes once, with one result). Events to
  `subscribe/1` subscribers are sent by the leader only, at most once:
  those of a leader's last moments may be lost, so after a gap read the
  state you depend on. Subscribers, waiters and `notify:` pids are part of
  the log, so they hear from whichever member leads next.

  A write not committed within 2 s (`config :swarm_service,
  :raft_command_timeout_ms`) answers `{:error, :no_quorum}` when fewer than
  a majority of the swarm's members are reachable, else `{:error,
  {:not_committed, ms}}`: it may or may not be applied later.

  `storage: :memory` swarms skip the log: changes cost microseconds, live
  on the one node that created the swarm, and are lost when it stops.
  Choose it for high-rate, throw-away work.

  ## Across a cluster

  On a cluster (see `SwarmService.Cluster`) every function here works on
  any node: a call about a durable swarm runs at its Raft leader, one
  about an in-memory swarm on its node (one `:erpc` round trip from
  elsewhere). A durable swarm has `:replicas` members (default 3, fewer
  when fewer nodes are ready), chosen by hashing the swarm id over the
  ready members, so memberships and leaderships spread over the cluster.
  Who leads is decided by a Raft majority, never by one node: when the
  leader dies, the remaining majority elects a new one (about 200 ms on
  loopback), which watches the agent processes again and resends work in
  flight. Agents may run on any member (`spawn_agent/2` with `:node`,
  `spawn_swarm/1` with `placement: :spread`).

  A write in flight when its leader died answers `{:error, {:home_down,
  node}}` (it may or may not have happened); reads, and writes made once
  the leader is already out of reach, wait (up to 5 s) for the new one.
  On the side of a partition without a majority of a swarm's members its
  writes answer `{:error, :no_quorum}`; when the partition heals, every
  member converges on the majority's log. In-memory swarms have no copy
  on another node: they are gone with their node.

  ## Limits

  Names, keys, types and tags: 256 bytes. Lists (capabilities, tags): 64
  items. Inputs, values, results and discovery content: 1 MiB encoded.
  Agents per swarm: 100,000. Subtasks per task: 1,000. Timeouts and TTLs:
  one day. Finished tasks kept per swarm: 10,000 (older ones are forgotten).
  `SwarmService.Limits` reads every limit from the engine.

  ## Memory quotas

  What the engine holds for clients is bounded per swarm (default 1 GiB)
  and per node over all swarms (default 8 GiB): memory entries (namespace,
  key, value, tags), task inputs and descriptions, results kept (unit
  results and aggregates, until the task leaves the history) and
  discoveries, each with a small fixed overhead per item. A write that
  would go past either quota answers `{:error, {:quota_exceeded, what,
  limit}}` and changes nothing; deleting entries, finished tasks leaving
  the history and discoveries leaving the log make room. A result refused
  this way fails its attempt with that reason (it is retried, or the task
  fails), so no task waits on it. Set the defaults with
  `config :swarm_service, :memory_quotas, swarm_bytes: ..., node_bytes: ...`
  (or `RUV_SWARM_SWARM_MEMORY_BYTES` / `RUV_SWARM_NODE_MEMORY_BYTES`), one
  swarm's with `spawn_swarm/1`'s `:memory_quota`; `memory_usage/0` reports
  the bytes held and the quotas.

  ## Usage and cost

  Executors may report what each attempt cost with its result or failure
  (tokens, turns, duration, `cost_usd`, a session id; see
  `SwarmService.Executor`; external agents pass `usage:` to
  `complete_task/4` and `fail_task/4`). The engine keeps the cost exactly,
  in integer micro-dollars, and reports dollars: per attempt in
  `task_results/1`, per agent in `agent_metrics/1`, per swarm in
  `swarm_status/1`, per node in `totals/0` and `/metrics`. A report the
  engine ignores (the attempt had already ended, timed out or been
  cancelled) is not counted. A swarm's `max_cost_usd` budget
  (`spawn_swarm/1`, `set_budget/2`) stops new dispatch once the cost
  reaches it. Durable swarms keep all of it across restarts, and a
  cluster's backup node gets it with each unit's result.

  ## Example

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm(%{topology: :mesh, agents: 5, strategy: :adaptive})
      iex> {:ok, status} = SwarmService.RuvSwarm.swarm_status(swarm)
      iex> {status.topology, status.agents.total}
      {:mesh, 5}
      iex> SwarmService.RuvSwarm.destroy_swarm(swarm)
      :ok
  """

  alias SwarmService.{Executor, Native, Options}
  alias SwarmService.Swarm.{Commands, Home}

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
    :capabilities,
    :memory_quota,
    :storage,
    :replicas,
    :placement,
    :owner,
    :max_cost_usd
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
  @task_statuses [:pending, :running, :completed, :failed, :cancelled, :timed_out]
  @usage_keys [
    :input_tokens,
    :output_tokens,
    :cache_read_tokens,
    :cache_creation_tokens,
    :cost_usd,
    :turns
  ]
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
    * `:memory_quota` — most bytes the swarm may hold (memory entries, task
      inputs, results, discoveries; see `memory_usage/0`), at least 4096;
      default: the node's swarm quota (`config :swarm_service, :memory_quotas`)
    * `:storage` — `:disk` (the default): every change is on disk on a
      majority of the swarm's members before it is acknowledged, and the
      swarm survives restarts of its nodes (see "Durability" above);
      `:memory`: changes are applied directly, in microseconds, on one
      node, and lost when it stops
    * `:replicas` — a durable swarm's Raft members, 1..7 (default 3; fewer
      when fewer cluster members are ready)
    * `:placement` — where the agents spawned now run: `:local` (default,
      the node that creates the swarm) or `:spread` (round-robin over the
      cluster members that are up, in node-name order; on a lone node the
      same as `:local`)
    * `:max_cost_usd` — the swarm's cost budget in US dollars (see "Usage
      and cost" below; default none): once the cost its agents reported
      reaches it, no new unit is dispatched; `set_budget/2` changes it
    * `:owner` — whom the swarm counts against (default `:local`; the
      gateway passes its client): over `SwarmService.SwarmCaps`'s caps the
      answer is `{:error, {:too_many_swarms, :client | :node, cap}}`

      iex> {:ok, id} = SwarmService.RuvSwarm.spawn_swarm(topology: :ring, agents: 3, name: "docs")
      iex> String.starts_with?(id, "swarm-")
      true
      iex> SwarmService.RuvSwarm.spawn_swarm(%{topology: :torus})
      {:error, {:invalid_argument, "topology: unknown Topology \\"torus\\"; expected one of: mesh, hierarchical, ring, star"}}
  """
  @spec spawn_swarm(map | keyword) :: {:ok, id} | {:error, reason}
  def spawn_swarm(opts \\ %{}) do
    with {:ok, o} <- Options.normalize(opts, @swarm_keys),
         limit = SwarmService.Limits.get(:max_agents_per_swarm),
         {:ok, agents} <- Options.count(o, :agents, 0, 0, limit),
         default = max(agents, SwarmService.Limits.get(:default_max_agents)),
         {:ok, max} <- Options.count(o, :max_agents, default, 1, limit),
         :ok <- fits(agents, max),
         {:ok, executor} <- Executor.validate(Map.get(o, :executor, :external)),
         {:ok, quota} <- Options.quota(o, :memory_quota),
         {:ok, storage} <- Options.choice(o, :storage, [:disk, :memory], nil),
         {:ok, replicas} <- Options.count(o, :replicas, 3, 1, 7),
         {:ok, placement} <- Options.choice(o, :placement, [:local, :spread], :local),
         {:ok, budget} <- Options.cost(o, :max_cost_usd),
         {:ok, id} <-
           SwarmService.SwarmCaps.reserve(Map.get(o, :owner, :local), fn ->
             Commands.create_swarm(
               Map.get(o, :name, "swarm"),
               Map.get(o, :topology, :mesh),
               Map.get(o, :strategy, :balanced),
               max,
               executor,
               quota,
               storage,
               budget,
               replicas
             )
           end) do
      # (An agent's type is given only when asked for: a claude agent
      # whose type is given takes that persona.)
      agent_opts =
        Map.merge(
          %{capabilities: Map.get(o, :capabilities, []), executor: executor},
          Map.take(o, [:agent_type]) |> Map.new(fn {:agent_type, t} -> {:type, t} end)
        )

      nodes =
        if placement == :spread,
          do: Enum.sort(SwarmService.Swarm.Locator.ready_members()),
          else: [nil]

      case spawn_n(id, agent_opts, agents, nodes) do
        :ok ->
          {:ok, id}

        error ->
          destroy_swarm(id)
          error
      end
    end
  end

  defp fits(agents, max) when agents <= max, do: :ok

  defp fits(agents, max),
    do: Options.invalid("agents (#{agents}) must not exceed max_agents (#{max})")

  # `nodes` are taken in turn; nil is the swarm's own node.
  defp spawn_n(_id, _opts, 0, _nodes), do: :ok

  defp spawn_n(id, opts, n, [place | rest]) do
    opts = if place, do: Map.put(opts, :node, place), else: opts

    case spawn_agent(id, opts) do
      {:ok, _} -> spawn_n(id, Map.delete(opts, :node), n - 1, rest ++ [place])
      error -> error
    end
  end

  @doc """
  Destroys a swarm: its agents stop, its tasks, memory and discoveries are
  dropped.
  """
  @spec destroy_swarm(id) :: :ok | {:error, reason}
  def destroy_swarm(swarm_id) do
    with :ok <- Home.run(swarm_id, :destroy_swarm, [swarm_id]) do
      SwarmService.SwarmCaps.release(swarm_id)
    end
  end

  @doc """
  All swarms of the cluster (each listed by its home node), oldest first:
  id, name, topology, strategy, max_agents, agents, created_at.
  """
  @spec list_swarms() :: {:ok, [map]}
  def list_swarms do
    swarms =
      SwarmService.Cluster.members()
      |> Enum.flat_map(&if(&1 == node(), do: Commands.local_swarms(), else: remote_swarms(&1)))
      |> Enum.uniq_by(& &1.id)

    {:ok, Enum.sort_by(swarms, &{&1.created_at, &1.id})}
  end

  defp remote_swarms(n) do
    case SwarmService.Cluster.call(n, Commands, :local_swarms, [], 5_000) do
      list when is_list(list) -> list
      {:error, _} -> []
    end
  end

  @doc """
  Status of a swarm: topology, strategy, `agents` by status (total, idle,
  busy, offline), `tasks` by status (pending, running, completed,
  failed, cancelled, timed_out), queued units, memory and discovery counts,
  `counters` (tasks submitted, units dispatched/completed/failed,
  retries, ...), `usage` (what every attempt the swarm ran reported:
  `input_tokens`, `output_tokens`, `cache_read_tokens`,
  `cache_creation_tokens`, `cost_usd`, `turns`) and `budget`
  (`%{max_cost_usd: dollars | nil, spent_usd: dollars, exhausted: bool}`).
  Costs the same at 10 agents and at 100,000.

  `consistent: true` makes the read linearizable (see "Durability"): it
  is answered after a no-op has gone through the swarm's log, so it sees
  every write acknowledged before the call, and a leader cut off from its
  majority answers `{:error, :no_quorum}` instead of its last state.
  `task_status/2` and `memory_get/3` take it too.
  """
  @spec swarm_status(id, keyword | map) :: {:ok, map} | {:error, reason}
  def swarm_status(swarm_id, opts \\ []), do: read(swarm_id, :swarm_status, [swarm_id], opts)

  # A read at the swarm's home, through a log barrier when asked.
  defp read(id, fun, args, opts) do
    with {:ok, o} <- Options.normalize(opts, [:consistent]),
         {:ok, consistent} <- Options.choice(o, :consistent, [true, false], false) do
      if consistent,
        do: Home.run(id, :consistent, [id, fun, args]),
        else: Home.run(id, fun, args)
    end
  end

  @doc """
  Sets the swarm's cost budget to `max_cost_usd` dollars, or lifts it
  with `nil`. While the swarm's total cost (`swarm_status/1`'s
  `budget.spent_usd`) is at or above the budget no new unit is
  dispatched: running units finish, queued ones wait and their task's
  status says why (`waiting_reason`). Raising the budget above what was
  spent starts dispatch again at once.

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm(max_cost_usd: 0.5, storage: :memory)
      iex> :ok = SwarmService.RuvSwarm.set_budget(swarm, 2)
      iex> {:ok, %{budget: budget}} = SwarmService.RuvSwarm.swarm_status(swarm)
      iex> budget
      %{max_cost_usd: 2.0, spent_usd: 0.0, exhausted: false}
  """
  @spec set_budget(id, number | nil) :: :ok | {:error, reason}
  def set_budget(swarm_id, max_cost_usd) do
    with {:ok, micros} <- Options.cost(%{max_cost_usd: max_cost_usd}, :max_cost_usd),
         do: Home.run(swarm_id, :set_budget, [swarm_id, micros])
  end

  @doc """
  Totals over every swarm on this node: `swarms`, `agents` by status (total,
  idle, busy, offline), `tasks` by status and `usage` (tokens, cost and
  turns), with the keys of `swarm_status/1`.
  """
  @spec totals() :: %{swarms: non_neg_integer, agents: map, tasks: map, usage: map}
  def totals do
    statuses = local_statuses()

    add = fn key, zero ->
      Enum.reduce(statuses, zero, &Map.merge(&2, Map.fetch!(&1, key), fn _, a, b -> a + b end))
    end

    %{
      swarms: length(statuses),
      agents: add.(:agents, Map.new([:total, :idle, :busy, :offline], &{&1, 0})),
      tasks: add.(:tasks, Map.new(@task_statuses, &{&1, 0})),
      usage: add.(:usage, Map.put(Map.new(@usage_keys, &{&1, 0}), :cost_usd, 0.0))
    }
  end

  # Status of every swarm this node's engine holds (skipping any destroyed
  # since it was listed).
  defp local_statuses do
    for %{id: id} <- Native.swarm_list(), {:ok, s} <- [Native.swarm_status(id)], do: s
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
  `SwarmService.Executor`), `:node` (the cluster member whose processes
  run the agent; default: the swarm's home node). Agents with an executor
  run as supervised processes and are pushed work; `:external` agents pull
  it with `claim_task/2`.

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm(max_agents: 1)
      iex> {:ok, _agent} = SwarmService.RuvSwarm.spawn_agent(swarm, type: :coder, capabilities: ["rust"])
      iex> SwarmService.RuvSwarm.spawn_agent(swarm, type: :coder)
      {:error, {:swarm_full, 1}}
  """
  @spec spawn_agent(id, map | keyword) :: {:ok, id} | {:error, reason}
  def spawn_agent(swarm_id, opts \\ %{}) do
    with {:ok, o} <- Options.normalize(opts, @agent_keys),
         {:ok, executor} <- given_executor(o) do
      native = Map.take(o, [:type, :name, :capabilities, :capacity])
      Home.run(swarm_id, :add_agent, [swarm_id, native, executor, Map.get(o, :node)])
    end
  end

  # nil: the swarm's default, which its home knows. A claude agent whose
  # type names a persona gets that persona unless it names its own.
  defp given_executor(%{executor: e} = o) do
    with {:ok, executor} <- Executor.validate(e), do: {:ok, typed_persona(executor, o[:type])}
  end

  defp given_executor(_), do: {:ok, nil}

  defp typed_persona({:claude, opts} = executor, type) when not is_nil(type) do
    name = to_string(type)

    if not Keyword.has_key?(opts, :persona) and match?({:ok, _}, SwarmService.Personas.get(name)),
      do: {:claude, Keyword.put(opts, :persona, name)},
      else: executor
  end

  defp typed_persona(executor, _type), do: executor

  @doc """
  Stores a persona for Claude agents: `system_prompt`, `tone`, `model`,
  `allowed_tools` (see `SwarmService.Personas`). Every node sees it; agents
  with it use it from their next task on.
  """
  @spec persona_put(String.t(), map | keyword) :: {:ok, map} | {:error, reason}
  defdelegate persona_put(name, attrs), to: SwarmService.Personas, as: :put

  @doc "The persona `name` (stored, else built-in)."
  @spec persona_get(String.t()) :: {:ok, map} | {:error, reason}
  defdelegate persona_get(name), to: SwarmService.Personas, as: :get

  @doc "Every persona, the built-in ones included."
  @spec persona_list() :: {:ok, [map]}
  defdelegate persona_list(), to: SwarmService.Personas, as: :list

  @doc "Removes a stored persona (a built-in of that name is used again)."
  @spec persona_delete(String.t()) :: :ok | {:error, reason}
  defdelegate persona_delete(name), to: SwarmService.Personas, as: :delete

  @doc "Removes an agent. Work it held is retried on other agents."
  @spec remove_agent(id) :: :ok | {:error, reason}
  def remove_agent(agent_id), do: Home.run(agent_id, :remove_agent, [agent_id])

  @doc """
  The agents of a swarm in join order (the order topologies are built in),
  each with id, name, type, capabilities, status, dispatch, capacity, load,
  node and metrics.
  """
  @spec list_agents(id) :: {:ok, [map]} | {:error, reason}
  def list_agents(swarm_id), do: Home.run(swarm_id, :list_agents, [swarm_id])

  @doc """
  One page of a swarm's agents in join order, for swarms too large to list
  at once: `{:ok, %{agents: [...], next_cursor: cursor | nil}}`. The engine
  builds only the page, never the whole list.

  Options: `:cursor` (the `next_cursor` of the previous page; none for the
  first) and `:limit` (1 to 1,000, default 100). A cursor this server did
  not give out is `{:error, {:invalid_argument, message}}`. Agents that
  leave or join between pages do not make the others repeat or go missing.
  """
  @spec list_agents_page(id, keyword) :: {:ok, map} | {:error, reason}
  def list_agents_page(swarm_id, opts \\ []) do
    cursor = Keyword.get(opts, :cursor)
    limit = Keyword.get(opts, :limit, 100)

    cond do
      not (is_nil(cursor) or is_binary(cursor)) ->
        {:error, {:invalid_argument, "cursor must be a string"}}

      not (is_integer(limit) and limit in 1..1000) ->
        {:error, {:invalid_argument, "limit must be an integer from 1 to 1000"}}

      true ->
        with {:ok, {agents, next}} <-
               Home.run(swarm_id, :list_agents_page, [swarm_id, cursor, limit]) do
          {:ok, %{agents: agents, next_cursor: next}}
        end
    end
  end

  @doc """
  One agent with its metrics: `completed`, `failed`, `latency_ms` (moving
  average per attempt) and `success_rate` (moving average); `usage`, the
  totals of what its attempts reported (`input_tokens`, `output_tokens`,
  `cache_read_tokens`, `cache_creation_tokens`, `cost_usd`, `turns`); and
  `session_id`, the session id its latest unit reported (nil if none),
  which its next unit's executor sees as `context.session_id`.
  """
  @spec agent_metrics(id) :: {:ok, map} | {:error, reason}
  def agent_metrics(agent_id), do: Home.run(agent_id, :agent_get, [agent_id])

  @doc "Agent ids directly connected to `agent_id` in its swarm's topology."
  @spec neighbours(id) :: {:ok, [id]} | {:error, reason}
  def neighbours(agent_id), do: Home.run(agent_id, :neighbours, [agent_id])

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

  `opts` may name `notify: pid`: that process gets `{:swarm_task_done,
  task_id, outcome}` when the task ends, `outcome` being what
  `await_task/2` would return. It costs nothing extra, so a caller with many
  tasks in flight need not call `await_task/2` for each. A notification is
  not moved when the swarm's home fails over; `await_task/2` is.

      iex> {:ok, swarm} = SwarmService.RuvSwarm.spawn_swarm()
      iex> {:ok, task} = SwarmService.RuvSwarm.orchestrate(swarm, "summarise the logs")
      iex> {:ok, %{status: :pending}} = SwarmService.RuvSwarm.task_status(task)
      iex> SwarmService.RuvSwarm.orchestrate(swarm, subtasks: [%{name: "a", depends_on: ["b"]}, %{name: "b", depends_on: ["a"]}])
      {:error, {:dependency_cycle, "a -> b -> a"}}
  """
  @spec orchestrate(id, String.t() | map | keyword, keyword) :: {:ok, id} | {:error, reason}
  def orchestrate(swarm_id, task, opts \\ [])

  def orchestrate(swarm_id, description, opts) when is_binary(description) do
    orchestrate(swarm_id, %{description: description}, opts)
  end

  def orchestrate(swarm_id, task, opts) do
    with {:ok, notify} <- notify_option(opts),
         {:ok, t} <- Options.normalize(task, @task_keys),
         t = empty_text_input(t),
         :ok <- Options.check_payload(t, "task"),
         {:ok, t} <- normalize_subtasks(t) do
      Home.run(swarm_id, :submit, [swarm_id, t, notify])
    end
  end

  # A task's description is its input when it has none (the engine hands
  # the one text over as both); only an empty or missing description is
  # still sent as an explicit input, as it always was.
  defp empty_text_input(t) do
    case Map.get(t, :description) do
      d when d in [nil, ""] -> Map.put_new(t, :input, d)
      _ -> t
    end
  end

  defp notify_option([]), do: {:ok, nil}

  defp notify_option(opts) do
    case Options.normalize(opts, [:notify]) do
      {:ok, %{notify: pid}} when is_pid(pid) -> {:ok, pid}
      {:ok, %{notify: _}} -> Options.invalid("notify must be a pid")
      {:ok, _} -> {:ok, nil}
      error -> error
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
  A task's status: `status` (`:pending`, `:running` from the moment an
  agent is given a unit of it, `:completed`, `:failed`, `:cancelled`,
  `:timed_out`), priority, strategy, timestamps, total attempts, `error`,
  each unit's status, agent and attempts, and `waiting_reason`: why its
  queued units are not dispatched (the swarm's cost budget is spent, see
  `set_budget/2`), or nil.
  """
  @spec task_status(id, keyword | map) :: {:ok, map} | {:error, reason}
  def task_status(task_id, opts \\ []), do: read(task_id, :task_get, [task_id, false], opts)

  @doc """
  Like `task_status/1`, plus `result` (the aggregate) and each unit's
  `result`, `depends_on` (the names of the units it waits for: the
  subtask graph's edges, or the previous step of a pipeline) and
  `history`: its ended attempts, each with `attempt`,
  `agent_id`, `outcome`, `error`, `duration_ms` and `usage` (what the
  attempt reported: `input_tokens`, `output_tokens`, `cache_read_tokens`,
  `cache_creation_tokens`, `cost_usd`, `turns`, `duration_ms`,
  `session_id`; nil if nothing).
  """
  @spec task_results(id) :: {:ok, map} | {:error, reason}
  def task_results(task_id), do: Home.run(task_id, :task_get, [task_id, true])

  @doc "Cancels a task; agents running it are told to stop."
  @spec cancel_task(id) :: :ok | {:error, reason}
  def cancel_task(task_id), do: Home.run(task_id, :cancel, [task_id])

  @doc """
  Waits up to `timeout_ms` for a task to finish. Returns `{:ok, result}`, or
  `{:error, {:failed, message}}`, `{:error, {:timed_out, message}}`,
  `{:error, :cancelled}`, `{:error, :timeout}` (still running).
  """
  @spec await_task(id, timeout) :: {:ok, term} | {:error, reason}
  def await_task(task_id, timeout_ms \\ 5_000) do
    await(task_id, System.monotonic_time(:millisecond) + timeout_ms)
  end

  # A wait on another node's swarm watches that node too: if it goes down
  # the wait moves to the swarm's new home (a durable swarm's new leader),
  # where the task is either done (its result was committed before anyone
  # could see it) or queued again.
  defp await(task_id, deadline) do
    home = SwarmService.Swarm.Locator.home(task_id)
    if home != :here, do: Node.monitor(home, true)

    try do
      case Home.run(task_id, :watch, [task_id, self()]) do
        {:done, outcome} ->
          outcome

        :watching ->
          receive do
            {:swarm_task_done, ^task_id, outcome} ->
              outcome

            {:nodedown, ^home} ->
              case Home.await_new_home(task_id, home, deadline) do
                {:ok, _} -> await(task_id, deadline)
                error -> error
              end
          after
            max(deadline - System.monotonic_time(:millisecond), 0) -> give_up(task_id)
          end

        {:error, _} = error ->
          error
      end
    after
      if home != :here do
        Node.monitor(home, false)

        receive do
          {:nodedown, ^home} -> :ok
        after
          0 -> :ok
        end
      end
    end
  end

  # The engine forgets this waiter, so no outcome arrives after the call
  # returned; one that arrived meanwhile is still the answer. Asked once,
  # without waiting out a failover: a lost home takes its waiters with it.
  defp give_up(task_id) do
    _ = Home.run_here(task_id, :unwatch, [task_id, self()])

    receive do
      {:swarm_task_done, ^task_id, outcome} -> outcome
    after
      0 -> {:error, :timeout}
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
      Home.run(agent_id, :claim, [agent_id, Map.get(o, :lease_ms, 30_000)])
    end
  end

  @doc """
  Reports the result of claimed work. Option `:usage`: what the work cost,
  the map an executor's `run/2` may return (see "Usage and cost" in
  `SwarmService.Executor`). Returns `:ok`, or `:ignored` when the
  claim is no longer current (its lease ran out, the task finished or was
  cancelled): completion is idempotent. A result the swarm's or node's
  memory quota has no room for answers `{:error, {:quota_exceeded, what,
  limit}}`, and the attempt has then failed with that reason (it is retried
  or fails the task, like any failed attempt).
  """
  @spec complete_task(id, id, term, keyword | map) :: :ok | :ignored | {:error, reason}
  def complete_task(work_id, agent_id, result, opts \\ []) do
    with :ok <- Options.check_payload(result, "result"),
         {:ok, usage} <- usage_option(opts) do
      Home.run(work_id, :complete, [work_id, agent_id, result, usage])
    end
  end

  @doc """
  Reports that claimed work failed; it is retried (elsewhere if possible)
  or fails the task. Option `:usage`, as for `complete_task/4`.
  """
  @spec fail_task(id, id, String.t() | term, keyword | map) :: :ok | :ignored | {:error, reason}
  def fail_task(work_id, agent_id, reason, opts \\ []) do
    text =
      if is_binary(reason), do: reason, else: inspect(reason, limit: 10, printable_limit: 500)

    with {:ok, usage} <- usage_option(opts),
         do: Home.run(work_id, :fail, [work_id, agent_id, text, false, usage])
  end

  defp usage_option(opts) do
    with {:ok, o} <- Options.normalize(opts, [:usage]),
         do: Executor.native_usage(Map.get(o, :usage))
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
         do: Home.run(swarm_id, :coordinate, [swarm_id, message, Map.get(o, :from)])
  end

  @doc """
  `coordinate_agents/3` for a swarm whose agents run on several nodes:
  delivers along the topology to every agent wherever it runs and answers
  `{:ok, %{agents: n, nodes: %{node_name => agents_there}}}`.
  """
  @spec coordinate_across_cluster(id, term, keyword) :: {:ok, map} | {:error, reason}
  def coordinate_across_cluster(swarm_id, message, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:from]),
         :ok <- Options.check_payload(message, "message"),
         do: Home.run(swarm_id, :coordinate_across, [swarm_id, message, Map.get(o, :from)])
  end

  # ---- cluster -----------------------------------------------------------------

  @doc """
  The cluster as this node sees it: `members` (node, up, configured),
  `quorum`, `leader`, the adapter, and `swarms`: for each durable swarm
  with a Raft member on a live node (see "Durability"), its `members`
  (nodes), `leader`, `term`, `commit_index`, `last_applied` and
  `snapshot_index`, as its leader reports them (else as a member does).
  `durable` lists the same for the swarms with a member on this node.
  """
  @spec cluster_status() :: {:ok, map}
  def cluster_status do
    durable = raft_status()

    others =
      (SwarmService.Cluster.members() -- [node()])
      |> Task.async_stream(
        &SwarmService.Swarm.Locator.safe_call(&1, :raft_status, [], __MODULE__),
        timeout: 5_000,
        on_timeout: :kill_task
      )
      |> Enum.flat_map(fn
        {:ok, list} when is_list(list) -> list
        _ -> []
      end)

    # One row per swarm: its leader's view when some member knows one.
    swarms =
      (durable ++ others)
      |> Enum.group_by(& &1.id)
      |> Enum.map(fn {_id, views} ->
        Enum.find(views, hd(views), &(&1.leader == &1.node)) |> Map.delete(:node)
      end)

    {:ok,
     SwarmService.Cluster.status()
     |> Map.put(:swarms, Enum.sort_by(swarms, & &1.id))
     |> Map.put(:durable, durable |> Enum.map(&Map.delete(&1, :node)) |> Enum.sort_by(& &1.id))}
  end

  @doc false
  # This node's view of the Raft clusters it is a member of.
  def raft_status do
    for {id, _executor} <- SwarmService.Raft.swarms(),
        status = SwarmService.Raft.status(id),
        do: Map.merge(status, %{id: id, node: node()})
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
      Home.run(swarm_id, :memory_store, [swarm_id, key, value, o])
    end
  end

  @doc """
  Reads an entry: value, version, tags, timestamps. `{:error, :not_found}`
  if absent or expired. Options: `:namespace`, `consistent: true` (see
  `swarm_status/2`).
  """
  @spec memory_get(id, String.t(), keyword | map) :: {:ok, map} | {:error, reason}
  def memory_get(swarm_id, key, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:namespace, :consistent]),
         {consistent, o} = Map.split(o, [:consistent]),
         do: read(swarm_id, :memory_get, [swarm_id, key, o], consistent)
  end

  @doc "Deletes an entry."
  @spec memory_delete(id, String.t(), keyword | map) :: :ok | {:error, reason}
  def memory_delete(swarm_id, key, opts \\ []) do
    with {:ok, o} <- Options.normalize(opts, [:namespace]),
         do: Home.run(swarm_id, :memory_delete, [swarm_id, key, o])
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
      Home.run(swarm_id, :memory_search, [swarm_id, Map.merge(q, o)])
    end
  end

  @doc """
  What this node's engine holds:

    * `engine_bytes` — every byte the Rust engine has allocated;
    * `held_bytes` — the bytes held for clients by all swarms, what the
      node quota bounds; `node_memory_quota` and `swarm_memory_quota` (the
      default of new swarms), in bytes;
    * `swarms` — how many swarms are loaded;
    * `per_swarm` — for each swarm, in id order: `id`,
      `memory_quota`, `held_bytes` (the sum of:) `memory_bytes` (memory
      entries), `task_bytes` (task inputs and descriptions), `result_bytes`
      (results and failure reasons kept), `discovery_bytes`, and
      `memory_entries`.

  Bytes are what the engine keeps (a text value once, not twice) plus a
  small fixed overhead per item.
  """
  @spec memory_usage() :: {:ok, map}
  def memory_usage do
    %{allocated_bytes: bytes} = Native.engine_memory()
    usage = Native.engine_usage()

    {:ok,
     %{
       engine_bytes: bytes,
       held_bytes: usage.held_bytes,
       node_memory_quota: usage.node_memory_quota,
       swarm_memory_quota: usage.swarm_memory_quota,
       swarms: length(usage.swarms),
       per_swarm: Enum.sort_by(usage.swarms, & &1.id)
     }}
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
      Home.run(swarm_id, :share_discovery, [swarm_id, d])
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
         do: Home.run(swarm_id, :subscribe_discoveries, [swarm_id, self(), f])
  end

  @doc "The newest discoveries (up to `limit`, oldest first) matching the filters."
  @spec recent_discoveries(id, keyword | map, pos_integer) :: {:ok, [map]} | {:error, reason}
  def recent_discoveries(swarm_id, filters \\ [], limit \\ 100) do
    with {:ok, f} <- Options.normalize(filters, @filter_keys),
         do: Home.run(swarm_id, :recent_discoveries, [swarm_id, f, limit])
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
  def subscribe(swarm_id), do: Home.run(swarm_id, :subscribe, [swarm_id, self()])

  @doc "Stops event and discovery delivery to the caller."
  @spec unsubscribe(id) :: :ok | {:error, reason}
  def unsubscribe(swarm_id), do: Home.run(swarm_id, :unsubscribe, [swarm_id, self()])

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
  A sentence for any error reason this module returns (from the catalogue,
  `SwarmService.Errors`, which also gives each reason's HTTP status and
  JSON-RPC code).

      iex> SwarmService.RuvSwarm.format_error({:swarm_full, 5})
      "the swarm is full: it already has its maximum of 5 agents"
  """
  @spec format_error(term) :: String.t()
  defdelegate format_error(reason), to: SwarmService.Errors, as: :message

  # ---- external MCP servers (SwarmService.McpServers) ---------------------------

  @doc """
  Starts an external MCP server from one Claude Desktop `mcpServers` entry
  (`%{"command" => ..., "args" => [...], "env" => %{...}}` or
  `%{"url" => ..., "headers" => %{...}}`); see `SwarmService.McpServers`.
  """
  @spec mcp_deploy(String.t(), map) :: {:ok, SwarmService.McpServers.info()} | {:error, reason}
  defdelegate mcp_deploy(name, entry), to: SwarmService.McpServers, as: :deploy

  @doc "Managed MCP servers: state, health, tools, restarts."
  @spec mcp_servers() :: [SwarmService.McpServers.info()]
  defdelegate mcp_servers(), to: SwarmService.McpServers, as: :servers

  @doc "The tools of one managed MCP server."
  @spec mcp_tools(String.t()) :: {:ok, [map]} | {:error, reason}
  defdelegate mcp_tools(name), to: SwarmService.McpServers, as: :tools

  @doc "Calls a tool of a managed MCP server; options: `:timeout` (ms), `:on_progress`."
  @spec mcp_call(String.t(), String.t(), map | nil, keyword) :: {:ok, map} | {:error, reason}
  defdelegate mcp_call(server, tool, arguments, opts \\ []),
    to: SwarmService.McpServers,
    as: :call

  @doc "Stops a managed MCP server and its whole process tree."
  @spec mcp_stop(String.t()) :: :ok | {:error, reason}
  defdelegate mcp_stop(name), to: SwarmService.McpServers, as: :stop

  @doc "Per server and per tool: calls, errors, timeouts, overloaded, restarts, p50/p99."
  @spec mcp_metrics() :: [map]
  defdelegate mcp_metrics(), to: SwarmService.McpServers, as: :metrics
end
