//! Engine errors as `{:error, reason}` terms a person can act on.

use rustler::{Encoder, Env, Term};
use ruv_swarm_core::Error;

use crate::atoms;

pub fn reason<'a>(env: Env<'a>, e: &Error) -> Term<'a> {
    match e {
        Error::SwarmNotFound => atoms::swarm_not_found().encode(env),
        Error::SwarmExists => atoms::swarm_exists().encode(env),
        Error::AgentNotFound => atoms::agent_not_found().encode(env),
        Error::TaskNotFound => atoms::task_not_found().encode(env),
        Error::KeyNotFound => atoms::not_found().encode(env),
        Error::SwarmFull { max } => (atoms::swarm_full(), *max).encode(env),
        Error::InvalidArgument(msg) => (atoms::invalid_argument(), msg.as_str()).encode(env),
        Error::TooLarge { what, size, limit } => {
            (atoms::too_large(), *what, *size as u64, *limit as u64).encode(env)
        }
        Error::DependencyCycle(path) => (atoms::dependency_cycle(), path.as_str()).encode(env),
        Error::TaskFinished(status) => (atoms::task_finished(), *status).encode(env),
        Error::VersionConflict { expected, found } => {
            (atoms::version_conflict(), *expected, *found).encode(env)
        }
        Error::NotPullAgent(id) => (atoms::not_pull_agent(), id.as_str()).encode(env),
        Error::QuotaExceeded { what, limit } => {
            (atoms::quota_exceeded(), *what, *limit).encode(env)
        }
    }
}

pub fn error<'a>(env: Env<'a>, e: &Error) -> Term<'a> {
    (atoms::error(), reason(env, e)).encode(env)
}

/// Runs `f`, turning an `Err` into `{:error, reason}`.
pub fn reply<'a>(env: Env<'a>, r: Result<Term<'a>, Error>) -> Term<'a> {
    r.unwrap_or_else(|e| error(env, &e))
}
