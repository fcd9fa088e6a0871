defmodule SwarmService.Test.McpPeers do
  @moduledoc false
  # The third-party MCP servers the McpServers tests run against, installed
  # by `make mcp-peers` (test/mcp_peers/install.sh) into _build/mcp_peers.
  # A missing peer fails the test with the command that installs it: never
  # a silent skip.
  import ExUnit.Assertions

  @root Path.expand("../..", __DIR__)
  @peers Path.join(@root, "_build/mcp_peers")

  def node!,
    do: System.find_executable("node") || flunk("node is not on PATH (Node 20 is needed)")

  def everything!, do: js!("@modelcontextprotocol/server-everything/dist/index.js")

  def filesystem!, do: js!("@modelcontextprotocol/server-filesystem/dist/index.js")

  def python!, do: file!(Path.join(@peers, "venv/bin/python"))

  def tiny_server, do: Path.join(@root, "test/mcp_peers/tiny_server.py")
  def http_500_server, do: Path.join(@root, "test/mcp_peers/http_500.py")

  @doc "A stdio entry for the Python SDK server."
  def tiny(extra \\ %{}) do
    Map.merge(%{"command" => python!(), "args" => [tiny_server()]}, extra)
  end

  defp js!(rel), do: file!(Path.join([@peers, "node_modules", rel]))

  defp file!(path) do
    File.exists?(path) ||
      flunk("#{path} is missing: run `make mcp-peers` (test/mcp_peers/install.sh) first")

    path
  end

  @doc "A free loopback TCP port."
  def free_port do
    {:ok, sock} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(sock)
    :gen_tcp.close(sock)
    port
  end

  @doc """
  Starts an OS process this test owns (under the launcher, so it dies with
  the test process); returns the launcher handle.
  """
  def spawn_owned(executable, args, env) do
    alias SwarmService.Executor.Launcher
    {:ok, l} = Launcher.open(executable, args, env: Launcher.base_env(env), stderr: :stream)
    ExUnit.Callbacks.on_exit(fn -> Launcher.close(l) end)
    l
  end

  @doc "Live (non-zombie) OS processes whose environment holds `var=value`."
  def tagged(var, value) do
    needle = "#{var}=#{value}\0"

    for dir <- Path.wildcard("/proc/[0-9]*"),
        {:ok, env} <- [File.read(dir <> "/environ")],
        String.contains?(env, needle),
        not zombie?(dir),
        do: Path.basename(dir)
  end

  @doc "Whether an OS pid is alive (and not a zombie)."
  def alive?(os_pid), do: not zombie?("/proc/#{os_pid}")

  defp zombie?(dir) do
    case File.read(dir <> "/stat") do
      {:ok, stat} -> match?([_, " Z" <> _], String.split(stat, ")", parts: 2))
      _ -> true
    end
  end
end
