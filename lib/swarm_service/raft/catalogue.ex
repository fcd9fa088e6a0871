defmodule SwarmService.Raft.Catalogue do
  @moduledoc false
  # The durable swarms of a node, one file each under `<data_dir>/swarms/`:
  # what is needed to start the swarm's Ra server again (its uid, the
  # arguments that create its engine, its default executor). Ra keeps its
  # own directory of server names, but a server killed within about half a
  # second of its start can be missing from it (Ra 2.2 saves that table
  # lazily), so the node keeps its own, written before a create is
  # answered.

  @suffix ".swarm"

  @doc "Writes (or replaces) the entry of one swarm, synced to disk."
  def write(dir, %{id: id} = entry) do
    folder = folder(dir)
    path = Path.join(folder, id <> @suffix)
    tmp = path <> ".tmp"

    with :ok <- File.mkdir_p(folder),
         :ok <- File.write(tmp, :erlang.term_to_binary(entry), [:binary, :sync]),
         :ok <- File.rename(tmp, path) do
      :ok
    else
      {:error, reason} -> {:error, {:storage, "#{path}: #{:file.format_error(reason)}"}}
    end
  end

  @doc "Removes the entry of one swarm (absent is fine)."
  def remove(dir, id) do
    _ = File.rm(Path.join(folder(dir), id <> @suffix))
    :ok
  end

  @doc "The entry of one swarm, or nil."
  def read(dir, id) do
    case read(Path.join(folder(dir), id <> @suffix)) do
      {:ok, entry} -> entry
      {:error, _} -> nil
    end
  end

  @doc """
  Every readable entry, and `{file, reason}` for each file that is not
  one (corrupt, truncated, unreadable): those swarms are not started, the
  others are.
  """
  def read_all(dir) do
    case File.ls(folder(dir)) do
      {:ok, files} ->
        files
        |> Enum.filter(&String.ends_with?(&1, @suffix))
        |> Enum.sort()
        |> Enum.map(&read(Path.join(folder(dir), &1)))
        |> Enum.split_with(&match?({:ok, _}, &1))
        |> then(fn {ok, bad} -> {Enum.map(ok, &elem(&1, 1)), Enum.map(bad, &elem(&1, 1))} end)

      {:error, :enoent} ->
        {[], []}

      {:error, reason} ->
        {[], [{folder(dir), :file.format_error(reason)}]}
    end
  end

  defp read(path) do
    with {:ok, bin} <- File.read(path),
         %{id: id, slot: slot, uid: uid, create: create} = entry
         when is_binary(id) and is_integer(slot) and slot > 0 and is_binary(uid) and
                is_map(create) <- decode(bin),
         true <- Path.basename(path, @suffix) == id do
      {:ok, Map.put_new(entry, :executor, :external)}
    else
      {:error, reason} -> {:error, {path, :file.format_error(reason)}}
      _ -> {:error, {path, "not a swarm catalogue entry (corrupt or truncated)"}}
    end
  end

  # The files are this node's own (written above, in its data directory);
  # they name executor modules, which may not be loaded yet at boot, so
  # atoms are allowed here.
  defp decode(bin) do
    :erlang.binary_to_term(bin)
  rescue
    ArgumentError -> :corrupt
  end

  defp folder(dir), do: Path.join(dir, "swarms")
end
