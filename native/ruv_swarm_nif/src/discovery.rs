//! Discoveries: sharing, filtered subscriptions, recent history.

use rustler::{Env, LocalPid, Term};
use ruv_swarm_core::discovery::Filter;
use ruv_swarm_core::limits;
use ruv_swarm_core::Error;
use ruv_swarm_core::Payload;

use crate::registry::{self, ok, ok_atom, with_swarm};
use crate::{atoms, codec};

fn filter(t: Term) -> ruv_swarm_core::Result<Filter> {
    codec::ensure_map(t, "discovery filters")?;
    Ok(Filter {
        kind: codec::field(t, atoms::type_())
            .map(|v| codec::string(v, "type"))
            .transpose()?,
        agent_id: codec::field(t, atoms::agent_id())
            .map(|v| codec::string(v, "agent_id"))
            .transpose()?,
        min_confidence: match codec::field(t, atoms::min_confidence()) {
            Some(v) => codec::number(v, "min_confidence")?,
            None => 0.0,
        },
    })
}

/// A discovery as `discovery_share` receives it, decoded.
struct Shared {
    kind: String,
    content: Payload,
    confidence: f64,
    tags: Vec<String>,
    agent: Option<String>,
}

/// `d` is a map: type, content, confidence, tags, agent_id (optional).
fn shared(d: Term) -> ruv_swarm_core::Result<Shared> {
    codec::ensure_map(d, "a discovery")?;
    let kind = codec::field(d, atoms::type_())
        .ok_or_else(|| Error::invalid("a discovery needs a type"))?;
    Ok(Shared {
        kind: codec::string(kind, "type")?,
        content: codec::field(d, atoms::content())
            .map(codec::payload)
            .unwrap_or_default(),
        confidence: match codec::field(d, atoms::confidence()) {
            Some(v) => codec::number(v, "confidence")?,
            None => 1.0,
        },
        tags: match codec::field(d, atoms::tags()) {
            Some(v) => codec::strings(v, "tags", limits::MAX_LIST_ITEMS)?,
            None => Vec::new(),
        },
        agent: codec::field(d, atoms::agent_id())
            .map(|v| codec::string(v, "agent_id"))
            .transpose()?,
    })
}

/// Shares a discovery; subscribers whose filter it matches get
/// `{:swarm_discovery, swarm_id, discovery}`. Decoded before the swarm is locked.
#[rustler::nif]
fn discovery_share<'a>(env: Env<'a>, swarm_id: Term<'a>, d: Term<'a>) -> Term<'a> {
    let d = shared(d);
    with_swarm(env, registry::swarm_of(swarm_id), |st, now| {
        let d = d?;
        let found = st.swarm.share_discovery(
            d.agent.as_deref(),
            &d.kind,
            d.content,
            d.confidence,
            d.tags,
            now,
        )?;
        let id = codec::bin(env, &found.id);
        if !st.boxes.discovery_subscribers.is_empty() {
            st.boxes.shared.push(found);
        }
        ok(env, id)
    })
}

#[rustler::nif]
fn discovery_subscribe<'a>(
    env: Env<'a>,
    swarm_id: Term<'a>,
    pid: LocalPid,
    f: Term<'a>,
) -> Term<'a> {
    with_swarm(env, registry::swarm_of(swarm_id), |st, _| {
        let f = filter(f)?;
        st.boxes.discovery_subscribers.retain(|(p, _)| *p != pid);
        st.boxes.discovery_subscribers.push((pid, f));
        ok_atom(env)
    })
}

#[rustler::nif]
fn discovery_recent<'a>(
    env: Env<'a>,
    swarm_id: Term<'a>,
    f: Term<'a>,
    limit: Term<'a>,
) -> Term<'a> {
    with_swarm(env, registry::swarm_of(swarm_id), |st, _| {
        let f = filter(f)?;
        let limit = codec::uint(limit, "limit", 1, limits::DEFAULT_DISCOVERY_LOG as u64)? as usize;
        let list: Vec<Term> = st
            .swarm
            .recent_discoveries(&f, limit)
            .into_iter()
            .map(|d| codec::discovery(env, d))
            .collect();
        ok(env, list)
    })
}
