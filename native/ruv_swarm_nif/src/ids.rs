//! Ids parsed in one place: `parse_id/1` tells what an id names, built on
//! `ruv_swarm_core::ids`, so the Elixir side never splits ids itself.
//!
//! * `swarm-<salt>-<n>` — a swarm;
//! * `<swarm>.agent-<seq>`, `<swarm>.task-<seq>`, `<swarm>.disc-<seq>` —
//!   an agent, a task, a discovery;
//! * `<task id>/<unit>/<attempt>` — a unit of work of a task.

use rustler::{Encoder, Env, Term};
use ruv_swarm_core::ids::{parse_child_id, Kind};

use crate::{atoms, codec};

/// The longest id looked at: anything longer is not an id the engine made.
const MAX_ID_BYTES: usize = 512;

#[rustler::nif]
fn parse_id<'a>(env: Env<'a>, id: Term<'a>) -> Term<'a> {
    let parsed = id
        .decode::<&str>()
        .ok()
        .filter(|s| s.len() <= MAX_ID_BYTES)
        .and_then(|s| parse(env, s));
    match parsed {
        Some(t) => (atoms::ok(), t).encode(env),
        None => (
            atoms::error(),
            (
                atoms::invalid_argument(),
                "not an id of a swarm, agent, task, discovery or unit of work",
            ),
        )
            .encode(env),
    }
}

fn parse<'a>(env: Env<'a>, id: &str) -> Option<Term<'a>> {
    let nil = atoms::nil().encode(env);
    if let Some((task, unit, attempt)) = split_work(id) {
        let (swarm, seq) = parse_child_id(task, Kind::Task)?;
        return Some(record(
            env,
            atoms::work(),
            swarm,
            seq.encode(env),
            (task, unit.encode(env), attempt.encode(env)),
        ));
    }
    for (kind, atom) in [
        (Kind::Agent, atoms::agent()),
        (Kind::Task, atoms::task()),
        (Kind::Discovery, atoms::discovery()),
    ] {
        if let Some((swarm, seq)) = parse_child_id(id, kind) {
            return Some(record(env, atom, swarm, seq.encode(env), ("", nil, nil)));
        }
    }
    is_swarm_id(id).then(|| record(env, atoms::swarm(), id, nil, ("", nil, nil)))
}

/// `<task id>/<unit>/<attempt>` with decimal unit and attempt.
fn split_work(id: &str) -> Option<(&str, u32, u32)> {
    let mut parts = id.rsplitn(3, '/');
    let attempt = number(parts.next()?)?;
    let unit = number(parts.next()?)?;
    Some((parts.next()?, unit, attempt))
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `swarm-<hex salt>-<n>`.
fn is_swarm_id(id: &str) -> bool {
    let Some((salt, n)) = id.strip_prefix("swarm-").and_then(|r| r.split_once('-')) else {
        return false;
    };
    !salt.is_empty() && salt.bytes().all(|b| b.is_ascii_hexdigit()) && number_u64(n)
}

fn number_u64(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok()
}

fn record<'a>(
    env: Env<'a>,
    kind: rustler::Atom,
    swarm: &str,
    seq: Term<'a>,
    (task, unit, attempt): (&str, Term<'a>, Term<'a>),
) -> Term<'a> {
    let task_id = if task.is_empty() {
        atoms::nil().encode(env)
    } else {
        codec::bin(env, task)
    };
    codec::map(
        env,
        [
            (atoms::kind(), kind.encode(env)),
            (atoms::swarm_id(), codec::bin(env, swarm)),
            (atoms::seq(), seq),
            (atoms::task_id(), task_id),
            (atoms::unit(), unit),
            (atoms::attempt(), attempt),
        ],
    )
}
