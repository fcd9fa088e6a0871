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

  alias InterfaceService.Tools.{Bench, Schema}
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
          {:ok, map()} | {:error, {:invalid_arguments, String.t()} | :unknown_tool | term()}

  @topologies %{
    "mesh" => :mesh,
    "hierarchical" => :hierarchical,
    "ring" => :ring,
    "star" => :star
  }
  @strategies %{"balanced" => :balanced, "specialized" => :specialized, "adaptive" => :adaptive}
  @priorities %{"low" => :low, "medium" => :medium, "high" => :high, "critical" => :critical}
  @task_strategies %{
    "parallel" => :parallel,
    "sequential" => :sequential,
    "adaptive" => :adaptive
  }

  @id %{type: "string", minLength: 1, maxLength: 200}
  @name %{type: "string", minLength: 1, maxLength: 200}
  @strings %{type: "array", items: %{type: "string", maxLength: 200}, maxItems: 64}
  @any %{}

  # Built once, at compile time: tools/list and every call read a literal.
  @definitions [
                 {"swarm_init", "Create a swarm of agents with a topology and strategy.",
                  object(%{
                    topology: enum_of(@topologies),
                    strategy: enum_of(@strategies),
                    agents: integer(0, 1000),
                    max_agents: integer(1, 100_000),
                    name: @name,
                    agent_type: @name,
                    capabilities: @strings
                  })},
                 {"swarm_status", "Agents, task counts, memory and discoveries of a swarm.",
                  object(%{swarm_id: @id}, ["swarm_id"])},
                 {"swarm_list", "List the swarms in this node.", object(%{})},
                 {"swarm_destroy", "Stop a swarm and its agents.",
                  object(%{swarm_id: @id}, ["swarm_id"])},
                 {"swarm_monitor", "Watch a swarm's events for duration_ms (progress per event).",
                  object(
                    %{
                      swarm_id: @id,
                      duration_ms: integer(0, 60_000),
                      max_events: integer(1, 1000)
                    },
                    ["swarm_id"]
                  )},
                 {"agent_spawn",
                  "Add an agent; command runs an allow-listed program, else it pulls tasks (task_claim).",
                  object(
                    %{
                      swarm_id: @id,
                      type: @name,
                      name: @name,
                      capabilities: @strings,
                      capacity: integer(1, 1000),
                      command: %{
                        type: "array",
                        items: %{type: "string", maxLength: 4096},
                        minItems: 1,
                        maxItems: 64
                      },
                      timeout_ms: integer(1, 3_600_000),
                      node: @name
                    },
                    ["swarm_id"]
                  )},
                 {"agent_list", "List a swarm's agents with status and load.",
                  object(%{swarm_id: @id}, ["swarm_id"])},
                 {"agent_metrics",
                  "An agent's completed/failed counts, latency and success rate.",
                  object(%{agent_id: @id}, ["agent_id"])},
                 {"task_orchestrate",
                  "Submit a task (optionally a DAG of subtasks); wait_ms awaits the result.",
                  object(
                    %{
                      swarm_id: @id,
                      description: %{type: "string", minLength: 1, maxLength: 100_000},
                      input: @any,
                      priority: enum_of(@priorities),
                      strategy: enum_of(@task_strategies),
                      capabilities: @strings,
                      max_agents: integer(1, 10_000),
                      timeout_ms: integer(1, 86_400_000),
                      retries: integer(1, 100),
                      wait_ms: integer(0, 600_000),
                      subtasks: %{
                        type: "array",
                        maxItems: 1000,
                        items:
                          object(
                            %{
                              name: @name,
                              description: %{type: "string", maxLength: 100_000},
                              input: @any,
                              depends_on: @strings
                            },
                            [
                              "name"
                            ]
                          )
                      }
                    },
                    ["swarm_id", "description"]
                  )},
                 {"task_status", "Status of a task and its units.",
                  object(%{task_id: @id}, ["task_id"])},
                 {"task_results", "Result of a task and of each unit.",
                  object(%{task_id: @id}, ["task_id"])},
                 {"task_cancel", "Cancel a task.", object(%{task_id: @id}, ["task_id"])},
                 {"task_claim",
                  "Pull the next task for an external agent (work is null when none).",
                  object(%{agent_id: @id, lease_ms: integer(100, 3_600_000)}, ["agent_id"])},
                 {"task_complete", "Report a claimed task's result, or its failure with error.",
                  object(
                    %{
                      work_id: @id,
                      agent_id: @id,
                      result: @any,
                      error: %{type: "string", maxLength: 10_000}
                    },
                    [
                      "work_id",
                      "agent_id"
                    ]
                  )},
                 {"memory_store",
                  "Store a value in swarm memory (namespace, ttl_ms, tags optional).",
                  object(
                    %{
                      swarm_id: @id,
                      key: %{type: "string", minLength: 1, maxLength: 1024},
                      value: @any,
                      namespace: @name,
                      ttl_ms: integer(1, 31_536_000_000),
                      tags: @strings
                    },
                    ["swarm_id", "key", "value"]
                  )},
                 {"memory_get", "Read a value from swarm memory.",
                  object(
                    %{
                      swarm_id: @id,
                      key: %{type: "string", minLength: 1, maxLength: 1024},
                      namespace: @name
                    },
                    [
                      "swarm_id",
                      "key"
                    ]
                  )},
                 {"memory_search", "Search swarm memory by key prefix, tags or text.",
                  object(
                    %{
                      swarm_id: @id,
                      prefix: %{type: "string", maxLength: 1024},
                      tags: @strings,
                      text: %{type: "string", maxLength: 1024},
                      namespace: @name,
                      limit: integer(1, 1000)
                    },
                    ["swarm_id"]
                  )},
                 {"memory_usage", "Memory used by the engine and the node.", object(%{})},
                 {"share_discovery", "Publish a discovery to the swarm's subscribers.",
                  object(
                    %{
                      swarm_id: @id,
                      agent_id: @id,
                      type: @name,
                      content: @any,
                      confidence: %{type: "number", minimum: 0, maximum: 1},
                      tags: @strings
                    },
                    ["swarm_id", "type", "content"]
                  )},
                 {"subscribe_discoveries", "Get the SSE URL that streams a swarm's discoveries.",
                  object(
                    %{
                      swarm_id: @id,
                      type: @name,
                      agent_id: @id,
                      min_confidence: %{type: "number", minimum: 0, maximum: 1}
                    },
                    [
                      "swarm_id"
                    ]
                  )},
                 {"coordinate", "Send a coordination message through the swarm's topology.",
                  object(%{swarm_id: @id, message: @any}, ["swarm_id", "message"])},
                 {"features_detect", "Runtime features: engine, OTP, cores, protocols.",
                  object(%{})},
                 {"cluster_status",
                  "Cluster members, quorum, leader, and each swarm's home and backup node.",
                  object(%{})},
                 {"benchmark_run", "Run a short native engine benchmark (progress per phase).",
                  object(%{iterations: integer(1, 100_000)})}
               ]
               |> Enum.map(fn {name, description, schema} ->
                 %{name: name, description: description, inputSchema: schema}
               end)
  @by_name Map.new(@definitions, &{&1.name, &1})

  @doc """
  The tool definitions in `tools/list` form: name, one-line description and
  JSON Schema (`inputSchema`). The order is stable, which keeps `tools/list`
  cursors stable.
  """
  @spec definitions() :: [definition()]
  def definitions, do: @definitions

  @aliases %{"swarm_spawn" => "swarm_init", "coordinate_task" => "task_orchestrate"}

  @doc "Resolves a REST alias (`swarm_spawn`, `coordinate_task`) to its tool name."
  @spec resolve_alias(String.t()) :: String.t()
  def resolve_alias(name), do: Map.get(@aliases, name, name)

  @doc "Looks a tool up by name."
  @spec fetch(String.t()) :: {:ok, definition()} | :error
  def fetch(name), do: Map.fetch(@by_name, name)

  # One engine read each: they neither block, subscribe nor report progress.
  @inline ~w(swarm_status swarm_list agent_list agent_metrics task_status task_results
             memory_get memory_search memory_usage features_detect subscribe_discoveries
             cluster_status)

  @doc """
  True for tools that answer at once (a single engine read that neither
  blocks nor reports progress). The gateway runs these in the connection's
  process; every other tool runs in a worker it can time out and cancel.
  """
  @spec inline?(String.t()) :: boolean()
  def inline?(name), do: name in @inline

  @doc "True when `name` is a tool (used to keep metric labels to a fixed set)."
  @spec known?(String.t()) :: boolean()
  def known?(name), do: fetch(name) != :error

  @doc """
  Validates `args` against the tool's schema and runs it. Returns `{:ok, map}`
  with the structured result, `{:error, :unknown_tool}`,
  `{:error, {:invalid_arguments, message}}`, or `{:error, reason}` from the
  engine (see `error_message/2`).
  """
  @spec call(String.t(), map() | nil, ctx()) :: result()
  def call(name, args, ctx) do
    args = args || %{}

    with {:ok, tool} <- fetch_tool(name),
         :ok <- valid_object(args),
         :ok <- invalid_arguments(Schema.validate(args, tool.inputSchema)) do
      run(name, args, ctx)
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

  defp run("swarm_init", args, %{api: api}) do
    opts =
      compact(%{
        topology: lookup(@topologies, args["topology"]),
        strategy: lookup(@strategies, args["strategy"]),
        agents: args["agents"],
        max_agents: args["max_agents"],
        name: args["name"],
        agent_type: args["agent_type"],
        capabilities: args["capabilities"]
      })

    with {:ok, id} <- api.spawn_swarm(opts) do
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

  defp run("swarm_list", _args, %{api: api}) do
    with {:ok, swarms} <- api.list_swarms(), do: {:ok, %{swarms: swarms, count: length(swarms)}}
  end

  defp run("swarm_destroy", %{"swarm_id" => id}, %{api: api}) do
    with :ok <- api.destroy_swarm(id), do: {:ok, %{swarm_id: id, destroyed: true}}
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

  defp run("agent_list", %{"swarm_id" => id}, %{api: api}) do
    with {:ok, agents} <- api.list_agents(id),
         do: {:ok, %{swarm_id: id, agents: agents, count: length(agents)}}
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
      if wait > 0 do
        await_task(api, id, task_id, wait, ctx)
      else
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
        namespace: args["namespace"],
        limit: args["limit"]
      })

    with {:ok, entries} <- api.memory_search(id, query, []) do
      {:ok, %{swarm_id: id, entries: entries, count: length(entries)}}
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
       connected_nodes: length(Node.list()),
       mcp_protocol_versions: InterfaceService.Mcp.Protocol.supported_versions(),
       tools: length(definitions()),
       command_agents: Map.get(ctx, :allowlist, []) != []
     }}
  end

  defp run("cluster_status", _args, %{api: api}), do: api.cluster_status()

  defp run("benchmark_run", args, ctx), do: Bench.run(Map.get(args, "iterations", 1000), ctx)

  # --- helpers ----------------------------------------------------------------

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

  defp executor(%{"command" => [argv0 | _] = argv} = args, ctx) do
    allowlist = Map.get(ctx, :allowlist, [])

    if SwarmService.Executor.Command.allowed?(argv0, allowlist) do
      opts = if t = args["timeout_ms"], do: [timeout_ms: t], else: []
      {:ok, {:command, argv, opts}}
    else
      {:error, {:command_not_allowed, argv0}}
    end
  end

  defp executor(_args, _ctx), do: {:ok, :external}

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
           wait_error: error_message(reason, api)
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

  @doc """
  A sentence for an error reason: the engine's own wording
  (`SwarmService.RuvSwarm.format_error/1`) where it has one.
  """
  @spec error_message(term(), module()) :: String.t()
  def error_message({:invalid_arguments, msg}, _api), do: "invalid arguments: " <> msg
  def error_message(:unknown_tool, _api), do: "unknown tool"

  def error_message({:timeout_after, ms}, _api), do: "the call did not finish within #{ms} ms"

  def error_message({:command_not_allowed, argv0}, _api),
    do: "command #{inspect(argv0)} is not in the gateway's command allow-list"

  def error_message(reason, api) do
    api.format_error(reason)
  rescue
    _ -> fallback_message(reason)
  catch
    _, _ -> fallback_message(reason)
  end

  defp fallback_message(:swarm_not_found), do: "swarm not found"
  defp fallback_message(:agent_not_found), do: "agent not found"
  defp fallback_message(:task_not_found), do: "task not found"
  defp fallback_message(:not_found), do: "not found"
  defp fallback_message(:no_task), do: "no task available"

  defp fallback_message({:invalid_argument, msg}) when is_binary(msg),
    do: "invalid argument: " <> msg

  defp fallback_message({:swarm_full, max}), do: "swarm is full (max #{max} agents)"
  defp fallback_message(reason), do: "error: " <> inspect(reason, limit: 20, printable_limit: 200)

  @doc "A stable machine-readable code for an error reason (REST status, structured errors)."
  @spec error_code(term()) :: String.t()
  def error_code(reason) when is_atom(reason), do: Atom.to_string(reason)
  def error_code({tag, _}) when is_atom(tag), do: Atom.to_string(tag)
  def error_code({tag, _, _}) when is_atom(tag), do: Atom.to_string(tag)
  def error_code({tag, _, _, _}) when is_atom(tag), do: Atom.to_string(tag)
  def error_code(_), do: "error"

  @doc "The HTTP status that fits an error reason (used by the REST form)."
  @spec http_status(term()) :: pos_integer()
  def http_status(reason)
      when reason in [:swarm_not_found, :agent_not_found, :task_not_found, :not_found],
      do: 404

  def http_status(:unknown_tool), do: 404
  def http_status({:invalid_arguments, _}), do: 400
  def http_status({:invalid_argument, _}), do: 400
  def http_status({:dependency_cycle, _}), do: 400
  def http_status({:command_not_allowed, _}), do: 403
  def http_status({:swarm_full, _}), do: 409
  def http_status({:too_large, _, _, _}), do: 413
  # The swarm or the node holds all it may: the client frees room (or waits
  # for tasks to leave the history), like a full swarm.
  def http_status({:quota_exceeded, _, _}), do: 409
  def http_status(:no_quorum), do: 503
  def http_status({:home_down, _}), do: 503
  def http_status({:timeout_after, _}), do: 504
  def http_status(_), do: 500
end
