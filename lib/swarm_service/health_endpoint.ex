defmodule SwarmService.HealthEndpoint do
  @moduledoc """
  A tiny HTTP listener answering `GET /health` on its own port
  (127.0.0.1:9898 by default), apart from the gateway, so process managers
  and `mix swarm.mcp status` can check a node even when the gateway is busy
  or stopped.

  It is a supervisor around one small Cowboy listener (a handful of
  acceptors, at most 64 connections, short timeouts). The listener starts only when a port is configured: `port:` in the start
  options, else the `RUV_SWARM_HEALTH_PORT` environment variable, else
  `config :swarm_service, :health_port`. Without one the supervisor starts
  with no children, so the application can always list it as a child.

  It answers `SwarmService.Health.report/0` (200 when `"ok"`, 503 when
  `"degraded"`).
  """
  use Supervisor

  @listener :ruv_swarm_health_listener

  @doc """
  Starts the endpoint. Options: `:port` (0 picks a free port), `:ip`
  (default `{127, 0, 0, 1}`), `:name` (default `#{inspect(__MODULE__)}`).
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts \\ []) do
    Supervisor.start_link(__MODULE__, opts, name: Keyword.get(opts, :name, __MODULE__))
  end

  @impl true
  def init(opts) do
    children =
      case configured_port(opts) do
        nil ->
          []

        port ->
          transport = %{
            socket_opts: [ip: Keyword.get(opts, :ip, {127, 0, 0, 1}), port: port],
            num_acceptors: 4,
            max_connections: 64
          }

          protocol = %{
            env: %{dispatch: :cowboy_router.compile([{:_, [{:_, __MODULE__, nil}]}])},
            request_timeout: 5_000,
            idle_timeout: 10_000,
            max_keepalive: 100
          }

          [:ranch.child_spec(@listener, :ranch_tcp, transport, :cowboy_clear, protocol)]
      end

    Supervisor.init(children, strategy: :one_for_one)
  end

  @doc "The port the listener is bound to, or `nil` when it is not running."
  @spec port() :: :inet.port_number() | nil
  def port do
    :ranch.get_port(@listener)
  rescue
    _ -> nil
  catch
    _, _ -> nil
  end

  @doc "The configured port: options, then environment, then application config."
  @spec configured_port(keyword()) :: :inet.port_number() | nil
  def configured_port(opts \\ []) do
    value =
      Keyword.get_lazy(opts, :port, fn ->
        System.get_env("RUV_SWARM_HEALTH_PORT") ||
          Application.get_env(:swarm_service, :health_port)
      end)

    case value do
      port when is_integer(port) and port in 0..65_535 -> port
      text when is_binary(text) -> parse_port(text)
      _ -> nil
    end
  end

  defp parse_port(text) do
    case Integer.parse(String.trim(text)) do
      {port, ""} when port in 0..65_535 -> port
      _ -> nil
    end
  end

  @doc false
  # Cowboy handler.
  def init(req, state) do
    req =
      case {:cowboy_req.method(req), :cowboy_req.path(req)} do
        {method, "/health"} when method in ["GET", "HEAD"] ->
          report = SwarmService.Health.report()
          code = if report.status == "ok", do: 200, else: 503
          respond(req, code, :jiffy.encode(report, [:use_nil]))

        {_, "/health"} ->
          respond(req, 405, ~s({"error":"method not allowed"}), %{"allow" => "GET, HEAD"})

        _ ->
          respond(req, 404, ~s({"error":"not found"}))
      end

    {:ok, req, state}
  end

  defp respond(req, code, body, extra \\ %{}) do
    headers =
      Map.merge(%{"content-type" => "application/json", "cache-control" => "no-store"}, extra)

    :cowboy_req.reply(code, headers, body, req)
  end
end
