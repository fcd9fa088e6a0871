defmodule InterfaceService.Auth do
  @moduledoc false
  # Who may talk to the gateway: bearer tokens, and Origin/Host allow-lists
  # against DNS rebinding (a browser page on evil.example resolving to
  # 127.0.0.1 still sends its own Origin and Host).

  alias InterfaceService.Config

  @doc """
  Checks the Authorization header: a Claude agent's swarm-scoped token
  (`SwarmService.Executor.ClaudeAccess`) is the client `"agent:<id>"`,
  whether or not tokens are configured; else the configured tokens.
  """
  @spec check_token(Config.t(), String.t() | nil) ::
          {:ok, String.t()} | {:error, :missing | :invalid}
  def check_token(config, header) do
    given = bearer(header)

    case given && SwarmService.Executor.ClaudeAccess.agent(given) do
      nil -> check_configured(config, given)
      agent_id -> {:ok, "agent:" <> agent_id}
    end
  end

  defp check_configured(%Config{tokens: []}, _given), do: {:ok, "anonymous"}

  defp check_configured(%Config{tokens: digests}, given) do
    case given do
      nil ->
        {:error, :missing}

      given ->
        given_hash = :crypto.hash(:sha256, given)

        # Every token is compared, each in constant time, so neither the
        # position of a match nor a common prefix shows in the timing.
        matched =
          Enum.reduce(digests, false, fn digest, acc ->
            :crypto.hash_equals(digest, given_hash) or acc
          end)

        if matched,
          do: {:ok, "token:" <> Base.encode16(binary_part(given_hash, 0, 8))},
          else: {:error, :invalid}
    end
  end

  @doc """
  Whether `client` may see `swarm_id`: every client may, except a Claude
  agent's token, which opens its own swarm only.
  """
  @spec swarm_allowed?(String.t() | nil, String.t()) :: boolean()
  def swarm_allowed?("agent:" <> agent_id, swarm_id),
    do: SwarmService.Ids.swarm_of(agent_id) == swarm_id

  def swarm_allowed?(_client, _swarm_id), do: true

  defp bearer(nil), do: nil

  defp bearer(header) do
    case String.split(String.trim(header), " ", parts: 2) do
      [scheme, token] ->
        if String.downcase(scheme) == "bearer" and String.trim(token) != "",
          do: String.trim(token),
          else: nil

      _ ->
        nil
    end
  end

  @doc "Validates the Host header (nil is allowed: HTTP/1.0 clients omit it)."
  @spec check_host(Config.t(), String.t() | nil) :: :ok | {:error, :host}
  def check_host(_config, nil), do: :ok
  def check_host(%Config{allowed_hosts: :any}, _host), do: :ok

  def check_host(%Config{allowed_hosts: hosts}, host) do
    if host_name(host) in hosts, do: :ok, else: {:error, :host}
  end

  # "[::1]:4102" -> "[::1]", "localhost:4102" -> "localhost"
  defp host_name(host) do
    host = String.downcase(String.trim(host))

    case host do
      "[" <> _ ->
        case String.split(host, "]", parts: 2) do
          [inner, _] -> inner <> "]"
          _ -> host
        end

      _ ->
        host |> String.split(":", parts: 2) |> hd()
    end
  end

  @doc "Validates the Origin header; requests without one (non-browser clients) pass."
  @spec check_origin(Config.t(), String.t() | nil) :: :ok | {:error, :origin}
  def check_origin(_config, nil), do: :ok
  def check_origin(%Config{allowed_origins: :any}, _origin), do: :ok

  def check_origin(%Config{allowed_origins: :loopback}, origin) do
    case URI.parse(String.trim(origin)) do
      %URI{scheme: scheme, host: host} when scheme in ["http", "https"] ->
        if String.downcase(host || "") in Config.loopback_hosts(),
          do: :ok,
          else: {:error, :origin}

      _ ->
        {:error, :origin}
    end
  end

  def check_origin(%Config{allowed_origins: origins}, origin) do
    normalized = origin |> String.trim() |> String.downcase() |> String.trim_trailing("/")
    if normalized in origins, do: :ok, else: {:error, :origin}
  end
end
