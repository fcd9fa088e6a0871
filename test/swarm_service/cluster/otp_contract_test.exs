defmodule SwarmService.Cluster.OTPContractTest do
  # The adapter contract on three real peer nodes.
  use SwarmService.Test.ClusterContract, harness: SwarmService.Test.ClusterContract.OTPHarness

  @moduletag :cluster
  @moduletag timeout: 30_000
end
