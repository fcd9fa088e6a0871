//! Tasks: submission, status and results, cancellation, and the reports
//! agents make about their work.

use rustler::{Encoder, Env, LocalPid, Term};
use ruv_swarm_core::ids::Kind;
use ruv_swarm_core::limits;
use ruv_swarm_core::{Error, ExecMode, Priority, RetryPolicy, SubtaskSpec, TaskSpec};

use crate::registry::{self, ok, ok_atom, with_swarm};
use crate::{atoms, codec};

fn subtask(t: Term) -> ruv_swarm_core::Result<SubtaskSpec> {
    codec::ensure_map(t, "each subtask")?;
    let name = codec::field(t, atoms::name())
        .ok_or_else(|| Error::invalid("each subtask needs a name"))?;
    Ok(SubtaskSpec {
        name: codec::string(name, "subtask name")?,
        input: codec::field(t, atoms::input())
            .map(codec::payload)
            .unwrap_or_default(),
        depends_on: match codec::field(t, atoms::depends_on()) {
            Some(v) => codec::strings(v, "depends_on", limits::MAX_SUBTASKS)?,
            None => Vec::new(),
        },
        capabilities: match codec::field(t, atoms::capabilities()) {
            Some(v) => codec::strings(v, "capabilities", limits::MAX_LIST_ITEMS)?,
            None => Vec::new(),
        },
    })
}

pub(crate) fn spec(t: Term) -> ruv_swarm_core::Result<TaskSpec> {
    codec::ensure_map(t, "a task")?;
    let mut s = TaskSpec::default();
    if let Some(v) = codec::field(t, atoms::description()) {
        s.description = codec::string(v, "description")?;
    }
    if let Some(v) = codec::field(t, atoms::input()) {
        s.input = codec::payload(v);
    }
    if let Some(v) = codec::field(t, atoms::priority()) {
        s.priority = codec::name_of(v, "priority", Priority::parse)?;
    }
    if let Some(v) = codec::field(t, atoms::capabilities()) {
        s.capabilities = codec::strings(v, "capabilities", limits::MAX_LIST_ITEMS)?;
    }
    if let Some(v) = codec::field(t, atoms::strategy()) {
        s.mode = codec::name_of(v, "strategy", ExecMode::parse)?;
    }
    if let Some(v) = codec::field(t, atoms::max_agents()) {
        s.max_agents = codec::uint(v, "max_agents", 1, limits::MAX_TASK_AGENTS as u64)? as u32;
    }
    s.timeout_ms = match codec::field(t, atoms::timeout_ms()) {
        Some(v) => Some(codec::uint(v, "timeout_ms", 1, limits::MAX_TIMEOUT_MS)?),
        None => None,
    };
    let mut retry = RetryPolicy::default();
    if let Some(v) = codec::field(t, atoms::retries()) {
        retry.max_attempts = codec::uint(v, "retries", 1, limits::MAX_ATTEMPTS as u64)? as u32;
    }
    if let Some(v) = codec::field(t, atoms::backoff_ms()) {
        retry.base_backoff_ms = codec::uint(v, "backoff_ms", 0, limits::MAX_TIMEOUT_MS)?;
        retry.max_backoff_ms = retry.max_backoff_ms.max(retry.base_backoff_ms);
    }
    if let Some(v) = codec::field(t, atoms::max_backoff_ms()) {
        retry.max_backoff_ms = codec::uint(v, "max_backoff_ms", 0, limits::MAX_TIMEOUT_MS)?;
    }
    s.retry = retry;
    if let Some(v) = codec::field(t, atoms::subtasks()) {
        s.subtasks = codec::list(v, "subtasks", limits::MAX_SUBTASKS, |_, st| subtask(st))?;
    }
    Ok(s)
}

/// Submits a task. `notify` (a pid or nil) gets `{:swarm_task_done, id,
/// outcome}` when it ends, as if it had called `task_watch` at once.
#[rustler::nif]
fn task_submit<'a>(env: Env<'a>, swarm_id: Term<'a>, task: Term<'a>, notify: Term<'a>) -> Term<'a> {
    // Decoded before the swarm is locked: other commands wait less.
    let spec = spec(task);
    let notify = if codec::is_nil(notify) {
        Ok(None)
    } else {
        codec::any_pid(notify, "notify").map(Some)
    };
    let cell = registry::swarm_of(swarm_id);
    with_swarm(env, cell, |st, now| {
        let spec = spec?;
        let notify = match notify? {
            Some(pid) => codec::pid_for(pid, st.replicated(), "notify")?,
            None => None,
        };
        let id = st.swarm.submit(spec, now)?;
        if let Some(pid) = notify {
            // Registered before the effects are delivered, so even a task
            // that finished within this call is reported.
            st.boxes.waiters.entry(id.clone()).or_default().push(pid);
        }
        ok(env, codec::bin(env, &id))
    })
}

/// Status of a task; with `results = true`, its results too.
#[rustler::nif]
fn task_get<'a>(env: Env<'a>, task_id: Term<'a>, results: Term<'a>) -> Term<'a> {
    let id = codec::string(task_id, "task id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Task));
    with_swarm(env, cell, |st, _| {
        let results = codec::boolean(results, "results")?;
        let t = st.swarm.task(&id?)?;
        ok(env, codec::task(env, &st.swarm, t, results))
    })
}

#[rustler::nif]
fn task_cancel<'a>(env: Env<'a>, task_id: Term<'a>) -> Term<'a> {
    let id = codec::string(task_id, "task id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Task));
    with_swarm(env, cell, |st, now| {
        st.swarm.cancel(&id?, now)?;
        ok_atom(env)
    })
}

/// Asks for `{:swarm_task_done, task_id, outcome}` when the task finishes.
/// Replies `{:done, outcome}` if it already has, `:watching` otherwise.
#[rustler::nif]
fn task_watch<'a>(env: Env<'a>, task_id: Term<'a>, pid: LocalPid) -> Term<'a> {
    let id = codec::string(task_id, "task id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Task));
    with_swarm(env, cell, |st, _| {
        let id = id?;
        let t = st.swarm.task(&id)?;
        if t.status.is_terminal() {
            return Ok((atoms::done(), codec::outcome(env, t)).encode(env));
        }
        let waiters = st.boxes.waiters.entry(id).or_default();
        if !waiters.contains(&pid) {
            waiters.push(pid);
        }
        Ok(atoms::watching().encode(env))
    })
}

/// Stops `pid` waiting for the task (a caller that gave up waiting), so no
/// outcome reaches it later.
#[rustler::nif]
fn task_unwatch<'a>(env: Env<'a>, task_id: Term<'a>, pid: LocalPid) -> Term<'a> {
    let id = codec::string(task_id, "task id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Task));
    with_swarm(env, cell, |st, _| {
        let id = id?;
        if let Some(waiters) = st.boxes.waiters.get_mut(&id) {
            waiters.retain(|p| *p != pid);
            if waiters.is_empty() {
                st.boxes.waiters.remove(&id);
            }
        }
        ok_atom(env)
    })
}

fn work_cell(
    work_id: &ruv_swarm_core::Result<String>,
) -> ruv_swarm_core::Result<std::sync::Arc<registry::Cell>> {
    work_id.clone().and_then(|w| registry::owning_work(&w))
}

pub(crate) fn accepted(env: Env, applied: bool) -> ruv_swarm_core::Result<Term> {
    Ok(if applied {
        atoms::ok()
    } else {
        atoms::ignored()
    }
    .encode(env))
}

/// `work_progress/3`: a fraction only.
#[rustler::nif]
fn work_progress<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    progress: Term<'a>,
) -> Term<'a> {
    progress_report(env, work_id, agent_id, progress, None)
}

/// `work_progress/4`: a fraction (nil: unknown, the attempt's last one
/// stands) and a message (nil or a string, cut to
/// `MAX_PROGRESS_MESSAGE_BYTES`).
#[rustler::nif(name = "work_progress")]
fn work_progress_message<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    progress: Term<'a>,
    message: Term<'a>,
) -> Term<'a> {
    progress_report(env, work_id, agent_id, progress, Some(message))
}

fn progress_report<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    progress: Term<'a>,
    message: Option<Term<'a>>,
) -> Term<'a> {
    let w = codec::string(work_id, "work id");
    with_swarm(env, work_cell(&w), |st, now| {
        let p = if message.is_some() && codec::is_nil(progress) {
            None
        } else {
            Some(codec::number(progress, "progress")?)
        };
        let message = match message {
            Some(m) => codec::opt_string(m, "message")?,
            None => None,
        };
        let agent = codec::string(agent_id, "agent id")?;
        let applied = st
            .swarm
            .report_progress(&w?, &agent, p, message.as_deref(), now)?;
        accepted(env, applied)
    })
}

/// Records a result. Replies `:ok`, or `:ignored` for a late duplicate.
#[rustler::nif]
fn work_complete<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    result: Term<'a>,
) -> Term<'a> {
    complete(env, work_id, agent_id, result, None)
}

/// `work_complete/4`: with what the attempt cost (see `codec::unit_usage`).
#[rustler::nif(name = "work_complete")]
fn work_complete_usage<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    result: Term<'a>,
    usage: Term<'a>,
) -> Term<'a> {
    complete(env, work_id, agent_id, result, Some(usage))
}

fn complete<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    result: Term<'a>,
    usage: Option<Term<'a>>,
) -> Term<'a> {
    let w = codec::string(work_id, "work id");
    let agent = codec::string(agent_id, "agent id");
    let result = codec::payload(result);
    let usage = usage
        .map(codec::unit_usage)
        .transpose()
        .map(Option::flatten);
    with_swarm(env, work_cell(&w), |st, now| {
        let applied = st
            .swarm
            .complete_work_with(&w?, &agent?, result, usage?, now)?;
        accepted(env, applied)
    })
}

#[rustler::nif]
fn work_fail<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    reason: Term<'a>,
    timed_out: Term<'a>,
) -> Term<'a> {
    fail(env, [work_id, agent_id, reason, timed_out], None)
}

/// `work_fail/5`: with what the failed attempt cost.
#[rustler::nif(name = "work_fail")]
fn work_fail_usage<'a>(
    env: Env<'a>,
    work_id: Term<'a>,
    agent_id: Term<'a>,
    reason: Term<'a>,
    timed_out: Term<'a>,
    usage: Term<'a>,
) -> Term<'a> {
    fail(env, [work_id, agent_id, reason, timed_out], Some(usage))
}

fn fail<'a>(env: Env<'a>, args: [Term<'a>; 4], usage: Option<Term<'a>>) -> Term<'a> {
    let [work_id, agent_id, reason, timed_out] = args;
    let w = codec::string(work_id, "work id");
    with_swarm(env, work_cell(&w), |st, now| {
        let agent = codec::string(agent_id, "agent id")?;
        let reason = codec::string(reason, "reason")?;
        let timed_out = codec::boolean(timed_out, "timed_out")?;
        let usage = usage.map(codec::unit_usage).transpose()?.flatten();
        let applied = st
            .swarm
            .fail_work_with(&w?, &agent, &reason, timed_out, usage, now)?;
        accepted(env, applied)
    })
}

/// A pull agent claims work: `{:ok, work}` or `{:error, :no_task}`.
#[rustler::nif]
fn work_claim<'a>(env: Env<'a>, agent_id: Term<'a>, lease_ms: Term<'a>) -> Term<'a> {
    let id = codec::string(agent_id, "agent id");
    let cell = id.clone().and_then(|id| registry::owning(&id, Kind::Agent));
    with_swarm(env, cell, |st, now| {
        let id = id?;
        let lease = codec::uint(lease_ms, "lease_ms", 1, limits::MAX_TIMEOUT_MS)?;
        match st.swarm.claim(&id, lease, now)? {
            Some(w) => ok(env, codec::work(env, &st.swarm.id, &id, &w)),
            None => Ok((atoms::error(), atoms::no_task()).encode(env)),
        }
    })
}
