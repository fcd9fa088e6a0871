defmodule InterfaceService.ToolsCompatTest do
  # What a model sees from the tools: the listing, ruv-swarm's names, the
  # recent swarm of a session, pages, and a task nothing would run.
  use ExUnit.Case, async: true

  alias InterfaceService.{Json, Tools}
  alias InterfaceService.Mcp.Protocol
  alias InterfaceService.Tools.{Recent, Schema}

  setup do
    # The gateway owns the table; without one running, start it here.
    if GenServer.whereis(Recent) == nil, do: start_supervised!(Recent)
    scope = "session-#{System.unique_integer([:positive])}"
    ctx = %{api: SwarmService.RuvSwarm, allowlist: ["tr a-z A-Z"], scope: scope}
    {:ok, ctx: ctx}
  end

  defp call(name, args, ctx), do: Tools.call(name, args, ctx)

  # The result as the client decodes it from JSON.
  defp wire(result),
    do: result |> Json.encode_term!() |> IO.iodata_to_binary() |> :jiffy.decode([:return_maps])

  describe "tools/list" do
    test "is at most 12 KB as JSON, and every parameter says what it is for" do
      {:ok, listing} = Protocol.tools_list(%{}, 100, :legacy)
      bytes = byte_size(IO.iodata_to_binary(Json.encode!(listing)))
      assert bytes <= 12 * 1024, "tools/list is #{bytes} bytes"

      for tool <- listing.tools do
        for {path, schema} <- params(tool.inputSchema, tool.name) do
          assert is_binary(schema[:description]) and schema.description != "",
                 "#{path} has no description"
        end

        assert is_map(tool.annotations), "#{tool.name} has no annotations"
      end
    end

    test "annotations say which tools only read, which destroy, which run programs" do
      by = Map.new(Tools.definitions(), &{&1.name, &1.annotations})

      for name <- ~w(swarm_status swarm_list agent_list task_status task_results memory_get) do
        assert by[name] == %{readOnlyHint: true}, name
      end

      assert %{destructiveHint: true, idempotentHint: true} = by["swarm_destroy"]
      assert %{destructiveHint: true, idempotentHint: true} = by["task_cancel"]
      assert %{destructiveHint: false} = by["swarm_init"]
      assert %{destructiveHint: false, openWorldHint: true} = by["agent_spawn"]
      assert %{destructiveHint: false, openWorldHint: true} = by["task_orchestrate"]
    end

    test "structuredContent matches the outputSchema of each tool that declares one", %{ctx: ctx} do
      outputs = for t <- Tools.definitions(), t[:outputSchema], into: %{}, do: {t.name, t}

      assert Map.keys(outputs) |> Enum.sort() ==
               ~w(agent_list agent_spawn swarm_init swarm_list task_orchestrate)

      {:ok, init} = call("swarm_init", %{"topology" => "star", "agents" => 2}, ctx)
      {:ok, spawn} = call("agent_spawn", %{"command" => ["tr", "a-z", "A-Z"]}, ctx)
      {:ok, list} = call("agent_list", %{"limit" => 2}, ctx)
      {:ok, swarms} = call("swarm_list", %{"limit" => 1}, ctx)
      {:ok, task} = call("task_orchestrate", %{"description" => "abc", "wait_ms" => 5000}, ctx)

      for {name, result} <- [
            {"swarm_init", init},
            {"agent_spawn", spawn},
            {"agent_list", list},
            {"swarm_list", swarms},
            {"task_orchestrate", task}
          ] do
        assert :ok = Schema.validate(wire(result), outputs[name].outputSchema), name
      end

      assert wire(list)["nextCursor"]
      assert wire(task)["result"] != nil
    end
  end

  # {path, schema} of every property, nested ones included.
  defp params(%{properties: props}, path) do
    Enum.flat_map(props, fn {key, schema} ->
      here = "#{path}.#{key}"
      nested = if is_map(schema[:items]), do: params(schema.items, here <> "[]"), else: []
      [{here, schema} | nested] ++ params(Map.delete(schema, :items), here)
    end)
  end

  defp params(_schema, _path), do: []

  describe "ruv-swarm's names" do
    test "its calls succeed, and swarmId defaults to the session's last swarm", %{ctx: ctx} do
      assert {:ok, %{swarm_id: swarm, topology: :mesh, strategy: :adaptive, max_agents: 5}} =
               call(
                 "swarm_init",
                 %{"topology" => "mesh", "maxAgents" => 5, "strategy" => "adaptive"},
                 ctx
               )

      assert {:ok, %{agent_id: agent, swarm_id: ^swarm, executor: :external}} =
               call(
                 "agent_spawn",
                 %{"type" => "researcher", "name" => "r1", "capabilities" => ["search"]},
                 ctx
               )

      assert {:ok, %{task_id: task, swarm_id: ^swarm}} =
               call(
                 "task_orchestrate",
                 %{
                   "task" => "find x",
                   "strategy" => "parallel",
                   "priority" => "high",
                   "maxAgents" => 1
                 },
                 ctx
               )

      assert {:ok, %{id: ^swarm}} = call("swarm_status", %{"verbose" => true}, ctx)
      assert {:ok, %{id: ^task}} = call("task_status", %{"detailed" => true}, ctx)

      assert {:ok, %{id: ^task}} =
               call("task_results", %{"taskId" => task, "format" => "summary"}, ctx)

      assert {:ok, %{id: ^agent}} =
               call("agent_metrics", %{"agentId" => agent, "metric" => "all"}, ctx)

      assert {:ok, %{agents: [%{id: ^agent}]}} = call("agent_list", %{"filter" => "idle"}, ctx)
      assert {:ok, %{agents: []}} = call("agent_list", %{"filter" => "busy"}, ctx)
      assert {:ok, %{engine: _}} = call("memory_usage", %{"detail" => "summary"}, ctx)
      assert {:ok, %{engine: true}} = call("features_detect", %{"category" => "all"}, ctx)

      # A misspelt argument is still an error.
      assert {:error, {:invalid_arguments, msg}} = call("agent_spawn", %{"typ" => "coder"}, ctx)
      assert msg =~ ~s(unknown property "typ")

      # Another session has its own recent swarm (none yet).
      other = %{ctx | scope: "another-#{System.unique_integer()}"}
      assert {:error, {:invalid_argument, msg}} = call("swarm_status", %{}, other)
      assert msg =~ "call swarm_init first"

      # A destroyed swarm is forgotten.
      assert {:ok, %{destroyed: true}} = call("swarm_destroy", %{"swarmId" => swarm}, ctx)
      assert {:error, {:invalid_argument, msg}} = call("agent_list", %{}, ctx)
      assert msg =~ "no swarm_id given"
    end

    test "its neural_* and daa_* tools are a tool error, not an unknown tool", %{ctx: ctx} do
      for name <- ~w(neural_status neural_train neural_patterns daa_init daa_agent_create) do
        assert Tools.known?(name)
        outcome = call(name, %{"agentId" => "a"}, ctx)
        assert {:error, {:invalid_argument, "not supported by this server: " <> _}} = outcome

        assert {:ok, %{isError: true, content: [%{text: text}]}} =
                 Protocol.tool_result(name, outcome)

        assert text =~ "not supported by this server: #{name}"
      end

      assert {:error, :unknown_tool} = call("neural_nonsense", %{}, ctx)
    end
  end

  describe "a task nothing would run" do
    test "with only external agents it answers at once and says what to do", %{ctx: ctx} do
      {:ok, %{swarm_id: swarm}} = call("swarm_init", %{"agents" => 3}, ctx)
      t0 = System.monotonic_time(:millisecond)

      assert {:ok, %{status: :pending, executing_agents: 0, message: msg, task_id: task}} =
               call("task_orchestrate", %{"description" => "hello", "wait_ms" => 10_000}, ctx)

      assert System.monotonic_time(:millisecond) - t0 < 2_000
      assert msg =~ "No agent of swarm #{swarm} runs work: its 3 agent(s) are external"
      assert msg =~ "agent_spawn with command"
      assert msg =~ "tr a-z A-Z"
      assert msg =~ "task_claim"

      # An agent that runs commands, spawned afterwards, takes the queued task.
      {:ok, _} = call("agent_spawn", %{"command" => ["tr", "a-z", "A-Z"]}, ctx)
      assert {:ok, _} = SwarmService.RuvSwarm.await_task(task, 10_000)
      assert {:ok, %{status: :completed}} = call("task_results", %{}, ctx)
    end

    test "with no agents it says so, and names task_claim when no command is allowed", %{ctx: ctx} do
      ctx = %{ctx | allowlist: []}
      {:ok, %{swarm_id: swarm}} = call("swarm_init", %{}, ctx)

      assert {:ok, %{message: msg}} =
               call("task_orchestrate", %{"task" => "x", "waitMs" => 5000}, ctx)

      assert msg =~ "Swarm #{swarm} has no agents"
      assert msg =~ "allows no commands"
      assert msg =~ "task_claim {agent_id}"
    end

    test "an external agent a client serves counts as running work", %{ctx: ctx} do
      {:ok, _} = call("swarm_init", %{}, ctx)
      {:ok, %{agent_id: agent}} = call("agent_spawn", %{}, ctx)
      {:ok, _} = call("task_orchestrate", %{"description" => "one"}, ctx)
      {:ok, %{work: %{work_id: work}}} = call("task_claim", %{"agent_id" => agent}, ctx)

      {:ok, _} =
        call("task_complete", %{"work_id" => work, "agent_id" => agent, "result" => 1}, ctx)

      assert {:ok, result} = call("task_orchestrate", %{"description" => "two"}, ctx)
      refute Map.has_key?(result, :message)
    end
  end

  describe "pages" do
    test "agent_list walks a large swarm page by page", %{ctx: ctx} do
      {:ok, %{swarm_id: swarm}} = call("swarm_init", %{"agents" => 250, "max_agents" => 300}, ctx)

      {ids, pages} =
        walk(
          fn c -> call("agent_list", compact(%{"limit" => 100, "cursor" => c}), ctx) end,
          :agents
        )

      assert pages == 3 and length(ids) == 250 and length(Enum.uniq(ids)) == 250
      {:ok, all} = SwarmService.RuvSwarm.list_agents(swarm)
      assert ids == Enum.map(all, & &1.id)

      # Default page size.
      {:ok, first} = call("agent_list", %{}, ctx)
      assert first.count == 100 and is_binary(first.nextCursor)

      assert {:error, {:invalid_argument, msg}} = call("agent_list", %{"cursor" => "bogus"}, ctx)
      assert msg =~ "is not one this server gave out"
      assert {:error, {:invalid_arguments, _}} = call("agent_list", %{"limit" => 1001}, ctx)
    end

    test "memory_search and swarm_list page too; one listing's cursor is refused by another",
         %{ctx: ctx} do
      {:ok, _} = call("swarm_init", %{}, ctx)
      for i <- 1..25, do: {:ok, _} = call("memory_store", %{"key" => "k#{i}", "value" => i}, ctx)

      {keys, 3} =
        walk(
          fn c ->
            call("memory_search", compact(%{"prefix" => "k", "limit" => 10, "cursor" => c}), ctx)
          end,
          :entries
        )

      assert length(Enum.uniq(keys)) == 25

      {:ok, %{nextCursor: mem_cursor}} = call("memory_search", %{"limit" => 10}, ctx)
      assert {:error, {:invalid_argument, _}} = call("swarm_list", %{"cursor" => mem_cursor}, ctx)

      # A second swarm, so a page of one has a next page.
      {:ok, _} = call("swarm_init", %{}, ctx)
      {:ok, %{count: 1, nextCursor: c}} = call("swarm_list", %{"limit" => 1}, ctx)
      assert {:ok, %{swarms: [_]}} = call("swarm_list", %{"limit" => 1, "cursor" => c}, ctx)
    end
  end

  defp walk(fun, key, cursor \\ nil, acc \\ [], pages \\ 0) do
    {:ok, page} = fun.(cursor)
    ids = Enum.map(Map.fetch!(page, key), &(&1[:id] || &1[:key]))

    case page do
      %{nextCursor: next} -> walk(fun, key, next, acc ++ ids, pages + 1)
      _ -> {acc ++ ids, pages + 1}
    end
  end

  defp compact(map), do: map |> Enum.reject(fn {_k, v} -> is_nil(v) end) |> Map.new()
end
