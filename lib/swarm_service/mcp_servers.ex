defmodule SwarmService.McpServers do
  @moduledoc """
  External MCP servers run by the node, one supervised actor each
  (`SwarmService.RuvSwarm.mcp_deploy/2` and friends delegate here).

  Each server is a process that owns one connection: the node's MCP client
  program (`ruv_swarm_mcp_client`, built on rmcp, the official Rust SDK)
  started through `SwarmService.Executor.Launcher`, which talks to a stdio
  child it starts or to a Streamable HTTP endpoint. Client and stdio
  server are one process tree under the launcher: stopping the server, a
  crash of its actor and the death of the VM all end the tree.

  ## Limits and states

    * **Mailbox of 100**: at most 100 calls are admitted per server (in
      flight plus waiting for a concurrency slot); the 101st is refused at
      once with `{:error, :overloaded}`.
    * **Concurrency**: at most `max_concurrency` (default 16) calls are in
      flight downstream; the other admitted calls wait their turn.
    * **Timeouts**: 30 s per call by default, or the server's
      `timeout_ms`, its `tool_timeouts`, or the call's `:timeout`. A call
      that times out is answered `{:error, {:mcp_timeout, ms}}` and
      `notifications/cancelled` is sent downstream.
    * **States**: `:starting`, `:ready`, `:backoff` (reconnecting after
      exponential backoff with jitter: 0.5 s, 1 s, 2 s ... 15 s), and
      `:crash_loop` after 5 failures within 60 s: calls are refused at
      once and the server is probed every 30 s until it starts again.
      Calls wait (within the mailbox and their timeout) while a server is
      `:starting` or in `:backoff`.
    * **Health**: `ping` every `ping_interval_ms` (15 s); two unanswered
      pings in a row restart the connection. The tool list is re-read on
      `notifications/tools/list_changed`.

  Configuration is Claude Desktop's `mcpServers` format, see
  `SwarmService.McpServers.Config`. At boot the node deploys the file named
  by `RUV_SWARM_MCP_SERVERS` (or the `:mcp_servers_file` application
  environment), if any.
  """

  use Supervisor
  require Logger

  alias SwarmService.McpServers.{Catalog, Config, Server}

  @typedoc "A server as `mcp_servers/0` shows it."
  @type info :: %{
          name: String.t(),
          prefix: String.t(),
          transport: :stdio | :http,
          status: :starting | :ready | :backoff | :crash_loop,
          health: :unknown | :ok | :failing,
          tools: [map],
          restarts: non_neg_integer,
          last_error: String.t() | nil,
          protocol: String.t() | nil,
          server: %{name: String.t() | nil, version: String.t() | nil} | nil,
          in_flight: non_neg_integer,
          waiting: non_neg_integer,
          ping_us: non_neg_integer | nil,
          timeout_ms: pos_integer,
          tool_timeouts: %{String.t() => pos_integer}
        }

  @typedoc "An error reason (see `SwarmService.Errors`)."
  @type reason :: term

  @doc false
  def start_link(opts \\ []), do: Supervisor.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts) do
    Catalog.create()

    children = [
      {Registry, keys: :unique, name: SwarmService.McpServers.Registry},
      {DynamicSupervisor,
       name: SwarmService.McpServers.Supervisor,
       strategy: :one_for_one,
       max_restarts: 100,
       max_seconds: 10},
      {Task, &deploy_configured/0}
    ]

    Supervisor.init(children, strategy: :one_for_all)
  end

  defp deploy_configured do
    path =
      System.get_env("RUV_SWARM_MCP_SERVERS") ||
        Application.get_env(:swarm_service, :mcp_servers_file)

    if path not in [nil, ""] do
      case Config.read_file(path) do
        {:ok, specs, errors} ->
          report = deploy_specs(specs, errors)

          for %{server: name, error: message} <- report.errors,
              do: Logger.error("MCP server #{name} not started: #{message}")

        {:error, message} ->
          Logger.error("MCP servers not started: #{message}")
      end
    end
  end

  @doc """
  Starts a server from one `mcpServers` entry (a map with string or atom
  keys: `command`/`args`/`env`/`cwd` or `url`/`headers`, and the options
  of `SwarmService.McpServers.Config`). Returns at once with the server's
  info; the connection opens in the background (state `:starting`), and
  calls made meanwhile wait for it.
  """
  @spec deploy(String.t(), map) :: {:ok, info} | {:error, reason}
  def deploy(name, entry) do
    case Config.parse(name, entry) do
      {:ok, %{disabled: true}} ->
        {:error, {:invalid_argument, "server #{inspect(name)} is disabled"}}

      {:ok, spec} ->
        start(spec)

      {:error, message} ->
        {:error, {:invalid_argument, message}}
    end
  end

  @doc """
  Deploys every entry of an `mcpServers` document (JSON text or a decoded
  map). Invalid entries are reported by name and field; the others start.
  """
  @spec deploy_config(binary | map) ::
          {:ok, %{deployed: [String.t()], errors: [%{server: String.t(), error: String.t()}]}}
          | {:error, reason}
  def deploy_config(document) do
    case Config.parse_document(document) do
      {:ok, specs, errors} -> {:ok, deploy_specs(specs, errors)}
      {:error, message} -> {:error, {:invalid_argument, message}}
    end
  end

  defp deploy_specs(specs, errors) do
    {deployed, failed} =
      specs
      |> Enum.reject(& &1.disabled)
      |> Enum.reduce({[], []}, fn spec, {ok, bad} ->
        case start(spec) do
          {:ok, _} -> {[spec.name | ok], bad}
          {:error, reason} -> {ok, [{spec.name, SwarmService.Errors.message(reason)} | bad]}
        end
      end)

    %{
      deployed: Enum.reverse(deployed),
      errors:
        for({name, error} <- errors ++ Enum.reverse(failed), do: %{server: name, error: error})
    }
  end

  defp start(spec) do
    case DynamicSupervisor.start_child(SwarmService.McpServers.Supervisor, {Server, spec}) do
      {:ok, _pid} ->
        Catalog.get(spec.name)

      {:error, {:already_started, _}} ->
        {:error, {:mcp_server_exists, spec.name}}

      {:error, {:prefix_taken, prefix}} ->
        {:error, {:mcp_prefix_taken, prefix}}

      {:error, reason} ->
        {:error, {:mcp_failed, "cannot start: " <> inspect(reason, limit: 5)}}
    end
  end

  @doc "Every managed server: state, health, tools, restarts (from the catalog, no waiting)."
  @spec servers() :: [info]
  def servers, do: Catalog.all()

  @doc "One server's info, asked of its actor (live counts of calls in flight and waiting)."
  @spec server(String.t()) :: {:ok, info} | {:error, reason}
  def server(name) when is_binary(name) do
    with [{pid, _}] <- Registry.lookup(SwarmService.McpServers.Registry, {:server, name}),
         %{} = info <- safe_call(pid, :info) do
      {:ok, info}
    else
      _ ->
        case Catalog.get(name) do
          {:ok, info} -> {:ok, info}
          :error -> {:error, {:mcp_server_not_found, name}}
        end
    end
  end

  @doc "The tools a server offers (after its `allow`/`deny` lists), as the server lists them."
  @spec tools(String.t()) :: {:ok, [map]} | {:error, reason}
  def tools(name) do
    with {:ok, info} <- catalog(name), do: {:ok, info.tools}
  end

  defp catalog(name) when is_binary(name) do
    case Catalog.get(name) do
      {:ok, info} -> {:ok, info}
      :error -> {:error, {:mcp_server_not_found, name}}
    end
  end

  @doc """
  Calls `tool` on server `name` with `arguments` (a map, JSON-shaped).
  Returns `{:ok, result}` with the server's `CallToolResult` as decoded
  JSON (`"content"`, `"isError"`, optional `"structuredContent"`; a tool
  error is a result with `"isError" => true`), or `{:error, reason}`:
  `:overloaded`, `{:mcp_timeout, ms}`, `{:mcp_unavailable, name, :crash_loop}`,
  `{:mcp_closed, name, why}`, `{:mcp_error, code, message}` (a JSON-RPC
  error from the server), `{:mcp_server_not_found, name}`...

  Options: `:timeout` (ms; else the tool's or server's timeout),
  `:on_progress` (a function of `%{progress, total, message}` called for
  each progress notification of this call).
  """
  @spec call(String.t(), String.t(), map | nil, keyword) :: {:ok, map} | {:error, reason}
  def call(name, tool, arguments, opts \\ [])

  def call(name, tool, arguments, opts)
      when is_binary(name) and is_binary(tool) and (is_map(arguments) or is_nil(arguments)) do
    with {:ok, timeout} <- call_timeout(name, tool, opts[:timeout]),
         [{pid, _}] <- Registry.lookup(SwarmService.McpServers.Registry, {:server, name}) do
      ref = Process.monitor(pid)
      send(pid, {:mcp_call, self(), ref, tool, arguments || %{}, timeout})
      deadline = System.monotonic_time(:millisecond) + timeout + 3_000
      await(ref, pid, name, timeout, opts[:on_progress], deadline)
    else
      [] -> {:error, {:mcp_server_not_found, name}}
      {:error, _} = error -> error
    end
  end

  def call(_name, _tool, _arguments, _opts),
    do: {:error, {:invalid_argument, "server and tool must be strings and arguments a map"}}

  defp call_timeout(name, tool, nil) do
    with {:ok, info} <- catalog(name),
         do: {:ok, Map.get(info.tool_timeouts, tool, info.timeout_ms)}
  end

  defp call_timeout(_name, _tool, ms) when is_integer(ms) and ms > 0 and ms <= 86_400_000,
    do: {:ok, ms}

  defp call_timeout(_name, _tool, _ms),
    do: {:error, {:invalid_argument, "timeout must be a positive number of milliseconds"}}

  defp await(ref, pid, name, timeout, on_progress, deadline) do
    wait = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^ref, :reply, outcome} ->
        Process.demonitor(ref, [:flush])
        outcome

      {^ref, :progress, progress} ->
        if on_progress, do: on_progress.(progress)
        await(ref, pid, name, timeout, on_progress, deadline)

      {:DOWN, ^ref, :process, _, _} ->
        {:error, {:mcp_closed, name, "the server's actor stopped"}}
    after
      wait ->
        send(pid, {:mcp_cancel, ref})
        Process.demonitor(ref, [:flush])
        {:error, {:mcp_timeout, timeout}}
    end
  end

  @doc "Stops a server and ends its whole process tree."
  @spec stop(String.t()) :: :ok | {:error, reason}
  def stop(name) when is_binary(name) do
    case Registry.lookup(SwarmService.McpServers.Registry, {:server, name}) do
      [{pid, _}] ->
        DynamicSupervisor.terminate_child(SwarmService.McpServers.Supervisor, pid)
        :ok

      [] ->
        {:error, {:mcp_server_not_found, name}}
    end
  end

  @doc """
  Per server and per tool: calls, errors, timeouts, overloaded refusals,
  latency p50/p99 (µs, over the last 1024 calls), plus the server's
  restarts, state and calls in flight/waiting.
  """
  @spec metrics() :: [map]
  def metrics do
    for %{name: name} <- Catalog.all(),
        [{pid, _}] <- [Registry.lookup(SwarmService.McpServers.Registry, {:server, name})],
        m = safe_call(pid, :metrics),
        do: m
  end

  @doc false
  # The OS pid of a server's client program (tests).
  def os_pid(name) do
    case Registry.lookup(SwarmService.McpServers.Registry, {:server, name}) do
      [{pid, _}] -> safe_call(pid, :os_pid)
      [] -> nil
    end
  end

  defp safe_call(pid, msg) do
    GenServer.call(pid, msg, 5_000)
  catch
    :exit, _ -> nil
  end

  # ---- the gateway's view ----------------------------------------------------------

  @doc false
  # Tools of ready servers in tools/list form, named <prefix>__<tool>.
  @spec gateway_tools() :: [map]
  def gateway_tools do
    for %{status: status, prefix: prefix, tools: tools} <- Catalog.all(),
        status in [:ready, :backoff, :starting],
        tool <- tools do
      %{
        name: prefix <> "__" <> tool["name"],
        description: tool["description"] || "",
        inputSchema: tool["inputSchema"] || %{"type" => "object"}
      }
      |> put_present(:title, tool["title"])
      |> put_present(:annotations, tool["annotations"])
      |> put_present(:outputSchema, tool["outputSchema"])
    end
  end

  defp put_present(map, _key, nil), do: map
  defp put_present(map, key, value), do: Map.put(map, key, value)

  @doc false
  # "<prefix>__<tool>" -> {:ok, server, tool} for a known prefix.
  @spec resolve(String.t()) :: {:ok, String.t(), String.t()} | :error
  def resolve(name) when is_binary(name) do
    with [prefix, tool] when tool != "" <- String.split(name, "__", parts: 2),
         [{_pid, server}] <- Registry.lookup(SwarmService.McpServers.Registry, {:prefix, prefix}) do
      {:ok, server, tool}
    else
      _ -> :error
    end
  end

  def resolve(_), do: :error
end
