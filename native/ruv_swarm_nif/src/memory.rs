//! Swarm memory: store, get, delete, search.

use rustler::{Env, Term};
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
        // Text values are searchable by content.
        let text = codec::string(value, "value").ok();
        let req = StoreRequest {
            namespace: &namespace,
            key: &key,
            value: codec::payload(value),
            text,
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
