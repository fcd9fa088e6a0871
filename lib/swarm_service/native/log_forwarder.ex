defmodule SwarmService.Native.LogForwarder do
  @moduledoc false
  # Receives `{:ruv_swarm_log, level, message}` from the engine's tracing
  # layer and hands it to Logger, so Rust logs land where Elixir's do.
  use GenServer
  require Logger

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil), do: {:ok, nil}

  @impl true
  def handle_info({:ruv_swarm_log, level, message}, state)
      when level in [:error, :warning, :info, :debug] and is_binary(message) do
    Logger.log(level, "[engine] " <> message)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}
end
