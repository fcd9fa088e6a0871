defmodule SwarmService.CLI.Runtime do
  @moduledoc """
  The node-side half of the command line: when a node was started by
  `mix swarm.server`, `mix swarm.mcp start` or the release's `ruv-swarm`
  script, this process (the first child of the application, so the last to
  stop) sets the node up and tears it down.

  On start it

    1. in detached mode, sends logs to `~/.ruv-swarm/logs/ruv-swarm.log`,
       rotated by size (`:logger_std_h`, 10 MB × 5 files), and stops
       logging to the console;
    2. starts distribution under the requested node name and cookie (over
       TLS when `RUV_SWARM_DIST_TLS` is set: see `SwarmService.CLI.DistTLS`;
       a VM not booted with the TLS flags refuses to start rather than fall
       back to clear text);
    3. claims the PID file, refusing to start when another live node holds it.

  On shutdown (SIGTERM, `System.stop/0`, application stop) it removes the PID
  file; when the whole VM is stopping it then halts at once rather than wait
  for OTP's own teardown (about a second, spent in kernel's `user` process). Nothing happens unless `RUV_SWARM_MANAGED=1`: nodes started from
  `iex -S mix` or tests leave no files behind.

  Everything is read from environment variables, so mix and release nodes
  are configured the same way: `RUV_SWARM_HOME`, `RUV_SWARM_MANAGED`,
  `RUV_SWARM_DAEMON`, `RUV_SWARM_NODE`, `RUV_SWARM_COOKIE`, `RUV_SWARM_PORT`,
  `RUV_SWARM_HEALTH_PORT`, `RUV_SWARM_DIST_TLS`.
  """
  use GenServer
  require Logger

  alias SwarmService.CLI.{DistTLS, Paths, PidFile}

  @log_handler :ruv_swarm_file
  @max_log_bytes 10 * 1024 * 1024
  @max_log_files 5

  @doc false
  @spec start_link(term()) :: GenServer.on_start() | :ignore
  def start_link(_arg) do
    if System.get_env("RUV_SWARM_MANAGED") == "1",
      do: GenServer.start_link(__MODULE__, [], name: __MODULE__),
      else: :ignore
  end

  @impl true
  def init([]) do
    Process.flag(:trap_exit, true)
    daemon? = System.get_env("RUV_SWARM_DAEMON") == "1"

    with {:ok, home} <- Paths.ensure_home(),
         :ok <- if(daemon?, do: log_to_files(Paths.log_dir(home)), else: :ok),
         :ok <- start_distribution(home),
         info = pid_info(home, daemon?),
         path = Paths.pid_file(home),
         {:ok, note} <- claim(path, info) do
      if note, do: Logger.warning(note)
      Logger.info("ruv-swarm node #{node()} running as pid #{info["pid"]}")
      {:ok, %{path: path, info: info}}
    else
      {:error, message} ->
        # Printed as well as logged: in a detached boot this is what
        # `start` shows the user from boot.log.
        IO.puts(:stderr, "ruv-swarm: #{message}")
        {:stop, {:shutdown, message}}
    end
  end

  @impl true
  # Exits of ports we opened (epmd) arrive here because exits are trapped.
  def handle_info({:EXIT, _port, _reason}, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{path: path, info: info}) do
    PidFile.release(path, info["pid"])

    # On SIGTERM (init:stop) the whole node is going down and, being the
    # first child, we are the last of this application to stop: the gateway
    # and the swarms have shut down in order already. What remains is OTP's
    # own teardown, where kernel's `user` process alone waits a full second.
    # Flush the logs and halt instead, so `stop` takes milliseconds.
    if match?({:stopping, _}, :init.get_status()) do
      Logger.info("ruv-swarm node #{node()} stopped")
      Logger.flush()
      filesync()
      :erlang.halt(0, flush: true)
    end

    :ok
  end

  # Only a detached node has the file handler.
  defp filesync do
    _ = :logger_std_h.filesync(@log_handler)
    :ok
  catch
    :exit, _ -> :ok
  end

  defp claim(path, info) do
    case PidFile.claim(path, info) do
      {:already_running, old} -> {:error, "already running (pid #{old["pid"]})"}
      other -> other
    end
  end

  defp pid_info(home, daemon?) do
    gateway_port = SwarmService.Health.gateway_port()
    health_port = SwarmService.HealthEndpoint.configured_port()

    %{
      "pid" => String.to_integer(System.pid()),
      "node" => Atom.to_string(node()),
      "started_at" =>
        DateTime.utc_now() |> DateTime.truncate(:millisecond) |> DateTime.to_iso8601(),
      "mode" => if(daemon?, do: "detached", else: "foreground"),
      "port" => gateway_port,
      "gateway_url" => gateway_port && "http://127.0.0.1:#{gateway_port}/mcp",
      "health_port" => health_port,
      "health_url" => health_port && "http://127.0.0.1:#{health_port}/health",
      "log_dir" => if(daemon?, do: Paths.log_dir(home)),
      "distribution" => if(DistTLS.configured(), do: "tls", else: "tcp"),
      "release" => System.get_env("RELEASE_ROOT")
    }
  end

  @doc false
  # Installs the rotating file handler. Options (for tests): :max_bytes,
  # :max_files, :console (keep console logging, default false).
  @spec log_to_files(Path.t(), keyword()) :: :ok | {:error, String.t()}
  def log_to_files(dir, opts \\ []) do
    config = %{
      config: %{
        file: String.to_charlist(Path.join(dir, "ruv-swarm.log")),
        max_no_bytes: Keyword.get(opts, :max_bytes, @max_log_bytes),
        max_no_files: Keyword.get(opts, :max_files, @max_log_files)
      },
      # Supervisor progress reports would drown the useful lines.
      filters: [progress: {&:logger_filters.progress/2, :stop}],
      formatter:
        {:logger_formatter,
         %{template: [:time, " [", :level, "] ", :msg, "\n"], single_line: true}}
    }

    _ = :logger.remove_handler(@log_handler)

    case :logger.add_handler(@log_handler, :logger_std_h, config) do
      :ok ->
        # Detached: stdout is boot.log, which is never rotated.
        unless Keyword.get(opts, :console, false), do: Logger.remove_backend(:console)
        :ok

      {:error, reason} ->
        {:error, "cannot log to #{dir}: #{inspect(reason)}"}
    end
  end

  defp start_distribution(home) do
    case System.get_env("RUV_SWARM_NODE") do
      nil -> :ok
      "" -> :ok
      name -> start_distribution(home, name)
    end
  end

  defp start_distribution(home, name) do
    with :ok <- DistTLS.check_vm(DistTLS.configured()),
         {:ok, cookie} <- cookie(home) do
      if Node.alive?() do
        # The release script already started distribution.
        Node.set_cookie(String.to_atom(cookie))
        :ok
      else
        ensure_epmd()
        type = if String.contains?(name, "."), do: :longnames, else: :shortnames

        case Node.start(String.to_atom(name), type) do
          {:ok, _} ->
            Node.set_cookie(String.to_atom(cookie))
            :ok

          {:error, reason} ->
            {:error, "cannot start distribution as #{name}: #{distribution_error(reason)}"}
        end
      end
    end
  end

  defp distribution_error({{:shutdown, {_, _, {:EXIT, :nodistribution}}}, _}),
    do: "epmd is not running"

  defp distribution_error({{:already_started, _}, _}), do: "already started"

  defp distribution_error(reason) do
    text = inspect(reason)

    if text =~ "duplicate_name",
      do: "the node name is already in use on this host",
      else: text
  end

  defp ensure_epmd do
    epmd =
      System.find_executable("epmd") ||
        Path.join([:code.root_dir(), "erts-#{:erlang.system_info(:version)}", "bin", "epmd"])

    _ = System.cmd(epmd, ["-daemon"], stderr_to_stdout: true)
    :ok
  rescue
    _ -> :ok
  end

  # --cookie / RUV_SWARM_COOKIE, else a random cookie generated once and kept
  # in the state directory (0600), so nodes are never left on a guessable one.
  defp cookie(home) do
    case System.get_env("RUV_SWARM_COOKIE") do
      cookie when is_binary(cookie) and cookie != "" ->
        {:ok, cookie}

      _ ->
        path = Paths.cookie_file(home)

        case File.read(path) do
          {:ok, cookie} when byte_size(cookie) > 0 ->
            {:ok, String.trim(cookie)}

          _ ->
            cookie = 24 |> :crypto.strong_rand_bytes() |> Base.url_encode64(padding: false)

            with :ok <- PidFile.write_private(path, cookie), do: {:ok, cookie}
        end
    end
  end
end
