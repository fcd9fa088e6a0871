defmodule InterfaceService.Tools do
  @moduledoc """
  The tools the gateway offers over MCP and REST, each a native call into
  the public API (`SwarmService.RuvSwarm`).

  Every tool has a one-line description and a JSON Schema for its
  arguments. `call/3` validates the arguments against the schema first, so a
  model gets an answer it can act on ("arguments.topology must be one of
  mesh, hierarchical, ring, star") instead of an engine error. JSON strings
  become atoms only through the fixed tables in this module.

  Command agents (`agent_spawn` with `command`) may only start executables in
  the configured allow-list (`config :swarm_service, :command_allowlist`).
  """

  alias InterfaceService.Tools.{Bench, Compat, Executors, Page, Recent, Schema}
  import Schema, only: [object: 1, object: 2, integer: 2, enum_of: 1]

  @type definition :: %{name: String.t(), description: String.t(), inputSchema: map()}
  @type ctx :: %{
          required(:api) => module(),
          optional(:allowlist) => [String.t()],
          optional(:base_url) => String.t(),
          optional(:progress) => (number(), number() | nil, String.t() | nil -> any()) | nil,
          optional(:request_timeout_ms) => pos_integer()
        }
  @type result ::
          {:ok, map()}
          | {:ok, {:mcp_result, map()}}
          | {:error, {:invalid_arguments, String.t()} | :unknown_tool | term()}

  @topologies InterfaceService.Choices.topologies()
  @strategies InterfaceService.Choices.strategies()
  @priorities InterfaceService.Choices.priorities()
  @task_strategies InterfaceService.Choices.task_strategies()

  # Bounds that are the gateway's own policy, not engine limits: how many
  # agents one swarm_init call spawns, how long a call may wait, the
  # shortest useful lease. Everything else comes from SwarmService.Limits.
  @max_spawn_agents 1000
  @min_lease_ms 100
  @max_id_bytes 200

  # Built on first use (the engine's limits are read from the NIF, which
  # loads at run time) and kept in :persistent_term: tools/list and every
  # call read one term.
  defp tables do
    case :persistent_term.get({__MODULE__, :tables}, nil) do
      nil ->
        defs = build_definitions()

        tables = %{
          definitions: Enum.map(defs, &listed/1),
          by_name: Map.new(defs, &{&1.name, &1})
        }

        :persistent_term.put({__MODULE__, :tables}, tables)
        tables

      tables ->
        tables
    end
  end

  defp build_definitions do
    l = SwarmService.Limits.all()
    id = %{type: "string", minLength: 1, maxLength: @max_id_bytes}
    name = %{type: "string", minLength: 1, maxLength: l.max_name_bytes}
    text = %{type: "string", maxLength: l.max_text_bytes}

    strings = %{
      type: "array",
      items: %{type: "string", maxLength: l.max_name_bytes},
      maxItems: l.max_list_items
    }

    any = %{}
    swarm = d(id, "Default: last swarm_init here")
    task = d(id, "Task id from task_orchestrate")
    agent = d(id, "Agent id from agent_spawn")
    cursor = d(%{type: "string", maxLength: 200}, "nextCursor of the previous page")
    page = d(integer(1, Page.max_size()), "Page size (default #{Page.default_size()})")

    [
      {"swarm_init", "Create a swarm; later calls default to its swarm_id.",
       object(%{
         topology: d(enum_of(@topologies), "Default mesh"),
         strategy: d(enum_of(@strategies), "Default balanced"),
         storage: %{type: "string", enum: ~w(disk memory), description: "memory: not kept"},
         agents: d(integer(0, @max_spawn_agents), "External agents (default 0)"),
         max_agents: d(integer(1, l.max_agents_per_swarm), "Agent limit"),
         name: d(name, "Swarm name"),
         agent_type: d(name, "Their type"),
         capabilities: d(strings, "Their capabilities")
       }), :create,
       out(%{swarm_id: :string, name: :string, topology: :string, agents: :integer}, [
         "swarm_id"
       ])},
      {"swarm_status", "Agent and task counts, memory, discoveries, usage and budget of a swarm.",
       object(%{swarm_id: swarm}), :read, nil},
      {"swarm_list", "List the swarms, oldest first, a page at a time.",
       object(%{cursor: cursor, limit: page}), :read,
       out(%{swarms: :array, count: :integer, nextCursor: :string}, ["swarms", "count"])},
      {"swarm_destroy", "Stop a swarm and its agents.", object(%{swarm_id: swarm}), :destroy,
       nil},
      {"swarm_monitor", "Collect a swarm's events for duration_ms (progress per event).",
       object(%{
         swarm_id: swarm,
         duration_ms: d(integer(0, 60_000), "How long to watch (default 1000)"),
         max_events: d(integer(1, 1000), "Stop after this many (default 100)")
       }), :read, nil},
      {"agent_spawn",
       "Add an agent: command runs tasks as that allow-listed program, executor claude " <>
         "as Claude Code; else it is external (task_claim).",
       object(%{
         swarm_id: swarm,
         type: d(name, "Role, e.g. researcher, coder"),
         name: d(name, "Agent name"),
         capabilities: d(strings, "Skills tasks may require"),
         capacity: d(integer(1, l.max_capacity), "Tasks run at once (default 1)"),
         command: %{
           type: "array",
           items: %{type: "string", maxLength: 4096},
           minItems: 1,
           maxItems: 64,
           description: "argv run per task; task input on stdin, stdout is the result"
         },
         timeout_ms: d(integer(1, 3_600_000), "Time limit per command run"),
         node: d(name, "Cluster node to run on"),
         executor: %{type: "string", enum: ["claude"], description: "If enabled"},
         model: d(name, "Claude model"),
         max_turns: d(integer(1, 1000), "Claude turns"),
         allowed_tools: d(strings, "Claude tools")
       }), :open,
       out(%{agent_id: :string, swarm_id: :string, executor: :string}, [
         "agent_id",
         "swarm_id"
       ])},
      {"agent_list", "A page of a swarm's agents with status and load.",
       object(%{
         swarm_id: swarm,
         filter: d(%{type: "string", enum: ~w(all active idle busy)}, "Status filter"),
         cursor: cursor,
         limit: page
       }), :read,
       out(%{swarm_id: :string, agents: :array, count: :integer, nextCursor: :string}, [
         "swarm_id",
         "agents",
         "count"
       ])},
      {"agent_metrics", "An agent's counts, latency, success rate and usage.",
       object(%{agent_id: agent}, ["agent_id"]), :read, nil},
      {"task_orchestrate",
       "Submit a task (or a DAG of subtasks) to a swarm; wait_ms awaits its result.",
       object(
         %{
           swarm_id: swarm,
           description: d(Map.put(text, :minLength, 1), "What to do; input when none given"),
           input: d(any, "Input handed to the agents"),
           priority: d(enum_of(@priorities), "Default medium"),
           strategy: d(enum_of(@task_strategies), "Run units parallel or sequential"),
           capabilities: d(strings, "Only agents with these"),
           max_agents: d(integer(1, l.max_task_agents), "Agents to fan out to"),
           timeout_ms: d(integer(1, l.max_timeout_ms), "Time limit per unit"),
           retries: d(integer(1, l.max_attempts), "Attempts per unit"),
           wait_ms: d(integer(0, 600_000), "Wait up to this for the result (default 0)"),
           subtasks: %{
             type: "array",
             maxItems: l.max_subtasks,
             description: "Units named and run after their depends_on",
             items:
               object(
                 %{
                   name: d(name, "Unit name"),
                   description: d(text, "What the unit does"),
                   input: d(any, "Unit input"),
                   depends_on: d(strings, "Names of units run first")
                 },
                 ["name"]
               )
           }
         },
         ["description"]
       ), :open,
       out(
         %{task_id: :string, swarm_id: :string, status: :string, message: :string, result: nil},
         ["task_id", "swarm_id", "status"]
       )},
      {"task_status", "Status of a task and its units.",
       object(%{task_id: d(id, "Default: last task_orchestrate here")}), :read, nil},
      {"task_results", "Result of a task and of each unit.",
       object(%{task_id: d(id, "Default: last task_orchestrate here")}), :read, nil},
      {"task_cancel", "Cancel a task.", object(%{task_id: task}, ["task_id"]), :destroy, nil},
      {"task_claim", "Take the next task for an external agent (work is null when none).",
       object(
         %{
           agent_id: agent,
           lease_ms: d(integer(@min_lease_ms, l.max_timeout_ms), "Time to complete it")
         },
         ["agent_id"]
       ), :write, nil},
      {"task_complete", "Report a claimed task's result, or its failure with error.",
       object(
         %{
           work_id: d(id, "work.work_id from task_claim"),
           agent_id: agent,
           result: d(any, "The result"),
           error: d(text, "Why it failed (instead of result)")
         },
         ["work_id", "agent_id"]
       ), :write, nil},
      {"memory_store", "Store a value in swarm memory.",
       object(
         %{
           swarm_id: swarm,
           key: d(name, "Key"),
           value: d(any, "Any JSON value"),
           namespace: d(name, "Namespace (default none)"),
           ttl_ms: d(integer(1, l.max_timeout_ms), "Expire after"),
           tags: d(strings, "Tags for memory_search")
         },
         ["key", "value"]
       ), :overwrite, nil},
      {"memory_get", "Read a value from swarm memory.",
       object(%{swarm_id: swarm, key: d(name, "Key"), namespace: d(name, "Namespace")}, [
         "key"
       ]), :read, nil},
      {"memory_search", "Search swarm memory by key prefix, tags or text, a page at a time.",
       object(%{
         swarm_id: swarm,
         prefix: d(%{type: "string", maxLength: l.max_name_bytes}, "Key prefix"),
         tags: d(strings, "All of these tags"),
         text: d(text, "Text in the value"),
         namespace: d(name, "Namespace"),
         cursor: cursor,
         limit: page
       }), :read, nil},
      {"memory_usage", "Memory used by the engine and the node.", object(%{}), :read, nil},
      {"share_discovery", "Publish a discovery to the swarm's subscribers.",
       object(
         %{
           swarm_id: swarm,
           agent_id: d(id, "Agent that found it"),
           type: d(name, "Kind, e.g. insight"),
           content: d(any, "What was found"),
           confidence: d(%{type: "number", minimum: 0, maximum: 1}, "0 to 1"),
           tags: d(strings, "Tags")
         },
         ["type", "content"]
       ), :write, nil},
      {"subscribe_discoveries", "The SSE URL that streams a swarm's discoveries.",
       object(%{
         swarm_id: swarm,
         type: d(name, "Only this kind"),
         agent_id: d(id, "Only from this agent"),
         min_confidence: d(%{type: "number", minimum: 0, maximum: 1}, "Only at least this")
       }), :read, nil},
      {"coordinate", "Send a message to a swarm's agents through its topology.",
       object(%{swarm_id: swarm, message: d(any, "Any JSON value")}, ["message"]), :write, nil},
      {"features_detect", "Runtime features: engine, OTP, cores, protocols, allowed commands.",
       object(%{}), :read, nil},
      {"cluster_status", "Cluster members, quorum, each swarm's Raft members and leader.",
       object(%{}), :read, nil},
      {"benchmark_run", "Time native engine calls on a scratch swarm (progress per phase).",
       object(%{iterations: d(integer(1, 100_000), "Calls per phase (default 1000)")}), :read,
       nil}
    ]
    |> Enum.map(fn {name, description, schema, kind, output} ->
      %{name: name, description: description, inputSchema: schema}
      |> Map.put(:annotations, annotations(kind))
      |> then(&if(output, do: Map.put(&1, :outputSchema, output), else: &1))
    end)
  end

  defp d(schema, description), do: Map.put(schema, :description, description)

  # MCP's default for a tool that is not read-only is destructive, so
  # every write says whether it is. openWorldHint is given where it is
  # true: those tools' agents run programs (allow-listed commands).
  defp annotations(:read), do: %{readOnlyHint: true}
  defp annotations(:create), do: %{destructiveHint: false}
  defp annotations(:write), do: %{destructiveHint: false}
  defp annotations(:open), do: %{destructiveHint: false, openWorldHint: true}
  defp annotations(:overwrite), do: %{destructiveHint: true, idempotentHint: true}
  defp annotations(:destroy), do: %{destructiveHint: true, idempotentHint: true}

  defp out(props, required) do
    %{
      type: "object",
      properties:
        Map.new(props, fn
          {k, nil} -> {k, %{}}
          {k, type} -> {k, %{type: Atom.to_string(type)}}
        end),
      required: required
    }
  end

  # What tools/list shows: the validation schema without the bounds a
  # model does not need to see (string and list lengths, which the engine
  # and call/3 still enforce) and without empty required lists.
  defp listed(%{inputSchema: schema} = tool), do: %{tool | inputSchema: slim(schema)}

  defp slim(%{} = schema) do
    schema
    |> Map.drop([:minLength, :maxLength, :maxItems, :minItems, :additionalProperties])
    |> then(&if(Map.get(&1, :required) == [], do: Map.delete(&1, :required), else: &1))
    |> Map.new(fn
      {:properties, props} -> {:properties, Map.new(props, fn {k, v} -> {k, slim(v)} end)}
      {:items, items} -> {:items, slim(items)}
      other -> other
    end)
  end

  @doc """
  The tool definitions in `tools/list` form: name, one-line description and
  JSON Schema (`inputSchema`). The order is stable, which keeps `tools/list`
  cursors stable.
  """
  @spec definitions() :: [definition()]
  def definitions, do: tables().definitions

  @aliases %{"swarm_spawn" => "swarm_init", "coordinate_task" => "task_orchestrate"}

  # Tools whose swarm_id defaults to the scope's most recent swarm.
  @swarm_tools ~w(swarm_status swarm_destroy swarm_monitor agent_spawn agent_list
                  task_orchestrate memory_store memory_get memory_search share_discovery
                  subscribe_discoveries coordinate)

  @doc """
  Resolves an alias (`swarm_spawn`, `coordinate_task`) to its tool name.
  ruv-swarm's tool names are this server's own and need none.
  """
  @spec resolve_alias(String.t()) :: String.t()
  def resolve_alias(name), do: Map.get(@aliases, name, name)

  @doc "Looks a tool up by name."
  @spec fetch(String.t()) :: {:ok, definition()} | :error
  def fetch(name), do: Map.fetch(tables().by_name, name)

  # One engine read each: they neither block, subscribe nor report progress.
  @inline ~w(swarm_status swarm_list agent_list agent_metrics task_status task_results
             memory_get memory_search memory_usage features_detect subscribe_discoveries
             cluster_status)

  @doc """
  True for calls that answer at once: the tools that are a single engine
  read that neither blocks nor reports progress, and a task_orchestrate
  that does not wait for its result (one submission, bounded by the
  swarm log's commit timeout). The gateway runs these in the connection's
  process; every other call runs in a worker it can time out and cancel.
  """
  @spec inline?(String.t(), map() | nil) :: boolean()
  def inline?(name, args \\ %{})

  def inline?(name, args) when name in ["task_orchestrate", "coordinate_task"],
    do: is_map(args) and Map.get(args, "wait_ms", 0) in [0, nil]

  def inline?(name, _args), do: name in @inline

  @doc """
  True when `name` is a tool, an alias, or one of ruv-swarm's tools this
  server answers "not supported" (a fixed set, so metric labels stay one).
  """
  @spec known?(String.t()) :: boolean()
  def known?(name),
    do:
      fetch(resolve_alias(name)) != :error or Compat.unsupported(name) != nil or
        SwarmService.McpServers.resolve(name) != :error

  @doc """
  Validates `args` against the tool's schema and runs it. Returns `{:ok, map}`
  with the structured result, `{:error, :unknown_tool}`,
  `{:error, {:invalid_arguments, message}}`, or `{:error, reason}` from the
  engine (`SwarmService.Errors` describes each).
  """
  @spec call(String.t(), map() | nil, ctx()) :: result()
  def call(name, args, ctx) do
    case SwarmService.McpServers.resolve(name) do
      {:ok, server, tool} -> call_downstream(server, tool, args, ctx)
      :error -> call_own(name, args, ctx)
    end
  end

  # A tool of a managed MCP server (<prefix>__<tool>): proxied through its
  # actor, progress relayed, its CallToolResult passed on as it is.
  defp call_downstream(server, tool, args, ctx) do
    on_progress = fn p -> progress(ctx, p.progress, p.total, p.message) end

    with :ok <- valid_object(args || %{}),
         {:ok, result} <-
           SwarmService.McpServers.call(server, tool, args, on_progress: on_progress),
         do: {:ok, {:mcp_result, result}}
  end

  defp call_own(name, args, ctx) do
    name = resolve_alias(name)
    args = Compat.normalize(name, args || %{})

    with :ok <- supported(name),
         {:ok, tool} <- fetch_tool(name),
         :ok <- valid_object(args),
         :ok <- invalid_arguments(Schema.validate(args, tool.inputSchema)),
         {:ok, args} <- confine(name, args, Map.get(ctx, :client)),
         {:ok, args} <- defaults(name, args, Map.get(ctx, :scope, :node)) do
      run(name, args, ctx)
    end
  end

  defp supported(name) do
    case Compat.unsupported(name) do
      nil -> :ok
      message -> {:error, {:invalid_argument, message}}
    end
  end

  # What a Claude agent's swarm-scoped token may do (see
  # SwarmService.Executor.ClaudeAccess): read its own swarm and share into it.
  @agent_tools ~w(swarm_status agent_list agent_metrics task_status task_results memory_store
                  memory_get memory_search share_discovery subscribe_discoveries features_detect)

  defp confine(name, args, "agent:" <> agent_id) do
    client = "agent:" <> agent_id
    swarm = SwarmService.Ids.swarm_of(agent_id)
    ids = for key <- ~w(task_id agent_id work_id), is_binary(args[key]), do: args[key]
    swarms = Enum.map(ids, &SwarmService.Ids.swarm_of/1) ++ List.wrap(args["swarm_id"])

    cond do
      name not in @agent_tools ->
        {:error,
         {:not_permitted,
          "#{name} is not open to a swarm's agents; they may use #{Enum.join(@agent_tools, ", ")}"}}

      not Enum.all?(swarms, &InterfaceService.Auth.swarm_allowed?(client, &1)) ->
        {:error, {:not_permitted, "an agent's token opens its own swarm #{swarm} only"}}

      name in @swarm_tools ->
        {:ok, Map.put_new(args, "swarm_id", swarm)}

      true ->
        {:ok, args}
    end
  end

  defp confine(_name, args, _client), do: {:ok, args}

  # A missing swarm_id (task_id) is the scope's most recent one.
  defp defaults(name, args, scope) do
    cond do
      name in @swarm_tools and not Map.has_key?(args, "swarm_id") ->
        case Recent.swarm(scope) do
          nil ->
            {:error,
             {:invalid_argument,
              "no swarm_id given and none created in this session yet: call swarm_init first, or pass swarm_id (swarm_list lists them)"}}

          id ->
            {:ok, Map.put(args, "swarm_id", id)}
        end

      name in ["task_status", "task_results"] and not Map.has_key?(args, "task_id") ->
        case Recent.task(scope) do
          nil ->
            {:error,
             {:invalid_argument,
              "no task_id given and no task submitted in this session yet: pass task_id from task_orchestrate"}}

          id ->
            {:ok, Map.put(args, "task_id", id)}
        end

      true ->
        {:ok, args}
    end
  end

  defp fetch_tool(name) do
    case fetch(name) do
      {:ok, tool} -> {:ok, tool}
      :error -> {:error, :unknown_tool}
    end
  end

  defp valid_object(args) when is_map(args), do: :ok
  defp valid_object(_), do: {:error, {:invalid_arguments, "arguments must be an object"}}

  defp invalid_arguments(:ok), do: :ok
  defp invalid_arguments({:error, msg}), do: {:error, {:invalid_arguments, msg}}

  # --- the tools ------------------------------------------------------------

  defp run("swarm_init", args, %{api: api} = ctx) do
    opts =
      compact(%{
        topology: lookup(@topologies, args["topology"]),
        strategy: lookup(@strategies, args["strategy"]),
        agents: args["agents"],
        max_agents: args["max_agents"],
        name: args["name"],
        agent_type: args["agent_type"],
        capabilities: args["capabilities"],
        storage: lookup(%{"disk" => :disk, "memory" => :memory}, args["storage"]),
        # The swarm counts against this client's cap.
        owner: Map.get(ctx, :client)
      })

    with {:ok, id} <- api.spawn_swarm(opts) do
      Recent.put_swarm(Map.get(ctx, :scope, :node), id)

      case api.swarm_status(id) do
        {:ok, status} ->
          {:ok,
           %{
             swarm_id: id,
             name: status[:name],
             topology: status[:topology],
             strategy: status[:strategy],
             max_agents: status[:max_agents],
             agents: get_in(status, [:agents, :total])
           }}

        _ ->
          {:ok, %{swarm_id: id}}
      end
    end
  end

  defp run("swarm_status", %{"swarm_id" => id}, %{api: api}) do
    with {:ok, status} <- api.swarm_status(id), do: {:ok, status}
  end

  defp run("swarm_list", args, %{api: api}) do
    with {:ok, offset} <- Page.offset("swarms", args["cursor"]),
         {:ok, swarms} <- api.list_swarms() do
      limit = Map.get(args, "limit", Page.default_size())
      {page, next} = Page.slice("swarms", swarms, offset, limit)
      {:ok, paged(%{swarms: page, count: length(page), total: length(swarms)}, next)}
    end
  end

  defp run("swarm_destroy", %{"swarm_id" => id}, %{api: api}) do
    with :ok <- api.destroy_swarm(id) do
      Recent.forget(id)
      {:ok, %{swarm_id: id, destroyed: true}}
    end
  end

  defp run("swarm_monitor", %{"swarm_id" => id} = args, %{api: api} = ctx) do
    duration = Map.get(args, "duration_ms", 1000)
    max_events = Map.get(args, "max_events", 100)

    with :ok <- api.subscribe(id) do
      deadline = System.monotonic_time(:millisecond) + duration
      events = collect_events(id, deadline, max_events, ctx, [])

      status =
        case api.swarm_status(id) do
          {:ok, s} -> s
          _ -> nil
        end

      {:ok, %{swarm_id: id, events: events, count: length(events), status: status}}
    end
  end

  defp run("agent_spawn", %{"swarm_id" => id} = args, %{api: api} = ctx) do
    with {:ok, executor} <- executor(args, ctx) do
      opts =
        compact(%{
          type: args["type"],
          name: args["name"],
          capabilities: args["capabilities"],
          capacity: args["capacity"],
          executor: executor,
          node: args["node"]
        })

      with {:ok, agent_id} <- api.spawn_agent(id, opts) do
        {:ok, %{agent_id: agent_id, swarm_id: id, executor: executor_kind(executor)}}
      end
    end
  end

  # A page from the engine; the filter applies to that page, so a filtered
  # page may hold fewer than limit agents while nextCursor says more follow.
  defp run("agent_list", %{"swarm_id" => id} = args, %{api: api}) do
    opts = [cursor: args["cursor"], limit: Map.get(args, "limit", Page.default_size())]

    with {:ok, %{agents: agents, next_cursor: next}} <- api.list_agents_page(id, opts) do
      agents = Enum.filter(agents, &status_filter(args["filter"], &1))
      {:ok, paged(%{swarm_id: id, agents: agents, count: length(agents)}, next)}
    end
  end

  defp run("agent_metrics", %{"agent_id" => id}, %{api: api}) do
    with {:ok, agent} <- api.agent_metrics(id), do: {:ok, agent}
  end

  defp run("task_orchestrate", %{"swarm_id" => id} = args, %{api: api} = ctx) do
    task =
      compact(%{
        description: args["description"],
        input: args["input"],
        priority: lookup(@priorities, args["priority"]),
        strategy: lookup(@task_strategies, args["strategy"]),
        capabilities: args["capabilities"],
        max_agents: args["max_agents"],
        timeout_ms: args["timeout_ms"],
        retries: args["retries"],
        subtasks: subtasks(args["subtasks"])
      })

    wait = Map.get(args, "wait_ms", 0)
    # Subscribe before submitting so no event of this task is missed.
    if wait > 0 and ctx[:progress], do: api.subscribe(id)

    with {:ok, task_id} <- api.orchestrate(id, task) do
      Recent.put_task(Map.get(ctx, :scope, :node), id, task_id)

      case Executors.missing(api, id, ctx) do
        # Nothing would run it: say so now rather than wait for nothing.
        {:none, message} ->
          if wait > 0 and ctx[:progress], do: api.unsubscribe(id)

          {:ok,
           %{
             task_id: task_id,
             swarm_id: id,
             status: :pending,
             executing_agents: 0,
             message: message
           }}

        :ok when wait > 0 ->
          await_task(api, id, task_id, wait, ctx)

        :ok ->
          {:ok, %{task_id: task_id, swarm_id: id, status: :pending}}
      end
    end
  end

  defp run("task_status", %{"task_id" => id}, %{api: api}) do
    with {:ok, status} <- api.task_status(id), do: {:ok, status}
  end

  defp run("task_results", %{"task_id" => id}, %{api: api}) do
    with {:ok, results} <- api.task_results(id), do: {:ok, results}
  end

  defp run("task_cancel", %{"task_id" => id}, %{api: api}) do
    with :ok <- api.cancel_task(id), do: {:ok, %{task_id: id, cancelled: true}}
  end

  defp run("task_claim", %{"agent_id" => id} = args, %{api: api}) do
    opts = if lease = args["lease_ms"], do: [lease_ms: lease], else: []

    case api.claim_task(id, opts) do
      {:ok, work} -> {:ok, %{work: work}}
      {:error, :no_task} -> {:ok, %{work: nil}}
      other -> other
    end
  end

  defp run("task_complete", %{"work_id" => work, "agent_id" => agent} = args, %{api: api}) do
    outcome =
      case args do
        %{"error" => reason} when is_binary(reason) -> api.fail_task(work, agent, reason)
        _ -> api.complete_task(work, agent, args["result"])
      end

    with :ok <- outcome, do: {:ok, %{work_id: work, accepted: true}}
  end

  defp run("memory_store", %{"swarm_id" => id, "key" => key, "value" => value} = args, %{api: api}) do
    with {:ok, version} <- api.memory_store(id, key, value, memory_opts(args)) do
      {:ok, %{swarm_id: id, key: key, version: version}}
    end
  end

  defp run("memory_get", %{"swarm_id" => id, "key" => key} = args, %{api: api}) do
    with {:ok, entry} <- api.memory_get(id, key, memory_opts(args)), do: {:ok, entry}
  end

  defp run("memory_search", %{"swarm_id" => id} = args, %{api: api}) do
    query =
      compact(%{
        prefix: args["prefix"],
        tags: args["tags"],
        text: args["text"],
        namespace: args["namespace"]
      })

    limit = Map.get(args, "limit", Page.default_size())

    # The engine answers at most max_search_results entries; pages are
    # slices of that bounded answer.
    with {:ok, offset} <- Page.offset("memory", args["cursor"]),
         max = SwarmService.Limits.get(:max_search_results),
         query = Map.put(query, :limit, min(offset + limit + 1, max)),
         {:ok, entries} <- api.memory_search(id, query, []) do
      {page, next} = Page.slice("memory", entries, offset, limit)
      {:ok, paged(%{swarm_id: id, entries: page, count: length(page)}, next)}
    end
  end

  defp run("memory_usage", _args, %{api: api}) do
    with {:ok, usage} <- api.memory_usage() do
      beam = :erlang.memory()

      {:ok,
       %{
         engine: usage,
         beam: %{
           total: beam[:total],
           processes: beam[:processes],
           binary: beam[:binary],
           ets: beam[:ets]
         }
       }}
    end
  end

  defp run("share_discovery", %{"swarm_id" => id} = args, %{api: api}) do
    discovery =
      compact(%{
        agent_id: args["agent_id"],
        type: args["type"],
        content: args["content"],
        confidence: args["confidence"],
        tags: args["tags"]
      })

    with {:ok, discovery_id} <- api.share_discovery(id, discovery) do
      {:ok, %{swarm_id: id, discovery_id: discovery_id}}
    end
  end

  defp run("subscribe_discoveries", %{"swarm_id" => id} = args, %{api: api} = ctx) do
    with {:ok, _} <- api.swarm_status(id) do
      query =
        [
          swarm_id: id,
          type: args["type"],
          agent_id: args["agent_id"],
          min_confidence: args["min_confidence"]
        ]
        |> Enum.reject(fn {_k, v} -> is_nil(v) end)

      base = Map.get(ctx, :base_url, "")

      {:ok,
       %{
         swarm_id: id,
         url: base <> "/sse/discoveries?" <> URI.encode_query(query),
         format: "text/event-stream"
       }}
    end
  end

  defp run("coordinate", %{"swarm_id" => id, "message" => message}, %{api: api}) do
    with :ok <- api.coordinate_agents(id, message), do: {:ok, %{swarm_id: id, delivered: true}}
  end

  defp run("features_detect", _args, %{api: api} = ctx) do
    engine = api.engine_loaded?()

    {:ok,
     %{
       engine: engine,
       nif: engine,
       otp_release: to_string(:erlang.system_info(:otp_release)),
       elixir: System.version(),
       schedulers: :erlang.system_info(:schedulers_online),
       logical_processors: :erlang.system_info(:logical_processors_available),
       node: node(),
       distributed: Node.alive?(),
       cluster_members: length(SwarmService.Cluster.members()),
       mcp_protocol_versions: InterfaceService.Mcp.Protocol.supported_versions(),
       tools: length(definitions()),
       # What this client may enable: command agents exactly for these
       # allow-list entries (--allow-command, RUV_SWARM_COMMAND_ALLOWLIST).
       command_agents: Map.get(ctx, :allowlist, []) != [],
       claude_agents: Map.get(ctx, :allow_claude, false),
       allowed_commands: Map.get(ctx, :allowlist, [])
     }}
  end

  defp run("cluster_status", _args, %{api: api}), do: api.cluster_status()

  defp run("benchmark_run", args, ctx), do: Bench.run(Map.get(args, "iterations", 1000), ctx)

  # --- helpers ----------------------------------------------------------------

  defp paged(result, nil), do: result
  defp paged(result, next), do: Map.put(result, :nextCursor, next)

  defp status_filter(f, _agent) when f in [nil, "all"], do: true
  defp status_filter("active", agent), do: agent.status != :offline
  defp status_filter(f, agent), do: Atom.to_string(agent.status) == f

  defp lookup(_table, nil), do: nil
  defp lookup(table, key), do: Map.fetch!(table, key)

  defp compact(map), do: map |> Enum.reject(fn {_k, v} -> is_nil(v) end) |> Map.new()

  defp memory_opts(args) do
    [namespace: args["namespace"], ttl_ms: args["ttl_ms"], tags: args["tags"]]
    |> Enum.reject(fn {_k, v} -> is_nil(v) end)
  end

  defp subtasks(nil), do: nil

  defp subtasks(list) do
    Enum.map(list, fn sub ->
      compact(%{
        name: sub["name"],
        description: sub["description"],
        input: sub["input"],
        depends_on: Map.get(sub, "depends_on", [])
      })
    end)
  end

  # Commands started for gateway clients get these limits (see
  # SwarmService.Executor.Launcher); executors configured in code choose their own.
  @client_command_limits [cpu_seconds: 600, address_space_bytes: 4_294_967_296, open_files: 1024]

  defp executor(%{"command" => [argv0 | _] = argv} = args, ctx) do
    allowlist = Map.get(ctx, :allowlist, [])

    cond do
      Enum.any?(argv, &String.contains?(&1, <<0>>)) ->
        {:error, {:invalid_arguments, "command cannot contain NUL bytes"}}

      # The allow-list governs the arguments too, not just the executable.
      SwarmService.Executor.Command.allowed?(argv, allowlist) ->
        opts = if t = args["timeout_ms"], do: [timeout_ms: t], else: []
        {:ok, {:command, argv, [limits: @client_command_limits] ++ opts}}

      true ->
        {:error, {:command_not_allowed, argv0}}
    end
  end

  defp executor(%{"executor" => "claude"} = args, ctx) do
    if Map.get(ctx, :allow_claude, false) do
      opts =
        [
          model: args["model"],
          max_turns: args["max_turns"],
          allowed_tools: args["allowed_tools"],
          timeout_ms: args["timeout_ms"]
        ]
        |> Enum.reject(fn {_k, v} -> v == nil end)

      {:ok, {:claude, opts}}
    else
      {:error,
       {:not_permitted,
        "this gateway does not let clients spawn Claude agents (start the node with --allow-claude)"}}
    end
  end

  defp executor(_args, _ctx), do: {:ok, :external}

  defp executor_kind({:claude, _}), do: :claude
  defp executor_kind({:command, _, _}), do: :command
  defp executor_kind(:external), do: :external

  defp collect_events(id, deadline, max_events, ctx, acc) do
    remaining = deadline - System.monotonic_time(:millisecond)

    if length(acc) >= max_events or remaining <= 0 do
      Enum.reverse(acc)
    else
      receive do
        {:swarm_event, ^id, event} ->
          n = length(acc) + 1
          progress(ctx, n, nil, "#{event_type(event)}")
          collect_events(id, deadline, max_events, ctx, [event | acc])
      after
        remaining -> Enum.reverse(acc)
      end
    end
  end

  defp event_type(%{type: :task_progress, message: m}) when is_binary(m),
    do: "task_progress: " <> m

  defp event_type(%{type: type}), do: type
  defp event_type(_), do: "event"

  defp await_task(api, swarm_id, task_id, wait, ctx) do
    parent = self()
    ref = make_ref()
    waiter = spawn_link(fn -> send(parent, {ref, api.await_task(task_id, wait)}) end)
    outcome = await_loop(ref, swarm_id, task_id, ctx, 0)
    Process.unlink(waiter)

    results =
      case api.task_results(task_id) do
        {:ok, r} -> r
        _ -> %{}
      end

    case outcome do
      {:ok, result} ->
        {:ok,
         Map.merge(Map.new(results), %{task_id: task_id, swarm_id: swarm_id, result: result})}

      {:error, reason} ->
        {:ok,
         Map.merge(Map.new(results), %{
           task_id: task_id,
           swarm_id: swarm_id,
           wait_error: SwarmService.Errors.for_client(reason).message
         })}
    end
  end

  defp await_loop(ref, swarm_id, task_id, ctx, n) do
    receive do
      {^ref, outcome} ->
        outcome

      {:swarm_event, ^swarm_id, %{task_id: ^task_id} = event} ->
        progress(ctx, n + 1, nil, "#{event_type(event)}")
        await_loop(ref, swarm_id, task_id, ctx, n + 1)

      {:swarm_event, ^swarm_id, _other} ->
        await_loop(ref, swarm_id, task_id, ctx, n)
    end
  end

  @doc false
  def progress(ctx, done, total, message) do
    case ctx[:progress] do
      fun when is_function(fun, 3) -> fun.(done, total, message)
      _ -> :ok
    end
  end
end
