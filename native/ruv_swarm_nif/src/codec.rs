//! Decoding caller terms (with errors that say what was wrong) and encoding
//! engine records as maps with atom keys.

use rustler::{Atom, Binary, Encoder, Env, Term};
use ruv_swarm_core::discovery::Discovery;
use ruv_swarm_core::events::{Event, EventRecord};
use ruv_swarm_core::limits;
use ruv_swarm_core::memory::Entry;
use ruv_swarm_core::swarm::Budget;
use ruv_swarm_core::swarm::{Agent, WorkItem};
use ruv_swarm_core::task::{AttemptOutcome, AttemptRecord, Task, TaskResult, UnitState};
use ruv_swarm_core::usage::{UnitUsage, Usage};
use ruv_swarm_core::{Error, Payload, Result, Swarm, TaskStatus};

use crate::atoms;

// ---- decoding ---------------------------------------------------------------

fn invalid(what: &str, expected: &str) -> Error {
    Error::invalid(format!("{what} must be {expected}"))
}

/// A pid term: `Some` when it is a pid of this VM, `None` for any other
/// pid (another node's, or one of a previous run of this node, as a
/// replicated swarm's log replays it).
pub fn any_pid(t: Term, what: &str) -> Result<Option<rustler::LocalPid>> {
    if t.get_type() != rustler::TermType::Pid {
        return Err(Error::invalid(format!("{what} must be a pid")));
    }
    Ok(t.decode::<rustler::LocalPid>().ok())
}

/// A local pid, or for a replicated swarm any pid (see [`any_pid`]).
pub fn pid_for(
    pid: Option<rustler::LocalPid>,
    replicated: bool,
    what: &str,
) -> Result<Option<rustler::LocalPid>> {
    match pid {
        None if !replicated => Err(Error::invalid(format!("{what} must be a local pid"))),
        pid => Ok(pid),
    }
}

pub fn is_nil(t: Term) -> bool {
    t == atoms::nil().to_term(t.get_env())
}

pub fn string(t: Term, what: &str) -> Result<String> {
    let bin = Binary::from_term(t).map_err(|_| invalid(what, "a string"))?;
    std::str::from_utf8(bin.as_slice())
        .map(str::to_owned)
        .map_err(|_| invalid(what, "valid UTF-8"))
}

pub fn opt_string(t: Term, what: &str) -> Result<Option<String>> {
    if is_nil(t) {
        Ok(None)
    } else {
        string(t, what).map(Some)
    }
}

/// A list, refusing to walk more than `max` items; each item decoded by
/// `f`, given its index.
pub fn list<'a, T>(
    t: Term<'a>,
    what: &'static str,
    max: usize,
    mut f: impl FnMut(usize, Term<'a>) -> Result<T>,
) -> Result<Vec<T>> {
    let len = t.list_length().map_err(|_| invalid(what, "a list"))?;
    if len > max {
        return Err(Error::TooLarge {
            what,
            size: len,
            limit: max,
        });
    }
    let iter = t
        .into_list_iterator()
        .map_err(|_| invalid(what, "a list"))?;
    iter.enumerate().map(|(i, item)| f(i, item)).collect()
}

/// A list of at most `max` strings.
pub fn strings(t: Term, what: &'static str, max: usize) -> Result<Vec<String>> {
    list(t, what, max, |_, item| string(item, what))
}

pub fn uint(t: Term, what: &str, min: u64, max: u64) -> Result<u64> {
    match t.decode::<i64>() {
        Ok(n) if n >= min as i64 && (n as u64) <= max => Ok(n as u64),
        _ => Err(Error::invalid(format!(
            "{what} must be an integer between {min} and {max}"
        ))),
    }
}

pub fn number(t: Term, what: &str) -> Result<f64> {
    if let Ok(f) = t.decode::<f64>() {
        if f.is_finite() {
            return Ok(f);
        }
    }
    t.decode::<i64>()
        .map(|i| i as f64)
        .map_err(|_| invalid(what, "a number"))
}

pub fn boolean(t: Term, what: &str) -> Result<bool> {
    t.decode::<bool>()
        .map_err(|_| invalid(what, "true or false"))
}

/// An atom's text, or a string. Reading an atom's text never creates an
/// atom.
pub fn text(t: Term, what: &str) -> Result<String> {
    if t.is_atom() {
        t.atom_to_string()
            .map_err(|_| invalid(what, "an atom or a string"))
    } else {
        string(t, what)
    }
}

/// An enum given as an atom (or a string) from its fixed set of names.
pub fn name_of<T>(t: Term, what: &str, parse: fn(&str) -> Result<T>) -> Result<T> {
    parse(&text(t, what)?).map_err(|e| Error::invalid(format!("{what}: {e}")))
}

pub fn ensure_map(t: Term, what: &str) -> Result<()> {
    if t.is_map() {
        Ok(())
    } else {
        Err(invalid(what, "a map"))
    }
}

/// Optional field of a map argument.
pub fn field<'a>(map: Term<'a>, key: Atom) -> Option<Term<'a>> {
    map.map_get(key).ok().filter(|v| !is_nil(*v))
}

/// Any term, stored in external term format.
pub fn payload(t: Term) -> Vec<u8> {
    t.to_binary().as_slice().to_vec()
}

/// The counts of a usage map (absent ones 0), each at most `max`.
pub fn usage_counts(t: Term, max: u64) -> Result<Usage> {
    let n = |key: Atom, name: &str| -> Result<u64> {
        field(t, key).map_or(Ok(0), |v| uint(v, name, 0, max))
    };
    Ok(Usage {
        input_tokens: n(atoms::input_tokens(), "usage input_tokens")?,
        output_tokens: n(atoms::output_tokens(), "usage output_tokens")?,
        cache_read_tokens: n(atoms::cache_read_tokens(), "usage cache_read_tokens")?,
        cache_creation_tokens: n(
            atoms::cache_creation_tokens(),
            "usage cache_creation_tokens",
        )?,
        cost_micros: n(atoms::cost_micros(), "usage cost_micros")?,
        turns: n(atoms::turns(), "usage turns")?,
        duration_ms: n(atoms::duration_ms(), "usage duration_ms")?,
    })
}

/// What an attempt cost, as the host reports it: nil, or a map with any of
/// `input_tokens`, `output_tokens`, `cache_read_tokens`,
/// `cache_creation_tokens`, `cost_micros` (integer micro-dollars), `turns`,
/// `duration_ms` (non-negative integers) and `session_id` (a string).
pub fn unit_usage(t: Term) -> Result<Option<UnitUsage>> {
    if is_nil(t) {
        return Ok(None);
    }
    ensure_map(t, "usage")?;
    let u = UnitUsage {
        usage: usage_counts(t, limits::MAX_USAGE_VALUE)?,
        session_id: field(t, atoms::session_id())
            .map(|v| string(v, "usage session_id").map(String::into_boxed_str))
            .transpose()?,
    };
    u.check()?;
    Ok(Some(u))
}

pub fn term_of<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    if bytes.is_empty() {
        return atoms::nil().encode(env);
    }
    match env.binary_to_term(bytes) {
        Some((t, _)) => t,
        None => atoms::nil().encode(env),
    }
}

pub fn bin<'a>(env: Env<'a>, s: &str) -> Term<'a> {
    s.encode(env)
}

// ---- encoding ---------------------------------------------------------------

/// A map with atom keys, built in one call.
pub fn map<'a, const N: usize>(env: Env<'a>, pairs: [(Atom, Term<'a>); N]) -> Term<'a> {
    let keys: [Term<'a>; N] = pairs.map(|(k, _)| k.encode(env));
    let values: Vec<Term<'a>> = pairs.iter().map(|(_, v)| *v).collect();
    Term::map_from_term_arrays(env, &keys, &values).expect("distinct keys")
}

pub fn atom_of<'a>(env: Env<'a>, v: impl atoms::Named) -> Term<'a> {
    v.atom().encode(env)
}

pub fn opt<'a, T: Encoder>(env: Env<'a>, v: Option<T>) -> Term<'a> {
    match v {
        Some(v) => v.encode(env),
        None => atoms::nil().encode(env),
    }
}

pub fn strs<'a>(env: Env<'a>, v: &[String]) -> Term<'a> {
    v.iter()
        .map(|s| bin(env, s))
        .collect::<Vec<_>>()
        .encode(env)
}

/// Micro-dollars as dollars (a float).
pub fn usd<'a>(env: Env<'a>, micros: u64) -> Term<'a> {
    (micros as f64 / 1_000_000.0).encode(env)
}

/// Totals: `%{input_tokens, output_tokens, cache_read_tokens,
/// cache_creation_tokens, cost_usd, turns}`.
pub fn usage_totals<'a>(env: Env<'a>, u: &Usage) -> Term<'a> {
    map(
        env,
        [
            (atoms::input_tokens(), u.input_tokens.encode(env)),
            (atoms::output_tokens(), u.output_tokens.encode(env)),
            (atoms::cache_read_tokens(), u.cache_read_tokens.encode(env)),
            (
                atoms::cache_creation_tokens(),
                u.cache_creation_tokens.encode(env),
            ),
            (atoms::cost_usd(), usd(env, u.cost_micros)),
            (atoms::turns(), u.turns.encode(env)),
        ],
    )
}

/// One attempt's report: the totals' keys plus `duration_ms` and
/// `session_id`.
fn unit_usage_term<'a>(env: Env<'a>, u: &UnitUsage) -> Term<'a> {
    usage_totals(env, &u.usage)
        .map_put(atoms::duration_ms(), u.usage.duration_ms.encode(env))
        .and_then(|m| m.map_put(atoms::session_id(), opt(env, u.session_id.as_deref())))
        .expect("map")
}

/// `%{max_cost_usd (nil: none), spent_usd, exhausted}`.
fn budget<'a>(env: Env<'a>, b: Budget) -> Term<'a> {
    map(
        env,
        [
            (
                atoms::max_cost_usd(),
                b.max_cost_micros
                    .map(|m| usd(env, m))
                    .unwrap_or_else(|| atoms::nil().encode(env)),
            ),
            (atoms::spent_usd(), usd(env, b.spent_micros)),
            (atoms::exhausted(), b.exhausted.encode(env)),
        ],
    )
}

pub fn swarm_summary<'a>(env: Env<'a>, s: &Swarm) -> Term<'a> {
    map(
        env,
        [
            (atoms::id(), bin(env, &s.id)),
            (atoms::name(), bin(env, &s.name)),
            (atoms::topology(), atom_of(env, s.topology)),
            (atoms::strategy(), atom_of(env, s.strategy)),
            (atoms::max_agents(), s.max_agents.encode(env)),
            (atoms::agents(), (s.agent_count() as u64).encode(env)),
            (atoms::created_at(), s.created_at.encode(env)),
        ],
    )
}

pub fn swarm_status<'a>(env: Env<'a>, s: &Swarm) -> Term<'a> {
    let st = s.status();
    let [idle, busy, offline] = st.agents;
    let agents = map(
        env,
        [
            (atoms::total(), (idle + busy + offline).encode(env)),
            (atoms::idle(), idle.encode(env)),
            (atoms::busy(), busy.encode(env)),
            (atoms::offline(), offline.encode(env)),
        ],
    );
    let t = st.tasks;
    let tasks = map(
        env,
        [
            (atoms::pending(), t[0].encode(env)),
            (atoms::running(), t[1].encode(env)),
            (atoms::completed(), t[2].encode(env)),
            (atoms::failed(), t[3].encode(env)),
            (atoms::cancelled(), t[4].encode(env)),
            (atoms::timed_out(), t[5].encode(env)),
        ],
    );
    let c = st.counters;
    let counters = map(
        env,
        [
            (atoms::tasks_submitted(), c.tasks_submitted.encode(env)),
            (atoms::units_dispatched(), c.units_dispatched.encode(env)),
            (atoms::units_completed(), c.units_completed.encode(env)),
            (atoms::units_failed(), c.units_failed.encode(env)),
            (atoms::retries(), c.retries.encode(env)),
            (atoms::coordination_hops(), c.coordination_hops.encode(env)),
            (atoms::memory_writes(), c.memory_writes.encode(env)),
            (
                atoms::discoveries_shared(),
                c.discoveries_shared.encode(env),
            ),
            (atoms::events(), c.events.encode(env)),
        ],
    );
    map(
        env,
        [
            (atoms::id(), bin(env, &s.id)),
            (atoms::name(), bin(env, &s.name)),
            (atoms::topology(), atom_of(env, s.topology)),
            (atoms::strategy(), atom_of(env, s.strategy)),
            (atoms::max_agents(), s.max_agents.encode(env)),
            (atoms::created_at(), s.created_at.encode(env)),
            (atoms::agents(), agents),
            (atoms::tasks(), tasks),
            (atoms::queued_units(), (st.queued_units as u64).encode(env)),
            (
                atoms::memory_entries(),
                (st.memory_entries as u64).encode(env),
            ),
            (atoms::memory_bytes(), (st.memory_bytes as u64).encode(env)),
            (atoms::discoveries(), (st.discoveries as u64).encode(env)),
            (atoms::counters(), counters),
            (atoms::usage(), usage_totals(env, &s.usage_total())),
            (atoms::budget(), budget(env, s.budget())),
        ],
    )
}

pub fn agent<'a>(env: Env<'a>, swarm: &Swarm, a: &Agent) -> Term<'a> {
    let swarm_id = &swarm.id;
    let account = swarm.agent_account(a.seq);
    let m = a.metrics;
    let metrics = map(
        env,
        [
            (atoms::completed(), m.completed.encode(env)),
            (atoms::failed(), m.failed.encode(env)),
            (atoms::latency_ms(), m.ewma_latency_ms.encode(env)),
            (atoms::success_rate(), m.ewma_success.encode(env)),
            (atoms::last_error(), opt(env, a.last_error.as_deref())),
        ],
    );
    map(
        env,
        [
            (atoms::id(), bin(env, &a.id)),
            (atoms::swarm_id(), bin(env, swarm_id)),
            (atoms::name(), bin(env, &a.name)),
            (atoms::type_(), bin(env, &a.agent_type)),
            (atoms::capabilities(), strs(env, &a.capabilities)),
            (atoms::status(), atom_of(env, a.status())),
            (atoms::dispatch(), atom_of(env, a.dispatch)),
            (atoms::capacity(), a.capacity.encode(env)),
            (atoms::running_units(), a.running.encode(env)),
            (atoms::load(), a.load().encode(env)),
            (atoms::node(), bin(env, &a.node)),
            (atoms::joined_at(), a.joined_at.encode(env)),
            (atoms::metrics(), metrics),
            (atoms::usage(), usage_totals(env, &account.usage)),
            (atoms::session_id(), opt(env, account.session_id.as_deref())),
        ],
    )
}

/// `%{name => term}` from named payloads. Unit names are unique within a
/// task (checked when it is submitted), so the keys are distinct.
fn payload_map<'a>(env: Env<'a>, named: &[(String, Payload)]) -> Term<'a> {
    let keys: Vec<Term> = named.iter().map(|(n, _)| bin(env, n)).collect();
    let values: Vec<Term> = named.iter().map(|(_, p)| term_of(env, p)).collect();
    Term::map_from_term_arrays(env, &keys, &values).expect("distinct names")
}

pub fn result_term<'a>(env: Env<'a>, r: Option<&TaskResult>) -> Term<'a> {
    match r {
        None => atoms::nil().encode(env),
        Some(TaskResult::Single(p)) => term_of(env, p),
        Some(TaskResult::List(ps)) => ps
            .iter()
            .map(|p| term_of(env, p))
            .collect::<Vec<_>>()
            .encode(env),
        Some(TaskResult::Named(named)) => payload_map(env, named),
    }
}

/// How a finished task ended, as `RuvSwarm.await_task/2` reports it:
/// `{:ok, result}`, `{:error, {:failed | :timed_out, message}}` or
/// `{:error, :cancelled}`.
pub fn outcome<'a>(env: Env<'a>, t: &Task) -> Term<'a> {
    let message = || opt(env, t.error());
    match t.status {
        TaskStatus::Completed => (atoms::ok(), result_term(env, t.result())).encode(env),
        TaskStatus::TimedOut => (atoms::error(), (atoms::timed_out(), message())).encode(env),
        TaskStatus::Cancelled => (atoms::error(), atoms::cancelled()).encode(env),
        _ => (atoms::error(), (atoms::failed(), message())).encode(env),
    }
}

/// One ended attempt: `%{attempt, agent_id, outcome, error, duration_ms,
/// usage}`, outcome `:completed | :failed | :timed_out | :cancelled`,
/// usage what the attempt reported (nil if nothing).
fn attempt_record<'a>(
    env: Env<'a>,
    swarm: &Swarm,
    (task, unit): (u64, u32),
    h: &AttemptRecord,
) -> Term<'a> {
    let usage = swarm
        .attempt_usage(task, unit, h.attempt)
        .map(|u| unit_usage_term(env, u))
        .unwrap_or_else(|| atoms::nil().encode(env));
    let (outcome, error) = match &h.outcome {
        AttemptOutcome::Completed => (atoms::completed(), None),
        AttemptOutcome::Failed(e) => (atoms::failed(), Some(&**e)),
        AttemptOutcome::TimedOut(e) => (atoms::timed_out(), Some(&**e)),
        AttemptOutcome::Cancelled => (atoms::cancelled(), None),
    };
    let agent = swarm
        .agent_by_seq(h.agent)
        .map(|a| a.id.clone())
        .unwrap_or_else(|| {
            ruv_swarm_core::ids::child_id(&swarm.id, ruv_swarm_core::ids::Kind::Agent, h.agent)
        });
    map(
        env,
        [
            (atoms::attempt(), h.attempt.encode(env)),
            (atoms::agent_id(), bin(env, &agent)),
            (atoms::outcome(), outcome.encode(env)),
            (atoms::error_message(), opt(env, error)),
            (atoms::duration_ms(), h.duration_ms.encode(env)),
            (atoms::usage(), usage),
        ],
    )
}

/// Task status; with `results`, each unit's result, its ended attempts
/// (`history`) and the aggregate too.
pub fn task<'a>(env: Env<'a>, swarm: &Swarm, t: &Task, results: bool) -> Term<'a> {
    let agent_id = |seq: Option<u64>| {
        seq.and_then(|s| swarm.agent_by_seq(s))
            .map(|a| a.id.as_str())
    };
    let units: Vec<Term> = t
        .units
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let base = [
                (atoms::name(), bin(env, &t.unit_name(i as u32))),
                (atoms::status(), atom_of(env, u.state)),
                (atoms::agent_id(), opt(env, agent_id(u.agent))),
                (atoms::attempts(), u.attempts.encode(env)),
                (atoms::error_message(), opt(env, u.error())),
            ];
            let m = map(env, base);
            if results {
                let r = u
                    .result()
                    .map(|p| term_of(env, p))
                    .unwrap_or_else(|| atoms::nil().encode(env));
                let history: Vec<Term> = u
                    .history()
                    .iter()
                    .map(|h| attempt_record(env, swarm, (t.seq, i as u32), h))
                    .collect();
                // The units this one waits for, by name (the DAG's edges).
                let deps: Vec<Term> = u
                    .deps()
                    .iter()
                    .map(|&d| bin(env, &t.unit_name(d)))
                    .collect();
                m.map_put(atoms::result(), r)
                    .and_then(|m| m.map_put(atoms::history(), history.encode(env)))
                    .and_then(|m| m.map_put(atoms::depends_on(), deps.encode(env)))
                    .expect("map")
            } else {
                m
            }
        })
        .collect();
    let m = map(
        env,
        [
            (atoms::id(), bin(env, &t.id(&swarm.id))),
            (atoms::swarm_id(), bin(env, &swarm.id)),
            (atoms::status(), atom_of(env, t.status)),
            (atoms::priority(), atom_of(env, t.priority)),
            (atoms::strategy(), atom_of(env, t.mode)),
            (atoms::description(), bin(env, &t.description)),
            (atoms::created_at(), t.created_at.encode(env)),
            (atoms::started_at(), opt(env, t.started_at())),
            (atoms::finished_at(), opt(env, t.finished_at())),
            (atoms::attempts(), t.attempts().encode(env)),
            (atoms::error_message(), opt(env, t.error())),
            (atoms::units(), units.encode(env)),
            (atoms::waiting_reason(), opt(env, waiting_reason(swarm, t))),
        ],
    );
    if results {
        m.map_put(atoms::result(), result_term(env, t.result()))
            .expect("map")
    } else {
        m
    }
}

/// Why a task's queued units are not dispatched, when the swarm's budget
/// is the reason.
fn waiting_reason(swarm: &Swarm, t: &Task) -> Option<String> {
    if t.status.is_terminal() || !t.units.iter().any(|u| u.state == UnitState::Ready) {
        return None;
    }
    swarm.waiting_reason()
}

pub fn work<'a>(env: Env<'a>, swarm_id: &str, agent_id: &str, w: &WorkItem) -> Term<'a> {
    let description = bin(env, &w.description);
    // A plain-text task's text is its input: one binary, sent once.
    let input = if w.input_is_description {
        description
    } else {
        term_of(env, &w.input)
    };
    map(
        env,
        [
            (atoms::work_id(), bin(env, &w.work_id)),
            (atoms::task_id(), bin(env, &w.task_id)),
            (atoms::swarm_id(), bin(env, swarm_id)),
            (atoms::agent_id(), bin(env, agent_id)),
            (atoms::unit(), bin(env, &w.unit)),
            (atoms::attempt(), w.attempt.encode(env)),
            (atoms::description(), description),
            (atoms::input(), input),
            (atoms::context(), payload_map(env, &w.context)),
            (atoms::timeout_ms(), opt(env, w.timeout_ms)),
            (atoms::priority(), atom_of(env, w.priority)),
            (atoms::route(), strs(env, &w.route)),
            (atoms::session_id(), opt(env, w.session_id.as_deref())),
        ],
    )
}

pub fn entry<'a>(env: Env<'a>, namespace: &str, key: &str, e: &Entry) -> Term<'a> {
    map(
        env,
        [
            (atoms::namespace(), bin(env, namespace)),
            (atoms::key(), bin(env, key)),
            (atoms::value(), term_of(env, &e.value)),
            (atoms::version(), e.version.encode(env)),
            (atoms::tags(), strs(env, &e.tags)),
            (atoms::created_at(), e.created_at.encode(env)),
            (atoms::updated_at(), e.updated_at.encode(env)),
            (atoms::expires_at(), opt(env, e.expires_at)),
        ],
    )
}

pub fn discovery<'a>(env: Env<'a>, d: &Discovery) -> Term<'a> {
    map(
        env,
        [
            (atoms::id(), bin(env, &d.id)),
            (atoms::agent_id(), opt(env, d.agent_id.as_deref())),
            (atoms::type_(), bin(env, &d.kind)),
            (atoms::content(), term_of(env, &d.content)),
            (atoms::confidence(), d.confidence.encode(env)),
            (atoms::tags(), strs(env, &d.tags)),
            (atoms::at(), d.at.encode(env)),
        ],
    )
}

pub fn event<'a>(env: Env<'a>, r: &EventRecord) -> Term<'a> {
    let base = map(
        env,
        [
            // Event names are the engine's own, never input.
            (
                atoms::type_(),
                Atom::from_str(env, r.event.name())
                    .expect("atom")
                    .encode(env),
            ),
            (atoms::seq(), r.seq.encode(env)),
            (atoms::at(), r.at.encode(env)),
        ],
    );
    let task = |id: &str| (atoms::task_id(), bin(env, id));
    let unit = |u: &str| (atoms::unit(), bin(env, u));
    let agent = |a: &str| (atoms::agent_id(), bin(env, a));
    let extra: Vec<(Atom, Term<'a>)> = match &r.event {
        Event::AgentJoined {
            agent_id,
            agent_type,
        } => {
            vec![agent(agent_id), (atoms::agent_type(), bin(env, agent_type))]
        }
        Event::AgentLeft { agent_id } => vec![agent(agent_id)],
        Event::AgentStatusChanged { agent_id, status } => {
            vec![agent(agent_id), (atoms::status(), atom_of(env, *status))]
        }
        Event::TaskSubmitted { task_id } => vec![task(task_id)],
        Event::TaskAssigned {
            task_id,
            unit: u,
            agent_id,
            attempt,
        } => vec![
            task(task_id),
            unit(u),
            agent(agent_id),
            (atoms::attempt(), attempt.encode(env)),
        ],
        Event::TaskStarted {
            task_id,
            unit: u,
            agent_id,
        } => {
            vec![task(task_id), unit(u), agent(agent_id)]
        }
        Event::TaskProgress {
            task_id,
            unit: u,
            agent_id,
            progress,
            message,
        } => vec![
            task(task_id),
            unit(u),
            agent(agent_id),
            (atoms::progress(), opt(env, *progress)),
            (atoms::message(), opt(env, message.as_deref())),
        ],
        Event::TaskRetried {
            task_id,
            unit: u,
            attempt,
            delay_ms,
            reason,
        } => vec![
            task(task_id),
            unit(u),
            (atoms::attempt(), attempt.encode(env)),
            (atoms::delay_ms(), delay_ms.encode(env)),
            (atoms::reason(), bin(env, reason)),
        ],
        Event::TaskFinished {
            task_id,
            status,
            error,
        } => vec![
            task(task_id),
            (atoms::status(), atom_of(env, *status)),
            (atoms::error_message(), opt(env, error.as_deref())),
        ],
        Event::MemoryStored {
            namespace,
            key,
            version,
        } => vec![
            (atoms::namespace(), bin(env, namespace)),
            (atoms::key(), bin(env, key)),
            (atoms::version(), version.encode(env)),
        ],
        Event::MemoryDeleted { namespace, key } | Event::MemoryExpired { namespace, key } => vec![
            (atoms::namespace(), bin(env, namespace)),
            (atoms::key(), bin(env, key)),
        ],
        Event::DiscoveryShared {
            discovery_id,
            agent_id,
            kind,
        } => vec![
            (atoms::id(), bin(env, discovery_id)),
            (atoms::agent_id(), opt(env, agent_id.as_deref())),
            (atoms::discovery_type(), bin(env, kind)),
        ],
        Event::Coordinated { from, deliveries } => vec![
            (atoms::from(), opt(env, from.as_deref())),
            (atoms::deliveries(), (*deliveries as u64).encode(env)),
        ],
    };
    extra
        .into_iter()
        .fold(base, |m, (k, v)| m.map_put(k, v).expect("map"))
}
