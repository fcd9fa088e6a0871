defmodule InterfaceService.CommandAllowlistTest do
  # Issue #11: an allow-list entry governs the arguments, not just the
  # executable; risky entries are reported at boot.
  use InterfaceService.GatewayCase, async: false

  import ExUnit.CaptureLog
  alias SwarmService.Executor.Allowlist

  defp post(url, tool, args), do: http(:post, url <> "/api/mcp/" <> tool, [], encode(args))

  defp spawn_command(url, argv) do
    {200, _, body} = post(url, "swarm_init", %{})
    post(url, "agent_spawn", %{swarm_id: json(body)["swarm_id"], command: argv})
  end

  test "an allow-listed env cannot be handed a shell and its arguments" do
    gw = start_gateway(command_allowlist: ["tr", "/usr/bin/env"])

    {403, _, body} = spawn_command(gw.url, ["env", "sh", "-c", "id; echo $RUV_SWARM_TOKENS"])
    assert json(body)["error"] =~ "allow-list"
    {403, _, _} = spawn_command(gw.url, ["tr", "a-z", "A-Z"])
    {200, _, body} = spawn_command(gw.url, ["tr"])
    assert json(body)["executor"] == "command"
    {200, _, _} = spawn_command(gw.url, ["env"])
  end

  test "no arguments, exactly these arguments, a prefix then anything, any arguments" do
    list = ["tr", "sort -r", "grep -F *", "/bin/cat *"]
    assert Allowlist.allowed?(["tr"], list)
    refute Allowlist.allowed?(["tr", "x"], list)
    assert Allowlist.allowed?(["sort", "-r"], list)
    refute Allowlist.allowed?(["sort"], list)
    refute Allowlist.allowed?(["sort", "-r", "/etc/shadow"], list)
    assert Allowlist.allowed?(["grep", "-F"], list)
    assert Allowlist.allowed?(["grep", "-F", "x", "file"], list)
    refute Allowlist.allowed?(["grep", "-e", "x"], list)
    assert Allowlist.allowed?(["/bin/cat", "-n", "a"], list)
    assert Allowlist.allowed?([System.find_executable("tr")], list), "a path to the same file"
    refute Allowlist.allowed?(["/tmp/nowhere/tr"], list), "a base name alone is not enough"
    refute Allowlist.allowed?(["tr"], [])
  end

  test "bad entries are refused and risky ones are logged at boot" do
    assert {:error, _} = Allowlist.parse("")
    assert {:error, _} = Allowlist.parse("* x")
    assert {:error, _} = Allowlist.parse("a * b")

    assert_raise ArgumentError, ~r/command_allowlist/, fn ->
      InterfaceService.Config.new!(command_allowlist: ["tr * x"], api: engine_api())
    end

    log =
      capture_log(fn ->
        InterfaceService.Config.new!(
          command_allowlist: ["/usr/bin/env *", "sh -c *", "tr *", "python3 -c print(1)"],
          api: engine_api()
        )
      end)

    assert log =~ ~s("/usr/bin/env *")
    assert log =~ ~s("sh -c *")
    refute log =~ ~s("tr *")
    refute log =~ "python3"
  end
end
