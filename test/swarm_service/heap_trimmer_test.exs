defmodule SwarmService.HeapTrimmerTest do
  # Not async: the trimmer waits for code loading to settle, which other
  # tests running alongside would keep unsettled.
  use ExUnit.Case, async: false

  alias SwarmService.Native
  alias SwarmService.Native.HeapTrimmer

  test "the node runs the heap trimmer" do
    assert is_pid(Process.whereis(HeapTrimmer))
  end

  test "trimming the C heap is harmless and answers a boolean" do
    assert is_boolean(Native.engine_trim_heap())
    # The engine keeps working afterwards.
    assert is_list(Native.swarm_list())
  end

  test "trims once loading has settled, then keeps running" do
    {:ok, pid} = GenServer.start_link(HeapTrimmer, nil)
    Code.ensure_loaded(:cow_http_hd)

    trimmed =
      Enum.find_value(1..20, fn _ ->
        send(pid, :check)
        send(pid, :unexpected)
        %{trimmed: trimmed} = :sys.get_state(pid)
        trimmed
      end)

    assert is_integer(trimmed)
    assert Process.alive?(pid)
    GenServer.stop(pid)
  end
end
