defmodule InterfaceService.Tools.Page do
  @moduledoc false
  # Pages of listings the gateway slices itself (swarm_list, memory_search):
  # both are bounded already (swarms of a node, at most max_search_results
  # entries), so an offset is enough. Cursors are opaque to the caller and
  # carry the listing they belong to, so one listing's cursor is refused by
  # another. agent_list pages in the engine (SwarmService.RuvSwarm.list_agents_page/2).

  @default 100
  @max 1000

  def default_size, do: @default
  def max_size, do: @max

  @doc "The offset a cursor of `listing` names (0 without one)."
  def offset(_listing, nil), do: {:ok, 0}

  def offset(listing, cursor) when is_binary(cursor) do
    size = byte_size(listing)

    with {:ok, <<^listing::binary-size(size), ":", n::binary>>} <-
           Base.url_decode64(cursor, padding: false),
         {offset, ""} when offset > 0 <- Integer.parse(n) do
      {:ok, offset}
    else
      _ -> {:error, bad(cursor)}
    end
  end

  def offset(_listing, cursor), do: {:error, bad(cursor)}

  @doc "Slices `items` at `offset`; the next cursor when items are left over."
  def slice(listing, items, offset, limit) do
    page = items |> Enum.drop(offset) |> Enum.take(limit + 1)

    if length(page) > limit,
      do: {Enum.take(page, limit), cursor(listing, offset + limit)},
      else: {page, nil}
  end

  defp cursor(listing, offset),
    do: Base.url_encode64(listing <> ":" <> Integer.to_string(offset), padding: false)

  defp bad(cursor) do
    shown = if is_binary(cursor), do: inspect(String.slice(cursor, 0, 40)), else: "given"

    {:invalid_argument,
     "cursor #{shown} is not one this server gave out: pass the nextCursor of the previous page, or none for the first page"}
  end
end
