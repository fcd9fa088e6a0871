defmodule SwarmService.SwarmCapsTest do
  # One client creating swarms without end hits its cap and the node's;
  # concurrent creations never go past a cap; destroying gives places back.
  use ExUnit.Case, async: false

  alias SwarmService.RuvSwarm

  setup do
    old = Application.get_env(:swarm_service, SwarmService.SwarmCaps)
    on_exit(fn -> Application.put_env(:swarm_service, SwarmService.SwarmCaps, old || []) end)
    :ok
  end

  defp caps(client, node),
    do:
      Application.put_env(:swarm_service, SwarmService.SwarmCaps,
        max_swarms_per_client: client,
        max_swarms: node
      )

  test "a client gets its cap and no more, even racing; others still create; destroy frees" do
    caps(5, 100_000)
    owner = {:test, make_ref()}

    results =
      1..20
      |> Task.async_stream(fn _ -> RuvSwarm.spawn_swarm(owner: owner, storage: :memory) end,
        max_concurrency: 20
      )
      |> Enum.map(fn {:ok, r} -> r end)

    created = for {:ok, id} <- results, do: id
    assert length(created) == 5
    assert Enum.count(results, &(&1 == {:error, {:too_many_swarms, :client, 5}})) == 15

    assert SwarmService.Errors.http_status({:too_many_swarms, :client, 5}) == 429
    assert SwarmService.Errors.message({:too_many_swarms, :client, 5}) =~ "already has 5 swarms"

    assert {:ok, other} = RuvSwarm.spawn_swarm(owner: {:test, make_ref()}, storage: :memory)
    :ok = RuvSwarm.destroy_swarm(hd(created))
    assert {:ok, again} = RuvSwarm.spawn_swarm(owner: owner, storage: :memory)
    Enum.each([other, again | tl(created)], &RuvSwarm.destroy_swarm/1)
  end

  test "the node cap counts every swarm, whoever owns it" do
    # Sync test: nothing else creates swarms meanwhile.
    existing = :ets.lookup_element(SwarmService.SwarmCaps, :node, 2)
    caps(1_000, existing + 2)
    {:ok, a} = RuvSwarm.spawn_swarm(owner: :one, storage: :memory)
    {:ok, b} = RuvSwarm.spawn_swarm(owner: :two, storage: :memory)
    cap = existing + 2
    assert {:error, {:too_many_swarms, :node, ^cap}} = RuvSwarm.spawn_swarm(owner: :three)
    assert SwarmService.Errors.http_status({:too_many_swarms, :node, cap}) == 503
    RuvSwarm.destroy_swarm(a)
    RuvSwarm.destroy_swarm(b)
  end
end
