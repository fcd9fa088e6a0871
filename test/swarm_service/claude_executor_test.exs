defmodule SwarmService.ClaudeExecutorTest do
  # The {:claude, opts} executor against a stand-in CLI that speaks
  # stream-json (test/support/fake_claude_stream): what a user sees of the
  # result, the CLI's command line and environment, and each failure mode
  # users of `claude -p` as a child process report.
  use ExUnit.Case, async: true

  import SwarmService.Test.Eventually
  alias SwarmService.Executor.Claude
  alias SwarmService.RuvSwarm

  @fake Path.expand("../support/fake_claude_stream", __DIR__)

  setup do
    dir = Path.join(System.tmp_dir!(), "claude-test-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf(dir) end)
    %{dir: dir}
  end

  defp swarm!(opts) do
    {:ok, id} = RuvSwarm.spawn_swarm(Keyword.merge([storage: :memory], opts))
    on_exit(fn -> RuvSwarm.destroy_swarm(id) end)
    id
  end

  defp claude(mode, extra \\ []) do
    env = Map.merge(%{"FAKE_CLAUDE_MODE" => mode}, Map.new(Keyword.get(extra, :env, [])))
    {:claude, Keyword.merge([binary: @fake, retries_base_ms: 50], Keyword.put(extra, :env, env))}
  end

  defp run(swarm, input, opts \\ %{}) do
    {:ok, t} = RuvSwarm.orchestrate(swarm, Map.merge(%{input: input, retries: 1}, opts))
    {t, RuvSwarm.await_task(t, 15_000)}
  end

  test "the result event's text is the unit's result; dependencies reach the prompt" do
    s = swarm!(agents: 1, executor: claude("ok"))
    {_, {:ok, text}} = run(s, "review the parser")
    assert text =~ ~r/^answer to review the parser in session sess-[0-9a-f]{8}$/

    {:ok, t} =
      RuvSwarm.orchestrate(s,
        subtasks: [%{name: "a", input: "first"}, %{name: "b", input: "second", depends_on: ["a"]}]
      )

    assert {:ok, %{"a" => "answer to first" <> _, "b" => "answer to second" <> _}} =
             RuvSwarm.await_task(t, 15_000)
  end

  test "the stream is progress; the result's tokens and cost are the unit's, agent's and swarm's" do
    s = swarm!(agents: 1, executor: claude("ok"))
    :ok = RuvSwarm.subscribe(s)
    {t, {:ok, _}} = run(s, "count the parsers")

    messages =
      for {:swarm_event, ^s, %{type: :task_progress, task_id: ^t, message: m}} <- drain(), do: m

    assert messages == ["Thinking about count the parsers", "tool: Read"]

    {:ok, %{units: [%{history: [%{usage: usage}]}]}} = RuvSwarm.task_results(t)

    assert %{input_tokens: 100, output_tokens: 20, cache_read_tokens: 5} = usage
    assert_in_delta usage.cost_usd, 0.0123, 1.0e-9
    assert usage.session_id =~ ~r/^sess-/

    {:ok, %{usage: swarm_usage}} = RuvSwarm.swarm_status(s)
    assert swarm_usage.input_tokens == 100 and swarm_usage.turns == 2
    assert_in_delta swarm_usage.cost_usd, 0.0123, 1.0e-9
  end

  defp drain(acc \\ []) do
    receive do
      msg -> drain([msg | acc])
    after
      200 -> Enum.reverse(acc)
    end
  end

  test "output: :json decodes the result text" do
    s = swarm!(agents: 1, executor: claude("json", output: :json))
    assert {_, {:ok, %{"answer" => "hi", "sections" => 0}}} = run(s, "hi")
  end

  test "the command line carries the options; stdin is the prompt; no nested-session variables",
       %{dir: dir} do
    log = Path.join(dir, "argv.log")
    System.put_env("CLAUDECODE", "1")
    on_exit(fn -> System.delete_env("CLAUDECODE") end)

    opts = [
      model: "claude-sonnet-4-5",
      max_turns: 3,
      allowed_tools: ["Read", "Bash(git log:*)"],
      permission_mode: "plan",
      append_system_prompt: "Be brief.",
      extra_args: ["--fallback-model", "haiku"],
      env: %{"FAKE_CLAUDE_LOG" => log}
    ]

    s = swarm!(agents: 1, executor: claude("ok", opts))
    # With CLAUDECODE inherited the stand-in (like the CLI) refuses to run.
    assert {_, {:ok, "answer to x" <> _}} = run(s, "x")

    [%{"argv" => argv, "env" => env}] =
      log
      |> File.read!()
      |> String.split("\n", trim: true)
      |> Enum.map(&:jiffy.decode(&1, [:return_maps]))

    assert argv ==
             ~w(-p --output-format stream-json --verbose --model claude-sonnet-4-5 --max-turns 3) ++
               ["--allowedTools", "Read,Bash(git log:*)", "--permission-mode", "plan"] ++
               ["--append-system-prompt", "Be brief.", "--fallback-model", "haiku"]

    refute "CLAUDECODE" in env
    refute Enum.any?(env, &String.starts_with?(&1, "RUV_SWARM_"))
  end

  test "resume: true continues the agent's previous session", %{dir: dir} do
    log = Path.join(dir, "argv.log")
    s = swarm!(agents: 1, executor: claude("ok", resume: true, env: %{"FAKE_CLAUDE_LOG" => log}))
    {_, {:ok, first}} = run(s, "one")
    [_, session] = Regex.run(~r/session (\S+)$/, first)
    {_, {:ok, second}} = run(s, "two")
    assert second == "answer to two in session #{session}"

    argvs = log |> File.read!() |> String.split("\n", trim: true)
    refute Enum.at(argvs, 0) =~ "--resume"
    assert Enum.at(argvs, 1) =~ ~s("--resume", "#{session}")
  end

  test "an error result fails the unit with the CLI's message" do
    s = swarm!(agents: 1, executor: claude("error"))

    assert {_,
            {:error,
             {:failed, "unit main failed after 1 attempt(s): claude: Credit balance is too low"}}} =
             run(s, "x")
  end

  test "a rate-limited result is retried with backoff", %{dir: dir} do
    marker = Path.join(dir, "limited")

    s =
      swarm!(
        agents: 1,
        executor: claude("rate_limit_once", env: %{"FAKE_CLAUDE_MARKER" => marker})
      )

    assert {_, {:ok, "answer to x" <> _}} = run(s, "x")
    assert File.exists?(marker)
  end

  test "a CLI that exits without a result fails with its stderr; garbage lines are skipped" do
    s = swarm!(agents: 1, executor: claude("no_result"))

    assert {_, {:error, {:failed, "unit main failed after 1 attempt(s): " <> reason}}} =
             run(s, "x")

    assert reason == "claude exited without a result (exit status 3): something broke"

    g = swarm!(agents: 1, executor: claude("garbage"))
    assert {_, {:ok, "answer to x" <> _}} = run(g, "x")
  end

  test "a CLI that never exits after its result: the unit ends, it and its child are stopped",
       %{dir: dir} do
    pids_file = Path.join(dir, "pids")
    exec = claude("linger", grace_ms: 200, env: %{"FAKE_CLAUDE_PIDS" => pids_file})
    s = swarm!(agents: 1, executor: exec)
    started = System.monotonic_time(:millisecond)
    assert {_, {:ok, "answer to x" <> _}} = run(s, "x")
    assert System.monotonic_time(:millisecond) - started < 5_000

    [cli, child] = pids_file |> File.read!() |> String.split() |> Enum.map(&String.to_integer/1)
    eventually(fn -> not alive?(cli) and not alive?(child) end, 2_000)
  end

  test "a timeout kills the CLI and its child; so does a cancel", %{dir: dir} do
    pids_file = Path.join(dir, "pids")

    # (Long enough for the stand-in's Python to start on a loaded machine:
    # it writes its pids first.)
    exec = claude("hang", timeout_ms: 1_500, env: %{"FAKE_CLAUDE_PIDS" => pids_file})
    s = swarm!(agents: 1, executor: exec)
    assert {_, {:error, {:timed_out, reason}}} = run(s, "x")
    assert reason =~ "claude timed out after 1500 ms and was killed"
    [cli, child] = pids_file |> File.read!() |> String.split() |> Enum.map(&String.to_integer/1)
    eventually(fn -> not alive?(cli) and not alive?(child) end, 2_000)

    File.rm!(pids_file)
    c = swarm!(agents: 1, executor: claude("hang", env: %{"FAKE_CLAUDE_PIDS" => pids_file}))
    {:ok, t} = RuvSwarm.orchestrate(c, %{input: "x", retries: 1})
    eventually(fn -> File.exists?(pids_file) and File.read!(pids_file) =~ "\n" end)
    [cli, child] = pids_file |> File.read!() |> String.split() |> Enum.map(&String.to_integer/1)
    assert :ok = RuvSwarm.cancel_task(t)
    eventually(fn -> not alive?(cli) and not alive?(child) end, 2_000)
  end

  defp argvs(log) do
    log
    |> File.read!()
    |> String.split("\n", trim: true)
    |> Enum.map(&(:jiffy.decode(&1, [:return_maps]) |> Map.fetch!("argv")))
  end

  defp flag(argv, name), do: Enum.at(argv, Enum.find_index(argv, &(&1 == name)) + 1)

  test "a persona gives its prompt, tone and tools; edits reach the next task", %{dir: dir} do
    log = Path.join(dir, "argv.log")
    name = "critic-#{System.unique_integer([:positive])}"
    on_exit(fn -> RuvSwarm.persona_delete(name) end)

    {:ok, %{builtin: false}} =
      RuvSwarm.persona_put(name, %{
        "system_prompt" => "You judge harshly.",
        "tone" => "terse",
        "allowed_tools" => ["Read"]
      })

    s = swarm!([])

    {:ok, _} =
      RuvSwarm.spawn_agent(s,
        type: name,
        executor:
          claude("ok", append_system_prompt: "Cite lines.", env: %{"FAKE_CLAUDE_LOG" => log})
      )

    {_, {:ok, _}} = run(s, "one")
    {:ok, _} = RuvSwarm.persona_put(name, %{system_prompt: "You judge kindly."})
    {_, {:ok, _}} = run(s, "two")

    [first, second] = argvs(log)

    assert flag(first, "--append-system-prompt") ==
             "You judge harshly.\n\nTone: terse.\n\nCite lines."

    assert flag(first, "--allowedTools") == "Read"
    assert flag(second, "--append-system-prompt") == "You judge kindly.\n\nCite lines."
    refute "--allowedTools" in second
  end

  test "each agent type has a built-in persona; personas are checked" do
    {:ok, personas} = RuvSwarm.persona_list()
    names = Enum.map(personas, & &1.name)

    for type <- ~w(researcher coder analyst optimizer coordinator tester reviewer) do
      assert type in names

      assert {:ok, %{builtin: true, system_prompt: "You are the swarm's " <> _}} =
               RuvSwarm.persona_get(type)
    end

    assert {:error, :persona_not_found} = RuvSwarm.persona_get("nobody")

    assert {:error, {:invalid_argument, _}} =
             RuvSwarm.persona_put("bad name!", %{system_prompt: "x"})

    assert {:error, {:invalid_argument, _}} = RuvSwarm.persona_put("empty", %{tone: "x"})

    assert {:error, {:invalid_argument, _}} =
             RuvSwarm.persona_put("odd", %{"system_prompt" => "x", "color" => "red"})

    s = swarm!([])

    assert {:error, {:invalid_argument, "no persona named \"nobody\"" <> _}} =
             RuvSwarm.spawn_agent(s, executor: {:claude, binary: @fake, persona: "nobody"})
  end

  test "every answer is kept in swarm memory; recall puts the best matches in the prompt",
       %{dir: dir} do
    log = Path.join(dir, "argv.log")
    exec = claude("ok", recall: 1, persona: "tester", env: %{"FAKE_CLAUDE_LOG" => log})
    s = swarm!(agents: 1, executor: exec)
    {t1, {:ok, a1}} = run(s, "the tokenizer drops unicode quotes")
    {_, {:ok, _}} = run(s, "the scheduler starves low priority tasks")

    {:ok, [entry]} = RuvSwarm.memory_search(s, %{namespace: "claude_qa", tags: ["task:" <> t1]})
    assert entry.key == t1 <> "/main"
    assert entry.value == "Q: the tokenizer drops unicode quotes\n\nA: " <> a1
    assert "persona:tester" in entry.tags

    # A question about the tokenizer recalls the tokenizer answer only.
    {_, {:ok, _}} = run(s, "does the tokenizer handle unicode now?")
    [first, second, third] = prompts(log)
    assert first == "the tokenizer drops unicode quotes"
    assert second == "the scheduler starves low priority tasks", "nothing in common: no recall"

    assert third ==
             "## Earlier answers in this swarm\n\n### #{t1}/main\n#{entry.value}\n\n" <>
               "## Task\n\ndoes the tokenizer handle unicode now?"
  end

  defp prompts(log) do
    log
    |> File.read!()
    |> String.split("\n", trim: true)
    |> Enum.map(&(:jiffy.decode(&1, [:return_maps]) |> Map.fetch!("prompt")))
  end

  test "options are checked where the executor enters" do
    {:ok, s} = RuvSwarm.spawn_swarm(storage: :memory)
    on_exit(fn -> RuvSwarm.destroy_swarm(s) end)

    for {opts, message} <- [
          {[binary: "/nonexistent/claude"], "was not found"},
          {[binary: @fake, max_turns: 0], ":max_turns must be a positive integer"},
          {[binary: @fake, permission_mode: "yolo"], ":permission_mode must be one of"},
          {[binary: @fake, allowed_tools: "Read"], ":allowed_tools must be a list of strings"},
          {[binary: @fake, bogus: 1], "unknown or invalid claude option :bogus"},
          {[binary: @fake, model: "a\0b"], "without NUL bytes"}
        ] do
      assert {:error, {:invalid_argument, msg}} =
               RuvSwarm.spawn_agent(s, executor: {:claude, opts})

      assert msg =~ message, msg
    end

    assert {:error, {:invalid_argument, _}} = Claude.validate(:nope)
  end

  defp alive?(pid), do: File.exists?("/proc/#{pid}") and not zombie?(pid)

  defp zombie?(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, stat} -> match?([_, " Z" <> _], String.split(stat, ")", parts: 2))
      _ -> true
    end
  end
end
