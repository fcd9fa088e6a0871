//! Discoveries agents share, kept in a bounded log (oldest dropped first).

use std::collections::VecDeque;

use crate::model::Payload;

#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, Default, PartialEq)]
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

#[derive(Debug)]
pub struct Log {
    entries: VecDeque<Discovery>,
    capacity: usize,
}

impl Log {
    pub fn new(capacity: usize) -> Self {
        Log {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, d: Discovery) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(d);
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
            log.push(d(
                i,
                if i % 2 == 0 { "bug" } else { "idea" },
                i as f64 / 10.0,
            ));
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
}
