defmodule SwarmService.Agent do
  @moduledoc false
  # The process of a push agent. It attaches to the engine, receives
  # {:swarm_work, work} messages, and runs each attempt in a linked worker
  # process, so a crashing executor fails one attempt and a dying agent
  # takes its workers (and their OS commands) with it. Work held when the
  # agent dies is retried elsewhere by the engine. Workers are kept and
  # reused (one per slot of capacity) rather than spawned per attempt; a
  # cancelled module worker is killed and replaced.
  #
  # Engine calls go through Swarm.Home, so the same process works whether
  # the swarm's home is this node or another (then the home reaches us
  # through a relay). Agents hosted for another node's swarm are registered
  # as {:agent, id} => {swarm, epoch} (see Swarm.AgentHost); agents of a
  # swarm homed here need no name, so starting them costs no registration.
  use GenServer, restart: :permanent
  require Logger

  alias SwarmService.Executor
  alias SwarmService.Swarm.Home

  @inbox_size 100

  def start_link(%{epoch: epoch} = args) do
    value = {args.swarm_id, epoch}
    name = {:via, Registry, {SwarmService.SwarmRegistry, {:agent, args.agent_id}, value}}
    GenServer.start_link(__MODULE__, args, name: name)
  end

  def start_link(args), do: GenServer.start_link(__MODULE__, args)

  @doc "Coordination messages this agent received, oldest first."
  def inbox(pid), do: GenServer.call(pid, :inbox)

  @impl true
  def init(%{swarm_id: swarm_id, agent_id: agent_id, executor: executor}) do
    Process.flag(:trap_exit, true)

    case Home.run(agent_id, :attach_agent, [swarm_id, agent_id, self()]) do
      :ok ->
        {:ok,
         %{
           swarm_id: swarm_id,
           agent_id: agent_id,
           executor: executor,
           # worker pid => work id it runs, or nil when idle
           workers: %{},
           idle: [],
           inbox: :queue.new()
         }}

      {:error, reason} ->
        # Removed meanwhile, or its home is unreachable: a new home adopts
        # its agents again, so restarting here would only spin.
        Logger.warning("agent #{agent_id} not started: #{inspect(reason, limit: 5)}")
        :ignore
    end
  end

  @impl true
  def handle_call(:inbox, _from, state), do: {:reply, :queue.to_list(state.inbox), state}

  @impl true
  def handle_info({:swarm_work, work}, state) do
    {pid, state} = take_worker(state)
    send(pid, {:run, work})
    {:noreply, put_in(state.workers[pid], work.work_id)}
  end

  def handle_info({:worker_idle, pid}, state) do
    if Map.has_key?(state.workers, pid) do
      {:noreply, %{state | workers: Map.put(state.workers, pid, nil), idle: [pid | state.idle]}}
    else
      {:noreply, state}
    end
  end

  def handle_info({:swarm_cancel, work_id, reason}, state) do
    case Enum.find(state.workers, fn {_, w} -> w == work_id end) do
      {pid, _} ->
        case state.executor do
          {:command, _, _} ->
            # The command worker kills its process tree and reports idle.
            send(pid, {:cancel, work_id, reason})
            {:noreply, state}

          _ ->
            Process.unlink(pid)
            Process.exit(pid, :kill)
            {:noreply, %{state | workers: Map.delete(state.workers, pid)}}
        end

      nil ->
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
    case Map.pop(state.workers, pid) do
      {nil, _} ->
        # Not a worker: our supervisor is shutting us down.
        {:stop, reason, state}

      {work_id, workers} ->
        if work_id != nil and reason != :normal do
          msg = "executor crashed: " <> inspect(reason, limit: 5, printable_limit: 300)
          Home.run(work_id, :fail, [work_id, state.agent_id, msg, false])
        end

        {:noreply, %{state | workers: workers, idle: List.delete(state.idle, pid)}}
    end
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp take_worker(%{idle: [pid | rest]} = state), do: {pid, %{state | idle: rest}}

  defp take_worker(state) do
    %{agent_id: agent_id, swarm_id: swarm_id, executor: executor} = state
    agent = self()
    {spawn_link(fn -> worker_loop(agent, executor, agent_id, swarm_id) end), state}
  end

  defp worker_loop(agent, executor, agent_id, swarm_id) do
    receive do
      {:run, work} ->
        run(executor, work, agent_id, swarm_id)
        send(agent, {:worker_idle, self()})
        worker_loop(agent, executor, agent_id, swarm_id)

      {:EXIT, ^agent, reason} ->
        exit(reason)

      _stale ->
        # A cancel for work that already finished.
        worker_loop(agent, executor, agent_id, swarm_id)
    end
  end

  defp run(executor, work, agent_id, swarm_id) do
    Home.run(work.work_id, :start_work, [work.work_id, agent_id])

    outcome =
      case executor do
        {:module, mod, arg} -> run_module(mod, arg, work, agent_id, swarm_id)
        {:command, argv, opts} -> run_command(argv, opts, work)
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
      arg: arg
    }

    try do
      case mod.run(task, context) do
        {tag, _} = outcome when tag in [:ok, :error] ->
          outcome

        other ->
          {:error,
           "executor returned #{inspect(other, limit: 5)}; expected {:ok, result} or {:error, reason}"}
      end
    rescue
      e -> {:error, "executor raised: " <> Exception.message(e)}
    catch
      kind, reason -> {:error, "executor #{kind}: " <> inspect(reason, limit: 5)}
    end
  end

  defp run_command(argv, opts, work) do
    Process.flag(:trap_exit, true)
    Executor.Command.run(argv, opts, Executor.Command.stdin_of(work), work)
  end

  defp report({:ok, result}, work_id, agent_id) do
    case Home.run(work_id, :complete, [work_id, agent_id, result]) do
      {:error, reason} ->
        msg = "result rejected: " <> SwarmService.RuvSwarm.format_error(reason)
        Home.run(work_id, :fail, [work_id, agent_id, msg, false])

      _ ->
        :ok
    end
  end

  defp report({:timeout, reason}, work_id, agent_id),
    do: Home.run(work_id, :fail, [work_id, agent_id, reason, true])

  defp report({:error, reason}, work_id, agent_id),
    do: SwarmService.RuvSwarm.fail_task(work_id, agent_id, reason)
end
