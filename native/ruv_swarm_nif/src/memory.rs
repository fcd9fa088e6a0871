//! Swarm memory: store, get, delete, search; and what the engine holds,
//! with the quotas that bound it.

use rustler::{Binary, Encoder, Env, Term};
use ruv_swarm_core::limits;
use ruv_swarm_core::memory::{Query, StoreRequest};

use crate::registry::{self, ok, ok_atom, with_swarm};
use crate::{atoms, codec};

/// `opts` is a map: namespace, tags, ttl_ms, if_version (all optional).
#[rustler::nif]
fn memory_store<'a>(
    env: Env<'a>,
    swarm_id: Term<'a>,
    key: Term<'a>,
    value: Term<'a>,
    opts: Term<'a>,
) -> Term<'a> {
    with_swarm(env, registry::swarm_of(swarm_id), |st, now| {
        codec::ensure_map(opts, "memory options")?;
        let key = codec::string(key, "key")?;
        let namespace = match codec::field(opts, atoms::namespace()) {
            Some(v) => codec::string(v, "namespace")?,
            None => "default".to_owned(),
        };
        let tags = match codec::field(opts, atoms::tags()) {
            Some(v) => codec::strings(v, "tags", limits::MAX_LIST_ITEMS)?,
            None => Vec::new(),
        };
        let ttl_ms = match codec::field(opts, atoms::ttl_ms()) {
            Some(v) => Some(codec::uint(v, "ttl_ms", 1, limits::MAX_TIMEOUT_MS)?),
            None => None,
        };
        let if_version = match codec::field(opts, atoms::if_version()) {
            Some(v) => Some(codec::uint(v, "if_version", 0, u64::MAX >> 1)?),
            None => None,
        };
        let payload = codec::payload(value);
        let req = StoreRequest {
            namespace: &namespace,
            key: &key,
            text_at: text_at(value, &payload),
            value: payload,
            tags,
            ttl_ms,
            if_version,
        };
        let version = st.swarm.memory_store(req, now)?;
        ok(env, version)
    })
}

fn namespace_of(opts: Term) -> ruv_swarm_core::Result<String> {
    codec::ensure_map(opts, "memory options")?;
    match codec::field(opts, atoms::namespace()) {
        Some(v) => codec::string(v, "namespace"),
        None => Ok("default".to_owned()),
    }
}

#[rustler::nif]
fn memory_get<'a>(env: Env<'a>, swarm_id: Term<'a>, key: Term<'a>, opts: Term<'a>) -> Term<'a> {
    with_swarm(env, registry::swarm_of(swarm_id), |st, now| {
        let (ns, key) = (namespace_of(opts)?, codec::string(key, "key")?);
        let e = st.swarm.memory_get(&ns, &key, now)?;
        ok(env, codec::entry(env, &ns, &key, e))
    })
}

#[rustler::nif]
fn memory_delete<'a>(env: Env<'a>, swarm_id: Term<'a>, key: Term<'a>, opts: Term<'a>) -> Term<'a> {
    with_swarm(env, registry::swarm_of(swarm_id), |st, now| {
        let (ns, key) = (namespace_of(opts)?, codec::string(key, "key")?);
        st.swarm.memory_delete(&ns, &key, now)?;
        ok_atom(env)
    })
}

/// `query` is a map: namespace, prefix, tags, text, limit (all optional).
/// Dirty: a search may walk a million entries.
#[rustler::nif(schedule = "DirtyCpu")]
fn memory_search<'a>(env: Env<'a>, swarm_id: Term<'a>, query: Term<'a>) -> Term<'a> {
    with_swarm(env, registry::swarm_of(swarm_id), |st, now| {
        codec::ensure_map(query, "a memory query")?;
        let opt = |k, what| {
            codec::field(query, k)
                .map(|v| codec::string(v, what))
                .transpose()
        };
        let q = Query {
            namespace: opt(atoms::namespace(), "namespace")?,
            prefix: opt(atoms::prefix(), "prefix")?,
            text: opt(atoms::text(), "text")?,
            tags: match codec::field(query, atoms::tags()) {
                Some(v) => codec::strings(v, "tags", limits::MAX_LIST_ITEMS)?,
                None => Vec::new(),
            },
            limit: match codec::field(query, atoms::limit()) {
                Some(v) => codec::uint(v, "limit", 1, limits::MAX_SEARCH_RESULTS as u64)? as usize,
                None => 100,
            },
        };
        let list: Vec<Term> = st
            .swarm
            .memory_search(&q, now)
            .into_iter()
            .map(|(ns, key, e)| codec::entry(env, ns, key, e))
            .collect();
        ok(env, list)
    })
}

/// Where a text value's text starts in its encoding (`payload`): a binary
/// that is valid UTF-8 is searchable by content, and its encoding ends with
/// its bytes, so the text is read from there, never copied.
pub fn text_at(value: Term, payload: &[u8]) -> Option<usize> {
    let bin = Binary::from_term(value).ok()?;
    std::str::from_utf8(bin.as_slice()).ok()?;
    let at = payload.len().checked_sub(bin.len())?;
    (payload[at..] == *bin.as_slice()).then_some(at)
}

/// Largest quota accepted (bytes): far past any machine, and an integer
/// both sides read exactly.
const MAX_QUOTA: u64 = u64::MAX >> 1;

/// Sets the default memory quota of swarms created from now on and the
/// node's quota over all swarms (bytes). Swarms already loaded keep their
/// own quota; the node's applies to the next write of any swarm.
#[rustler::nif]
fn engine_set_quotas<'a>(env: Env<'a>, swarm: Term<'a>, node: Term<'a>) -> Term<'a> {
    let result = (|| {
        let min = limits::MIN_MEMORY_QUOTA_BYTES;
        let swarm = codec::uint(swarm, "swarm memory quota", min, MAX_QUOTA)?;
        let node = codec::uint(node, "node memory quota", min, MAX_QUOTA)?;
        registry::set_quotas(swarm, node);
        tracing::info!(swarm, node, "memory quotas set");
        ok_atom(env)
    })();
    crate::error::reply(env, result)
}

/// What the engine holds for its clients: `%{held_bytes,
/// node_memory_quota, swarm_memory_quota, swarms: [%{id, memory_quota,
/// memory_entries, memory_bytes, task_bytes, result_bytes,
/// discovery_bytes, held_bytes}]}`. Dirty: it visits every swarm.
#[rustler::nif(schedule = "DirtyCpu")]
fn engine_usage(env: Env) -> Term {
    let swarms: Vec<Term> = registry::all()
        .iter()
        .map(|cell| {
            let st = cell.lock();
            // The node's total then agrees with the swarms listed.
            registry::settle(cell, &st);
            let s = &st.swarm;
            let u = s.usage();
            codec::map(
                env,
                [
                    (atoms::id(), codec::bin(env, &s.id)),
                    (atoms::memory_quota(), s.memory_quota().encode(env)),
                    (
                        atoms::memory_entries(),
                        (s.status().memory_entries as u64).encode(env),
                    ),
                    (atoms::memory_bytes(), (u.memory as u64).encode(env)),
                    (atoms::task_bytes(), (u.tasks as u64).encode(env)),
                    (atoms::result_bytes(), (u.results as u64).encode(env)),
                    (atoms::discovery_bytes(), (u.discoveries as u64).encode(env)),
                    (atoms::held_bytes(), (u.total() as u64).encode(env)),
                ],
            )
        })
        .collect();
    let (held, node_quota, swarm_quota) = registry::node_usage();
    codec::map(
        env,
        [
            (atoms::held_bytes(), held.encode(env)),
            (atoms::node_memory_quota(), node_quota.encode(env)),
            (atoms::swarm_memory_quota(), swarm_quota.encode(env)),
            (atoms::swarms(), swarms.encode(env)),
        ],
    )
}
