defmodule InterfaceService.Tools.Compat do
  @moduledoc false
  # ruv-swarm compatibility: the npm package's MCP server (ruv-swarm 1.0.x)
  # names its arguments in camelCase (swarmId, maxAgents, task, taskId,
  # agentId...) and takes some this server has no use for (verbose,
  # detail, enableNeuralAgents...). normalize/2 turns its calls into ours
  # before validation: renamed keys keep their values (a key given in both
  # forms keeps ours), keys that mean nothing here are dropped. Anything
  # else still meets the schema, so a misspelt argument is still an error.
  #
  # Its neural_* and daa_* tools have no counterpart here: unsupported/1
  # gives the sentence a model reads instead of "unknown tool".

  # Renamed for every tool that has the target property.
  @renames %{
    "swarmId" => "swarm_id",
    "taskId" => "task_id",
    "agentId" => "agent_id",
    "workId" => "work_id",
    "maxAgents" => "max_agents",
    "agentType" => "agent_type",
    "waitMs" => "wait_ms",
    "timeoutMs" => "timeout_ms",
    "leaseMs" => "lease_ms",
    "ttlMs" => "ttl_ms",
    "durationMs" => "duration_ms",
    "maxEvents" => "max_events",
    "minConfidence" => "min_confidence",
    "nextCursor" => "cursor"
  }

  # Per tool: renames of its own, and the ruv-swarm arguments dropped.
  @tools %{
    "swarm_init" =>
      {%{}, ~w(enableCognitiveDiversity enableNeuralAgents enableForecasting memoryBudget)},
    "swarm_status" => {%{}, ~w(verbose)},
    "swarm_monitor" => {%{}, ~w(interval includeAgents includeTasks includeMetrics realTime)},
    "agent_spawn" => {%{}, ~w(cognitivePattern enableMemory learningRate)},
    "agent_list" => {%{}, []},
    "agent_metrics" => {%{}, ~w(metric metricType)},
    "task_orchestrate" =>
      {%{"task" => "description", "requiredCapabilities" => "capabilities"},
       ~w(estimatedDuration)},
    "task_status" => {%{}, ~w(detailed)},
    "task_results" => {%{}, ~w(format includeAgentResults)},
    "benchmark_run" =>
      {%{}, ~w(type includeWasmBenchmarks includeNeuralBenchmarks includeSwarmBenchmarks)},
    "features_detect" => {%{}, ~w(category)},
    "memory_usage" => {%{}, ~w(detail)}
  }

  @unsupported ~w(neural_status neural_train neural_patterns daa_init daa_agent_create
                  daa_agent_adapt daa_workflow_create daa_workflow_execute daa_knowledge_share
                  daa_learning_status daa_cognitive_pattern daa_meta_learning
                  daa_performance_metrics)

  @doc "ruv-swarm tool names this server answers with a tool error."
  def unsupported_names, do: @unsupported

  @doc "The error sentence for a ruv-swarm tool with no meaning here, else nil."
  def unsupported(name) when name in @unsupported do
    what =
      if String.starts_with?(name, "neural_"),
        do: "ruv-swarm's neural networks and cognitive patterns",
        else: "ruv-swarm's decentralized autonomous agents (DAA)"

    "not supported by this server: #{name} (#{what} are not part of this engine). " <>
      "Agents here are programs (agent_spawn with command) or clients that take work " <>
      "with task_claim; see tools/list."
  end

  def unsupported(_name), do: nil

  @doc "ruv-swarm's arguments of `name` turned into this server's."
  def normalize(name, args) when is_map(args) do
    {own, dropped} = Map.get(@tools, name, {%{}, []})

    args = Map.drop(args, dropped)
    args = monitor_duration(name, args)

    Enum.reduce(args, args, fn {key, value}, acc ->
      case Map.get(own, key) || Map.get(@renames, key) do
        nil -> acc
        ours -> acc |> Map.delete(key) |> Map.put_new(ours, value)
      end
    end)
  end

  def normalize(_name, args), do: args

  # ruv-swarm's swarm_monitor takes duration in seconds.
  defp monitor_duration("swarm_monitor", %{"duration" => s} = args)
       when is_number(s) and s >= 0 do
    args |> Map.delete("duration") |> Map.put_new("duration_ms", min(round(s * 1000), 60_000))
  end

  defp monitor_duration(_name, args), do: args
end
