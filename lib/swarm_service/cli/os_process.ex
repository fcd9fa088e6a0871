defmodule SwarmService.CLI.OSProcess do
  @moduledoc """
  Operating-system processes seen from the command line: is a PID alive, is it
  an Erlang VM, is it the very process a PID file names (so a recycled PID,
  or another VM, is never mistaken for our node), signals.

  A process's identity is its PID, its start time (field 22 of
  `/proc/<pid>/stat`, clock ticks since boot) and the boot it belongs to
  (`/proc/sys/kernel/random/boot_id`): a PID is reused, that triple is not.
  """

  @typedoc "What identifies one process for its whole life."
  @type identity :: %{required(String.t()) => String.t() | integer()}

  @doc """
  The identity of `pid` (`"start_time"` and `"boot_id"`), or `:error` when
  the process is gone, a zombie, or `/proc` is not there.
  """
  @spec identity(pos_integer()) :: {:ok, identity()} | :error
  def identity(pid) when is_integer(pid) and pid > 0 do
    with {:ok, stat} <- File.read("/proc/#{pid}/stat"),
         [_, rest] <- :binary.split(stat, ") ", [:global]) |> split_last(),
         [state | fields] <- String.split(rest, " "),
         false <- state == "Z",
         {start, ""} <- Integer.parse(Enum.at(fields, 18, "")),
         {:ok, boot} <- File.read("/proc/sys/kernel/random/boot_id") do
      {:ok, %{"start_time" => start, "boot_id" => String.trim(boot)}}
    else
      _ -> :error
    end
  end

  # The command name may itself hold ") ": split at the last one.
  defp split_last([_]), do: :error

  defp split_last(parts) do
    {init, [last]} = Enum.split(parts, -1)
    [Enum.join(init, ") "), last]
  end

  @doc """
  True when `info` (a PID file's contents) names a live Erlang VM that is
  the very process that wrote it: same PID, start time and boot. A file
  without an identity never matches.
  """
  @spec same_process?(map()) :: boolean()
  def same_process?(%{"pid" => pid} = info) do
    same_identity?(info) and beam_alive?(pid)
  end

  def same_process?(_info), do: false

  defp same_identity?(%{"pid" => pid, "start_time" => start, "boot_id" => boot})
       when is_integer(pid) and pid > 0 do
    match?({:ok, %{"start_time" => ^start, "boot_id" => ^boot}}, identity(pid))
  end

  defp same_identity?(_info), do: false

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

  @doc """
  Waits until the process a PID file describes (see `same_process?/1`) is
  gone; `true` if it went within `timeout_ms`. A PID reused by another
  process counts as gone.
  """
  @spec wait_gone(map(), non_neg_integer()) :: boolean()
  def wait_gone(info, timeout_ms) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    do_wait_gone(info, deadline)
  end

  defp do_wait_gone(info, deadline) do
    cond do
      # Not `same_process?/1`: a VM in the middle of exiting has already
      # dropped its command line but still exists until it is a zombie.
      not same_identity?(info) ->
        true

      System.monotonic_time(:millisecond) >= deadline ->
        false

      true ->
        Process.sleep(10)
        do_wait_gone(info, deadline)
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
