defmodule InterfaceService.ToolsTest do
  use ExUnit.Case, async: true

  alias InterfaceService.Tools
  alias InterfaceService.Tools.Schema

  test "tools/list stays under 12 KB and every tool is complete" do
    defs = Tools.definitions()

    assert Enum.map(defs, & &1.name) ==
             ~w(swarm_init swarm_status swarm_list swarm_destroy swarm_monitor agent_spawn
                agent_list agent_metrics task_orchestrate task_status task_results task_cancel
                task_claim task_complete memory_store memory_get memory_search memory_usage
                share_discovery subscribe_discoveries coordinate features_detect cluster_status
                benchmark_run)

    size = byte_size(IO.iodata_to_binary(:jiffy.encode(%{tools: defs}, [:use_nil])))
    assert size <= 12 * 1024, "tools/list is #{size} bytes"

    for %{name: name, description: d, inputSchema: s} <- defs do
      assert name =~ ~r/^[a-z_]+$/
      assert d != "" and not String.contains?(d, "\n")
      assert s.type == "object"
    end
  end

  test "the schema validator names the path and the rule" do
    {:ok, tool} = Tools.fetch("task_orchestrate")

    assert :ok =
             Schema.validate(
               %{"swarm_id" => "s", "description" => "d", "priority" => "high"},
               tool.inputSchema
             )

    assert {:error, msg} = Schema.validate(%{"swarm_id" => "s"}, tool.inputSchema)
    assert msg =~ "arguments.description is required"

    assert {:error, msg} =
             Schema.validate(
               %{
                 "swarm_id" => "s",
                 "description" => "d",
                 "retries" => 0,
                 "subtasks" => [%{"name" => 1}]
               },
               tool.inputSchema
             )

    assert msg =~ "arguments.retries must be >= 1"
    assert msg =~ "arguments.subtasks[0].name must be string"

    assert {:error, msg} =
             Schema.validate(
               %{"swarm_id" => "s", "description" => "d", "colour" => 1},
               tool.inputSchema
             )

    assert msg =~ ~s(unknown property "colour")
  end

  test "aliases resolve to their tools" do
    assert Tools.resolve_alias("swarm_spawn") == "swarm_init"
    assert Tools.resolve_alias("coordinate_task") == "task_orchestrate"
    assert Tools.resolve_alias("swarm_list") == "swarm_list"
  end

  test "the rate limiter refills at the configured rate" do
    tab = InterfaceService.RateLimiter.new_table()
    t0 = 1_000_000_000
    # 10/s, burst 2: two immediate takes pass, the third waits ~100 ms.
    assert :ok = InterfaceService.RateLimiter.take(tab, :c, 10, 2, t0)
    assert :ok = InterfaceService.RateLimiter.take(tab, :c, 10, 2, t0)
    assert {:error, wait_ms} = InterfaceService.RateLimiter.take(tab, :c, 10, 2, t0)
    assert wait_ms in 90..110
    assert :ok = InterfaceService.RateLimiter.take(tab, :c, 10, 2, t0 + 100_000)
    assert :ok = InterfaceService.RateLimiter.take(tab, :other, 10, 2, t0)
  end
end
