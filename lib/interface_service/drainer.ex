defmodule InterfaceService.Drainer do
  @moduledoc false
  # The gateway's last child, so it is the first stopped: at shutdown
  # (SIGTERM, application stop) it stops the listener accepting, makes
  # every further response close its connection, and waits until the
  # requests in flight have been answered, for at most drain_timeout_ms.
  # Only then are the listener and its connections stopped. Streams (SSE,
  # WebSocket) are not waited for: they last as long as their clients want.

  use GenServer
  require Logger

  alias InterfaceService.Listener

  @poll_ms 20

  def child_spec(config) do
    %{
      id: __MODULE__,
      start: {__MODULE__, :start_link, [config]},
      # The supervisor must give terminate/2 the time the drain may take.
      shutdown: config.drain_timeout_ms + 1_000
    }
  end

  def start_link(config), do: GenServer.start_link(__MODULE__, config)

  @impl true
  def init(config) do
    Process.flag(:trap_exit, true)
    :atomics.put(config.tabs.draining, 1, 0)
    {:ok, config}
  end

  @impl true
  def terminate(_reason, config) do
    :atomics.put(config.tabs.draining, 1, 1)
    _ = :ranch.suspend_listener(Listener.ref(config))
    deadline = System.monotonic_time(:millisecond) + config.drain_timeout_ms
    wait(config, deadline)
  end

  defp wait(config, deadline) do
    busy = :atomics.get(config.tabs.busy, 1)

    cond do
      busy <= 0 ->
        :ok

      System.monotonic_time(:millisecond) >= deadline ->
        Logger.warning("gateway: stopping with #{busy} requests still in flight after the drain")

      true ->
        Process.sleep(@poll_ms)
        wait(config, deadline)
    end
  end
end
