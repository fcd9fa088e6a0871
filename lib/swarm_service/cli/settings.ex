defmodule SwarmService.CLI.Settings do
  @moduledoc """
  What a node was started with, kept so `restart` starts it the same way
  from any shell: the command-line settings (port, health port, name,
  cookie, `--allow-command` entries, `--allow-claude`) and every `RUV_SWARM_*` variable of
  the environment `start` ran in (tokens, allow-list, limits...).

  `start` writes them to `$RUV_SWARM_HOME/settings.json` (mode 0600: it may
  hold tokens and the cookie, like the cookie file beside it). `restart`
  reads them; a flag given to `restart` replaces the stored one, and a
  `RUV_SWARM_*` variable set in `restart`'s own environment replaces the
  stored variable.
  """

  alias SwarmService.CLI.Paths

  @typedoc "Settings of a start: command-line values and the captured environment."
  @type t :: %{
          port: :inet.port_number(),
          health_port: :inet.port_number(),
          name: String.t(),
          cookie: String.t() | nil,
          allow_commands: [String.t()],
          allow_claude: boolean(),
          env: %{String.t() => String.t()}
        }

  # Set by the CLI itself for the node it launches, or describing this
  # invocation only: never carried over.
  @not_carried ~w(RUV_SWARM_HOME RUV_SWARM_MANAGED RUV_SWARM_DAEMON RUV_SWARM_ARGV
                  RUV_SWARM_BOOT_LOG RUV_SWARM_PORT RUV_SWARM_HEALTH_PORT RUV_SWARM_NODE)

  @flags [:port, :health_port, :name, :cookie, :allow_commands, :allow_claude]

  @doc "The `RUV_SWARM_*` variables of this process's environment that a node takes."
  @spec environment() :: %{String.t() => String.t()}
  def environment do
    System.get_env()
    |> Enum.filter(fn {k, _} -> String.starts_with?(k, "RUV_SWARM_") and k not in @not_carried end)
    |> Map.new()
  end

  @doc "Path of the settings file inside `home`."
  @spec file(Path.t()) :: Path.t()
  def file(home), do: Path.join(home, "settings.json")

  @doc "Writes `settings` for a later `restart`."
  @spec save(Path.t(), t()) :: :ok | {:error, String.t()}
  def save(home, settings) do
    path = file(home)
    tmp = path <> ".tmp"

    json =
      settings |> Map.take([:env | @flags]) |> Map.new(fn {k, v} -> {Atom.to_string(k), v} end)

    with :ok <- File.write(tmp, :jiffy.encode(json, [:use_nil, :pretty])),
         :ok <- File.chmod(tmp, 0o600),
         :ok <- File.rename(tmp, path) do
      :ok
    else
      {:error, reason} ->
        {:error, "cannot save the node's settings: " <> Paths.describe(path, reason)}
    end
  end

  @doc """
  The settings the last `start` saved in `home`: `{:ok, map}` (keys as in
  `t:t/0`, absent ones left out), `:none`, or `{:error, message}`.
  """
  @spec load(Path.t()) :: {:ok, map()} | :none | {:error, String.t()}
  def load(home) do
    path = file(home)

    with {:ok, text} <- File.read(path),
         {:ok, %{} = json} <- decode(text) do
      {:ok, from_json(json)}
    else
      {:error, :enoent} -> :none
      {:error, reason} when is_atom(reason) -> {:error, Paths.describe(path, reason)}
      _ -> {:error, "#{path} is not a settings file written by `start`; remove it"}
    end
  end

  @doc """
  The settings for `restart`: `stored` with the flags given to `restart`
  and its own `RUV_SWARM_*` environment on top.
  """
  @spec for_restart(map(), keyword(), %{String.t() => String.t()}) :: {keyword(), map()}
  def for_restart(stored, flags, env) do
    given = flags |> Keyword.take(@flags) |> Enum.reject(fn {_, v} -> v in [nil, []] end)
    opts = stored |> Map.take(@flags) |> Enum.reject(fn {_, v} -> v == nil end)
    {Keyword.merge(opts, given), Map.merge(Map.get(stored, :env, %{}), env)}
  end

  defp decode(text) do
    {:ok, :jiffy.decode(text, [:return_maps, :use_nil])}
  catch
    _, _ -> :error
  end

  defp from_json(json) do
    for {key, value} <- [
          port: int(json["port"]),
          health_port: int(json["health_port"]),
          name: string(json["name"]),
          cookie: string(json["cookie"]),
          allow_commands: strings(json["allow_commands"]),
          allow_claude: if(is_boolean(json["allow_claude"]), do: json["allow_claude"]),
          env: env(json["env"])
        ],
        value != nil,
        into: %{},
        do: {key, value}
  end

  defp int(n) when is_integer(n) and n in 1..65_535, do: n
  defp int(_), do: nil
  defp string(s) when is_binary(s) and s != "", do: s
  defp string(_), do: nil

  defp strings(list) when is_list(list),
    do: if(Enum.all?(list, &is_binary/1), do: list, else: nil)

  defp strings(_), do: nil

  defp env(%{} = env) do
    for {k, v} <- env,
        is_binary(v),
        String.starts_with?(k, "RUV_SWARM_"),
        k not in @not_carried,
        into: %{},
        do: {k, v}
  end

  defp env(_), do: nil
end
