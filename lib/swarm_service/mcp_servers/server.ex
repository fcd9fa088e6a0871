defmodule SwarmService.McpServers.Server do
  @moduledoc false
  # The actor for one external MCP server. It owns one connection at a
  # time: `ruv_swarm_mcp_client` (rmcp) started through the Launcher, so
  # the client and a stdio server below it are one process tree that ends
  # with the connection, this process, or the VM.
  #
  # States: :starting (connection opening, calls wait within the mailbox),
  # :ready, :backoff (waiting to reconnect; calls wait), :crash_loop (5
  # failures in 60 s: calls are refused at once, a probe every
  # probe_interval_ms), and the process ends on stop.
  #
  # Admission: a call is admitted when fewer than @mailbox (100) calls are
  # admitted (in flight downstream + waiting for a concurrency slot);
  # otherwise it is answered {:error, :overloaded} at once. Callers talk to
  # this process with plain messages (see SwarmService.McpServers.call/4)
  # so progress can be relayed before the reply.

  use GenServer, restart: :permanent
  require Logger

  alias SwarmService.Executor.Launcher
  alias SwarmService.McpServers.{Catalog, Stats}

  @mailbox 100
  @failure_window_ms 60_000
  @crash_loop_failures 5
  @max_backoff_ms 15_000
  @ping_misses 2
  # The actor's own backstop after a call's timeout (the client times the
  # call out itself and sends notifications/cancelled).
  @grace_ms 1_000

  @doc false
  def mailbox_size, do: @mailbox

  def start_link(spec) do
    GenServer.start_link(__MODULE__, spec, name: via(spec.name))
  end

  def via(name), do: {:via, Registry, {SwarmService.McpServers.Registry, {:server, name}}}

  def child_spec(spec) do
    %{id: {__MODULE__, spec.name}, start: {__MODULE__, :start_link, [spec]}, restart: :permanent}
  end

  # ---- init ------------------------------------------------------------------

  @impl true
  def init(spec) do
    Process.flag(:trap_exit, true)

    case Registry.register(SwarmService.McpServers.Registry, {:prefix, spec.prefix}, spec.name) do
      {:ok, _} ->
        state = %{
          spec: spec,
          status: :starting,
          conn: nil,
          buf: <<>>,
          next_id: 1,
          inflight: %{},
          waiting: :queue.new(),
          tools: [],
          server_info: nil,
          protocol: nil,
          failures: [],
          restarts: 0,
          last_error: nil,
          health: :unknown,
          ping: nil,
          ping_misses: 0,
          last_ping_us: nil,
          os_pid: nil,
          started_at: nil,
          stats: Stats.new(),
          timer: nil
        }

        Catalog.put(state_view(state))
        {:ok, connect(state)}

      {:error, {:already_registered, _}} ->
        {:stop, {:prefix_taken, spec.prefix}}
    end
  end

  # ---- calls ----------------------------------------------------------------

  @impl true
  def handle_info({:mcp_call, caller, ref, tool, args, timeout_ms}, state) do
    cond do
      not tool_allowed?(state.spec, tool) ->
        send(caller, {ref, :reply, {:error, {:mcp_tool_not_found, state.spec.name, tool}}})
        {:noreply, state}

      state.status == :crash_loop ->
        stats = Stats.count(state.stats, tool, :errors)
        reply = {:error, {:mcp_unavailable, state.spec.name, :crash_loop}}
        send(caller, {ref, :reply, reply})
        {:noreply, %{state | stats: stats}}

      map_size(state.inflight) + :queue.len(state.waiting) >= @mailbox ->
        send(caller, {ref, :reply, {:error, :overloaded}})
        {:noreply, %{state | stats: Stats.count(state.stats, tool, :overloaded)}}

      true ->
        id = state.next_id
        timer = Process.send_after(self(), {:call_timeout, id}, timeout_ms + @grace_ms)
        # A caller that goes away (a cancelled gateway request) cancels its call.
        mon = Process.monitor(caller)

        call = %{
          caller: caller,
          ref: ref,
          tool: tool,
          args: args,
          timeout_ms: timeout_ms,
          admitted: System.monotonic_time(:microsecond),
          timer: timer,
          mon: mon,
          sent: false
        }

        state = %{state | next_id: id + 1, waiting: :queue.in({id, call}, state.waiting)}
        {:noreply, dispatch(state)}
    end
  end

  def handle_info({:mcp_cancel, ref}, state) do
    # The caller gave up (its own deadline, or it is gone).
    case Enum.find(state.inflight, fn {_id, c} -> c.ref == ref end) do
      {id, call} ->
        Process.cancel_timer(call.timer)
        Process.demonitor(call.mon, [:flush])
        if call.sent, do: send_op(state, %{op: "cancel", id: id})
        {:noreply, dispatch(%{state | inflight: Map.delete(state.inflight, id)})}

      nil ->
        waiting = :queue.filter(fn {_id, c} -> c.ref != ref end, state.waiting)
        {:noreply, %{state | waiting: waiting}}
    end
  end

  def handle_info({:DOWN, mon, :process, _pid, _reason}, state) do
    case Enum.find(state.inflight, fn {_id, c} -> c.mon == mon end) do
      {id, call} ->
        Process.cancel_timer(call.timer)
        if call.sent, do: send_op(state, %{op: "cancel", id: id})
        {:noreply, dispatch(%{state | inflight: Map.delete(state.inflight, id)})}

      nil ->
        waiting =
          :queue.filter(
            fn {_id, c} ->
              if c.mon == mon, do: Process.cancel_timer(c.timer)
              c.mon != mon
            end,
            state.waiting
          )

        {:noreply, %{state | waiting: waiting}}
    end
  end

  def handle_info({:call_timeout, id}, state) do
    case Map.pop(state.inflight, id) do
      {nil, _} ->
        case take_waiting(state.waiting, id) do
          {nil, _} ->
            {:noreply, state}

          {call, waiting} ->
            finish(call, {:error, {:mcp_timeout, call.timeout_ms}}, :timeouts, state)
            {:noreply, %{state | waiting: waiting, stats: timed_out(state.stats, call)}}
        end

      {call, inflight} ->
        send_op(state, %{op: "cancel", id: id})
        finish(call, {:error, {:mcp_timeout, call.timeout_ms}}, :timeouts, state)
        {:noreply, dispatch(%{state | inflight: inflight, stats: timed_out(state.stats, call)})}
    end
  end

  def handle_info(:reconnect, state), do: {:noreply, connect(%{state | timer: nil})}

  def handle_info(:start_timeout, %{status: :starting} = state) do
    message = "not ready within #{state.spec.init_timeout_ms} ms"
    {:noreply, fail(%{state | timer: nil}, message)}
  end

  def handle_info(:start_timeout, state), do: {:noreply, state}

  def handle_info(:ping, state) do
    state = %{state | timer: nil}

    cond do
      state.status != :ready ->
        {:noreply, state}

      state.ping != nil ->
        misses = state.ping_misses + 1

        if misses >= @ping_misses do
          {:noreply, fail(state, "no answer to ping (#{misses} in a row)")}
        else
          {:noreply, schedule_ping(send_ping(%{state | ping_misses: misses}))}
        end

      true ->
        {:noreply, schedule_ping(send_ping(state))}
    end
  end

  def handle_info(msg, %{conn: %Launcher{} = conn} = state) do
    case Launcher.event(conn, msg) do
      {:stdout, bytes} ->
        {:noreply, frames(%{state | buf: state.buf <> bytes})}

      {:started, os_pid} ->
        {:noreply, %{state | os_pid: os_pid}}

      {:stderr, _} ->
        {:noreply, state}

      {:exit, report} ->
        {:noreply, connection_ended(state, exit_reason(report))}

      {:launcher_exit, status} ->
        {:noreply, connection_ended(state, {"launcher exited #{status}", ""})}

      :other ->
        {:noreply, state}
    end
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def handle_call(:info, _from, state), do: {:reply, state_view(state), state}
  def handle_call(:tools, _from, state), do: {:reply, visible_tools(state), state}
  def handle_call(:metrics, _from, state), do: {:reply, metrics(state), state}
  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}

  @impl true
  def terminate(_reason, state) do
    for {_id, call} <- state.inflight, do: finish(call, {:error, :mcp_stopped}, nil, state)

    for {_id, call} <- :queue.to_list(state.waiting),
        do: finish(call, {:error, :mcp_stopped}, nil, state)

    if state.conn, do: Launcher.stop(state.conn, 2_000)
    Catalog.delete(state.spec.name)
    :ok
  end

  # ---- the connection ----------------------------------------------------------

  defp connect(state) do
    spec = state.spec

    start =
      case spec.transport do
        :stdio ->
          %{
            transport: "stdio",
            command: spec.command,
            args: spec.args,
            env: Map.new(Launcher.base_env(spec.env)),
            cwd: spec.cwd,
            init_timeout_ms: spec.init_timeout_ms
          }

        :http ->
          %{
            transport: "http",
            url: spec.url,
            headers: Map.new(spec.headers),
            init_timeout_ms: spec.init_timeout_ms
          }
      end

    case Launcher.open(client_executable(), [], env: Launcher.base_env()) do
      {:ok, conn} ->
        state = %{state | conn: conn, buf: <<>>, status: :starting, os_pid: nil}
        send_op(state, start)
        # A start that never becomes ready is a failure too.
        %{state | timer: Process.send_after(self(), :start_timeout, spec.init_timeout_ms + 2_000)}

      {:error, message} ->
        fail(%{state | conn: nil}, message)
    end
  end

  @doc false
  def client_executable,
    do: Application.app_dir(:swarm_service, ["priv", "native", "ruv_swarm_mcp_client"])

  defp frames(%{buf: <<len::32, body::binary-size(len), rest::binary>>} = state) do
    state = %{state | buf: rest}

    state =
      case decode(body) do
        {:ok, event} -> event(event, state)
        :error -> state
      end

    if state.conn, do: frames(state), else: state
  end

  defp frames(state), do: state

  defp event(%{"ev" => "ready"} = ev, state) do
    cancel_timer(state.timer)

    state = %{
      state
      | status: :ready,
        tools: tool_list(ev["tools"]),
        protocol: ev["protocol"],
        server_info: server_info(ev["server"]),
        health: :ok,
        ping: nil,
        ping_misses: 0,
        started_at: System.system_time(:millisecond),
        last_error: nil,
        timer: nil
    }

    Catalog.put(state_view(state))
    state |> schedule_ping() |> dispatch()
  end

  defp event(%{"ev" => "result", "id" => id, "result" => result}, state) do
    reply(state, id, {:ok, result}, if(result["isError"] == true, do: :errors))
  end

  defp event(%{"ev" => "error", "id" => id} = ev, state) when is_integer(id) do
    cond do
      state.ping && elem(state.ping, 0) == id ->
        %{state | ping: nil, ping_misses: state.ping_misses + 1, health: :failing}

      true ->
        {reason, kind} = error_reason(ev, state.spec.name)
        reply(state, id, {:error, reason}, kind)
    end
  end

  defp event(%{"ev" => "pong", "id" => id}, %{ping: {id, sent}} = state) do
    rtt = System.monotonic_time(:microsecond) - sent
    %{state | ping: nil, ping_misses: 0, health: :ok, last_ping_us: rtt}
  end

  defp event(%{"ev" => "progress", "id" => id} = ev, state) do
    case state.inflight do
      %{^id => call} ->
        send(call.caller, {call.ref, :progress, progress(ev)})
        state

      _ ->
        state
    end
  end

  defp event(%{"ev" => "tools", "tools" => tools}, state) do
    state = %{state | tools: tool_list(tools)}
    Catalog.put(state_view(state))
    state
  end

  defp event(%{"ev" => ev, "message" => message}, state) when ev in ["fatal", "closed"] do
    %{state | last_error: sanitize(message)}
  end

  defp event(_ev, state), do: state

  defp connection_ended(state, {why, stderr}) do
    message =
      case {state.last_error, String.trim(stderr)} do
        {nil, ""} -> why
        {nil, tail} -> why <> "; stderr: " <> String.slice(tail, -300, 300)
        {said, ""} -> said
        {said, tail} -> said <> "; stderr: " <> String.slice(tail, -300, 300)
      end

    fail(%{state | conn: nil}, message)
  end

  # A failed start or a lost connection: calls in flight fail; waiting
  # ones wait for the next connection (unless the circuit opens).
  defp fail(state, message) do
    if state.conn, do: Launcher.close(state.conn)
    cancel_timer(state.timer)

    for {_id, call} <- state.inflight do
      finish(call, {:error, {:mcp_closed, state.spec.name, message}}, :errors, state)
    end

    stats =
      Enum.reduce(state.inflight, state.stats, fn {_id, c}, st ->
        Stats.count(st, c.tool, :errors)
      end)

    now = System.monotonic_time(:millisecond)
    failures = [now | Enum.filter(state.failures, &(now - &1 < @failure_window_ms))]

    if state.status != :crash_loop do
      Logger.warning("MCP server #{state.spec.name}: #{message}")
    end

    state = %{
      state
      | conn: nil,
        buf: <<>>,
        inflight: %{},
        stats: stats,
        failures: failures,
        last_error: message,
        health: :failing,
        ping: nil,
        os_pid: nil,
        restarts: state.restarts + 1
    }

    if length(failures) >= @crash_loop_failures do
      for {_id, call} <- :queue.to_list(state.waiting) do
        Process.cancel_timer(call.timer)
        finish(call, {:error, {:mcp_unavailable, state.spec.name, :crash_loop}}, :errors, state)
      end

      timer = Process.send_after(self(), :reconnect, state.spec.probe_interval_ms)
      state = %{state | status: :crash_loop, waiting: :queue.new(), timer: timer}
      Catalog.put(state_view(state))
      state
    else
      delay = backoff(state.spec.backoff_ms, length(failures))
      state = %{state | status: :backoff, timer: Process.send_after(self(), :reconnect, delay)}
      Catalog.put(state_view(state))
      state
    end
  end

  @doc false
  # Exponential (base * 2^(n-1), at most 15 s) with ±25% jitter.
  def backoff(base, n) do
    delay = min(base * Integer.pow(2, max(n - 1, 0)), @max_backoff_ms)
    jitter = div(delay, 4)
    max(delay - jitter + :rand.uniform(2 * jitter + 1) - 1, 1)
  end

  # ---- dispatch and replies ---------------------------------------------------------

  defp dispatch(%{status: :ready} = state) do
    if map_size(state.inflight) < state.spec.max_concurrency do
      case :queue.out(state.waiting) do
        {{:value, {id, call}}, waiting} ->
          now = System.monotonic_time(:microsecond)
          remaining = max(call.timeout_ms - div(now - call.admitted, 1000), 1)

          send_op(state, %{
            op: "call",
            id: id,
            tool: call.tool,
            arguments: call.args,
            timeout_ms: remaining
          })

          dispatch(%{
            state
            | waiting: waiting,
              inflight: Map.put(state.inflight, id, %{call | sent: true})
          })

        {:empty, _} ->
          state
      end
    else
      state
    end
  end

  defp dispatch(state), do: state

  defp reply(state, id, outcome, kind) do
    case Map.pop(state.inflight, id) do
      {nil, _} ->
        state

      {call, inflight} ->
        Process.cancel_timer(call.timer)
        finish(call, outcome, kind, state)
        latency = System.monotonic_time(:microsecond) - call.admitted
        stats = Stats.observe(state.stats, call.tool, latency, kind)
        dispatch(%{state | inflight: inflight, stats: stats})
    end
  end

  defp finish(call, outcome, _kind, _state) do
    Process.demonitor(call.mon, [:flush])
    send(call.caller, {call.ref, :reply, outcome})
  end

  defp timed_out(stats, call),
    do: Stats.observe(stats, call.tool, call.timeout_ms * 1000, :timeouts)

  defp take_waiting(queue, id) do
    case Enum.split_with(:queue.to_list(queue), fn {i, _} -> i == id end) do
      {[{_, call}], rest} -> {call, :queue.from_list(rest)}
      _ -> {nil, queue}
    end
  end

  defp error_reason(%{"kind" => "timeout"} = ev, _name),
    do: {{:mcp_timeout, ms_of(ev["message"])}, :timeouts}

  defp error_reason(%{"kind" => "mcp", "code" => code, "message" => m}, _name)
       when is_integer(code),
       do: {{:mcp_error, code, sanitize(m)}, :errors}

  defp error_reason(%{"kind" => "closed", "message" => m}, name),
    do: {{:mcp_closed, name, sanitize(m)}, :errors}

  defp error_reason(%{"kind" => "cancelled"}, _name), do: {:cancelled, :errors}
  defp error_reason(%{"message" => m}, _name), do: {{:mcp_failed, sanitize(m)}, :errors}
  defp error_reason(_, _name), do: {{:mcp_failed, "unknown error"}, :errors}

  defp ms_of(message) when is_binary(message) do
    case Integer.parse(String.replace_prefix(message, "no answer within ", "")) do
      {ms, _} -> ms
      :error -> 0
    end
  end

  defp ms_of(_), do: 0

  # ---- health -------------------------------------------------------------------------

  defp schedule_ping(state) do
    cancel_timer(state.timer)
    %{state | timer: Process.send_after(self(), :ping, state.spec.ping_interval_ms)}
  end

  defp send_ping(state) do
    id = state.next_id
    timeout = min(state.spec.ping_interval_ms, 10_000)
    send_op(state, %{op: "ping", id: id, timeout_ms: timeout})
    %{state | next_id: id + 1, ping: {id, System.monotonic_time(:microsecond)}}
  end

  # ---- views --------------------------------------------------------------------------

  defp state_view(state) do
    %{
      name: state.spec.name,
      prefix: state.spec.prefix,
      transport: state.spec.transport,
      status: state.status,
      health: state.health,
      tools: visible_tools(state),
      restarts: state.restarts,
      last_error: state.last_error,
      protocol: state.protocol,
      server: state.server_info,
      in_flight: map_size(state.inflight),
      waiting: :queue.len(state.waiting),
      ping_us: state.last_ping_us,
      timeout_ms: state.spec.timeout_ms,
      tool_timeouts: state.spec.tool_timeouts
    }
  end

  defp metrics(state) do
    %{
      name: state.spec.name,
      status: state.status,
      restarts: state.restarts,
      in_flight: map_size(state.inflight),
      waiting: :queue.len(state.waiting),
      tools: Stats.summary(state.stats)
    }
  end

  defp visible_tools(state), do: Enum.filter(state.tools, &tool_allowed?(state.spec, &1["name"]))

  defp tool_allowed?(spec, tool) do
    (spec.allow == nil or tool in spec.allow) and tool not in spec.deny
  end

  # At most 1000 tools per server, each a map with a name.
  defp tool_list(tools) when is_list(tools) do
    tools
    |> Enum.filter(&(is_map(&1) and is_binary(&1["name"]) and &1["name"] != ""))
    |> Enum.take(1000)
  end

  defp tool_list(_), do: []

  defp server_info(%{} = info),
    do: %{name: string(info["name"]), version: string(info["version"])}

  defp server_info(_), do: nil

  defp progress(ev) do
    %{progress: ev["progress"], total: ev["total"], message: string(ev["message"])}
  end

  defp string(s) when is_binary(s), do: String.slice(s, 0, 200)
  defp string(_), do: nil

  defp sanitize(message) when is_binary(message), do: String.slice(message, 0, 500)
  defp sanitize(_), do: "unknown"

  defp exit_reason(%{status: status, stderr: tail}) do
    why =
      case status do
        {:exited, code} -> "exited with status #{code}"
        {:signaled, sig} -> "killed by signal #{sig}"
        :killed -> "stopped"
        {:spawn_failed, errno} -> "could not start (errno #{errno})"
      end

    {"the client " <> why, tail}
  end

  # ---- wire ---------------------------------------------------------------------------

  defp send_op(%{conn: nil}, _op), do: :ok

  defp send_op(%{conn: conn}, op) do
    body = :jiffy.encode(op, [:use_nil])
    Launcher.write(conn, [<<IO.iodata_length(body)::32>>, body])
  end

  defp decode(body) do
    case :jiffy.decode(body, [:return_maps, :use_nil]) do
      %{} = map -> {:ok, map}
      _ -> :error
    end
  catch
    _, _ -> :error
  end

  defp cancel_timer(nil), do: :ok
  defp cancel_timer(ref), do: Process.cancel_timer(ref)
end
