defmodule SwarmService.Test.LogForwarder do
  @moduledoc false
  # A :logger handler that sends each event's message, as a string, to the
  # pid in its config: lets a test read the log of a peer node.
  #
  #     :ok = PeerCluster.rpc(peer, LogForwarder, :attach, [self()])
  #     assert_receive {:peer_log, ^peer, :warning, "..."}

  def attach(pid, level \\ :warning) do
    :logger.remove_handler(__MODULE__)
    :ok = :logger.set_primary_config(:level, :all)
    # The console keeps showing only errors.
    _ = :logger.update_handler_config(:default, :level, :error)
    _ = Logger.configure_backend(:console, level: :error)
    :logger.add_handler(__MODULE__, __MODULE__, %{level: level, config: %{pid: pid}})
  end

  def log(%{level: level, msg: msg}, %{config: %{pid: pid}}) do
    text =
      case msg do
        {:string, s} -> IO.chardata_to_string(s)
        {:report, r} -> inspect(r)
        {format, args} -> format |> :io_lib.format(args) |> IO.chardata_to_string()
      end

    send(pid, {:peer_log, node(), level, text})
  end
end
