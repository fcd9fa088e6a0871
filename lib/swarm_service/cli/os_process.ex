defmodule SwarmService.CLI.OSProcess do
  @moduledoc """
  Operating-system processes seen from the command line: is a PID alive, is it
  an Erlang VM (so a recycled PID is not mistaken for our node), signals.
  """

  @doc """
  True when `pid` is a live process that runs an Erlang VM. Where `/proc` is
  not available the check falls back to `kill -0` (alive, of any kind).
  """
  @spec beam_alive?(pos_integer()) :: boolean()
  def beam_alive?(pid) when is_integer(pid) and pid > 0 do
    if File.dir?("/proc/self") do
      case File.read("/proc/#{pid}/cmdline") do
        # A zombie has an empty command line: it is gone for our purposes.
        {:ok, ""} -> false
        {:ok, cmdline} -> String.contains?(cmdline, "beam") and not zombie?(pid)
        {:error, _} -> false
      end
    else
      alive?(pid)
    end
  end

  @doc "True when a process with this PID exists (any program)."
  @spec alive?(pos_integer()) :: boolean()
  def alive?(pid) when is_integer(pid) and pid > 0 do
    if File.dir?("/proc/self") do
      File.exists?("/proc/#{pid}") and not zombie?(pid)
    else
      match?({_, 0}, System.cmd("kill", ["-0", to_string(pid)], stderr_to_stdout: true))
    end
  end

  @doc "Sends `signal` (`:term` or `:kill`) to `pid`."
  @spec signal(pos_integer(), :term | :kill) :: :ok | {:error, String.t()}
  def signal(pid, signal) when is_integer(pid) and signal in [:term, :kill] do
    flag = if signal == :term, do: "-TERM", else: "-KILL"

    case System.cmd("kill", [flag, to_string(pid)], stderr_to_stdout: true) do
      {_, 0} -> :ok
      {out, _} -> {:error, String.trim(out)}
    end
  end

  @doc "Waits until `pid` is gone; `true` if it went within `timeout_ms`."
  @spec wait_exit(pos_integer(), non_neg_integer()) :: boolean()
  def wait_exit(pid, timeout_ms) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    do_wait_exit(pid, deadline)
  end

  defp do_wait_exit(pid, deadline) do
    cond do
      not alive?(pid) ->
        true

      System.monotonic_time(:millisecond) >= deadline ->
        false

      true ->
        Process.sleep(10)
        do_wait_exit(pid, deadline)
    end
  end

  defp zombie?(pid) do
    case File.read("/proc/#{pid}/stat") do
      # The state follows the parenthesised command name.
      {:ok, stat} -> match?([_, " Z" <> _], String.split(stat, ")", parts: 2))
      {:error, _} -> false
    end
  end
end
