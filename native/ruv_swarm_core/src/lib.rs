//! Pure swarm engine: swarms, agents, topologies, task scheduling, shared
//! memory and discoveries. No rustler here, so `cargo test` covers all of it.
//!
//! Every mutation is a method on [`Swarm`] that takes the current time and
//! leaves its effects in the swarm's outbox: events for subscribers,
//! dispatches for push agents, and finished task ids for waiters. The NIF
//! layer drains the outbox after each call.

pub mod delivery;
pub mod discovery;
pub mod error;
pub mod events;
pub mod ids;
pub mod join_order;
pub mod limits;
pub mod memory;
pub mod model;
pub mod paging;
pub mod quota;
pub mod scheduler;
pub mod seeded;
pub mod swarm;
pub mod task;
pub mod topology;
pub mod usage;

pub use error::{Error, Result};
pub use model::*;
pub use swarm::{snapshot, Swarm};
