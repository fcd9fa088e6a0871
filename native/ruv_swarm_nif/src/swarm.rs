//! Swarm lifecycle, status, timers, subscriptions and coordination.

use rustler::{Encoder, Env, LocalPid, Term};
use ruv_swarm_core::ids::{self, Kind};
use ruv_swarm_core::limits;
use ruv_swarm_core::swarm::SwarmConfig;
use ruv_swarm_core::{Strategy, Swarm, Topology};

use crate::registry::{self, ok, ok_atom, with_swarm};
use crate::{atoms, codec};

/// Timers and expiries handled per tick; more come back at once. A fired
/// deadline costs a few microseconds (a retry, a refill), so a tick stays
/// well under the 1 ms rule even when every one of them fires.
const TICK_BUDGET: usize = 64;

#[rustler::nif]
fn swarm_create<'a>(
    env: Env<'a>,
    name: Term<'a>,
    topology: Term<'a>,
    strategy: Term<'a>,
    max_agents: Term<'a>,
    memory_quota: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let cfg = config(name, topology, strategy, max_agents, memory_quota)?;
        let swarm = Swarm::new(ids::new_swarm_id(), cfg, registry::now_ms())?;
        let id = swarm.id.clone();
        tracing::info!(swarm = %id, "swarm created");
        registry::insert(swarm);
        ok(env, codec::bin(env, &id))
    })();
    crate::error::reply(env, result)
}

/// A new swarm's configuration from `swarm_create`'s arguments.
pub(crate) fn config(
    name: Term,
    topology: Term,
    strategy: Term,
    max_agents: Term,
    memory_quota: Term,
) -> ruv_swarm_core::Result<SwarmConfig> {
    Ok(SwarmConfig {
        name: codec::string(name, "name")?,
        topology: codec::name_of(topology, "topology", Topology::parse)?,
        strategy: codec::name_of(strategy, "strategy", Strategy::parse)?,
        max_agents: codec::uint(
            max_agents,
            "max_agents",
            1,
            limits::MAX_AGENTS_PER_SWARM as u64,
        )? as u32,
        // nil: the node's default (see `engine_set_quotas`).
        memory_quota: if codec::is_nil(memory_quota) {
            registry::default_swarm_quota()
        } else {
            codec::uint(
                memory_quota,
                "memory_quota",
                limits::MIN_MEMORY_QUOTA_BYTES,
                u64::MAX >> 1,
            )?
        },
        ..Default::default()
    })
}

#[rustler::nif]
fn swarm_destroy<'a>(env: Env<'a>, id: Term<'a>) -> Term<'a> {
    let result = codec::string(id, "swarm id").and_then(|id| {
        let cell = registry::remove(&id).ok_or(ruv_swarm_core::Error::SwarmNotFound)?;
        registry::free_later(cell);
        tracing::info!(swarm = %id, "swarm destroyed");
        ok_atom(env)
    });
    crate::error::reply(env, result)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn swarm_list(env: Env) -> Term {
    let list: Vec<Term> = registry::all()
        .iter()
        .map(|cell| codec::swarm_summary(env, &cell.lock().swarm))
        .collect();
    list.encode(env)
}

#[rustler::nif]
fn swarm_status<'a>(env: Env<'a>, id: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| {
        ok(env, codec::swarm_status(env, &st.swarm))
    })
}

/// Sets the swarm's cost budget in micro-dollars (nil: no budget). Once
/// the swarm's total cost reaches it no new unit is dispatched; raising it
/// resumes dispatch.
#[rustler::nif]
fn swarm_set_budget<'a>(env: Env<'a>, id: Term<'a>, max_cost_micros: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, now| {
        let budget = if codec::is_nil(max_cost_micros) {
            None
        } else {
            Some(codec::uint(
                max_cost_micros,
                "max_cost_micros",
                0,
                limits::MAX_USAGE_VALUE,
            )?)
        };
        st.swarm.set_budget(budget, now)?;
        ok_atom(env)
    })
}

/// Registers the swarm's server process, which runs its timers.
#[rustler::nif]
fn swarm_set_owner<'a>(env: Env<'a>, id: Term<'a>, pid: LocalPid) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| {
        st.boxes.owner = Some(pid);
        st.boxes.wake_at = u64::MAX;
        ok_atom(env)
    })
}

/// Turns on (or off) `{:swarm_task_finished, swarm_id, task_id}` to the
/// owner for every task that finishes.
#[rustler::nif]
fn swarm_report_outcomes<'a>(env: Env<'a>, id: Term<'a>, on: bool) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| {
        st.boxes.report_outcomes = on;
        ok_atom(env)
    })
}

/// Fires due timers. Replies `{:ok, ms_until_next | nil}`.
#[rustler::nif]
fn swarm_tick<'a>(env: Env<'a>, id: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, now| {
        let more = st.swarm.tick(now, TICK_BUDGET);
        let next = st.swarm.next_deadline();
        st.boxes.wake_at = next.unwrap_or(u64::MAX);
        match next {
            _ if more => ok(env, 0u64),
            Some(at) => ok(env, at.saturating_sub(now)),
            None => ok(env, atoms::nil()),
        }
    })
}

#[rustler::nif]
fn swarm_subscribe<'a>(env: Env<'a>, id: Term<'a>, pid: LocalPid) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| {
        if !st.boxes.subscribers.contains(&pid) {
            st.boxes.subscribers.push(pid);
        }
        st.swarm.outbox.record_events = true;
        ok_atom(env)
    })
}

#[rustler::nif]
fn swarm_unsubscribe<'a>(env: Env<'a>, id: Term<'a>, pid: LocalPid) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| {
        st.boxes.subscribers.retain(|p| *p != pid);
        st.boxes.discovery_subscribers.retain(|(p, _)| *p != pid);
        ok_atom(env)
    })
}

/// Route of a coordination message: `{:ok, [{from | nil, to, to_pid | nil}]}`.
#[rustler::nif]
fn swarm_coordinate<'a>(env: Env<'a>, id: Term<'a>, origin: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, now| {
        let origin = codec::opt_string(origin, "origin agent id")?;
        let hops = st.swarm.coordinate(origin.as_deref(), now)?;
        let list: Vec<Term> = hops
            .iter()
            .map(|(from, to)| {
                let pid = st
                    .swarm
                    .agent(to)
                    .ok()
                    .and_then(|a| st.boxes.agent_pids.get(&a.seq))
                    .map(|p| p.encode(env))
                    .unwrap_or_else(|| atoms::nil().encode(env));
                let from = from
                    .as_deref()
                    .map(|f| codec::bin(env, f))
                    .unwrap_or_else(|| atoms::nil().encode(env));
                (from, codec::bin(env, to), pid).encode(env)
            })
            .collect();
        ok(env, list)
    })
}

#[rustler::nif]
fn agent_neighbours<'a>(env: Env<'a>, agent_id: Term<'a>) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, _| {
        let ids: Vec<Term> = st
            .swarm
            .neighbours(&id?)?
            .iter()
            .map(|n| codec::bin(env, n))
            .collect();
        ok(env, ids)
    })
}

/// Turns on timing (wall and CPU) of every swarm command, for benchmarks.
#[rustler::nif]
fn engine_measure(on: bool) -> rustler::Atom {
    registry::measure(on);
    atoms::ok()
}

/// Engine-wide numbers: live bytes allocated by Rust, swarm count, and the
/// longest swarm command since the last call (then reset) and the NIF that
/// ran it.
#[rustler::nif]
fn engine_memory(env: Env) -> Term {
    let (wall, cpu, name) = registry::take_longest_call_ns();
    codec::map(
        env,
        [
            (
                atoms::allocated_bytes(),
                (crate::alloc::live_bytes() as u64).encode(env),
            ),
            (atoms::swarms(), (registry::all().len() as u64).encode(env)),
            (atoms::longest_call_ns(), wall.encode(env)),
            (atoms::longest_call_cpu_ns(), cpu.encode(env)),
            (atoms::longest_call(), codec::bin(env, &name)),
        ],
    )
}
