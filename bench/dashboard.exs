# What an open dashboard costs the node: the same paced load (many swarms,
# many agents, a steady task rate) measured for the same time without and
# with dashboard clients connected over /ws, reporting the node's CPU (the
# OS process: every scheduler, dirty scheduler and engine thread) and the
# schedulers' busy share in each phase, and what the clients received.
#
#     MIX_ENV=test mix run bench/dashboard.exs
#     QUICK=1 MIX_ENV=test mix run bench/dashboard.exs
#     SWARMS=100 AGENTS=100 RATE=1000 SECONDS=20 CLIENTS=1 MIX_ENV=test mix run bench/dashboard.exs
#
# Goal (issue 14): with 100 swarms x 100 agents and 1,000 tasks/s, the
# extra CPU for the dashboard stays under 5 % of the machine.

alias SwarmService.RuvSwarm

defmodule Bench.Echo do
  @behaviour SwarmService.Executor
  def run(%{input: input}, _ctx), do: {:ok, input}
end

defmodule Bench.DashboardClient do
  # A browser stand-in: upgrades /ws, joins the dashboard and reads
  # (and counts) whatever arrives, parsing nothing.
  def start(port) do
    parent = self()
    pid = spawn_link(fn -> init(port, parent) end)

    receive do
      {:joined, ^pid} -> pid
    after
      10_000 -> raise "the dashboard client did not connect"
    end
  end

  def stats(pid) do
    send(pid, {:stats, self()})

    receive do
      {:stats, ^pid, bytes, reads} -> {bytes, reads}
    end
  end

  defp init(port, parent) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false])
    key = Base.encode64(:crypto.strong_rand_bytes(16))

    :ok =
      :gen_tcp.send(
        sock,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" <>
          "Sec-WebSocket-Key: #{key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
      )

    {:ok, "HTTP/1.1 101" <> _} = :gen_tcp.recv(sock, 0, 5_000)
    text = ~s({"op":"dashboard"})
    mask = :crypto.strong_rand_bytes(4)
    pad = binary_part(:binary.copy(mask, 10), 0, byte_size(text))

    :ok =
      :gen_tcp.send(sock, [
        <<1::1, 0::3, 1::4, 1::1, byte_size(text)::7>>,
        mask,
        :crypto.exor(text, pad)
      ])

    :inet.setopts(sock, active: :once)
    send(parent, {:joined, self()})
    loop(sock, 0, 0)
  end

  defp loop(sock, bytes, reads) do
    receive do
      {:tcp, ^sock, data} ->
        :inet.setopts(sock, active: :once)
        loop(sock, bytes + byte_size(data), reads + 1)

      {:stats, from} ->
        send(from, {:stats, self(), bytes, reads})
        loop(sock, 0, 0)

      {:tcp_closed, ^sock} ->
        exit(:closed)
    end
  end
end

defmodule Bench.Dashboard do
  def env(name, default), do: String.to_integer(System.get_env(name, Integer.to_string(default)))

  def os_cpu_ticks do
    [_pid, _comm | rest] =
      File.read!("/proc/#{System.pid()}/stat")
      |> String.split(") ", parts: 2)
      |> then(fn [a, b] -> [a, "x" | String.split(b)] end)

    # Fields after the command: state is the 1st, utime the 12th, stime the 13th.
    utime = String.to_integer(Enum.at(rest, 11))
    stime = String.to_integer(Enum.at(rest, 12))
    utime + stime
  end

  # Runs `rate` tasks/s spread over the swarms for `seconds`, measuring CPU.
  def phase(swarms, rate, seconds) do
    :erlang.system_flag(:scheduler_wall_time, true)
    wall0 = :erlang.statistics(:scheduler_wall_time)
    ticks0 = os_cpu_ticks()
    t0 = System.monotonic_time(:millisecond)
    count = pace(swarms, rate, t0, t0 + seconds * 1000, 0)
    elapsed_ms = System.monotonic_time(:millisecond) - t0
    ticks1 = os_cpu_ticks()
    wall1 = :erlang.statistics(:scheduler_wall_time)

    busy =
      Enum.zip(Enum.sort(wall0), Enum.sort(wall1))
      |> Enum.filter(fn {{i, _, _}, _} -> i <= :erlang.system_info(:schedulers) end)
      |> Enum.map(fn {{_, a0, t0}, {_, a1, t1}} -> (a1 - a0) / max(t1 - t0, 1) end)

    cores =
      :erlang.system_info(:logical_processors_available)
      |> then(&if(is_integer(&1), do: &1, else: :erlang.system_info(:schedulers)))

    tick_hz = 100

    %{
      tasks: count,
      rate: count * 1000 / elapsed_ms,
      # Share of the whole machine (all cores) the node used.
      cpu_pct: (ticks1 - ticks0) / tick_hz / (elapsed_ms / 1000) / cores * 100,
      sched_busy_pct: Enum.sum(busy) / length(busy) * 100
    }
  end

  # Submits in 10 ms slices so the rate is steady.
  defp pace(swarms, rate, t0, stop, sent) do
    now = System.monotonic_time(:millisecond)

    if now >= stop do
      sent
    else
      due = div((now - t0) * rate, 1000)
      n = max(due - sent, 0)
      ids = List.to_tuple(swarms)

      for k <- 1..n//1 do
        swarm = elem(ids, rem(sent + k, tuple_size(ids)))
        {:ok, _} = RuvSwarm.orchestrate(swarm, %{description: "t", input: k})
      end

      Process.sleep(10)
      pace(swarms, rate, t0, stop, sent + n)
    end
  end
end

quick = System.get_env("QUICK") == "1"
n_swarms = Bench.Dashboard.env("SWARMS", if(quick, do: 20, else: 100))
n_agents = Bench.Dashboard.env("AGENTS", if(quick, do: 20, else: 100))
rate = Bench.Dashboard.env("RATE", if(quick, do: 300, else: 1000))
seconds = Bench.Dashboard.env("SECONDS", if(quick, do: 5, else: 15))
clients = Bench.Dashboard.env("CLIENTS", 1)

{:ok, gw} =
  InterfaceService.start_link(name: BenchDashboardGateway, enabled: true, port: 0, rate_limit: 0)

Process.unlink(gw)
port = InterfaceService.port(BenchDashboardGateway)

IO.puts("creating #{n_swarms} swarms x #{n_agents} agents ...")

swarms =
  for _ <- 1..n_swarms do
    {:ok, id} =
      RuvSwarm.spawn_swarm(
        storage: :memory,
        agents: n_agents,
        max_agents: max(n_agents, 1),
        executor: {:module, Bench.Echo}
      )

    id
  end

# Warm up, then the baseline: the same load, no dashboard open.
Bench.Dashboard.phase(swarms, rate, 2)
without = Bench.Dashboard.phase(swarms, rate, seconds)

pids = for _ <- 1..clients, do: Bench.DashboardClient.start(port)
# The hub's first read (subscriptions, backfill, snapshot) is not steady state.
Process.sleep(3_000)
for p <- pids, do: Bench.DashboardClient.stats(p)
with_dash = Bench.Dashboard.phase(swarms, rate, seconds)
received = for p <- pids, do: Bench.DashboardClient.stats(p)
{bytes, reads} = hd(received)

hub =
  Process.whereis(
    InterfaceService.Dashboard.Hub.name(InterfaceService.config(BenchDashboardGateway))
  )

{:message_queue_len, hub_queue} = Process.info(hub, :message_queue_len)
{:memory, hub_memory} = Process.info(hub, :memory)

rows = [
  {"without dashboard", without},
  {"with #{clients} dashboard client(s)", with_dash}
]

IO.puts(
  "\n#{n_swarms} swarms x #{n_agents} agents, #{rate} tasks/s offered, #{seconds} s per phase"
)

IO.puts(
  String.pad_trailing("phase", 30) <> "  tasks/s   node CPU (% of machine)   schedulers busy %"
)

for {name, r} <- rows do
  IO.puts(
    String.pad_trailing(name, 30) <>
      "  #{:erlang.float_to_binary(r.rate, decimals: 0) |> String.pad_leading(7)}" <>
      "   #{:erlang.float_to_binary(r.cpu_pct, decimals: 1) |> String.pad_leading(22)}" <>
      "   #{:erlang.float_to_binary(r.sched_busy_pct, decimals: 1) |> String.pad_leading(17)}"
  )
end

extra = with_dash.cpu_pct - without.cpu_pct

IO.puts(
  "\nextra CPU with the dashboard open: #{:erlang.float_to_binary(extra, decimals: 1)} % of the machine " <>
    "(goal < 5 %); a client received #{div(bytes, seconds * 1024)} KiB/s in #{reads} reads; " <>
    "hub: queue #{hub_queue}, memory #{div(hub_memory, 1024)} KiB"
)

IO.puts(
  :jiffy.encode(%{
    bench: "dashboard",
    swarms: n_swarms,
    agents: n_agents,
    rate: rate,
    seconds: seconds,
    clients: clients,
    cpu_pct_without: Float.round(without.cpu_pct, 2),
    cpu_pct_with: Float.round(with_dash.cpu_pct, 2),
    extra_cpu_pct: Float.round(extra, 2),
    client_kib_per_s: div(bytes, seconds * 1024),
    hub_queue: hub_queue,
    hub_memory_kib: div(hub_memory, 1024)
  })
)
