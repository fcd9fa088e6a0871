//! Engine errors. Each variant reads as an instruction to the caller.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error("swarm not found")]
    SwarmNotFound,
    #[error("a swarm with that id already exists")]
    SwarmExists,
    #[error("agent not found")]
    AgentNotFound,
    #[error("task not found")]
    TaskNotFound,
    #[error("memory key not found")]
    KeyNotFound,
    #[error("swarm is full: it already has its maximum of {max} agents")]
    SwarmFull { max: u32 },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{what} is too large: {size} exceeds the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("subtask dependencies form a cycle: {0}")]
    DependencyCycle(String),
    #[error("task already finished with status {0}")]
    TaskFinished(&'static str),
    #[error("version conflict: expected {expected}, found {found}")]
    VersionConflict { expected: u64, found: u64 },
    #[error("agent {0} is not a pull agent; only pull agents claim tasks")]
    NotPullAgent(String),
    /// A write that would take `what` (`"swarm memory"`, `"node memory"`)
    /// past its quota of `limit` bytes; nothing was changed.
    #[error("{what} quota exceeded: holding this would go past the limit of {limit} bytes")]
    QuotaExceeded { what: &'static str, limit: u64 },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Prefixes an invalid-argument message with where the bad value is.
    pub fn within(self, place: impl std::fmt::Display) -> Self {
        match self {
            Error::InvalidArgument(msg) => Error::InvalidArgument(format!("{place}: {msg}")),
            other => other,
        }
    }
}
