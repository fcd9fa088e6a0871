//! The engine's limits and error vocabulary as terms, so the Elixir side
//! (option validation, the gateway's tool schemas, the error catalogue)
//! reads them instead of restating them.

use rustler::{Encoder, Env, Term};
use ruv_swarm_core::swarm::MAX_CAPACITY;
use ruv_swarm_core::{limits, Error};

use crate::{atoms, codec, error};

/// Every limit the engine enforces on what callers hand it.
#[rustler::nif]
fn engine_limits(env: Env) -> Term {
    codec::map(
        env,
        [
            (
                atoms::max_agents_per_swarm(),
                limits::MAX_AGENTS_PER_SWARM.encode(env),
            ),
            (
                atoms::default_max_agents(),
                limits::DEFAULT_MAX_AGENTS.encode(env),
            ),
            (
                atoms::max_name_bytes(),
                (limits::MAX_NAME_BYTES as u64).encode(env),
            ),
            (
                atoms::max_list_items(),
                (limits::MAX_LIST_ITEMS as u64).encode(env),
            ),
            (
                atoms::max_payload_bytes(),
                (limits::MAX_PAYLOAD_BYTES as u64).encode(env),
            ),
            (
                atoms::max_text_bytes(),
                (limits::MAX_TEXT_BYTES as u64).encode(env),
            ),
            (
                atoms::max_subtasks(),
                (limits::MAX_SUBTASKS as u64).encode(env),
            ),
            (
                atoms::max_task_agents(),
                limits::MAX_TASK_AGENTS.encode(env),
            ),
            (atoms::max_attempts(), limits::MAX_ATTEMPTS.encode(env)),
            (
                atoms::task_history(),
                (limits::DEFAULT_TASK_HISTORY as u64).encode(env),
            ),
            (
                atoms::discovery_log(),
                (limits::DEFAULT_DISCOVERY_LOG as u64).encode(env),
            ),
            (
                atoms::max_memory_entries(),
                (limits::MAX_MEMORY_ENTRIES as u64).encode(env),
            ),
            (
                atoms::max_search_results(),
                (limits::MAX_SEARCH_RESULTS as u64).encode(env),
            ),
            (atoms::max_timeout_ms(), limits::MAX_TIMEOUT_MS.encode(env)),
            (atoms::max_capacity(), MAX_CAPACITY.encode(env)),
            (
                atoms::max_progress_message_bytes(),
                (limits::MAX_PROGRESS_MESSAGE_BYTES as u64).encode(env),
            ),
            (
                atoms::max_session_id_bytes(),
                (limits::MAX_SESSION_ID_BYTES as u64).encode(env),
            ),
            (
                atoms::max_usage_value(),
                limits::MAX_USAGE_VALUE.encode(env),
            ),
        ],
    )
}

/// One error of every kind the engine returns, encoded exactly as the NIFs
/// encode them, so the Elixir catalogue can be checked against them.
#[rustler::nif]
fn engine_error_reasons(env: Env) -> Term {
    let samples = [
        Error::SwarmNotFound,
        Error::SwarmExists,
        Error::AgentNotFound,
        Error::TaskNotFound,
        Error::KeyNotFound,
        Error::SwarmFull { max: 1 },
        Error::invalid("sample"),
        Error::TooLarge {
            what: "input",
            size: 2,
            limit: 1,
        },
        Error::DependencyCycle("a -> b -> a".into()),
        Error::TaskFinished("completed"),
        Error::VersionConflict {
            expected: 1,
            found: 2,
        },
        Error::NotPullAgent("swarm-0-1.agent-1".into()),
        Error::QuotaExceeded {
            what: "swarm memory",
            limit: 4096,
        },
    ];
    samples.iter().for_each(listed);
    samples
        .iter()
        .map(|e| error::reason(env, e))
        .collect::<Vec<_>>()
        .encode(env)
}

/// Does not compile when the engine gains an error variant: add a sample
/// of it above (and a catalogue entry in `SwarmService.Errors`).
fn listed(e: &Error) {
    match e {
        Error::SwarmNotFound
        | Error::SwarmExists
        | Error::AgentNotFound
        | Error::TaskNotFound
        | Error::KeyNotFound
        | Error::SwarmFull { .. }
        | Error::InvalidArgument(_)
        | Error::TooLarge { .. }
        | Error::DependencyCycle(_)
        | Error::TaskFinished(_)
        | Error::VersionConflict { .. }
        | Error::NotPullAgent(_)
        | Error::QuotaExceeded { .. } => {}
    }
}
