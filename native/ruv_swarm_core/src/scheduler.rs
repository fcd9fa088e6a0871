//! Ready queues and timers.
//!
//! Ready units wait in one queue per distinct capability set, each split by
//! priority and FIFO within a priority. A free agent looks only at the
//! queues whose capability set it covers, so taking the next unit costs
//! O(distinct capability sets), not O(queued units). Entries are removed
//! lazily: an entry whose unit has moved on is dropped when met, at most
//! [`STALE_BUDGET`] per pop, so a pop after a million cancellations does not
//! sweep them all at once (the queue reports it is `dirty` and the swarm's
//! timer tick finishes the sweep in bounded steps).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::model::Priority;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueEntry {
    /// Global readiness order (FIFO within a priority).
    pub order: u64,
    pub task: u64,
    pub unit: u32,
    /// The unit's attempt count when queued; a mismatch means stale.
    pub attempt: u32,
}

/// Most stale entries one pop drops.
pub const STALE_BUDGET: usize = 256;

/// Entries per segment of a [`SegQueue`].
const SEGMENT: usize = 4096;

/// A FIFO made of bounded segments: growing it never copies more than one
/// segment, so a push stays cheap at a million entries.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SegQueue {
    segs: VecDeque<VecDeque<QueueEntry>>,
}

impl SegQueue {
    fn push_back(&mut self, e: QueueEntry) {
        match self.segs.back_mut() {
            Some(seg) if seg.len() < SEGMENT => seg.push_back(e),
            _ => self.segs.push_back(VecDeque::from([e])),
        }
    }

    /// The `i`th oldest entry, across segments.
    fn get(&self, mut i: usize) -> Option<&QueueEntry> {
        for seg in &self.segs {
            match seg.get(i) {
                Some(e) => return Some(e),
                None => i -= seg.len(),
            }
        }
        None
    }

    /// Takes out the `i`th oldest entry; segments left empty are dropped.
    fn remove(&mut self, mut i: usize) -> Option<QueueEntry> {
        let s = self.segs.iter().position(|seg| {
            let here = i < seg.len();
            if !here {
                i -= seg.len();
            }
            here
        })?;
        let e = self.segs[s].remove(i);
        if self.segs[s].is_empty() {
            self.segs.remove(s);
        }
        e
    }

    /// Takes out the entry queued as `order`: entries are in `order`
    /// order, so both searches are binary; the removal moves at most one
    /// segment's entries.
    fn remove_order(&mut self, order: u64) -> Option<QueueEntry> {
        let s = self
            .segs
            .partition_point(|seg| seg.front().is_some_and(|e| e.order <= order))
            .checked_sub(1)?;
        let i = self.segs[s]
            .binary_search_by_key(&order, |e| e.order)
            .ok()?;
        let e = self.segs[s].remove(i);
        if self.segs[s].is_empty() {
            self.segs.remove(s);
        }
        e
    }

    /// Segments are never kept empty (see `remove`).
    fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CapQueue {
    by_priority: [SegQueue; 4],
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ReadyQueues {
    /// Ordered, so scans visit queues in the same order on every replica.
    queues: BTreeMap<Vec<String>, CapQueue>,
    next_order: u64,
    len: usize,
    /// A pop stopped at its stale budget: stale entries may hide live ones.
    dirty: bool,
    /// Entries and queues examined by pops, ever: the cost the swarm's
    /// bounded-work tests check.
    visits: u64,
}

fn slot(p: Priority) -> usize {
    match p {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Medium => 2,
        Priority::Low => 3,
    }
}

impl ReadyQueues {
    /// Queued entries, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a pop gave up on stale entries since the last full pop.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Entries and queues examined by pops so far.
    pub fn visits(&self) -> u64 {
        self.visits
    }

    /// Queues a unit; returns its entry's `order`, which names it for
    /// [`ReadyQueues::remove`].
    pub fn push(
        &mut self,
        caps: &[String],
        priority: Priority,
        task: u64,
        unit: u32,
        attempt: u32,
    ) -> u64 {
        self.next_order += 1;
        let entry = QueueEntry {
            order: self.next_order,
            task,
            unit,
            attempt,
        };
        if let Some(q) = self.queues.get_mut(caps) {
            q.by_priority[slot(priority)].push_back(entry);
        } else {
            let mut q = CapQueue::default();
            q.by_priority[slot(priority)].push_back(entry);
            self.queues.insert(caps.to_vec(), q);
        }
        self.len += 1;
        self.next_order
    }

    /// Takes out the entry `order` (from [`ReadyQueues::push`]) of a unit
    /// that will not run (its task finished), so no pop meets it stale.
    pub fn remove(&mut self, caps: &[String], priority: Priority, order: u64) -> bool {
        let Some(q) = self.queues.get_mut(caps) else {
            return false;
        };
        self.visits += 1;
        if q.by_priority[slot(priority)].remove_order(order).is_none() {
            return false;
        }
        self.len -= 1;
        if q.by_priority.iter().all(|d| d.is_empty()) {
            self.queues.remove(caps);
        }
        true
    }

    /// Drops up to `budget` stale entries (those `live` rejects) from the
    /// heads of the queues; the queues are clean again once a sweep ends
    /// under budget.
    pub fn sweep(&mut self, budget: usize, mut live: impl FnMut(&QueueEntry) -> bool) {
        let mut left = budget;
        for q in self.queues.values_mut() {
            for sq in q.by_priority.iter_mut() {
                while let Some(e) = sq.get(0) {
                    self.visits += 1;
                    if live(e) {
                        break;
                    }
                    if left == 0 {
                        return;
                    }
                    left -= 1;
                    sq.remove(0);
                    self.len -= 1;
                }
            }
        }
        self.queues
            .retain(|_, q| q.by_priority.iter().any(|d| !d.is_empty()));
        self.dirty = false;
    }

    /// Takes the best entry an agent with `agent_caps` may run: highest
    /// priority, then oldest. `usable` says whether an entry is still live
    /// and acceptable for this agent; stale entries it rejects with
    /// `Verdict::Stale` are dropped, `Verdict::Skip` ones stay queued.
    pub fn pop_for(
        &mut self,
        agent_caps: &[String],
        mut usable: impl FnMut(&QueueEntry) -> Verdict,
    ) -> Option<QueueEntry> {
        const SKIP_SCAN: usize = 16;
        let mut best: Option<(usize, u64, Vec<String>, usize)> = None;
        let mut emptied = Vec::new();
        let mut stale_budget = STALE_BUDGET;
        let mut gave_up = false;
        for (caps, q) in self.queues.iter_mut() {
            self.visits += 1;
            if !caps.iter().all(|c| agent_caps.contains(c)) {
                continue;
            }
            for (s, sq) in q.by_priority.iter_mut().enumerate() {
                if best.as_ref().is_some_and(|b| b.0 < s) {
                    break;
                }
                // Drop stale heads, then look a few entries deep (across
                // segment ends) for one this agent may take.
                let mut idx = 0;
                while idx < SKIP_SCAN {
                    let Some(entry) = sq.get(idx) else { break };
                    self.visits += 1;
                    match usable(entry) {
                        Verdict::Stale if stale_budget == 0 => {
                            gave_up = true;
                            break;
                        }
                        Verdict::Stale => {
                            stale_budget -= 1;
                            sq.remove(idx);
                            self.len -= 1;
                        }
                        Verdict::Skip => idx += 1,
                        Verdict::Take => {
                            let order = entry.order;
                            if best.as_ref().is_none_or(|b| (s, order) < (b.0, b.1)) {
                                best = Some((s, order, caps.clone(), idx));
                            }
                            break;
                        }
                    }
                }
                if best.as_ref().is_some_and(|b| b.0 == s && b.2 == *caps) {
                    break;
                }
            }
            if q.by_priority.iter().all(|d| d.is_empty()) {
                emptied.push(caps.clone());
            }
        }
        for caps in emptied {
            self.queues.remove(&caps);
        }
        self.dirty = gave_up;
        let (s, _, caps, idx) = best?;
        let q = self.queues.get_mut(&caps)?;
        let entry = q.by_priority[s].remove(idx)?;
        self.len -= 1;
        if q.by_priority.iter().all(|d| d.is_empty()) {
            self.queues.remove(&caps);
        }
        Some(entry)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Take,
    Skip,
    Stale,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum TimerKind {
    /// The attempt (or a pull agent's lease) ran out of time.
    AttemptDeadline,
    /// A retry's backoff is over.
    RetryReady,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Timer {
    pub at: u64,
    pub kind: TimerKind,
    pub task: u64,
    pub unit: u32,
    pub attempt: u32,
}

/// Timers in deadline order; cancelled timers are recognised as stale when
/// due. A B-tree rather than a heap: it never reallocates wholesale, so
/// adding a timer stays cheap with a million pending.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Timers {
    set: BTreeSet<Timer>,
}

impl Timers {
    pub fn push(&mut self, t: Timer) {
        self.set.insert(t);
    }

    pub fn pop_due(&mut self, now: u64) -> Option<Timer> {
        match self.set.first() {
            Some(t) if t.at <= now => self.set.pop_first(),
            _ => None,
        }
    }

    pub fn next_at(&self) -> Option<u64> {
        self.set.first().map(|t| t.at)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Exponential backoff with jitter: a delay drawn from [d/2, d] where
/// d = base * 2^(attempt-1), capped at max.
pub fn backoff_ms(base: u64, max: u64, attempt: u32, rng: &mut impl rand::Rng) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    let d = base.saturating_mul(1u64 << exp).min(max);
    if d < 2 {
        return d;
    }
    rng.random_range(d / 2..=d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn priority_then_fifo_then_capabilities() {
        let mut q = ReadyQueues::default();
        q.push(&[], Priority::Low, 1, 0, 0);
        q.push(&[], Priority::High, 2, 0, 0);
        q.push(&caps(&["gpu"]), Priority::Critical, 3, 0, 0);
        q.push(&[], Priority::High, 4, 0, 0);
        let take = |_: &QueueEntry| Verdict::Take;
        // An agent without gpu never sees task 3.
        assert_eq!(q.pop_for(&[], take).unwrap().task, 2);
        assert_eq!(q.pop_for(&[], take).unwrap().task, 4);
        assert_eq!(q.pop_for(&caps(&["gpu"]), take).unwrap().task, 3);
        assert_eq!(q.pop_for(&[], take).unwrap().task, 1);
        assert!(q.pop_for(&[], take).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn stale_entries_are_dropped_and_skipped_ones_kept() {
        let mut q = ReadyQueues::default();
        q.push(&[], Priority::Medium, 1, 0, 0);
        q.push(&[], Priority::Medium, 2, 0, 0);
        q.push(&[], Priority::Medium, 3, 0, 0);
        let got = q.pop_for(&[], |e| match e.task {
            1 => Verdict::Stale,
            2 => Verdict::Skip,
            _ => Verdict::Take,
        });
        assert_eq!(got.unwrap().task, 3);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_for(&[], |_| Verdict::Take).unwrap().task, 2);
    }

    #[test]
    fn the_look_ahead_crosses_segment_ends() {
        let mut q = ReadyQueues::default();
        let n = SEGMENT as u64 + 1;
        for task in 0..n {
            q.push(&[], Priority::Medium, task, 0, 0);
        }
        // The first segment ends in two entries this agent must skip; the
        // one it may take is the first of the next segment.
        let verdict = |e: &QueueEntry| match e.task {
            t if t < n - 3 => Verdict::Stale,
            t if t < n - 1 => Verdict::Skip,
            _ => Verdict::Take,
        };
        // Each pop drops at most STALE_BUDGET stale entries and says the
        // queue is dirty until they are gone.
        let mut got = None;
        while got.is_none() {
            let before = q.len();
            got = q.pop_for(&[], verdict);
            assert!(before - q.len() <= STALE_BUDGET + 1);
            assert_eq!(q.is_dirty(), got.is_none());
        }
        assert_eq!(got.unwrap().task, n - 1);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_for(&[], |_| Verdict::Take).unwrap().task, n - 3);
        assert_eq!(q.pop_for(&[], |_| Verdict::Take).unwrap().task, n - 2);
        assert!(q.is_empty());
    }

    #[test]
    fn removed_entries_are_gone_and_sweeps_are_bounded() {
        let mut q = ReadyQueues::default();
        let orders: Vec<u64> = (0..3 * SEGMENT as u64)
            .map(|t| q.push(&[], Priority::Low, t, 0, 0))
            .collect();
        // Out of the middle of a segment, and a whole segment's worth.
        assert!(q.remove(&[], Priority::Low, orders[5]));
        assert!(!q.remove(&[], Priority::Low, orders[5]));
        assert!(!q.remove(&[], Priority::High, orders[6]));
        for &o in &orders[SEGMENT..2 * SEGMENT] {
            assert!(q.remove(&[], Priority::Low, o));
        }
        assert_eq!(q.len(), 2 * SEGMENT - 1);
        let first = q.pop_for(&[], |_| Verdict::Take).unwrap();
        assert_eq!(first.task, 0);
        // A sweep drops at most its budget of stale heads.
        let live = |e: &QueueEntry| e.task >= 2 * SEGMENT as u64 + 10;
        let before = q.len();
        q.dirty = true;
        q.sweep(100, live);
        assert_eq!(before - q.len(), 100);
        assert!(q.is_dirty());
        q.sweep(usize::MAX, live);
        assert!(!q.is_dirty());
        assert_eq!(
            q.pop_for(&[], |_| Verdict::Take).unwrap().task,
            2 * SEGMENT as u64 + 10
        );
    }

    #[test]
    fn timers_fire_in_order() {
        let mut t = Timers::default();
        for at in [30, 10, 20] {
            t.push(Timer {
                at,
                kind: TimerKind::RetryReady,
                task: at,
                unit: 0,
                attempt: 1,
            });
        }
        assert_eq!(t.pop_due(5), None);
        assert_eq!(t.pop_due(25).unwrap().at, 10);
        assert_eq!(t.pop_due(25).unwrap().at, 20);
        assert_eq!(t.pop_due(25), None);
        assert_eq!(t.next_at(), Some(30));
    }

    proptest! {
        #[test]
        fn backoff_stays_in_bounds(base in 1u64..1000, max in 1000u64..100_000, attempt in 1u32..40) {
            let mut rng = rand::rng();
            let d = backoff_ms(base, max, attempt, &mut rng);
            let full = base.saturating_mul(1u64 << (attempt - 1).min(32)).min(max);
            prop_assert!(d <= full && d >= full / 2);
        }

        #[test]
        fn pops_in_priority_then_fifo_order(items in proptest::collection::vec(0usize..4, 1..100)) {
            let mut q = ReadyQueues::default();
            for (i, p) in items.iter().enumerate() {
                q.push(&[], Priority::ALL[*p], i as u64, 0, 0);
            }
            let mut last: Option<(usize, u64)> = None;
            while let Some(e) = q.pop_for(&[], |_| Verdict::Take) {
                let key = (3 - items[e.task as usize], e.task);
                if let Some(l) = last { prop_assert!(l < key); }
                last = Some(key);
            }
        }
    }
}
