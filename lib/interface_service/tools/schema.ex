defmodule InterfaceService.Tools.Schema do
  @moduledoc false
  # The subset of JSON Schema (2020-12) the tool schemas use: type (one or a
  # list), enum, minimum/maximum, minLength/maxLength, minItems/maxItems,
  # items, properties, required and additionalProperties: false. Messages
  # name the offending path so a model can correct its call.

  @doc """
  An object schema that rejects unknown properties. Property names become
  strings, as they arrive in decoded JSON, so validation compares them as
  they are.
  """
  def object(props, required \\ []) do
    %{
      type: "object",
      properties: Map.new(props, fn {key, schema} -> {to_string(key), schema} end),
      required: required,
      additionalProperties: false
    }
  end

  @doc "An integer schema with inclusive bounds."
  def integer(min, max), do: %{type: "integer", minimum: min, maximum: max}

  @doc "A string schema allowing the keys of `table` (sorted)."
  def enum_of(table), do: %{type: "string", enum: table |> Map.keys() |> Enum.sort()}

  @doc "Validates `value` against `schema`; returns `:ok` or `{:error, message}`."
  @spec validate(term(), map()) :: :ok | {:error, String.t()}
  def validate(value, schema) do
    case check(value, schema, "arguments") do
      [] -> :ok
      errors -> {:error, errors |> Enum.reverse() |> Enum.take(5) |> Enum.join("; ")}
    end
  end

  defp check(value, schema, path) do
    with [] <- check_type(value, schema, path),
         [] <- check_enum(value, schema, path) do
      check_range(value, schema, path) ++ check_nested(value, schema, path)
    end
  end

  defp check_type(value, %{type: types}, path) do
    types = List.wrap(types)

    if Enum.any?(types, &type?(value, &1)),
      do: [],
      else: ["#{path} must be #{Enum.join(types, " or ")}, got #{describe(value)}"]
  end

  defp check_type(_value, _schema, _path), do: []

  defp type?(v, "string"), do: is_binary(v)
  defp type?(v, "integer"), do: is_integer(v)
  defp type?(v, "number"), do: is_number(v)
  defp type?(v, "boolean"), do: is_boolean(v)
  defp type?(v, "object"), do: is_map(v)
  defp type?(v, "array"), do: is_list(v)
  defp type?(v, "null"), do: is_nil(v)

  defp describe(v) when is_binary(v), do: "a string"
  defp describe(v) when is_integer(v), do: "an integer"
  defp describe(v) when is_float(v), do: "a number"
  defp describe(v) when is_boolean(v), do: "a boolean"
  defp describe(v) when is_map(v), do: "an object"
  defp describe(v) when is_list(v), do: "an array"
  defp describe(nil), do: "null"

  defp check_enum(value, %{enum: allowed}, path) do
    if value in allowed, do: [], else: ["#{path} must be one of #{Enum.join(allowed, ", ")}"]
  end

  defp check_enum(_value, _schema, _path), do: []

  # Messages (and the paths in them) are built only for values that fail:
  # a valid call builds no strings at all.
  defp check_range(value, schema, path) when is_number(value) do
    min = Map.get(schema, :minimum)
    max = Map.get(schema, :maximum)

    cond do
      min != nil and value < min -> ["#{path} must be >= #{min}"]
      max != nil and value > max -> ["#{path} must be <= #{max}"]
      true -> []
    end
  end

  defp check_range(value, schema, path) when is_binary(value) do
    min = Map.get(schema, :minLength, 0)
    max = Map.get(schema, :maxLength)

    # A string has at most as many characters as bytes, and a non-empty one
    # has at least one: most strings are judged without counting.
    len =
      if (max == nil or byte_size(value) <= max) and (min == 0 or (min == 1 and value != "")),
        do: nil,
        else: String.length(value)

    cond do
      len == nil -> []
      len < min -> ["#{path} must have at least #{min} characters"]
      max != nil and len > max -> ["#{path} must have at most #{max} characters"]
      true -> []
    end
  end

  defp check_range(value, schema, path) when is_list(value) do
    min = Map.get(schema, :minItems, 0)
    max = Map.get(schema, :maxItems)
    len = length(value)

    cond do
      len < min -> ["#{path} must have at least #{min} items"]
      max != nil and len > max -> ["#{path} must have at most #{max} items"]
      true -> []
    end
  end

  defp check_range(_value, _schema, _path), do: []

  defp check_nested(value, %{items: item_schema}, path) when is_list(value) do
    value
    |> Enum.with_index()
    |> Enum.flat_map(fn {item, i} ->
      check(item, item_schema, [path, "[", Integer.to_string(i), "]"])
    end)
  end

  defp check_nested(value, schema, path) when is_map(value) do
    props = Map.get(schema, :properties, %{})

    missing =
      for key <- Map.get(schema, :required, []), not Map.has_key?(value, key) do
        "#{path}.#{key} is required"
      end

    extra =
      if Map.get(schema, :additionalProperties, true) == false do
        for key <- Map.keys(value), not Map.has_key?(props, key) do
          allowed = props |> Map.keys() |> Enum.sort() |> Enum.join(", ")
          "#{path} has unknown property #{inspect(key)} (allowed: #{allowed})"
        end
      else
        []
      end

    nested =
      Enum.flat_map(props, fn {key, sub} ->
        case Map.fetch(value, key) do
          {:ok, v} -> check(v, sub, [path, ".", key])
          :error -> []
        end
      end)

    missing ++ Enum.take(extra, 2) ++ nested
  end

  defp check_nested(_value, _schema, _path), do: []
end
