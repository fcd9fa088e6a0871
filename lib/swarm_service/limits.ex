defmodule SwarmService.Limits do
  @moduledoc """
  The limits on what callers may hand the engine, as the engine enforces
  them. They are defined once, in the Rust engine
  (`native/ruv_swarm_core/src/limits.rs`, plus an agent's `MAX_CAPACITY`),
  and read from it here; option validation (`SwarmService.RuvSwarm`) and the
  gateway's tool schemas (`InterfaceService.Tools`) take their bounds from
  this module, so the three cannot disagree.

  The NIF loads at run time, so the map is read on first use and kept in
  `:persistent_term` (a read costs nothing after that).

  Keys (all integers): `max_agents_per_swarm`, `default_max_agents`,
  `max_name_bytes` (names, keys, namespaces, types, tags, capabilities),
  `max_list_items` (capabilities, tags), `max_payload_bytes` (input, value,
  result, discovery content, encoded), `max_text_bytes` (descriptions,
  failure reasons), `max_subtasks`, `max_task_agents` (a task's fan-out),
  `max_attempts` (a task's `retries`), `task_history`, `discovery_log`,
  `max_memory_entries`, `max_search_results`, `max_timeout_ms` (timeouts,
  leases, backoff and memory TTLs), `max_capacity` (units an agent runs at
  once), `max_progress_message_bytes` (a progress report's message),
  `max_session_id_bytes` (an executor's session id) and `max_usage_value`
  (a token count, turn count or duration of one report, and a cost or
  budget in micro-dollars).

      iex> SwarmService.Limits.get(:max_attempts)
      20
  """
  alias SwarmService.Native

  @type name ::
          :max_agents_per_swarm
          | :default_max_agents
          | :max_name_bytes
          | :max_list_items
          | :max_payload_bytes
          | :max_text_bytes
          | :max_subtasks
          | :max_task_agents
          | :max_attempts
          | :task_history
          | :discovery_log
          | :max_memory_entries
          | :max_search_results
          | :max_timeout_ms
          | :max_capacity
          | :max_progress_message_bytes
          | :max_session_id_bytes
          | :max_usage_value

  @key {__MODULE__, :limits}

  @doc "Every engine limit, by name."
  @spec all() :: %{name => non_neg_integer}
  def all do
    case :persistent_term.get(@key, nil) do
      nil ->
        limits = Native.engine_limits()
        :persistent_term.put(@key, limits)
        limits

      limits ->
        limits
    end
  end

  @doc "One engine limit; raises `KeyError` for a name that is not one."
  @spec get(name) :: non_neg_integer
  def get(name), do: Map.fetch!(all(), name)
end
