defmodule InterfaceService.DashboardTest do
  # The dashboard's server side: the model's deltas (only what changed,
  # bounded), the hub (coalescing, resume, dropping a slow client) and the
  # operations on /ws as a browser would use them.
  use InterfaceService.GatewayCase, async: true

  alias InterfaceService.Dashboard.{Hub, Model, Static}
  alias SwarmService.RuvSwarm

  @token "dashboard-token-0001"

  defmodule Reporting do
    # Works the way a claude agent reports: progress with a message, then a
    # result with tokens and cost.
    @behaviour SwarmService.Executor
    def run(_task, ctx) do
      SwarmService.Executor.progress(ctx, 0.5, "reading the files")
      {:ok, "done", %{usage: %{input_tokens: 120, output_tokens: 30, cost_usd: 0.25, turns: 2}}}
    end
  end

  # ---- the model ------------------------------------------------------------------

  defp event(type, fields), do: Map.merge(%{type: type, at: 1_000_000, seq: 1}, fields)

  test "a delta carries only the records that changed, and nil for the ones that went away" do
    m =
      Model.new()
      |> Model.put_swarm(%{id: "s1", name: "a"})
      |> Model.put_swarm(%{id: "s2", name: "b"})
      |> Model.put_agents("s1", [%{id: "s1.agent-1", swarm_id: "s1", status: :idle}])

    {first, m} = Model.take_delta(m, 1_000_000)
    assert Map.keys(first.swarms) |> Enum.sort() == ["s1", "s2"]
    assert Map.keys(first.agents) == ["s1.agent-1"]

    # Nothing changed: nothing to send.
    refute Model.dirty?(m)
    # The same record again is no change either.
    m = Model.put_swarm(m, %{id: "s2", name: "b"})
    refute Model.dirty?(m)

    m = Model.apply_event(m, "s1", event(:task_submitted, %{task_id: "s1.task-1"}))

    m =
      Model.apply_event(
        m,
        "s1",
        event(:agent_status_changed, %{agent_id: "s1.agent-1", status: :busy})
      )

    {second, m} = Model.take_delta(m, 1_000_000)
    assert second.rev == first.rev + 1
    assert second.swarms == %{}
    assert second.agents == %{}
    assert second.agent_status == %{"s1.agent-1" => :busy}
    assert %{"s1.task-1" => %{status: :pending}} = second.tasks
    assert [%{type: :task_submitted, task_id: "s1.task-1"}] = second.events

    m =
      Model.apply_event(
        m,
        "s1",
        event(:task_completed, %{task_id: "s1.task-1", status: :completed, at: 1_000_250})
      )

    m = Model.drop_swarm(m, "s2")
    {third, _m} = Model.take_delta(m, 1_000_300)
    assert third.swarms == %{"s2" => nil}
    assert %{"s1.task-1" => %{status: :completed, finished_at: 1_000_250}} = third.tasks
    # Completions move the series; submit -> result latency is measured.
    assert %{latency_1m: %{p50: 250, n: 1}} = third.series
  end

  test "tasks per swarm, the event log and a delta's size are bounded" do
    m =
      Enum.reduce(1..700, Model.new(), fn n, m ->
        Model.apply_event(m, "s1", event(:task_submitted, %{task_id: "s1.task-#{n}"}))
      end)

    assert map_size(m.tasks) == 200
    assert Map.has_key?(m.tasks, "s1.task-700")
    refute Map.has_key?(m.tasks, "s1.task-1")
    assert m.event_count == 500

    {delta, m} = Model.take_delta(m, 1_000_000)
    assert map_size(delta.tasks) <= 300
    assert length(delta.events) <= 200
    # What did not fit comes in the next delta.
    {next, _} = Model.take_delta(m, 1_000_000)
    assert map_size(delta.tasks) + map_size(next.tasks) >= 200
  end

  test "previews are short text, whatever the value" do
    assert Model.preview(nil) == nil
    assert Model.preview("short") == "short"
    long = Model.preview(String.duplicate("é", 100_000))
    assert String.length(long) == 201
    assert String.valid?(long)
    assert Model.preview(%{"a" => [1, 2]}) == ~s({"a":[1,2]})
    assert Model.preview({:failed, "x"}) =~ "failed"
    assert Model.percentiles([5, 1, 3, 2, 4]) == %{p50: 3, p99: 5, n: 5}
  end

  # ---- the hub --------------------------------------------------------------------

  defp standalone_hub(opts) do
    gw = start_gateway()
    config = InterfaceService.config(gw.name)
    name = :"dashboard_hub_#{System.unique_integer([:positive])}"
    {:ok, hub} = Hub.start_link(config, Keyword.merge([name: name], opts))
    on_exit(fn -> if Process.alive?(hub), do: GenServer.stop(hub) end)
    hub
  end

  test "deltas are coalesced: many events, a few messages, and a resume sends only what was missed" do
    hub = standalone_hub([])
    {:ok, swarm} = RuvSwarm.spawn_swarm(storage: :memory, agents: 2)
    on_exit(fn -> RuvSwarm.destroy_swarm(swarm) end)

    assert {:ok, epoch, :snapshot, [snapshot]} = Hub.join(hub, nil)
    assert %{"type" => "snapshot", "epoch" => ^epoch} = json(snapshot)

    # The swarm shows up in a delta.
    wait_for_swarm(epoch, swarm)

    flush_deltas()
    t0 = System.monotonic_time(:millisecond)
    for n <- 1..300, do: {:ok, _} = RuvSwarm.orchestrate(swarm, "task #{n}")
    Process.sleep(1_000)
    elapsed = System.monotonic_time(:millisecond) - t0
    deltas = flush_deltas()

    # Never more than one message per 250 ms, however many events.
    assert length(deltas) <= div(elapsed, 250) + 2
    seen = for {_, _, json} <- deltas, {id, _} <- json(json)["tasks"], into: MapSet.new(), do: id
    assert MapSet.size(seen) >= 200

    # Rejoining from a revision still kept: only the later deltas, no snapshot.
    {_, rev, _} = hd(deltas)
    Hub.leave(hub)
    Process.sleep(50)
    assert {:ok, ^epoch, :resumed, frames} = Hub.join(hub, {epoch, rev})
    # (Every delta after `rev`; one more may have been made meanwhile.)
    assert length(frames) in [length(deltas) - 1, length(deltas)]
    assert Enum.all?(frames, &(json(&1)["type"] == "delta"))

    # From another epoch (a restarted hub): a snapshot.
    assert {:ok, ^epoch, :snapshot, [_]} =
             (
               Hub.leave(hub)
               Process.sleep(50)
               Hub.join(hub, {"old", 3})
             )
  end

  test "a client that does not read is dropped, not buffered without bound" do
    hub = standalone_hub(flush_ms: 20, max_pending: 3)
    {:ok, swarm} = RuvSwarm.spawn_swarm(storage: :memory)
    on_exit(fn -> RuvSwarm.destroy_swarm(swarm) end)
    test = self()

    sleeper =
      spawn(fn ->
        {:ok, _, _, _} = Hub.join(hub, nil)
        send(test, :joined)
        # Never reads its mailbox until told to report.
        receive do
          :report -> send(test, {:mailbox, Process.info(self(), :messages) |> elem(1)})
        end
      end)

    assert_receive :joined, 5_000

    for n <- 1..40,
        do:
          (
            RuvSwarm.orchestrate(swarm, "t#{n}")
            Process.sleep(10)
          )

    Process.sleep(200)
    send(sleeper, :report)
    assert_receive {:mailbox, messages}, 5_000
    deltas = Enum.count(messages, &match?({:dashboard_delta, _, _, _}, &1))
    assert deltas <= 5
    assert Enum.any?(messages, &match?({:dashboard_dropped, _}, &1))
  end

  defp wait_for_swarm(epoch, swarm, deadline \\ System.monotonic_time(:millisecond) + 3_000) do
    receive do
      {:dashboard_delta, ^epoch, _rev, json} ->
        if Map.has_key?(json(json)["swarms"], swarm),
          do: :ok,
          else: wait_for_swarm(epoch, swarm, deadline)
    after
      max(deadline - System.monotonic_time(:millisecond), 0) -> flunk("the swarm did not show up")
    end
  end

  defp flush_deltas(acc \\ []) do
    receive do
      {:dashboard_delta, e, r, j} -> flush_deltas([{e, r, j} | acc])
    after
      0 -> Enum.reverse(acc) |> Enum.sort_by(&elem(&1, 1))
    end
  end

  # ---- over the gateway -----------------------------------------------------------

  test "GET / serves the page with a strict CSP; only known files are served" do
    gw = start_gateway(tokens: [@token])
    {200, headers, body} = http(:get, gw.url <> "/")
    assert body =~ "/dashboard/app.js"
    assert headers["content-security-policy"] =~ "default-src 'none'"
    assert headers["x-frame-options"] == "DENY"

    {200, %{"content-type" => "text/javascript" <> _}, _} =
      http(:get, gw.url <> "/dashboard/app.js")

    # Any other path is the gateway's, behind the token.
    {401, _, _} = http(:get, gw.url <> "/dashboard/../mix.exs")
    {401, _, _} = http(:get, gw.url <> "/dashboard/nope.js")
    {401, _, _} = http(:get, gw.url <> "/api/mcp")

    {404, _, _} =
      http(:get, gw.url <> "/dashboard/nope.js", [{"authorization", "Bearer " <> @token}])

    assert Static.asset?("/")
    refute Static.asset?("/etc/passwd")
  end

  test "the dashboard over /ws: snapshot, live delta, task detail, actions with their error sentences" do
    gw = start_gateway(tokens: [@token])
    {sock, head} = ws_connect(gw.port, ["ruv-swarm", "bearer.#{@token}"])
    assert head =~ "HTTP/1.1 101"

    send_text(sock, ~s({"op":"dashboard","ref":1}))

    assert %{"type" => "joined", "ref" => 1, "epoch" => epoch, "how" => "snapshot"} =
             recv_json(sock)

    assert %{"type" => "snapshot", "swarms" => _} = recv_json(sock)

    send_text(
      sock,
      ~s({"op":"action","ref":2,"action":"create_swarm","name":"ws-made","agents":2})
    )

    assert %{"type" => "result", "ref" => 2, "ok" => true, "swarm_id" => swarm} =
             recv_until(sock, &(&1["ref"] == 2))

    on_exit(fn -> RuvSwarm.destroy_swarm(swarm) end)
    delta = recv_until(sock, &(&1["type"] == "delta" and Map.has_key?(&1["swarms"], swarm)))
    assert delta["swarms"][swarm]["name"] == "ws-made"

    send_text(
      sock,
      ~s({"op":"action","ref":3,"action":"submit_task","swarm_id":"#{swarm}","description":"d",) <>
        ~s("subtasks":[{"name":"a"},{"name":"b","depends_on":["a"]}]})
    )

    assert %{"ok" => true, "task_id" => task} = recv_until(sock, &(&1["ref"] == 3))

    send_text(sock, ~s({"op":"task","ref":4,"task_id":"#{task}"}))
    assert %{"type" => "task", "task" => t} = recv_until(sock, &(&1["ref"] == 4))

    assert [%{"name" => "a", "depends_on" => []}, %{"name" => "b", "depends_on" => ["a"]}] =
             t["units"]

    assert t["dag_known"]

    send_text(sock, ~s({"op":"action","ref":5,"action":"cancel_task","task_id":"#{task}"}))
    assert %{"ok" => true} = recv_until(sock, &(&1["ref"] == 5))
    send_text(sock, ~s({"op":"action","ref":6,"action":"cancel_task","task_id":"#{task}"}))

    assert %{"ok" => false, "error" => "the task already finished (cancelled)"} =
             recv_until(sock, &(&1["ref"] == 6))

    send_text(sock, ~s({"op":"action","ref":7,"action":"retry_task","task_id":"#{task}"}))

    assert %{"ok" => true, "retry_of" => ^task, "task_id" => retried} =
             recv_until(sock, &(&1["ref"] == 7))

    assert retried != task

    # Names from the page never become atoms; unknown ones are refused.
    send_text(
      sock,
      ~s({"op":"action","ref":8,"action":"create_swarm","topology":"torus-#{System.unique_integer()}"})
    )

    assert %{"ok" => false, "error" => "topology must be one of" <> _} =
             recv_until(sock, &(&1["ref"] == 8))

    send_text(
      sock,
      ~s({"op":"action","ref":9,"action":"spawn_agent","swarm_id":"#{swarm}","command":"rm -rf /"})
    )

    assert %{"ok" => false, "error" => error} = recv_until(sock, &(&1["ref"] == 9))
    assert error =~ "rm"

    send_text(sock, ~s({"op":"topology","ref":10,"swarm_id":"#{swarm}"}))

    assert %{"type" => "topology", "agents" => [_, _], "topology" => "mesh"} =
             recv_until(sock, &(&1["ref"] == 10))

    :gen_tcp.close(sock)

    # A reconnect resumes from its revision.
    {sock, _} = ws_connect(gw.port, ["ruv-swarm", "bearer.#{@token}"])

    send_text(
      sock,
      ~s({"op":"dashboard","ref":11,"since":{"epoch":"#{epoch}","rev":#{delta["rev"]}}})
    )

    assert %{"type" => "joined", "how" => "resumed", "epoch" => ^epoch} =
             recv_until(sock, &(&1["ref"] == 11))

    :gen_tcp.close(sock)
  end

  test "when the hub restarts, the dashboard's socket closes so the page reconnects" do
    gw = start_gateway()
    {sock, _} = ws_connect(gw.port, [])
    send_text(sock, ~s({"op":"dashboard","ref":1}))
    assert %{"type" => "joined"} = recv_json(sock)
    hub = Process.whereis(Hub.name(InterfaceService.config(gw.name)))
    Process.exit(hub, :kill)
    assert close_code(sock) == 1012
    :gen_tcp.close(sock)
  end

  defp close_code(sock) do
    {:ok, <<_fin::1, _::3, opcode::4, 0::1, len7::7>>} = :gen_tcp.recv(sock, 2, 10_000)

    len =
      case len7 do
        126 -> with {:ok, <<n::16>>} <- :gen_tcp.recv(sock, 2, 5_000), do: n
        127 -> with {:ok, <<n::64>>} <- :gen_tcp.recv(sock, 8, 5_000), do: n
        n -> n
      end

    {:ok, payload} = if len == 0, do: {:ok, ""}, else: :gen_tcp.recv(sock, len, 10_000)

    case {opcode, payload} do
      {8, <<code::16, _::binary>>} -> code
      _ -> close_code(sock)
    end
  end

  test "a Claude agent's swarm-scoped token cannot open the dashboard or act through it" do
    gw = start_gateway(tokens: [@token])
    {:ok, swarm} = RuvSwarm.spawn_swarm(storage: :memory, agents: 1)
    on_exit(fn -> RuvSwarm.destroy_swarm(swarm) end)
    {:ok, [agent | _]} = RuvSwarm.list_agents(swarm)
    {:ok, path} = SwarmService.Executor.ClaudeAccess.grant(agent.id, self(), gw.url)

    "Bearer " <> token =
      path
      |> File.read!()
      |> json()
      |> get_in(["mcpServers", "ruv-swarm", "headers", "Authorization"])

    {sock, head} = ws_connect(gw.port, ["ruv-swarm", "bearer." <> token])
    assert head =~ "HTTP/1.1 101"
    send_text(sock, ~s({"op":"dashboard","ref":1}))
    assert %{"type" => "error", "ref" => 1, "error" => "an agent's token" <> _} = recv_json(sock)
    send_text(sock, ~s({"op":"action","ref":2,"action":"destroy_swarm","swarm_id":"#{swarm}"}))
    assert %{"type" => "error", "ref" => 2} = recv_json(sock)
    assert {:ok, _} = RuvSwarm.swarm_status(swarm)
    :gen_tcp.close(sock)
  end

  test "a task submitted elsewhere still shows its DAG's edges (the engine reports them)" do
    gw = start_gateway()
    {:ok, swarm} = RuvSwarm.spawn_swarm(storage: :memory)
    on_exit(fn -> RuvSwarm.destroy_swarm(swarm) end)

    {:ok, task} =
      RuvSwarm.orchestrate(swarm,
        subtasks: [
          %{name: "a"},
          %{name: "b", depends_on: ["a"]},
          %{name: "c", depends_on: ["a", "b"]}
        ]
      )

    {sock, _} = ws_connect(gw.port, [])
    send_text(sock, ~s({"op":"task","ref":1,"task_id":"#{task}"}))

    assert %{"task" => %{"units" => units, "dag_known" => true}} =
             recv_until(sock, &(&1["ref"] == 1))

    assert Enum.map(units, &{&1["name"], &1["depends_on"]}) == [
             {"a", []},
             {"b", ["a"]},
             {"c", ["a", "b"]}
           ]

    :gen_tcp.close(sock)
  end

  test "a task's detail has its progress lines, tokens and cost" do
    gw = start_gateway()
    {:ok, swarm} = RuvSwarm.spawn_swarm(storage: :memory)
    on_exit(fn -> RuvSwarm.destroy_swarm(swarm) end)
    {sock, _} = ws_connect(gw.port, [])
    send_text(sock, ~s({"op":"dashboard","ref":1}))
    assert %{"type" => "joined"} = recv_json(sock)
    recv_until(sock, &(&1["type"] == "delta" and Map.has_key?(&1["swarms"] || %{}, swarm)))

    {:ok, _} = RuvSwarm.spawn_agent(swarm, %{executor: {:module, Reporting}})
    {:ok, task} = RuvSwarm.orchestrate(swarm, "report")
    {:ok, "done"} = RuvSwarm.await_task(task)

    recv_until(
      sock,
      &(&1["type"] == "delta" and get_in(&1, ["tasks", task, "status"]) == "completed")
    )

    send_text(sock, ~s({"op":"task","ref":2,"task_id":"#{task}"}))
    assert %{"task" => t} = recv_until(sock, &(&1["ref"] == 2))
    assert %{"input_tokens" => 120, "output_tokens" => 30, "cost_usd" => 0.25} = t["usage"]
    assert [%{"message" => "reading the files", "progress" => 0.5}] = t["progress"]
    :gen_tcp.close(sock)
  end

  test "requests are rate limited per socket" do
    gw = start_gateway()
    {sock, _} = ws_connect(gw.port, [])
    for n <- 1..60, do: send_text(sock, ~s({"op":"task","ref":#{n},"task_id":"nope"}))
    answers = for _ <- 1..60, do: recv_json(sock)["error"]
    assert Enum.count(answers, &(&1 == "too many dashboard requests, slow down")) >= 10
    :gen_tcp.close(sock)
  end

  # ---- a minimal WebSocket client (RFC 6455) ---------------------------------------

  defp ws_connect(port, protocols) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false])
    key = Base.encode64(:crypto.strong_rand_bytes(16))

    proto =
      if protocols == [],
        do: "",
        else: "Sec-WebSocket-Protocol: #{Enum.join(protocols, ", ")}\r\n"

    :ok =
      :gen_tcp.send(
        sock,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" <>
          "Sec-WebSocket-Key: #{key}\r\nSec-WebSocket-Version: 13\r\n#{proto}\r\n"
      )

    {:ok, head} = recv_head(sock, "")
    {sock, head}
  end

  defp recv_head(sock, acc) do
    if String.contains?(acc, "\r\n\r\n") do
      {:ok, acc}
    else
      {:ok, more} = :gen_tcp.recv(sock, 0, 5_000)
      recv_head(sock, acc <> more)
    end
  end

  defp send_text(sock, text) do
    mask = :crypto.strong_rand_bytes(4)
    len = byte_size(text)

    header =
      if len < 126,
        do: <<1::1, 0::3, 1::4, 1::1, len::7>>,
        else: <<1::1, 0::3, 1::4, 1::1, 126::7, len::16>>

    :ok = :gen_tcp.send(sock, [header, mask, masked(text, mask)])
  end

  defp masked(data, mask) do
    size = byte_size(data)
    pad = :binary.copy(mask, div(size, 4) + 1)
    :crypto.exor(data, binary_part(pad, 0, size))
  end

  defp recv_json(sock) do
    {:ok, <<_fin::1, _::3, opcode::4, 0::1, len7::7>>} = :gen_tcp.recv(sock, 2, 10_000)

    len =
      case len7 do
        126 -> with {:ok, <<n::16>>} <- :gen_tcp.recv(sock, 2, 5_000), do: n
        127 -> with {:ok, <<n::64>>} <- :gen_tcp.recv(sock, 8, 5_000), do: n
        n -> n
      end

    {:ok, payload} = if len == 0, do: {:ok, ""}, else: :gen_tcp.recv(sock, len, 10_000)
    if opcode == 1, do: json(payload), else: recv_json(sock)
  end

  defp recv_until(sock, fun) do
    msg = recv_json(sock)
    if fun.(msg), do: msg, else: recv_until(sock, fun)
  end
end
