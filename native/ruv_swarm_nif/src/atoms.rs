//! The fixed atom vocabulary. No atom is ever made from caller input.

rustler::atoms! {
    ok, error, nil, ignored, no_task, watching, done,
    // error reasons
    swarm_not_found, swarm_exists, agent_not_found, task_not_found, not_found, swarm_full,
    invalid_argument, too_large, dependency_cycle, task_finished,
    version_conflict, not_pull_agent, internal,
    // enums
    mesh, hierarchical, ring, star,
    balanced, specialized, adaptive,
    idle, busy, offline,
    low, medium, high, critical,
    pending, running, completed, failed, cancelled, timed_out,
    parallel, sequential,
    push, pull,
    // message tags
    swarm_work, swarm_cancel, swarm_task_done, swarm_task_finished, swarm_event, swarm_discovery,
    swarm_wakeup, ruv_swarm_log,
    // log levels
    debug, info, warning,
    // record keys
    id, name, topology, strategy, max_agents, created_at, agents, tasks, total,
    queued_units, memory_entries, memory_bytes, discoveries, counters,
    tasks_submitted, units_dispatched, units_completed, units_failed, retries,
    coordination_hops, memory_writes, discoveries_shared, events,
    swarm_id, type_ = "type", capabilities, status, dispatch, capacity, load, node,
    metrics, latency_ms, success_rate, joined_at, running_units,
    description, priority, started_at, finished_at, error_message = "error",
    units, attempts, agent_id, result, results,
    work_id, task_id, unit, attempt, input, context, timeout_ms, route,
    namespace, key, value, version, tags, updated_at, expires_at,
    content, confidence, at, seq,
    progress, delay_ms, reason, from, deliveries,
    allocated_bytes, swarms, agent_type, discovery_type,
    depends_on, backoff_ms, max_backoff_ms, subtasks, prefix, text, limit, ttl_ms,
    if_version, min_confidence, executor, longest_call_ns, longest_call_cpu_ns,
    // snapshots
    next_ids, agent, task, discovery, memory_version, memory, spec, unit_results,
}
