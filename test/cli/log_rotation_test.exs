defmodule SwarmService.CLI.LogRotationTest do
  # Adds a global logger handler: not async.
  use ExUnit.Case, async: false
  require Logger

  alias SwarmService.CLI.Runtime

  test "detached logging goes to ruv-swarm.log and rotates by size" do
    dir = Path.join(System.tmp_dir!(), "ruv-swarm-logs-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    level = Logger.level()
    Logger.configure(level: :info)

    try do
      :ok = Runtime.log_to_files(dir, max_bytes: 2_000, max_files: 2, console: true)
      for i <- 1..100, do: Logger.info("line #{i} " <> String.duplicate("x", 60))
      Logger.flush()
      :ok = :logger_std_h.filesync(:ruv_swarm_file)

      files = dir |> File.ls!() |> Enum.sort()
      assert "ruv-swarm.log" in files
      assert "ruv-swarm.log.0" in files
      # Bounded: never more than max_files rotated files.
      refute "ruv-swarm.log.2" in files
      assert File.read!(Path.join(dir, "ruv-swarm.log")) =~ ~r/\[info\] line \d+ x+/
    after
      :logger.remove_handler(:ruv_swarm_file)
      Logger.configure(level: level)
      File.rm_rf!(dir)
    end
  end
end
