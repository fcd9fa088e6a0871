//! One swarm: its agents, tasks, memory and discoveries, and every command
//! that changes them.
//!
//! A `Swarm` is a single-threaded state machine; callers serialise access
//! (the NIF keeps each swarm behind its own mutex, so one busy swarm never
//! blocks another). Each command takes `now` (ms) and leaves its effects in
//! [`Outbox`]: events, work to hand to push agents, work to cancel, and ids
//! of tasks that finished.
//!
//! The commands live in submodules by concern, all on the one `Swarm`:
//! `agents` (the pool and topology lookups), `dispatch` (choosing an
//! agent, queueing, claims), `tasks` (lifecycle, retries, history),
//! `timers` (deadlines, leases, backoffs), `knowledge` (memory and
//! discoveries) and [`snapshot`] (export and import).

use std::collections::{BTreeMap, VecDeque};

use crate::discovery::{self, Discovery};
use crate::error::{Error, Result};
use crate::events::{Event, EventRecord};
use crate::ids::{self, Kind};
use crate::join_order::JoinOrder;
use crate::limits;
use crate::memory::{self, Entry, Memory, Query};
use crate::model::*;
use crate::paging::{self, Page};
use crate::quota::{self as quotas, Ledger, Quota};
use crate::scheduler::{self, ReadyQueues, Timer, TimerKind, Timers, Verdict};
use crate::seeded::SeededRng;
use crate::task::{self, AttemptOutcome, Task, TaskResult, UnitState};
use crate::topology;

mod accounting;
mod agents;
mod budget;
mod dispatch;
mod knowledge;
pub mod snapshot;
mod state;
mod tasks;
mod timers;

pub use budget::{AgentAccount, Budget};

/// How many free agents the scheduler compares before picking one.
const CANDIDATES: usize = 8;
/// Most units one agent may run at once.
pub const MAX_CAPACITY: u32 = 1024;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Agent {
    pub seq: u64,
    pub id: String,
    pub name: String,
    pub agent_type: String,
    pub capabilities: Vec<String>,
    pub dispatch: Dispatch,
    pub capacity: u32,
    pub running: u32,
    pub online: bool,
    pub node: String,
    pub meta: Payload,
    pub metrics: AgentMetrics,
    /// Why its last failed attempt failed (truncated).
    pub last_error: Option<Box<str>>,
    pub joined_at: u64,
    /// Slot in the join order; its position (topology role) derives from
    /// it (see [`Swarm::position`]).
    join_slot: u32,
    free_idx: Option<u32>,
    /// Units in this agent's hands.
    work: Vec<Held>,
}

/// A unit an agent holds, and the slot (0..capacity) it occupies. A push
/// agent runs one worker per slot, so the slot names the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Held {
    task: u64,
    unit: u32,
    attempt: u32,
    slot: u32,
}

impl Held {
    fn is(&self, task: u64, unit: u32, attempt: u32) -> bool {
        (self.task, self.unit, self.attempt) == (task, unit, attempt)
    }
}

impl Agent {
    pub fn status(&self) -> AgentStatus {
        if !self.online {
            AgentStatus::Offline
        } else if self.running > 0 {
            AgentStatus::Busy
        } else {
            AgentStatus::Idle
        }
    }

    pub fn load(&self) -> f64 {
        self.running as f64 / self.capacity as f64
    }

    fn has_caps(&self, caps: &[String]) -> bool {
        caps.iter().all(|c| self.capabilities.contains(c))
    }

    /// The lowest slot no held unit occupies, so a worker is reused. It is
    /// at most the number of units held.
    fn free_slot(&self) -> u32 {
        if self.work.is_empty() {
            return 0;
        }
        let mut used = vec![false; self.work.len() + 1];
        for h in &self.work {
            if let Some(u) = used.get_mut(h.slot as usize) {
                *u = true;
            }
        }
        used.iter().position(|u| !u).expect("a free slot") as u32
    }
}

/// Everything an agent needs to run one attempt of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// `<task id>/<unit index>/<attempt>`: what completion reports cite.
    pub work_id: String,
    pub task_id: String,
    pub unit: String,
    pub attempt: u32,
    pub description: String,
    pub input: Payload,
    /// The input is the description (a plain-text task): `input` is empty
    /// and the text is stored and sent once.
    pub input_is_description: bool,
    /// Results of the unit's dependencies, by unit name.
    pub context: Vec<(String, Payload)>,
    pub timeout_ms: Option<u64>,
    pub priority: Priority,
    /// Agents the work passed through, ending with the one that runs it.
    pub route: Vec<String>,
    /// The session id the agent's latest unit reported (see
    /// [`crate::usage::UnitUsage`]), so this one may resume it.
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DispatchOrder {
    pub agent_seq: u64,
    pub agent_id: String,
    /// The agent's worker slot the work occupies until it ends.
    pub slot: u32,
    pub work: WorkItem,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CancelOrder {
    pub agent_seq: u64,
    pub work_id: String,
    pub slot: u32,
    pub reason: String,
}

/// Effects of the commands applied since the last drain.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Record events only while someone listens.
    pub record_events: bool,
    pub events: Vec<EventRecord>,
    pub dispatches: Vec<DispatchOrder>,
    pub cancels: Vec<CancelOrder>,
    pub finished: Vec<String>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.dispatches.is_empty()
            && self.cancels.is_empty()
            && self.finished.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub tasks_submitted: u64,
    pub units_dispatched: u64,
    pub units_completed: u64,
    pub units_failed: u64,
    pub retries: u64,
    pub coordination_hops: u64,
    pub memory_writes: u64,
    pub discoveries_shared: u64,
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SwarmConfig {
    pub name: String,
    pub topology: Topology,
    pub strategy: Strategy,
    pub max_agents: u32,
    pub task_history: usize,
    pub discovery_log: usize,
    /// Most bytes the swarm may hold (see [`crate::quota`]).
    pub memory_quota: u64,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            name: "swarm".into(),
            topology: Topology::Mesh,
            strategy: Strategy::Balanced,
            max_agents: limits::DEFAULT_MAX_AGENTS,
            task_history: limits::DEFAULT_TASK_HISTORY,
            discovery_log: limits::DEFAULT_DISCOVERY_LOG,
            memory_quota: limits::DEFAULT_SWARM_MEMORY_BYTES,
        }
    }
}

/// Counts a status call reports; kept up to date incrementally so reading
/// them costs the same at 10 agents and at 100,000.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmStatus {
    /// Agents by [`AgentStatus`] (idle, busy, offline).
    pub agents: [u64; 3],
    /// Tasks by [`TaskStatus`]; finished states count every task ever
    /// finished, including those dropped from history.
    pub tasks: [u64; 6],
    pub queued_units: usize,
    pub memory_entries: usize,
    pub memory_bytes: usize,
    pub discoveries: usize,
    pub counters: Counters,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Swarm {
    pub id: String,
    pub name: String,
    pub topology: Topology,
    pub strategy: Strategy,
    pub max_agents: u32,
    pub created_at: u64,
    // B-trees, not hash maps: growth never rehashes 100,000 agents or a
    // million tasks in one call (the 1 ms rule for normal schedulers).
    agents: BTreeMap<u64, Agent>,
    /// Agent seqs in join order (index = position).
    order: JoinOrder,
    /// Online push agents with a free slot.
    free: Vec<u64>,
    free_cursor: usize,
    cap_holders: BTreeMap<String, u32>,
    next_agent: u64,
    next_task: u64,
    next_discovery: u64,
    next_event: u64,
    /// Boxed: a B-tree leaf holds 11 entries and sequential inserts leave
    /// leaves about half full, so unboxed half the leaf space of a 256-byte
    /// task would be empty.
    tasks: BTreeMap<u64, Box<Task>>,
    finished: VecDeque<u64>,
    task_history: usize,
    queues: ReadyQueues,
    timers: Timers,
    memory: Memory,
    discoveries: discovery::Log,
    counters: Counters,
    agent_counts: [u64; 3],
    task_counts: [u64; 6],
    /// Swarm-wide success rate (EWMA), which sizes adaptive hedging.
    success_ewma: f64,
    /// Entries visited by the swarm's own scans and loops (free agents
    /// compared, units walked, timers fired, agents refilled), ever. Each
    /// command adds work bounded by its own size, never by the swarm's:
    /// tests check it.
    steps: u64,
    rng: SeededRng,
    /// The swarm's memory quota and the bytes its tasks hold.
    quota: Quota,
    ledger: Ledger,
    /// What work cost and the cost budget; saved after the rest of the
    /// swarm (see `state`), so a swarm saved before it existed loads.
    #[serde(skip)]
    accounts: budget::Accounts,
    /// Effects of the command being applied; drained after each one.
    #[serde(skip)]
    pub outbox: Outbox,
}

fn work_id(task_id: &str, unit: u32, attempt: u32) -> String {
    format!("{task_id}/{unit}/{attempt}")
}

impl Swarm {
    pub fn new(id: String, cfg: SwarmConfig, now: u64) -> Result<Swarm> {
        check_name("name", &cfg.name)?;
        if cfg.max_agents == 0 || cfg.max_agents > limits::MAX_AGENTS_PER_SWARM {
            return Err(Error::invalid(format!(
                "max_agents must be between 1 and {}",
                limits::MAX_AGENTS_PER_SWARM
            )));
        }
        accounting::check_quota(cfg.memory_quota)?;
        Ok(Swarm {
            id,
            name: cfg.name,
            topology: cfg.topology,
            strategy: cfg.strategy,
            max_agents: cfg.max_agents,
            created_at: now,
            agents: BTreeMap::new(),
            order: JoinOrder::default(),
            free: Vec::new(),
            free_cursor: 0,
            cap_holders: BTreeMap::new(),
            next_agent: 1,
            next_task: 1,
            next_discovery: 1,
            next_event: 1,
            tasks: BTreeMap::new(),
            finished: VecDeque::new(),
            task_history: cfg.task_history.max(1),
            queues: ReadyQueues::default(),
            timers: Timers::default(),
            memory: Memory::default(),
            discoveries: discovery::Log::new(cfg.discovery_log),
            counters: Counters::default(),
            agent_counts: [0; 3],
            task_counts: [0; 6],
            success_ewma: 1.0,
            steps: 0,
            // Replaced by `seed` for a swarm that must be deterministic.
            rng: SeededRng::new(rand::random()),
            quota: Quota::new(cfg.memory_quota),
            ledger: Ledger::default(),
            accounts: budget::Accounts::default(),
            outbox: Outbox::default(),
        })
    }

    // ---- events ---------------------------------------------------------

    fn emit(&mut self, now: u64, event: impl FnOnce() -> Event) {
        self.emit_from(now, |_| event());
    }

    /// Like `emit`, for an event built from the swarm itself.
    fn emit_from(&mut self, now: u64, event: impl FnOnce(&Self) -> Event) {
        self.counters.events += 1;
        // Numbered whether or not anyone listens: who listens is not part
        // of a replicated swarm's state, and its numbers must agree.
        let seq = self.next_event;
        self.next_event += 1;
        if self.outbox.record_events {
            let event = event(self);
            self.outbox.events.push(EventRecord {
                seq,
                at: now,
                event,
            });
        }
    }

    pub fn drain(&mut self) -> Outbox {
        let record = self.outbox.record_events;
        let out = std::mem::take(&mut self.outbox);
        self.outbox.record_events = record;
        out
    }

    // ---- lookups ----------------------------------------------------------

    fn local_seq(&self, id: &str, kind: Kind) -> Option<u64> {
        match ids::parse_child_id(id, kind) {
            Some((swarm, seq)) if swarm == self.id => Some(seq),
            _ => None,
        }
    }

    fn agent_seq(&self, agent_id: &str) -> Result<u64> {
        self.local_seq(agent_id, Kind::Agent)
            .filter(|s| self.agents.contains_key(s))
            .ok_or(Error::AgentNotFound)
    }

    fn task_seq(&self, task_id: &str) -> Result<u64> {
        self.local_seq(task_id, Kind::Task)
            .filter(|s| self.tasks.contains_key(s))
            .ok_or(Error::TaskNotFound)
    }

    pub fn agent(&self, agent_id: &str) -> Result<&Agent> {
        Ok(&self.agents[&self.agent_seq(agent_id)?])
    }

    pub fn agent_by_seq(&self, seq: u64) -> Option<&Agent> {
        self.agents.get(&seq)
    }

    /// Agents in join order.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.order.iter().map(|s| &self.agents[&s])
    }

    /// One page of agents in join order: at most `limit` (1 to
    /// `MAX_PAGE_SIZE`) from the cursor on, and the next page's cursor when
    /// more follow. Costs the page, not the swarm: no full list is built.
    pub fn agents_page(&self, cursor: Option<&str>, limit: usize) -> Result<Page<&Agent>> {
        let limit = paging::size(limit)?;
        // Positions in cursors are slots + 1, so that 0 is the first page.
        let from = paging::decode(cursor)?.saturating_sub(1) as usize;
        let entries = self
            .order
            .from_slot(from)
            .map(|(slot, seq)| (slot as u64 + 1, &self.agents[&seq]));
        Ok(paging::take(entries, limit))
    }

    /// An agent's position in join order (0-based), in O(log agents).
    pub fn position(&self, a: &Agent) -> usize {
        self.order.position(a.join_slot)
    }

    /// The agent at a position in join order.
    fn agent_at(&self, pos: usize) -> &Agent {
        &self.agents[&self.order.at(pos).expect("position in range")]
    }

    /// Work done so far, in entries visited (see the `steps` field and
    /// the ready queues' visits).
    pub fn steps(&self) -> u64 {
        self.steps + self.queues.visits()
    }

    pub fn agent_count(&self) -> usize {
        self.order.len()
    }

    pub fn task(&self, task_id: &str) -> Result<&Task> {
        Ok(&self.tasks[&self.task_seq(task_id)?])
    }

    pub fn status(&self) -> SwarmStatus {
        SwarmStatus {
            agents: self.agent_counts,
            tasks: self.task_counts,
            queued_units: self.queues.len(),
            memory_entries: self.memory.len(),
            memory_bytes: self.memory.bytes(),
            discoveries: self.discoveries.len(),
            counters: self.counters,
        }
    }
}

/// What every new agent must satisfy, added or imported.
fn check_agent(spec: &AgentSpec) -> Result<()> {
    check_name("agent type", &spec.agent_type)?;
    if let Some(n) = &spec.name {
        check_name("agent name", n)?;
    }
    if !spec.node.is_empty() {
        check_name("node", &spec.node)?;
    }
    check_list("capability", &spec.capabilities)?;
    check_payload("agent metadata", &spec.meta)?;
    if spec.capacity == 0 || spec.capacity > MAX_CAPACITY {
        return Err(Error::invalid(format!(
            "capacity must be between 1 and {MAX_CAPACITY}"
        )));
    }
    Ok(())
}

/// What every discovery must satisfy, shared or imported.
fn check_discovery(kind: &str, content: &[u8], tags: &[String], confidence: f64) -> Result<()> {
    check_name("discovery type", kind)?;
    check_payload("content", content)?;
    check_list("tag", tags)?;
    if !(0.0..=1.0).contains(&confidence) {
        return Err(Error::invalid("confidence must be between 0.0 and 1.0"));
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
