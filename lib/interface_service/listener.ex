defmodule InterfaceService.Listener do
  @moduledoc false
  # The gateway's Ranch listener. Ranch accepts; every connection runs
  # InterfaceService.Connection, which admits it against the gateway's caps
  # and then speaks HTTP/1.1 with Cowboy (cowboy_http) and the options below.

  alias InterfaceService.{Config, Endpoint, FramingGuard}

  # Acceptors waiting in accept at any time.
  @acceptors 16

  @doc "The Ranch listener, embedded in the gateway's supervision tree."
  @spec child_spec(Config.t()) :: Supervisor.child_spec()
  def child_spec(%Config{} = config) do
    transport = %{
      socket_opts: socket_opts(config),
      num_acceptors: @acceptors,
      # Ranch stops accepting at this number (connections then wait in the
      # backlog); it sits above our own caps so that connections over them
      # are accepted and told 503 instead.
      max_connections: 2 * config.max_connections + 64
    }

    protocol = %{
      config: config,
      admitted: cowboy_opts(config, :ok, config.header_timeout_ms),
      near_capacity: cowboy_opts(config, :ok, min(config.header_timeout_ms, 1_000)),
      over_capacity: cowboy_opts(config, :over_capacity, 1_000)
    }

    :ranch.child_spec(ref(config), :ranch_tcp, transport, InterfaceService.Connection, protocol)
  end

  defp socket_opts(config) do
    family = if tuple_size(config.ip) == 8, do: [:inet6], else: []

    family ++
      [
        ip: config.ip,
        port: config.port,
        backlog: 1024,
        nodelay: true,
        # A client that stops reading blocks a write for at most this long,
        # then its connection is closed.
        send_timeout: config.send_timeout_ms,
        send_timeout_close: true
      ]
  end

  # Cowboy's options for one admitted (or refused) connection.
  defp cowboy_opts(config, capacity, request_timeout) do
    %{
      env: %{dispatch: :cowboy_router.compile([{:_, [{:_, Endpoint, {config, capacity}}]}])},
      stream_handlers: [FramingGuard, :cowboy_stream_h],
      protocols: [:http],
      connection_type: :supervisor,
      # The whole request head must arrive within this, and a kept-alive
      # connection is closed after this long without a new request.
      request_timeout: request_timeout,
      # While a request runs, silence from the client is fine until the
      # handler's own deadlines (body, tool call) have passed.
      idle_timeout: max(config.request_timeout_ms, config.body_timeout_ms) + 10_000,
      max_keepalive: if(capacity == :ok, do: 1_000_000_000, else: 1),
      max_request_line_length: 8_000,
      max_header_name_length: 64,
      max_header_value_length: 8_192,
      max_headers: 64,
      max_empty_lines: 5,
      # One packet at a time, so InterfaceService.Transport sees every one
      # and can bound the bytes of a request head.
      active_n: 1,
      gateway: %{busy: config.tabs.busy, draining: config.tabs.draining}
    }
  end

  @doc "The listener's name in Ranch."
  def ref(%Config{name: name}), do: {__MODULE__, name}

  @doc "Open connections (HTTP keep-alive and streams)."
  def connections(%Config{tabs: %{conns: conns}}), do: :atomics.get(conns, 1)

  @doc "The bound port."
  def port(config), do: :ranch.get_port(ref(config))

  @doc "The base URL clients should use."
  def base_url(%Config{public_url: url}) when is_binary(url), do: url

  def base_url(%Config{ip: ip} = config) do
    host =
      case ip do
        {_, _, _, _, _, _, _, _} -> "[#{:inet.ntoa(ip)}]"
        _ -> to_string(:inet.ntoa(ip))
      end

    "http://#{host}:#{port(config)}"
  end
end
