defmodule SwarmService.Test.PeerClusterTest do
  # The multi-node test support itself: peers boot with the app, partitions
  # hold against everything that reconnects nodes, kill/restart work.
  use ExUnit.Case, async: false
  alias SwarmService.Test.PeerCluster

  @moduletag :cluster
  @moduletag timeout: 30_000

  test "peers run the app, see each other, and not the hidden test node" do
    [a, b, c] = nodes = PeerCluster.start(3)

    for n <- nodes do
      assert Enum.sort(PeerCluster.rpc(n, :erlang, :nodes, [])) == Enum.sort(nodes -- [n])

      assert {:swarm_service, _, _} =
               List.keyfind(
                 PeerCluster.rpc(n, Application, :started_applications, []),
                 :swarm_service,
                 0
               )

      assert PeerCluster.rpc(n, Application, :get_env, [:swarm_service, InterfaceService])[
               :enabled
             ] == false
    end

    # The test node reaches every peer over a hidden connection: it is
    # nobody's member.
    for n <- nodes, do: assert(node() in PeerCluster.rpc(n, :erlang, :nodes, [:hidden]))
    assert Enum.all?([a, b, c], &(&1 in Node.list(:hidden)))
    assert Enum.all?(nodes, &(&1 not in Node.list()))
  end

  test "a partition holds while nodes try to reconnect, and heals" do
    # Configured members: the cluster adapter retries the other side every
    # 50..200 ms, on top of :global and the attempts below.
    [a, b, c] =
      PeerCluster.start(3,
        members: :all,
        env: [{SwarmService.Cluster, [retry_ms: 50, max_retry_ms: 200]}]
      )

    PeerCluster.partition([a, b], [c])

    # Explicit connection attempts and sends (which auto-connect) fail.
    assert PeerCluster.rpc(a, :net_adm, :ping, [c]) == :pang
    assert PeerCluster.rpc(c, :net_kernel, :connect_node, [b]) == false
    PeerCluster.rpc(c, Kernel, :send, [{:nobody, a}, :hello])

    for _ <- 1..10 do
      Process.sleep(200)
      assert PeerCluster.rpc(a, :erlang, :nodes, []) == [b]
      assert PeerCluster.rpc(b, :erlang, :nodes, []) == [a]
      assert PeerCluster.rpc(c, :erlang, :nodes, []) == []
    end

    PeerCluster.heal([a, b], [c])
    assert Enum.sort(PeerCluster.rpc(c, :erlang, :nodes, [])) == Enum.sort([a, b])
  end

  test "kill is abrupt, restart brings the same name back in a fresh VM" do
    [a, b, c] = PeerCluster.start(3)
    old_pid = PeerCluster.os_pid(b)

    PeerCluster.kill(b)
    refute PeerCluster.alive?(b)
    assert System.cmd("kill", ["-0", old_pid], stderr_to_stdout: true) |> elem(1) != 0
    assert PeerCluster.rpc(a, :erlang, :nodes, []) == [c]

    PeerCluster.restart(b)
    assert PeerCluster.os_pid(b) != old_pid
    assert Enum.sort(PeerCluster.rpc(b, :erlang, :nodes, [])) == Enum.sort([a, c])
  end
end
