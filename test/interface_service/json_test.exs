defmodule InterfaceService.JsonTest do
  # The encoding shortcuts write exactly what the plain encoding would.
  use ExUnit.Case, async: true

  alias InterfaceService.Json
  alias InterfaceService.Mcp.Protocol

  defp decode(iodata), do: :jiffy.decode(IO.iodata_to_binary(iodata), [:return_maps, :use_nil])

  test "encode_term!/1 writes what encoding to_json/1's output writes, for any engine term" do
    terms = [
      %{a: 1, b: "x", c: [1, 2.5, nil, true, false, :atom], d: %{"e" => %{}}, f: []},
      %{value: :null},
      %{tuple: {1, "two"}},
      %{looks_like_an_object: {[{"a", 1}]}},
      %{pid: self(), ref: make_ref()},
      %{bytes: <<255, 0, 1>>},
      %{1 => :one},
      %{date: ~D[2026-01-01]},
      [%{a: [%{b: :c}]}]
    ]

    for term <- terms do
      assert decode(Json.encode_term!(term)) == decode(Json.encode!(Json.to_json(term))),
             "differs for #{inspect(term)}"
    end
  end

  test "a tools/call response carries the once-encoded structured content in both places" do
    structured = %{swarm_id: "swarm-1", agents: %{total: 4, idle: 4}, topology: :mesh, tags: []}
    {:ok, result} = Protocol.tool_result("swarm_status", {:ok, structured})

    expected = %{
      "swarm_id" => "swarm-1",
      "agents" => %{"total" => 4, "idle" => 4},
      "topology" => "mesh",
      "tags" => []
    }

    for {id, result} <- [{7, result}, {"req-1", Map.put(result, :resultType, "complete")}] do
      response = decode(Protocol.encode!(Protocol.result(id, result)))

      assert %{"jsonrpc" => "2.0", "id" => ^id, "result" => r} = response
      assert r["structuredContent"] == expected
      assert [%{"type" => "text", "text" => text}] = r["content"]
      assert decode(text) == expected
      assert r["isError"] == false
      assert Map.get(r, "resultType") == Map.get(result, :resultType)
    end

    # In a batch, next to a message encoded the plain way.
    error = Protocol.error(8, -32_601, "Method not found: x")

    assert [%{"id" => 7, "result" => %{"structuredContent" => ^expected}}, %{"id" => 8}] =
             decode(Protocol.encode!([Protocol.result(7, result), error]))
  end
end
