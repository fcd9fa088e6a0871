//! One swarm: its agents, tasks, memory and discoveries, and every command
//! that changes them.
//!
//! A `Swarm` is a single-threaded state machine; callers serialise access
//! (the NIF keeps each swarm behind its own mutex, so one busy swarm never
//! blocks another). Each command takes `now` (ms) and leaves its effects in
//! [`Outbox`]: events, work to hand to push agents, work to cancel, and ids
//! of tasks that finished.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::discovery::{self, Discovery};
use crate::error::{Error, Result};
use crate::events::{Event, EventRecord};
use crate::ids::{self, Kind};
use crate::limits;
use crate::memory::{self, Entry, Memory, Query};
use crate::model::*;
use crate::scheduler::{self, ReadyQueues, Timer, TimerKind, Timers, Verdict};
use crate::task::{self, Task, TaskResult, UnitState};
use crate::topology;

pub mod snapshot;

/// How many free agents the scheduler compares before picking one.
const CANDIDATES: usize = 8;
/// Most units one agent may run at once.
pub const MAX_CAPACITY: u32 = 1024;

#[derive(Debug, Clone)]
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
    pub joined_at: u64,
    /// Position in join order; topology roles derive from it.
    pub pos: u32,
    free_idx: Option<u32>,
    /// Units in this agent's hands.
    work: Vec<Held>,
}

/// A unit an agent holds, and the slot (0..capacity) it occupies. A push
/// agent runs one worker per slot, so the slot names the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Results of the unit's dependencies, by unit name.
    pub context: Vec<(String, Payload)>,
    pub timeout_ms: Option<u64>,
    pub priority: Priority,
    /// Agents the work passed through, ending with the one that runs it.
    pub route: Vec<String>,
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct SwarmConfig {
    pub name: String,
    pub topology: Topology,
    pub strategy: Strategy,
    pub max_agents: u32,
    pub task_history: usize,
    pub discovery_log: usize,
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
    order: Vec<u64>,
    /// Online push agents with a free slot.
    free: Vec<u64>,
    free_cursor: usize,
    cap_holders: HashMap<String, u32>,
    next_agent: u64,
    next_task: u64,
    next_discovery: u64,
    next_event: u64,
    tasks: BTreeMap<u64, Task>,
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
    rng: SmallRng,
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
        Ok(Swarm {
            id,
            name: cfg.name,
            topology: cfg.topology,
            strategy: cfg.strategy,
            max_agents: cfg.max_agents,
            created_at: now,
            agents: BTreeMap::new(),
            order: Vec::new(),
            free: Vec::new(),
            free_cursor: 0,
            cap_holders: HashMap::new(),
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
            rng: SmallRng::from_rng(&mut rand::rng()),
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
        if self.outbox.record_events {
            let seq = self.next_event;
            self.next_event += 1;
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
        self.order.iter().map(|s| &self.agents[s])
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

    // ---- agents -----------------------------------------------------------

    pub fn add_agent(&mut self, spec: AgentSpec, now: u64) -> Result<String> {
        if self.order.len() as u32 >= self.max_agents {
            return Err(Error::SwarmFull {
                max: self.max_agents,
            });
        }
        check_agent(&spec)?;
        let seq = self.next_agent;
        self.next_agent += 1;
        let id = ids::child_id(&self.id, Kind::Agent, seq);
        let agent_type = spec.agent_type.clone();
        self.insert_agent(seq, id.clone(), spec, now);
        self.emit(now, || Event::AgentJoined {
            agent_id: id.clone(),
            agent_type,
        });
        Ok(id)
    }

    /// Puts a checked agent at the end of the join order. Push agents come
    /// online when their process attaches; pull agents need none.
    fn insert_agent(&mut self, seq: u64, id: String, spec: AgentSpec, joined_at: u64) {
        let capabilities = normalize_caps(spec.capabilities);
        for c in &capabilities {
            *self.cap_holders.entry(c.clone()).or_default() += 1;
        }
        let agent = Agent {
            seq,
            name: spec
                .name
                .unwrap_or_else(|| format!("{}-{}", spec.agent_type, seq)),
            id,
            agent_type: spec.agent_type,
            capabilities,
            dispatch: spec.dispatch,
            capacity: spec.capacity,
            running: 0,
            online: spec.dispatch == Dispatch::Pull,
            node: spec.node,
            meta: spec.meta,
            metrics: AgentMetrics::default(),
            joined_at,
            pos: self.order.len() as u32,
            free_idx: None,
            work: Vec::new(),
        };
        self.agent_counts[agent.status() as usize] += 1;
        self.agents.insert(seq, agent);
        self.order.push(seq);
    }

    /// The agent's process is up: it may receive work. A new process holds
    /// none of the work its predecessor had, so that work is retried.
    pub fn attach_agent(&mut self, agent_id: &str, now: u64) -> Result<()> {
        let seq = self.agent_seq(agent_id)?;
        self.take_work_back(seq, "agent process restarted", now);
        let before = self.agents[&seq].status();
        self.agents.get_mut(&seq).expect("present").online = true;
        self.after_agent_change(seq, before, now);
        self.fill_agent(seq, now);
        Ok(())
    }

    /// The agent's process is gone (crash, node loss): its work is retried
    /// elsewhere and it gets no more until it attaches again.
    pub fn detach_agent(&mut self, agent_id: &str, reason: &str, now: u64) -> Result<()> {
        let seq = self.agent_seq(agent_id)?;
        self.take_work_back(seq, reason, now);
        let before = self.agents[&seq].status();
        self.agents.get_mut(&seq).expect("present").online = false;
        self.after_agent_change(seq, before, now);
        Ok(())
    }

    pub fn remove_agent(&mut self, agent_id: &str, now: u64) -> Result<()> {
        let seq = self.agent_seq(agent_id)?;
        self.take_work_back(seq, "agent was removed", now);
        self.set_free(seq, false);
        let agent = self.agents.remove(&seq).expect("present");
        self.agent_counts[agent.status() as usize] -= 1;
        for c in &agent.capabilities {
            if let Some(n) = self.cap_holders.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    self.cap_holders.remove(c);
                }
            }
        }
        let pos = agent.pos as usize;
        self.order.remove(pos);
        for (i, s) in self.order.iter().enumerate().skip(pos) {
            self.agents.get_mut(s).expect("present").pos = i as u32;
        }
        self.emit(now, || Event::AgentLeft { agent_id: agent.id });
        // Roles may have shifted (a new hub or new leaves): let free
        // workers look for queued work.
        let free = self.free.clone();
        for s in free {
            self.fill_agent(s, now);
        }
        Ok(())
    }

    /// Fails every attempt the agent holds, so each is retried elsewhere.
    fn take_work_back(&mut self, seq: u64, reason: &str, now: u64) {
        let agent_id = self.agents[&seq].id.clone();
        let work = self.agents[&seq].work.clone();
        for Held {
            task,
            unit,
            attempt,
            ..
        } in work
        {
            let live = self.unit_is_live(task, unit, attempt, seq);
            self.release_agent(seq, task, unit, attempt, None, now);
            if live {
                let why = format!("agent {agent_id} lost its work: {reason}");
                self.fail_attempt(task, unit, Some(seq), &why, false, now);
            }
        }
    }

    fn unit_is_live(&self, task: u64, unit: u32, attempt: u32, agent: u64) -> bool {
        self.tasks.get(&task).is_some_and(|t| {
            let u = &t.units[unit as usize];
            u.state == UnitState::Running && u.attempts == attempt && u.agent == Some(agent)
        })
    }

    fn is_worker(&self, a: &Agent) -> bool {
        a.dispatch == Dispatch::Pull
            || topology::is_worker(self.topology, a.pos as usize, self.order.len())
    }

    fn can_take(&self, a: &Agent) -> bool {
        a.online && a.running < a.capacity
    }

    fn set_free(&mut self, seq: u64, want: bool) {
        let Some(a) = self.agents.get_mut(&seq) else {
            return;
        };
        match (a.free_idx, want) {
            (None, true) => {
                a.free_idx = Some(self.free.len() as u32);
                self.free.push(seq);
            }
            (Some(idx), false) => {
                a.free_idx = None;
                self.free.swap_remove(idx as usize);
                if let Some(&moved) = self.free.get(idx as usize) {
                    self.agents.get_mut(&moved).expect("present").free_idx = Some(idx);
                }
            }
            _ => {}
        }
    }

    /// Updates counts, the free set and emits a status change if any.
    fn after_agent_change(&mut self, seq: u64, before: AgentStatus, now: u64) {
        let a = &self.agents[&seq];
        let after = a.status();
        let free = a.dispatch == Dispatch::Push && self.can_take(a);
        self.set_free(seq, free);
        if before != after {
            self.agent_counts[before as usize] -= 1;
            self.agent_counts[after as usize] += 1;
            self.emit_from(now, |s| Event::AgentStatusChanged {
                agent_id: s.agents[&seq].id.clone(),
                status: after,
            });
        }
    }

    fn release_agent(
        &mut self,
        seq: u64,
        task: u64,
        unit: u32,
        attempt: u32,
        outcome: Option<(bool, u64)>,
        now: u64,
    ) -> Option<u32> {
        let a = self.agents.get_mut(&seq)?;
        let before = a.status();
        let mut slot = None;
        if let Some(i) = a.work.iter().position(|h| h.is(task, unit, attempt)) {
            slot = Some(a.work.swap_remove(i).slot);
            a.running -= 1;
        }
        if let Some((ok, latency)) = outcome {
            a.metrics.record(ok, latency as f64);
        }
        self.after_agent_change(seq, before, now);
        slot
    }

    /// Agent ids directly connected to `agent_id` in this topology.
    pub fn neighbours(&self, agent_id: &str) -> Result<Vec<String>> {
        let seq = self.agent_seq(agent_id)?;
        let pos = self.agents[&seq].pos as usize;
        Ok(topology::neighbours(self.topology, pos, self.order.len())
            .into_iter()
            .map(|p| self.agents[&self.order[p]].id.clone())
            .collect())
    }

    /// Hops of a coordination message from `origin` (or the swarm's entry
    /// point) to every agent: (from, to) agent ids, in delivery order.
    pub fn coordinate(
        &mut self,
        origin: Option<&str>,
        now: u64,
    ) -> Result<Vec<(Option<String>, String)>> {
        let start = match origin {
            Some(id) => Some(self.agents[&self.agent_seq(id)?].pos as usize),
            None => None,
        };
        let id_at = |p: usize| self.agents[&self.order[p]].id.clone();
        let hops: Vec<_> = topology::coordination_route(self.topology, start, self.order.len())
            .into_iter()
            .map(|(from, to)| (from.map(id_at), id_at(to)))
            .collect();
        self.counters.coordination_hops += hops.len() as u64;
        let from = origin.map(str::to_owned);
        let deliveries = hops.len();
        self.emit(now, || Event::Coordinated { from, deliveries });
        Ok(hops)
    }

    // ---- scheduling -----------------------------------------------------------

    /// Upper bound of agents able to run work needing `caps`.
    fn capable_workers(&self, caps: &[String]) -> u32 {
        let workers = topology::worker_count(self.topology, self.order.len()) as u32;
        caps.iter()
            .map(|c| self.cap_holders.get(c).copied().unwrap_or(0))
            .fold(workers, u32::min)
    }

    /// Picks a free push agent for a unit: preferred agent first, else the
    /// best of up to [`CANDIDATES`] capable workers by the swarm strategy,
    /// avoiding agents that already failed it while others exist.
    fn select_agent(
        &mut self,
        caps: &[String],
        excluded: &[u64],
        preferred: Option<u64>,
    ) -> Option<u64> {
        if self.free.is_empty() || caps.iter().any(|c| !self.cap_holders.contains_key(c)) {
            return None;
        }
        if let Some(p) = preferred {
            if let Some(a) = self.agents.get(&p) {
                if a.free_idx.is_some()
                    && self.is_worker(a)
                    && a.has_caps(caps)
                    && !excluded.contains(&p)
                {
                    return Some(p);
                }
            }
        }
        let len = self.free.len();
        self.free_cursor = (self.free_cursor + 1) % len;
        let mut fallback = None;
        let mut best: Option<(u64, f64)> = None;
        let mut seen = 0;
        for i in 0..len {
            let seq = self.free[(self.free_cursor + i) % len];
            let a = &self.agents[&seq];
            if !self.is_worker(a) || !a.has_caps(caps) {
                continue;
            }
            if excluded.contains(&seq) {
                fallback.get_or_insert(seq);
                continue;
            }
            // Lower cost wins.
            let cost = match self.strategy {
                Strategy::Balanced => {
                    a.load() * 1e6 + (a.metrics.completed + a.metrics.failed) as f64
                }
                Strategy::Specialized => {
                    (a.capabilities.len() - caps.len()) as f64 * 1e3 + a.load()
                }
                Strategy::Adaptive => a.load() - a.metrics.score() * 1e3,
            };
            if best.is_none_or(|(_, c)| cost < c) {
                best = Some((seq, cost));
            }
            seen += 1;
            if seen >= CANDIDATES {
                break;
            }
        }
        best.map(|(s, _)| s).or(fallback)
    }

    fn make_ready(&mut self, task: u64, unit: u32, now: u64) {
        let t = self.tasks.get_mut(&task).expect("live task");
        let u = &mut t.units[unit as usize];
        u.state = UnitState::Ready;
        let (caps, excluded, preferred) = (u.capabilities.clone(), u.excluded.clone(), u.preferred);
        let (priority, attempts) = (t.priority, u.attempts);
        match self.select_agent(&caps, &excluded, preferred) {
            Some(agent) => {
                self.start_unit(task, unit, agent, None, now);
            }
            None => self.queues.push(&caps, priority, task, unit, attempts),
        }
    }

    fn set_task_status(&mut self, task: u64, status: TaskStatus) {
        let t = self.tasks.get_mut(&task).expect("live task");
        if t.status != status {
            self.task_counts[t.status as usize] -= 1;
            self.task_counts[status as usize] += 1;
            t.status = status;
        }
    }

    /// Hands a ready unit to an agent. Push agents get it through the
    /// outbox; for pull agents it is returned.
    fn start_unit(
        &mut self,
        task: u64,
        unit: u32,
        agent: u64,
        lease_ms: Option<u64>,
        now: u64,
    ) -> Option<WorkItem> {
        let n = self.order.len();
        let a = &self.agents[&agent];
        let before = a.status();
        let dispatch = a.dispatch;
        let agent_id = a.id.clone();
        let route: Vec<String> = topology::work_path(self.topology, a.pos as usize, n)
            .into_iter()
            .map(|p| self.agents[&self.order[p]].id.clone())
            .collect();
        let t = self.tasks.get_mut(&task).expect("live task");
        let u = &mut t.units[unit as usize];
        u.attempts += 1;
        u.state = UnitState::Running;
        u.agent = Some(agent);
        u.dispatched_at = now;
        let attempt = u.attempts;
        let unit_name = u.name.clone();
        let timeout = lease_ms.or(t.timeout_ms);
        if t.started_at.is_none() {
            t.started_at = Some(now);
        }
        let work = WorkItem {
            work_id: work_id(&t.id, unit, attempt),
            task_id: t.id.clone(),
            unit: unit_name.clone(),
            attempt,
            description: t.description.clone(),
            input: t.input_of(unit),
            context: t.context_of(unit),
            timeout_ms: timeout,
            priority: t.priority,
            route,
        };
        // A push agent's worker starts the moment the work reaches it and a
        // pull agent claimed it to run it: either way it is running now.
        if t.status == TaskStatus::Pending {
            self.set_task_status(task, TaskStatus::Running);
        }
        let a = self.agents.get_mut(&agent).expect("agent");
        let slot = a.free_slot();
        a.running += 1;
        a.work.push(Held {
            task,
            unit,
            attempt,
            slot,
        });
        self.after_agent_change(agent, before, now);
        if let Some(ms) = timeout {
            self.timers.push(Timer {
                at: now + ms,
                kind: TimerKind::AttemptDeadline,
                task,
                unit,
                attempt,
            });
        }
        self.counters.units_dispatched += 1;
        // (Events are built only while someone listens.)
        self.emit(now, || Event::TaskAssigned {
            task_id: work.task_id.clone(),
            unit: unit_name.clone(),
            agent_id: agent_id.clone(),
            attempt,
        });
        self.emit(now, || Event::TaskStarted {
            task_id: work.task_id.clone(),
            unit: unit_name,
            agent_id: agent_id.clone(),
        });
        if dispatch == Dispatch::Pull {
            return Some(work);
        }
        self.outbox.dispatches.push(DispatchOrder {
            agent_seq: agent,
            agent_id,
            slot,
            work,
        });
        None
    }

    /// Gives a free push agent queued work until it is full.
    fn fill_agent(&mut self, seq: u64, now: u64) {
        loop {
            let Some(a) = self.agents.get(&seq) else {
                return;
            };
            if a.dispatch != Dispatch::Push
                || !self.can_take(a)
                || !self.is_worker(a)
                || self.queues.is_empty()
            {
                return;
            }
            let Some(entry) = self.pop_for_agent(seq) else {
                return;
            };
            self.start_unit(entry.task, entry.unit, seq, None, now);
        }
    }

    fn pop_for_agent(&mut self, seq: u64) -> Option<scheduler::QueueEntry> {
        let a = &self.agents[&seq];
        let agents = self.order.len();
        let tasks = &self.tasks;
        self.queues.pop_for(&a.capabilities, |e| {
            let Some(t) = tasks.get(&e.task) else {
                return Verdict::Stale;
            };
            let u = &t.units[e.unit as usize];
            if u.state != UnitState::Ready || u.attempts != e.attempt {
                Verdict::Stale
            } else if u.excluded.contains(&seq) && u.excluded.len() < agents {
                // Someone who has not failed this unit yet may take it.
                Verdict::Skip
            } else {
                Verdict::Take
            }
        })
    }

    // ---- tasks -----------------------------------------------------------------

    pub fn submit(&mut self, spec: TaskSpec, now: u64) -> Result<String> {
        task::validate(&spec)?;
        let caps = normalize_caps(spec.capabilities.clone());
        let workers = self.capable_workers(&caps).max(1);
        let fan_out = match spec.mode {
            _ if !spec.subtasks.is_empty() || spec.max_agents == 1 => 1,
            ExecMode::Parallel | ExecMode::Sequential => spec.max_agents.min(workers),
            // Hedge only while the swarm is failing noticeably.
            ExecMode::Adaptive if self.success_ewma >= 0.95 => 1,
            ExecMode::Adaptive => spec.max_agents.min(workers).min(3),
        };
        let seq = self.next_task;
        self.next_task += 1;
        let id = ids::child_id(&self.id, Kind::Task, seq);
        let task = Task::new(seq, id.clone(), spec, fan_out, now);
        let roots: Vec<u32> = task
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.pending_deps == 0)
            .map(|(i, _)| i as u32)
            .collect();
        self.tasks.insert(seq, task);
        self.task_counts[TaskStatus::Pending as usize] += 1;
        self.counters.tasks_submitted += 1;
        self.emit(now, || Event::TaskSubmitted {
            task_id: id.clone(),
        });
        for u in roots {
            self.make_ready(seq, u, now);
        }
        Ok(id)
    }

    pub fn cancel(&mut self, task_id: &str, now: u64) -> Result<()> {
        let seq = self.task_seq(task_id)?;
        let status = self.tasks[&seq].status;
        if status.is_terminal() {
            return Err(Error::TaskFinished(status.as_str()));
        }
        self.finish_task(
            seq,
            TaskStatus::Cancelled,
            Some("cancelled by request".into()),
            now,
        );
        Ok(())
    }

    fn parse_work_id(&self, work_id: &str) -> Result<(u64, u32, u32)> {
        let bad = || Error::invalid(format!("malformed work id {work_id:?}"));
        let mut parts = work_id.rsplitn(3, '/');
        let attempt = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let unit = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let task_id = parts.next().ok_or_else(bad)?;
        let seq = self.local_seq(task_id, Kind::Task).ok_or_else(bad)?;
        Ok((seq, unit, attempt))
    }

    /// Resolves a report about a work item. `None`: the report is late or
    /// duplicate (the attempt is no longer running on that agent).
    fn live_work(&self, work_id: &str, agent_id: &str) -> Result<Option<(u64, u32, u32, u64)>> {
        let (task, unit, attempt) = self.parse_work_id(work_id)?;
        let agent = self.agent_seq(agent_id)?;
        let Some(t) = self.tasks.get(&task) else {
            return Ok(None);
        };
        if unit as usize >= t.units.len() {
            return Err(Error::invalid(format!("work id {work_id:?} names no unit")));
        }
        Ok(self
            .unit_is_live(task, unit, attempt, agent)
            .then_some((task, unit, attempt, agent)))
    }

    pub fn report_progress(
        &mut self,
        work_id: &str,
        agent_id: &str,
        progress: f64,
        now: u64,
    ) -> Result<bool> {
        if !(0.0..=1.0).contains(&progress) {
            return Err(Error::invalid("progress must be between 0.0 and 1.0"));
        }
        let Some((task, unit, _, _)) = self.live_work(work_id, agent_id)? else {
            return Ok(false);
        };
        let task_id = self.tasks[&task].id.clone();
        let unit = self.tasks[&task].units[unit as usize].name.clone();
        let agent_id = agent_id.to_owned();
        self.emit(now, || Event::TaskProgress {
            task_id,
            unit,
            agent_id,
            progress,
        });
        Ok(true)
    }

    /// Records a unit's result. Returns `false` for a late or duplicate
    /// completion, which changes nothing.
    pub fn complete_work(
        &mut self,
        work_id: &str,
        agent_id: &str,
        result: Payload,
        now: u64,
    ) -> Result<bool> {
        check_payload("result", &result)?;
        let Some((task, unit, attempt, agent)) = self.live_work(work_id, agent_id)? else {
            return Ok(false);
        };
        let latency = now.saturating_sub(self.tasks[&task].units[unit as usize].dispatched_at);
        self.release_agent(agent, task, unit, attempt, Some((true, latency)), now);
        self.success_ewma = 0.9 * self.success_ewma + 0.1;
        self.counters.units_completed += 1;
        let t = self.tasks.get_mut(&task).expect("live task");
        let u = &mut t.units[unit as usize];
        u.state = UnitState::Done;
        u.result = Some(result);
        u.error = None;
        t.unfinished -= 1;
        if t.is_hedged() || t.unfinished == 0 {
            self.finish_task(task, TaskStatus::Completed, None, now);
        } else {
            let dependents = t.units[unit as usize].dependents.clone();
            let ring_pipeline = self.topology == Topology::Ring
                && t.mode == ExecMode::Sequential
                && !t.has_subtasks;
            let next_agent = ring_pipeline
                .then(|| self.agents.get(&agent))
                .flatten()
                .map(|a| self.order[topology::ring_next(a.pos as usize, self.order.len())]);
            for d in dependents {
                let t = self.tasks.get_mut(&task).expect("live task");
                let du = &mut t.units[d as usize];
                du.pending_deps -= 1;
                if du.pending_deps == 0 && du.state == UnitState::Blocked {
                    du.preferred = next_agent;
                    self.make_ready(task, d, now);
                }
            }
        }
        self.fill_agent(agent, now);
        Ok(true)
    }

    /// Records a failed attempt; the unit is retried with backoff on
    /// another agent, or fails the task once out of attempts.
    pub fn fail_work(
        &mut self,
        work_id: &str,
        agent_id: &str,
        reason: &str,
        timed_out: bool,
        now: u64,
    ) -> Result<bool> {
        let reason = truncate(reason, limits::MAX_TEXT_BYTES);
        let Some((task, unit, attempt, agent)) = self.live_work(work_id, agent_id)? else {
            return Ok(false);
        };
        self.fail_held(agent, (task, unit, attempt), reason, timed_out, now);
        Ok(true)
    }

    /// A unit the agent `seq` holds failed: the agent lets it go (and may
    /// take queued work), the unit is retried or fails its task.
    fn fail_held(
        &mut self,
        seq: u64,
        (task, unit, attempt): (u64, u32, u32),
        reason: &str,
        timed_out: bool,
        now: u64,
    ) {
        let latency = now.saturating_sub(self.tasks[&task].units[unit as usize].dispatched_at);
        self.release_agent(seq, task, unit, attempt, Some((false, latency)), now);
        self.fail_attempt(task, unit, Some(seq), reason, timed_out, now);
        self.fill_agent(seq, now);
    }

    /// Whether the unit `work_id` is live in the agent's `slot`.
    pub fn slot_holds(&self, agent_id: &str, slot: u32, work_id: &str) -> Result<bool> {
        let seq = self.agent_seq(agent_id)?;
        let (task, unit, attempt) = self.parse_work_id(work_id)?;
        Ok(self.agents[&seq]
            .work
            .iter()
            .any(|h| h.slot == slot && h.is(task, unit, attempt)))
    }

    /// The worker in an agent's `slot` died: whatever unit it held is a
    /// failed attempt, retried elsewhere. Returns whether one was held.
    pub fn worker_lost(
        &mut self,
        agent_id: &str,
        slot: u32,
        reason: &str,
        now: u64,
    ) -> Result<bool> {
        let seq = self.agent_seq(agent_id)?;
        let Some(h) = self.agents[&seq]
            .work
            .iter()
            .find(|h| h.slot == slot)
            .copied()
        else {
            return Ok(false);
        };
        let reason = truncate(reason, limits::MAX_TEXT_BYTES);
        self.fail_held(seq, (h.task, h.unit, h.attempt), reason, false, now);
        Ok(true)
    }

    fn fail_attempt(
        &mut self,
        task: u64,
        unit: u32,
        agent: Option<u64>,
        reason: &str,
        timed_out: bool,
        now: u64,
    ) {
        self.success_ewma *= 0.9;
        self.counters.units_failed += 1;
        let t = self.tasks.get_mut(&task).expect("live task");
        let retry = t.retry;
        let u = &mut t.units[unit as usize];
        u.error = Some(reason.to_owned());
        if let Some(a) = agent {
            if !u.excluded.contains(&a) {
                u.excluded.push(a);
            }
        }
        if u.attempts < retry.max_attempts {
            let attempt = u.attempts;
            let delay = scheduler::backoff_ms(
                retry.base_backoff_ms,
                retry.max_backoff_ms,
                attempt,
                &mut self.rng,
            );
            u.state = UnitState::Delayed;
            self.counters.retries += 1;
            let (task_id, unit_name) = (t.id.clone(), u.name.clone());
            let why = reason.to_owned();
            self.emit(now, || Event::TaskRetried {
                task_id,
                unit: unit_name,
                attempt: attempt + 1,
                delay_ms: delay,
                reason: why,
            });
            if delay == 0 {
                self.make_ready(task, unit, now);
            } else {
                self.timers.push(Timer {
                    at: now + delay,
                    kind: TimerKind::RetryReady,
                    task,
                    unit,
                    attempt,
                });
            }
            return;
        }
        u.state = UnitState::Failed;
        let (name, attempts) = (u.name.clone(), u.attempts);
        t.unfinished -= 1;
        // A hedged task fails only when every try failed.
        if t.is_hedged() && t.units.iter().any(|u| !u.state.is_finished()) {
            return;
        }
        let status = if timed_out {
            TaskStatus::TimedOut
        } else {
            TaskStatus::Failed
        };
        let error = format!("unit {name} failed after {attempts} attempt(s): {reason}");
        self.finish_task(task, status, Some(error), now);
    }

    fn finish_task(&mut self, task: u64, status: TaskStatus, error: Option<String>, now: u64) {
        self.set_task_status(task, status);
        let t = self.tasks.get_mut(&task).expect("live task");
        t.finished_at = Some(now);
        t.error = error.clone();
        if status == TaskStatus::Completed {
            t.result = Some(t.aggregate());
        }
        let mut released = Vec::new();
        for (i, u) in t.units.iter_mut().enumerate() {
            if u.state.is_finished() {
                continue;
            }
            if u.state == UnitState::Running {
                if let Some(a) = u.agent {
                    released.push((
                        a,
                        i as u32,
                        u.attempts,
                        work_id(&t.id, i as u32, u.attempts),
                    ));
                }
            }
            u.state = UnitState::Cancelled;
        }
        t.unfinished = 0;
        let task_id = t.id.clone();
        let reason = format!("task {}", status.as_str());
        let freed: Vec<u64> = released.iter().map(|r| r.0).collect();
        for (agent, unit, attempt, wid) in released {
            // No slot, nothing held there to cancel.
            if let Some(slot) = self.release_agent(agent, task, unit, attempt, None, now) {
                self.outbox.cancels.push(CancelOrder {
                    agent_seq: agent,
                    work_id: wid,
                    slot,
                    reason: reason.clone(),
                });
            }
        }
        self.finished.push_back(task);
        while self.finished.len() > self.task_history {
            if let Some(old) = self.finished.pop_front() {
                self.tasks.remove(&old);
            }
        }
        self.outbox.finished.push(task_id.clone());
        self.emit(now, || Event::TaskFinished {
            task_id,
            status,
            error,
        });
        // Agents whose attempts were cancelled may take queued work now.
        for agent in freed {
            self.fill_agent(agent, now);
        }
    }

    /// A pull agent takes the next unit it may run, holding it for
    /// `lease_ms`; an expired lease puts the unit back in the queue.
    pub fn claim(&mut self, agent_id: &str, lease_ms: u64, now: u64) -> Result<Option<WorkItem>> {
        if lease_ms == 0 || lease_ms > limits::MAX_TIMEOUT_MS {
            return Err(Error::invalid(format!(
                "lease_ms must be between 1 and {}",
                limits::MAX_TIMEOUT_MS
            )));
        }
        let seq = self.agent_seq(agent_id)?;
        let a = &self.agents[&seq];
        if a.dispatch != Dispatch::Pull {
            return Err(Error::NotPullAgent(a.id.clone()));
        }
        if !self.can_take(a) {
            return Ok(None);
        }
        // Retries whose backoff just ended are claimable now, not at the
        // next periodic tick.
        self.tick(now, 64);
        let Some(entry) = self.pop_for_agent(seq) else {
            return Ok(None);
        };
        Ok(self.start_unit(entry.task, entry.unit, seq, Some(lease_ms), now))
    }

    /// Fires due timers (attempt deadlines, leases, retry backoffs) and
    /// expires memory, doing at most `budget` of each. Returns whether more
    /// is already due, so the caller can come back at once.
    pub fn tick(&mut self, now: u64, budget: usize) -> bool {
        let mut done = 0;
        while done < budget {
            let Some(timer) = self.timers.pop_due(now) else {
                break;
            };
            done += 1;
            let Some(t) = self.tasks.get(&timer.task) else {
                continue;
            };
            let u = &t.units[timer.unit as usize];
            if u.attempts != timer.attempt {
                continue;
            }
            match (timer.kind, u.state) {
                (TimerKind::AttemptDeadline, UnitState::Running) => {
                    let agent = u.agent.expect("running unit has an agent");
                    let elapsed = now.saturating_sub(u.dispatched_at);
                    let pull = self
                        .agents
                        .get(&agent)
                        .is_some_and(|a| a.dispatch == Dispatch::Pull);
                    let reason = if pull {
                        format!("lease expired after {elapsed} ms")
                    } else {
                        format!("timed out after {elapsed} ms")
                    };
                    let wid = work_id(&t.id, timer.unit, timer.attempt);
                    let slot = self.release_agent(
                        agent,
                        timer.task,
                        timer.unit,
                        timer.attempt,
                        Some((false, elapsed)),
                        now,
                    );
                    if let (false, Some(slot)) = (pull, slot) {
                        self.outbox.cancels.push(CancelOrder {
                            agent_seq: agent,
                            work_id: wid,
                            slot,
                            reason: reason.clone(),
                        });
                    }
                    self.fail_attempt(timer.task, timer.unit, Some(agent), &reason, true, now);
                    self.fill_agent(agent, now);
                }
                (TimerKind::RetryReady, UnitState::Delayed) => {
                    self.make_ready(timer.task, timer.unit, now)
                }
                _ => {}
            }
        }
        for (namespace, key) in self.memory.expire(now, budget) {
            self.emit(now, || Event::MemoryExpired { namespace, key });
        }
        self.next_deadline().is_some_and(|at| at <= now)
    }

    /// When the next timer or memory expiry is due, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.timers.next_at(), self.memory.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- memory ----------------------------------------------------------------

    pub fn memory_store(&mut self, req: memory::StoreRequest<'_>, now: u64) -> Result<u64> {
        let (namespace, key) = (req.namespace.to_owned(), req.key.to_owned());
        let version = self.memory.store(req, now)?;
        self.counters.memory_writes += 1;
        self.emit(now, || Event::MemoryStored {
            namespace,
            key,
            version,
        });
        Ok(version)
    }

    pub fn memory_get(&self, namespace: &str, key: &str, now: u64) -> Result<&Entry> {
        self.memory
            .get(namespace, key, now)
            .ok_or(Error::KeyNotFound)
    }

    pub fn memory_delete(&mut self, namespace: &str, key: &str, now: u64) -> Result<()> {
        if !self.memory.delete(namespace, key, now) {
            return Err(Error::KeyNotFound);
        }
        self.counters.memory_writes += 1;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.emit(now, || Event::MemoryDeleted { namespace, key });
        Ok(())
    }

    pub fn memory_search(&self, query: &Query, now: u64) -> Vec<(&str, &str, &Entry)> {
        self.memory.search(query, now)
    }

    // ---- discoveries -------------------------------------------------------

    pub fn share_discovery(
        &mut self,
        agent_id: Option<&str>,
        kind: &str,
        content: Payload,
        confidence: f64,
        tags: Vec<String>,
        now: u64,
    ) -> Result<Discovery> {
        check_discovery(kind, &content, &tags, confidence)?;
        let agent_id = match agent_id {
            Some(a) => Some(self.agent(a)?.id.clone()),
            None => None,
        };
        let seq = self.next_discovery;
        self.next_discovery += 1;
        let d = Discovery {
            id: ids::child_id(&self.id, Kind::Discovery, seq),
            agent_id,
            kind: kind.to_owned(),
            content,
            confidence,
            tags,
            at: now,
        };
        self.discoveries.push(d.clone());
        self.counters.discoveries_shared += 1;
        let (discovery_id, agent_id, kind) = (d.id.clone(), d.agent_id.clone(), d.kind.clone());
        self.emit(now, || Event::DiscoveryShared {
            discovery_id,
            agent_id,
            kind,
        });
        Ok(d)
    }

    pub fn recent_discoveries(&self, filter: &discovery::Filter, limit: usize) -> Vec<&Discovery> {
        self.discoveries.recent(filter, limit)
    }

    pub fn task_result(&self, task_id: &str) -> Result<Option<&TaskResult>> {
        Ok(self.task(task_id)?.result.as_ref())
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
