defmodule SwarmService.LimitsErrorsTest do
  # Limits are defined once, in the engine; the API's option checks and the
  # gateway's tool schemas take theirs from it. Every error reason the
  # engine can return has an entry in the one catalogue.
  use ExUnit.Case, async: true

  alias InterfaceService.Tools
  alias SwarmService.{Errors, Limits, Native, RuvSwarm}

  doctest SwarmService.Errors
  doctest SwarmService.Limits

  # Bounds in the tool schemas that are the gateway's own policy (see
  # InterfaceService.Tools), not engine limits; any other number there must
  # be one of the engine's.
  @gateway_policy %{
    {"swarm_init", "agents"} => 1000,
    {"swarm_monitor", "duration_ms"} => 60_000,
    {"swarm_monitor", "max_events"} => 1000,
    {"agent_spawn", "command"} => 64,
    {"agent_spawn", "command[]"} => 4096,
    {"agent_spawn", "timeout_ms"} => 3_600_000,
    {"task_orchestrate", "wait_ms"} => 600_000,
    {"benchmark_run", "iterations"} => 100_000
  }

  defp tool(name) do
    {:ok, %{inputSchema: schema}} = Tools.fetch(name)
    schema.properties
  end

  test "the limits are the engine's" do
    assert Limits.all() == Native.engine_limits()
    l = Limits.all()
    assert l.max_agents_per_swarm == 100_000 and l.max_name_bytes == 256
    assert l.max_attempts == 20 and l.max_task_agents == 1_000
    assert l.max_timeout_ms == 86_400_000 and l.max_capacity == 1024
  end

  test "the tool schemas' bounds are the engine's limits" do
    l = Limits.all()

    assert tool("swarm_init")["max_agents"].maximum == l.max_agents_per_swarm
    assert tool("agent_spawn")["capacity"].maximum == l.max_capacity

    t = tool("task_orchestrate")
    assert t["retries"].maximum == l.max_attempts
    assert t["max_agents"].maximum == l.max_task_agents
    assert t["timeout_ms"].maximum == l.max_timeout_ms
    assert t["subtasks"].maxItems == l.max_subtasks
    assert t["description"].maxLength == l.max_text_bytes
    assert t["capabilities"].maxItems == l.max_list_items
    assert t["capabilities"].items.maxLength == l.max_name_bytes

    m = tool("memory_store")
    assert m["key"].maxLength == l.max_name_bytes
    assert m["namespace"].maxLength == l.max_name_bytes
    assert m["ttl_ms"].maximum == l.max_timeout_ms
    assert m["tags"].maxItems == l.max_list_items
    assert tool("memory_get")["key"].maxLength == l.max_name_bytes
    assert tool("memory_search")["limit"].maximum == l.max_search_results
    assert tool("task_claim")["lease_ms"].maximum == l.max_timeout_ms

    # No other bound crept in: each is an engine limit or named policy.
    engine = MapSet.new(Map.values(l))
    # (tools/list publishes the bounds a model needs within its 12 KB; the
    # engine enforces every limit whatever the schema says.)
    assert length(Enum.flat_map(Tools.definitions(), &bounds(&1.inputSchema.properties, []))) > 15

    for %{name: name, inputSchema: s} <- Tools.definitions(),
        {path, bound} <- bounds(s.properties, []),
        path not in [["swarm_id"], ["agent_id"], ["task_id"], ["work_id"]] do
      key = {name, Enum.join(path, ".")}

      assert MapSet.member?(engine, bound) or Map.get(@gateway_policy, key) == bound or
               bound in [0, 1],
             "#{name}.#{Enum.join(path, ".")}: bound #{bound} is neither an engine limit nor gateway policy"
    end
  end

  # {path, number} for every maximum / maxLength / maxItems (ids aside).
  defp bounds(props, path) do
    Enum.flat_map(props, fn {key, schema} -> bounds_of(schema, path ++ [key]) end)
  end

  defp bounds_of(schema, path) when is_map(schema) do
    own =
      for k <- [:maximum, :maxLength, :maxItems],
          n = Map.get(schema, k),
          is_integer(n),
          not (k == :maxLength and List.last(path) =~ ~r/_id$/),
          do: {path, n}

    items =
      case schema do
        %{items: %{properties: props}} -> bounds(props, path)
        %{items: item} -> bounds_of(item, Enum.drop(path, -1) ++ [List.last(path) <> "[]"])
        _ -> []
      end

    own ++ items
  end

  test "the API's options are bounded by the engine's limits" do
    max = Limits.get(:max_agents_per_swarm)
    assert {:error, {:invalid_argument, msg}} = RuvSwarm.spawn_swarm(max_agents: max + 1)
    assert msg =~ "#{max}"
    {:ok, s} = RuvSwarm.spawn_swarm(max_agents: max)
    on_exit(fn -> RuvSwarm.destroy_swarm(s) end)
    assert {:ok, %{max_agents: ^max}} = RuvSwarm.swarm_status(s)

    # A bound the schema lets through, the engine accepts (and one past it not).
    attempts = Limits.get(:max_attempts)
    ctx = %{api: RuvSwarm}
    args = %{"swarm_id" => s, "description" => "d", "retries" => attempts}
    assert {:ok, _} = Tools.call("task_orchestrate", args, ctx)

    assert {:error, {:invalid_arguments, _}} =
             Tools.call("task_orchestrate", %{args | "retries" => attempts + 1}, ctx)

    ttl = Limits.get(:max_timeout_ms)
    margs = %{"swarm_id" => s, "key" => "k", "value" => 1, "ttl_ms" => ttl}
    assert {:ok, _} = Tools.call("memory_store", margs, ctx)

    key = String.duplicate("k", Limits.get(:max_name_bytes))
    assert {:ok, _} = Tools.call("memory_store", %{margs | "key" => key}, ctx)

    assert {:error, {:invalid_arguments, _}} =
             Tools.call("memory_store", %{margs | "key" => key <> "k"}, ctx)

    payload = :binary.copy("x", Limits.get(:max_payload_bytes))
    assert {:error, {:too_large, "task", _, limit}} = RuvSwarm.orchestrate(s, %{input: payload})
    assert limit == Limits.get(:max_payload_bytes)
  end

  test "every reason the engine returns has a catalogue entry" do
    reasons = Native.engine_error_reasons()
    tags = reasons |> Enum.map(&Errors.code/1) |> Enum.uniq()
    assert length(tags) == length(reasons)

    for reason <- reasons do
      assert Errors.known?(reason), "no catalogue entry for #{inspect(reason)}"
      %{message: m, code: code, rpc_code: rpc, http_status: http} = Errors.describe(reason)
      refute m =~ "error: "
      assert code != "error" and is_integer(rpc) and http in 400..599
      assert RuvSwarm.format_error(reason) == m
    end

    # The API's and gateway's own reasons too.
    for reason <- [
          :no_task,
          :no_quorum,
          :timeout,
          :cancelled,
          {:home_down, :a@b},
          {:not_committed, 2000},
          {:raft, :x},
          {:failed, "m"},
          {:timed_out, "m"},
          {:executor_unavailable, :a@b, Foo},
          {:invalid_arguments, "m"},
          :unknown_tool,
          {:timeout_after, 5},
          {:command_not_allowed, "rm"}
        ] do
      assert Errors.known?(reason), inspect(reason)
    end

    refute Errors.known?({:something, :else})
    assert Errors.describe(:swarm_not_found).http_status == 404
    assert Errors.describe({:swarm_full, 3}).http_status == 409
    assert Errors.describe({:invalid_argument, "x"}).rpc_code == -32_602
  end
end
