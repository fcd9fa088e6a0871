//! What work cost: tokens, turns, time and money, as executors report them
//! with a unit's completion or failure, summed per agent and per swarm.
//!
//! Money is kept as integer micro-dollars (`cost_micros`), so sums are
//! exact and the same on every member of a replicated swarm; the host
//! converts to and from dollars at its edge.

use crate::error::{Error, Result};
use crate::limits;

/// Counts of one attempt, or totals of many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    /// Cost in micro-dollars (1 USD = 1,000,000).
    pub cost_micros: u64,
    pub turns: u64,
    pub duration_ms: u64,
}

/// Largest total kept: sums stop there rather than wrap (and stay within
/// what a snapshot may carry).
pub const MAX_TOTAL: u64 = 1 << 62;

impl Usage {
    /// Adds `other` in place; totals stop at [`MAX_TOTAL`].
    pub fn add(&mut self, other: &Usage) {
        let sum = |a: u64, b: u64| a.saturating_add(b).min(MAX_TOTAL);
        self.input_tokens = sum(self.input_tokens, other.input_tokens);
        self.output_tokens = sum(self.output_tokens, other.output_tokens);
        self.cache_read_tokens = sum(self.cache_read_tokens, other.cache_read_tokens);
        self.cache_creation_tokens = sum(self.cache_creation_tokens, other.cache_creation_tokens);
        self.cost_micros = sum(self.cost_micros, other.cost_micros);
        self.turns = sum(self.turns, other.turns);
        self.duration_ms = sum(self.duration_ms, other.duration_ms);
    }

    /// The fields by name, in a fixed order (for checks and encoders).
    pub fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cache_read_tokens", self.cache_read_tokens),
            ("cache_creation_tokens", self.cache_creation_tokens),
            ("cost_micros", self.cost_micros),
            ("turns", self.turns),
            ("duration_ms", self.duration_ms),
        ]
    }
}

/// What one attempt reported: its counts and the executor's session id
/// (a later unit of the same agent may resume that session).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnitUsage {
    pub usage: Usage,
    pub session_id: Option<Box<str>>,
}

impl UnitUsage {
    /// Checks the report against the limits.
    pub fn check(&self) -> Result<()> {
        for (name, v) in self.usage.fields() {
            if v > limits::MAX_USAGE_VALUE {
                return Err(Error::invalid(format!(
                    "usage {name} must be at most {}",
                    limits::MAX_USAGE_VALUE
                )));
            }
        }
        if let Some(s) = &self.session_id {
            if s.is_empty() || s.len() > limits::MAX_SESSION_ID_BYTES {
                return Err(Error::invalid(format!(
                    "usage session_id must be 1 to {} bytes",
                    limits::MAX_SESSION_ID_BYTES
                )));
            }
        }
        Ok(())
    }
}

/// An amount of micro-dollars as dollars for people: at least two
/// decimals, at most six, no trailing zeros beyond the second
/// (`10_000` is `"0.01"`, `12_345` is `"0.012345"`).
pub fn dollars(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = format!("{:06}", micros % 1_000_000);
    let frac = frac.trim_end_matches('0');
    let frac = if frac.len() < 2 {
        format!("{frac:0<2}")
    } else {
        frac.to_owned()
    };
    format!("{whole}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_read_as_people_write_them() {
        assert_eq!(dollars(0), "0.00");
        assert_eq!(dollars(10_000), "0.01");
        assert_eq!(dollars(12_000), "0.012");
        assert_eq!(dollars(12_345), "0.012345");
        assert_eq!(dollars(3_500_000), "3.50");
        assert_eq!(dollars(1), "0.000001");
    }

    #[test]
    fn sums_saturate_and_reports_are_bounded() {
        let mut u = Usage {
            cost_micros: MAX_TOTAL - 1,
            ..Default::default()
        };
        u.add(&Usage {
            cost_micros: 5,
            turns: 2,
            ..Default::default()
        });
        assert_eq!((u.cost_micros, u.turns), (MAX_TOTAL, 2));
        let big = UnitUsage {
            usage: Usage {
                input_tokens: limits::MAX_USAGE_VALUE + 1,
                ..Default::default()
            },
            session_id: None,
        };
        assert!(big.check().is_err());
        let empty_session = UnitUsage {
            session_id: Some("".into()),
            ..Default::default()
        };
        assert!(empty_session.check().is_err());
    }
}
