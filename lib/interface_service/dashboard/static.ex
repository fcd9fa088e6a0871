defmodule InterfaceService.Dashboard.Static do
  @moduledoc """
  Serves the dashboard's page and assets from `priv/static/dashboard`:
  `GET /` (the page) and `GET /dashboard/<file>` for a fixed list of files.
  No other path is looked up on disk, so no request names a file of its
  choosing.

  The files hold no data (that comes over `/ws` after the token check),
  so they are served without a token, like `/health`, but rate limited per
  client address. Responses forbid framing and any script, style or
  connection from elsewhere (`content-security-policy`), so the page uses
  nothing but this node at run time.
  """

  alias InterfaceService.{Conn, Metrics, RateLimiter}

  @files %{
    "/" => {"index.html", "text/html; charset=utf-8"},
    "/index.html" => {"index.html", "text/html; charset=utf-8"},
    "/dashboard/app.js" => {"app.js", "text/javascript; charset=utf-8"},
    "/dashboard/app.css" => {"app.css", "text/css; charset=utf-8"},
    "/dashboard/icon.svg" => {"icon.svg", "image/svg+xml"}
  }

  @per_s 50
  @burst 200

  @csp "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " <>
         "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

  @doc "Whether `path` is one of the dashboard's files."
  @spec asset?(String.t()) :: boolean()
  def asset?(path), do: Map.has_key?(@files, path)

  @doc "Answers a request for one of the dashboard's files."
  @spec serve(Conn.t()) :: Conn.t()
  def serve(%Conn{method: method} = conn) when method in [:GET, :HEAD] do
    config = conn.config

    case RateLimiter.take(config.tabs.rate, {:static, Conn.peer(conn)}, @per_s, @burst) do
      :ok -> send_file(conn)
      {:error, retry_ms} -> InterfaceService.Endpoint.rate_limited(conn, :rate_limited, retry_ms)
    end
  end

  def serve(conn), do: Conn.method_not_allowed(conn, "GET, HEAD")

  defp send_file(conn) do
    {name, type} = Map.fetch!(@files, conn.path)

    case File.read(Path.join(dir(), name)) do
      {:ok, body} ->
        body = if conn.method == :HEAD, do: "", else: body

        Conn.send_resp(
          conn,
          200,
          [
            {"content-type", type},
            {"cache-control", "no-cache"},
            {"content-security-policy", @csp},
            {"x-content-type-options", "nosniff"},
            {"x-frame-options", "DENY"},
            {"referrer-policy", "no-referrer"}
          ],
          body
        )

      {:error, _} ->
        Metrics.reject(conn.config.tabs.metrics, :not_found)
        Conn.send_json(conn, 404, %{error: "the dashboard's files are not installed"})
    end
  end

  @doc "The directory the files are read from."
  @spec dir() :: String.t()
  def dir do
    case :code.priv_dir(:swarm_service) do
      {:error, _} -> Path.expand("priv/static/dashboard")
      priv -> Path.join(List.to_string(priv), "static/dashboard")
    end
  end
end
