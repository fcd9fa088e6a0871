defmodule SwarmService.CLI.Paths do
  @moduledoc """
  Where a node managed by the command line keeps its state.

  The state directory is `$RUV_SWARM_HOME` when set, otherwise
  `$HOME/.ruv-swarm`. It holds:

    * `mcp-server.pid`: the PID file of the running node (JSON, mode 0600)
    * `mcp-server.pid.lock`: held only while a PID file is being claimed
    * `cookie`: the distribution cookie generated on first start (mode 0600)
    * `logs/`: rotating logs of detached nodes (`ruv-swarm.log*`) and
      `boot.log`, the raw output of the VM while it boots

  The base (`$HOME`, or the parent of `$RUV_SWARM_HOME`) must already exist:
  a typo in the override should fail loudly, not create a tree elsewhere.
  """

  @typedoc "A reason a person can act on."
  @type error :: {:error, String.t()}

  @doc "The state directory, without touching the file system."
  @spec home() :: {:ok, Path.t()} | error
  def home do
    case {env("RUV_SWARM_HOME"), env("HOME")} do
      {nil, nil} ->
        {:error, "cannot find a home directory: set HOME or RUV_SWARM_HOME"}

      {nil, home} ->
        if File.dir?(home),
          do: {:ok, Path.join(Path.expand(home), ".ruv-swarm")},
          else: {:error, "home directory #{home} does not exist (set HOME or RUV_SWARM_HOME)"}

      {override, _} ->
        dir = Path.expand(override)
        parent = Path.dirname(dir)

        if File.dir?(parent),
          do: {:ok, dir},
          else: {:error, "RUV_SWARM_HOME=#{override}: parent directory #{parent} does not exist"}
    end
  end

  @doc "Creates the state directory (mode 0700) if needed and returns it."
  @spec ensure_home() :: {:ok, Path.t()} | error
  def ensure_home do
    with {:ok, dir} <- home(),
         :ok <- mkdir(dir),
         :ok <- mkdir(Path.join(dir, "logs")) do
      {:ok, dir}
    end
  end

  @doc "Path of the PID file inside `home`."
  @spec pid_file(Path.t()) :: Path.t()
  def pid_file(home), do: Path.join(home, "mcp-server.pid")

  @doc "Directory of the log files inside `home`."
  @spec log_dir(Path.t()) :: Path.t()
  def log_dir(home), do: Path.join(home, "logs")

  @doc "Path of the generated distribution cookie inside `home`."
  @spec cookie_file(Path.t()) :: Path.t()
  def cookie_file(home), do: Path.join(home, "cookie")

  @doc "Explains a POSIX error on `path` in words."
  @spec describe(Path.t(), atom() | term()) :: String.t()
  def describe(path, :eacces), do: "#{path}: permission denied"
  def describe(path, :erofs), do: "#{path}: read-only file system"
  def describe(path, :enospc), do: "#{path}: no space left on device"
  def describe(path, :enoent), do: "#{path}: no such file or directory"
  def describe(path, :enotdir), do: "#{path}: a parent is not a directory"
  def describe(path, :eisdir), do: "#{path}: is a directory"
  def describe(path, reason) when is_atom(reason), do: "#{path}: #{:file.format_error(reason)}"
  def describe(path, reason), do: "#{path}: #{inspect(reason)}"

  defp mkdir(dir) do
    case File.mkdir(dir) do
      :ok ->
        # Owner-only: the directory holds the cookie and the PID file.
        _ = File.chmod(dir, 0o700)
        :ok

      {:error, :eexist} ->
        if File.dir?(dir), do: :ok, else: {:error, describe(dir, :enotdir)}

      {:error, reason} ->
        {:error, "cannot create #{describe(dir, reason)}"}
    end
  end

  defp env(name) do
    case System.get_env(name) do
      nil -> nil
      "" -> nil
      value -> value
    end
  end
end
