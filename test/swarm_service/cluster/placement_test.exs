defmodule SwarmService.Cluster.PlacementTest do
  # spawn_swarm(placement: :spread): the agents of a new swarm run across
  # the members that are up, not all on the node that made it.
  use ExUnit.Case, async: false

  alias SwarmService.RuvSwarm
  alias SwarmService.Test.Executors.Where
  alias SwarmService.Test.PeerCluster

  test "on a lone node :spread places every agent here; anything else is refused" do
    {:ok, s} = RuvSwarm.spawn_swarm(agents: 3, placement: :spread)
    {:ok, agents} = RuvSwarm.list_agents(s)
    assert Enum.map(agents, & &1.node) == List.duplicate(Atom.to_string(node()), 3)
    :ok = RuvSwarm.destroy_swarm(s)

    assert {:error, {:invalid_argument, "placement must be one of: local, spread"}} =
             RuvSwarm.spawn_swarm(placement: :everywhere)
  end

  @tag :cluster
  @tag timeout: 120_000
  test "on three nodes :spread places agents round-robin and each runs work where it is" do
    [a | _] = nodes = PeerCluster.start(3, members: :all)
    rpc = fn n, f, args -> PeerCluster.rpc(n, RuvSwarm, f, args) end

    {:ok, s} =
      rpc.(a, :spawn_swarm, [%{agents: 7, placement: :spread, executor: {:module, Where, nil}}])

    {:ok, agents} = rpc.(a, :list_agents, [s])
    [first, second, third] = Enum.sort(nodes)

    assert Enum.frequencies_by(agents, & &1.node) == %{
             Atom.to_string(first) => 3,
             Atom.to_string(second) => 2,
             Atom.to_string(third) => 2
           }

    # Work runs on the agents' own nodes: fan a task out to every agent.
    {:ok, t} = rpc.(a, :orchestrate, [s, %{input: 0, max_agents: 7}])
    {:ok, results} = rpc.(a, :await_task, [t, 10_000])
    assert results |> Enum.map(& &1.node) |> Enum.uniq() |> Enum.sort() == Enum.sort(nodes)
  end
end
