//! Rustler glue between the BEAM and `ruv_swarm_core`.
//!
//! Terms in, terms out: atoms for enums, maps for records, binaries for
//! text. Swarm state lives in a process-wide registry (one mutex per swarm),
//! not in any Elixir process, so a crashed process loses no acknowledged
//! state and one busy swarm never blocks another.

mod agent;
mod alloc;
mod atoms;
mod codec;
mod delivery;
mod discovery;
mod error;
mod ids;
mod limits;
mod logging;
mod memory;
mod registry;
mod replicated;
mod snapshot;
mod swarm;
mod task;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn load(_env: rustler::Env, _info: rustler::Term) -> bool {
    logging::install();
    true
}

rustler::init!("Elixir.SwarmService.Native", load = load);
