defmodule SwarmService.CoordinationTest do
  use ExUnit.Case, async: true

  alias SwarmService.Coordination
  import SwarmService.Test.Eventually

  test "the rest of a route whose holder never passes it on is dropped after its time" do
    holder_id = "holder-#{System.unique_integer([:positive])}"
    test = self()

    # Takes the message and dies without forwarding it.
    holder =
      spawn(fn ->
        receive do
          {:swarm_coordination, delivery} -> send(test, {:held, delivery.to})
        end
      end)

    hops = [{nil, holder_id, holder}, {holder_id, "after-#{holder_id}", nil}]
    :ok = Coordination.start("swarm-test", :hello, hops, 100)
    assert_receive {:held, ^holder_id}

    rest = fn -> :ets.match_object(Coordination, {{:_, holder_id}, :_, :_}) end
    assert [{_, "after-" <> _, nil}] = rest.()
    eventually(fn -> rest.() == [] end)
  end
end
