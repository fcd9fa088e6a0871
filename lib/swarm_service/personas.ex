defmodule SwarmService.Personas do
  @moduledoc """
  Named profiles for Claude agents: a system prompt, a tone, a default
  model and the tools allowed. A claude agent with a persona
  (`{:claude, persona: "reviewer"}`, or an agent whose `type` names one)
  gets them on every task; what the executor's own options say wins.

  Every agent type has a built-in persona (`researcher`, `coder`,
  `analyst`, `optimizer`, `coordinator`, `tester`, `reviewer`). `put/2`
  stores a persona (a new one, or one that replaces a built-in) in the
  cluster-wide knowledge repository (`SwarmService.Cluster.Knowledge`), so
  every node sees it and agents use the new profile from their next task on;
  `delete/1` removes a stored persona (a built-in comes back).
  """

  alias SwarmService.Cluster.Knowledge

  @prefix "persona/"
  @fields [:system_prompt, :tone, :model, :allowed_tools]
  @max_prompt_bytes 16_384
  @max_personas 1_000

  @typedoc "A persona: `name`, `system_prompt`, `tone`, `model`, `allowed_tools`, `builtin`."
  @type t :: %{
          name: String.t(),
          system_prompt: String.t(),
          tone: String.t() | nil,
          model: String.t() | nil,
          allowed_tools: [String.t()] | nil,
          builtin: boolean()
        }

  @builtin %{
    "researcher" => %{
      system_prompt:
        "You are the swarm's researcher. Gather facts from the code and documents you " <>
          "can read, cite where each comes from, and separate what you found from what you infer.",
      tone: "precise and neutral",
      allowed_tools: ["Read", "Grep", "Glob"]
    },
    "coder" => %{
      system_prompt:
        "You are the swarm's coder. Make the smallest change that does the task, keep " <>
          "the code's style, and say which files you changed and why.",
      tone: "concise"
    },
    "analyst" => %{
      system_prompt:
        "You are the swarm's analyst. Break the problem down, weigh the evidence, and " <>
          "end with a clear conclusion and its confidence.",
      tone: "structured",
      allowed_tools: ["Read", "Grep", "Glob"]
    },
    "optimizer" => %{
      system_prompt:
        "You are the swarm's optimizer. Find what is slow or wasteful, measure before " <>
          "and after, and report the numbers.",
      tone: "quantitative"
    },
    "coordinator" => %{
      system_prompt:
        "You are the swarm's coordinator. Split the work into steps other agents can do, " <>
          "name what each needs, and merge their results into one answer.",
      tone: "clear and brief",
      allowed_tools: ["Read"]
    },
    "tester" => %{
      system_prompt:
        "You are the swarm's tester. Write tests that fail for the bug or missing " <>
          "feature, run them, and report what passes and what fails.",
      tone: "exact"
    },
    "reviewer" => %{
      system_prompt:
        "You are the swarm's reviewer. Read the change critically: correctness first, " <>
          "then clarity and tests. List each problem with its location and a fix.",
      tone: "direct and constructive",
      allowed_tools: ["Read", "Grep", "Glob"]
    }
  }

  @doc "The names of the built-in personas."
  @spec builtin_names() :: [String.t()]
  def builtin_names, do: @builtin |> Map.keys() |> Enum.sort()

  @doc "The persona called `name`: stored, else built-in; `{:error, :persona_not_found}`."
  @spec get(String.t()) :: {:ok, t()} | {:error, term()}
  def get(name) when is_binary(name) do
    case Knowledge.get(@prefix <> name) do
      {:ok, %{value: %{} = stored}} ->
        {:ok, persona(name, stored, false)}

      _ ->
        case Map.fetch(@builtin, name) do
          {:ok, builtin} -> {:ok, persona(name, builtin, true)}
          :error -> {:error, :persona_not_found}
        end
    end
  end

  def get(_name), do: {:error, {:invalid_argument, "a persona name is a string"}}

  @doc "Every persona, built-in and stored (a stored one replaces its built-in), by name."
  @spec list() :: {:ok, [t()]}
  def list do
    {:ok, stored} = Knowledge.list(prefix: @prefix, limit: @max_personas)

    stored =
      for %{key: @prefix <> name, value: %{} = v} <- stored,
          into: %{},
          do: {name, persona(name, v, false)}

    builtin = Map.new(@builtin, fn {name, p} -> {name, persona(name, p, true)} end)
    {:ok, builtin |> Map.merge(stored) |> Map.values() |> Enum.sort_by(& &1.name)}
  end

  @doc """
  Stores the persona `name` (letters, digits, `-` and `_`, at most 64):
  `system_prompt` (required, at most 16 KiB), `tone`, `model`,
  `allowed_tools` (list of tool patterns). Returns the persona.
  """
  @spec put(String.t(), map() | keyword()) :: {:ok, t()} | {:error, term()}
  def put(name, attrs) do
    with :ok <- check_name(name),
         {:ok, attrs} <- check_attrs(attrs),
         {:ok, _stamp} <- Knowledge.put(@prefix <> name, attrs) do
      {:ok, persona(name, attrs, false)}
    end
  end

  @doc "Removes the stored persona `name` (a built-in of that name is used again)."
  @spec delete(String.t()) :: :ok | {:error, term()}
  def delete(name) do
    with :ok <- check_name(name), do: Knowledge.delete(@prefix <> name)
  end

  @doc """
  Claude executor options with the persona's profile under them: its model
  and allowed tools where the options give none, and its system prompt and
  tone before the options' own `append_system_prompt`. Options without a
  persona, or naming one that no longer exists, come back as they are.
  """
  @spec apply_to(keyword()) :: keyword()
  def apply_to(opts) do
    with name when is_binary(name) <- opts[:persona],
         {:ok, p} <- get(name) do
      prompt =
        [p.system_prompt, p.tone && "Tone: #{p.tone}.", opts[:append_system_prompt]]
        |> Enum.reject(&is_nil/1)
        |> Enum.join("\n\n")

      opts
      |> put_default(:model, p.model)
      |> put_default(:allowed_tools, p.allowed_tools)
      |> Keyword.put(:append_system_prompt, prompt)
    else
      _ -> opts
    end
  end

  defp put_default(opts, _key, nil), do: opts
  defp put_default(opts, key, value), do: Keyword.put_new(opts, key, value)

  defp persona(name, attrs, builtin?) do
    %{
      name: name,
      system_prompt: Map.get(attrs, :system_prompt),
      tone: Map.get(attrs, :tone),
      model: Map.get(attrs, :model),
      allowed_tools: Map.get(attrs, :allowed_tools),
      builtin: builtin?
    }
  end

  defp check_name(name) when is_binary(name) do
    if name =~ ~r/^[A-Za-z0-9_-]{1,64}$/,
      do: :ok,
      else: invalid("a persona name is 1 to 64 letters, digits, - or _, got #{inspect(name)}")
  end

  defp check_name(other),
    do: invalid("a persona name is a string, got #{inspect(other, limit: 3)}")

  defp check_attrs(attrs) when is_list(attrs) or is_map(attrs) do
    attrs = Map.new(attrs, fn {k, v} -> {field(k), v} end)

    cond do
      Map.has_key?(attrs, nil) ->
        invalid("persona fields are #{Enum.join(@fields, ", ")}")

      not (is_binary(attrs[:system_prompt]) and attrs[:system_prompt] != "" and
               byte_size(attrs[:system_prompt]) <= @max_prompt_bytes) ->
        invalid("a persona needs a system_prompt of 1 to #{@max_prompt_bytes} bytes")

      not Enum.all?([:tone, :model], &(attrs[&1] == nil or short_string?(attrs[&1]))) ->
        invalid("a persona's tone and model are strings of at most 200 bytes")

      not (attrs[:allowed_tools] == nil or
               (is_list(attrs[:allowed_tools]) and
                  Enum.all?(attrs[:allowed_tools], &short_string?/1))) ->
        invalid("a persona's allowed_tools is a list of tool names")

      true ->
        {:ok, attrs}
    end
  end

  defp check_attrs(_), do: invalid("persona fields come as a map")

  # Known field names only: input never becomes an atom.
  defp field(key) when key in @fields, do: key
  defp field(key) when is_binary(key), do: Enum.find(@fields, &(Atom.to_string(&1) == key))
  defp field(_key), do: nil

  defp short_string?(s), do: is_binary(s) and s != "" and byte_size(s) <= 200
  defp invalid(msg), do: {:error, {:invalid_argument, msg}}
end
