defmodule SwarmService.Executor.Mcp do
  @moduledoc """
  The executor `{:mcp, server, tool}`: each unit of work is one call of
  `tool` on the managed MCP server `server` (see `SwarmService.McpServers`).

  The unit's input is the tool's arguments: a map (atom keys are turned
  into strings), a JSON object as text, or `nil` for none. The result is
  the server's `CallToolResult` as decoded JSON (`"content"`, optional
  `"structuredContent"`). A result with `"isError": true`, a timeout, an
  overloaded or unavailable server all fail the attempt, which the
  scheduler then retries with its backoff, or fails with the reason.
  Progress notifications of the call become the attempt's progress.
  """

  @behaviour SwarmService.Executor

  @doc false
  @spec validate(term, term) ::
          {:ok, SwarmService.Executor.spec()} | {:error, {:invalid_argument, String.t()}}
  def validate(server, tool)
      when is_binary(server) and is_binary(tool) and server != "" and tool != "",
      do: {:ok, {:module, __MODULE__, {server, tool}}}

  def validate(_server, _tool),
    do:
      {:error,
       {:invalid_argument, "executor {:mcp, server, tool} takes a server name and a tool name"}}

  @impl true
  def run(task, %{arg: {server, tool}} = context) do
    with {:ok, args} <- arguments(task.input) do
      on_progress = fn %{progress: p, total: total, message: message} ->
        fraction = if is_number(p) and is_number(total) and total > 0, do: min(p / total, 1.0)
        SwarmService.Executor.progress(context, fraction, message)
      end

      case SwarmService.McpServers.call(server, tool, args, on_progress: on_progress) do
        {:ok, %{"isError" => true} = result} -> {:error, {:failed, error_text(result)}}
        {:ok, result} -> {:ok, result}
        {:error, reason} -> {:error, {:failed, SwarmService.Errors.message(reason)}}
      end
    end
  end

  defp arguments(nil), do: {:ok, %{}}
  defp arguments(%{} = map) when not is_struct(map), do: {:ok, stringify(map)}

  defp arguments(text) when is_binary(text) do
    case :jiffy.decode(text, [:return_maps, :use_nil]) do
      %{} = map -> {:ok, map}
      _ -> not_arguments()
    end
  catch
    _, _ -> not_arguments()
  end

  defp arguments(_), do: not_arguments()

  defp not_arguments,
    do:
      {:error, {:failed, "the unit's input must be the tool's arguments: a map or a JSON object"}}

  defp stringify(%{} = map) when not is_struct(map),
    do: Map.new(map, fn {k, v} -> {key(k), stringify(v)} end)

  defp stringify(list) when is_list(list), do: Enum.map(list, &stringify/1)
  defp stringify(v), do: v

  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k), do: k

  defp error_text(%{"content" => content}) when is_list(content) do
    text = for %{"type" => "text", "text" => t} <- content, into: "", do: t
    if text == "", do: "the tool reported an error", else: String.slice(text, 0, 1000)
  end

  defp error_text(_), do: "the tool reported an error"
end
