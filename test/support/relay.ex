defmodule SwarmService.Test.Relay do
  @moduledoc false
  # A process that forwards every message it receives to `target` as
  # {:relay, node(), message}. Lives in test/support (compiled to ebin) so
  # peer nodes can run it: tests start relays on peers over rpc, register
  # them under a name or subscribe them to cluster events, and assert on
  # what arrives at the test process.

  @doc "Starts a relay on this node, registered as `name` unless nil; returns its pid."
  def start(name, target) do
    parent = self()

    pid =
      spawn(fn ->
        if name, do: Process.register(self(), name)
        send(parent, {:relay_ready, self()})
        loop(target)
      end)

    receive do
      {:relay_ready, ^pid} -> pid
    after
      5_000 -> raise "relay did not start"
    end
  end

  defp loop(target) do
    receive do
      :relay_stop ->
        :ok

      message ->
        send(target, {:relay, node(), message})
        loop(target)
    end
  end

  @doc "Stops a relay."
  def stop(pid), do: send(pid, :relay_stop)
end
