defmodule InterfaceService.Connection do
  @moduledoc false
  # A Ranch protocol: one process per TCP connection. It counts the
  # connection against the gateway's caps (in total and per client address)
  # before Cowboy reads a byte, then runs cowboy_http in this same process:
  #   * admitted: the normal options;
  #   * admitted while the gateway is near its cap: kept-alive connections
  #     that sit idle are closed after 1 s instead of header_timeout_ms;
  #   * over a cap: the first request is answered 503 and the connection
  #     closed (the answer has the route's shape, e.g. JSON-RPC for /mcp).
  # An admitted connection's counts are given back when it ends, however it
  # ends; a refused one is not counted (Ranch's own max_connections bounds
  # how many of those may exist at once).

  alias InterfaceService.Transport

  @doc false
  def start_link(ref, :ranch_tcp, opts) do
    {:ok, :proc_lib.spawn_link(__MODULE__, :init, [self(), ref, opts])}
  end

  @doc false
  def init(parent, ref, opts) do
    {:ok, socket} = :ranch.handshake(ref)
    # cowboy_http expects this of a connection_type supervisor process.
    Process.flag(:trap_exit, true)
    config = opts.config

    address =
      case :inet.peername(socket) do
        {:ok, {ip, _port}} -> ip
        _ -> :unknown
      end

    capacity = admit(config, address)

    cowboy =
      case capacity do
        :over -> opts.over_capacity
        :near -> opts.near_capacity
        :ok -> opts.admitted
      end

    Transport.start_head()

    try do
      :cowboy_http.init(parent, ref, socket, Transport, :undefined, cowboy)
    after
      release(config, address, capacity)
    end
  end

  defp admit(config, address) do
    total = :atomics.add_get(config.tabs.conns, 1, 1)
    key = {:address, address}
    mine = :ets.update_counter(config.tabs.http, key, 1, {key, 0})

    cond do
      total > config.max_connections or mine > config.max_connections_per_address ->
        # A refused connection does not hold a place: a flood of them must
        # not push other clients' connections over the cap.
        release(config, address, :ok)
        :over

      total * 4 > config.max_connections * 3 ->
        :near

      true ->
        :ok
    end
  end

  defp release(_config, _address, :over), do: :ok

  defp release(config, address, _admitted) do
    :atomics.sub(config.tabs.conns, 1, 1)
    key = {:address, address}

    if :ets.update_counter(config.tabs.http, key, -1, {key, 1}) <= 0,
      do: :ets.select_delete(config.tabs.http, [{{key, :"$1"}, [{:"=<", :"$1", 0}], [true]}])
  end
end
