defmodule SwarmService.Quotas do
  @moduledoc """
  The engine's memory quotas, read from the application environment at boot.

      config :swarm_service, :memory_quotas,
        swarm_bytes: 1_073_741_824,   # default quota of each new swarm (1 GiB)
        node_bytes: 8_589_934_592     # all swarms of this node together (8 GiB)

  `config/runtime.exs` fills these from `RUV_SWARM_SWARM_MEMORY_BYTES` and
  `RUV_SWARM_NODE_MEMORY_BYTES`. Both are bytes, at least 4096. The
  defaults keep a machine with 24 GB alive with room for the BEAM: a node
  holds at most 8 GiB for clients, one swarm at most 1 GiB unless
  `SwarmService.RuvSwarm.spawn_swarm/1` gives it a `:memory_quota`.

  What counts and what a refusal looks like: see "Memory quotas" in
  `SwarmService.RuvSwarm`.
  """

  alias SwarmService.Native

  @default_swarm_bytes 1_073_741_824
  @default_node_bytes 8_589_934_592
  @min_bytes 4096
  @max_bytes 0x7FFF_FFFF_FFFF_FFFF

  @doc "The configured quotas, `%{swarm_bytes: n, node_bytes: n}`, or `{:error, reason}` if invalid."
  @spec configured() ::
          {:ok, %{swarm_bytes: pos_integer, node_bytes: pos_integer}} | {:error, term}
  def configured do
    opts = Application.get_env(:swarm_service, :memory_quotas, [])

    with :ok <- keyword(opts),
         {:ok, swarm} <- bytes(opts, :swarm_bytes, @default_swarm_bytes),
         {:ok, node} <- bytes(opts, :node_bytes, @default_node_bytes) do
      {:ok, %{swarm_bytes: swarm, node_bytes: node}}
    end
  end

  @doc "Hands the configured quotas to the engine (at boot, and again whenever called)."
  @spec apply_config() :: :ok | {:error, term}
  def apply_config do
    with {:ok, q} <- configured(), do: set(q.swarm_bytes, q.node_bytes)
  end

  @doc """
  Sets the default quota of swarms created from now on and the node's quota,
  in bytes. Swarms already loaded keep their own quota; the node's applies to
  their next write.
  """
  @spec set(pos_integer, pos_integer) :: :ok | {:error, term}
  def set(swarm_bytes, node_bytes), do: Native.engine_set_quotas(swarm_bytes, node_bytes)

  defp keyword(opts) do
    if Keyword.keyword?(opts),
      do: :ok,
      else: invalid("config :swarm_service, :memory_quotas must be a keyword list")
  end

  defp bytes(opts, key, default) do
    case Keyword.get(opts, key, default) do
      n when is_integer(n) and n >= @min_bytes and n <= @max_bytes ->
        {:ok, n}

      other ->
        invalid(
          "memory_quotas #{key} must be an integer number of bytes, at least #{@min_bytes}, " <>
            "got #{inspect(other)}"
        )
    end
  end

  defp invalid(msg), do: {:error, {:invalid_argument, msg}}
end
