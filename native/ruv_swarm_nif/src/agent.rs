//! Agents: registration, process attachment, listing.

use rustler::{Encoder, Env, LocalPid, Term};
use ruv_swarm_core::ids::Kind;
use ruv_swarm_core::limits;
use ruv_swarm_core::swarm::MAX_CAPACITY;
use ruv_swarm_core::{AgentSpec, Dispatch};

use crate::registry::{self, ok, ok_atom, with_swarm};
use crate::{atoms, codec};

fn spec(t: Term) -> ruv_swarm_core::Result<AgentSpec> {
    codec::ensure_map(t, "agent options")?;
    let mut spec = AgentSpec::default();
    if let Some(v) = codec::field(t, atoms::type_()) {
        spec.agent_type = codec::text(v, "type")?;
    }
    if let Some(v) = codec::field(t, atoms::name()) {
        spec.name = Some(codec::string(v, "name")?);
    }
    if let Some(v) = codec::field(t, atoms::capabilities()) {
        spec.capabilities = codec::strings(v, "capabilities", limits::MAX_LIST_ITEMS)?;
    }
    if let Some(v) = codec::field(t, atoms::dispatch()) {
        spec.dispatch = codec::name_of(v, "dispatch", Dispatch::parse)?;
    }
    if let Some(v) = codec::field(t, atoms::capacity()) {
        spec.capacity = codec::uint(v, "capacity", 1, MAX_CAPACITY as u64)? as u32;
    }
    if let Some(v) = codec::field(t, atoms::node()) {
        spec.node = codec::string(v, "node")?;
    }
    if let Some(v) = codec::field(t, atoms::executor()) {
        spec.meta = codec::payload(v);
    }
    Ok(spec)
}

#[rustler::nif]
fn agent_add<'a>(env: Env<'a>, swarm_id: Term<'a>, opts: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(swarm_id);
    with_swarm(env, cell, |st, now| {
        let id = st.swarm.add_agent(spec(opts)?, now)?;
        ok(env, codec::bin(env, &id))
    })
}

/// The agent's process is running: it receives work as messages.
#[rustler::nif]
fn agent_attach<'a>(env: Env<'a>, agent_id: Term<'a>, pid: Term<'a>) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let pid = codec::any_pid(pid, "pid");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, now| {
        let (id, pid) = (id?, codec::pid_for(pid?, st.replicated(), "pid")?);
        let seq = st.swarm.agent(&id)?.seq;
        st.boxes.forget_agent(seq);
        if let Some(pid) = pid {
            st.boxes.agent_pids.insert(seq, pid);
        }
        st.swarm.attach_agent(&id, now)?;
        ok_atom(env)
    })
}

/// The agent's process `pid` ended. Ignored if the agent has since been
/// attached to a newer process; a replicated swarm's machine has decided
/// that itself (from its log), so there the agent is detached regardless.
#[rustler::nif]
fn agent_detach<'a>(env: Env<'a>, agent_id: Term<'a>, pid: Term<'a>, reason: Term<'a>) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let pid = codec::any_pid(pid, "pid");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, now| {
        let (id, reason) = (id?, codec::string(reason, "reason")?);
        let pid = codec::pid_for(pid?, st.replicated(), "pid")?;
        let seq = st.swarm.agent(&id)?.seq;
        if !st.replicated() && st.boxes.agent_pids.get(&seq) != pid.as_ref() {
            return Ok(atoms::ignored().encode(env));
        }
        st.boxes.forget_agent(seq);
        st.swarm.detach_agent(&id, &reason, now)?;
        ok_atom(env)
    })
}

/// The agent's process handed the work `work_id` to `pid`, its worker for
/// `slot`: later work for that slot goes to the worker directly. Ignored
/// unless the slot still holds that work (a cancel may have freed it).
#[rustler::nif]
fn agent_worker<'a>(
    env: Env<'a>,
    agent_id: Term<'a>,
    slot: u32,
    pid: LocalPid,
    work_id: Term<'a>,
) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, _| {
        let id = id?;
        let seq = st.swarm.agent(&id)?.seq;
        let work_id = codec::string(work_id, "work id")?;
        if !st.boxes.agent_pids.contains_key(&seq) || !st.swarm.slot_holds(&id, slot, &work_id)? {
            return Ok(atoms::ignored().encode(env));
        }
        st.boxes.set_worker(seq, slot, Some(pid));
        ok_atom(env)
    })
}

/// The worker of `slot` died: the unit it held (if any) is retried.
#[rustler::nif]
fn agent_worker_lost<'a>(
    env: Env<'a>,
    agent_id: Term<'a>,
    slot: u32,
    reason: Term<'a>,
) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, now| {
        let (id, reason) = (id?, codec::string(reason, "reason")?);
        let seq = st.swarm.agent(&id)?.seq;
        st.boxes.set_worker(seq, slot, None);
        let held = st.swarm.worker_lost(&id, slot, &reason, now)?;
        crate::task::accepted(env, held)
    })
}

#[rustler::nif]
fn agent_remove<'a>(env: Env<'a>, agent_id: Term<'a>) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, now| {
        let id = id?;
        let seq = st.swarm.agent(&id)?.seq;
        let pid = st.boxes.forget_agent(seq);
        st.swarm.remove_agent(&id, now)?;
        ok(
            env,
            pid.map(|p| p.encode(env))
                .unwrap_or_else(|| atoms::nil().encode(env)),
        )
    })
}

#[rustler::nif]
fn agent_get<'a>(env: Env<'a>, agent_id: Term<'a>) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, _| {
        let a = st.swarm.agent(&id?)?;
        ok(env, codec::agent(env, &st.swarm, a))
    })
}

/// All agents of a swarm in join order (dirty: a swarm may hold 100,000).
#[rustler::nif(schedule = "DirtyCpu")]
fn agent_list<'a>(env: Env<'a>, swarm_id: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(swarm_id);
    with_swarm(env, cell, |st, _| {
        let list: Vec<Term> = st
            .swarm
            .agents()
            .map(|a| codec::agent(env, &st.swarm, a))
            .collect();
        ok(env, list)
    })
}

/// One page of a swarm's agents in join order: `{:ok, {agents, next}}`,
/// `next` the cursor of the following page or nil. At most
/// `MAX_PAGE_SIZE` agents are encoded, so it runs on a normal scheduler.
#[rustler::nif]
fn agent_page<'a>(env: Env<'a>, swarm_id: Term<'a>, cursor: Term<'a>, limit: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(swarm_id);
    with_swarm(env, cell, |st, _| {
        let cursor = codec::opt_string(cursor, "cursor")?;
        let limit = codec::uint(limit, "limit", 1, limits::MAX_PAGE_SIZE as u64)? as usize;
        let page = st.swarm.agents_page(cursor.as_deref(), limit)?;
        let list: Vec<Term> = page
            .items
            .iter()
            .map(|a| codec::agent(env, &st.swarm, a))
            .collect();
        let next = match &page.next {
            Some(c) => codec::bin(env, c),
            None => atoms::nil().encode(env),
        };
        ok(env, (list, next))
    })
}

/// Push agents of a swarm with their process (if attached) and executor:
/// `[{agent_id, pid | nil, executor}]`, so their processes can be rebuilt.
#[rustler::nif(schedule = "DirtyCpu")]
fn agent_processes<'a>(env: Env<'a>, swarm_id: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(swarm_id);
    with_swarm(env, cell, |st, _| {
        let list: Vec<Term> = st
            .swarm
            .agents()
            .filter(|a| a.dispatch == Dispatch::Push)
            .map(|a| {
                let pid = st
                    .boxes
                    .agent_pids
                    .get(&a.seq)
                    .map(|p| p.encode(env))
                    .unwrap_or_else(|| atoms::nil().encode(env));
                (codec::bin(env, &a.id), pid, codec::term_of(env, &a.meta)).encode(env)
            })
            .collect();
        ok(env, list)
    })
}
