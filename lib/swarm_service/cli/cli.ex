defmodule SwarmService.CLI do
  @moduledoc """
  The `ruv-swarm` command line: start, stop, status, restart and tools.

  The same code runs behind three front ends:

    * `mix swarm.server [OPTIONS]`: `start` in the foreground, like
      `mix phx.server`;
    * `mix swarm.mcp COMMAND [OPTIONS]` from a source tree;
    * `bin/ruv-swarm COMMAND [OPTIONS]` in a release built with
      `mix release` (an overlay script that runs `main/1` through the
      release's `eval`, so no source tree or Mix is needed).

  `main/1` returns the exit status instead of halting, so it can be tested
  in-process; the front ends halt with it. Exit statuses: 0 success, 1
  failure, 2 bad usage, 3 not running (`status`).

  ## Commands

      start [--detached] [--port P] [--health-port H] [--name NODE] [--cookie C]
            [--allow-command ENTRY]... [--allow-claude] [--mcp-config PATH]
      stop [--timeout MS]
      status
      restart [--port P] [--health-port H] [--name NODE] [--cookie C]
              [--allow-command ENTRY]... [--timeout MS]
      tools

  State lives in `$RUV_SWARM_HOME` (default `~/.ruv-swarm`): the PID file,
  the cookie, the logs and the settings of the last `start`, which
  `restart` reuses (`SwarmService.CLI.Settings`). See `SwarmService.CLI.Paths`.

  `--allow-command ENTRY` (repeatable) adds an entry to the commands gateway
  clients may start as agents, in the format of
  `SwarmService.Executor.Allowlist`, to those of `RUV_SWARM_COMMAND_ALLOWLIST`.

  `--mcp-config PATH` starts the external MCP servers of a Claude Desktop
  `mcpServers` file with the node (as `RUV_SWARM_MCP_SERVERS=PATH` does);
  see `SwarmService.McpServers`.

  `RUV_SWARM_DIST_TLS=<options file>` runs distribution over TLS; `start`
  checks the file before launching anything. See `SwarmService.CLI.DistTLS`.
  """

  alias SwarmService.CLI.{Daemon, DistTLS, HealthClient, OSProcess, Paths, PidFile, Settings}
  alias SwarmService.Executor.Allowlist

  @default_port 4102
  @default_health_port 9898
  @default_name "ruv_swarm@127.0.0.1"
  @default_stop_timeout 10_000

  @switches [
    detached: :boolean,
    port: :integer,
    health_port: :integer,
    name: :string,
    cookie: :string,
    timeout: :integer,
    allow_command: :keep,
    allow_claude: :boolean,
    mcp_config: :string,
    help: :boolean
  ]
  @allowed %{
    "start" => [
      :detached,
      :port,
      :health_port,
      :name,
      :cookie,
      :allow_command,
      :allow_claude,
      :mcp_config
    ],
    "stop" => [:timeout],
    "status" => [],
    "restart" => [:port, :health_port, :name, :cookie, :allow_command, :allow_claude, :timeout],
    "tools" => []
  }

  @usage """
  usage: ruv-swarm COMMAND [OPTIONS]
         (from a source tree: mix swarm.mcp COMMAND [OPTIONS]; mix swarm.server = start)

  commands:
    start     start a node (in the foreground unless --detached)
    stop      stop the running node: SIGTERM, then SIGKILL after --timeout
    status    show the running node; exit 0 when running, 3 when not
    restart   stop the running node, then start it detached with the settings
              (flags and RUV_SWARM_* environment) it was started with; flags
              given to restart replace the stored ones
    tools     list the MCP tools with one-line descriptions

  options:
    -d, --detached       run in the background, logging to $RUV_SWARM_HOME/logs
    --port P             gateway port (default 4102)
    --health-port P      health endpoint port (default 9898)
    --name NODE          distributed node name (default ruv_swarm@127.0.0.1)
    --cookie C           distribution cookie (default: generated, kept in $RUV_SWARM_HOME/cookie)
    --allow-command E    let gateway clients start command E as an agent (repeatable;
                         "tr", "tr a-z A-Z" or "grep -F *", see the README)
    --allow-claude       let gateway clients spawn Claude Code agents (agent_spawn executor claude)
    --mcp-config PATH    start the MCP servers of a Claude Desktop mcpServers file with the node
    --timeout MS         stop/restart: grace period before SIGKILL (default 10000)

  environment:
    RUV_SWARM_HOME       state directory (default ~/.ruv-swarm)
    RUV_SWARM_DIST_TLS   an ssl_dist options file: node-to-node distribution over TLS
  """

  @typedoc "Process exit status."
  @type exit_code :: 0..255

  @doc """
  Runs a command and returns its exit status. A foreground `start` does not
  return while the node runs: the VM exits when the node stops.
  """
  @spec main([String.t()]) :: exit_code
  def main(argv) do
    case parse(argv) do
      {:ok, :help} ->
        IO.write(@usage)
        0

      {:ok, command, opts} ->
        run(command, opts)

      {:error, message} ->
        IO.puts(:stderr, "ruv-swarm: #{message}\n\n#{@usage}")
        2
    end
  end

  @doc """
  Entry point of the release script `bin/ruv-swarm`: reads the arguments
  from `RUV_SWARM_ARGV` (one per line) and halts with the exit status.
  """
  @spec release_main() :: no_return()
  def release_main do
    argv =
      case System.get_env("RUV_SWARM_ARGV", "") do
        "" -> []
        text -> String.split(text, "\n")
      end

    System.halt(main(argv))
  end

  @doc """
  Parses and validates a command line. Returns `{:ok, command, options}`,
  `{:ok, :help}` or `{:error, message}`.
  """
  @spec parse([String.t()]) :: {:ok, String.t(), keyword()} | {:ok, :help} | {:error, String.t()}
  def parse(argv) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @switches, aliases: [d: :detached])

    cond do
      invalid != [] ->
        {:error, invalid_message(invalid)}

      opts[:help] || rest in [["help"], []] ->
        if rest == [] and not Keyword.has_key?(opts, :help),
          do: {:error, "missing command"},
          else: {:ok, :help}

      true ->
        [command | extra] = rest

        with {:ok, allowed} <- command_options(command),
             :ok <- no_extra(command, extra),
             :ok <- only(command, opts, allowed),
             :ok <- validate(opts) do
          {:ok, command, collect_allow_commands(opts)}
        end
    end
  end

  defp invalid_message([{flag, nil} | _]), do: "unknown option #{flag}"
  defp invalid_message([{flag, value} | _]), do: "invalid value for #{flag}: #{inspect(value)}"

  defp command_options(command) do
    case Map.fetch(@allowed, command) do
      {:ok, allowed} -> {:ok, allowed}
      :error -> {:error, "unknown command #{inspect(command)}"}
    end
  end

  defp no_extra(_command, []), do: :ok

  defp no_extra(command, extra),
    do: {:error, "unexpected argument for #{command}: #{Enum.join(extra, " ")}"}

  defp only(command, opts, allowed) do
    case Enum.find(Keyword.keys(opts), &(&1 not in allowed)) do
      nil -> :ok
      key -> {:error, "#{flag(key)} is not an option of #{command}"}
    end
  end

  defp validate(opts) do
    cond do
      bad_port?(opts[:port]) ->
        {:error, "--port must be between 1 and 65535"}

      bad_port?(opts[:health_port]) ->
        {:error, "--health-port must be between 1 and 65535"}

      opts[:port] && opts[:port] == opts[:health_port] ->
        {:error, "--port and --health-port must differ"}

      opts[:timeout] && opts[:timeout] < 0 ->
        {:error, "--timeout must not be negative"}

      opts[:name] && not valid_name?(opts[:name]) ->
        {:error, "--name must look like name@host (letters, digits, _ and -)"}

      opts[:cookie] == "" ->
        {:error, "--cookie must not be empty"}

      opts[:mcp_config] && not File.regular?(opts[:mcp_config]) ->
        {:error, "--mcp-config #{opts[:mcp_config]}: no such file"}

      true ->
        opts |> Keyword.get_values(:allow_command) |> Enum.find_value(:ok, &bad_entry/1)
    end
  end

  # The node gets the entries comma-separated (RUV_SWARM_COMMAND_ALLOWLIST).
  defp bad_entry(entry) do
    case Allowlist.parse(entry) do
      {:ok, _} ->
        if String.contains?(entry, ","),
          do: {:error, "--allow-command #{inspect(entry)}: an entry cannot contain a comma"},
          else: nil

      {:error, why} ->
        {:error, "--allow-command #{inspect(entry)}: #{why}"}
    end
  end

  defp collect_allow_commands(opts) do
    case Keyword.get_values(opts, :allow_command) do
      [] -> opts
      entries -> opts |> Keyword.delete(:allow_command) |> Keyword.put(:allow_commands, entries)
    end
  end

  defp bad_port?(nil), do: false
  defp bad_port?(port), do: port not in 1..65_535

  defp valid_name?(name), do: name =~ ~r/^[A-Za-z0-9_-]+(@[A-Za-z0-9_.-]+)?$/

  defp flag(key), do: "--" <> String.replace(Atom.to_string(key), "_", "-")

  # ---------------------------------------------------------------- commands

  defp run("start", opts), do: with_home(&start(&1, opts))
  defp run("stop", opts), do: with_home(&stop(&1, opts))
  defp run("status", _opts), do: with_home(&status/1)
  defp run("restart", opts), do: with_home(&restart(&1, opts))
  defp run("tools", _opts), do: tools()

  defp with_home(fun) do
    case Paths.ensure_home() do
      {:ok, home} -> fun.(home)
      {:error, message} -> fail(message)
    end
  end

  defp start(home, opts) do
    settings = settings(opts)
    pid_file = Paths.pid_file(home)

    with :ok <- check_tls(settings.dist_tls, opts[:detached]),
         :ok <- check_not_running(pid_file),
         :ok <- check_port(settings.port, "gateway", "--port"),
         :ok <- check_port(settings.health_port, "health endpoint", "--health-port"),
         :ok <- save_settings(home, settings) do
      if opts[:detached],
        do: start_detached(home, settings),
        else: start_foreground(home, settings)
    else
      {:error, message} -> fail(message)
    end
  end

  # A detached node is this CLI started again in the foreground by `start`,
  # which has saved the settings as given: the node's own environment
  # carries them merged (the allow-list), so it keeps the file as it is.
  defp save_settings(home, settings) do
    if System.get_env("RUV_SWARM_DAEMON") == "1", do: :ok, else: Settings.save(home, settings)
  end

  defp settings(opts) do
    %{
      port: opts[:port] || @default_port,
      health_port: opts[:health_port] || @default_health_port,
      name: opts[:name] || @default_name,
      cookie: opts[:cookie],
      allow_commands: Keyword.get(opts, :allow_commands, []),
      allow_claude: Keyword.get(opts, :allow_claude, false),
      mcp_config: opts[:mcp_config] && Path.expand(opts[:mcp_config]),
      # restart passes the environment the node was first started with.
      env: Keyword.get_lazy(opts, :env, &Settings.environment/0),
      dist_tls: DistTLS.configured()
    }
  end

  defp check_tls(nil, _detached?), do: :ok
  # A detached node is a VM we launch, with the flags (node_command/1).
  defp check_tls(path, true), do: DistTLS.validate(path)
  # In the foreground this VM becomes the node: it must have booted with them.
  defp check_tls(path, _), do: DistTLS.check_vm(path)

  defp node_env(home, settings) do
    allowlist =
      case settings.allow_commands do
        [] ->
          []

        entries ->
          given = Map.get(settings.env, "RUV_SWARM_COMMAND_ALLOWLIST", "")
          [{"RUV_SWARM_COMMAND_ALLOWLIST", Enum.join([given | entries], ",")}]
      end

    Map.to_list(settings.env) ++
      allowlist ++
      if(settings.allow_claude, do: [{"RUV_SWARM_ALLOW_CLAUDE", "on"}], else: []) ++
      if(settings[:mcp_config], do: [{"RUV_SWARM_MCP_SERVERS", settings.mcp_config}], else: []) ++
      [
        {"RUV_SWARM_HOME", home},
        {"RUV_SWARM_MANAGED", "1"},
        # A node started from the command line always serves the gateway
        # (test config turns it off for ExUnit's own node).
        {"RUV_SWARM_GATEWAY", "on"},
        {"RUV_SWARM_PORT", Integer.to_string(settings.port)},
        {"RUV_SWARM_HEALTH_PORT", Integer.to_string(settings.health_port)},
        {"RUV_SWARM_NODE", settings.name}
      ] ++
      if(settings.cookie, do: [{"RUV_SWARM_COOKIE", settings.cookie}], else: []) ++
      if(settings.dist_tls, do: [{"RUV_SWARM_DIST_TLS", settings.dist_tls}], else: [])
  end

  defp check_not_running(pid_file) do
    case PidFile.state(pid_file) do
      :none ->
        :ok

      {:stale, old} ->
        PidFile.remove(pid_file)
        IO.puts("ruv-swarm: removed stale PID file (#{PidFile.stale_reason(old)})")
        :ok

      {:running, info} ->
        {:error, "already running (pid #{info["pid"]})"}

      {:error, _} = error ->
        error
    end
  end

  defp check_port(port, what, flag) do
    case :gen_tcp.listen(port, [:binary, ip: {127, 0, 0, 1}, reuseaddr: true]) do
      {:ok, socket} ->
        :gen_tcp.close(socket)
        :ok

      {:error, :eaddrinuse} ->
        {:error, "port #{port} (#{what}) is already in use; choose another with #{flag}"}

      {:error, :eacces} ->
        {:error, "no permission to listen on port #{port} (#{what}); choose another with #{flag}"}

      {:error, reason} ->
        {:error, "cannot listen on port #{port} (#{what}): #{:inet.format_error(reason)}"}
    end
  end

  defp start_foreground(home, settings) do
    Enum.each(node_env(home, settings), fn {k, v} -> System.put_env(k, v) end)
    # config/runtime.exs has already read the environment in this VM, so the
    # gateway settings also go straight into the application environment,
    # persistent: in a release's `eval` the application is not loaded yet,
    # and loading it would put back the port of the configuration.
    _ = Application.load(:swarm_service)
    gateway = Application.get_env(:swarm_service, InterfaceService, [])
    gateway = Keyword.merge(gateway, enabled: true, port: settings.port)

    gateway =
      if settings.allow_claude, do: Keyword.put(gateway, :allow_claude, true), else: gateway

    Application.put_env(:swarm_service, InterfaceService, gateway, persistent: true)
    allowlist = Application.get_env(:swarm_service, :command_allowlist, [])

    Application.put_env(:swarm_service, :command_allowlist, allowlist ++ settings.allow_commands,
      persistent: true
    )

    case Application.ensure_all_started(:swarm_service, :permanent) do
      {:ok, _} ->
        IO.puts("""
        ruv-swarm node #{node()} running in the foreground (pid #{System.pid()})
          gateway: http://127.0.0.1:#{settings.port}/mcp
          health:  http://127.0.0.1:#{settings.health_port}/health
        stop with Ctrl-C twice, or `stop` from another shell\
        """)

        # The node runs until the VM is told to stop (SIGTERM, System.stop/0).
        Process.sleep(:infinity)

      {:error, reason} ->
        fail("the node failed to start: #{format_start_error(reason)}")
    end
  end

  defp format_start_error({_app, {{:shutdown, {:failed_to_start_child, _, {:shutdown, msg}}}, _}})
       when is_binary(msg),
       do: msg

  defp format_start_error(reason), do: inspect(reason)

  defp start_detached(home, settings) do
    pid_file = Paths.pid_file(home)
    boot_log = Path.join(Paths.log_dir(home), "boot.log")
    {argv, dir, timeout} = node_command(settings)
    env = [{"RUV_SWARM_DAEMON", "1"} | node_env(home, settings)]
    started = System.monotonic_time(:millisecond)

    with {:ok, pid} <- Daemon.launch(argv, env, dir, boot_log) do
      # Who we launched: only that process is ever stopped below.
      launched =
        case OSProcess.identity(pid) do
          {:ok, identity} -> Map.put(identity, "pid", pid)
          :error -> %{"pid" => pid}
        end

      case Daemon.await_healthy(pid, pid_file, settings.health_port, timeout) do
        {:ok, report} ->
          ms = System.monotonic_time(:millisecond) - started

          IO.puts("""
          ruv-swarm started: node #{report["node"]}, pid #{pid} (healthy after #{ms} ms)
            gateway: http://127.0.0.1:#{settings.port}/mcp
            health:  http://127.0.0.1:#{settings.health_port}/health
            logs:    #{Paths.log_dir(home)}\
          """)

          0

        {:error, :exited} ->
          fail("the node exited while starting; its output:\n" <> Daemon.tail(boot_log, 25))

        {:error, :timeout} ->
          # Nothing half-started is left behind.
          _ = Daemon.stop(launched, 2_000)
          PidFile.release(pid_file, pid)
          fail("the node did not become healthy within #{div(timeout, 1000)} s; see #{boot_log}")
      end
    else
      {:error, message} -> fail(message)
    end
  end

  # The command that runs this same CLI in the foreground in a new VM.
  defp node_command(settings) do
    args =
      ["--port", "#{settings.port}", "--health-port", "#{settings.health_port}"] ++
        ["--name", settings.name]

    case System.get_env("RELEASE_ROOT") do
      root when is_binary(root) and root != "" ->
        # The release's env.sh adds the TLS flags from RUV_SWARM_DIST_TLS.
        {[Path.join([root, "bin", "ruv-swarm"]), "start" | args], root, 30_000}

      _ ->
        elixir = System.find_executable("elixir") || "elixir"

        erl =
          if settings.dist_tls,
            do: ["--erl", Enum.join(DistTLS.erl_flags(settings.dist_tls), " ")],
            else: []

        # A source-tree node may have to compile first: give it longer.
        {[elixir | erl] ++ ["-S", "mix", "swarm.server" | args], project_dir(), 120_000}
    end
  end

  defp project_dir do
    mix = Module.concat([Mix, Project])

    if Code.ensure_loaded?(mix) and mix.get(),
      do: Path.dirname(mix.project_file()),
      else: File.cwd!()
  end

  defp stop(home, opts) do
    pid_file = Paths.pid_file(home)
    timeout = opts[:timeout] || @default_stop_timeout

    case PidFile.state(pid_file) do
      :none ->
        IO.puts("ruv-swarm: not running")
        0

      {:stale, old} ->
        PidFile.remove(pid_file)

        IO.puts(
          "ruv-swarm: not running (removed stale PID file for pid #{old["pid"]}: " <>
            "#{PidFile.stale_reason(old)})"
        )

        0

      {:error, message} ->
        fail(message)

      {:running, %{"pid" => pid} = info} ->
        case Daemon.stop(info, timeout) do
          {:stopped, ms} ->
            IO.puts("ruv-swarm: stopped (pid #{pid}) in #{ms} ms")
            0

          {:killed, ms} ->
            # The node could not clean up after itself.
            PidFile.release(pid_file, pid)
            IO.puts("ruv-swarm: pid #{pid} ignored SIGTERM for #{timeout} ms; killed (#{ms} ms)")
            0

          {:error, message} ->
            fail("cannot stop pid #{pid}: #{message}")
        end
    end
  end

  defp restart(home, opts) do
    case stored_settings(home) do
      {:ok, stored} ->
        {start_opts, env} = Settings.for_restart(stored, opts, Settings.environment())

        case stop(home, Keyword.take(opts, [:timeout])) do
          0 -> start(home, [detached: true, env: env] ++ start_opts)
          code -> code
        end

      {:error, message} ->
        fail(message)
    end
  end

  # The settings of the last start; for a node started before settings were
  # kept, the ports and name its PID file records.
  defp stored_settings(home) do
    case Settings.load(home) do
      :none ->
        case PidFile.read(Paths.pid_file(home)) do
          {:ok, info} ->
            {:ok,
             %{port: info["port"], health_port: info["health_port"], name: info["node"]}
             |> Map.reject(fn {_k, v} -> v in [nil, "nonode@nohost"] end)}

          _ ->
            {:ok, %{}}
        end

      other ->
        other
    end
  end

  defp status(home) do
    case PidFile.state(Paths.pid_file(home)) do
      :none ->
        IO.puts("ruv-swarm: not running")
        3

      {:stale, old} ->
        PidFile.remove(Paths.pid_file(home))

        IO.puts(
          "ruv-swarm: not running (removed stale PID file for pid #{old["pid"]}: " <>
            "#{PidFile.stale_reason(old)})"
        )

        3

      {:error, message} ->
        fail(message)

      {:running, info} ->
        print_status(info, health(info))
        0
    end
  end

  defp health(%{"health_port" => port}) when is_integer(port) do
    started = System.monotonic_time(:microsecond)
    result = HealthClient.get(port)
    {result, (System.monotonic_time(:microsecond) - started) / 1000}
  end

  defp health(_), do: {{:error, "no health port recorded"}, 0}

  defp print_status(info, {health, ms}) do
    report =
      case health do
        {:ok, _code, report} -> report
        _ -> %{}
      end

    health_line =
      case health do
        {:ok, _code, r} -> "#{r["status"]} (#{info["health_url"]}, #{Float.round(ms, 1)} ms)"
        {:error, reason} -> "unreachable (#{reason})"
      end

    gateway_line =
      case report["gateway_up"] do
        true -> "#{info["gateway_url"]} (up)"
        false -> "#{info["gateway_url"]} (not accepting connections)"
        nil -> "#{info["gateway_url"] || "none"}"
      end

    tasks =
      case report["tasks"] do
        %{} = t -> Enum.map_join(~w(pending running completed failed), ", ", &"#{t[&1]} #{&1}")
        _ -> "unknown"
      end

    rows = [
      {"pid", info["pid"]},
      {"node", report["node"] || info["node"]},
      {"uptime", uptime(info["started_at"])},
      {"mode", info["mode"]},
      {"gateway", gateway_line},
      {"health", health_line},
      {"swarms", report["swarms"] || "unknown"},
      {"agents", report["agents"] || "unknown"},
      {"tasks", tasks},
      {"dist", info["distribution"] || "tcp"},
      {"logs", info["log_dir"] || "terminal"}
    ]

    IO.puts("ruv-swarm is running")
    Enum.each(rows, fn {k, v} -> IO.puts("  " <> String.pad_trailing("#{k}:", 9) <> "#{v}") end)
  end

  defp uptime(started_at) when is_binary(started_at) do
    case DateTime.from_iso8601(started_at) do
      {:ok, t, _} ->
        s = max(DateTime.diff(DateTime.utc_now(), t), 0)
        "#{div(s, 3600)}h #{div(rem(s, 3600), 60)}m #{rem(s, 60)}s"

      _ ->
        "unknown"
    end
  end

  defp uptime(_), do: "unknown"

  defp tools do
    defs = InterfaceService.Tools.definitions()
    width = defs |> Enum.map(&String.length(to_string(&1.name))) |> Enum.max(fn -> 0 end)

    Enum.each(defs, fn %{name: name, description: description} ->
      IO.puts(String.pad_trailing(to_string(name), width + 2) <> first_line(description))
    end)

    0
  end

  defp first_line(text) do
    text |> to_string() |> String.split(["\n", ". "], parts: 2) |> hd() |> String.trim()
  end

  defp fail(message) do
    IO.puts(:stderr, "ruv-swarm: #{message}")
    1
  end
end
