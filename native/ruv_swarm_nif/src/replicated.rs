//! Replicated swarms: the engine side of a swarm whose commands come from a
//! Raft log (`SwarmService.Swarm.Machine`). Such a swarm runs on its own
//! clock, set to each command's log time, is seeded by its creator, never
//! changes because of which processes are reachable (see
//! `ruv_swarm_core::delivery`), and is saved and loaded whole for Raft
//! snapshots.

use rustler::{Binary, Encoder, Env, OwnedBinary, Term};
use ruv_swarm_core::{ids, Error, Swarm};

use crate::codec;
use crate::registry::{self, ok, ok_atom, with_swarm};

/// A fresh swarm id; the swarm itself is created by the first command of
/// its log.
#[rustler::nif]
fn new_swarm_id(env: Env) -> Term {
    codec::bin(env, &ids::new_swarm_id())
}

/// `swarm_create/5` for a replicated swarm with the given id, random seed
/// and creation time. Replaces an instance of the same id (a Raft server
/// restarted in this VM rebuilds its engine from the log).
#[rustler::nif]
#[allow(clippy::too_many_arguments)]
fn swarm_create_replicated<'a>(
    env: Env<'a>,
    id: Term<'a>,
    name: Term<'a>,
    topology: Term<'a>,
    strategy: Term<'a>,
    max_agents: Term<'a>,
    memory_quota: Term<'a>,
    seed: u64,
    now: u64,
) -> Term<'a> {
    let result = (|| {
        let id = codec::string(id, "swarm id")?;
        ruv_swarm_core::snapshot::check_swarm_id(&id)?;
        let cfg = crate::swarm::config(name, topology, strategy, max_agents, memory_quota)?;
        let mut swarm = Swarm::new(id.clone(), cfg, now)?;
        swarm.seed(seed);
        ids::reserve_swarm_id(&id);
        registry::insert_replicated(swarm, now);
        ok(env, codec::bin(env, &id))
    })();
    crate::error::reply(env, result)
}

/// The whole state of a replicated swarm, as a binary (`Swarm::save`).
#[rustler::nif(schedule = "DirtyCpu")]
fn swarm_save<'a>(env: Env<'a>, id: Term<'a>) -> Term<'a> {
    let result = registry::swarm_of(id).and_then(|cell| {
        let bytes = cell.lock().swarm.save();
        let mut bin = OwnedBinary::new(bytes.len());
        bin.as_mut_slice().copy_from_slice(&bytes);
        ok(env, bin.release(env))
    });
    crate::error::reply(env, result)
}

/// Loads a saved replicated swarm (replacing an instance of the same id),
/// its clock at `now`. Nobody listens to it yet.
#[rustler::nif(schedule = "DirtyCpu")]
fn swarm_load_replicated<'a>(env: Env<'a>, state: Binary<'a>, now: u64) -> Term<'a> {
    let result = Swarm::load(state.as_slice()).and_then(|swarm| {
        let id = swarm.id.clone();
        registry::insert_replicated(swarm, now);
        ok(env, codec::bin(env, &id))
    });
    crate::error::reply(env, result)
}

/// Sets a replicated swarm's clock to a Raft command's time (never back).
#[rustler::nif]
fn swarm_set_clock<'a>(env: Env<'a>, id: Term<'a>, now: u64) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| match st.clock {
        Some(clock) => {
            st.clock = Some(clock.max(now));
            ok_atom(env)
        }
        None => Err(Error::invalid(
            "the swarm is not replicated: it runs on the node's clock",
        )),
    })
}

/// Mutes (`false`) or unmutes a replicated swarm's messages: its machine
/// mutes them while Raft replays the log into a rebuilt engine (the work
/// it hands out then was handed out before) and unmutes them when it leads.
#[rustler::nif]
fn swarm_set_delivery<'a>(env: Env<'a>, id: Term<'a>, on: bool) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| {
        if !st.replicated() {
            return Err(Error::invalid("the swarm is not replicated"));
        }
        st.muted = !on;
        ok_atom(env)
    })
}

/// Sends each push agent the work it holds again (`Swarm::redeliver`): what
/// a new leader does once its engine has caught up with the log.
#[rustler::nif]
fn swarm_redeliver<'a>(env: Env<'a>, id: Term<'a>) -> Term<'a> {
    let cell = registry::swarm_of(id);
    with_swarm(env, cell, |st, _| {
        st.swarm.redeliver();
        ok_atom(env)
    })
}

/// `{held, node_quota, swarm_quota}`: bytes all loaded swarms hold, the
/// node's quota (checked before a replicated swarm's write enters its log)
/// and the default quota of a new swarm (written into its create command,
/// so a replay does not depend on what the default is by then).
#[rustler::nif]
fn engine_node_room(env: Env) -> Term {
    registry::node_usage().encode(env)
}
