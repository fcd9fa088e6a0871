//! Events: one for every mutation, in the order the swarm applied them.

use crate::model::{AgentStatus, TaskStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    AgentJoined {
        agent_id: String,
        agent_type: String,
    },
    AgentLeft {
        agent_id: String,
    },
    AgentStatusChanged {
        agent_id: String,
        status: AgentStatus,
    },
    TaskSubmitted {
        task_id: String,
    },
    TaskAssigned {
        task_id: String,
        unit: String,
        agent_id: String,
        attempt: u32,
    },
    TaskStarted {
        task_id: String,
        unit: String,
        agent_id: String,
    },
    TaskProgress {
        task_id: String,
        unit: String,
        agent_id: String,
        /// The fraction done (0.0..=1.0): the one reported, else the last
        /// one the attempt reported, else `None`.
        progress: Option<f64>,
        /// What the agent is doing (assistant text, a tool call's name),
        /// cut to `limits::MAX_PROGRESS_MESSAGE_BYTES`.
        message: Option<String>,
    },
    TaskRetried {
        task_id: String,
        unit: String,
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    TaskFinished {
        task_id: String,
        status: TaskStatus,
        error: Option<String>,
    },
    MemoryStored {
        namespace: String,
        key: String,
        version: u64,
    },
    MemoryDeleted {
        namespace: String,
        key: String,
    },
    MemoryExpired {
        namespace: String,
        key: String,
    },
    DiscoveryShared {
        discovery_id: String,
        agent_id: Option<String>,
        kind: String,
    },
    Coordinated {
        from: Option<String>,
        deliveries: usize,
    },
}

impl Event {
    /// The name subscribers see (`:task_assigned`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Event::AgentJoined { .. } => "agent_joined",
            Event::AgentLeft { .. } => "agent_left",
            Event::AgentStatusChanged { .. } => "agent_status_changed",
            Event::TaskSubmitted { .. } => "task_submitted",
            Event::TaskAssigned { .. } => "task_assigned",
            Event::TaskStarted { .. } => "task_started",
            Event::TaskProgress { .. } => "task_progress",
            Event::TaskRetried { .. } => "task_retried",
            Event::TaskFinished { status, .. } => match status {
                TaskStatus::Completed => "task_completed",
                TaskStatus::Cancelled => "task_cancelled",
                TaskStatus::TimedOut => "task_timed_out",
                _ => "task_failed",
            },
            Event::MemoryStored { .. } => "memory_stored",
            Event::MemoryDeleted { .. } => "memory_deleted",
            Event::MemoryExpired { .. } => "memory_expired",
            Event::DiscoveryShared { .. } => "discovery_shared",
            Event::Coordinated { .. } => "coordinated",
        }
    }
}

/// An event with its place in the swarm's history.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: u64,
    pub at: u64,
    pub event: Event,
}
