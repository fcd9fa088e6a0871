defmodule SwarmService.Native.HeapTrimmer do
  @moduledoc false
  # Gives the C heap's free pages back to the OS after code has been loaded.
  #
  # The JIT assembles every module it loads in scratch buffers from the C
  # library's malloc. They are freed right away, but glibc keeps the pages:
  # after boot (some 300 modules) about 7 MB of an idle node's resident
  # memory is freed scratch, and the first requests (Cowboy's modules, the
  # tools) add more. Nothing else in the VM needs that memory back, so once
  # loading has settled this process asks the engine's NIF to trim the heap
  # (`malloc_trim(0)`, a few milliseconds on a dirty scheduler).
  #
  # It watches `:erlang.memory(:code)`: a change means modules are being
  # loaded; the first unchanged sample after a change trims. Samples start
  # @min_interval apart and double while nothing changes, up to
  # @max_interval, so an idle node wakes this process about once a minute.
  use GenServer

  alias SwarmService.Native

  @min_interval 200
  @max_interval 60_000

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil) do
    Process.send_after(self(), :check, @min_interval)
    {:ok, %{last: nil, trimmed: nil, interval: @min_interval}}
  end

  @impl true
  def handle_info(:check, state) do
    code = :erlang.memory(:code)

    state =
      cond do
        # Still loading: wait for it to settle.
        code != state.last ->
          %{state | last: code, interval: @min_interval}

        code != state.trimmed ->
          if state.trimmed == nil, do: collect_boot_garbage()
          _ = trim()
          %{state | trimmed: code, interval: @min_interval}

        true ->
          %{state | interval: min(state.interval * 2, @max_interval)}
      end

    Process.send_after(self(), :check, state.interval)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  # Booting leaves large heaps of garbage behind in processes that then sit
  # idle and may never collect again (code_server after loading every
  # module, application_controller, the process that started the node):
  # collected once, their memory can go back to the OS with the trim.
  defp collect_boot_garbage do
    Enum.each(Process.list(), &:erlang.garbage_collect/1)
  end

  # The NIF may be missing (the application then fails to start anyway).
  defp trim do
    Native.engine_trim_heap()
  rescue
    ErlangError -> false
  end
end
