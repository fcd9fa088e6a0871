//! The engine's vocabulary: enums with a fixed set of names and the records
//! the engine hands out.

use crate::error::{Error, Result};

/// Encoded payload (the NIF stores Erlang external term format here).
pub type Payload = Vec<u8>;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?}; expected one of: {}"),
                        text,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

named_enum!(
    /// How agents are connected; decides routing and coordination.
    Topology { Mesh => "mesh", Hierarchical => "hierarchical", Ring => "ring", Star => "star" }
);
named_enum!(
    /// How the scheduler breaks ties between eligible agents.
    Strategy { Balanced => "balanced", Specialized => "specialized", Adaptive => "adaptive" }
);
named_enum!(
    AgentStatus { Idle => "idle", Busy => "busy", Offline => "offline" }
);
named_enum!(
    /// Task priority; higher runs first.
    Priority { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
);
named_enum!(
    TaskStatus {
        Pending => "pending", Running => "running",
        Completed => "completed", Failed => "failed", Cancelled => "cancelled",
        TimedOut => "timed_out"
    }
);
named_enum!(
    /// How a task without explicit subtasks is spread over agents.
    ExecMode { Parallel => "parallel", Sequential => "sequential", Adaptive => "adaptive" }
);
named_enum!(
    /// Push agents are handed work by the engine; pull agents claim it.
    Dispatch { Push => "push", Pull => "pull" }
);

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::Failed
                | TaskStatus::Cancelled
                | TaskStatus::TimedOut
        )
    }
}

/// Observed behaviour of an agent, used by the adaptive strategy.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentMetrics {
    pub completed: u64,
    pub failed: u64,
    /// Exponentially weighted moving average of attempt latency (ms).
    pub ewma_latency_ms: f64,
    /// Exponentially weighted moving average of success (0.0..=1.0).
    pub ewma_success: f64,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics {
            completed: 0,
            failed: 0,
            ewma_latency_ms: 0.0,
            ewma_success: 1.0,
        }
    }
}

const EWMA_ALPHA: f64 = 0.2;

impl AgentMetrics {
    pub fn record(&mut self, success: bool, latency_ms: f64) {
        if success {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
        let first = self.completed + self.failed == 1;
        self.ewma_latency_ms = if first {
            latency_ms
        } else {
            EWMA_ALPHA * latency_ms + (1.0 - EWMA_ALPHA) * self.ewma_latency_ms
        };
        let s = if success { 1.0 } else { 0.0 };
        self.ewma_success = EWMA_ALPHA * s + (1.0 - EWMA_ALPHA) * self.ewma_success;
    }

    /// Higher is better: likely to succeed, and fast.
    pub fn score(&self) -> f64 {
        self.ewma_success / (1.0 + self.ewma_latency_ms / 100.0)
    }
}

/// What a caller asks for when adding an agent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentSpec {
    pub name: Option<String>,
    pub agent_type: String,
    pub capabilities: Vec<String>,
    pub dispatch: Dispatch,
    /// Units of work the agent runs at once.
    pub capacity: u32,
    /// Node the agent's process runs on (informational for the engine).
    pub node: String,
    /// Opaque to the engine: what the host needs to restart the agent's
    /// process (the NIF stores the executor spec here).
    pub meta: Payload,
}

impl Default for AgentSpec {
    fn default() -> Self {
        AgentSpec {
            name: None,
            agent_type: "researcher".into(),
            capabilities: Vec::new(),
            dispatch: Dispatch::Pull,
            capacity: 1,
            node: String::new(),
            meta: Vec::new(),
        }
    }
}

/// Retry policy for each unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Total attempts, 1 = never retry.
    pub max_attempts: u32,
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_backoff_ms: 10,
            max_backoff_ms: 5_000,
        }
    }
}

/// One explicit step of a task.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubtaskSpec {
    /// Caller's name for the step, unique within the task.
    pub name: String,
    pub input: Payload,
    /// Names of the steps whose results this one needs.
    pub depends_on: Vec<String>,
    pub capabilities: Vec<String>,
}

/// What a caller submits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    pub description: String,
    pub input: Payload,
    pub priority: Priority,
    pub capabilities: Vec<String>,
    pub mode: ExecMode,
    /// Fan-out bound (parallel/adaptive) or pipeline length (sequential).
    pub max_agents: u32,
    /// Per-attempt timeout; `None` means no timeout.
    pub timeout_ms: Option<u64>,
    pub retry: RetryPolicy,
    pub subtasks: Vec<SubtaskSpec>,
}

impl Default for TaskSpec {
    fn default() -> Self {
        TaskSpec {
            description: String::new(),
            input: Vec::new(),
            priority: Priority::Medium,
            capabilities: Vec::new(),
            mode: ExecMode::Parallel,
            max_agents: 1,
            timeout_ms: None,
            retry: RetryPolicy::default(),
            subtasks: Vec::new(),
        }
    }
}

/// Checks a name-like string against the limits.
pub fn check_name(what: &'static str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if s.len() > crate::limits::MAX_NAME_BYTES {
        return Err(Error::TooLarge {
            what,
            size: s.len(),
            limit: crate::limits::MAX_NAME_BYTES,
        });
    }
    Ok(())
}

pub fn check_list(what: &'static str, items: &[String]) -> Result<()> {
    if items.len() > crate::limits::MAX_LIST_ITEMS {
        return Err(Error::TooLarge {
            what,
            size: items.len(),
            limit: crate::limits::MAX_LIST_ITEMS,
        });
    }
    items.iter().try_for_each(|i| check_name(what, i))
}

pub fn check_payload(what: &'static str, p: &[u8]) -> Result<()> {
    if p.len() > crate::limits::MAX_PAYLOAD_BYTES {
        return Err(Error::TooLarge {
            what,
            size: p.len(),
            limit: crate::limits::MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

pub fn check_text(what: &'static str, s: &str) -> Result<()> {
    if s.len() > crate::limits::MAX_TEXT_BYTES {
        return Err(Error::TooLarge {
            what,
            size: s.len(),
            limit: crate::limits::MAX_TEXT_BYTES,
        });
    }
    Ok(())
}

/// Sorted, deduplicated capability list (the scheduler's queue key).
pub fn normalize_caps(mut caps: Vec<String>) -> Vec<String> {
    caps.sort_unstable();
    caps.dedup();
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_their_own_names_only() {
        for t in Topology::ALL {
            assert_eq!(Topology::parse(t.as_str()).unwrap(), *t);
        }
        let err = Topology::parse("torus").unwrap_err().to_string();
        assert!(err.contains("torus") && err.contains("mesh"), "{err}");
        assert!(Priority::Critical > Priority::Low);
    }

    #[test]
    fn metrics_track_success_and_latency() {
        let mut m = AgentMetrics::default();
        m.record(true, 10.0);
        assert_eq!(m.ewma_latency_ms, 10.0);
        m.record(false, 20.0);
        assert_eq!((m.completed, m.failed), (1, 1));
        assert!(m.ewma_success < 1.0);
        let mut fast = AgentMetrics::default();
        fast.record(true, 1.0);
        assert!(fast.score() > m.score());
    }
}
