defmodule InterfaceService.Worker do
  @moduledoc false
  # Runs one tool call in its own process, so the request process can time
  # it out, cancel it and survive its crash. The worker is linked to the
  # request process: a client that hangs up ends the request process, and
  # with it the call (a crash inside the call is caught and reported, so the
  # link never takes the request down). Progress reports from the tool
  # arrive as {:mcp_progress, ref, done, total, message}; the ref is in the
  # worker's dictionary under :gateway_call_ref.

  require Logger

  @type outcome ::
          term() | :cancelled | {:crashed, term()} | {:error, {:timeout_after, pos_integer()}}

  @doc """
  Runs `fun` (0-arity) in a new process and waits up to `timeout_ms`.
  `on_start` gets the worker pid (to register it for cancellation);
  `on_progress` is called in the caller for each progress report.
  A `{:mcp_cancelled, worker}` message ends the wait with `:cancelled`.
  """
  @spec run(
          (() -> term()),
          pos_integer(),
          (pid() -> any()),
          (number(), number() | nil, term() -> any()) | nil
        ) ::
          outcome()
  def run(fun, timeout_ms, on_start \\ fn _ -> :ok end, on_progress \\ nil) do
    parent = self()
    ref = make_ref()

    worker =
      spawn_link(fn ->
        Process.put(:gateway_call_ref, ref)
        send(parent, {ref, inline(fun)})
      end)

    mref = Process.monitor(worker)

    on_start.(worker)
    deadline = System.monotonic_time(:millisecond) + timeout_ms

    try do
      await(ref, mref, worker, deadline, on_progress, timeout_ms)
    catch
      # The client went away while progress was being written: stop the work.
      :exit, reason ->
        stop(worker)
        exit(reason)
    end
  end

  @doc """
  Runs `fun` in the calling process, for calls that return at once: no
  process, monitor or timer. A crash becomes `{:crashed, reason}`, as it
  would from a worker.
  """
  @spec inline((() -> term())) :: outcome()
  def inline(fun) do
    fun.()
  catch
    kind, reason ->
      reason = {kind, reason, __STACKTRACE__}
      Logger.error("gateway: tool call crashed: #{inspect(reason, limit: 30)}")
      {:crashed, reason}
  end

  @doc "Sends a progress report from inside a worker to the waiting connection."
  @spec report(pid(), number(), number() | nil, term()) :: :ok
  def report(parent, done, total, message) do
    send(parent, {:mcp_progress, Process.get(:gateway_call_ref), done, total, message})
    :ok
  end

  defp await(ref, mref, worker, deadline, on_progress, timeout_ms) do
    remaining = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^ref, outcome} ->
        Process.demonitor(mref, [:flush])
        outcome

      {:mcp_progress, ^ref, done, total, message} ->
        if on_progress, do: on_progress.(done, total, message)
        await(ref, mref, worker, deadline, on_progress, timeout_ms)

      {:mcp_cancelled, ^worker} ->
        Process.demonitor(mref, [:flush])
        stop(worker)
        :cancelled

      # A streaming request traps exits: its connection ended.
      {:EXIT, from, reason} when from != worker ->
        stop(worker)
        exit(reason)

      {:DOWN, ^mref, :process, _, reason} ->
        Logger.error("gateway: tool call crashed: #{inspect(reason, limit: 30)}")
        {:crashed, reason}
    after
      remaining ->
        stop(worker)
        Process.demonitor(mref, [:flush])
        {:error, {:timeout_after, timeout_ms}}
    end
  end

  # Unlinked first: killing a linked worker would take the caller with it.
  defp stop(worker) do
    Process.unlink(worker)
    Process.exit(worker, :kill)
  end
end
