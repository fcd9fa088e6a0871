defmodule SwarmService.Cluster.QuorumTest do
  # quorum?/0, leader/0 and status/0 on real peer nodes under partitions.
  use ExUnit.Case, async: false
  import SwarmService.Test.Eventually
  alias SwarmService.Cluster
  alias SwarmService.Test.PeerCluster

  @moduletag :cluster
  @moduletag timeout: 30_000

  defp quorum?(node), do: PeerCluster.rpc(node, Cluster, :quorum?, [])
  defp leader(node), do: PeerCluster.rpc(node, Cluster, :leader, [])

  test "3 configured members: a 2|1 partition leaves quorum with the majority only" do
    [a, b, c] = nodes = PeerCluster.start(3, members: :all)
    for n <- nodes, do: assert(quorum?(n) and leader(n) == Enum.min(nodes))

    PeerCluster.partition([a, b], [c])
    assert quorum?(a) and quorum?(b)
    refute quorum?(c)
    assert leader(a) == Enum.min([a, b]) and leader(b) == Enum.min([a, b])
    assert leader(c) == nil

    status = PeerCluster.rpc(c, Cluster, :status, [])
    assert %{self: ^c, adapter: Cluster.OTP, quorum: false, leader: nil} = status

    assert status.members == [
             %{node: a, up: false, configured: true},
             %{node: b, up: false, configured: true},
             %{node: c, up: true, configured: true}
           ]

    PeerCluster.heal([a, b], [c])
    eventually(fn -> Enum.all?(nodes, &quorum?/1) end)
    for n <- nodes, do: assert(leader(n) == Enum.min(nodes))
  end

  test "5 configured members: 3|2, and the leader moves to the majority" do
    # Sorted names: n1 (the leader) ends up in the minority.
    [n1, n2, n3, n4, n5] = nodes = Enum.sort(PeerCluster.start(5, members: :all))
    for n <- nodes, do: assert(quorum?(n))

    PeerCluster.partition([n3, n4, n5], [n1, n2])
    for n <- [n3, n4, n5], do: assert(quorum?(n) and leader(n) == n3)
    for n <- [n1, n2], do: refute(quorum?(n) or leader(n))

    PeerCluster.heal([n3, n4, n5], [n1, n2])
    eventually(fn -> Enum.all?(nodes, &quorum?/1) end)
    for n <- nodes, do: assert(leader(n) == n1)
  end

  test "a dead configured member counts as down" do
    [a, b, c] = PeerCluster.start(3, members: :all)
    PeerCluster.kill(b)
    assert quorum?(a)
    PeerCluster.kill(c)
    # (kill/1 waits until the test node sees c gone; a hears of it soon after.)
    eventually(fn -> not quorum?(a) end)
    PeerCluster.restart(c)
    assert quorum?(a) and quorum?(c)
  end

  test "without configured members every side has quorum: no partition protection" do
    [a, b] = PeerCluster.start(2)
    PeerCluster.partition([a], [b])
    assert quorum?(a) and quorum?(b)
    assert leader(a) == a and leader(b) == b
  end
end
