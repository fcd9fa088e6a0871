defmodule SwarmService.Errors do
  @moduledoc """
  The one catalogue of error reasons: for each `{:error, reason}` the engine,
  the public API (`SwarmService.RuvSwarm`) or the gateway returns, the
  sentence a person reads, a stable machine-readable `code`, the JSON-RPC
  error code and the HTTP status. `SwarmService.RuvSwarm.format_error/1`,
  the MCP tool results and the REST form all answer from here.

  JSON-RPC codes: `-32602` (invalid params) for arguments that cannot be
  accepted as given, and codes of the implementation-defined server range
  for the rest: `-32002` not found, `-32004` conflict with the current state,
  `-32005` unavailable (retry later or elsewhere), `-32006` timed out,
  `-32603` internal (a task failed, or a reason the catalogue lacks).

      iex> SwarmService.Errors.describe({:swarm_full, 5})
      %{
        message: "the swarm is full: it already has its maximum of 5 agents",
        code: "swarm_full",
        rpc_code: -32004,
        http_status: 409
      }
  """

  require Logger

  @type entry :: %{
          message: String.t(),
          code: String.t(),
          rpc_code: integer,
          http_status: pos_integer
        }

  @invalid_params -32_602
  @not_found -32_002
  @conflict -32_004
  @unavailable -32_005
  @timed_out -32_006
  @internal -32_603

  @doc "Everything the catalogue says about `reason` (a fallback for reasons it lacks)."
  @spec describe(term) :: entry
  def describe(reason) do
    {http, rpc, message} =
      case entry(reason) do
        nil -> {500, @internal, "error: " <> inspect(reason, limit: 20, printable_limit: 200)}
        found -> found
      end

    %{message: message, code: code(reason), rpc_code: rpc, http_status: http}
  end

  @doc """
  What a client of the gateway is told about `reason`: the catalogue's
  entry, or, for a reason it lacks (a defect, not the client's doing), a
  500 naming only the reason's tag. The term itself, which may hold
  internal state or a stack trace, goes to the node's log instead.
  """
  @spec for_client(term) :: entry
  def for_client(reason) do
    case entry(reason) do
      {http, rpc, message} ->
        %{message: message, code: code(reason), rpc_code: rpc, http_status: http}

      nil ->
        Logger.error("gateway: uncatalogued error reason #{inspect(reason, limit: 30)}")
        code = code(reason)

        %{
          message: "internal error (#{code}): the node logged the details",
          code: code,
          rpc_code: @internal,
          http_status: 500
        }
    end
  end

  @doc "Whether the catalogue has an entry of its own for `reason`."
  @spec known?(term) :: boolean
  def known?(reason), do: entry(reason) != nil

  @doc "The sentence for `reason`."
  @spec message(term) :: String.t()
  def message(reason), do: describe(reason).message

  @doc "The HTTP status for `reason` (the REST form and SSE)."
  @spec http_status(term) :: pos_integer
  def http_status(reason), do: describe(reason).http_status

  @doc "The JSON-RPC error code for `reason`."
  @spec rpc_code(term) :: integer
  def rpc_code(reason), do: describe(reason).rpc_code

  @doc "A stable machine-readable code: the reason's tag (`\"error\"` for other terms)."
  @spec code(term) :: String.t()
  def code(reason) when is_atom(reason), do: Atom.to_string(reason)

  def code(reason) when is_tuple(reason) and is_atom(elem(reason, 0)),
    do: Atom.to_string(elem(reason, 0))

  def code(_), do: "error"

  # ---- the catalogue: {http status, JSON-RPC code, sentence} ---------------------

  # The engine's reasons (checked against SwarmService.Native.engine_error_reasons/0).
  defp entry(:swarm_not_found), do: {404, @not_found, "no swarm with that id"}

  defp entry(:swarm_exists),
    do: {409, @conflict, "a swarm with that id is already loaded on this node"}

  defp entry(:agent_not_found), do: {404, @not_found, "no agent with that id"}

  defp entry(:task_not_found),
    do: {404, @not_found, "no task with that id (finished tasks are kept for a while only)"}

  defp entry(:not_found), do: {404, @not_found, "no entry with that key"}

  defp entry({:swarm_full, max}),
    do: {409, @conflict, "the swarm is full: it already has its maximum of #{max} agents"}

  defp entry({:invalid_argument, msg}) when is_binary(msg), do: {400, @invalid_params, msg}

  defp entry({:too_large, what, size, limit}),
    do: {413, @invalid_params, "#{what} is too large: #{size} exceeds the limit of #{limit}"}

  defp entry({:dependency_cycle, path}),
    do: {400, @invalid_params, "subtask dependencies form a cycle: #{path}"}

  defp entry({:task_finished, status}),
    do: {409, @conflict, "the task already finished (#{status})"}

  defp entry({:version_conflict, expected, found}),
    do: {409, @conflict, "version conflict: expected #{expected}, found #{found}"}

  defp entry({:not_pull_agent, id}),
    do: {409, @conflict, "agent #{id} has an executor; only external agents claim tasks"}

  # The swarm or the node holds all it may: the client makes room (or waits
  # for tasks to leave the history), as with a full swarm.
  defp entry({:quota_exceeded, what, limit}),
    do:
      {409, @conflict,
       "#{what} quota exceeded: holding this would go past the limit of #{limit} bytes " <>
         "(delete memory entries or let tasks finish and leave the history to make room)"}

  # The public API's own reasons.
  defp entry({:too_many_swarms, :client, cap}),
    do:
      {429, @unavailable,
       "this client already has #{cap} swarms, its maximum: destroy some (swarm_destroy) first"}

  defp entry({:too_many_swarms, :node, cap}),
    do:
      {503, @unavailable,
       "this node already holds #{cap} swarms, its maximum: destroy some or use another node"}

  defp entry(:persona_not_found),
    do: {404, @not_found, "no persona with that name (persona_list lists them)"}

  defp entry(:no_task), do: {404, @not_found, "no task is waiting for this agent"}

  defp entry(:timeout),
    do: {504, @timed_out, "the task did not finish in time; it is still running"}

  defp entry(:cancelled), do: {409, @conflict, "the task was cancelled"}
  defp entry({:failed, msg}), do: {500, @internal, "the task failed: #{msg}"}
  defp entry({:timed_out, msg}), do: {504, @timed_out, "the task timed out: #{msg}"}

  defp entry({:executor_unavailable, node, mod}),
    do:
      {422, @invalid_params,
       "node #{node} cannot load the executor module #{inspect(mod)}; " <>
         "deploy it there or place the agent elsewhere"}

  defp entry(:no_quorum),
    do:
      {503, @unavailable,
       "this node is cut off from a majority of the cluster's members, so it accepts no " <>
         "changes; retry on a node of the majority side"}

  defp entry({:home_down, node}),
    do:
      {503, @unavailable,
       "the swarm's home node #{node} went down during the call; the change may or may " <>
         "not have been made (check, then retry: its backup takes over within seconds)"}

  defp entry({:not_committed, ms}),
    do:
      {503, @unavailable,
       "the change was not written to the swarm's log within #{ms} ms; it may or may " <>
         "not be applied later (check, then retry)"}

  defp entry({:raft, reason}),
    do: {503, @unavailable, "the swarm's log refused the change: #{inspect(reason, limit: 5)}"}

  # The gateway's.
  defp entry({:invalid_arguments, msg}) when is_binary(msg),
    do: {400, @invalid_params, "invalid arguments: " <> msg}

  defp entry(:unknown_tool), do: {404, @invalid_params, "unknown tool"}

  defp entry({:timeout_after, ms}),
    do: {504, @timed_out, "the call did not finish within #{ms} ms"}

  defp entry({:command_not_allowed, argv0}),
    do:
      {403, @invalid_params,
       "command #{inspect(argv0)} with these arguments is not in the gateway's command allow-list"}

  defp entry({:not_permitted, msg}) when is_binary(msg), do: {403, @invalid_params, msg}

  # External MCP servers (SwarmService.McpServers).
  defp entry(:overloaded),
    do:
      {503, @unavailable,
       "the MCP server is overloaded: 100 calls are already waiting or running; retry later"}

  defp entry({:mcp_timeout, ms}),
    do:
      {504, @timed_out,
       "the MCP server did not answer within #{ms} ms (the call was cancelled downstream)"}

  defp entry({:mcp_unavailable, name, :crash_loop}),
    do:
      {503, @unavailable,
       "MCP server #{name} is in crash_loop (it failed 5 times within 60 s); it is probed every 30 s"}

  defp entry({:mcp_closed, name, why}) when is_binary(why),
    do: {502, @unavailable, "MCP server #{name} lost its connection: #{why}"}

  defp entry({:mcp_error, code, message}) when is_binary(message),
    do: {502, @internal, "the MCP server answered with error #{code}: #{message}"}

  defp entry({:mcp_failed, message}) when is_binary(message),
    do: {502, @internal, "the MCP call failed: #{message}"}

  defp entry(:mcp_stopped), do: {503, @unavailable, "the MCP server was stopped"}

  defp entry({:mcp_server_not_found, name}),
    do: {404, @not_found, "no MCP server named #{inspect(String.slice(name, 0, 100))}"}

  defp entry({:mcp_tool_not_found, server, tool}),
    do:
      {404, @not_found,
       "MCP server #{server} has no tool #{inspect(String.slice(tool, 0, 100))} open to callers"}

  defp entry({:mcp_server_exists, name}),
    do: {409, @conflict, "an MCP server named #{name} is already running"}

  defp entry({:mcp_prefix_taken, prefix}),
    do: {409, @conflict, "another MCP server already uses the tool prefix #{prefix}"}

  defp entry(_), do: nil
end
