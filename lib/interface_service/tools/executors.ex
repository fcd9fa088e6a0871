defmodule InterfaceService.Tools.Executors do
  @moduledoc false
  # Does anything in a swarm run work? task_orchestrate asks before it
  # waits: a swarm with no agents, or only external agents nobody serves,
  # leaves a task pending forever, and "still running" after wait_ms
  # would be wrong twice over.
  #
  # An agent runs work when it is a push agent (an executor: a command or
  # a module) or an external (pull) agent some client serves: it has run
  # work before or holds some now. swarm_init over MCP adds external
  # agents (its `agents` count) and ruv-swarm's agent_spawn adds one too:
  # those never claim by themselves. Only the first page of agents (1,000)
  # is looked at, so the check costs the same in any swarm.

  @sample 1000

  @spec missing(module(), String.t(), map()) :: :ok | {:none, String.t()}
  def missing(api, swarm_id, ctx) do
    with true <- function_exported?(api, :list_agents_page, 2),
         {:ok, %{agents: agents}} <- api.list_agents_page(swarm_id, limit: @sample) do
      if Enum.any?(agents, &runs_work?/1),
        do: :ok,
        else: {:none, message(swarm_id, agents, Map.get(ctx, :allowlist, []))}
    else
      _ -> :ok
    end
  end

  defp runs_work?(%{dispatch: :push, status: status}), do: status != :offline

  defp runs_work?(%{dispatch: :pull} = a) do
    m = Map.get(a, :metrics, %{})
    Map.get(a, :running_units, 0) > 0 or Map.get(m, :completed, 0) + Map.get(m, :failed, 0) > 0
  end

  defp runs_work?(_), do: false

  defp message(swarm_id, agents, allowlist) do
    found =
      case agents do
        [] ->
          "Swarm #{swarm_id} has no agents, so nothing runs this task."

        [_ | _] ->
          "No agent of swarm #{swarm_id} runs work: its #{length(agents)} agent(s) are " <>
            "external (from swarm_init's agents or agent_spawn without command) and only " <>
            "take work a client claims for them."
      end

    spawn =
      case allowlist do
        [] ->
          "This server allows no commands (RUV_SWARM_COMMAND_ALLOWLIST is empty), so "

        list ->
          "To run it, call agent_spawn with command, a program this server allows " <>
            "(#{list |> Enum.take(5) |> Enum.join(", ")}), which gets the task on stdin. Or "
      end

    claim =
      "claim it yourself: task_claim {agent_id} with an external agent's id, then " <>
        "task_complete {work_id, agent_id, result}."

    found <> " The task is queued and starts when an agent can take it. " <> spawn <> claim
  end
end
