# Lifecycle benchmark of a command-line-managed node.
#
#   mix run --no-start bench/lifecycle.exs            # node from the source tree (elixir -S mix)
#   MIX_ENV=prod mix release && \
#     mix run --no-start bench/lifecycle.exs --release _build/prod/rel/swarm_service
#
# Measures, over several runs of a detached node on free loopback ports:
#   * start -> healthy: from launching the node's VM to /health answering "ok"
#     (gateway accepting connections), and the wall time of the whole
#     `start --detached` command including the CLI's own VM (release only);
#   * stop -> exit: from SIGTERM to the process being gone;
#   * resident memory when idle and after one swarm with five agents;
#   * /health latency p50/p99 over fresh connections.
# Prints a table and one JSON line. Numbers depend on the machine: read the
# ratios to the goals, not the absolutes.

Code.require_file("percentile.exs", __DIR__)
Code.require_file("rss.exs", __DIR__)
alias SwarmService.CLI.{Daemon, HealthClient, OSProcess}

{opts, _, _} =
  OptionParser.parse(System.argv(), strict: [release: :string, runs: :integer, requests: :integer])

runs = opts[:runs] || 5
requests = opts[:requests] || 2_000
release = opts[:release] && Path.expand(opts[:release])

{:ok, _} = Application.ensure_all_started(:inets)
{:ok, _} = Application.ensure_all_started(:jiffy)

defmodule Bench.Lifecycle do
  def free_port do
    {:ok, s} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, p} = :inet.port(s)
    :gen_tcp.close(s)
    p
  end

  def ms(native), do: System.convert_time_unit(native, :native, :microsecond) / 1000

  def node_argv(nil, port, health, name) do
    {[System.find_executable("elixir"), "-S", "mix", "swarm.server"] ++ args(port, health, name),
     File.cwd!()}
  end

  def node_argv(release, port, health, name) do
    {[Path.join([release, "bin", "ruv-swarm"]), "start"] ++ args(port, health, name), release}
  end

  defp args(port, health, name), do: ~w(--port #{port} --health-port #{health} --name #{name})
end

home = Path.join(System.tmp_dir!(), "ruv-swarm-bench-#{System.unique_integer([:positive])}")
File.mkdir_p!(Path.join(home, "logs"))
alias Bench.Lifecycle, as: B

samples =
  for run <- 1..runs do
    [port, health] = [B.free_port(), B.free_port()]
    name = "bench_#{run}_#{System.unique_integer([:positive])}@127.0.0.1"
    {argv, dir} = B.node_argv(release, port, health, name)

    env = [
      {"RUV_SWARM_HOME", home},
      {"RUV_SWARM_MANAGED", "1"},
      {"RUV_SWARM_DAEMON", "1"},
      {"RUV_SWARM_GATEWAY", "on"},
      {"RUV_SWARM_PORT", "#{port}"},
      {"RUV_SWARM_HEALTH_PORT", "#{health}"},
      {"RUV_SWARM_NODE", name}
    ]

    t0 = System.monotonic_time()
    {:ok, pid} = Daemon.launch(argv, env, dir, Path.join([home, "logs", "boot.log"]))
    {:ok, _} = Daemon.await_healthy(pid, Path.join(home, "mcp-server.pid"), health, 120_000)
    start_ms = B.ms(System.monotonic_time() - t0)

    Process.sleep(1_000)
    idle = Bench.Rss.mib(pid)

    body = ~s({"topology": "mesh", "agents": 5})
    url = ~c"http://127.0.0.1:#{port}/api/mcp/swarm_init"

    {:ok, {{_, 200, _}, _, _}} =
      :httpc.request(:post, {url, [], ~c"application/json", body}, [], [])

    {:ok, 200, %{"agents" => 5}} = HealthClient.get(health)
    loaded = Bench.Rss.mib(pid)

    latencies =
      if run == 1 do
        for _ <- 1..requests do
          t = System.monotonic_time()
          {:ok, 200, _} = HealthClient.get(health)
          B.ms(System.monotonic_time() - t)
        end
      else
        []
      end

    {:ok, info} = SwarmService.CLI.PidFile.read(Path.join(home, "mcp-server.pid"))
    {:stopped, stop_ms} = Daemon.stop(info, 10_000)
    false = OSProcess.alive?(pid)

    %{
      start_ms: start_ms,
      stop_ms: stop_ms,
      idle_mb: idle,
      loaded_mb: loaded,
      latencies: latencies
    }
  end

# Whole-command timings from a release: CLI VM + node boot, and CLI stop.
command =
  if release do
    cli = Path.join([release, "bin", "ruv-swarm"])
    env = [{"RUV_SWARM_HOME", home}]
    [port, health] = [B.free_port(), B.free_port()]
    t0 = System.monotonic_time()

    {_, 0} =
      System.cmd(
        cli,
        ~w(start --detached --port #{port} --health-port #{health} --name bench_cmd@127.0.0.1),
        env: env
      )

    start_cmd = B.ms(System.monotonic_time() - t0)
    t1 = System.monotonic_time()
    {_, 0} = System.cmd(cli, ["stop"], env: env)
    %{start_cmd_ms: start_cmd, stop_cmd_ms: B.ms(System.monotonic_time() - t1)}
  else
    %{}
  end

File.rm_rf!(home)

median = fn list -> list |> Enum.sort() |> Bench.Percentile.of(0.5) end
lat = samples |> Enum.flat_map(& &1.latencies) |> Enum.sort()

result =
  %{
    source: if(release, do: "release", else: "mix"),
    runs: runs,
    start_to_healthy_ms_p50: median.(Enum.map(samples, & &1.start_ms)),
    start_to_healthy_ms_max: Enum.max(Enum.map(samples, & &1.start_ms)),
    stop_to_exit_ms_p50: median.(Enum.map(samples, & &1.stop_ms)),
    stop_to_exit_ms_max: Enum.max(Enum.map(samples, & &1.stop_ms)),
    rss_idle_mb_p50: median.(Enum.map(samples, & &1.idle_mb)),
    rss_swarm5_mb_p50: median.(Enum.map(samples, & &1.loaded_mb)),
    health_requests: length(lat),
    health_ms_p50: Bench.Percentile.of(lat, 0.5),
    health_ms_p99: Bench.Percentile.of(lat, 0.99)
  }
  |> Map.merge(command)

goals = [
  start_to_healthy_ms_p50: {1000, "start -> healthy (goal <= 1000 ms from a release)"},
  stop_to_exit_ms_p50: {500, "stop -> exit (goal <= 500 ms)"},
  rss_idle_mb_p50: {50, "RSS idle (goal <= 50 MB)"},
  rss_swarm5_mb_p50: {nil, "RSS, 1 swarm x 5 agents"},
  health_ms_p50: {nil, "/health p50"},
  health_ms_p99: {2, "/health p99 (goal <= 2 ms)"},
  start_cmd_ms: {nil, "`ruv-swarm start --detached` wall time"},
  stop_cmd_ms: {nil, "`ruv-swarm stop` wall time"}
]

IO.puts("\nlifecycle (#{result.source}, #{runs} runs, #{length(lat)} health requests)")

for {key, {goal, label}} <- goals, Map.has_key?(result, key) do
  value = Map.fetch!(result, key)
  ratio = if goal, do: "  #{Float.round(value / goal, 2)}x of goal", else: ""

  IO.puts(
    "  " <>
      String.pad_trailing(label, 48) <>
      String.pad_leading(:erlang.float_to_binary(value / 1, decimals: 2), 9) <> ratio
  )
end

IO.puts(:jiffy.encode(Map.put(result, :bench, "lifecycle"), [:use_nil]))
