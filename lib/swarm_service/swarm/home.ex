defmodule SwarmService.Swarm.Home do
  @moduledoc false
  # Runs a swarm command on the swarm's home node, wherever it is called.
  #
  # The home of a durable swarm is its Raft leader, of an in-memory one the
  # node that holds it (SwarmService.Swarm.Locator); a command about a
  # swarm homed here is a local function call (SwarmService.Swarm.Commands),
  # one homed elsewhere is one Cluster.call to the same function there.
  # Reads survive a failover: if the home is lost mid-call they wait
  # (bounded) for a new home and ask it, and so does a write made once the
  # home is already out of reach. A write in flight when the home is lost
  # does not retry on its own, because the lost home may or may not have
  # committed it: it answers {:error, {:home_down, node}} and the caller
  # decides.
  alias SwarmService.Cluster
  require Logger

  alias SwarmService.Swarm.{Commands, Locator}

  @call_timeout 10_000
  # How long a read waits for a new home after the old one is lost.
  @failover_wait_ms 5_000

  @reads [
    :swarm_status,
    :list_agents,
    :list_agents_page,
    :agent_get,
    :neighbours,
    :task_get,
    :memory_get,
    :memory_search,
    :recent_discoveries,
    # Watching a task is idempotent: await_task/2 waits through a failover.
    :watch
  ]

  @doc "Runs `Commands.fun(args...)` at the home of `id`."
  def run(id, fun, args) do
    # Alone (no other member), a swarm the engine here knows is homed
    # here: the locator is consulted only when the engine does not know it
    # (a swarm of a member that is out of reach).
    if SwarmService.Cluster.members() == [node()] do
      case apply(Commands, fun, args) do
        {:error, e} = error when e in [:swarm_not_found, :agent_not_found, :task_not_found] ->
          if Locator.home(id) == :here, do: error, else: routed(id, fun, args)

        result ->
          result
      end
    else
      routed(id, fun, args)
    end
  end

  defp routed(id, fun, args) do
    case Locator.home(id) do
      :here -> apply(Commands, fun, args)
      home -> remote(home, id, fun, args, deadline(), fun in @reads)
    end
  end

  @doc false
  # The remote end of run/3. The caller may be a step behind (a new
  # leader it has not heard of yet): then this node forwards once.
  # Called directly, a best-effort run/3 that never waits for a failover.
  def run_here(id, fun, args) do
    case Locator.home(id) do
      :here -> apply(Commands, fun, args)
      home -> Cluster.call(home, Commands, fun, args, @call_timeout)
    end
  end

  @doc "Waits until `id` has a home other than `lost` (or the deadline passes)."
  def await_new_home(id, lost, deadline) do
    case Locator.home(id) do
      ^lost ->
        if now() < deadline do
          Process.sleep(10)
          await_new_home(id, lost, deadline)
        else
          {:error, {:home_down, lost}}
        end

      home ->
        {:ok, home}
    end
  end

  defp remote(home, id, fun, args, deadline, read?) do
    if home in Cluster.members() do
      case call(home, id, fun, args) do
        {:error, {:nodedown, ^home}} when read? -> after_failover(id, home, fun, args, deadline)
        {:error, {:nodedown, ^home}} -> {:error, {:home_down, home}}
        result -> result
      end
    else
      # Already out of reach: nothing is sent, so a write is as safe to
      # redirect to the new home as a read.
      after_failover(id, home, fun, args, deadline)
    end
  end

  # An exception there (the home is booting or stopping, and its tables
  # are not all up) is the home being unavailable, never a crash here.
  defp call(home, id, fun, args) do
    Cluster.call(home, __MODULE__, :run_here, [id, fun, args], @call_timeout)
  catch
    :error, {:exception, reason, _stack} ->
      Logger.warning("#{fun} on #{home} failed there: #{inspect(reason, limit: 5)}")
      {:error, {:nodedown, home}}
  end

  defp after_failover(id, lost, fun, args, deadline) do
    with {:ok, _} <- await_new_home(id, lost, deadline), do: run(id, fun, args)
  end

  defp deadline, do: now() + @failover_wait_ms
  defp now, do: System.monotonic_time(:millisecond)
end
