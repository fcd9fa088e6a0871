# Shared by the benchmarks (`Code.require_file("rss.exs", __DIR__)`): the
# resident set of an OS process as the kernel reports it.
defmodule Bench.Rss do
  @doc "Resident set size of OS process `pid` (default: this VM) in MiB, from /proc."
  def mib(pid \\ "self") do
    "/proc/#{pid}/status"
    |> File.read!()
    |> String.split("\n")
    |> Enum.find_value(fn
      "VmRSS:" <> rest -> rest |> String.trim() |> String.split() |> hd() |> String.to_integer()
      _ -> nil
    end)
    |> Kernel./(1024)
  end
end
