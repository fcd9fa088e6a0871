//! Byte accounting and memory quotas.
//!
//! A swarm counts the bytes it holds for its clients in four categories
//! ([`Usage`]):
//! - `memory`: memory entries (namespace, key, encoded value, tags);
//! - `tasks`: tasks' inputs and descriptions (each unit's own input, so a
//!   fan-out that copies the input counts every copy), held until the task
//!   leaves the finished-task history;
//! - `results`: unit results, the aggregated result of a completed task and
//!   failure reasons, held until the task leaves the history;
//! - `discoveries`: the discovery log (id, type, agent, content, tags).
//!
//! Each item also counts a fixed overhead for the engine's bookkeeping
//! around it ([`ENTRY_OVERHEAD`] and friends), so many small items are not
//! free. The numbers are the payload bytes the engine keeps plus that
//! estimate: close to what the allocator holds, never a multiple of it.
//!
//! Quotas: a write that would raise what a swarm holds past its quota
//! ([`Quota::swarm_limit`]), or raise what the node holds past the node's
//! quota, is refused with [`Error::QuotaExceeded`] before anything changes.
//! Only growth is checked: rewriting an entry with a smaller value, deleting
//! and finishing are always allowed. Failure reasons are never refused (a
//! failure must be recorded; each is at most 64 KiB, one per unit and one
//! per task): they may take a swarm a little past its quota, and until room
//! is made every write that grows it is refused. A result that does not fit
//! fails its attempt with the quota's reason, so no task waits on it. The node's free room is not swarm
//! state: the host hands it in before each command ([`Quota::set_node`]);
//! a replicated host checks the node quota before a command enters the log
//! and leaves it unlimited here, so replicas stay deterministic.

use crate::error::{Error, Result};
use crate::model::ExecMode;
use crate::task::{AttemptOutcome, Task, TaskResult, UnitState};

/// What a swarm's quota is called in [`Error::QuotaExceeded`].
pub const SWARM: &str = "swarm memory";
/// What the node's quota is called in [`Error::QuotaExceeded`].
pub const NODE: &str = "node memory";

/// Bookkeeping counted per memory entry beyond its bytes.
pub const ENTRY_OVERHEAD: usize = 160;
/// Bookkeeping counted per discovery beyond its bytes.
pub const DISCOVERY_OVERHEAD: usize = 128;
/// Bookkeeping counted per task beyond its bytes: the boxed task (144
/// bytes), its slot in the task map (about 32, B-tree nodes being about
/// half full) and the boxed [`crate::task::TaskLife`] (88) it has from its
/// start (counted from the first, so a task's count does not change when
/// it starts or ends). Its id is derived, not held.
pub const TASK_OVERHEAD: usize = 264;
/// Bookkeeping counted per unit of a task beyond its bytes: the unit (80
/// bytes) and its ready-queue entry while queued (24).
pub const UNIT_OVERHEAD: usize = 104;
/// Bookkeeping counted per unit whose run state is allocated (a subtask,
/// a pipeline step, a unit with a result, failure or ended attempt): the
/// boxed [`crate::task::UnitRun`].
pub const UNIT_RUN_OVERHEAD: usize = 208;

/// Bookkeeping counted per recorded attempt beyond its reason.
pub const ATTEMPT_OVERHEAD: usize = 40;

/// Bytes a swarm holds, by category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory: usize,
    pub tasks: usize,
    pub results: usize,
    pub discoveries: usize,
}

impl Usage {
    pub fn total(&self) -> usize {
        self.memory + self.tasks + self.results + self.discoveries
    }
}

/// How much one command may add: what is left under the swarm's quota and
/// under the node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub swarm_free: u64,
    pub swarm_limit: u64,
    pub node_free: u64,
    pub node_limit: u64,
}

impl Room {
    /// No limit at all.
    pub const UNLIMITED: Room = Room {
        swarm_free: u64::MAX,
        swarm_limit: u64::MAX,
        node_free: u64::MAX,
        node_limit: u64::MAX,
    };

    /// Whether `extra` more bytes fit, naming the quota that refuses them.
    pub fn admit(&self, extra: usize) -> Result<()> {
        let extra = extra as u64;
        if extra == 0 {
            return Ok(());
        }
        if extra > self.swarm_free {
            return Err(Error::QuotaExceeded {
                what: SWARM,
                limit: self.swarm_limit,
            });
        }
        if extra > self.node_free {
            return Err(Error::QuotaExceeded {
                what: NODE,
                limit: self.node_limit,
            });
        }
        Ok(())
    }

    /// Room left once `bytes` more are taken.
    pub fn less(self, bytes: usize) -> Room {
        let b = bytes as u64;
        Room {
            swarm_free: self.swarm_free.saturating_sub(b),
            node_free: self.node_free.saturating_sub(b),
            ..self
        }
    }
}

/// A swarm's quota, and the node's room as the host last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quota {
    /// Most bytes the swarm may hold (`u64::MAX`: no limit).
    pub swarm_limit: u64,
    node_free: u64,
    node_limit: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota::new(crate::limits::DEFAULT_SWARM_MEMORY_BYTES)
    }
}

impl Quota {
    pub fn new(swarm_limit: u64) -> Quota {
        Quota {
            swarm_limit,
            node_free: u64::MAX,
            node_limit: u64::MAX,
        }
    }

    /// The host's word on the node: `free` bytes left under its quota of
    /// `limit`. Until it is given, the node sets no limit.
    pub fn set_node(&mut self, free: u64, limit: u64) {
        self.node_free = free;
        self.node_limit = limit;
    }

    pub fn node_limit(&self) -> u64 {
        self.node_limit
    }

    /// The room left to a swarm that holds `held` bytes.
    pub fn room(&self, held: usize) -> Room {
        Room {
            swarm_free: self.swarm_limit.saturating_sub(held as u64),
            swarm_limit: self.swarm_limit,
            node_free: self.node_free,
            node_limit: self.node_limit,
        }
    }
}

/// The bytes one task holds: (inputs, description and capabilities;
/// results, failure reasons and the record of ended attempts).
pub fn task_bytes(t: &Task) -> (usize, usize) {
    let names = |caps: &[String]| caps.iter().map(String::len).sum::<usize>();
    let mut inputs = TASK_OVERHEAD + t.description.len() + names(&t.capabilities);
    let mut results = t.error().map_or(0, str::len);
    for u in &t.units {
        let run = u.run();
        inputs += UNIT_OVERHEAD
            + if u.has_run() { UNIT_RUN_OVERHEAD } else { 0 }
            + run.name.len()
            + u.input.as_ref().map_or(0, Vec::len)
            + names(&run.capabilities);
        results += u.result().map_or(0, Vec::len) + u.error().map_or(0, str::len);
        results += u
            .history()
            .iter()
            .map(|a| ATTEMPT_OVERHEAD + attempt_reason(&a.outcome).len())
            .sum::<usize>();
    }
    results += t.result().map_or(0, result_bytes);
    (inputs, results)
}

/// What completing `unit` of `t` with a result of `len` bytes adds: the
/// result, and when it completes the task, the aggregate that copies the
/// results it gathers.
pub fn result_growth(t: &Task, unit: u32, len: usize) -> usize {
    let replaced = t.units[unit as usize].result().map_or(0, Vec::len);
    // The result, and the record of the attempt that ends with it.
    let mut growth = len.saturating_sub(replaced) + ATTEMPT_OVERHEAD;
    if !t.units[unit as usize].has_run() {
        // The result is held in the unit's run state, allocated now.
        growth += UNIT_RUN_OVERHEAD;
    }
    let hedged = t.is_hedged();
    if hedged || t.unfinished == 1 {
        // Attempts still running are cancelled with the task: each gets a
        // record (and its run state, if it had none).
        growth += t
            .units
            .iter()
            .enumerate()
            .filter(|(i, u)| *i != unit as usize && u.state == UnitState::Running)
            .map(|(_, u)| ATTEMPT_OVERHEAD + if u.has_run() { 0 } else { UNIT_RUN_OVERHEAD })
            .sum::<usize>();
        let others = |names: bool| -> usize {
            t.units
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != unit as usize)
                .map(|(_, u)| {
                    u.result().map_or(0, Vec::len) + if names { u.run().name.len() } else { 0 }
                })
                .sum()
        };
        growth += if t.has_subtasks {
            len + t.units[unit as usize].run().name.len() + others(true)
        } else if hedged || t.units.len() == 1 || t.mode != ExecMode::Parallel {
            len
        } else {
            len + others(false)
        };
    }
    growth
}

fn attempt_reason(o: &AttemptOutcome) -> &str {
    match o {
        AttemptOutcome::Failed(why) | AttemptOutcome::TimedOut(why) => why,
        AttemptOutcome::Completed | AttemptOutcome::Cancelled => "",
    }
}

/// Bytes of an aggregated result.
pub fn result_bytes(r: &TaskResult) -> usize {
    match r {
        TaskResult::Single(p) => p.len(),
        TaskResult::List(ps) => ps.iter().map(Vec::len).sum(),
        TaskResult::Named(ps) => ps.iter().map(|(n, p)| n.len() + p.len()).sum(),
    }
}

/// The bytes every held task takes. Each task keeps what it was last
/// measured at ([`Task::measured`]), so a change to one task is measured
/// against what it held before.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    inputs: usize,
    results: usize,
}

impl Ledger {
    /// Measures `t` again after a change (or when it first appears).
    pub fn update(&mut self, t: &mut Task) {
        let now = task_bytes(t);
        let before = std::mem::replace(&mut t.measured, now);
        self.inputs = (self.inputs + now.0).saturating_sub(before.0);
        self.results = (self.results + now.1).saturating_sub(before.1);
    }

    /// `t` is gone.
    pub fn forget(&mut self, t: &Task) {
        let (i, r) = t.measured;
        self.inputs = self.inputs.saturating_sub(i);
        self.results = self.results.saturating_sub(r);
    }

    /// Bytes of inputs and descriptions.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Bytes of results and failure reasons.
    pub fn results(&self) -> usize {
        self.results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskSpec;

    /// The overheads are what the layout measures (64-bit targets): a
    /// change to the layout fails here until the constants follow it, so
    /// the accounting stays honest and a queued task stays small.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn overheads_match_the_layout() {
        use crate::scheduler::QueueEntry;
        use crate::task::{TaskLife, Unit, UnitRun};
        use std::mem::size_of;
        assert_eq!(size_of::<Task>(), 144);
        assert_eq!(size_of::<Unit>(), 80);
        assert_eq!(size_of::<UnitRun>(), 208);
        assert_eq!(size_of::<TaskLife>(), 88);
        assert_eq!(size_of::<QueueEntry>(), 24);
        // The task map's slot: key and box, nodes about half full.
        assert_eq!(
            TASK_OVERHEAD,
            size_of::<Task>() + 2 * 2 * size_of::<u64>() + size_of::<TaskLife>()
        );
        assert_eq!(UNIT_OVERHEAD, size_of::<Unit>() + size_of::<QueueEntry>());
        assert_eq!(UNIT_RUN_OVERHEAD, size_of::<UnitRun>());
    }

    #[test]
    fn room_names_the_quota_that_refuses() {
        let mut q = Quota::new(100);
        assert_eq!(q.room(40).admit(60), Ok(()));
        assert_eq!(
            q.room(40).admit(61),
            Err(Error::QuotaExceeded {
                what: SWARM,
                limit: 100
            })
        );
        q.set_node(10, 5000);
        assert_eq!(
            q.room(40).admit(11),
            Err(Error::QuotaExceeded {
                what: NODE,
                limit: 5000
            })
        );
        // Nothing added is always fine, even over quota.
        assert_eq!(q.room(500).admit(0), Ok(()));
        assert!(q.room(0).less(10).admit(1).is_err());
    }

    #[test]
    fn ledger_measures_changes_and_forgets() {
        let spec = TaskSpec {
            description: "abcd".into(),
            input: vec![0; 1000],
            max_agents: 3,
            mode: crate::model::ExecMode::Parallel,
            ..Default::default()
        };
        let mut t = Task::new(1, spec, 3, 0);
        let mut l = Ledger::default();
        l.update(&mut t);
        // Each of the three units holds its own copy of the input (their
        // names are derived, not held).
        assert_eq!(l.inputs(), TASK_OVERHEAD + 4 + 3 * (UNIT_OVERHEAD + 1000));
        assert_eq!(l.results(), 0);
        t.units[0].run_mut().result = Some(vec![1; 50]);
        l.update(&mut t);
        assert_eq!(l.results(), 50);
        t.units[0].run_mut().result = Some(vec![1; 20]);
        l.update(&mut t);
        assert_eq!(l.results(), 20);
        l.forget(&t);
        assert_eq!((l.inputs(), l.results()), (0, 0));
    }
}
