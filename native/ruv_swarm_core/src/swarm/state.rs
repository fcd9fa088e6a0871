//! A swarm's whole state as bytes, for Raft snapshots.
//!
//! Unlike [`Swarm::export`] (a portable, lossy snapshot: in-flight work
//! starts over, push agents wait for their process, metrics restart), this
//! keeps everything the engine decides with: running attempts and their
//! leases, timers, queue order, agent status and metrics, counters, the
//! random number state. A member that installs it, or a node that restarts
//! from it, then applies the rest of the log exactly as the member that
//! took it did. Only the outbox (effects of the command being applied,
//! empty between commands) is left out.
//!
//! The encoding is bincode of the engine's own types, behind a format
//! byte. Format 2 is format 1 (the swarm) followed by the swarm's accounts
//! (usage and budget, see `budget`), so a state saved before accounts
//! existed (format 1) still loads, with empty accounts and no budget: a
//! Raft snapshot on disk outlives the build that wrote it.

use super::Swarm;
use crate::error::{Error, Result};
use crate::ids;
use crate::seeded::SeededRng;

/// Bumped whenever the engine's types change shape.
const FORMAT: u8 = 2;
/// The swarm alone, without its accounts.
const FORMAT_WITHOUT_ACCOUNTS: u8 = 1;

impl Swarm {
    /// Seeds the swarm's random numbers: a replicated swarm's creator does,
    /// so every member and every replay draws the same ones.
    pub fn seed(&mut self, seed: u64) {
        self.rng = SeededRng::new(seed);
    }

    /// The whole state, encoded.
    pub fn save(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        // Encoding plain owned data into a Vec cannot fail.
        bincode::serialize_into(&mut out, self).expect("a swarm always encodes");
        bincode::serialize_into(&mut out, &self.accounts).expect("accounts always encode");
        out
    }

    /// A swarm from [`Swarm::save`]'s bytes.
    pub fn load(bytes: &[u8]) -> Result<Swarm> {
        let corrupt = |e: bincode::Error| Error::invalid(format!("corrupt swarm state: {e}"));
        match bytes.split_first() {
            Some((&v, mut rest)) if v == FORMAT || v == FORMAT_WITHOUT_ACCOUNTS => {
                let mut swarm: Swarm = bincode::deserialize_from(&mut rest).map_err(corrupt)?;
                if v == FORMAT {
                    swarm.accounts = bincode::deserialize_from(&mut rest).map_err(corrupt)?;
                }
                if !rest.is_empty() {
                    return Err(Error::invalid("corrupt swarm state: bytes after its end"));
                }
                ids::reserve_swarm_id(&swarm.id);
                Ok(swarm)
            }
            Some((v, _)) => Err(Error::invalid(format!(
                "swarm state of format {v}, this engine reads format {FORMAT}"
            ))),
            None => Err(Error::invalid("empty swarm state")),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::*;
    use crate::swarm::{Swarm, SwarmConfig};
    use crate::usage::{UnitUsage, Usage};

    fn busy_swarm() -> Swarm {
        let mut s = Swarm::new("swarm-00000001-1".into(), SwarmConfig::default(), 10).unwrap();
        s.seed(42);
        let spec = AgentSpec {
            dispatch: Dispatch::Push,
            ..Default::default()
        };
        for _ in 0..3 {
            let id = s.add_agent(spec.clone(), 10).unwrap();
            s.attach_agent(&id, 10).unwrap();
        }
        for i in 0..5 {
            let t = TaskSpec {
                description: format!("t{i}"),
                timeout_ms: Some(1_000),
                ..Default::default()
            };
            s.submit(t, 20).unwrap();
        }
        s.drain();
        s
    }

    #[test]
    fn a_loaded_swarm_continues_exactly_as_the_saved_one() {
        let mut a = busy_swarm();
        let mut b = Swarm::load(&a.save()).unwrap();
        assert_eq!(a.save(), b.save());
        // Time passes: attempts time out and retry with jitter drawn from
        // the random state; both must agree.
        for now in [1_500, 3_000, 10_000] {
            a.tick(now, 64);
            b.tick(now, 64);
            a.drain();
            b.drain();
        }
        assert_eq!(a.save(), b.save());
    }

    #[test]
    fn redelivery_resends_held_work_and_changes_nothing() {
        let mut s = busy_swarm();
        let held: usize = s.agents().map(|a| a.running as usize).sum();
        assert!(held > 0);
        let before = s.save();
        s.redeliver();
        let out = s.drain();
        assert_eq!(out.dispatches.len(), held);
        let mut ids: Vec<_> = out
            .dispatches
            .iter()
            .map(|d| d.work.work_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), held, "each held unit once");
        assert_eq!(s.save(), before);
    }

    #[test]
    fn bad_bytes_are_an_error() {
        assert!(Swarm::load(&[]).is_err());
        assert!(Swarm::load(&[99, 1, 2]).is_err());
        assert!(Swarm::load(&[1, 1, 2]).is_err());
        assert!(Swarm::load(&[2, 1, 2]).is_err());
    }

    /// Runs every busy swarm's unit on the agent holding it, each costing
    /// 2,500 micro-dollars and reporting a session id.
    fn spend(s: &mut Swarm, now: u64) {
        let held: Vec<(String, String)> = {
            s.redeliver();
            s.drain()
                .dispatches
                .into_iter()
                .map(|d| (d.work.work_id, d.agent_id))
                .collect()
        };
        for (w, a) in held {
            let u = UnitUsage {
                usage: Usage {
                    input_tokens: 10,
                    cost_micros: 2_500,
                    turns: 1,
                    ..Default::default()
                },
                session_id: Some(format!("session-{w}").into()),
            };
            s.complete_work_with(&w, &a, vec![1], Some(u), now).unwrap();
        }
        s.drain();
    }

    #[test]
    fn usage_and_budget_survive_save_and_load() {
        let mut a = busy_swarm();
        a.set_budget(Some(1_000_000), 30).unwrap();
        spend(&mut a, 40);
        let b = Swarm::load(&a.save()).unwrap();
        assert_eq!(a.save(), b.save());
        assert_eq!(b.usage_total().cost_micros, 3 * 2_500);
        assert_eq!(b.budget().max_cost_micros, Some(1_000_000));
        let agent = b.agents().next().unwrap().seq;
        assert!(b.agent_account(agent).session_id.is_some());
    }

    #[test]
    fn a_state_saved_before_accounts_existed_loads_without_them() {
        let a = busy_swarm();
        let mut old = vec![1u8];
        bincode::serialize_into(&mut old, &a).unwrap();
        let mut b = Swarm::load(&old).unwrap();
        assert_eq!(b.usage_total(), Usage::default());
        assert_eq!(b.budget().max_cost_micros, None);
        // And it carries on as the original would.
        let mut a = a;
        for s in [&mut a, &mut b] {
            s.tick(1_500, 64);
            s.drain();
        }
        assert_eq!(a.save(), b.save());
    }
}
