defmodule SwarmService.Native do
  @moduledoc false
  # NIF stubs for native/ruv_swarm_nif. Every function replies with terms
  # (never raises on bad input); see SwarmService.RuvSwarm for the contract.

  @on_load :load_nif

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:swarm_service), ~c"native/ruv_swarm_nif")

    case :erlang.load_nif(path, 0) do
      :ok ->
        :ok

      {:error, {reason, text}} ->
        :logger.error(
          ~c"ruv_swarm NIF not loaded from ~s.so (~p: ~s). Build it with `mix compile` " ++
            ~c"(needs cargo; `make deps` installs what is missing).",
          [path, reason, text]
        )

        {:error, reason}
    end
  end

  defp nif, do: :erlang.nif_error(:nif_not_loaded)

  def swarm_create(_name, _topology, _strategy, _max_agents, _memory_quota), do: nif()
  def swarm_destroy(_id), do: nif()
  def swarm_list, do: nif()
  def swarm_status(_id), do: nif()
  def swarm_set_owner(_id, _pid), do: nif()
  def swarm_report_outcomes(_id, _on), do: nif()
  def swarm_tick(_id), do: nif()
  def swarm_set_budget(_id, _max_cost_micros), do: nif()
  def swarm_subscribe(_id, _pid), do: nif()
  def swarm_unsubscribe(_id, _pid), do: nif()
  def swarm_coordinate(_id, _origin), do: nif()
  def agent_neighbours(_agent_id), do: nif()
  def engine_memory, do: nif()
  def engine_limits, do: nif()
  def engine_error_reasons, do: nif()
  def parse_id(_id), do: nif()
  def engine_measure(_on), do: nif()
  def engine_usage, do: nif()
  def engine_set_quotas(_swarm_bytes, _node_bytes), do: nif()
  def engine_trim_heap, do: nif()

  def agent_add(_swarm_id, _opts), do: nif()
  def agent_attach(_agent_id, _pid), do: nif()
  def agent_detach(_agent_id, _pid, _reason), do: nif()
  def agent_worker(_agent_id, _slot, _pid, _work_id), do: nif()
  def agent_worker_lost(_agent_id, _slot, _reason), do: nif()
  def agent_remove(_agent_id), do: nif()
  def agent_get(_agent_id), do: nif()
  def agent_list(_swarm_id), do: nif()
  def agent_page(_swarm_id, _cursor, _limit), do: nif()
  def agent_processes(_swarm_id), do: nif()

  def task_submit(_swarm_id, _task, _notify), do: nif()
  def task_get(_task_id, _with_results), do: nif()
  def task_cancel(_task_id), do: nif()
  def task_watch(_task_id, _pid), do: nif()
  def task_unwatch(_task_id, _pid), do: nif()
  # The shorter arities are those of logs written before usage existed;
  # they still replay.
  def work_progress(_work_id, _agent_id, _progress), do: nif()
  def work_progress(_work_id, _agent_id, _progress, _message), do: nif()
  def work_complete(_work_id, _agent_id, _result), do: nif()
  def work_complete(_work_id, _agent_id, _result, _usage), do: nif()
  def work_fail(_work_id, _agent_id, _reason, _timed_out), do: nif()
  def work_fail(_work_id, _agent_id, _reason, _timed_out, _usage), do: nif()
  def work_claim(_agent_id, _lease_ms), do: nif()

  def memory_store(_swarm_id, _key, _value, _opts), do: nif()
  def memory_get(_swarm_id, _key, _opts), do: nif()
  def memory_delete(_swarm_id, _key, _opts), do: nif()
  def memory_search(_swarm_id, _query), do: nif()

  def discovery_share(_swarm_id, _discovery), do: nif()
  def discovery_subscribe(_swarm_id, _pid, _filter), do: nif()
  def discovery_recent(_swarm_id, _filter, _limit), do: nif()

  # Snapshots (plain terms; see native/ruv_swarm_nif/src/snapshot.rs).
  def swarm_export(_swarm_id), do: nif()
  def export_item(_id), do: nif()
  def memory_export(_swarm_id, _namespace, _key), do: nif()
  def swarm_import(_snapshot), do: nif()

  # Replicated swarms, the engine of a Raft log (see
  # native/ruv_swarm_nif/src/replicated.rs and SwarmService.Swarm.Machine).
  def new_swarm_id, do: nif()

  def swarm_create_replicated(_id, _name, _topology, _strategy, _max, _quota, _seed, _now),
    do: nif()

  def swarm_save(_swarm_id), do: nif()
  def swarm_load_replicated(_state, _now), do: nif()
  def swarm_set_clock(_swarm_id, _now), do: nif()
  def swarm_set_delivery(_swarm_id, _on), do: nif()
  def swarm_redeliver(_swarm_id), do: nif()
  def engine_node_room, do: nif()
end
