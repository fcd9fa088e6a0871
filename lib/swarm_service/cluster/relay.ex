defmodule SwarmService.Cluster.Relay do
  @moduledoc false
  # A local stand-in for a process on another node. The engine sends its
  # messages from inside NIF calls, which can only address local pids, so
  # a remote agent or subscriber is registered with the engine as its
  # relay: a process here that forwards every message to the remote pid
  # and exits when that process (or its node) goes away, which the engine's
  # owners see as the remote process exiting.
  @doc "`pid` itself when local, else its relay on this node (started once per pid)."
  def local(pid) when node(pid) == node(), do: pid

  def local(pid) do
    case Registry.lookup(SwarmService.SwarmRegistry, {:relay, pid}) do
      [{relay, _}] ->
        relay

      [] ->
        # Not linked to anyone: a relay lives exactly as long as its target.
        {:ok, relay} = :proc_lib.start(__MODULE__, :init, [self(), pid])
        relay
    end
  end

  @doc false
  def init(parent, target) do
    case Registry.register(SwarmService.SwarmRegistry, {:relay, target}, nil) do
      {:ok, _} ->
        {:ok, _} = Registry.register(SwarmService.SwarmRegistry, {:relayed, self()}, target)
        ref = Process.monitor(target)
        :proc_lib.init_ack(parent, {:ok, self()})
        loop(target, ref)

      {:error, {:already_registered, relay}} ->
        # Another caller started one first: use theirs.
        :proc_lib.init_ack(parent, {:ok, relay})
    end
  end

  defp loop(target, ref) do
    receive do
      {:DOWN, ^ref, :process, _, reason} ->
        exit({:shutdown, {:relayed_process_down, reason}})

      message ->
        send(target, message)
        loop(target, ref)
    end
  end

  @doc "The remote process `pid` relays to, or `pid` itself when it is not a relay."
  def target(pid) do
    case Registry.lookup(SwarmService.SwarmRegistry, {:relayed, pid}) do
      [{^pid, target}] -> target
      [] -> pid
    end
  end
end
