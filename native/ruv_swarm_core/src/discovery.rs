//! Discoveries agents share, kept in a bounded log (oldest dropped first).

use std::collections::VecDeque;

use crate::error::Result;
use crate::model::Payload;
use crate::quota::{self, Room};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Discovery {
    pub id: String,
    pub agent_id: Option<String>,
    pub kind: String,
    pub content: Payload,
    pub confidence: f64,
    pub tags: Vec<String>,
    pub at: u64,
}

/// Which discoveries a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    pub kind: Option<String>,
    pub agent_id: Option<String>,
    pub min_confidence: f64,
}

impl Filter {
    pub fn matches(&self, d: &Discovery) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == d.kind)
            && self
                .agent_id
                .as_ref()
                .is_none_or(|a| d.agent_id.as_ref() == Some(a))
            && d.confidence >= self.min_confidence
    }
}

impl Discovery {
    /// What the discovery holds: its bytes and the bookkeeping around it.
    pub fn bytes(&self) -> usize {
        quota::DISCOVERY_OVERHEAD
            + self.id.len()
            + self.agent_id.as_ref().map_or(0, String::len)
            + self.kind.len()
            + self.content.len()
            + self.tags.iter().map(String::len).sum::<usize>()
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Log {
    entries: VecDeque<Discovery>,
    capacity: usize,
    bytes: usize,
}

impl Log {
    pub fn new(capacity: usize) -> Self {
        Log {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            bytes: 0,
        }
    }

    /// Appends a discovery, dropping the oldest when the log is full, if
    /// what that adds fits in `room`; a refused push changes nothing.
    pub fn push(&mut self, d: Discovery, room: Room) -> Result<()> {
        let dropped = match self.entries.front() {
            Some(old) if self.entries.len() == self.capacity => old.bytes(),
            _ => 0,
        };
        let added = d.bytes();
        room.admit(added.saturating_sub(dropped))?;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.bytes -= dropped;
        }
        self.entries.push_back(d);
        self.bytes += added;
        Ok(())
    }

    /// Bytes the log holds (see [`Discovery::bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest `limit` discoveries matching `filter`, oldest first.
    pub fn recent(&self, filter: &Filter, limit: usize) -> Vec<&Discovery> {
        let mut out: Vec<&Discovery> = self
            .entries
            .iter()
            .rev()
            .filter(|d| filter.matches(d))
            .take(limit)
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(i: u64, kind: &str, conf: f64) -> Discovery {
        Discovery {
            id: format!("d{i}"),
            agent_id: Some("a".into()),
            kind: kind.into(),
            content: vec![],
            confidence: conf,
            tags: vec![],
            at: i,
        }
    }

    #[test]
    fn log_is_bounded_and_filters() {
        let mut log = Log::new(3);
        for i in 0..5 {
            log.push(
                d(i, if i % 2 == 0 { "bug" } else { "idea" }, i as f64 / 10.0),
                Room::UNLIMITED,
            )
            .unwrap();
        }
        assert_eq!(log.len(), 3);
        let all: Vec<_> = log
            .recent(&Filter::default(), 10)
            .iter()
            .map(|d| d.id.clone())
            .collect();
        assert_eq!(all, ["d2", "d3", "d4"]);
        let f = Filter {
            kind: Some("bug".into()),
            min_confidence: 0.3,
            ..Default::default()
        };
        let bugs: Vec<_> = log.recent(&f, 10).iter().map(|d| d.id.clone()).collect();
        assert_eq!(bugs, ["d4"]);
        let other = Filter {
            agent_id: Some("b".into()),
            ..Default::default()
        };
        assert!(log.recent(&other, 10).is_empty());
    }

    #[test]
    fn bytes_follow_the_log_and_a_refused_push_changes_nothing() {
        let mut log = Log::new(2);
        let big = |i: u64, n: usize| Discovery {
            content: vec![7; n],
            ..d(i, "bug", 1.0)
        };
        log.push(big(0, 100), Room::UNLIMITED).unwrap();
        log.push(big(1, 100), Room::UNLIMITED).unwrap();
        let one = big(0, 100).bytes();
        assert_eq!(log.bytes(), 2 * one);
        let quota = crate::quota::Quota::new(2 * one as u64 + 50);
        // Full: the new one replaces the oldest, so only the growth counts.
        log.push(big(2, 150), quota.room(log.bytes())).unwrap();
        assert_eq!(log.bytes(), one + big(2, 150).bytes());
        let refused = log.push(big(3, 1000), quota.room(log.bytes()));
        assert!(matches!(
            refused,
            Err(crate::Error::QuotaExceeded {
                what: "swarm memory",
                ..
            })
        ));
        assert_eq!(log.len(), 2);
        assert_eq!(log.bytes(), one + big(2, 150).bytes());
    }
}
