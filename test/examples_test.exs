defmodule SwarmService.ExamplesTest do
  # Runs the README's examples end to end. The `claude -p` swarm runs with
  # test/support/fake_claude in place of claude: a real command reading the
  # prompt on stdin, so everything but the model is exercised.
  use ExUnit.Case, async: true

  Code.require_file("examples/claude_review.exs", File.cwd!())
  Code.require_file("examples/word_count.exs", File.cwd!())

  test "command agents review files, then one step summarises every review" do
    files = ["lib/swarm_service/agent.ex", "lib/swarm_service/coordination.ex"]
    fake = Path.expand("test/support/fake_claude")
    assert {:ok, summary} = Examples.ClaudeReview.run(files, [fake], 10_000)
    # The summary step read its prompt and both reviews (two sections).
    assert summary =~ ~s(answer to "Summarise these code reviews in five bullet points.")
    assert summary =~ "2 sections"
  end

  test "module agents count words across chunks" do
    text = "the cat and the hat\nThe end\nand more"
    assert {:ok, counts} = Examples.WordCount.run(text, 3)
    assert counts == %{"the" => 3, "cat" => 1, "and" => 2, "hat" => 1, "end" => 1, "more" => 1}
  end
end
