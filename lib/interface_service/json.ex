defmodule InterfaceService.Json do
  @moduledoc false
  # The one place JSON meets terms. Decoding yields maps with binary keys (no
  # atoms are ever created from input); encoding first turns engine terms
  # that JSON cannot carry (tuples, pids, references) into plain values.

  @doc "Decodes a JSON document; `{:error, :invalid_json}` on any malformed input."
  @spec decode(binary()) :: {:ok, term()} | {:error, :invalid_json}
  def decode(body) when is_binary(body) do
    {:ok, :jiffy.decode(body, [:return_maps, :use_nil, :dedupe_keys])}
  catch
    _, _ -> {:error, :invalid_json}
  end

  @doc "Encodes a term as JSON iodata."
  @spec encode!(term()) :: iodata()
  def encode!(term), do: :jiffy.encode(term, [:use_nil])

  @doc """
  Encodes a term that may hold values JSON cannot represent. Terms jiffy
  already encodes as `to_json/1` would (maps with atom or string keys,
  lists, strings, numbers, atoms) go to jiffy as they are; anything else
  is converted first.
  """
  @spec encode_term!(term()) :: iodata()
  def encode_term!(term) do
    if plain?(term) do
      try do
        encode!(term)
      catch
        # Not UTF-8: to_json/1 turns such binaries into Base64.
        :error, _ -> encode!(to_json(term))
      end
    else
      encode!(to_json(term))
    end
  end

  # Checking is cheaper than rebuilding every map with string keys. Tuples
  # are not plain (jiffy would take {[...]} for an object), nor are structs
  # (their __struct__ key would be written).
  defp plain?(map) when is_map(map) and not is_map_key(map, :__struct__),
    do: plain_pairs?(:maps.to_list(map))

  # jiffy writes the atom null as JSON null; to_json/1 makes it "null".
  defp plain?(:null), do: false
  defp plain?([]), do: true
  defp plain?([h | t]), do: plain?(h) and plain?(t)
  defp plain?(b) when is_binary(b) or is_number(b) or is_atom(b), do: true
  defp plain?(_), do: false

  defp plain_pairs?([]), do: true

  defp plain_pairs?([{k, v} | rest]) when is_atom(k) or is_binary(k),
    do: plain?(v) and plain_pairs?(rest)

  defp plain_pairs?(_), do: false

  @doc "Converts an engine term into one jiffy can encode."
  @spec to_json(term()) :: term()
  def to_json(map) when is_map(map) and not is_struct(map) do
    Map.new(map, fn {k, v} -> {key(k), to_json(v)} end)
  end

  def to_json(%{__struct__: _} = struct), do: struct |> Map.from_struct() |> to_json()
  def to_json(list) when is_list(list), do: Enum.map(list, &to_json/1)
  def to_json(nil), do: nil
  def to_json(b) when is_boolean(b), do: b
  def to_json(a) when is_atom(a), do: Atom.to_string(a)
  def to_json(n) when is_number(n), do: n

  def to_json(b) when is_binary(b) do
    if String.valid?(b), do: b, else: Base.encode64(b)
  end

  def to_json(t) when is_tuple(t), do: t |> Tuple.to_list() |> to_json()
  def to_json(other), do: inspect(other)

  defp key(k) when is_binary(k), do: k
  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k), do: inspect(k)
end
