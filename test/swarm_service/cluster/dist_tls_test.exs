Code.require_file("../../cli/cli_helpers.exs", __DIR__)

defmodule SwarmService.Cluster.DistTLSTest do
  # Distribution over TLS between real VMs: peers started with
  # `-proto_dist inet_tls`, certificates from a throw-away CA made with the
  # openssl CLI (the commands the README suggests). The test node itself
  # speaks plain TCP, so it drives the TLS peers over their :peer control
  # channel only.
  use ExUnit.Case, async: false

  import SwarmService.CLITest.Helpers
  alias SwarmService.CLI.{Daemon, PidFile}
  alias SwarmService.RuvSwarm
  alias SwarmService.Test.PeerCluster

  @moduletag :cluster
  @moduletag timeout: 300_000

  setup_all do
    openssl = System.find_executable("openssl") || raise "openssl not found: run `make deps`"
    dir = Path.join(System.tmp_dir!(), "ruv-swarm-tls-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf(dir) end)

    good = optfile(openssl, dir, "cluster")
    rogue = optfile(openssl, dir, "rogue")
    nodes = PeerCluster.start(3, members: :all, dist_tls: good)
    %{nodes: nodes, good: good, rogue: rogue}
  end

  test "three TLS peers form a cluster and run a swarm across nodes", %{nodes: [a, b, c] = nodes} do
    for n <- nodes do
      assert Enum.sort(PeerCluster.rpc(n, Node, :list, [])) == Enum.sort(nodes -- [n])
      assert {:ok, [[~c"inet_tls"]]} = PeerCluster.rpc(n, :init, :get_argument, [:proto_dist])

      # Every connection the peer holds is a TLS one.
      {:ok, info} = PeerCluster.rpc(n, :net_kernel, :nodes_info, [])
      assert length(info) == 2

      for {_peer, props} <- info do
        assert {:net_address, _, _, :tls, _} = props[:address]
      end
    end

    {:ok, swarm} = PeerCluster.rpc(a, RuvSwarm, :spawn_swarm, [%{storage: :memory, agents: 2}])

    for n <- [b, c] do
      assert {:ok, %{agents: %{total: 2}}} = PeerCluster.rpc(n, RuvSwarm, :swarm_status, [swarm])
    end
  end

  test "a plain-TCP node with the cluster's cookie is refused", %{nodes: [a | _] = nodes} do
    # Same cookie (PeerCluster gives every peer the test node's), no TLS.
    [plain] = PeerCluster.start(1, connect: false)

    refute PeerCluster.rpc(plain, :net_kernel, :connect_node, [a])
    refute PeerCluster.rpc(a, :net_kernel, :connect_node, [plain])
    # The test node too is plain TCP and holds the peers' cookie.
    refute Node.connect(a)
    refute plain in PeerCluster.rpc(a, Node, :list, [:connected])
    assert Enum.sort(PeerCluster.rpc(a, Node, :list, [])) == Enum.sort(nodes -- [a])
  end

  test "a node whose certificate another CA signed is refused, both ways",
       %{nodes: [a | _], rogue: rogue} do
    [r1, r2] = PeerCluster.start(2, dist_tls: rogue)

    # Their TLS works (they met each other); only the cluster's CA is missing.
    assert PeerCluster.rpc(r1, Node, :list, []) == [r2]

    refute PeerCluster.rpc(r1, :net_kernel, :connect_node, [a])
    refute PeerCluster.rpc(a, :net_kernel, :connect_node, [r1])
    refute r1 in PeerCluster.rpc(a, Node, :list, [:connected])
  end

  test "start --detached with RUV_SWARM_DIST_TLS runs the node over TLS", %{good: good} do
    # A peer of its own: the cluster's peers keep their membership as it is.
    [a] = PeerCluster.start(1, dist_tls: good)

    with_home(fn home ->
      [port, health] = [free_port(), free_port()]
      name = "tls_cli_#{System.unique_integer([:positive])}@127.0.0.1"
      # The peers' cookie, so a peer may join the node.
      cookie = Atom.to_string(Node.get_cookie())
      System.put_env("RUV_SWARM_DIST_TLS", good)

      try do
        assert {0, out, _} =
                 cli(
                   ~w(start --detached --port #{port} --health-port #{health}) ++
                     ~w(--name #{name} --cookie #{cookie})
                 )

        assert out =~ "ruv-swarm started: node #{name}"
        {:ok, %{"pid" => pid} = info} = PidFile.read(Path.join(home, "mcp-server.pid"))

        try do
          assert info["distribution"] == "tls"
          assert File.read!("/proc/#{pid}/cmdline") =~ "-proto_dist\0inet_tls\0-ssl_dist_optfile"
          assert {0, status, ""} = cli(["status"])
          assert status =~ "dist:    tls"

          # A TLS peer reaches the node; the plain-TCP test node cannot.
          node = String.to_atom(name)
          assert PeerCluster.rpc(a, :net_kernel, :connect_node, [node])
          {:ok, props} = PeerCluster.rpc(a, :net_kernel, :node_info, [node])
          assert {:net_address, _, _, :tls, _} = props[:address]
          :erlang.set_cookie(node, Node.get_cookie())
          refute Node.connect(node)
        after
          Daemon.stop(info, 10_000)
        end
      after
        System.delete_env("RUV_SWARM_DIST_TLS")
      end
    end)
  end

  # A CA, a node certificate it signs (shared by every node of the test) and
  # the ssl_dist options file that uses them. OTP checks the peer's
  # certificate against the host part of its node name as a DNS name, even
  # for an address: hence DNS:127.0.0.1.
  defp optfile(openssl, dir, ca) do
    path = &Path.join(dir, "#{ca}-#{&1}")
    ec = ~w(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

    run!(
      openssl,
      ~w(req -x509 -days 2 -subj /CN=#{ca}-ca) ++
        ec ++
        ["-keyout", path.("ca.key"), "-out", path.("ca.pem")]
    )

    run!(
      openssl,
      ~w(req -subj /CN=#{ca}-node) ++
        ec ++
        ["-keyout", path.("node.key"), "-out", path.("node.csr")]
    )

    File.write!(path.("ext.cnf"), "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n")

    run!(
      openssl,
      ~w(x509 -req -days 2 -CAcreateserial) ++
        ["-in", path.("node.csr"), "-CA", path.("ca.pem"), "-CAkey", path.("ca.key")] ++
        ["-extfile", path.("ext.cnf"), "-out", path.("node.pem")]
    )

    files = [
      certfile: path.("node.pem"),
      keyfile: path.("node.key"),
      cacertfile: path.("ca.pem")
    ]

    files = for {k, v} <- files, do: {k, String.to_charlist(v)}
    verify = [verify: :verify_peer, secure_renegotiate: true]

    terms = [
      server: files ++ verify ++ [fail_if_no_peer_cert: true],
      client: files ++ verify
    ]

    File.write!(path.("dist.conf"), :io_lib.format(~c"~p.~n", [terms]))
    path.("dist.conf")
  end

  defp run!(cmd, args) do
    case System.cmd(cmd, args, stderr_to_stdout: true) do
      {_, 0} -> :ok
      {out, status} -> flunk("#{cmd} #{Enum.join(args, " ")} exited #{status}:\n#{out}")
    end
  end
end
