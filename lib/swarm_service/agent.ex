defmodule SwarmService.Agent do
  @moduledoc false
  # The process of a push agent. It attaches to the engine and keeps one
  # linked worker process per slot of capacity; each attempt runs in the
  # worker of the slot the engine gave it, so a crashing executor fails one
  # attempt and a dying agent takes its workers (and their OS commands)
  # with it. Work held when the agent dies is retried elsewhere by the
  # engine.
  #
  # The first work for a slot comes here, {:swarm_work, work, slot}; the
  # agent starts the slot's worker, passes the work on and names the
  # worker to the engine, which from then on sends that slot's work to the
  # worker directly: one message per task instead of three. Cancels come
  # here: a module worker is killed (a command worker kills its process
  # tree itself), and the engine forgets the slot's worker until the agent
  # names one again. A worker that dies is reported, and the attempt it
  # held is retried.
  #
  # Engine calls go through Swarm.Home, so the same process works whether
  # the swarm's home is this node or another (then the home reaches us
  # through a relay, and all work comes through the agent). Agents hosted
  # for a swarm with no processes here are registered as {:agent, id} =>
  # swarm (see Swarm.AgentHost); the others as {:home_agent, id}.
  use GenServer, restart: :permanent
  require Logger

  alias SwarmService.Executor
  alias SwarmService.Swarm.Home

  @inbox_size 100

  def start_link(%{hosted: true} = args) do
    name = {:via, Registry, {SwarmService.SwarmRegistry, {:agent, args.agent_id}, args.swarm_id}}
    GenServer.start_link(__MODULE__, args, name: name)
  end

  # An agent of a swarm homed here is registered as {:home_agent, id}, so
  # no agent ever has two processes: a spawn_agent that races the agent
  # supervisor's rebuild (both starting the agent just registered) finds
  # the one already started.
  def start_link(args) do
    name = {:via, Registry, {SwarmService.SwarmRegistry, {:home_agent, args.agent_id}}}
    GenServer.start_link(__MODULE__, args, name: name)
  end

  @doc "Coordination messages this agent received, oldest first."
  def inbox(pid), do: GenServer.call(pid, :inbox)

  @impl true
  def init(%{swarm_id: swarm_id, agent_id: agent_id, executor: executor} = args) do
    Process.flag(:trap_exit, true)

    state = %{
      swarm_id: swarm_id,
      agent_id: agent_id,
      executor: with_swarm_access(executor, agent_id),
      # A hosted agent's engine is on another node: no direct sends.
      direct: not Map.has_key?(args, :hosted),
      # slot => worker pid, and back
      workers: %{},
      slots: %{},
      inbox: :queue.new()
    }

    case attach(state) do
      :ok ->
        {:ok, state}

      # A durable swarm electing its leader (its node just booted, or a
      # member was lost): attached as soon as there is one.
      {:error, reason} = error ->
        if transient?(reason) do
          {:ok, state, {:continue, {:attach, 0, error}}}
        else
          # Removed meanwhile: restarting here would only spin.
          Logger.warning("agent #{agent_id} not started: #{inspect(reason, limit: 5)}")
          :ignore
        end
    end
  end

  defp attach(state),
    do: Home.run(state.agent_id, :attach_agent, [state.swarm_id, state.agent_id, self()])

  defp transient?(reason) do
    reason in [:no_quorum] or
      match?({tag, _} when tag in [:not_committed, :home_down, :raft, :nodedown], reason)
  end

  @attach_backoff_ms 2_000

  @impl true
  def handle_continue({:attach, tries, last}, state) do
    Process.sleep(min(50 * Integer.pow(2, min(tries, 6)), @attach_backoff_ms))

    case attach(state) do
      :ok ->
        {:noreply, state}

      {:error, reason} = error ->
        if transient?(reason) do
          if tries == 10,
            do: Logger.warning("agent #{state.agent_id}: still not attached: #{inspect(last)}")

          {:noreply, state, {:continue, {:attach, tries + 1, error}}}
        else
          {:stop, :normal, state}
        end
    end
  end

  # A claude agent gets its swarm's MCP tools through this node's gateway,
  # with a token scoped to the swarm that dies with this process.
  defp with_swarm_access({:claude, opts} = executor, agent_id) do
    url = Executor.ClaudeAccess.gateway_url()

    if Keyword.get(opts, :mcp, true) and not Keyword.has_key?(opts, :mcp_config) and url do
      case Executor.ClaudeAccess.grant(agent_id, self(), url) do
        {:ok, path} ->
          {:claude, Keyword.put(opts, :mcp_config, path)}

        {:error, reason} ->
          Logger.warning("agent #{agent_id}: no swarm tools for Claude: #{reason}")
          executor
      end
    else
      executor
    end
  end

  defp with_swarm_access(executor, _agent_id), do: executor

  @impl true
  def handle_call(:inbox, _from, state), do: {:reply, :queue.to_list(state.inbox), state}

  @impl true
  def handle_info({:swarm_work, work, slot} = msg, state) do
    {pid, state} = worker(state, slot)
    send(pid, msg)

    if state.direct,
      do: Home.run(state.agent_id, :attach_worker, [state.agent_id, slot, pid, work.work_id])

    {:noreply, state}
  end

  def handle_info({:swarm_cancel, work_id, reason, slot}, state) do
    log_cancel(state.agent_id, work_id, reason)

    case {state.workers, state.executor} do
      {%{^slot => pid}, {:command, _, _}} ->
        # The command worker kills its process tree and waits for more.
        send(pid, {:cancel, work_id, reason})
        {:noreply, state}

      {%{^slot => pid}, {:claude, _}} ->
        send(pid, {:cancel, work_id, reason})
        {:noreply, state}

      {%{^slot => pid}, _} ->
        Process.unlink(pid)
        Process.exit(pid, :kill)
        {:noreply, forget(state, pid)}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:swarm_coordination, delivery}, state) do
    inbox = :queue.in(delivery, state.inbox)
    inbox = if :queue.len(inbox) > @inbox_size, do: :queue.drop(inbox), else: inbox
    Home.run(state.swarm_id, :coordination_forward, [delivery, state.agent_id])
    {:noreply, %{state | inbox: inbox}}
  end

  def handle_info({:EXIT, pid, reason}, state) do
    # (The EXIT of our supervisor is handled by GenServer itself.)
    case state.slots do
      %{^pid => slot} ->
        msg = "executor crashed: " <> inspect(reason, limit: 5, printable_limit: 300)
        log_failure(state.agent_id, {:slot, slot}, msg)
        Home.run(state.agent_id, :worker_lost, [state.agent_id, slot, msg])
        {:noreply, forget(state, pid)}

      _ ->
        # A worker already replaced or killed on a cancel.
        {:noreply, state}
    end
  end

  def handle_info(_other, state), do: {:noreply, state}

  # The slot's worker, started if it has none (or its old one died and the
  # EXIT has not arrived yet: that EXIT is then ignored).
  defp worker(state, slot) do
    case state.workers do
      %{^slot => pid} ->
        if Process.alive?(pid), do: {pid, state}, else: start_worker(forget(state, pid), slot)

      _ ->
        start_worker(state, slot)
    end
  end

  defp start_worker(state, slot) do
    %{agent_id: agent_id, swarm_id: swarm_id, executor: executor} = state
    agent = self()
    pid = spawn_link(fn -> worker_loop(agent, executor, agent_id, swarm_id) end)

    {pid,
     %{state | workers: Map.put(state.workers, slot, pid), slots: Map.put(state.slots, pid, slot)}}
  end

  defp forget(state, pid) do
    {slot, slots} = Map.pop(state.slots, pid)
    %{state | slots: slots, workers: Map.delete(state.workers, slot)}
  end

  defp worker_loop(agent, executor, agent_id, swarm_id) do
    receive do
      {:swarm_work, work, _slot} ->
        run(executor, work, agent_id, swarm_id)
        worker_loop(agent, executor, agent_id, swarm_id)

      {:EXIT, ^agent, reason} ->
        exit(reason)

      _stale ->
        # A cancel for work that already finished.
        worker_loop(agent, executor, agent_id, swarm_id)
    end
  end

  defp run(executor, work, agent_id, swarm_id) do
    outcome =
      case executor do
        {:module, mod, arg} -> run_module(mod, arg, work, agent_id, swarm_id)
        {:command, argv, opts} -> run_command(argv, opts, work)
        {:claude, opts} -> run_claude(opts, work, agent_id)
      end

    report(outcome, work.work_id, agent_id)
  end

  defp run_module(mod, arg, work, agent_id, swarm_id) do
    task = Map.take(work, [:input, :description, :task_id, :unit, :attempt, :work_id])

    context = %{
      swarm_id: swarm_id,
      agent_id: agent_id,
      work_id: work.work_id,
      dependencies: work.context,
      route: work.route,
      arg: arg,
      session_id: Map.get(work, :session_id)
    }

    try do
      case mod.run(task, context) do
        {tag, _} = outcome when tag in [:ok, :error] ->
          outcome

        {tag, value, %{} = meta} when tag in [:ok, :error] ->
          {tag, value, usage_of(meta, agent_id, work.work_id)}

        other ->
          {:error,
           "executor returned #{inspect(other, limit: 5)}; expected {:ok, result}, " <>
             "{:ok, result, %{usage: usage}}, {:error, reason} or {:error, reason, %{usage: usage}}"}
      end
    rescue
      e -> {:error, "executor raised: " <> Exception.message(e)}
    catch
      kind, reason -> {:error, "executor #{kind}: " <> inspect(reason, limit: 5)}
    end
  end

  # The engine's form of the usage an executor reported; one it cannot
  # take is dropped (the result still counts) with a line in the log.
  defp usage_of(meta, agent_id, work_id) do
    case Executor.native_usage(Map.get(meta, :usage)) do
      {:ok, usage} ->
        usage

      {:error, {:invalid_argument, msg}} ->
        Logger.warning("agent #{agent_id}: work #{work_id}: usage dropped: #{msg}")
        nil
    end
  end

  defp run_command(argv, opts, work) do
    Process.flag(:trap_exit, true)
    Executor.Command.run(argv, opts, Executor.Command.stdin_of(work), work)
  end

  # A claude unit's progress (assistant text, tool calls) and its usage
  # (tokens, cost, session) go to the engine like any executor's; the
  # session id the engine kept is the one `resume: true` continues.
  defp run_claude(opts, work, agent_id) do
    Process.flag(:trap_exit, true)
    context = %{work_id: work.work_id, agent_id: agent_id}
    progress = fn fraction, message -> Executor.progress(context, fraction, message) end
    agent = %{agent_id: agent_id, session_id: Map.get(work, :session_id)}

    case Executor.Claude.run(opts, work, agent, progress) do
      {tag, value, %{} = meta} -> {tag, value, usage_of(meta, agent_id, work.work_id)}
      other -> other
    end
  end

  defp report({:ok, result}, work_id, agent_id), do: report({:ok, result, nil}, work_id, agent_id)

  # usage: the engine's form (Executor.native_usage/1), or nil.
  defp report({:ok, result, usage}, work_id, agent_id) do
    case retried(work_id, :complete, [work_id, agent_id, result, usage]) do
      {:error, reason} ->
        msg = "result rejected: " <> SwarmService.RuvSwarm.format_error(reason)
        log_failure(agent_id, work_id, msg)
        # (A result the engine refused still had its usage booked, unless
        # the usage itself was refused: then it goes with the failure.)
        retried(work_id, :fail, [work_id, agent_id, msg, false, nil])

      _ ->
        :ok
    end
  end

  defp report({:timeout, reason}, work_id, agent_id) do
    log_failure(agent_id, work_id, reason)
    retried(work_id, :fail, [work_id, agent_id, reason, true])
  end

  defp report({:error, reason}, work_id, agent_id),
    do: report({:error, reason, nil}, work_id, agent_id)

  defp report({:error, reason, usage}, work_id, agent_id) do
    log_failure(agent_id, work_id, reason)
    retried(work_id, :fail, [work_id, agent_id, reason_text(reason), false, usage])
  end

  # A report that may not have reached the swarm's log (its leader was
  # lost, or is being elected) is sent again until it is answered: a
  # work id names one attempt, so a report that did land the first time
  # is ignored the second. Given up after @report_retry_ms: the attempt's
  # deadline, or a new leader's redelivery, then retries the work.
  @report_retry_ms 30_000

  defp retried(work_id, fun, args),
    do: retried(work_id, fun, args, System.monotonic_time(:millisecond) + @report_retry_ms, 0)

  defp retried(work_id, fun, args, deadline, tries) do
    case Home.run(work_id, fun, args) do
      {:error, reason} = error ->
        if transient?(reason) and System.monotonic_time(:millisecond) < deadline do
          Process.sleep(min(20 * Integer.pow(2, min(tries, 6)), 1_000))
          retried(work_id, fun, args, deadline, tries + 1)
        else
          error
        end

      other ->
        other
    end
  end

  defp reason_text(reason) when is_binary(reason), do: reason
  defp reason_text(reason), do: inspect(reason, limit: 10, printable_limit: 500)

  # The engine stops running work for two reasons: its task ended ("task
  # completed", "task cancelled", ...: another unit or try decided it, not a
  # failure here), or the attempt ran out of time, which fails it.
  defp log_cancel(agent_id, work_id, "task " <> _ = reason),
    do: Logger.debug("agent #{agent_id}: work #{work_id} stopped: #{reason}")

  defp log_cancel(agent_id, work_id, reason), do: log_failure(agent_id, work_id, reason)

  # Every failed unit leaves a line in the log of the node it failed on
  # (the engine retries it elsewhere, so this may be the only trace here).
  @log_reason_bytes 500

  defp log_failure(agent_id, work, reason) do
    work = with {:slot, slot} <- work, do: "in slot #{slot}"

    reason =
      if is_binary(reason),
        do: reason,
        else: inspect(reason, limit: 10, printable_limit: @log_reason_bytes)

    reason =
      if byte_size(reason) > @log_reason_bytes,
        do: String.slice(reason, 0, @log_reason_bytes) <> "…",
        else: reason

    Logger.warning("agent #{agent_id}: work #{work} failed: #{reason}")
  end
end
