defmodule SwarmService.Test.Eventually do
  @moduledoc false
  # Polls `fun` until it returns a truthy value (returned) or `timeout_ms`
  # passes (then fails the test). For state that settles asynchronously:
  # fast on a quiet machine, still correct on a loaded one.
  import ExUnit.Assertions

  def eventually(fun, timeout_ms \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    poll(fun, deadline)
  end

  defp poll(fun, deadline) do
    case fun.() do
      result when result not in [nil, false] ->
        result

      _ ->
        if System.monotonic_time(:millisecond) > deadline do
          flunk("condition not met in time")
        else
          Process.sleep(5)
          poll(fun, deadline)
        end
    end
  end
end
