defmodule SwarmService.Options do
  @moduledoc false
  # Option validation at the public API's edge: maps or keyword lists with
  # a known set of atom keys. Anything else is an {:invalid_argument, msg}.

  @doc "The options as a map, if every key is allowed."
  def normalize(opts, allowed) when is_map(opts) do
    case Enum.reject(Map.keys(opts), &(&1 in allowed)) do
      [] -> {:ok, opts}
      unknown -> unknown_keys(unknown, allowed)
    end
  end

  def normalize(opts, allowed) when is_list(opts) do
    if Keyword.keyword?(opts) do
      normalize(Map.new(opts), allowed)
    else
      invalid("options must be a map or a keyword list")
    end
  end

  def normalize(_other, _allowed), do: invalid("options must be a map or a keyword list")

  defp unknown_keys(unknown, allowed) do
    invalid(
      "unknown option(s) #{Enum.map_join(unknown, ", ", &inspect(&1, limit: 3, printable_limit: 50))}; " <>
        "allowed: #{Enum.map_join(allowed, ", ", &inspect/1)}"
    )
  end

  @doc "An integer option within bounds, or its default."
  def count(opts, key, default, min, max) do
    case Map.get(opts, key, default) do
      n when is_integer(n) and n >= min and n <= max -> {:ok, n}
      _ -> invalid("#{key} must be an integer between #{min} and #{max}")
    end
  end

  # Memory quotas (bytes): the engine's minimum up to the largest integer
  # both sides read exactly.
  @min_quota_bytes 4096
  @max_quota_bytes 0x7FFF_FFFF_FFFF_FFFF

  @doc "A memory quota in bytes (`nil` when the option is absent)."
  def quota(opts, key) do
    case Map.get(opts, key) do
      nil ->
        {:ok, nil}

      n when is_integer(n) and n >= @min_quota_bytes and n <= @max_quota_bytes ->
        {:ok, n}

      _ ->
        invalid("#{key} must be an integer number of bytes, at least #{@min_quota_bytes}")
    end
  end

  @doc """
  A cost in dollars (a non-negative number) as integer micro-dollars, the
  engine's unit; `nil` when the option is absent or nil.
  """
  def cost(opts, key) do
    max = SwarmService.Limits.get(:max_usage_value)

    case Map.get(opts, key) do
      nil ->
        {:ok, nil}

      usd when is_number(usd) and usd >= 0 and usd * 1_000_000 <= max ->
        {:ok, round(usd * 1_000_000)}

      _ ->
        invalid(
          "#{key} must be a number of US dollars between 0 and #{div(max, 1_000_000)}, or nil"
        )
    end
  end

  @doc """
  One of `choices` (atoms; the same words as strings are accepted too, as
  JSON sends them), or `default` when the option is absent.
  """
  def choice(opts, key, choices, default) do
    case Map.fetch(opts, key) do
      :error ->
        {:ok, default}

      {:ok, value} ->
        case Enum.find(choices, &(&1 == value or Atom.to_string(&1) == value)) do
          nil ->
            invalid("#{key} must be one of: #{Enum.map_join(choices, ", ", &Atom.to_string/1)}")

          found ->
            {:ok, found}
        end
    end
  end

  @doc "Rejects terms whose encoded size exceeds the payload limit."
  def check_payload(term, what) do
    size = :erlang.external_size(term)
    max = SwarmService.Limits.get(:max_payload_bytes)

    if size > max,
      do: {:error, {:too_large, what, size, max}},
      else: :ok
  end

  def invalid(msg), do: {:error, {:invalid_argument, msg}}
end
