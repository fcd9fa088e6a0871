defmodule SwarmService.CLI.ParseTest do
  use ExUnit.Case, async: true

  alias SwarmService.CLI

  test "accepts each command with its own options" do
    assert {:ok, "start", opts} =
             CLI.parse(~w(start -d --port 5000 --health-port 5001 --name a@127.0.0.1 --cookie c))

    assert opts[:detached] and opts[:port] == 5000 and opts[:health_port] == 5001
    assert {:ok, "stop", [timeout: 250]} = CLI.parse(~w(stop --timeout 250))
    assert {:ok, "status", []} = CLI.parse(["status"])
    assert {:ok, "tools", []} = CLI.parse(["tools"])
    assert {:ok, :help} = CLI.parse(["--help"])
  end

  test "rejects what it does not understand, naming it" do
    assert {:error, "unknown option --bogus"} = CLI.parse(~w(start --bogus))
    assert {:error, "invalid value for --port: \"abc\""} = CLI.parse(~w(start --port abc))
    assert {:error, "unknown command \"launch\""} = CLI.parse(["launch"])
    assert {:error, "missing command"} = CLI.parse([])
    assert {:error, "--detached is not an option of stop"} = CLI.parse(~w(stop --detached))
    assert {:error, "unexpected argument for status: now"} = CLI.parse(~w(status now))
    assert {:error, "--port must be between 1 and 65535"} = CLI.parse(~w(start --port 70000))

    assert {:error, "--port and --health-port must differ"} =
             CLI.parse(~w(start --port 5000 --health-port 5000))

    assert {:error, "--name must look like" <> _} = CLI.parse(~w(start --name bad/name))
  end

  test "--allow-command is repeatable and each entry is checked" do
    assert {:ok, "start", opts} =
             CLI.parse(["start", "--allow-command", "echo *", "--allow-command", "tr a-z A-Z"])

    assert opts[:allow_commands] == ["echo *", "tr a-z A-Z"]

    assert {:ok, "restart", [allow_commands: ["wc"]]} =
             CLI.parse(["restart", "--allow-command", "wc"])

    assert {:error, "--allow-command \"\": an allow-list entry cannot be empty"} =
             CLI.parse(["start", "--allow-command", ""])

    assert {:error, "--allow-command \"* x\": " <> _} =
             CLI.parse(["start", "--allow-command", "* x"])

    assert {:error, "--allow-command \"tr a,b\": an entry cannot contain a comma"} =
             CLI.parse(["start", "--allow-command", "tr a,b"])

    assert {:ok, "start", [allow_claude: true]} = CLI.parse(~w(start --allow-claude))

    assert {:error, "--allow-command is not an option of stop"} =
             CLI.parse(["stop", "--allow-command", "wc"])
  end

  test "--mcp-config names an existing mcpServers file, for start only" do
    path = Path.join(System.tmp_dir!(), "mcp_cli_#{System.unique_integer([:positive])}.json")
    File.write!(path, ~s({"mcpServers": {}}))
    on_exit(fn -> File.rm(path) end)

    assert {:ok, "start", [mcp_config: ^path]} = CLI.parse(["start", "--mcp-config", path])

    assert {:error, "--mcp-config /no/such/file.json: no such file"} =
             CLI.parse(["start", "--mcp-config", "/no/such/file.json"])

    assert {:error, "--mcp-config is not an option of stop"} =
             CLI.parse(["stop", "--mcp-config", path])
  end
end
