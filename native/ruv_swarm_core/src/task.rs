//! Tasks and their units of work.
//!
//! A task is split into units when it is submitted:
//! - explicit subtasks become one unit each, ordered by their dependency DAG;
//! - `parallel` fans the same input out to up to `max_agents` units;
//! - `sequential` chains up to `max_agents` units, each fed the previous
//!   unit's result;
//! - `adaptive` hedges: it starts as many units as the swarm's observed
//!   success rate calls for and takes the first result.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UnitState {
    /// Waiting for dependencies.
    Blocked,
    /// Queued or about to be dispatched.
    Ready,
    /// Waiting out a retry backoff.
    Delayed,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl UnitState {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Blocked => "blocked",
            UnitState::Ready => "pending",
            UnitState::Delayed => "retrying",
            UnitState::Running => "running",
            UnitState::Done => "completed",
            UnitState::Failed => "failed",
            UnitState::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            UnitState::Done | UnitState::Failed | UnitState::Cancelled
        )
    }
}

/// Longest failure reason kept per attempt (and as an agent's last error).
pub const MAX_ATTEMPT_ERROR_BYTES: usize = 512;

/// How one attempt of a unit ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttemptOutcome {
    Completed,
    /// Failed with this reason (truncated to [`MAX_ATTEMPT_ERROR_BYTES`]).
    Failed(Box<str>),
    /// Ran out of time (a deadline or a pull agent's lease).
    TimedOut(Box<str>),
    /// Stopped because its task ended first.
    Cancelled,
}

/// One ended attempt: who ran it, how it ended and how long it took.
/// A unit has at most `limits::MAX_ATTEMPTS` of them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    /// The agent (sequence number) that ran it.
    pub agent: u64,
    pub outcome: AttemptOutcome,
    pub duration_ms: u64,
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncated(s: &str, max: usize) -> Box<str> {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

/// The rarely needed part of a unit: allocated only once a unit has any
/// of it (a subtask's name, capabilities or dependencies, a result, a
/// failure, an ended attempt). A queued unit of a plain task has none.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UnitRun {
    /// A subtask's name; empty for the units of a task without subtasks,
    /// whose names are derived (see [`Task::unit_name`]).
    pub name: String,
    pub deps: Vec<u32>,
    pub dependents: Vec<u32>,
    /// A subtask's own capabilities (with the task's); empty for the units
    /// of a task without subtasks, which need the task's (see
    /// [`Task::caps_of`]), so they are stored once.
    pub capabilities: Vec<String>,
    /// Agents that already failed this unit; retries go elsewhere if possible.
    pub excluded: Vec<u64>,
    /// Agent this unit should go to if it is free (ring pipelines).
    pub preferred: Option<u64>,
    pub result: Option<Payload>,
    pub error: Option<String>,
    /// Ended attempts, oldest first.
    pub history: Vec<AttemptRecord>,
}

static NO_RUN: UnitRun = UnitRun {
    name: String::new(),
    deps: Vec::new(),
    dependents: Vec::new(),
    capabilities: Vec::new(),
    excluded: Vec::new(),
    preferred: None,
    result: None,
    error: None,
    history: Vec::new(),
};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    /// `None`: the input is the previous pipeline step's result.
    pub input: Option<Payload>,
    pub pending_deps: u32,
    pub state: UnitState,
    /// Attempts started so far (the current attempt's number when running).
    pub attempts: u32,
    /// Agent (by sequence number) running or last running this unit.
    pub agent: Option<u64>,
    pub dispatched_at: u64,
    /// While `Ready` and queued: the queue entry's order, so the entry can
    /// be taken out when the task ends first.
    pub queue_order: u64,
    /// Everything else, allocated the first time any of it is set.
    run: Option<Box<UnitRun>>,
}

impl Unit {
    fn new(input: Option<Payload>) -> Self {
        Unit {
            input,
            pending_deps: 0,
            state: UnitState::Blocked,
            attempts: 0,
            agent: None,
            dispatched_at: 0,
            queue_order: 0,
            run: None,
        }
    }

    /// The unit's run state (empty until any of it is set).
    pub fn run(&self) -> &UnitRun {
        self.run.as_deref().unwrap_or(&NO_RUN)
    }

    /// The unit's run state for a change, allocated on first use.
    pub fn run_mut(&mut self) -> &mut UnitRun {
        self.run.get_or_insert_with(Box::default)
    }

    /// Whether the run state is allocated (what it costs in memory).
    pub fn has_run(&self) -> bool {
        self.run.is_some()
    }

    pub fn deps(&self) -> &[u32] {
        &self.run().deps
    }

    pub fn dependents(&self) -> &[u32] {
        &self.run().dependents
    }

    pub fn capabilities(&self) -> &[String] {
        &self.run().capabilities
    }

    pub fn excluded(&self) -> &[u64] {
        &self.run().excluded
    }

    pub fn preferred(&self) -> Option<u64> {
        self.run().preferred
    }

    pub fn result(&self) -> Option<&Payload> {
        self.run().result.as_ref()
    }

    pub fn error(&self) -> Option<&str> {
        self.run().error.as_deref()
    }

    /// Ended attempts, oldest first.
    pub fn history(&self) -> &[AttemptRecord] {
        &self.run().history
    }

    /// Records the end of the running attempt on `agent`.
    pub fn record_attempt(&mut self, agent: u64, outcome: AttemptOutcome, now: u64) {
        let record = AttemptRecord {
            attempt: self.attempts,
            agent,
            outcome,
            duration_ms: now.saturating_sub(self.dispatched_at),
        };
        self.run_mut().history.push(record);
    }
}

/// The aggregated result of a completed task.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TaskResult {
    /// One unit, a sequential pipeline's last step, or an adaptive winner.
    Single(Payload),
    /// A parallel fan-out, in unit order.
    List(Vec<Payload>),
    /// Explicit subtasks, by name.
    Named(Vec<(String, Payload)>),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// The task's number in its swarm; its id is derived from it (see
    /// [`Task::id`]).
    pub seq: u64,
    pub description: Box<str>,
    pub priority: Priority,
    pub mode: ExecMode,
    /// Capabilities the task as a whole asked for (sorted, deduplicated).
    pub capabilities: Box<[String]>,
    /// The fan-out bound it was submitted with.
    pub max_agents: u32,
    pub has_subtasks: bool,
    pub timeout_ms: Option<u64>,
    pub retry: RetryPolicy,
    pub status: TaskStatus,
    pub created_at: u64,
    pub units: Box<[Unit]>,
    pub unfinished: u32,
    /// What the task held when the swarm's ledger last measured it
    /// (inputs, results; see [`crate::quota::Ledger`]).
    pub measured: (usize, usize),
    /// When it started and how it ended, allocated once it starts.
    life: Option<Box<TaskLife>>,
}

/// The part of a task a queued one does not have yet.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TaskLife {
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub result: Option<TaskResult>,
    pub error: Option<String>,
}

/// Checks a spec against the limits and its DAG for cycles.
pub fn validate(spec: &TaskSpec) -> Result<()> {
    if description_is_input(spec) {
        // The text is the task's input too (stored once), so it has the
        // payload limit.
        check_payload("task", spec.description.as_bytes())?;
    } else {
        check_text("description", &spec.description)?;
    }
    check_payload("input", &spec.input)?;
    check_list("capability", &spec.capabilities)?;
    if spec.description.is_empty() && spec.input.is_empty() && spec.subtasks.is_empty() {
        return Err(Error::invalid(
            "a task needs a description, an input or subtasks",
        ));
    }
    if spec.max_agents == 0 || spec.max_agents > crate::limits::MAX_TASK_AGENTS {
        return Err(Error::invalid(format!(
            "max_agents must be between 1 and {}",
            crate::limits::MAX_TASK_AGENTS
        )));
    }
    if let Some(t) = spec.timeout_ms {
        if t == 0 || t > crate::limits::MAX_TIMEOUT_MS {
            return Err(Error::invalid(format!(
                "timeout_ms must be between 1 and {}",
                crate::limits::MAX_TIMEOUT_MS
            )));
        }
    }
    let r = spec.retry;
    if r.max_attempts == 0 || r.max_attempts > crate::limits::MAX_ATTEMPTS {
        return Err(Error::invalid(format!(
            "retries (max attempts) must be between 1 and {}",
            crate::limits::MAX_ATTEMPTS
        )));
    }
    if r.base_backoff_ms > r.max_backoff_ms || r.max_backoff_ms > crate::limits::MAX_TIMEOUT_MS {
        return Err(Error::invalid(
            "backoff must satisfy base <= max <= one day",
        ));
    }
    if spec.subtasks.len() > crate::limits::MAX_SUBTASKS {
        return Err(Error::TooLarge {
            what: "subtasks",
            size: spec.subtasks.len(),
            limit: crate::limits::MAX_SUBTASKS,
        });
    }
    let mut total = spec.input.len();
    let mut names = HashMap::new();
    for (i, s) in spec.subtasks.iter().enumerate() {
        check_name("subtask name", &s.name)?;
        check_list("capability", &s.capabilities)?;
        total += s.input.len();
        if total > crate::limits::MAX_PAYLOAD_BYTES {
            return Err(Error::TooLarge {
                what: "task inputs",
                size: total,
                limit: crate::limits::MAX_PAYLOAD_BYTES,
            });
        }
        if names.insert(s.name.as_str(), i).is_some() {
            return Err(Error::invalid(format!(
                "subtask name {:?} is used twice",
                s.name
            )));
        }
    }
    for s in &spec.subtasks {
        for d in &s.depends_on {
            if !names.contains_key(d.as_str()) {
                return Err(Error::invalid(format!(
                    "subtask {:?} depends on unknown subtask {:?}",
                    s.name, d
                )));
            }
        }
    }
    if let Some(cycle) = find_cycle(spec, &names) {
        return Err(Error::DependencyCycle(cycle.join(" -> ")));
    }
    Ok(())
}

/// A task without an input or subtasks: its description is its input
/// (what a plain-text task is), handed to agents as a binary.
pub fn description_is_input(spec: &TaskSpec) -> bool {
    spec.input.is_empty() && spec.subtasks.is_empty()
}

/// A dependency cycle as a list of names (first name repeated at the end).
fn find_cycle(spec: &TaskSpec, names: &HashMap<&str, usize>) -> Option<Vec<String>> {
    // Iterative DFS with colours: 0 new, 1 on the stack, 2 done.
    let n = spec.subtasks.len();
    let deps: Vec<Vec<usize>> = spec
        .subtasks
        .iter()
        .map(|s| s.depends_on.iter().map(|d| names[d.as_str()]).collect())
        .collect();
    let mut colour = vec![0u8; n];
    for root in 0..n {
        if colour[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                match colour[d] {
                    0 => {
                        colour[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let start = stack.iter().position(|&(s, _)| s == d).expect("on stack");
                        let mut cycle: Vec<String> = stack[start..]
                            .iter()
                            .map(|&(s, _)| spec.subtasks[s].name.clone())
                            .collect();
                        cycle.push(spec.subtasks[d].name.clone());
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

impl Task {
    /// Builds a validated task with `fan_out` units for a task without
    /// subtasks (ignored when it has subtasks).
    pub fn new(seq: u64, spec: TaskSpec, fan_out: u32, now: u64) -> Task {
        let caps = normalize_caps(spec.capabilities);
        let has_subtasks = !spec.subtasks.is_empty();
        // Exactly as many as there are: a first push would reserve four.
        let mut units = Vec::with_capacity(if has_subtasks {
            spec.subtasks.len()
        } else {
            fan_out.max(1) as usize
        });
        if has_subtasks {
            let index: HashMap<String, u32> = spec
                .subtasks
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i as u32))
                .collect();
            for s in &spec.subtasks {
                let mut sub_caps = caps.clone();
                sub_caps.extend(s.capabilities.iter().cloned());
                let mut u = Unit::new(Some(s.input.clone()));
                let run = u.run_mut();
                run.name = s.name.clone();
                run.capabilities = normalize_caps(sub_caps);
                run.deps = s.depends_on.iter().map(|d| index[d]).collect();
                run.deps.sort_unstable();
                run.deps.dedup();
                u.pending_deps = u.deps().len() as u32;
                units.push(u);
            }
            for i in 0..units.len() {
                for d in units[i].deps().to_vec() {
                    units[d as usize].run_mut().dependents.push(i as u32);
                }
            }
        } else {
            let k = fan_out.max(1);
            for i in 0..k {
                let input = match spec.mode {
                    ExecMode::Sequential if k > 1 && i > 0 => None,
                    _ => Some(spec.input.clone()),
                };
                let mut u = Unit::new(input);
                if spec.mode == ExecMode::Sequential && i > 0 {
                    u.run_mut().deps = vec![i - 1];
                    u.pending_deps = 1;
                }
                units.push(u);
            }
            if spec.mode == ExecMode::Sequential {
                for i in 1..units.len() {
                    units[i - 1].run_mut().dependents.push(i as u32);
                }
            }
        }
        Task {
            seq,
            description: spec.description.into_boxed_str(),
            priority: spec.priority,
            mode: spec.mode,
            capabilities: caps.into_boxed_slice(),
            max_agents: spec.max_agents,
            has_subtasks,
            timeout_ms: spec.timeout_ms,
            retry: spec.retry,
            status: TaskStatus::Pending,
            created_at: now,
            unfinished: units.len() as u32,
            units: units.into_boxed_slice(),
            measured: (0, 0),
            life: None,
        }
    }

    /// When its first unit was dispatched.
    pub fn started_at(&self) -> Option<u64> {
        self.life.as_ref().and_then(|l| l.started_at)
    }

    pub fn finished_at(&self) -> Option<u64> {
        self.life.as_ref().and_then(|l| l.finished_at)
    }

    /// The aggregated result of a completed task.
    pub fn result(&self) -> Option<&TaskResult> {
        self.life.as_ref().and_then(|l| l.result.as_ref())
    }

    /// Why the task failed, timed out or was cancelled.
    pub fn error(&self) -> Option<&str> {
        self.life.as_ref().and_then(|l| l.error.as_deref())
    }

    /// Start and end for a change, allocated on first use.
    pub fn life_mut(&mut self) -> &mut TaskLife {
        self.life.get_or_insert_with(Box::default)
    }

    /// Whether start and end are allocated (what it costs in memory).
    pub fn has_life(&self) -> bool {
        self.life.is_some()
    }

    /// The task's id in the swarm `swarm_id`.
    pub fn id(&self, swarm_id: &str) -> String {
        crate::ids::child_id(swarm_id, crate::ids::Kind::Task, self.seq)
    }

    /// A unit's name: a subtask's own, or for the units of a task without
    /// subtasks `main` (one unit), `part-N` (parallel), `try-N` (adaptive)
    /// or `step-N` (sequential).
    pub fn unit_name(&self, unit: u32) -> Cow<'_, str> {
        if self.has_subtasks {
            return Cow::Borrowed(&self.units[unit as usize].run().name);
        }
        if self.units.len() == 1 {
            return Cow::Borrowed("main");
        }
        let stem = match self.mode {
            ExecMode::Parallel => "part",
            ExecMode::Adaptive => "try",
            ExecMode::Sequential => "step",
        };
        Cow::Owned(format!("{stem}-{}", unit + 1))
    }

    /// Dependency results a unit sees as its context: (name, result).
    pub fn context_of(&self, unit: u32) -> Vec<(String, Payload)> {
        self.units[unit as usize]
            .deps()
            .iter()
            .filter_map(|&d| {
                let u = &self.units[d as usize];
                u.result()
                    .cloned()
                    .map(|r| (self.unit_name(d).into_owned(), r))
            })
            .collect()
    }

    /// Capabilities an agent needs to run a unit.
    pub fn caps_of(&self, unit: u32) -> &[String] {
        if self.has_subtasks {
            self.units[unit as usize].capabilities()
        } else {
            &self.capabilities
        }
    }

    /// Whether a unit's input is the task's description: the unit takes
    /// the task's own input and the task has none (see
    /// [`description_is_input`]).
    pub fn input_is_description(&self, unit: u32) -> bool {
        !self.has_subtasks
            && self.units[unit as usize]
                .input
                .as_ref()
                .is_some_and(|i| i.is_empty())
    }

    /// The input for a unit: its own, or the previous step's result.
    pub fn input_of(&self, unit: u32) -> Payload {
        let u = &self.units[unit as usize];
        match &u.input {
            Some(i) => i.clone(),
            None => u
                .deps()
                .first()
                .and_then(|&d| self.units[d as usize].result().cloned())
                .unwrap_or_default(),
        }
    }

    /// Aggregates unit results once every unit is done.
    pub fn aggregate(&self) -> TaskResult {
        let result = |u: &Unit| u.result().cloned().unwrap_or_default();
        if self.has_subtasks {
            TaskResult::Named(
                self.units
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (self.unit_name(i as u32).into_owned(), result(u)))
                    .collect(),
            )
        } else if self.units.len() == 1 {
            TaskResult::Single(result(&self.units[0]))
        } else {
            match self.mode {
                ExecMode::Parallel => TaskResult::List(self.units.iter().map(result).collect()),
                ExecMode::Sequential => {
                    TaskResult::Single(result(self.units.last().expect("unit")))
                }
                ExecMode::Adaptive => TaskResult::Single(
                    self.units
                        .iter()
                        .find(|u| u.state == UnitState::Done)
                        .map(result)
                        .unwrap_or_default(),
                ),
            }
        }
    }

    /// An adaptive task split into tries: the first result wins.
    pub fn is_hedged(&self) -> bool {
        self.mode == ExecMode::Adaptive && !self.has_subtasks && self.units.len() > 1
    }

    pub fn attempts(&self) -> u32 {
        self.units.iter().map(|u| u.attempts).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str, deps: &[&str]) -> SubtaskSpec {
        SubtaskSpec {
            name: name.into(),
            input: name.as_bytes().to_vec(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            capabilities: vec![],
        }
    }

    fn spec_with(subtasks: Vec<SubtaskSpec>) -> TaskSpec {
        TaskSpec {
            description: "t".into(),
            subtasks,
            ..Default::default()
        }
    }

    #[test]
    fn cycles_are_rejected_with_their_path() {
        let spec = spec_with(vec![
            sub("a", &["c"]),
            sub("b", &["a"]),
            sub("c", &["b"]),
            sub("d", &[]),
        ]);
        match validate(&spec) {
            Err(Error::DependencyCycle(path)) => assert_eq!(path, "a -> c -> b -> a"),
            other => panic!("expected cycle, got {other:?}"),
        }
        let self_loop = spec_with(vec![sub("a", &["a"])]);
        assert!(matches!(
            validate(&self_loop),
            Err(Error::DependencyCycle(_))
        ));
    }

    #[test]
    fn unknown_and_duplicate_names_are_rejected() {
        assert!(validate(&spec_with(vec![sub("a", &["zz"])])).is_err());
        assert!(validate(&spec_with(vec![sub("a", &[]), sub("a", &[])])).is_err());
        assert!(validate(&spec_with(vec![sub("a", &[]), sub("b", &["a"])])).is_ok());
    }

    #[test]
    fn sequential_units_chain() {
        let spec = TaskSpec {
            description: "pipe".into(),
            input: b"x".to_vec(),
            mode: ExecMode::Sequential,
            max_agents: 3,
            ..Default::default()
        };
        let t = Task::new(1, spec, 3, 0);
        assert_eq!(t.units.len(), 3);
        assert_eq!(t.units[2].deps(), [1]);
        assert_eq!(t.units[0].dependents(), [1]);
        assert_eq!(t.unit_name(2), "step-3");
        assert_eq!(t.units[1].input, None);
        assert_eq!(t.input_of(0), b"x");
    }

    #[test]
    fn a_plain_text_task_has_the_payload_limit_and_is_its_own_input() {
        let text = "x".repeat(600_000);
        let plain = TaskSpec {
            description: text.clone(),
            ..Default::default()
        };
        assert!(validate(&plain).is_ok());
        let t = Task::new(1, plain, 1, 0);
        assert!(t.input_is_description(0));
        let with_input = TaskSpec {
            description: text,
            input: b"i".to_vec(),
            ..Default::default()
        };
        assert!(matches!(
            validate(&with_input),
            Err(Error::TooLarge {
                what: "description",
                ..
            })
        ));
        let too_big = TaskSpec {
            description: "x".repeat(crate::limits::MAX_PAYLOAD_BYTES + 1),
            ..Default::default()
        };
        assert!(matches!(
            validate(&too_big),
            Err(Error::TooLarge { what: "task", .. })
        ));
    }

    #[test]
    fn empty_task_is_rejected() {
        let spec = TaskSpec::default();
        assert!(validate(&spec).is_err());
    }
}
