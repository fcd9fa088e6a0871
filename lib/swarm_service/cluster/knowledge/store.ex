defmodule SwarmService.Cluster.Knowledge.Store do
  @moduledoc false
  # The knowledge repository's entries on disk, so that they survive a
  # stop of the whole cluster: an append-only file of the entries this node
  # applied (each a length-prefixed external term), synced before a write
  # is acknowledged or a peer's delta is acked. On open, the file is read
  # back (a torn last record, from a kill -9 mid-append, ends the read and
  # is logged), and rewritten with only the entries still current, so it
  # stays as big as the repository.
  require Logger

  @file_name "knowledge.log"

  @doc "Opens the store in `dir`: `{:ok, device, entries_in_order}`."
  @spec open(Path.t()) :: {:ok, :file.io_device(), [tuple()]} | {:error, String.t()}
  def open(dir) do
    path = Path.join(dir, @file_name)

    with :ok <- File.mkdir_p(dir),
         {:ok, entries} <- read(path) do
      compact(path, entries)
    end
  end

  @doc "Appends one applied entry (not yet synced)."
  def append(device, entry) do
    bin = :erlang.term_to_binary(entry)
    :ok = :file.write(device, [<<byte_size(bin)::32>>, bin])
  end

  @doc "Makes what was appended durable."
  def sync(device), do: :file.datasync(device)

  defp read(path) do
    case File.read(path) do
      {:ok, bin} -> {:ok, records(bin, path, [])}
      {:error, :enoent} -> {:ok, []}
      {:error, reason} -> {:error, "#{path}: #{:file.format_error(reason)}"}
    end
  end

  defp records(<<size::32, bin::binary-size(size), rest::binary>>, path, acc) do
    case decode(bin) do
      {:ok, entry} -> records(rest, path, [entry | acc])
      :error -> torn(path, acc)
    end
  end

  defp records(<<>>, _path, acc), do: Enum.reverse(acc)
  defp records(_torn, path, acc), do: torn(path, acc)

  defp torn(path, acc) do
    Logger.warning(
      "#{path}: a torn or corrupt record ends the file; the entries before it are kept"
    )

    Enum.reverse(acc)
  end

  # The file is this node's own; values may hold atoms of earlier runs.
  defp decode(bin) do
    {:ok, :erlang.binary_to_term(bin)}
  rescue
    ArgumentError -> :error
  end

  # Keeps the last entry of each key, written to a new file that replaces
  # the old one once it is on disk.
  defp compact(path, entries) do
    current =
      entries
      |> Enum.reduce(%{}, fn {key, _, _, _, _} = e, acc -> Map.put(acc, key, e) end)
      |> Map.values()

    tmp = path <> ".tmp"

    with {:ok, device} <- :file.open(tmp, [:write, :raw, :binary]),
         :ok <- Enum.each(current, &append(device, &1)),
         :ok <- :file.datasync(device),
         :ok <- :file.close(device),
         :ok <- File.rename(tmp, path),
         {:ok, device} <- :file.open(path, [:append, :raw, :binary]) do
      {:ok, device, current}
    else
      {:error, reason} -> {:error, "#{path}: #{inspect(reason)}"}
    end
  end
end
