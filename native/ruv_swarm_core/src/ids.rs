//! Identifiers that are unique under any concurrency.
//!
//! A swarm id is `swarm-<salt>-<n>`: `salt` is 32 random bits drawn once per
//! engine instance (so two nodes practically never share a prefix) and `n`
//! comes from a process-wide atomic counter, so no two swarms of one engine
//! can ever share an id, whatever the clock does. Agents, tasks and
//! discoveries are numbered by their swarm (under its lock) and carry the
//! swarm id as prefix: `swarm-1f2e3d4c-7.task-42`. The prefix lets any id be
//! routed to its swarm without a global index.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static COUNTER: AtomicU64 = AtomicU64::new(1);
static SALT: OnceLock<u32> = OnceLock::new();

fn salt() -> u32 {
    *SALT.get_or_init(rand::random::<u32>)
}

/// A new swarm id, distinct from every other one this engine has made.
pub fn new_swarm_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("swarm-{:08x}-{}", salt(), n)
}

/// Keeps this engine from ever making `id` itself: when an imported swarm
/// id carries this engine's salt, the counter moves past its number.
pub fn reserve_swarm_id(id: &str) {
    let Some(rest) = id.strip_prefix("swarm-") else {
        return;
    };
    let Some((salt_hex, n)) = rest.split_once('-') else {
        return;
    };
    if salt_hex != format!("{:08x}", salt()) {
        return;
    }
    if let Ok(n) = n.parse::<u64>() {
        COUNTER.fetch_max(n.saturating_add(1), Ordering::Relaxed);
    }
}

/// What kind of object a child id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Agent,
    Task,
    Discovery,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Task => "task",
            Kind::Discovery => "disc",
        }
    }
}

/// The id of the `seq`th child of `kind` in `swarm_id`.
pub fn child_id(swarm_id: &str, kind: Kind, seq: u64) -> String {
    format!("{swarm_id}.{}-{seq}", kind.prefix())
}

/// Splits a child id into its swarm id and sequence number.
pub fn parse_child_id(id: &str, kind: Kind) -> Option<(&str, u64)> {
    let (swarm, local) = id.rsplit_once('.')?;
    let seq = local.strip_prefix(kind.prefix())?.strip_prefix('-')?;
    if !swarm.starts_with("swarm-") || seq.is_empty() || seq.len() > 20 {
        return None;
    }
    if !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((swarm, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn swarm_ids_are_unique_across_threads() {
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| new_swarm_id()).collect::<Vec<_>>()))
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id), "duplicate id");
            }
        }
        assert_eq!(all.len(), 80_000);
    }

    #[test]
    fn reserved_ids_are_never_made() {
        let s = new_swarm_id();
        let (prefix, n) = s.rsplit_once('-').unwrap();
        let n: u64 = n.parse().unwrap();
        let ahead = format!("{prefix}-{}", n + 1000);
        reserve_swarm_id(&ahead);
        let next = new_swarm_id();
        let m: u64 = next.rsplit_once('-').unwrap().1.parse().unwrap();
        assert!(m > n + 1000, "{next} after reserving {ahead}");
        // Ids of other engines (another salt) and junk change nothing.
        reserve_swarm_id("swarm-zz-99999999");
        reserve_swarm_id("not-a-swarm");
    }

    #[test]
    fn child_ids_round_trip() {
        let s = new_swarm_id();
        let t = child_id(&s, Kind::Task, 42);
        assert_eq!(parse_child_id(&t, Kind::Task), Some((s.as_str(), 42)));
        assert_eq!(parse_child_id(&t, Kind::Agent), None);
        assert_eq!(parse_child_id("nonsense", Kind::Task), None);
        assert_eq!(parse_child_id("swarm-x.task-", Kind::Task), None);
        assert_eq!(parse_child_id("swarm-x.task-+1", Kind::Task), None);
        assert_eq!(parse_child_id("x.task-1", Kind::Task), None);
    }
}
