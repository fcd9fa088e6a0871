defmodule SwarmService.Swarm.Server do
  @moduledoc false
  # Runs a swarm's timers (attempt deadlines, leases, retry backoff, memory
  # TTL) by ticking the engine when something is due, and watches agent
  # processes so a crashed agent's work is retried at once. The engine
  # wakes this process with {:swarm_wakeup, id} when a new deadline is
  # earlier than the next tick, so a swarm with nothing due is not ticked
  # at all (10,000 idle swarms cost no CPU).
  use GenServer
  require Logger

  alias SwarmService.{Native, Raft}
  alias SwarmService.Swarm.Commands

  # Upper bound between ticks while something is due.
  @max_tick_ms 1_000

  def start_link({swarm_id, opts}) do
    # The swarm's default executor rides along as the registry value, so
    # spawn_agent/2 reads it from ETS without calling this process.
    executor = Keyword.get(opts, :executor, :external)
    name = {:via, Registry, {SwarmService.SwarmRegistry, {:server, swarm_id}, executor}}
    GenServer.start_link(__MODULE__, {swarm_id, opts}, name: name)
  end

  @doc "Default executor for agents spawned without one."
  def default_executor(swarm_id) do
    case Registry.lookup(SwarmService.SwarmRegistry, {:server, swarm_id}) do
      [{_pid, executor}] -> executor
      [] -> :external
    end
  end

  @doc "Watch an agent process; its exit takes it offline in the engine."
  def watch(swarm_id, agent_id, pid) do
    GenServer.cast(SwarmService.Swarm.via({:server, swarm_id}), {:watch, agent_id, pid})
  end

  @impl true
  def init({swarm_id, _opts}) do
    state = %{id: swarm_id, timer: nil, monitors: %{}}

    case Native.swarm_set_owner(swarm_id, self()) do
      :ok ->
        {:ok, schedule(state, 0)}

      # A Raft member whose engine is built by its first command: the
      # machine names this process as owner then.
      {:error, :swarm_not_found} ->
        if Raft.server(swarm_id), do: {:ok, state}, else: {:stop, :swarm_not_found}

      {:error, reason} ->
        {:stop, reason}
    end
  end

  @impl true
  def handle_cast({:watch, agent_id, pid}, state) do
    ref = Process.monitor(pid)
    {:noreply, put_in(state.monitors[ref], {agent_id, pid})}
  end

  @impl true
  def handle_info(:tick, state), do: {:noreply, tick(%{state | timer: nil})}
  def handle_info({:swarm_wakeup, _id}, state), do: {:noreply, tick(state)}

  def handle_info({:DOWN, ref, :process, _pid, reason}, state) do
    case Map.pop(state.monitors, ref) do
      {{agent_id, pid}, monitors} ->
        unless reason in [:normal, :shutdown] or match?({:shutdown, _}, reason) do
          Logger.warning("agent #{agent_id} exited: #{inspect(reason, limit: 10)}")
        end

        Native.agent_detach(agent_id, pid, "agent process exited: " <> short(reason))
        {:noreply, %{state | monitors: monitors}}

      {nil, _} ->
        {:noreply, state}
    end
  end

  def handle_info(_other, state), do: {:noreply, state}

  # A durable swarm's tick is a command in its log, like any other change,
  # issued by its leader's ticker only (the machine wakes it on election).
  # A member that follows looks again every @max_tick_ms, in case the
  # machine's wakeup on its election came before this process was up.
  defp tick(state) do
    if leads?(state.id), do: tick_now(state), else: schedule(state, @max_tick_ms)
  end

  # (No known leader: an election is under way; the tick waits for it.)
  defp leads?(id), do: Raft.server(id) == nil or Raft.leader_node(id) in [node(), nil]

  defp tick_now(state) do
    case Commands.tick(state.id) do
      # Nothing due: the engine's wakeup brings the next tick.
      {:ok, nil} -> state
      {:ok, ms} -> schedule(state, min(ms, @max_tick_ms))
      # Not committed in time: try again shortly.
      {:error, {:not_committed, _}} -> schedule(state, @max_tick_ms)
      # The swarm was destroyed; our supervisor is being stopped.
      {:error, _} -> state
    end
  end

  defp schedule(state, ms) do
    if state.timer, do: Process.cancel_timer(state.timer)
    %{state | timer: Process.send_after(self(), :tick, ms)}
  end

  defp short(reason), do: inspect(reason, limit: 5, printable_limit: 200)
end
