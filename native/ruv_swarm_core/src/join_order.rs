//! Agents in join order, with O(log n) position lookups and removal.
//!
//! Topology roles derive from an agent's position in join order (the hub
//! of a star is position 0, a tree's coordinators are its first positions).
//! A plain vector makes removing an agent shift every later one and
//! rewrite its position: O(agents) in one call. Here every agent keeps the
//! slot it joined in; a removed agent leaves its slot vacant, and a Fenwick
//! tree over the slots counts the agents in each prefix, so an agent's
//! position (agents in earlier slots) and the agent at a position are both
//! O(log slots). Vacant slots are not reused: slots grow with agents ever
//! joined (8 + 4 bytes each), not with agents present.

/// Slot marker for an agent that left.
const VACANT: u64 = 0;

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct JoinOrder {
    /// Agent seq per slot (never 0 for a present agent), in join order.
    slots: Vec<u64>,
    /// Fenwick tree of present agents per slot, 1-based: `tree[i - 1]`
    /// covers slots `(i - lowbit(i), i]`.
    tree: Vec<u32>,
    len: usize,
}

fn lowbit(i: usize) -> usize {
    i & i.wrapping_neg()
}

impl JoinOrder {
    /// Agents present.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an agent (seq > 0) at the end; returns its slot.
    pub fn push(&mut self, seq: u64) -> u32 {
        debug_assert_ne!(seq, VACANT);
        let i = self.slots.len() + 1;
        // The new node covers (i - lowbit(i), i]: itself plus the present
        // agents of the earlier slots in that range.
        let covered = self.prefix(i - 1) - self.prefix(i - lowbit(i));
        self.slots.push(seq);
        self.tree.push(covered as u32 + 1);
        self.len += 1;
        (i - 1) as u32
    }

    /// Vacates a slot; returns whether an agent was there.
    pub fn remove(&mut self, slot: u32) -> bool {
        let s = slot as usize;
        match self.slots.get_mut(s) {
            Some(seq) if *seq != VACANT => *seq = VACANT,
            _ => return false,
        }
        let mut i = s + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] -= 1;
            i += lowbit(i);
        }
        self.len -= 1;
        true
    }

    /// Present agents in slots `0..i`.
    fn prefix(&self, mut i: usize) -> usize {
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i - 1] as usize;
            i -= lowbit(i);
        }
        sum
    }

    /// Position in join order of the agent in `slot` (agents before it).
    pub fn position(&self, slot: u32) -> usize {
        self.prefix(slot as usize)
    }

    /// The agent at position `pos` (0-based), if that many are present.
    pub fn at(&self, pos: usize) -> Option<u64> {
        if pos >= self.len {
            return None;
        }
        // Descend the tree for the smallest slot whose prefix holds pos+1.
        let mut rest = pos + 1;
        let mut i = 0;
        let mut step = self.tree.len().next_power_of_two();
        while step > 0 {
            let next = i + step;
            if next <= self.tree.len() && (self.tree[next - 1] as usize) < rest {
                i = next;
                rest -= self.tree[next - 1] as usize;
            }
            step >>= 1;
        }
        self.slots.get(i).copied()
    }

    /// Present agents from `slot` on, in join order, each with its slot:
    /// a page of a listing resumes where the previous one stopped, and a
    /// slot is never reused, so agents that leave or join meanwhile shift
    /// nothing.
    pub fn from_slot(&self, slot: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .skip(slot)
            .filter(|(_, &s)| s != VACANT)
            .map(|(i, &s)| (i, s))
    }

    /// Present agents in join order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().copied().filter(|&s| s != VACANT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_close_up_after_a_removal() {
        let mut o = JoinOrder::default();
        let slots: Vec<u32> = (1..=5).map(|s| o.push(s)).collect();
        assert!(o.remove(slots[1]));
        assert!(!o.remove(slots[1]));
        assert_eq!(o.len(), 4);
        assert_eq!(o.iter().collect::<Vec<_>>(), vec![1, 3, 4, 5]);
        assert_eq!(o.position(slots[2]), 1);
        assert_eq!(o.at(1), Some(3));
        assert_eq!(o.at(3), Some(5));
        assert_eq!(o.at(4), None);
    }

    proptest! {
        #[test]
        fn matches_a_plain_vector(ops in proptest::collection::vec((any::<bool>(), 0usize..64), 1..300)) {
            let mut o = JoinOrder::default();
            let mut model: Vec<(u64, u32)> = Vec::new();
            let mut next = 1;
            for (add, pick) in ops {
                if add || model.is_empty() {
                    model.push((next, o.push(next)));
                    next += 1;
                } else {
                    let (_, slot) = model.remove(pick % model.len());
                    prop_assert!(o.remove(slot));
                }
                prop_assert_eq!(o.len(), model.len());
                for (pos, &(seq, slot)) in model.iter().enumerate() {
                    prop_assert_eq!(o.position(slot), pos);
                    prop_assert_eq!(o.at(pos), Some(seq));
                }
                let listed: Vec<u64> = o.iter().collect();
                let expected: Vec<u64> = model.iter().map(|m| m.0).collect();
                prop_assert_eq!(listed, expected);
            }
        }
    }
}
