//! Snapshots as plain terms: a swarm exported to maps and lists (to keep on
//! another node) and imported again under the same ids.
//!
//! Every key is an atom of the fixed vocabulary; enums are atoms; ids,
//! names and text are binaries; payloads (inputs, results, values, the
//! executor) are the terms they were given as. Reading a snapshot never
//! creates an atom: enum names are read as text (atoms or strings) and
//! checked against the engine's own.
//!
//! ```text
//! snapshot  %{id, name, topology, strategy, max_agents, created_at,
//!             next_ids: %{agent, task, discovery, memory_version},
//!             memory_quota (bytes; absent: the node's default),
//!             max_cost_micros (the cost budget; nil or absent: none),
//!             usage: usage, agents: [agent], tasks: [task], memory: [memory],
//!             discoveries: [discovery]}
//! agent     %{id, type, name, capabilities, capacity, dispatch (:push | :pull),
//!             node, executor, joined_at, usage: usage, session_id}
//! usage     %{input_tokens, output_tokens, cache_read_tokens,
//!             cache_creation_tokens, cost_micros, turns, duration_ms}
//!             (totals; cost in integer micro-dollars; absent keys are 0)
//! task      %{id, spec, status, created_at, started_at, finished_at, result,
//!             error, units, unit_results: [{unit_index, result}]}
//! spec      %{description, input, priority, capabilities, strategy, max_agents,
//!             timeout_ms, retries, backoff_ms, max_backoff_ms,
//!             subtasks: [%{name, input, depends_on, capabilities}]}
//! memory    %{namespace, key, value, version, tags, expires_at, created_at,
//!             updated_at}
//! discovery %{id, agent_id, type, content, confidence, tags, at}
//! ```
//!
//! `next_ids` are the numbers the swarm would hand out next. Agents are in
//! join order, tasks in submit order (unfinished ones and the finished-task
//! history), memory in (namespace, key) order, discoveries oldest first. A
//! task's `unit_results` lists every unit that completed, for finished
//! tasks too; `result` is the aggregate of a completed task (otherwise nil).
//!
//! On import, keys whose value may be nil or an empty list may be left out
//! (a header without its four lists imports as an empty swarm);
//! `joined_at` defaults to the swarm's `created_at`. What import does with
//! each part is described in `ruv_swarm_core::snapshot`.

use rustler::types::tuple::get_tuple;
use rustler::{Atom, Encoder, Env, Term};
use ruv_swarm_core::discovery::Discovery;
use ruv_swarm_core::ids::{self, Kind};
use ruv_swarm_core::limits;
use ruv_swarm_core::memory::Entry;
use ruv_swarm_core::snapshot::{
    result_shape, AgentRecord, MemoryRecord, NextIds, ResultShape, Snapshot, TaskRecord, MAX_SEQ,
};
use ruv_swarm_core::swarm::MAX_CAPACITY;
use ruv_swarm_core::task::TaskResult;
use ruv_swarm_core::usage::Usage;
use ruv_swarm_core::{
    Dispatch, Error, Payload, Result, Strategy, Swarm, TaskSpec, TaskStatus, Topology,
};

use crate::registry::{self, ok, with_swarm};
use crate::{atoms, codec};

/// Tasks one snapshot may hold (unfinished ones and the history).
const MAX_TASKS: usize = 1_000_000;
/// Largest timestamp accepted (ms).
const MAX_TIME: u64 = u64::MAX >> 1;

// ---- encoding ---------------------------------------------------------------

/// The snapshot without its agents, tasks, memory and discoveries.
fn header<'a>(env: Env<'a>, s: &Snapshot) -> Term<'a> {
    let n = s.next_ids;
    let next_ids = codec::map(
        env,
        [
            (atoms::agent(), n.agent.encode(env)),
            (atoms::task(), n.task.encode(env)),
            (atoms::discovery(), n.discovery.encode(env)),
            (atoms::memory_version(), n.memory_version.encode(env)),
        ],
    );
    codec::map(
        env,
        [
            (atoms::id(), codec::bin(env, &s.id)),
            (atoms::name(), codec::bin(env, &s.name)),
            (atoms::topology(), codec::atom_of(env, s.topology)),
            (atoms::strategy(), codec::atom_of(env, s.strategy)),
            (atoms::max_agents(), s.max_agents.encode(env)),
            (atoms::created_at(), s.created_at.encode(env)),
            (atoms::next_ids(), next_ids),
            (atoms::memory_quota(), s.memory_quota.encode(env)),
            (atoms::max_cost_micros(), codec::opt(env, s.max_cost_micros)),
            (atoms::usage(), usage(env, &s.usage)),
        ],
    )
}

/// Totals with the cost in micro-dollars, exact.
fn usage<'a>(env: Env<'a>, u: &Usage) -> Term<'a> {
    codec::map(
        env,
        [
            (atoms::input_tokens(), u.input_tokens.encode(env)),
            (atoms::output_tokens(), u.output_tokens.encode(env)),
            (atoms::cache_read_tokens(), u.cache_read_tokens.encode(env)),
            (
                atoms::cache_creation_tokens(),
                u.cache_creation_tokens.encode(env),
            ),
            (atoms::cost_micros(), u.cost_micros.encode(env)),
            (atoms::turns(), u.turns.encode(env)),
            (atoms::duration_ms(), u.duration_ms.encode(env)),
        ],
    )
}

fn decode_usage(t: Option<Term>) -> Result<Usage> {
    let Some(t) = t else {
        return Ok(Usage::default());
    };
    codec::ensure_map(t, "usage")?;
    codec::usage_counts(t, MAX_SEQ)
}

fn snapshot<'a>(env: Env<'a>, s: &Snapshot) -> Term<'a> {
    let agents: Vec<Term> = s.agents.iter().map(|a| agent(env, a)).collect();
    let tasks: Vec<Term> = s.tasks.iter().map(|t| task(env, t)).collect();
    let memory: Vec<Term> = s.memory.iter().map(|m| memory(env, m)).collect();
    let discoveries: Vec<Term> = s
        .discoveries
        .iter()
        .map(|d| codec::discovery(env, d))
        .collect();
    [
        (atoms::agents(), agents.encode(env)),
        (atoms::tasks(), tasks.encode(env)),
        (atoms::memory(), memory.encode(env)),
        (atoms::discoveries(), discoveries.encode(env)),
    ]
    .into_iter()
    .fold(header(env, s), |m, (k, v)| m.map_put(k, v).expect("map"))
}

fn agent<'a>(env: Env<'a>, a: &AgentRecord) -> Term<'a> {
    codec::map(
        env,
        [
            (atoms::id(), codec::bin(env, &a.id)),
            (atoms::type_(), codec::bin(env, &a.agent_type)),
            (atoms::name(), codec::bin(env, &a.name)),
            (atoms::capabilities(), codec::strs(env, &a.capabilities)),
            (atoms::capacity(), a.capacity.encode(env)),
            (atoms::dispatch(), codec::atom_of(env, a.dispatch)),
            (atoms::node(), codec::bin(env, &a.node)),
            (atoms::executor(), codec::term_of(env, &a.meta)),
            (atoms::joined_at(), a.joined_at.encode(env)),
            (atoms::usage(), usage(env, &a.usage)),
            (
                atoms::session_id(),
                codec::opt(env, a.session_id.as_deref()),
            ),
        ],
    )
}

/// A map `Native.task_submit/2` accepts and that rebuilds the task.
fn spec<'a>(env: Env<'a>, s: &TaskSpec) -> Term<'a> {
    let subtasks: Vec<Term> = s
        .subtasks
        .iter()
        .map(|st| {
            codec::map(
                env,
                [
                    (atoms::name(), codec::bin(env, &st.name)),
                    (atoms::input(), codec::term_of(env, &st.input)),
                    (atoms::depends_on(), codec::strs(env, &st.depends_on)),
                    (atoms::capabilities(), codec::strs(env, &st.capabilities)),
                ],
            )
        })
        .collect();
    codec::map(
        env,
        [
            (atoms::description(), codec::bin(env, &s.description)),
            (atoms::input(), codec::term_of(env, &s.input)),
            (atoms::priority(), codec::atom_of(env, s.priority)),
            (atoms::capabilities(), codec::strs(env, &s.capabilities)),
            (atoms::strategy(), codec::atom_of(env, s.mode)),
            (atoms::max_agents(), s.max_agents.encode(env)),
            (atoms::timeout_ms(), codec::opt(env, s.timeout_ms)),
            (atoms::retries(), s.retry.max_attempts.encode(env)),
            (atoms::backoff_ms(), s.retry.base_backoff_ms.encode(env)),
            (atoms::max_backoff_ms(), s.retry.max_backoff_ms.encode(env)),
            (atoms::subtasks(), subtasks.encode(env)),
        ],
    )
}

fn task<'a>(env: Env<'a>, t: &TaskRecord) -> Term<'a> {
    let unit_results: Vec<Term> = t
        .unit_results
        .iter()
        .map(|(i, r)| (*i, codec::term_of(env, r)).encode(env))
        .collect();
    codec::map(
        env,
        [
            (atoms::id(), codec::bin(env, &t.id)),
            (atoms::spec(), spec(env, &t.spec)),
            (atoms::status(), codec::atom_of(env, t.status)),
            (atoms::created_at(), t.created_at.encode(env)),
            (atoms::started_at(), codec::opt(env, t.started_at)),
            (atoms::finished_at(), codec::opt(env, t.finished_at)),
            (atoms::result(), codec::result_term(env, t.result.as_ref())),
            (atoms::error_message(), codec::opt(env, t.error.as_deref())),
            (atoms::units(), t.units.encode(env)),
            (atoms::unit_results(), unit_results.encode(env)),
        ],
    )
}

fn memory<'a>(env: Env<'a>, m: &MemoryRecord) -> Term<'a> {
    codec::entry(env, &m.namespace, &m.key, &m.entry)
}

// ---- decoding ---------------------------------------------------------------

/// A key that must be present (and not nil).
fn required<'a>(map: Term<'a>, key: Atom, name: &str) -> Result<Term<'a>> {
    codec::field(map, key).ok_or_else(|| Error::invalid(format!("{name} is missing")))
}

fn time(map: Term, key: Atom, name: &str) -> Result<u64> {
    codec::uint(required(map, key, name)?, name, 0, MAX_TIME)
}

fn opt_time(map: Term, key: Atom, name: &str) -> Result<Option<u64>> {
    codec::field(map, key)
        .map(|v| codec::uint(v, name, 0, MAX_TIME))
        .transpose()
}

fn opt_strings(map: Term, key: Atom, name: &'static str) -> Result<Vec<String>> {
    match codec::field(map, key) {
        Some(v) => codec::strings(v, name, limits::MAX_LIST_ITEMS),
        None => Ok(Vec::new()),
    }
}

/// A term stored as given; an absent key stands for nil.
fn raw_payload(map: Term, key: Atom) -> Payload {
    match map.map_get(key) {
        Ok(v) => codec::payload(v),
        Err(_) => codec::payload(atoms::nil().to_term(map.get_env())),
    }
}

/// The list under `key` (absent: empty), refusing to walk more than `max`
/// items; each item decoded by `f`.
fn list<'a, T>(
    map: Term<'a>,
    key: Atom,
    what: &'static str,
    max: usize,
    mut f: impl FnMut(Term<'a>) -> Result<T>,
) -> Result<Vec<T>> {
    match codec::field(map, key) {
        Some(v) => codec::list(v, what, max, |i, item| {
            f(item).map_err(|e| e.within(format_args!("{what}[{i}]")))
        }),
        None => Ok(Vec::new()),
    }
}

fn decode(t: Term) -> Result<Snapshot> {
    codec::ensure_map(t, "a snapshot")?;
    let created_at = time(t, atoms::created_at(), "created_at")?;
    let max_agents = codec::uint(
        required(t, atoms::max_agents(), "max_agents")?,
        "max_agents",
        1,
        limits::MAX_AGENTS_PER_SWARM as u64,
    )? as u32;
    Ok(Snapshot {
        id: codec::string(required(t, atoms::id(), "id")?, "id")?,
        name: codec::string(required(t, atoms::name(), "name")?, "name")?,
        topology: codec::name_of(
            required(t, atoms::topology(), "topology")?,
            "topology",
            Topology::parse,
        )?,
        strategy: codec::name_of(
            required(t, atoms::strategy(), "strategy")?,
            "strategy",
            Strategy::parse,
        )?,
        max_agents,
        created_at,
        next_ids: match codec::field(t, atoms::next_ids()) {
            Some(n) => next_ids(n)?,
            None => NextIds::default(),
        },
        // A snapshot from before quotas gets this node's default.
        memory_quota: match codec::field(t, atoms::memory_quota()) {
            Some(q) => codec::uint(
                q,
                "memory_quota",
                limits::MIN_MEMORY_QUOTA_BYTES,
                u64::MAX >> 1,
            )?,
            None => registry::default_swarm_quota(),
        },
        max_cost_micros: codec::field(t, atoms::max_cost_micros())
            .map(|v| codec::uint(v, "max_cost_micros", 0, limits::MAX_USAGE_VALUE))
            .transpose()?,
        usage: decode_usage(codec::field(t, atoms::usage())).map_err(|e| e.within("usage"))?,
        agents: list(t, atoms::agents(), "agents", max_agents as usize, |a| {
            decode_agent(a, created_at)
        })?,
        tasks: list(t, atoms::tasks(), "tasks", MAX_TASKS, decode_task)?,
        memory: list(
            t,
            atoms::memory(),
            "memory",
            limits::MAX_MEMORY_ENTRIES,
            decode_memory,
        )?,
        discoveries: list(
            t,
            atoms::discoveries(),
            "discoveries",
            limits::DEFAULT_DISCOVERY_LOG,
            decode_discovery,
        )?,
    })
}

fn next_ids(t: Term) -> Result<NextIds> {
    codec::ensure_map(t, "next_ids")?;
    let mut n = NextIds::default();
    for (key, name, slot) in [
        (atoms::agent(), "next_ids.agent", &mut n.agent),
        (atoms::task(), "next_ids.task", &mut n.task),
        (atoms::discovery(), "next_ids.discovery", &mut n.discovery),
        (
            atoms::memory_version(),
            "next_ids.memory_version",
            &mut n.memory_version,
        ),
    ] {
        if let Some(v) = codec::field(t, key) {
            *slot = codec::uint(v, name, 1, MAX_SEQ)?;
        }
    }
    Ok(n)
}

fn decode_agent(t: Term, swarm_created_at: u64) -> Result<AgentRecord> {
    codec::ensure_map(t, "an agent")?;
    let agent_type = required(t, atoms::type_(), "type")?;
    Ok(AgentRecord {
        id: codec::string(required(t, atoms::id(), "id")?, "id")?,
        agent_type: codec::text(agent_type, "type")?,
        name: codec::string(required(t, atoms::name(), "name")?, "name")?,
        capabilities: opt_strings(t, atoms::capabilities(), "capabilities")?,
        capacity: codec::uint(
            required(t, atoms::capacity(), "capacity")?,
            "capacity",
            1,
            MAX_CAPACITY as u64,
        )? as u32,
        dispatch: codec::name_of(
            required(t, atoms::dispatch(), "dispatch")?,
            "dispatch",
            Dispatch::parse,
        )?,
        node: match codec::field(t, atoms::node()) {
            Some(v) => codec::string(v, "node")?,
            None => String::new(),
        },
        meta: codec::field(t, atoms::executor())
            .map(codec::payload)
            .unwrap_or_default(),
        joined_at: opt_time(t, atoms::joined_at(), "joined_at")?.unwrap_or(swarm_created_at),
        usage: decode_usage(codec::field(t, atoms::usage())).map_err(|e| e.within("usage"))?,
        session_id: codec::field(t, atoms::session_id())
            .map(|v| codec::string(v, "session_id"))
            .transpose()?,
    })
}

fn decode_spec(t: Term) -> Result<TaskSpec> {
    let mut s = crate::task::spec(t)?;
    // Keep an explicit nil input as the term nil (as task_submit would
    // keep any other term), so a task whose only content was nil rebuilds.
    if s.input.is_empty() && t.map_get(atoms::input()).is_ok() {
        s.input = raw_payload(t, atoms::input());
    }
    Ok(s)
}

fn decode_task(t: Term) -> Result<TaskRecord> {
    codec::ensure_map(t, "a task")?;
    let spec_term = required(t, atoms::spec(), "spec")?;
    codec::ensure_map(spec_term, "spec")?;
    let spec = decode_spec(spec_term).map_err(|e| e.within("spec"))?;
    let status = codec::name_of(
        required(t, atoms::status(), "status")?,
        "status",
        TaskStatus::parse,
    )?;
    let max_units = limits::MAX_SUBTASKS.max(limits::MAX_TASK_AGENTS as usize);
    let units = codec::uint(
        required(t, atoms::units(), "units")?,
        "units",
        1,
        max_units as u64,
    )? as u32;
    let unit_results = list(t, atoms::unit_results(), "unit_results", max_units, |r| {
        let pair = get_tuple(r)
            .ok()
            .filter(|p| p.len() == 2)
            .ok_or_else(|| Error::invalid("must be a {unit_index, result} tuple"))?;
        let i = codec::uint(pair[0], "unit index", 0, max_units as u64)? as u32;
        Ok((i, codec::payload(pair[1])))
    })?;
    // A completed task's result may itself be nil, so nil counts as a
    // result for a completed task and as none otherwise.
    let result = match t.map_get(atoms::result()) {
        Ok(r) if status == TaskStatus::Completed => {
            Some(decode_result(r, &result_shape(&spec, units)).map_err(|e| e.within("result"))?)
        }
        Ok(r) if !codec::is_nil(r) => {
            return Err(Error::invalid(format!(
                "only a completed task has a result, this one is {}",
                status.as_str()
            )))
        }
        _ => None,
    };
    Ok(TaskRecord {
        id: codec::string(required(t, atoms::id(), "id")?, "id")?,
        spec,
        status,
        created_at: time(t, atoms::created_at(), "created_at")?,
        started_at: opt_time(t, atoms::started_at(), "started_at")?,
        finished_at: opt_time(t, atoms::finished_at(), "finished_at")?,
        result,
        error: codec::field(t, atoms::error_message())
            .map(|v| codec::string(v, "error"))
            .transpose()?,
        units,
        unit_results,
    })
}

fn decode_result(t: Term, shape: &ResultShape) -> Result<TaskResult> {
    match shape {
        ResultShape::Single => Ok(TaskResult::Single(codec::payload(t))),
        ResultShape::List(n) => {
            let bad = || Error::invalid(format!("must be a list of {n} results"));
            if t.list_length().map_err(|_| bad())? != *n {
                return Err(bad());
            }
            let iter = t.into_list_iterator().map_err(|_| bad())?;
            Ok(TaskResult::List(iter.map(codec::payload).collect()))
        }
        ResultShape::Named(names) => {
            let bad = || Error::invalid("must be a map from each subtask name to its result");
            if !t.is_map() || t.map_size().map_err(|_| bad())? != names.len() {
                return Err(bad());
            }
            let env = t.get_env();
            names
                .iter()
                .map(|n| {
                    let r = t.map_get(codec::bin(env, n)).map_err(|_| bad())?;
                    Ok((n.clone(), codec::payload(r)))
                })
                .collect::<Result<_>>()
                .map(TaskResult::Named)
        }
    }
}

fn decode_memory(t: Term) -> Result<MemoryRecord> {
    codec::ensure_map(t, "a memory entry")?;
    let value = t
        .map_get(atoms::value())
        .unwrap_or_else(|_| atoms::nil().to_term(t.get_env()));
    let payload = codec::payload(value);
    Ok(MemoryRecord {
        namespace: codec::string(required(t, atoms::namespace(), "namespace")?, "namespace")?,
        key: codec::string(required(t, atoms::key(), "key")?, "key")?,
        entry: Entry {
            // Text values are searchable by content, as when stored.
            text_at: crate::memory::text_at(value, &payload).map(|a| a as u32),
            value: payload,
            version: codec::uint(
                required(t, atoms::version(), "version")?,
                "version",
                1,
                MAX_SEQ,
            )?,
            tags: opt_strings(t, atoms::tags(), "tags")?,
            created_at: time(t, atoms::created_at(), "created_at")?,
            updated_at: time(t, atoms::updated_at(), "updated_at")?,
            expires_at: opt_time(t, atoms::expires_at(), "expires_at")?,
        },
    })
}

fn decode_discovery(t: Term) -> Result<Discovery> {
    codec::ensure_map(t, "a discovery")?;
    Ok(Discovery {
        id: codec::string(required(t, atoms::id(), "id")?, "id")?,
        agent_id: codec::field(t, atoms::agent_id())
            .map(|v| codec::string(v, "agent_id"))
            .transpose()?,
        kind: codec::string(required(t, atoms::type_(), "type")?, "type")?,
        content: codec::field(t, atoms::content())
            .map(codec::payload)
            .unwrap_or_default(),
        confidence: codec::number(
            required(t, atoms::confidence(), "confidence")?,
            "confidence",
        )?,
        tags: opt_strings(t, atoms::tags(), "tags")?,
        at: time(t, atoms::at(), "at")?,
    })
}

// ---- NIFs -------------------------------------------------------------------

/// `{:ok, snapshot}`: the whole swarm as terms. The swarm is locked only
/// while it is copied; the terms are built after.
#[rustler::nif(schedule = "DirtyCpu")]
fn swarm_export<'a>(env: Env<'a>, swarm_id: Term<'a>) -> Term<'a> {
    let result = registry::swarm_of(swarm_id).and_then(|cell| {
        let snap = cell.lock().swarm.export(registry::now_ms());
        ok(env, snapshot(env, &snap))
    });
    crate::error::reply(env, result)
}

/// One element of a snapshot by id: an agent, a task, a discovery, or for
/// a swarm id the snapshot's header.
#[rustler::nif]
fn export_item<'a>(env: Env<'a>, id: Term<'a>) -> Term<'a> {
    let id = match codec::string(id, "id") {
        Ok(id) => id,
        Err(e) => return crate::error::error(env, &e),
    };
    let kind = [Kind::Agent, Kind::Task, Kind::Discovery]
        .into_iter()
        .find(|k| ids::parse_child_id(&id, *k).is_some());
    let cell = match kind {
        Some(k) => registry::owning(&id, k),
        None => registry::get(&id),
    };
    with_swarm(env, cell, |st, _| match kind {
        Some(Kind::Agent) => ok(env, agent(env, &st.swarm.export_agent(&id)?)),
        Some(Kind::Task) => ok(env, task(env, &st.swarm.export_task(&id)?)),
        Some(Kind::Discovery) => ok(env, codec::discovery(env, &st.swarm.export_discovery(&id)?)),
        None => ok(env, header(env, &st.swarm.export_header())),
    })
}

/// `{:ok, entry}` for one memory entry, `{:error, :not_found}` if absent or
/// expired.
#[rustler::nif]
fn memory_export<'a>(
    env: Env<'a>,
    swarm_id: Term<'a>,
    namespace: Term<'a>,
    key: Term<'a>,
) -> Term<'a> {
    with_swarm(env, registry::swarm_of(swarm_id), |st, now| {
        let ns = codec::string(namespace, "namespace")?;
        let key = codec::string(key, "key")?;
        ok(env, memory(env, &st.swarm.export_memory(&ns, &key, now)?))
    })
}

/// Rebuilds a swarm from a snapshot under the same ids: `{:ok, swarm_id}`,
/// `{:error, :swarm_exists}` if one with that id is loaded, or
/// `{:error, {:invalid_argument, message}}` for a malformed snapshot.
#[rustler::nif(schedule = "DirtyCpu")]
fn swarm_import<'a>(env: Env<'a>, snapshot: Term<'a>) -> Term<'a> {
    let result = (|| {
        // Refuse a loaded id before reading the rest.
        if let Some(id) = snapshot
            .is_map()
            .then(|| codec::field(snapshot, atoms::id()))
            .flatten()
            .and_then(|v| codec::string(v, "id").ok())
        {
            if registry::get(&id).is_ok() {
                return Err(Error::SwarmExists);
            }
        }
        let snap = decode(snapshot)?;
        let swarm = Swarm::import(snap, registry::now_ms())?;
        let id = swarm.id.clone();
        registry::insert_new(swarm)?;
        tracing::info!(swarm = %id, "swarm imported");
        ok(env, codec::bin(env, &id))
    })();
    crate::error::reply(env, result)
}
