//! What the swarm holds, by category, and the room its quota leaves (see
//! [`crate::quota`]). Commands that add bytes ask [`Swarm::room`] first;
//! the task ledger is measured again wherever a task changes.

use super::*;
use crate::quota::{Room, Usage};

/// A memory quota must be at least [`limits::MIN_MEMORY_QUOTA_BYTES`].
pub(super) fn check_quota(bytes: u64) -> Result<()> {
    if bytes < limits::MIN_MEMORY_QUOTA_BYTES {
        return Err(Error::invalid(format!(
            "memory_quota must be at least {} bytes",
            limits::MIN_MEMORY_QUOTA_BYTES
        )));
    }
    Ok(())
}

impl Swarm {
    /// Bytes the swarm holds, by category.
    pub fn usage(&self) -> Usage {
        Usage {
            memory: self.memory.bytes(),
            tasks: self.ledger.inputs(),
            results: self.ledger.results(),
            discoveries: self.discoveries.bytes(),
        }
    }

    /// The swarm's memory quota (bytes).
    pub fn memory_quota(&self) -> u64 {
        self.quota.swarm_limit
    }

    /// The host's word on the node before a command: `free` bytes left
    /// under the node's quota of `limit` (`u64::MAX`: no node limit).
    pub fn set_node_room(&mut self, free: u64, limit: u64) {
        self.quota.set_node(free, limit);
    }

    /// What a command may add now.
    pub(super) fn room(&self) -> Room {
        self.quota.room(self.usage().total())
    }

    /// Task `seq` changed (or appeared): its bytes are measured again.
    pub(super) fn remeasure(&mut self, seq: u64) {
        if let Some(t) = self.tasks.get_mut(&seq) {
            self.ledger.update(t);
        }
    }

    /// Measures every task from scratch (after an import).
    pub(super) fn recount_tasks(&mut self) {
        self.ledger = Ledger::default();
        for t in self.tasks.values_mut() {
            t.measured = (0, 0);
            self.ledger.update(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::StoreRequest;

    fn swarm(quota: u64) -> Swarm {
        let cfg = SwarmConfig {
            memory_quota: quota,
            ..Default::default()
        };
        Swarm::new("swarm-t".into(), cfg, 0).unwrap()
    }

    fn store<'a>(key: &'a str, value: Vec<u8>) -> StoreRequest<'a> {
        StoreRequest {
            namespace: "ns",
            key,
            value,
            text_at: None,
            tags: vec![],
            ttl_ms: None,
            if_version: None,
        }
    }

    fn quota_error(r: Result<impl std::fmt::Debug>) -> (&'static str, u64) {
        match r {
            Err(Error::QuotaExceeded { what, limit }) => (what, limit),
            other => panic!("expected a quota error, got {other:?}"),
        }
    }

    fn pull_agent(s: &mut Swarm) -> String {
        let spec = AgentSpec {
            agent_type: "coder".into(),
            dispatch: Dispatch::Pull,
            ..Default::default()
        };
        s.add_agent(spec, 0).unwrap()
    }

    #[test]
    fn every_category_counts_against_one_quota() {
        let mut s = swarm(20_000);
        s.memory_store(store("a", vec![1; 5_000]), 0).unwrap();
        let spec = TaskSpec {
            description: "d".into(),
            input: vec![2; 5_000],
            ..Default::default()
        };
        s.submit(spec.clone(), 0).unwrap();
        s.share_discovery(None, "bug", vec![3; 5_000], 1.0, vec![], 0)
            .unwrap();
        let u = s.usage();
        assert!(u.memory >= 5_000 && u.tasks >= 5_000 && u.discoveries >= 5_000);
        assert_eq!(u.results, 0);
        // Each category is refused once the total is near the quota.
        let before = s.usage();
        assert_eq!(
            quota_error(s.memory_store(store("b", vec![1; 5_000]), 1)),
            (quotas::SWARM, 20_000)
        );
        assert_eq!(quota_error(s.submit(spec, 1)), (quotas::SWARM, 20_000));
        assert_eq!(
            quota_error(s.share_discovery(None, "bug", vec![3; 5_000], 1.0, vec![], 1)),
            (quotas::SWARM, 20_000)
        );
        assert_eq!(s.usage(), before);
        assert_eq!(s.status().tasks[TaskStatus::Pending as usize], 1);
        // The refused submit burnt no task id.
        assert_eq!(s.export_header().next_ids.task, 2);
    }

    #[test]
    fn the_node_room_is_checked_too() {
        let mut s = swarm(1 << 20);
        s.set_node_room(1_000, 50_000);
        assert_eq!(
            quota_error(s.memory_store(store("a", vec![1; 2_000]), 0)),
            (quotas::NODE, 50_000)
        );
        s.set_node_room(u64::MAX, u64::MAX);
        s.memory_store(store("a", vec![1; 2_000]), 0).unwrap();
    }

    #[test]
    fn task_bytes_are_released_when_tasks_leave_the_history() {
        let cfg = SwarmConfig {
            task_history: 2,
            ..Default::default()
        };
        let mut s = Swarm::new("swarm-h".into(), cfg, 0).unwrap();
        let agent = pull_agent(&mut s);
        let mut ids = Vec::new();
        for i in 0..3u8 {
            let spec = TaskSpec {
                input: vec![i; 10_000],
                ..Default::default()
            };
            ids.push(s.submit(spec, 0).unwrap());
        }
        let pending = s.usage().tasks;
        assert!(pending >= 30_000, "{pending}");
        for _ in 0..3 {
            let w = s.claim(&agent, 1_000, 1).unwrap().unwrap();
            s.complete_work(&w.work_id, &agent, vec![9; 1_000], 2)
                .unwrap();
        }
        // Two finished tasks stay in the history with their results
        // (unit result and aggregate), the oldest one is gone.
        let u = s.usage();
        assert!(s.task(&ids[0]).is_err());
        // (Each finished one holds its unit's run state too.)
        assert_eq!(u.tasks, pending / 3 * 2 + 2 * quotas::UNIT_RUN_OVERHEAD);
        // (And the record of each one's ended attempt.)
        assert_eq!(u.results, 2 * (2 * 1_000 + quotas::ATTEMPT_OVERHEAD));
        // Failed attempts' reasons are results too; they go with the task.
        let spec = TaskSpec {
            input: vec![1; 10],
            ..Default::default()
        };
        s.submit(spec, 3).unwrap();
        let w = s.claim(&agent, 1_000, 3).unwrap().unwrap();
        s.fail_work(&w.work_id, &agent, &"r".repeat(500), false, 4)
            .unwrap();
        assert!(s.usage().results > 2 * (2 * 1_000 + quotas::ATTEMPT_OVERHEAD) + 1_000);
    }

    #[test]
    fn a_result_past_the_quota_fails_the_attempt_with_the_reason() {
        let mut s = swarm(limits::MIN_MEMORY_QUOTA_BYTES * 4);
        let agent = pull_agent(&mut s);
        let spec = TaskSpec {
            input: vec![1; 10],
            retry: RetryPolicy {
                max_attempts: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let id = s.submit(spec, 0).unwrap();
        let w = s.claim(&agent, 1_000, 0).unwrap().unwrap();
        let big = vec![0; limits::MIN_MEMORY_QUOTA_BYTES as usize * 4];
        let err = s.complete_work(&w.work_id, &agent, big, 1);
        assert_eq!(quota_error(err), (quotas::SWARM, 16_384));
        let t = s.task(&id).unwrap();
        assert_eq!(t.status, TaskStatus::Failed);
        let error = t.error().unwrap();
        assert!(
            error.contains("result rejected: swarm memory quota exceeded"),
            "{error}"
        );
        assert!(t.result().is_none());
        // A report after that changes nothing.
        assert_eq!(s.complete_work(&w.work_id, &agent, vec![1], 2), Ok(false));
    }

    #[test]
    fn an_import_restores_the_accounting_and_the_quota() {
        let mut s = swarm(1 << 20);
        let agent = pull_agent(&mut s);
        s.memory_store(store("a", vec![1; 3_000]), 0).unwrap();
        s.share_discovery(None, "bug", vec![3; 700], 1.0, vec![], 0)
            .unwrap();
        for i in 0..2 {
            let spec = TaskSpec {
                input: vec![i; 2_000],
                ..Default::default()
            };
            s.submit(spec, 0).unwrap();
        }
        let w = s.claim(&agent, 1_000, 1).unwrap().unwrap();
        s.complete_work(&w.work_id, &agent, vec![9; 400], 2)
            .unwrap();
        let copy = Swarm::import(s.export(3), 3).unwrap();
        // All but the record of the ended attempt, which snapshots leave out.
        let kept = Usage {
            results: s.usage().results - quotas::ATTEMPT_OVERHEAD,
            ..s.usage()
        };
        assert_eq!(copy.usage(), kept);
        assert_eq!(copy.memory_quota(), 1 << 20);
    }

    #[test]
    fn a_quota_below_the_minimum_is_refused() {
        let cfg = SwarmConfig {
            memory_quota: 10,
            ..Default::default()
        };
        assert!(Swarm::new("swarm-q".into(), cfg, 0).is_err());
    }

    proptest::proptest! {
        /// Whatever commands run, the counts kept along the way equal the
        /// bytes measured from scratch.
        #[test]
        fn kept_counts_equal_a_recount(
            ops in proptest::collection::vec((0u8..7, 0usize..3_000), 1..80)
        ) {
            let cfg = SwarmConfig {
                task_history: 3,
                discovery_log: 4,
                memory_quota: 60_000,
                ..Default::default()
            };
            let mut s = Swarm::new("swarm-p".into(), cfg, 0).unwrap();
            let agent = pull_agent(&mut s);
            let mut held = Vec::new();
            for (i, (op, n)) in ops.into_iter().enumerate() {
                let now = i as u64;
                let key = format!("k{}", n % 5);
                let before = s.usage().total();
                let r = match op {
                    0 => s.memory_store(store(&key, vec![1; n]), now).map(|_| ()),
                    1 => s.memory_delete("ns", &key, now),
                    2 => s
                        .submit(
                            TaskSpec {
                                input: vec![2; n],
                                max_agents: 1 + (n % 3) as u32,
                                mode: ExecMode::Parallel,
                                ..Default::default()
                            },
                            now,
                        )
                        .map(|_| ()),
                    3 => match s.claim(&agent, 1_000, now) {
                        Ok(Some(w)) => {
                            held.push(w.work_id);
                            Ok(())
                        }
                        _ => Ok(()),
                    },
                    4 => match held.pop() {
                        Some(w) => s.complete_work(&w, &agent, vec![3; n * 4], now).map(|_| ()),
                        None => Ok(()),
                    },
                    5 => match held.pop() {
                        Some(w) => s.fail_work(&w, &agent, &"e".repeat(n), false, now).map(|_| ()),
                        None => Ok(()),
                    },
                    _ => s
                        .share_discovery(None, "x", vec![4; n], 1.0, vec![], now)
                        .map(|_| ()),
                };
                // Failure reasons are never refused, so the total may pass
                // the quota; but nothing that grew was accepted past it.
                let after = s.usage().total();
                if r.is_ok() && after > before && op != 5 {
                    proptest::prop_assert!(after <= 60_000, "op {op}: {before} -> {after}");
                }
            }
            let kept = s.usage();
            s.recount_tasks();
            let log: usize = s
                .recent_discoveries(&discovery::Filter::default(), usize::MAX)
                .iter()
                .map(|d| d.bytes())
                .sum();
            proptest::prop_assert_eq!(kept, s.usage());
            proptest::prop_assert_eq!(kept.discoveries, log);
        }
    }
}
