defmodule SwarmService.Test.ClusterContract do
  @moduledoc false
  # The contract every SwarmService.Cluster adapter meets, as one set of
  # tests `use`d once per adapter (phoenix_pubsub style):
  #
  #     use SwarmService.Test.ClusterContract, harness: SomeHarness
  #
  # A harness says which adapter module is under test, starts the nodes
  # the tests run on (one node for a single-node adapter, three peer nodes
  # for a distributed one) and runs functions on them. Tests that need
  # several nodes are only defined when the harness has them.

  defmodule Harness do
    @moduledoc false
    @callback adapter() :: module()
    @callback multi_node?() :: boolean()
    @callback start(context :: map()) :: [node()]
    @callback rpc(node(), module(), atom(), list()) :: term()
  end

  defmodule LocalHarness do
    @moduledoc false
    # The test node itself, running SwarmService.Cluster.Local (started
    # here if the application runs another adapter).
    @behaviour Harness
    alias SwarmService.Cluster.Local

    def adapter, do: Local
    def multi_node?, do: false

    def start(_context) do
      unless Process.whereis(Local) do
        ExUnit.Callbacks.start_supervised!(%{
          id: Local,
          start: {Local, :start_link, [SwarmService.Cluster.config!(adapter: :local)]}
        })
      end

      [node()]
    end

    def rpc(node, m, f, a) when node == node(), do: apply(m, f, a)
  end

  defmodule OTPHarness do
    @moduledoc false
    # Three peer nodes running SwarmService.Cluster.OTP, each configured
    # with all three as members and quick reconnection.
    @behaviour Harness
    alias SwarmService.Test.PeerCluster

    def adapter, do: SwarmService.Cluster.OTP
    def multi_node?, do: true

    def start(_context) do
      PeerCluster.start(3,
        members: :all,
        env: [{SwarmService.Cluster, [retry_ms: 50, max_retry_ms: 500]}]
      )
    end

    def rpc(node, m, f, a), do: PeerCluster.rpc(node, m, f, a)
  end

  defmacro __using__(opts) do
    harness = Keyword.fetch!(opts, :harness)

    quote location: :keep do
      use ExUnit.Case, async: false
      import SwarmService.Test.Eventually
      alias SwarmService.Test.{PeerCluster, Relay}

      @harness unquote(harness)
      @adapter @harness.adapter()

      setup context do
        %{nodes: @harness.start(context)}
      end

      defp rpc(node, m, f, a), do: @harness.rpc(node, m, f, a)
      defp on(node, fun, args \\ []), do: rpc(node, @adapter, fun, args)

      # A relay on `node` registered as `name`: messages to it reach the test
      # process as {:relay, node, message}.
      defp relay(node, name \\ nil), do: rpc(node, Relay, :start, [name, self()])

      # The monitors the adapter process holds (one per subscriber).
      defp adapter_monitors(node) do
        pid = rpc(node, Process, :whereis, [@adapter])
        {:monitors, monitors} = rpc(node, Process, :info, [pid, :monitors])
        length(monitors)
      end

      describe "members" do
        test "include this node, are sorted, and agree across the cluster", %{nodes: nodes} do
          for n <- nodes do
            members = on(n, :members)
            assert n in members
            assert members == Enum.sort(members)
            assert members == Enum.sort(nodes)
          end
        end
      end

      describe "join and leave" do
        test "joining this node is a no-op", %{nodes: [n | _] = nodes} do
          assert on(n, :join, [n]) == :ok
          assert on(n, :members) == Enum.sort(nodes)
        end

        test "a bad node name is an error, not a crash", %{nodes: [n | _]} do
          assert {:error, {_, msg}} = on(n, :join, ["not-an-atom@host"])
          assert is_binary(msg)
        end
      end

      describe "send and broadcast" do
        test "send reaches a registered name on a member", %{nodes: nodes} do
          name = :contract_inbox
          for n <- nodes, do: relay(n, name)
          [from | _] = nodes

          for to <- nodes do
            assert on(from, :send, [{name, to}, {:hello, to}]) == :ok
            assert_receive {:relay, ^to, {:hello, ^to}}, 5_000
          end
        end

        test "send to an unknown name or a node that is not a member is dropped", %{
          nodes: [n | _]
        } do
          assert on(n, :send, [{:nobody_registered_this, n}, :x]) == :ok
          assert on(n, :send, [{:contract_inbox, :"nobody@127.0.0.1"}, :x]) == :ok
          refute :"nobody@127.0.0.1" in on(n, :members)
        end

        test "broadcast reaches the name on every member, this node included", %{nodes: nodes} do
          name = :contract_broadcast
          for n <- nodes, do: relay(n, name)
          [from | _] = nodes

          assert on(from, :broadcast, [name, :all_hands]) == :ok
          for n <- nodes, do: assert_receive({:relay, ^n, :all_hands}, 5_000)
          refute_receive {:relay, _, :all_hands}, 100
        end
      end

      describe "call" do
        test "returns what the function returns, on every member", %{nodes: [from | _] = nodes} do
          for n <- nodes do
            assert on(from, :call, [n, :erlang, :node, [], 5_000]) == n
          end
        end

        test "an unreachable node is {:error, {:nodedown, node}}", %{nodes: [n | _]} do
          ghost = :"ghost@127.0.0.1"
          assert on(n, :call, [ghost, :erlang, :node, [], 1_000]) == {:error, {:nodedown, ghost}}
        end

        test "a call that takes too long is {:error, :timeout}", %{nodes: nodes} do
          from = hd(nodes)
          to = List.last(nodes)
          assert on(from, :call, [to, Process, :sleep, [2_000], 100]) == {:error, :timeout}
        end

        test "exceptions are raised in the caller, as with :erpc", %{nodes: nodes} do
          from = hd(nodes)
          to = List.last(nodes)

          assert {:exception, :boom, _} =
                   catch_error(on(from, :call, [to, :erlang, :error, [:boom], 1_000]))

          assert catch_throw(on(from, :call, [to, :erlang, :throw, [:ball], 1_000])) == :ball
        end
      end

      describe "subscribe" do
        test "a subscriber that dies is dropped; subscribing twice is one subscription", %{
          nodes: [n | _]
        } do
          before = adapter_monitors(n)
          sub = relay(n)
          assert on(n, :subscribe, [sub]) == :ok
          assert on(n, :subscribe, [sub]) == :ok
          assert adapter_monitors(n) == before + 1

          rpc(n, Relay, :stop, [sub])
          eventually(fn -> adapter_monitors(n) == before end)
        end
      end

      if @harness.multi_node?() do
        describe "membership events" do
          test "member_down when a node dies, member_up when it comes back", %{
            nodes: [a, b, c]
          } do
            :ok = on(a, :subscribe, [relay(a)])

            PeerCluster.kill(c)
            assert_receive {:relay, ^a, {:cluster, :member_down, ^c}}, 10_000
            assert c not in on(a, :members)

            # No help from the test: the adapters reconnect by themselves
            # (c's configured members, and a and b retrying c).
            PeerCluster.restart(c, connect: false)
            assert_receive {:relay, ^a, {:cluster, :member_up, ^c}}, 10_000
            eventually(fn -> Enum.all?([a, c], &(on(&1, :members) == on(b, :members))) end)
            assert on(b, :members) == Enum.sort([a, b, c])
          end

          test "a call to a node that died is {:error, {:nodedown, node}}", %{nodes: [a, _b, c]} do
            PeerCluster.kill(c)
            assert on(a, :call, [c, :erlang, :node, [], 1_000]) == {:error, {:nodedown, c}}
          end

          test "leave disconnects and stays out until join", %{nodes: [a, b, c]} do
            assert on(c, :leave) == :ok
            assert on(c, :members) == [c]
            eventually(fn -> on(a, :members) == Enum.sort([a, b]) end)

            # Configured members retry every 50..500 ms: nobody pulls c back.
            for _ <- 1..5 do
              Process.sleep(200)
              assert on(c, :members) == [c]
              assert on(b, :members) == Enum.sort([a, b])
            end

            assert on(c, :join, [a]) == :ok

            eventually(fn -> Enum.all?([a, b, c], &(on(&1, :members) == Enum.sort([a, b, c]))) end)
          end

          test "a node boots before its seed and connects once the seed is up" do
            seed = PeerCluster.node_name("seed")
            env = [{SwarmService.Cluster, [seeds: [seed], retry_ms: 50, max_retry_ms: 300]}]
            [late] = PeerCluster.start(1, connect: false, env: env)

            Process.sleep(500)
            assert on(late, :members) == [late]

            [^seed] = PeerCluster.start(1, names: [seed], connect: false)
            eventually(fn -> on(late, :members) == Enum.sort([late, seed]) end, 10_000)
            assert on(seed, :members) == Enum.sort([late, seed])
          end
        end
      end
    end
  end
end
