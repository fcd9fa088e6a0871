//! Snapshots: a swarm as plain data, and a swarm rebuilt from that data,
//! on this engine or another one.
//!
//! A [`Snapshot`] holds what a swarm must not lose: its agents (in join
//! order, so topology roles come back the same), its tasks (unfinished ones
//! and the finished-task history), its memory and its discoveries, with
//! their ids, and the sequence numbers the swarm would use next.
//!
//! [`Swarm::import`] rebuilds a swarm under the same ids:
//! - agents come back with their spec; push agents are offline until their
//!   process attaches, pull agents are online at once;
//! - finished tasks go back into the history as they were;
//! - unfinished tasks are queued again in submit order: units with a
//!   recorded result are done (their dependents see the result as context),
//!   the others start over with fresh attempts. Work that was in flight when
//!   the snapshot was taken is therefore run again;
//! - memory entries keep their versions and expiry; discoveries their ids;
//! - every id counter continues past both the recorded next number and the
//!   highest id imported, so no id is ever handed out twice;
//! - the memory quota comes back as it was, and the bytes held (see
//!   `crate::quota`) are measured again from what was imported. Import
//!   checks no quota: what it restores was acknowledged once.
//!
//! - what work cost comes back as totals: the swarm's (so its cost budget,
//!   also kept, sees what was spent) and each agent's, with the agent's
//!   latest session id.
//!
//! Not kept: agent metrics, counters (an imported swarm counts its tasks as
//! submitted and starts the rest at zero), subscriptions, and per-unit
//! attempt history (attempt counts, which agent ran a unit, a failed unit's
//! error; units of a finished task without a result read as cancelled).

use std::collections::HashSet;

use super::{check_agent, check_discovery, Agent, AgentAccount, Swarm, SwarmConfig};
use crate::discovery::{Discovery, Filter};
use crate::error::{Error, Result};
use crate::ids::{self, Kind};
use crate::limits;
use crate::memory::Entry;
use crate::model::*;
use crate::task::{self, Task, TaskResult, UnitState};
use crate::usage::{UnitUsage, Usage};

/// Largest sequence number or version a snapshot may carry (leaves room to
/// count on without overflow).
pub const MAX_SEQ: u64 = 1 << 62;

/// Longest task error kept: a failure reason (up to
/// [`limits::MAX_TEXT_BYTES`]) plus the unit name the engine puts before it.
const MAX_ERROR_BYTES: usize = 2 * limits::MAX_TEXT_BYTES;

/// The next sequence numbers a swarm hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextIds {
    pub agent: u64,
    pub task: u64,
    pub discovery: u64,
    /// The version the next memory write gets.
    pub memory_version: u64,
}

impl Default for NextIds {
    fn default() -> Self {
        NextIds {
            agent: 1,
            task: 1,
            discovery: 1,
            memory_version: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub id: String,
    pub agent_type: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub capacity: u32,
    pub dispatch: Dispatch,
    pub node: String,
    /// The host's data stored with the agent (the executor spec).
    pub meta: Payload,
    pub joined_at: u64,
    /// What the agent's attempts cost, in total.
    pub usage: Usage,
    /// The session id its latest unit reported.
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    /// A spec that rebuilds the task (see [`spec_of`]).
    pub spec: TaskSpec,
    pub status: TaskStatus,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// The aggregate of a completed task.
    pub result: Option<TaskResult>,
    pub error: Option<String>,
    /// Units the task was split into when submitted.
    pub units: u32,
    /// Results of the units that completed, by unit index.
    pub unit_results: Vec<(u32, Payload)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRecord {
    pub namespace: String,
    pub key: String,
    pub entry: Entry,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub topology: Topology,
    pub strategy: Strategy,
    pub max_agents: u32,
    pub created_at: u64,
    pub next_ids: NextIds,
    /// The swarm's memory quota (bytes; see `crate::quota`).
    pub memory_quota: u64,
    /// The cost budget (micro-dollars), if any.
    pub max_cost_micros: Option<u64>,
    /// What every attempt of the swarm cost, in total.
    pub usage: Usage,
    /// In join order.
    pub agents: Vec<AgentRecord>,
    /// In submit order: unfinished tasks and the finished-task history.
    pub tasks: Vec<TaskRecord>,
    /// Live entries, in (namespace, key) order.
    pub memory: Vec<MemoryRecord>,
    /// Oldest first.
    pub discoveries: Vec<Discovery>,
}

/// How a completed task's aggregate result is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultShape {
    Single,
    /// One result per unit, in unit order.
    List(usize),
    /// One result per subtask, by name, in subtask order.
    Named(Vec<String>),
}

/// The layout of the result of a task built from `spec` with `units` units
/// (mirrors [`Task::aggregate`]).
pub fn result_shape(spec: &TaskSpec, units: u32) -> ResultShape {
    if !spec.subtasks.is_empty() {
        ResultShape::Named(spec.subtasks.iter().map(|s| s.name.clone()).collect())
    } else if units == 1 {
        ResultShape::Single
    } else if spec.mode == ExecMode::Parallel {
        ResultShape::List(units as usize)
    } else {
        ResultShape::Single
    }
}

fn fits_shape(result: &TaskResult, shape: &ResultShape) -> bool {
    match (result, shape) {
        (TaskResult::Single(_), ResultShape::Single) => true,
        (TaskResult::List(items), ResultShape::List(n)) => items.len() == *n,
        (TaskResult::Named(items), ResultShape::Named(names)) => {
            items.len() == names.len() && items.iter().zip(names).all(|((n, _), m)| n == m)
        }
        _ => false,
    }
}

fn result_payloads(result: &TaskResult) -> Vec<&Payload> {
    match result {
        TaskResult::Single(p) => vec![p],
        TaskResult::List(ps) => ps.iter().collect(),
        TaskResult::Named(ps) => ps.iter().map(|(_, p)| p).collect(),
    }
}

/// A spec that rebuilds `t`: the same units, inputs, capabilities and
/// dependencies. A task with subtasks never uses its top-level input, so
/// that is not kept; a subtask's capabilities are the ones it adds to the
/// task's.
pub fn spec_of(t: &Task) -> TaskSpec {
    let subtasks = if t.has_subtasks {
        t.units
            .iter()
            .map(|u| SubtaskSpec {
                name: u.run().name.clone(),
                input: u.input.clone().unwrap_or_default(),
                depends_on: u
                    .deps()
                    .iter()
                    .map(|&d| t.units[d as usize].run().name.clone())
                    .collect(),
                capabilities: u
                    .capabilities()
                    .iter()
                    .filter(|c| !t.capabilities.contains(c))
                    .cloned()
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let input = if t.has_subtasks {
        Vec::new()
    } else {
        t.units
            .first()
            .and_then(|u| u.input.clone())
            .unwrap_or_default()
    };
    TaskSpec {
        description: t.description.to_string(),
        input,
        priority: t.priority,
        capabilities: t.capabilities.to_vec(),
        mode: t.mode,
        max_agents: t.max_agents,
        timeout_ms: t.timeout_ms,
        retry: t.retry,
        subtasks,
    }
}

fn task_record(swarm_id: &str, t: &Task) -> TaskRecord {
    TaskRecord {
        id: t.id(swarm_id),
        spec: spec_of(t),
        status: t.status,
        created_at: t.created_at,
        started_at: t.started_at(),
        finished_at: t.finished_at(),
        result: t.result().cloned(),
        error: t.error().map(str::to_owned),
        units: t.units.len() as u32,
        unit_results: t
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.state == UnitState::Done)
            .filter_map(|(i, u)| u.result().cloned().map(|r| (i as u32, r)))
            .collect(),
    }
}

fn agent_record(s: &Swarm, a: &Agent) -> AgentRecord {
    let account = s.agent_account(a.seq);
    AgentRecord {
        usage: account.usage,
        session_id: account.session_id.map(String::from),
        id: a.id.clone(),
        agent_type: a.agent_type.clone(),
        name: a.name.clone(),
        capabilities: a.capabilities.clone(),
        capacity: a.capacity,
        dispatch: a.dispatch,
        node: a.node.clone(),
        meta: a.meta.clone(),
        joined_at: a.joined_at,
    }
}

/// Swarm ids name registry entries and prefix every child id, so an
/// imported one must look like one the engine makes.
/// Checks that `id` is spelled like a swarm id.
pub fn check_swarm_id(id: &str) -> Result<()> {
    check_name("swarm id", id)?;
    let ok = id.strip_prefix("swarm-").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "swarm id {id:?} must be \"swarm-\" followed by letters, digits, '-' or '_'"
        )))
    }
}

/// Totals may be sums of many reports, but no field may pass
/// [`MAX_SEQ`] (sums stay far from overflow).
fn check_usage(what: &str, u: &Usage) -> Result<()> {
    for (name, v) in u.fields() {
        if v > MAX_SEQ {
            return Err(Error::invalid(format!(
                "{what}.{name} must be at most {MAX_SEQ}"
            )));
        }
    }
    Ok(())
}

fn check_cost(what: &str, micros: u64) -> Result<()> {
    if micros > limits::MAX_USAGE_VALUE {
        return Err(Error::invalid(format!(
            "{what} must be at most {} micro-dollars",
            limits::MAX_USAGE_VALUE
        )));
    }
    Ok(())
}

fn check_next(what: &str, n: u64) -> Result<()> {
    if n == 0 || n > MAX_SEQ {
        return Err(Error::invalid(format!(
            "next_ids.{what} must be between 1 and {MAX_SEQ}"
        )));
    }
    Ok(())
}

impl Swarm {
    /// The swarm as data, at time `now` (memory entries expired by then are
    /// left out).
    pub fn export(&self, now: u64) -> Snapshot {
        let mut s = self.export_header();
        s.agents = self.agents().map(|a| agent_record(self, a)).collect();
        s.tasks = self
            .tasks
            .values()
            .map(|t| task_record(&self.id, t))
            .collect();
        s.memory = self
            .memory
            .live_entries(now)
            .map(|(ns, key, e)| MemoryRecord {
                namespace: ns.to_owned(),
                key: key.to_owned(),
                entry: e.clone(),
            })
            .collect();
        s.discoveries = self
            .discoveries
            .recent(&Filter::default(), usize::MAX)
            .into_iter()
            .cloned()
            .collect();
        s
    }

    /// The swarm's own fields and next ids, without its agents, tasks,
    /// memory and discoveries.
    pub fn export_header(&self) -> Snapshot {
        Snapshot {
            id: self.id.clone(),
            name: self.name.clone(),
            topology: self.topology,
            strategy: self.strategy,
            max_agents: self.max_agents,
            created_at: self.created_at,
            next_ids: NextIds {
                agent: self.next_agent,
                task: self.next_task,
                discovery: self.next_discovery,
                memory_version: self.memory.next_version(),
            },
            memory_quota: self.memory_quota(),
            max_cost_micros: self.budget().max_cost_micros,
            usage: self.usage_total(),
            agents: Vec::new(),
            tasks: Vec::new(),
            memory: Vec::new(),
            discoveries: Vec::new(),
        }
    }

    pub fn export_agent(&self, agent_id: &str) -> Result<AgentRecord> {
        self.agent(agent_id).map(|a| agent_record(self, a))
    }

    pub fn export_task(&self, task_id: &str) -> Result<TaskRecord> {
        self.task(task_id).map(|t| task_record(&self.id, t))
    }

    /// A discovery still in the log; `KeyNotFound` once it has dropped out.
    pub fn export_discovery(&self, discovery_id: &str) -> Result<Discovery> {
        self.discoveries
            .recent(&Filter::default(), usize::MAX)
            .into_iter()
            .find(|d| d.id == discovery_id)
            .cloned()
            .ok_or(Error::KeyNotFound)
    }

    pub fn export_memory(&self, namespace: &str, key: &str, now: u64) -> Result<MemoryRecord> {
        let entry = self.memory_get(namespace, key, now)?.clone();
        Ok(MemoryRecord {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            entry,
        })
    }

    /// Rebuilds a swarm from a snapshot, with the same ids, at time `now`.
    /// See the module docs for what comes back and how.
    pub fn import(snap: Snapshot, now: u64) -> Result<Swarm> {
        check_swarm_id(&snap.id)?;
        let n = snap.next_ids;
        check_next("agent", n.agent)?;
        check_next("task", n.task)?;
        check_next("discovery", n.discovery)?;
        check_next("memory_version", n.memory_version)?;
        if snap.agents.len() > snap.max_agents as usize {
            return Err(Error::invalid(format!(
                "the snapshot has {} agents, more than its max_agents ({})",
                snap.agents.len(),
                snap.max_agents
            )));
        }
        let cfg = SwarmConfig {
            name: snap.name,
            topology: snap.topology,
            strategy: snap.strategy,
            max_agents: snap.max_agents,
            memory_quota: snap.memory_quota,
            ..Default::default()
        };
        let mut s = Swarm::new(snap.id, cfg, snap.created_at)?;
        check_usage("usage", &snap.usage)?;
        if let Some(b) = snap.max_cost_micros {
            check_cost("max_cost", b)?;
        }
        // Before the tasks are queued again: a spent budget holds them.
        s.restore_accounts(snap.max_cost_micros, snap.usage);
        let mut next = n;
        for (i, a) in snap.agents.into_iter().enumerate() {
            let place = format!("agent {i} ({:?})", a.id);
            let seq = s.restore_agent(a).map_err(|e| e.within(&place))?;
            next.agent = next.agent.max(seq + 1);
        }
        let seq = s.restore_discoveries(snap.discoveries)?;
        next.discovery = next.discovery.max(seq + 1);
        for m in snap.memory {
            let place = format!("memory entry {:?}/{:?}", m.namespace, m.key);
            s.memory
                .restore(m.namespace, m.key, m.entry, now)
                .map_err(|e| e.within(&place))?;
        }
        let seq = s.restore_tasks(snap.tasks, now)?;
        next.task = next.task.max(seq + 1);
        s.next_agent = next.agent;
        s.next_task = next.task;
        s.next_discovery = next.discovery;
        s.memory.reserve_versions(next.memory_version);
        s.recount_tasks();
        // Nobody listens yet: what the rebuild emitted goes nowhere.
        s.drain();
        ids::reserve_swarm_id(&s.id);
        Ok(s)
    }

    /// The sequence number of an imported child id, which must belong to
    /// this swarm.
    fn imported_seq(&self, id: &str, kind: Kind) -> Result<u64> {
        match ids::parse_child_id(id, kind) {
            // Only the canonical spelling: a task's id is derived from its
            // number again, so `task-07` would not survive a round trip.
            Some((swarm, seq))
                if swarm == self.id
                    && (1..MAX_SEQ).contains(&seq)
                    && ids::child_id(swarm, kind, seq) == id =>
            {
                Ok(seq)
            }
            _ => Err(Error::invalid(format!(
                "{id:?} is not {} id of swarm {}",
                match kind {
                    Kind::Agent => "an agent",
                    Kind::Task => "a task",
                    Kind::Discovery => "a discovery",
                },
                self.id
            ))),
        }
    }

    fn restore_agent(&mut self, r: AgentRecord) -> Result<u64> {
        let seq = self.imported_seq(&r.id, Kind::Agent)?;
        if self.agents.contains_key(&seq) {
            return Err(Error::invalid("the agent id appears twice"));
        }
        check_usage("usage", &r.usage)?;
        let account = AgentAccount {
            usage: r.usage,
            session_id: r.session_id.map(String::into_boxed_str),
        };
        UnitUsage {
            usage: Usage::default(),
            session_id: account.session_id.clone(),
        }
        .check()?;
        let spec = AgentSpec {
            name: Some(r.name),
            agent_type: r.agent_type,
            capabilities: r.capabilities,
            dispatch: r.dispatch,
            capacity: r.capacity,
            node: r.node,
            meta: r.meta,
        };
        check_agent(&spec)?;
        self.insert_agent(seq, r.id, spec, r.joined_at);
        self.restore_agent_account(seq, account);
        Ok(seq)
    }

    /// Puts discoveries back into the log, oldest first. Returns the highest
    /// sequence number seen (0 if none).
    fn restore_discoveries(&mut self, list: Vec<Discovery>) -> Result<u64> {
        let mut keyed = Vec::with_capacity(list.len());
        for (i, d) in list.into_iter().enumerate() {
            let place = format!("discovery {i} ({:?})", d.id);
            let check = |d: &Discovery| -> Result<u64> {
                let seq = self.imported_seq(&d.id, Kind::Discovery)?;
                check_discovery(&d.kind, &d.content, &d.tags, d.confidence)?;
                if let Some(a) = &d.agent_id {
                    check_name("agent_id", a)?;
                }
                Ok(seq)
            };
            let seq = check(&d).map_err(|e| e.within(&place))?;
            keyed.push((seq, d));
        }
        keyed.sort_by_key(|(seq, _)| *seq);
        if let Some(w) = keyed.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::invalid(format!(
                "discovery id {:?} appears twice",
                w[0].1.id
            )));
        }
        let last = keyed.last().map_or(0, |(seq, _)| *seq);
        for (_, d) in keyed {
            self.discoveries.push(d, crate::quota::Room::UNLIMITED)?;
        }
        Ok(last)
    }

    /// Puts tasks back: finished ones into the history (in the order they
    /// finished), unfinished ones into the queues (in submit order).
    /// Returns the highest sequence number seen (0 if none).
    fn restore_tasks(&mut self, records: Vec<TaskRecord>, now: u64) -> Result<u64> {
        let mut finished = Vec::new();
        let mut open = Vec::new();
        let mut seen = HashSet::with_capacity(records.len());
        let mut last = 0;
        for r in records {
            let place = format!("task {:?}", r.id);
            let seq = self
                .imported_seq(&r.id, Kind::Task)
                .map_err(|e| e.within(&place))?;
            if !seen.insert(seq) {
                return Err(Error::invalid(format!(
                    "{place}: the task id appears twice"
                )));
            }
            last = last.max(seq);
            let task = build_task(seq, r).map_err(|e| e.within(&place))?;
            if task.0.status.is_terminal() {
                finished.push(task);
            } else {
                open.push(task);
            }
        }
        finished.sort_by_key(|(t, _)| (t.finished_at(), t.seq));
        for (t, _) in finished {
            let seq = t.seq;
            self.task_counts[t.status as usize] += 1;
            self.tasks.insert(seq, Box::new(t));
            self.finished.push_back(seq);
        }
        while self.finished.len() > self.task_history {
            if let Some(old) = self.finished.pop_front() {
                self.tasks.remove(&old);
            }
        }
        // They were all submitted to this swarm.
        self.counters.tasks_submitted += seen.len() as u64;
        open.sort_by_key(|(t, _)| t.seq);
        for (t, done) in open {
            self.restore_open_task(t, done, now);
        }
        Ok(last)
    }

    /// Queues an unfinished task again: completed units keep their result,
    /// the units they unblock and the roots are made ready; a task with
    /// nothing left to run completes now.
    fn restore_open_task(&mut self, mut t: Task, done: Vec<u32>, now: u64) {
        let seq = t.seq;
        for &i in &done {
            for d in t.units[i as usize].dependents().to_vec() {
                t.units[d as usize].pending_deps -= 1;
            }
        }
        let complete = !done.is_empty() && (t.is_hedged() || t.unfinished == 0);
        let ready: Vec<u32> = t
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.state == UnitState::Blocked && u.pending_deps == 0)
            .map(|(i, _)| i as u32)
            .collect();
        self.tasks.insert(seq, Box::new(t));
        self.task_counts[TaskStatus::Pending as usize] += 1;
        if complete {
            self.finish_task(seq, TaskStatus::Completed, None, now);
            return;
        }
        for u in ready {
            self.make_ready(seq, u, now);
        }
    }
}

/// Builds a task from its record: the units its spec makes (with the
/// recorded unit count), completed units holding their results, and for a
/// finished task its status, result and error. Returns the task and the
/// indices of its completed units.
fn build_task(seq: u64, r: TaskRecord) -> Result<(Task, Vec<u32>)> {
    task::validate(&r.spec)?;
    let subtasks = r.spec.subtasks.len();
    if subtasks > 0 && r.units as usize != subtasks {
        return Err(Error::invalid(format!(
            "units is {} but the spec has {subtasks} subtasks",
            r.units
        )));
    }
    if subtasks == 0 && (r.units == 0 || r.units > r.spec.max_agents) {
        return Err(Error::invalid(format!(
            "units must be between 1 and the spec's max_agents ({})",
            r.spec.max_agents
        )));
    }
    if let Some(e) = &r.error {
        if e.len() > MAX_ERROR_BYTES {
            return Err(Error::TooLarge {
                what: "error",
                size: e.len(),
                limit: MAX_ERROR_BYTES,
            });
        }
    }
    let terminal = r.status.is_terminal();
    if terminal && r.finished_at.is_none() {
        return Err(Error::invalid(format!(
            "a {} task needs finished_at",
            r.status.as_str()
        )));
    }
    match (&r.result, r.status) {
        (None, TaskStatus::Completed) => {
            return Err(Error::invalid("a completed task needs its result"));
        }
        (Some(res), TaskStatus::Completed) => {
            if !fits_shape(res, &result_shape(&r.spec, r.units)) {
                return Err(Error::invalid(format!(
                    "result does not fit the task: expected {}",
                    match result_shape(&r.spec, r.units) {
                        ResultShape::Single => "one result".to_owned(),
                        ResultShape::List(n) => format!("a list of {n} results"),
                        ResultShape::Named(_) =>
                            "a map from each subtask name to its result".into(),
                    }
                )));
            }
            for p in result_payloads(res) {
                check_payload("result", p)?;
            }
        }
        (Some(_), status) => {
            return Err(Error::invalid(format!(
                "only a completed task has a result, this one is {}",
                status.as_str()
            )));
        }
        (None, _) => {}
    }
    let mut t = Task::new(seq, r.spec, r.units, r.created_at);
    if r.started_at.is_some() {
        t.life_mut().started_at = r.started_at;
    }
    let mut done = Vec::with_capacity(r.unit_results.len());
    for (i, result) in r.unit_results {
        let Some(u) = t.units.get_mut(i as usize) else {
            return Err(Error::invalid(format!(
                "unit_results names unit {i}, but the task has {} units",
                r.units
            )));
        };
        if u.state == UnitState::Done {
            return Err(Error::invalid(format!("unit_results names unit {i} twice")));
        }
        check_payload("result", &result)?;
        u.state = UnitState::Done;
        u.run_mut().result = Some(result);
        t.unfinished -= 1;
        done.push(i);
    }
    if terminal {
        // Units without a result did not finish before the task did.
        for u in &mut t.units {
            if u.state != UnitState::Done {
                u.state = UnitState::Cancelled;
            }
        }
        t.unfinished = 0;
        t.status = r.status;
        let life = t.life_mut();
        life.finished_at = r.finished_at;
        life.error = r.error;
        life.result = r.result;
    }
    Ok((t, done))
}
