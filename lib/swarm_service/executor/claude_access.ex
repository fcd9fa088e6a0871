defmodule SwarmService.Executor.ClaudeAccess do
  @moduledoc """
  How a Claude agent reaches its own swarm: a bearer token for this node's
  gateway, scoped to the agent's swarm, and an MCP configuration file for
  Claude Code's `--mcp-config` that names the gateway and carries it.

  A token is made when a claude agent's process starts (`grant/3`) and
  revoked when that process ends, however it ends (the process is
  monitored), so a removed agent's token opens nothing. Tokens are kept
  here as SHA-256 digests; the plain token exists only in the agent's
  configuration file (mode 0600, in a directory of this node emptied at
  boot) for as long as the agent lives.

  The gateway (`InterfaceService.Auth`) accepts such a token as the client
  `"agent:<agent id>"`, and `InterfaceService.Tools` lets that client use
  only the tools of its own swarm that read it or share into it:
  `swarm_status`, `agent_list`, `agent_metrics`, `task_status`,
  `task_results`, `memory_store`, `memory_get`, `memory_search`,
  `share_discovery`, `subscribe_discoveries` and `features_detect`; a
  missing `swarm_id` is its own swarm.
  """
  use GenServer

  @table __MODULE__

  @doc false
  def start_link(_arg), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc """
  Makes a token for `agent_id` (it opens the agent's swarm), valid while `pid` lives, and
  writes the MCP configuration for `gateway_url` (the gateway's `/mcp`
  URL). Returns the configuration file's path.
  """
  @spec grant(String.t(), pid(), String.t()) :: {:ok, Path.t()} | {:error, String.t()}
  def grant(agent_id, pid, gateway_url) do
    GenServer.call(__MODULE__, {:grant, agent_id, pid, gateway_url})
  end

  @doc "The agent a presented token belongs to, or nil."
  @spec agent(String.t()) :: String.t() | nil
  def agent(token) when is_binary(token) do
    case :ets.lookup(@table, {:token, :crypto.hash(:sha256, token)}) do
      [{_, agent_id}] -> agent_id
      [] -> nil
    end
  rescue
    # Not started (a gateway without the swarm service, in tests).
    ArgumentError -> nil
  end

  @doc "The URL of this node's gateway MCP endpoint, or nil when it is not running."
  @spec gateway_url() :: String.t() | nil
  def gateway_url do
    InterfaceService.url() <> "/mcp"
  catch
    _, _ -> nil
  end

  @impl true
  def init([]) do
    :ets.new(@table, [:named_table, :protected, read_concurrency: true])
    dir = dir()
    File.rm_rf(dir)
    :ok = File.mkdir_p(dir)
    :ok = File.chmod(dir, 0o700)
    {:ok, %{dir: dir, by_pid: %{}}}
  end

  @impl true
  def handle_call({:grant, agent_id, pid, url}, _from, state) do
    token = "rsa_" <> Base.url_encode64(:crypto.strong_rand_bytes(32), padding: false)
    digest = :crypto.hash(:sha256, token)
    path = Path.join(state.dir, "#{Base.url_encode64(digest, padding: false)}.json")

    config = %{
      "mcpServers" => %{
        "ruv-swarm" => %{
          "type" => "http",
          "url" => url,
          "headers" => %{"Authorization" => "Bearer " <> token}
        }
      }
    }

    with :ok <- File.write(path, :jiffy.encode(config), [:exclusive]),
         :ok <- File.chmod(path, 0o600) do
      :ets.insert(@table, {{:token, digest}, agent_id})
      Process.monitor(pid)
      grant = %{digest: digest, path: path}

      {:reply, {:ok, path},
       %{state | by_pid: Map.update(state.by_pid, pid, [grant], &[grant | &1])}}
    else
      {:error, reason} ->
        {:reply, {:error, "cannot write the agent's MCP configuration #{path}: #{reason}"}, state}
    end
  end

  @impl true
  def handle_info({:DOWN, _ref, :process, pid, _reason}, state) do
    {grants, by_pid} = Map.pop(state.by_pid, pid, [])

    for g <- grants do
      :ets.delete(@table, {:token, g.digest})
      File.rm(g.path)
    end

    {:noreply, %{state | by_pid: by_pid}}
  end

  def handle_info(_other, state), do: {:noreply, state}

  # One per node name, emptied at boot: the files of a VM killed with its
  # agents hold tokens that died with it.
  defp dir do
    name = if node() == :nonode@nohost, do: "nonode-#{System.pid()}", else: Atom.to_string(node())
    Path.join(System.tmp_dir!(), "ruv-swarm-agents-#{name}")
  end
end
