//! Topology as behaviour: who is a worker, who are an agent's neighbours,
//! which path work travels and how coordination spreads.
//!
//! Agents are numbered by position in join order (0-based).
//! - mesh: everyone is a worker and a neighbour of everyone.
//! - star: position 0 is the hub; with two or more agents the hub only
//!   receives and delegates, the spokes do the work.
//! - hierarchical: a tree with fan-out [`TREE_FANOUT`]; inner nodes are
//!   coordinators that split work down and aggregate up, leaves work.
//! - ring: everyone works; neighbours are the previous and next positions;
//!   sequential pipelines and coordination follow ring order.

use crate::model::Topology;

/// Children per coordinator in a hierarchical swarm.
pub const TREE_FANOUT: usize = 3;

fn parent(pos: usize) -> Option<usize> {
    (pos > 0).then(|| (pos - 1) / TREE_FANOUT)
}

fn children(pos: usize, n: usize) -> impl Iterator<Item = usize> {
    let first = pos * TREE_FANOUT + 1;
    first.min(n)..(first + TREE_FANOUT).min(n)
}

/// Whether the agent at `pos` (of `n`) executes work itself.
pub fn is_worker(topology: Topology, pos: usize, n: usize) -> bool {
    if n <= 1 {
        return true;
    }
    match topology {
        Topology::Mesh | Topology::Ring => true,
        Topology::Star => pos != 0,
        Topology::Hierarchical => pos * TREE_FANOUT + 1 >= n,
    }
}

/// The first position that is a worker (workers are a suffix of the join
/// order), in O(1).
pub fn first_worker(topology: Topology, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    n - worker_count(topology, n)
}

/// How many of `n` agents are workers, in O(1).
pub fn worker_count(topology: Topology, n: usize) -> usize {
    if n <= 1 {
        return n;
    }
    match topology {
        Topology::Mesh | Topology::Ring => n,
        Topology::Star => n - 1,
        // Inner nodes are the positions p with p * FANOUT + 1 < n.
        Topology::Hierarchical => n - (n - 1).div_ceil(TREE_FANOUT),
    }
}

/// Positions directly connected to `pos`.
pub fn neighbours(topology: Topology, pos: usize, n: usize) -> Vec<usize> {
    if pos >= n || n == 1 {
        return Vec::new();
    }
    match topology {
        Topology::Mesh => (0..n).filter(|&p| p != pos).collect(),
        Topology::Star if pos == 0 => (1..n).collect(),
        Topology::Star => vec![0],
        Topology::Ring => {
            let next = (pos + 1) % n;
            let prev = (pos + n - 1) % n;
            if next == prev {
                vec![next]
            } else {
                vec![prev, next]
            }
        }
        Topology::Hierarchical => parent(pos).into_iter().chain(children(pos, n)).collect(),
    }
}

/// The positions work passes through to reach the worker at `pos`, ending
/// with `pos` itself: hub then spoke on a star, root down to the leaf in a
/// tree, the worker alone elsewhere.
pub fn work_path(topology: Topology, pos: usize, n: usize) -> Vec<usize> {
    match topology {
        Topology::Star if pos != 0 && n > 1 => vec![0, pos],
        Topology::Hierarchical => {
            let mut path = vec![pos];
            let mut p = pos;
            while let Some(up) = parent(p) {
                path.push(up);
                p = up;
            }
            path.reverse();
            path
        }
        _ => vec![pos],
    }
}

/// Ring successor, used to place the next step of a sequential pipeline.
pub fn ring_next(pos: usize, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (pos + 1) % n
    }
}

/// Hops (from, to) a coordination message takes, in delivery order, when
/// it starts at `origin` (or at the swarm's entry point, position 0).
/// `from == None` marks the message entering the swarm.
pub fn coordination_route(
    topology: Topology,
    origin: Option<usize>,
    n: usize,
) -> Vec<(Option<usize>, usize)> {
    if n == 0 {
        return Vec::new();
    }
    let start = origin.filter(|&o| o < n).unwrap_or(0);
    let mut hops = vec![(None, start)];
    match topology {
        Topology::Mesh => hops.extend((0..n).filter(|&p| p != start).map(|p| (Some(start), p))),
        Topology::Star => {
            if start != 0 {
                hops.push((Some(start), 0));
            }
            hops.extend((1..n).filter(|&p| p != start).map(|p| (Some(0), p)));
        }
        Topology::Ring => {
            let mut at = start;
            for _ in 1..n {
                let next = ring_next(at, n);
                hops.push((Some(at), next));
                at = next;
            }
        }
        Topology::Hierarchical => {
            // Climb to the root, then spread down breadth-first to the rest.
            let mut seen = std::collections::HashSet::from([start]);
            let mut at = start;
            while let Some(up) = parent(at) {
                hops.push((Some(at), up));
                seen.insert(up);
                at = up;
            }
            let mut queue = std::collections::VecDeque::from([0]);
            while let Some(node) = queue.pop_front() {
                for c in children(node, n) {
                    if seen.insert(c) {
                        hops.push((Some(node), c));
                    }
                    queue.push_back(c);
                }
            }
        }
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn star_hub_delegates() {
        assert!(!is_worker(Topology::Star, 0, 5));
        assert!(is_worker(Topology::Star, 3, 5));
        assert!(is_worker(Topology::Star, 0, 1));
        assert_eq!(work_path(Topology::Star, 3, 5), vec![0, 3]);
        assert_eq!(neighbours(Topology::Star, 2, 5), vec![0]);
    }

    #[test]
    fn tree_coordinators_and_leaves() {
        // 0 -> 1,2,3 ; 1 -> 4,5,6
        assert!(!is_worker(Topology::Hierarchical, 0, 7));
        assert!(!is_worker(Topology::Hierarchical, 1, 7));
        assert!(is_worker(Topology::Hierarchical, 2, 7));
        assert_eq!(work_path(Topology::Hierarchical, 5, 7), vec![0, 1, 5]);
        assert_eq!(neighbours(Topology::Hierarchical, 1, 7), vec![0, 4, 5, 6]);
    }

    #[test]
    fn ring_passes_to_the_neighbour() {
        let route = coordination_route(Topology::Ring, Some(2), 4);
        assert_eq!(
            route,
            vec![(None, 2), (Some(2), 3), (Some(3), 0), (Some(0), 1)]
        );
        assert_eq!(neighbours(Topology::Ring, 0, 4), vec![3, 1]);
    }

    #[test]
    fn star_route_goes_through_the_hub() {
        let route = coordination_route(Topology::Star, Some(2), 4);
        assert_eq!(
            route,
            vec![(None, 2), (Some(2), 0), (Some(0), 1), (Some(0), 3)]
        );
    }

    proptest! {
        #[test]
        fn every_route_reaches_every_agent_once(n in 1usize..200, origin in 0usize..200,
                                                 t in 0usize..4) {
            let topology = Topology::ALL[t];
            let route = coordination_route(topology, Some(origin), n);
            let mut seen: Vec<usize> = route.iter().map(|&(_, to)| to).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..n).collect::<Vec<_>>());
            // Every hop but the first leaves from an agent that already has the message.
            let mut have = std::collections::HashSet::new();
            for (from, to) in route {
                if let Some(f) = from { prop_assert!(have.contains(&f)); }
                have.insert(to);
            }
        }

        #[test]
        fn neighbours_are_symmetric(n in 1usize..100, t in 0usize..4) {
            let topology = Topology::ALL[t];
            for p in 0..n {
                for q in neighbours(topology, p, n) {
                    prop_assert!(neighbours(topology, q, n).contains(&p));
                }
            }
        }

        #[test]
        fn some_agent_always_works(n in 1usize..300, t in 0usize..4) {
            let topology = Topology::ALL[t];
            prop_assert!((0..n).any(|p| is_worker(topology, p, n)));
        }

        #[test]
        fn worker_count_matches_the_roles(n in 0usize..500, t in 0usize..4) {
            let topology = Topology::ALL[t];
            let counted = (0..n).filter(|&p| is_worker(topology, p, n)).count();
            prop_assert_eq!(worker_count(topology, n), counted);
        }
    }
}
