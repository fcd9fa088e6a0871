# Every test runs on a distributed (hidden) node, so multi-node tests can
# start peers with SwarmService.Test.PeerCluster. Peer tests are tagged
# :cluster (`mix test --exclude cluster` skips them).
SwarmService.Test.PeerCluster.ensure_distributed()
ExUnit.start(capture_log: true)

data_dir = Application.fetch_env!(:swarm_service, :data_dir)
System.at_exit(fn _ -> File.rm_rf(data_dir) end)
