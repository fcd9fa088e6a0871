defmodule InterfaceService.Rest do
  @moduledoc false
  # /api/mcp/<tool>: the MCP tools as plain JSON. POST a JSON object (or
  # nothing), get {"success": true, ...result} or {"success": false,
  # "error": "..."} with an HTTP status that fits the error.
  # swarm_spawn and coordinate_task are aliases of swarm_init and
  # task_orchestrate.

  alias SwarmService.Errors
  alias InterfaceService.{Conn, Json, Tools, Worker}

  def handle(%{method: :GET} = conn, path) when path in ["", "/"] do
    tools = Enum.map(Tools.definitions(), &Map.take(&1, [:name, :description]))
    Conn.send_json(conn, 200, %{success: true, tools: tools})
  end

  def handle(conn, path) when path in ["", "/"], do: Conn.method_not_allowed(conn, "GET")

  def handle(%{method: :POST} = conn, "/" <> name) do
    name = Tools.resolve_alias(name)

    if Tools.known?(name) do
      Process.put(:gateway_tool, name)
      call(conn, name)
    else
      Conn.send_json(conn, 404, %{
        success: false,
        error: "unknown tool #{inspect(String.slice(name, 0, 100))}"
      })
    end
  end

  def handle(conn, "/" <> _name), do: Conn.method_not_allowed(conn, "POST")

  def handle(conn, _path),
    do: Conn.send_json(conn, 404, %{success: false, error: "not found"})

  defp call(conn, name) do
    with {:ok, body} <- Conn.read_body_or_reply(conn),
         {:ok, args} <- decode(conn, body) do
      config = conn.config

      ctx = %{
        api: config.api,
        allowlist: config.command_allowlist,
        allow_claude: config.allow_claude,
        base_url: Conn.base_url(conn),
        progress: nil,
        client: conn.client,
        scope: :node
      }

      call = fn -> Tools.call(name, args, ctx) end

      outcome =
        if Tools.inline?(name, args),
          do: Worker.inline(call),
          else: Worker.run(call, config.request_timeout_ms)

      case outcome do
        {:ok, {:mcp_result, result}} ->
          success = result["isError"] != true
          Conn.send_json(conn, 200, Map.put(result, "success", success))

        {:ok, result} ->
          Conn.send_json(conn, 200, Map.merge(Json.to_json(result), %{"success" => true}))

        {:error, reason} ->
          error = Errors.for_client(reason)

          Conn.send_json(conn, error.http_status, %{
            success: false,
            error: error.message,
            code: error.code
          })

        {:crashed, _} ->
          Conn.send_json(conn, 500, %{
            success: false,
            error: "internal error while running #{name}"
          })
      end
    end
  end

  defp decode(conn, body) do
    if String.trim(body) == "" do
      {:ok, %{}}
    else
      case Json.decode(body) do
        {:ok, args} when is_map(args) ->
          {:ok, args}

        {:ok, _} ->
          Conn.send_json(conn, 400, %{
            success: false,
            error: "the body must be a JSON object"
          })

        {:error, _} ->
          Conn.send_json(conn, 400, %{success: false, error: "the body is not valid JSON"})
      end
    end
  end
end
