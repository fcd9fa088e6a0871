//! Ready queues and timers.
//!
//! Ready units wait in one queue per distinct capability set, each split by
//! priority and FIFO within a priority. A free agent looks only at the
//! queues whose capability set it covers, so taking the next unit costs
//! O(distinct capability sets), not O(queued units). Entries are removed
//! lazily: an entry whose unit has moved on is skipped when met.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::model::Priority;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEntry {
    /// Global readiness order (FIFO within a priority).
    pub order: u64,
    pub task: u64,
    pub unit: u32,
    /// The unit's attempt count when queued; a mismatch means stale.
    pub attempt: u32,
}

/// Entries per segment of a [`SegQueue`].
const SEGMENT: usize = 4096;

/// A FIFO made of bounded segments: growing it never copies more than one
/// segment, so a push stays cheap at a million entries.
#[derive(Debug, Default)]
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

    /// Segments are never kept empty (see `remove`).
    fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }
}

#[derive(Debug, Default)]
struct CapQueue {
    by_priority: [SegQueue; 4],
}

#[derive(Debug, Default)]
pub struct ReadyQueues {
    queues: HashMap<Vec<String>, CapQueue>,
    next_order: u64,
    len: usize,
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

    pub fn push(
        &mut self,
        caps: &[String],
        priority: Priority,
        task: u64,
        unit: u32,
        attempt: u32,
    ) {
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
        for (caps, q) in self.queues.iter_mut() {
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
                    match usable(entry) {
                        Verdict::Stale => {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// The attempt (or a pull agent's lease) ran out of time.
    AttemptDeadline,
    /// A retry's backoff is over.
    RetryReady,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
#[derive(Debug, Default)]
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
        let got = q.pop_for(&[], |e| match e.task {
            t if t < n - 3 => Verdict::Stale,
            t if t < n - 1 => Verdict::Skip,
            _ => Verdict::Take,
        });
        assert_eq!(got.unwrap().task, n - 1);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_for(&[], |_| Verdict::Take).unwrap().task, n - 3);
        assert_eq!(q.pop_for(&[], |_| Verdict::Take).unwrap().task, n - 2);
        assert!(q.is_empty());
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
