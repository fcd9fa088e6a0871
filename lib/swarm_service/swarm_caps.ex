defmodule SwarmService.SwarmCaps do
  @moduledoc """
  Caps on how many swarms exist, so that no client can exhaust the node:
  `max_swarms` on this node (default 10,000; `RUV_SWARM_MAX_SWARMS`) and
  `max_swarms_per_client` per owner (default 1,000;
  `RUV_SWARM_MAX_SWARMS_PER_CLIENT`), both `config :swarm_service,
  SwarmService.SwarmCaps, [...]`.

  A place is reserved (an atomic counter step) before a swarm is created and
  given back if the creation fails, so concurrent creations never go past a
  cap. The owner is the gateway's client (token identity or address), or
  `:local` for Elixir callers. The node count starts from the swarms this
  node recovered at boot; per-owner counts start over at each boot.
  """
  use GenServer

  @table __MODULE__
  @defaults [max_swarms: 10_000, max_swarms_per_client: 1_000]

  @doc false
  def start_link(_), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc "The configured caps."
  @spec caps() :: %{max_swarms: pos_integer(), max_swarms_per_client: pos_integer()}
  def caps do
    config = Keyword.merge(@defaults, Application.get_env(:swarm_service, __MODULE__, []))

    for {key, _} <- @defaults, into: %{} do
      case config[key] do
        n when is_integer(n) and n > 0 -> {key, n}
        other -> raise ArgumentError, "#{key} must be a positive integer, got #{inspect(other)}"
      end
    end
  end

  @doc """
  Runs `create` (which answers `{:ok, swarm_id}` or an error) if `owner` and
  the node have room; answers `{:error, {:too_many_swarms, :client | :node, cap}}`
  otherwise.
  """
  @spec reserve(term(), (() -> {:ok, String.t()} | {:error, term()})) ::
          {:ok, String.t()} | {:error, term()}
  def reserve(owner, create) do
    %{max_swarms: node_cap, max_swarms_per_client: client_cap} = caps()
    owner_key = {:owner, owner}

    cond do
      step(:node, 1) > node_cap ->
        step(:node, -1)
        {:error, {:too_many_swarms, :node, node_cap}}

      step(owner_key, 1) > client_cap ->
        step(:node, -1)
        step(owner_key, -1)
        {:error, {:too_many_swarms, :client, client_cap}}

      true ->
        case create.() do
          {:ok, id} = ok ->
            :ets.insert(@table, {{:swarm, id}, owner})
            ok

          error ->
            step(:node, -1)
            step(owner_key, -1)
            error
        end
    end
  end

  @doc "Gives back the place of a destroyed swarm."
  @spec release(String.t()) :: :ok
  def release(swarm_id) do
    case :ets.take(@table, {:swarm, swarm_id}) do
      [{_, owner}] ->
        step(:node, -1)
        if step({:owner, owner}, -1) <= 0, do: :ets.delete(@table, {:owner, owner})

      # Recovered at boot: counted for the node only.
      [] ->
        if :ets.member(@table, {:recovered, swarm_id}) do
          :ets.delete(@table, {:recovered, swarm_id})
          step(:node, -1)
        end
    end

    :ok
  end

  defp step(key, by), do: :ets.update_counter(@table, key, by, {key, 0})

  @impl true
  def init(_) do
    :ets.new(@table, [:named_table, :public, :set, write_concurrency: true])
    recovered = SwarmService.Native.swarm_list()
    :ets.insert(@table, {:node, length(recovered)})
    :ets.insert(@table, for(s <- recovered, do: {{:recovered, s.id}, true}))
    {:ok, nil}
  end
end
