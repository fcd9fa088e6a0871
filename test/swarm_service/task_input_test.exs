defmodule SwarmService.TaskInputTest do
  use ExUnit.Case, async: true

  alias SwarmService.RuvSwarm

  defmodule Measure do
    @moduledoc false
    # Says what input it saw: its size and digest.
    @behaviour SwarmService.Executor
    def run(%{input: input}, _ctx) when is_binary(input),
      do: {:ok, %{bytes: byte_size(input), md5: :erlang.md5(input)}}

    def run(%{input: other}, _ctx), do: {:error, "not a binary: #{inspect(other)}"}
  end

  defp swarm! do
    {:ok, id} = RuvSwarm.spawn_swarm(agents: 1, executor: {:module, Measure})
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  test "a 600 KB plain-text task is accepted and its executor sees the whole text" do
    s = swarm!()
    text = :binary.copy("0123456789", 60_000)
    assert {:ok, t} = RuvSwarm.orchestrate(s, text)
    assert {:ok, %{bytes: 600_000, md5: md5}} = RuvSwarm.await_task(t, 5_000)
    assert md5 == :erlang.md5(text)
    # The text is the task's description too, as before.
    assert {:ok, %{description: ^text}} = RuvSwarm.task_status(t)
  end

  test "a map task without an input still hands its description over as the input" do
    s = swarm!()
    assert {:ok, t} = RuvSwarm.orchestrate(s, %{description: "abc", priority: :high})
    assert {:ok, %{bytes: 3, md5: md5}} = RuvSwarm.await_task(t, 5_000)
    assert md5 == :erlang.md5("abc")
  end

  test "a plain-text task over the payload limit is refused, counting the text once" do
    s = swarm!()
    text = :binary.copy("x", 1_100_000)
    assert {:error, {:too_large, "task", size, 1_048_576}} = RuvSwarm.orchestrate(s, text)
    assert size < 1_200_000
  end
end
