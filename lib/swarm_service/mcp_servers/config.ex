defmodule SwarmService.McpServers.Config do
  @moduledoc """
  Reads external MCP server definitions in the format users already have:
  Claude Desktop's `mcpServers` JSON.

      {"mcpServers": {
         "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
         "github": {"command": "github-mcp", "env": {"GITHUB_TOKEN": "${GITHUB_TOKEN}"}},
         "remote": {"url": "http://127.0.0.1:3001/mcp", "headers": {"Authorization": "Bearer ${API_TOKEN}"}}
      }}

  An entry is a stdio server (`command`, optional `args`, `env`, `cwd`) or a
  Streamable HTTP server (`url`, optional `headers`). `${VAR}` inside `env`
  and `headers` values is replaced by the node's environment variable `VAR`
  (an error when it is not set). The values live only in the resulting
  `t:spec/0`, whose `Inspect` hides them, and are handed to the client
  program over a pipe, never on a command line.

  Optional keys of this project (all others are refused, so a typo is
  reported, not ignored):

  | key | default | meaning |
  |---|---|---|
  | `timeout_ms` | 30000 | per-call timeout |
  | `tool_timeouts` | `{}` | per-tool timeouts, `{"tool": ms}` |
  | `max_concurrency` | 16 | calls in flight downstream at once (more wait, within the mailbox of 100) |
  | `prefix` | the name | gateway tool names are `<prefix>__<tool>` |
  | `allow` / `deny` | all / none | tool names shown and callable |
  | `ping_interval_ms` | 15000 | health `ping` interval |
  | `init_timeout_ms` | 30000 | time allowed for start and `initialize` |
  | `backoff_ms` | 500 | first restart delay (doubles, with jitter, up to 15 s) |
  | `probe_interval_ms` | 30000 | probe interval in `crash_loop` |
  | `disabled` | false | parsed, not started |

  Every problem is `{server, message}` naming the server and the field, and
  the other entries are still returned.
  """

  @enforce_keys [:name, :transport]
  @derive {Inspect, except: [:env, :headers]}
  defstruct [
    :name,
    :transport,
    :command,
    :url,
    :cwd,
    args: [],
    env: [],
    headers: [],
    prefix: nil,
    timeout_ms: 30_000,
    tool_timeouts: %{},
    max_concurrency: 16,
    allow: nil,
    deny: [],
    ping_interval_ms: 15_000,
    init_timeout_ms: 30_000,
    backoff_ms: 500,
    probe_interval_ms: 30_000,
    disabled: false
  ]

  @typedoc "One validated server definition."
  @type spec :: %__MODULE__{
          name: String.t(),
          transport: :stdio | :http,
          command: String.t() | nil,
          args: [String.t()],
          env: [{String.t(), String.t()}],
          cwd: String.t() | nil,
          url: String.t() | nil,
          headers: [{String.t(), String.t()}],
          prefix: String.t(),
          timeout_ms: pos_integer,
          tool_timeouts: %{String.t() => pos_integer},
          max_concurrency: pos_integer,
          allow: [String.t()] | nil,
          deny: [String.t()],
          ping_interval_ms: pos_integer,
          init_timeout_ms: pos_integer,
          backoff_ms: pos_integer,
          probe_interval_ms: pos_integer,
          disabled: boolean
        }

  @keys ~w(command args env cwd url headers type prefix timeout_ms tool_timeouts max_concurrency
           allow deny ping_interval_ms init_timeout_ms backoff_ms probe_interval_ms disabled)
  @name_re ~r/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/
  @ms_keys ~w(timeout_ms ping_interval_ms init_timeout_ms backoff_ms probe_interval_ms)
  @max_ms 24 * 3_600_000

  @doc """
  Parses a whole `mcpServers` document (JSON text or a decoded map):
  `{:ok, specs, errors}`, or `{:error, message}` when the document itself
  is unusable.
  """
  @spec parse_document(binary | map) ::
          {:ok, [spec], [{String.t(), String.t()}]} | {:error, String.t()}
  def parse_document(json) when is_binary(json) do
    case decode(json) do
      {:ok, doc} -> parse_document(doc)
      :error -> {:error, "the MCP server configuration is not valid JSON"}
    end
  end

  def parse_document(%{"mcpServers" => servers}) when is_map(servers) do
    {specs, errors} =
      servers
      |> Enum.sort_by(&elem(&1, 0))
      |> Enum.reduce({[], []}, fn {name, entry}, {ok, bad} ->
        case parse(name, entry) do
          {:ok, spec} -> {[spec | ok], bad}
          {:error, message} -> {ok, [{to_string(name), message} | bad]}
        end
      end)

    {:ok, Enum.reverse(specs), Enum.reverse(errors)}
  end

  def parse_document(%{mcpServers: servers}), do: parse_document(%{"mcpServers" => servers})

  def parse_document(_),
    do: {:error, "the MCP server configuration must be an object with an \"mcpServers\" object"}

  @doc "Reads and parses a configuration file (see `parse_document/1`)."
  @spec read_file(Path.t()) :: {:ok, [spec], [{String.t(), String.t()}]} | {:error, String.t()}
  def read_file(path) do
    case File.read(path) do
      {:ok, json} -> parse_document(json)
      {:error, reason} -> {:error, "cannot read #{path}: #{:file.format_error(reason)}"}
    end
  end

  @doc """
  Validates one entry. `entry` is a map with string keys (decoded JSON) or
  atom keys (Elixir callers). `env` (for `${VAR}`) defaults to the node's
  environment.
  """
  @spec parse(term, term, %{String.t() => String.t()} | nil) ::
          {:ok, spec} | {:error, String.t()}
  def parse(name, entry, env \\ nil)

  def parse(name, entry, env) when is_binary(name) and is_map(entry) do
    env = env || System.get_env()

    with :ok <- check_name(name),
         {:ok, entry} <- string_keys(entry),
         :ok <- known_keys(entry),
         {:ok, spec} <- transport(name, entry, env),
         {:ok, spec} <- options(spec, entry) do
      {:ok, named(spec, name)}
    else
      {:error, message} -> {:error, "server #{printable(name)}: " <> message}
    end
  end

  def parse(name, _entry, _env) when is_binary(name),
    do: {:error, "server #{printable(name)}: the entry must be an object"}

  def parse(name, _entry, _env),
    do: {:error, "server #{inspect(name, limit: 3)}: the name must be a string"}

  defp check_name(name) do
    cond do
      not Regex.match?(@name_re, name) ->
        {:error, "name: use 1-64 letters, digits, '_' or '-', starting with a letter or digit"}

      String.contains?(name, "__") ->
        {:error, "name: must not contain \"__\" (it separates server and tool in the gateway)"}

      true ->
        :ok
    end
  end

  defp string_keys(entry) do
    Enum.reduce_while(entry, {:ok, %{}}, fn
      {k, v}, {:ok, acc} when is_binary(k) -> {:cont, {:ok, Map.put(acc, k, v)}}
      {k, v}, {:ok, acc} when is_atom(k) -> {:cont, {:ok, Map.put(acc, Atom.to_string(k), v)}}
      {k, _}, _ -> {:halt, {:error, "field #{inspect(k, limit: 3)}: keys must be strings"}}
    end)
  end

  defp known_keys(entry) do
    case Enum.find(Map.keys(entry), &(&1 not in @keys)) do
      nil -> :ok
      key -> {:error, "field #{printable(key)}: unknown (known: #{Enum.join(@keys, ", ")})"}
    end
  end

  defp transport(_name, %{"command" => _, "url" => _}, _env),
    do: {:error, "command and url: give one (stdio or Streamable HTTP), not both"}

  defp transport(_name, %{"command" => command} = entry, env) do
    with {:ok, command} <- nonempty_string(command, "command"),
         {:ok, path} <- executable(command),
         {:ok, args} <- string_list(Map.get(entry, "args", []), "args"),
         {:ok, vars} <- string_map(Map.get(entry, "env", %{}), "env", env),
         {:ok, cwd} <- cwd(Map.get(entry, "cwd")) do
      {:ok,
       %__MODULE__{name: nil, transport: :stdio, command: path, args: args, env: vars, cwd: cwd}}
    end
  end

  defp transport(_name, %{"url" => url} = entry, env) do
    with {:ok, url} <- nonempty_string(url, "url"),
         :ok <- http_url(url),
         {:ok, headers} <- string_map(Map.get(entry, "headers", %{}), "headers", env) do
      {:ok, %__MODULE__{name: nil, transport: :http, url: url, headers: headers}}
    end
  end

  defp transport(_name, _entry, _env),
    do: {:error, "command or url: one of them is required"}

  defp options(spec, entry) do
    with {:ok, spec} <- ms_options(spec, entry),
         {:ok, tool_timeouts} <- tool_timeouts(Map.get(entry, "tool_timeouts", %{})),
         {:ok, max} <- int(Map.get(entry, "max_concurrency", 16), "max_concurrency", 1, 100),
         {:ok, prefix} <- prefix(Map.get(entry, "prefix")),
         {:ok, allow} <- optional_list(Map.get(entry, "allow"), "allow"),
         {:ok, deny} <- string_list(Map.get(entry, "deny", []), "deny"),
         {:ok, disabled} <- bool(Map.get(entry, "disabled", false), "disabled") do
      {:ok,
       %{
         spec
         | tool_timeouts: tool_timeouts,
           max_concurrency: max,
           prefix: prefix,
           allow: allow,
           deny: deny,
           disabled: disabled
       }}
    end
  end

  defp ms_options(spec, entry) do
    Enum.reduce_while(@ms_keys, {:ok, spec}, fn key, {:ok, spec} ->
      case Map.fetch(entry, key) do
        :error ->
          {:cont, {:ok, spec}}

        {:ok, value} ->
          case int(value, key, 1, @max_ms) do
            {:ok, n} -> {:cont, {:ok, Map.put(spec, String.to_existing_atom(key), n)}}
            error -> {:halt, error}
          end
      end
    end)
  end

  defp named(spec, name), do: %{spec | name: name, prefix: spec.prefix || name}

  defp tool_timeouts(map) when is_map(map) do
    Enum.reduce_while(map, {:ok, %{}}, fn {tool, ms}, {:ok, acc} ->
      with true <- is_binary(tool),
           {:ok, ms} <- int(ms, "tool_timeouts.#{printable(tool)}", 1, @max_ms) do
        {:cont, {:ok, Map.put(acc, tool, ms)}}
      else
        false -> {:halt, {:error, "tool_timeouts: keys must be tool names"}}
        error -> {:halt, error}
      end
    end)
  end

  defp tool_timeouts(_), do: {:error, "tool_timeouts: must be an object of tool name to ms"}

  defp prefix(nil), do: {:ok, nil}

  defp prefix(p) when is_binary(p) do
    case check_name(p) do
      :ok -> {:ok, p}
      {:error, "name:" <> rest} -> {:error, "prefix:" <> rest}
    end
  end

  defp prefix(_), do: {:error, "prefix: must be a string"}

  defp nonempty_string(s, field) when is_binary(s) and s != "" do
    if String.valid?(s) and not String.contains?(s, <<0>>),
      do: {:ok, s},
      else: {:error, "#{field}: must be text without NUL bytes"}
  end

  defp nonempty_string(_s, field), do: {:error, "#{field}: must be a non-empty string"}

  defp executable(command) do
    cond do
      String.contains?(command, "/") ->
        path = Path.expand(command)

        if File.regular?(path),
          do: {:ok, path},
          else: {:error, "command: #{printable(command)} does not exist"}

      path = System.find_executable(command) ->
        {:ok, path}

      true ->
        {:error, "command: #{printable(command)} is not on the node's PATH"}
    end
  end

  defp http_url(url) do
    case URI.new(url) do
      {:ok, %URI{scheme: "http", host: host}} when is_binary(host) and host != "" ->
        :ok

      {:ok, %URI{scheme: "https"}} ->
        {:error, "url: https is not supported by this build yet (plain http only)"}

      _ ->
        {:error, "url: must be an http:// URL"}
    end
  end

  defp cwd(nil), do: {:ok, nil}

  defp cwd(dir) when is_binary(dir) do
    if File.dir?(dir), do: {:ok, dir}, else: {:error, "cwd: #{printable(dir)} is not a directory"}
  end

  defp cwd(_), do: {:error, "cwd: must be a string"}

  defp string_list(list, field) when is_list(list) do
    if Enum.all?(list, &(is_binary(&1) and not String.contains?(&1, <<0>>))),
      do: {:ok, list},
      else: {:error, "#{field}: must be a list of strings"}
  end

  defp string_list(_, field), do: {:error, "#{field}: must be a list of strings"}

  defp optional_list(nil, _field), do: {:ok, nil}
  defp optional_list(list, field), do: string_list(list, field)

  defp string_map(map, field, env) when is_map(map) do
    map
    |> Enum.sort()
    |> Enum.reduce_while({:ok, []}, fn {k, v}, {:ok, acc} ->
      k = if is_atom(k), do: Atom.to_string(k), else: k

      with true <- is_binary(k) and k != "" and not String.contains?(k, ["=", <<0>>]),
           true <- is_binary(v),
           {:ok, v} <- expand(v, "#{field}.#{k}", env) do
        {:cont, {:ok, [{k, v} | acc]}}
      else
        false -> {:halt, {:error, "#{field}: must map names to string values"}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, pairs} -> {:ok, Enum.reverse(pairs)}
      error -> error
    end
  end

  defp string_map(_, field, _env), do: {:error, "#{field}: must be an object of strings"}

  @doc false
  # `${VAR}` from the node's environment; `$${` is a literal `${`.
  @spec expand(String.t(), String.t(), map) :: {:ok, String.t()} | {:error, String.t()}
  def expand(value, field, env) do
    Regex.split(~r/\$\$\{|\$\{[A-Za-z_][A-Za-z0-9_]*\}/, value, include_captures: true)
    |> Enum.reduce_while({:ok, []}, fn
      "$${", {:ok, acc} ->
        {:cont, {:ok, [acc, "${"]}}

      "${" <> rest = part, {:ok, acc} ->
        var = String.trim_trailing(rest, "}")

        cond do
          not String.ends_with?(part, "}") -> {:cont, {:ok, [acc, part]}}
          Map.has_key?(env, var) -> {:cont, {:ok, [acc, Map.fetch!(env, var)]}}
          true -> {:halt, {:error, "#{field}: environment variable #{var} is not set"}}
        end

      part, {:ok, acc} ->
        {:cont, {:ok, [acc, part]}}
    end)
    |> case do
      {:ok, iodata} -> {:ok, IO.iodata_to_binary(iodata)}
      error -> error
    end
  end

  defp int(n, _field, min, max) when is_integer(n) and n >= min and n <= max, do: {:ok, n}
  defp int(_, field, min, max), do: {:error, "#{field}: must be an integer from #{min} to #{max}"}

  defp bool(b, _field) when is_boolean(b), do: {:ok, b}
  defp bool(_, field), do: {:error, "#{field}: must be true or false"}

  defp decode(json) do
    {:ok, :jiffy.decode(json, [:return_maps, :use_nil])}
  catch
    _, _ -> :error
  end

  defp printable(term) when is_binary(term), do: inspect(String.slice(term, 0, 80))
  defp printable(term), do: inspect(term, limit: 3)
end
