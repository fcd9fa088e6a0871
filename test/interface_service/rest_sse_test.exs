defmodule InterfaceService.RestSseTest do
  use InterfaceService.GatewayCase, async: true
  import SwarmService.Test.Eventually

  setup do
    gw = start_gateway(max_sse_streams: 2, command_allowlist: ["/bin/cat"])
    {:ok, gw: gw, url: gw.url}
  end

  defp post(url, tool, args), do: http(:post, url <> "/api/mcp/" <> tool, [], encode(args))

  test "swarm_spawn (alias of swarm_init) spawns a swarm from plain JSON", %{url: url} do
    {200, _, body} = post(url, "swarm_spawn", %{topology: "mesh", agents: 5})

    assert %{"success" => true, "swarm_id" => swarm, "agents" => 5, "topology" => "mesh"} =
             json(body)

    {200, _, body} = post(url, "agent_list", %{swarm_id: swarm})
    assert length(json(body)["agents"]) == 5

    {200, _, body} =
      post(url, "coordinate_task", %{swarm_id: swarm, description: "index the docs"})

    assert %{"success" => true, "task_id" => task} = json(body)
    {200, _, body} = post(url, "task_status", %{task_id: task})
    assert json(body)["description"] == "index the docs"
  end

  test "cluster_status names each swarm's Raft leader; agent_spawn refuses a node outside the cluster",
       %{url: url} do
    {200, _, body} = post(url, "swarm_init", %{agents: 1})
    %{"swarm_id" => swarm} = json(body)

    {200, _, body} = post(url, "cluster_status", %{})
    status = json(body)
    me = to_string(node())
    assert %{"success" => true, "quorum" => true, "swarms" => swarms} = status
    assert me in Enum.map(status["members"], & &1["node"])
    assert %{"leader" => ^me, "members" => [^me]} = Enum.find(swarms, &(&1["id"] == swarm))

    {400, _, body} = post(url, "agent_spawn", %{swarm_id: swarm, node: "ghost@127.0.0.1"})
    assert json(body)["error"] =~ "not a live member"
    {200, _, _} = post(url, "agent_spawn", %{swarm_id: swarm, node: me})
  end

  test "errors carry success: false and a fitting status", %{url: url} do
    {404, _, body} = post(url, "swarm_status", %{swarm_id: "nope"})
    assert %{"success" => false, "error" => msg, "code" => "swarm_not_found"} = json(body)
    assert is_binary(msg) and msg != ""

    {400, _, body} = post(url, "swarm_init", %{topology: "blob"})
    assert json(body)["error"] =~ "topology must be one of"
    {400, _, body} = post(url, "agent_metrics", %{})
    assert json(body)["error"] =~ "agent_id is required"
    {400, _, _} = http(:post, url <> "/api/mcp/swarm_list", [], "[1,2]")
    {400, _, _} = http(:post, url <> "/api/mcp/swarm_list", [], "{oops")
    {404, _, _} = post(url, "no_such_tool", %{})
    {405, _, _} = http(:get, url <> "/api/mcp/swarm_list")
    # An empty body is an empty argument object.
    {200, _, body} = http(:post, url <> "/api/mcp/swarm_list", [], "")
    assert json(body)["success"]
  end

  test "GET /api/mcp lists the tools", %{url: url} do
    {200, _, body} = http(:get, url <> "/api/mcp")
    listed = for t <- json(body)["tools"], do: {t["name"], t["description"]}
    assert listed == for(t <- InterfaceService.Tools.definitions(), do: {t.name, t.description})
  end

  test "command agents only from the allow-list", %{url: url} do
    {200, _, body} = post(url, "swarm_init", %{})
    swarm = json(body)["swarm_id"]

    {403, _, body} =
      post(url, "agent_spawn", %{swarm_id: swarm, command: ["/bin/sh", "-c", "rm -rf /"]})

    assert json(body)["error"] =~ "allow-list"
    {403, _, _} = post(url, "agent_spawn", %{swarm_id: swarm, command: ["/tmp/bin/cat"]})
    {200, _, body} = post(url, "agent_spawn", %{swarm_id: swarm, command: ["/bin/cat"]})
    assert json(body)["executor"] == "command"
    {200, _, body} = post(url, "agent_spawn", %{swarm_id: swarm, type: "researcher"})
    assert json(body)["executor"] == "external"
  end

  test "memory round trip and the pull-agent cycle", %{url: url} do
    {200, _, body} = post(url, "swarm_init", %{})
    swarm = json(body)["swarm_id"]

    {200, _, body} =
      post(url, "memory_store", %{
        swarm_id: swarm,
        key: "k1",
        value: %{"a" => [1, 2]},
        tags: ["t"]
      })

    assert json(body)["version"] == 1
    {200, _, body} = post(url, "memory_get", %{swarm_id: swarm, key: "k1"})
    assert json(body)["value"] == %{"a" => [1, 2]}
    {404, _, _} = post(url, "memory_get", %{swarm_id: swarm, key: "missing"})
    {200, _, body} = post(url, "memory_search", %{swarm_id: swarm, prefix: "k"})
    assert json(body)["count"] == 1

    {200, _, body} = post(url, "agent_spawn", %{swarm_id: swarm})
    agent = json(body)["agent_id"]
    {200, _, body} = post(url, "task_claim", %{agent_id: agent})
    assert json(body)["work"] == nil

    {200, _, body} =
      post(url, "task_orchestrate", %{swarm_id: swarm, description: "say hi", input: "hi"})

    task = json(body)["task_id"]
    {200, _, body} = post(url, "task_claim", %{agent_id: agent})
    work = json(body)["work"]
    assert work["task_id"] == task

    {200, _, _} =
      post(url, "task_complete", %{work_id: work["work_id"], agent_id: agent, result: "hello"})

    {200, _, body} = post(url, "task_results", %{task_id: task})
    assert json(body)["result"] == "hello"
  end

  test "/sse/events streams the swarm's events, of one type if asked", %{url: url, gw: gw} do
    {200, _, body} = post(url, "swarm_init", %{agents: 1})
    swarm = json(body)["swarm_id"]
    s = stream_open(gw.port, "/sse/events?swarm_id=#{swarm}&type=task_submitted", [])
    assert stream_read(s, "subscribed to events") =~ "text/event-stream"

    {200, _, _} = post(url, "memory_store", %{swarm_id: swarm, key: "k", value: 1})
    {200, _, body} = post(url, "task_orchestrate", %{swarm_id: swarm, description: "x"})
    task = json(body)["task_id"]

    got = stream_read(s, task)
    assert got =~ "event: event\ndata: {"
    assert got =~ ~s("type":"task_submitted")
    refute got =~ "memory_stored"
    :gen_tcp.close(s)
  end

  test "/sse/discoveries streams matching discoveries; the cap answers 503", %{url: url, gw: gw} do
    {200, _, body} = post(url, "swarm_init", %{})
    swarm = json(body)["swarm_id"]

    {200, _, body} = post(url, "subscribe_discoveries", %{swarm_id: swarm, type: "insight"})
    sse_url = json(body)["url"]
    assert sse_url =~ "/sse/discoveries?swarm_id=#{swarm}&type=insight"
    path = String.replace(sse_url, ~r{^http://[^/]+}, "")

    s1 = stream_open(gw.port, path, [])
    assert stream_read(s1, "subscribed") =~ "text/event-stream"
    s2 = stream_open(gw.port, "/sse/discoveries?swarm_id=#{swarm}", [])
    stream_read(s2, "subscribed")
    # Raw, because httpc silently retries a 503 that carries Retry-After.
    assert raw(
             gw.port,
             "GET /sse/discoveries?swarm_id=#{swarm} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
           ) =~
             "HTTP/1.1 503"

    {200, _, _} =
      post(url, "share_discovery", %{swarm_id: swarm, type: "noise", content: "skip me"})

    {200, _, _} =
      post(url, "share_discovery", %{
        swarm_id: swarm,
        type: "insight",
        content: "cache hit rate is 90%",
        confidence: 0.9
      })

    got = stream_read(s1, "cache hit rate")
    assert got =~ "event: discovery"
    refute got =~ "skip me"
    assert stream_read(s2, "skip me") =~ "event: discovery"

    :gen_tcp.close(s1)
    :gen_tcp.close(s2)
    # Raw again: until the closed streams are counted out the cap answers
    # 503 with Retry-After, which httpc would retry without end.
    get = fn path ->
      raw(gw.port, "GET #{path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    end

    # (A request without swarm_id is refused before the cap is checked.)
    eventually(fn -> get.("/sse/discoveries?swarm_id=nope") =~ "HTTP/1.1 404" end)
    assert get.("/sse/discoveries") =~ "HTTP/1.1 400"
  end

  test "/sse/discoveries: a reconnect with Last-Event-ID gets the discoveries it missed", %{
    url: url,
    gw: gw
  } do
    {200, _, body} = post(url, "swarm_init", %{})
    swarm = json(body)["swarm_id"]

    share = fn content ->
      {200, _, body} =
        post(url, "share_discovery", %{swarm_id: swarm, type: "insight", content: content})

      json(body)["discovery_id"]
    end

    path = "/sse/discoveries?swarm_id=#{swarm}"
    s1 = stream_open(gw.port, path, [])
    stream_read(s1, "subscribed")
    d1 = share.("first")
    assert stream_read(s1, "first") =~ "id: #{d1}\n"
    :gen_tcp.close(s1)

    # Shared while the client was away.
    d2 = share.("second")
    d3 = share.("third")

    s2 = stream_open(gw.port, path, [{"last-event-id", d1}])
    got = stream_read(s2, "third")
    assert got =~ "id: #{d2}\n"
    assert got =~ "id: #{d3}\n"
    refute got =~ "first"
    # Then live, each discovery once.
    share.("fourth")
    got = got <> stream_read(s2, "fourth")
    assert length(String.split(got, "third")) == 2
    :gen_tcp.close(s2)

    # An id that is not among the recent ones: everything kept is sent.
    s3 = stream_open(gw.port, path, [{"last-event-id", "long-gone"}])
    got = stream_read(s3, "fourth")
    assert got =~ "first" and got =~ "second"
    :gen_tcp.close(s3)

    # Filters apply to what is replayed.
    {200, _, _} =
      post(url, "share_discovery", %{swarm_id: swarm, type: "other", content: "filtered out"})

    s4 = stream_open(gw.port, path <> "&type=other", [{"last-event-id", d3}])
    got = stream_read(s4, "filtered out")
    refute got =~ "fourth"
    :gen_tcp.close(s4)
  end

  test "/sse/discoveries sends keep-alive comments" do
    gw = start_gateway(sse_keepalive_ms: 50)
    {200, _, body} = http(:post, gw.url <> "/api/mcp/swarm_init", [], "{}")
    s = stream_open(gw.port, "/sse/discoveries?swarm_id=#{json(body)["swarm_id"]}", [])
    assert stream_read(s, ": keep-alive") =~ "keep-alive"
    :gen_tcp.close(s)
  end

  test "/metrics exposes requests, latencies, rejections and engine gauges", %{url: url} do
    {200, _, _} = post(url, "swarm_init", %{})
    {404, _, _} = post(url, "swarm_status", %{swarm_id: "nope"})
    {200, headers, text} = http(:get, url <> "/metrics")
    assert headers["content-type"] =~ "text/plain"

    assert text =~
             ~s(ruv_swarm_gateway_requests_total{route="rest",tool="swarm_init",status="200"} 1)

    assert text =~
             ~s(ruv_swarm_gateway_requests_total{route="rest",tool="swarm_status",status="404"} 1)

    assert text =~
             ~s(ruv_swarm_gateway_request_duration_seconds_bucket{route="rest",tool="swarm_init",le="+Inf"} 1)

    assert text =~ ~r/ruv_swarm_swarms \d+/
    assert text =~ ~s(ruv_swarm_tasks{status="completed"})
  end

  test "/metrics sums the tokens and cost this node's swarms reported", %{url: url} do
    {:ok, s} = SwarmService.RuvSwarm.spawn_swarm(storage: :memory)
    on_exit(fn -> SwarmService.RuvSwarm.destroy_swarm(s) end)
    {:ok, a} = SwarmService.RuvSwarm.spawn_agent(s, executor: :external)
    {:ok, _} = SwarmService.RuvSwarm.orchestrate(s, "x")
    {:ok, w} = SwarmService.RuvSwarm.claim_task(a)
    usage = %{input_tokens: 1_234_567, cache_read_tokens: 7, cost_usd: 123.5, turns: 4}
    :ok = SwarmService.RuvSwarm.complete_task(w.work_id, a, "r", usage: usage)
    {200, _, text} = http(:get, url <> "/metrics")
    tokens = fn kind -> Regex.run(~r/ruv_swarm_tokens{kind="#{kind}"} (\d+)/, text) end
    assert [_, n] = tokens.("input")
    assert String.to_integer(n) >= 1_234_567
    assert tokens.("output") && tokens.("cache_read") && tokens.("cache_creation")
    assert [_, usd] = Regex.run(~r/ruv_swarm_cost_usd ([\d.]+)/, text)
    assert String.to_float(usd) >= 123.5
    assert text =~ ~r/ruv_swarm_turns \d+/
  end
end
