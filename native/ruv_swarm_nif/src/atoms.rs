//! The fixed atom vocabulary. No atom is ever made from caller input.

use rustler::Atom;
use ruv_swarm_core::task::UnitState;
use ruv_swarm_core::{AgentStatus, Dispatch, ExecMode, Priority, Strategy, TaskStatus, Topology};

rustler::atoms! {
    ok, error, nil, ignored, no_task, watching, done,
    // error reasons
    swarm_not_found, swarm_exists, agent_not_found, task_not_found, not_found, swarm_full,
    invalid_argument, too_large, dependency_cycle, task_finished,
    version_conflict, not_pull_agent, quota_exceeded,
    // enums
    mesh, hierarchical, ring, star,
    balanced, specialized, adaptive,
    idle, busy, offline,
    low, medium, high, critical,
    pending, running, completed, failed, cancelled, timed_out, blocked, retrying,
    parallel, sequential,
    push, pull,
    // message tags
    swarm_work, swarm_cancel, swarm_task_done, swarm_task_finished, swarm_event, swarm_discovery,
    swarm_wakeup, swarm_agent_unreachable, ruv_swarm_log,
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
    units, attempts, agent_id, result,
    work_id, task_id, unit, attempt, input, context, timeout_ms, route,
    namespace, key, value, version, tags, updated_at, expires_at,
    content, confidence, at, seq,
    progress, delay_ms, reason, from, deliveries,
    allocated_bytes, swarms, agent_type, discovery_type,
    depends_on, backoff_ms, max_backoff_ms, subtasks, prefix, text, limit, ttl_ms,
    if_version, min_confidence, executor, longest_call_ns, longest_call_cpu_ns,
    longest_call, history, outcome, duration_ms, last_error,
    // snapshots
    next_ids, agent, task, discovery, memory_version, memory, spec, unit_results,
    // engine limits (limits.rs) and parsed ids (ids.rs)
    max_agents_per_swarm, default_max_agents, max_name_bytes, max_list_items,
    max_payload_bytes, max_text_bytes, max_subtasks, max_task_agents, max_attempts,
    task_history, discovery_log, max_memory_entries, max_search_results, max_timeout_ms,
    max_capacity, kind, swarm, work,
    // byte accounting and quotas
    memory_quota, held_bytes, task_bytes, result_bytes, discovery_bytes,
    node_memory_quota, swarm_memory_quota,
    // usage, cost and budget
    message, usage, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    cost_micros, cost_usd, turns, session_id, budget, max_cost_usd, max_cost_micros, spent_usd,
    exhausted, waiting_reason, max_progress_message_bytes, max_session_id_bytes,
    max_usage_value,
}

/// An engine enum whose names are atoms of the vocabulary.
pub trait Named {
    fn atom(self) -> Atom;
}

/// Each variant's atom, spelled as its `as_str` name.
macro_rules! named {
    ($($ty:ident { $($variant:ident => $atom:ident),+ })+) => {$(
        impl Named for $ty {
            fn atom(self) -> Atom {
                match self { $($ty::$variant => $atom()),+ }
            }
        }
    )+};
}

named! {
    Topology { Mesh => mesh, Hierarchical => hierarchical, Ring => ring, Star => star }
    Strategy { Balanced => balanced, Specialized => specialized, Adaptive => adaptive }
    AgentStatus { Idle => idle, Busy => busy, Offline => offline }
    Priority { Low => low, Medium => medium, High => high, Critical => critical }
    TaskStatus {
        Pending => pending, Running => running, Completed => completed, Failed => failed,
        Cancelled => cancelled, TimedOut => timed_out
    }
    ExecMode { Parallel => parallel, Sequential => sequential, Adaptive => adaptive }
    Dispatch { Push => push, Pull => pull }
    UnitState {
        Blocked => blocked, Ready => pending, Delayed => retrying, Running => running,
        Done => completed, Failed => failed, Cancelled => cancelled
    }
}
