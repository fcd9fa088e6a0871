defmodule SwarmService.Cluster.LocalContractTest do
  use SwarmService.Test.ClusterContract, harness: SwarmService.Test.ClusterContract.LocalHarness

  alias SwarmService.Cluster.Local

  test "joining another node is an error that explains the local adapter" do
    assert {:error, {:not_supported, msg}} = Local.join(:"other@127.0.0.1")
    assert msg =~ "local cluster adapter"
    assert msg =~ "RUV_SWARM_CLUSTER=otp"
    assert Local.members() == [node()]
    assert Local.leave() == :ok
  end
end
