defmodule SwarmService.Cluster.FacadeTest do
  # The facade on the test node (single node, no configured members), and
  # configuration validation. Multi-node quorum: quorum_test.exs.
  use ExUnit.Case, async: false
  alias SwarmService.Cluster

  doctest Cluster

  test "a single node without configured members has quorum and leads itself" do
    assert Cluster.configured_members() == []
    assert Cluster.quorum?()
    assert Cluster.leader() == node()

    assert Cluster.status() == %{
             self: node(),
             adapter: Cluster.adapter(),
             members: [%{node: node(), up: true, configured: false}],
             quorum: true,
             leader: node()
           }
  end

  test "call and send through the facade" do
    assert Cluster.call(node(), :erlang, :node, []) == node()
    Process.register(self(), :facade_test_inbox)
    assert Cluster.send({:facade_test_inbox, node()}, :ping) == :ok
    assert_receive :ping
    assert Cluster.broadcast(:facade_test_inbox, :pong) == :ok
    assert_receive :pong
  end

  describe "configuration" do
    test "defaults: the adapter follows distribution" do
      config = Cluster.config!([])
      assert config.adapter == if(Node.alive?(), do: Cluster.OTP, else: Cluster.Local)
      assert %{seeds: [], members: [], cookie: nil, net_ticktime: nil} = config
      assert Cluster.config!(adapter: :local).adapter == Cluster.Local
      assert Cluster.config!(adapter: :otp).adapter == Cluster.OTP
    end

    test "node lists are validated and deduplicated" do
      config = Cluster.config!(seeds: [:a@h, :a@h], members: [:a@h, :b@h])
      assert config.seeds == [:a@h]
      assert config.members == [:a@h, :b@h]
    end

    test "wrong values raise, naming the option and its environment variable" do
      for {opts, words} <- [
            {[adapter: :partisan_please], [":adapter", "RUV_SWARM_CLUSTER"]},
            {[adapter: "otp"], [":adapter", "RUV_SWARM_CLUSTER"]},
            {[seeds: ["a@h"]], [":seeds", "RUV_SWARM_SEEDS", "name@host"]},
            {[seeds: :a@h], [":seeds", "RUV_SWARM_SEEDS"]},
            {[members: [:nohost]], [":members", "RUV_SWARM_MEMBERS"]},
            {[members: [:a@b@c]], [":members"]},
            {[cookie: ""], [":cookie", "RUV_SWARM_COOKIE"]},
            {[net_ticktime: 0], [":net_ticktime", "RUV_SWARM_NET_TICKTIME"]},
            {[retry_ms: -1], [":retry_ms"]},
            {[retry_ms: 500, max_retry_ms: 100], [":max_retry_ms"]},
            {[colour: :blue], [":colour"]}
          ] do
        error = assert_raise ArgumentError, fn -> Cluster.config!(opts) end

        for word <- words,
            do: assert(error.message =~ word, "#{inspect(opts)}: #{error.message}")
      end
    end
  end

  describe "config/runtime.exs" do
    @vars ~w(RUV_SWARM_CLUSTER RUV_SWARM_SEEDS RUV_SWARM_MEMBERS RUV_SWARM_COOKIE
             RUV_SWARM_NET_TICKTIME RUV_SWARM_ANTI_ENTROPY_MS)

    setup do
      saved = Map.new(@vars, &{&1, System.get_env(&1)})

      on_exit(fn ->
        for {var, value} <- saved,
            do: if(value, do: System.put_env(var, value), else: System.delete_env(var))
      end)

      for var <- @vars, do: System.delete_env(var)
      :ok
    end

    defp read_runtime do
      Config.Reader.read!("config/runtime.exs", env: :prod, target: :host)[:swarm_service]
    end

    test "parses the cluster variables" do
      System.put_env(%{
        "RUV_SWARM_CLUSTER" => " OTP ",
        "RUV_SWARM_SEEDS" => "a@10.0.0.1, b@10.0.0.2,",
        "RUV_SWARM_MEMBERS" => "a@10.0.0.1,b@10.0.0.2,c@10.0.0.3",
        "RUV_SWARM_COOKIE" => "s3cret",
        "RUV_SWARM_NET_TICKTIME" => "15",
        "RUV_SWARM_ANTI_ENTROPY_MS" => "250"
      })

      env = read_runtime()

      assert env[Cluster] == [
               adapter: :otp,
               seeds: [:"a@10.0.0.1", :"b@10.0.0.2"],
               members: [:"a@10.0.0.1", :"b@10.0.0.2", :"c@10.0.0.3"],
               cookie: "s3cret",
               net_ticktime: 15
             ]

      assert env[Cluster.Knowledge] == [anti_entropy_ms: 250]
      assert Cluster.config!(env[Cluster]).cookie == :s3cret
    end

    test "nothing set, nothing configured" do
      assert read_runtime()[Cluster] == nil
    end

    test "a wrong adapter or number names the variable" do
      System.put_env("RUV_SWARM_CLUSTER", "partisan")
      assert_raise RuntimeError, ~r/RUV_SWARM_CLUSTER must be otp or local/, &read_runtime/0
      System.put_env("RUV_SWARM_CLUSTER", "local")
      System.put_env("RUV_SWARM_NET_TICKTIME", "soon")
      assert_raise RuntimeError, ~r/RUV_SWARM_NET_TICKTIME must be an integer/, &read_runtime/0
    end
  end
end
