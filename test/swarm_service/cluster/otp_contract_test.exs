defmodule SwarmService.Cluster.OTPContractTest do
  # The adapter contract on three real peer nodes.
  use SwarmService.Test.ClusterContract, harness: SwarmService.Test.ClusterContract.OTPHarness

  @moduletag :cluster
  @moduletag timeout: 30_000

  describe "nodes that do not run the adapter" do
    test "a connected remote shell is never a member, and listing swarms still works",
         %{nodes: [a, b, c]} do
      :ok = on(a, :subscribe, [relay(a)])
      {:ok, _} = rpc(a, SwarmService.RuvSwarm, :spawn_swarm, [[storage: :memory]])

      # A plain visible node, like `iex --remsh`: same cookie, no ruv_swarm.
      [name, host] = PeerCluster.node_name("remsh") |> Atom.to_string() |> String.split("@")

      {:ok, shell, shell_node} =
        :peer.start(%{
          name: String.to_charlist(name),
          host: String.to_charlist(host),
          longnames: true,
          connection: :standard_io,
          args: [~c"-setcookie", Atom.to_charlist(Node.get_cookie())]
        })

      on_exit(fn -> if Process.alive?(shell), do: :peer.stop(shell) end)
      true = :peer.call(shell, :net_kernel, :connect_node, [a])
      eventually(fn -> shell_node in rpc(a, :erlang, :nodes, []) end)

      refute_receive {:relay, ^a, {:cluster, :member_up, ^shell_node}}, 500
      assert on(a, :members) == Enum.sort([a, b, c])
      assert {:ok, [_ | _]} = rpc(a, SwarmService.RuvSwarm, :list_swarms, [])

      assert {:error, {:invalid_argument, msg}} = on(a, :join, [shell_node])
      assert msg =~ "does not run ruv_swarm"

      :peer.stop(shell)
      refute_receive {:relay, ^a, {:cluster, :member_down, ^shell_node}}, 500
    end
  end
end
