//! The swarm's random numbers (retry jitter): SplitMix64 over one `u64`
//! of state. A swarm replicated by Raft must draw the same numbers on every
//! member and after every restart, so the state is seeded by whoever
//! creates the swarm and travels with the swarm's saved state; nothing here
//! reads the OS or a thread RNG.

use rand::RngCore;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng { state: seed }
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn the_same_seed_gives_the_same_numbers_and_others_differ() {
        let draw = |seed| {
            let mut r = SeededRng::new(seed);
            (0..8)
                .map(|_| r.random_range(0..1000u32))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let mut bytes = [0u8; 13];
        SeededRng::new(1).fill_bytes(&mut bytes);
        assert!(bytes.iter().any(|b| *b != 0));
    }
}
