defmodule SwarmService.McpServers.ConfigTest do
  use ExUnit.Case, async: true

  alias SwarmService.McpServers.Config

  @env %{"TOKEN" => "s3cret-value", "HOST" => "127.0.0.1"}

  test "reads Claude Desktop's mcpServers format, stdio and HTTP, with ${VAR} secrets" do
    doc = ~s({"mcpServers": {
      "files": {"command": "sh", "args": ["-c", "true"], "env": {"API_KEY": "${TOKEN}", "PLAIN": "x"}},
      "remote": {"url": "http://127.0.0.1:3001/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"},
                 "timeout_ms": 500, "tool_timeouts": {"slow": 9000}, "prefix": "rem", "deny": ["rm"]}
    }})

    doc = :jiffy.decode(doc, [:return_maps])
    assert {:ok, [files, remote], []} = parse_with_env(doc, @env)

    assert files.transport == :stdio
    assert files.command == System.find_executable("sh")
    assert files.args == ["-c", "true"]
    assert files.env == [{"API_KEY", "s3cret-value"}, {"PLAIN", "x"}]
    assert files.prefix == "files"
    assert files.timeout_ms == 30_000

    assert remote.transport == :http
    assert remote.headers == [{"Authorization", "Bearer s3cret-value"}]
    assert remote.timeout_ms == 500
    assert remote.tool_timeouts == %{"slow" => 9000}
    assert remote.prefix == "rem"
    assert remote.deny == ["rm"]

    # The secret never shows in an inspected spec (logs, crash reports).
    refute inspect(files) =~ "s3cret"
    refute inspect(remote) =~ "s3cret"
  end

  test "invalid entries are named with the field; the others are still returned" do
    doc = %{
      "mcpServers" => %{
        "good" => %{"command" => "sh"},
        "nocmd" => %{"args" => []},
        "both" => %{"command" => "sh", "url" => "http://x/"},
        "missing" => %{"command" => "definitely-not-a-command-xyz"},
        "badenv" => %{"command" => "sh", "env" => %{"K" => "${NOT_SET_ANYWHERE}"}},
        "typo" => %{"command" => "sh", "timout_ms" => 5},
        "bad__name" => %{"command" => "sh"},
        "https" => %{"url" => "https://example.com/mcp"},
        "argsnum" => %{"command" => "sh", "args" => [1]},
        "limit" => %{"command" => "sh", "max_concurrency" => 0}
      }
    }

    assert {:ok, [good], errors} = parse_with_env(doc, @env)
    assert good.name == "good"
    errors = Map.new(errors)

    assert errors["nocmd"] =~ ~s(server "nocmd": command or url)
    assert errors["both"] =~ "command and url"

    assert errors["missing"] =~
             "command: \"definitely-not-a-command-xyz\" is not on the node's PATH"

    assert errors["badenv"] =~ "env.K: environment variable NOT_SET_ANYWHERE is not set"
    assert errors["typo"] =~ "field \"timout_ms\": unknown"
    assert errors["bad__name"] =~ "name: must not contain \"__\""
    assert errors["https"] =~ "url: https is not supported"
    assert errors["argsnum"] =~ "args: must be a list of strings"
    assert errors["limit"] =~ "max_concurrency: must be an integer from 1 to 100"
  end

  test "a document that is not an mcpServers object is refused as a whole" do
    assert {:error, "the MCP server configuration is not valid JSON"} = Config.parse_document("{")

    assert {:error, message} = Config.parse_document(~s({"servers": {}}))
    assert message =~ "mcpServers"
  end

  test "${VAR} expansion: several variables, $${ for a literal, unknown left as an error" do
    assert {:ok, "a-s3cret-value-127.0.0.1"} = Config.expand("a-${TOKEN}-${HOST}", "f", @env)
    assert {:ok, "${TOKEN}"} = Config.expand("$${TOKEN}", "f", @env)
    assert {:ok, "$HOME"} = Config.expand("$HOME", "f", @env)

    assert {:error, "f: environment variable NOPE is not set"} =
             Config.expand("${NOPE}", "f", @env)
  end

  test "parse_document reads the node's environment for ${VAR}" do
    var = "RUV_MCP_CONFIG_TEST_#{System.unique_integer([:positive])}"
    System.put_env(var, "from-env")
    on_exit(fn -> System.delete_env(var) end)
    doc = ~s({"mcpServers": {"a": {"command": "sh", "env": {"K": "${#{var}}"}}}})
    assert {:ok, [%{env: [{"K", "from-env"}]}], []} = Config.parse_document(doc)
  end

  test "atom keys work for Elixir callers" do
    assert {:ok, spec} = Config.parse("s", %{command: "sh", args: ["-c", "x"], timeout_ms: 10})
    assert spec.timeout_ms == 10
  end

  defp parse_with_env(%{"mcpServers" => servers}, env) do
    {ok, bad} =
      servers
      |> Enum.sort()
      |> Enum.map(fn {name, entry} -> {name, Config.parse(name, entry, env)} end)
      |> Enum.split_with(fn {_, r} -> match?({:ok, _}, r) end)

    {:ok, for({_, {:ok, s}} <- ok, do: s), for({n, {:error, m}} <- bad, do: {n, m})}
  end
end
