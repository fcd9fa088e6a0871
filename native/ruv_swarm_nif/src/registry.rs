//! The process-wide registry of swarms and the delivery of each command's
//! effects (work, cancellations, completions, events) as messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use parking_lot::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustler::{Encoder, Env, LocalPid, Term};
use ruv_swarm_core::discovery::Filter;
use ruv_swarm_core::ids::{self, Kind};
use ruv_swarm_core::{Error, Result, Swarm};

use crate::{atoms, codec};

/// One swarm and the pids that listen to it.
pub struct State {
    pub swarm: Swarm,
    /// Processes of push agents, by agent sequence number.
    pub agent_pids: HashMap<u64, LocalPid>,
    /// Their worker processes by slot, where known: work for a slot with a
    /// worker goes straight to it, other work to the agent process.
    pub workers: HashMap<u64, Vec<Option<LocalPid>>>,
    pub subscribers: Vec<LocalPid>,
    pub discovery_subscribers: Vec<(LocalPid, Filter)>,
    /// Processes awaiting a task's end, by task id.
    pub waiters: BTreeMap<String, Vec<LocalPid>>,
    /// The swarm's Elixir server, which runs its timers.
    pub owner: Option<LocalPid>,
    /// When the owner will tick next (ms, engine clock).
    pub wake_at: u64,
}

impl State {
    fn worker(&self, agent_seq: u64, slot: u32) -> Option<LocalPid> {
        self.workers.get(&agent_seq)?.get(slot as usize).copied()?
    }

    pub fn set_worker(&mut self, agent_seq: u64, slot: u32, pid: Option<LocalPid>) {
        let slots = self.workers.entry(agent_seq).or_default();
        let i = slot as usize;
        if slots.len() <= i {
            if pid.is_none() {
                return;
            }
            slots.resize(i + 1, None);
        }
        slots[i] = pid;
    }

    /// Forgets an agent's process and its workers.
    pub fn forget_agent(&mut self, agent_seq: u64) -> Option<LocalPid> {
        self.workers.remove(&agent_seq);
        self.agent_pids.remove(&agent_seq)
    }
}

pub struct Cell(Mutex<State>);

const SPINS: u32 = 2000;

impl Cell {
    /// Locks the swarm. parking_lot spins briefly before sleeping, which
    /// suits commands that hold the lock for a microsecond or two, and has
    /// no poisoning: a panicking command (caught by rustler) leaves the
    /// swarm usable rather than wedged.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        for _ in 0..SPINS {
            if let Some(g) = self.0.try_lock() {
                return g;
            }
            std::hint::spin_loop();
        }
        self.0.lock()
    }
}

static SWARMS: LazyLock<RwLock<HashMap<String, Arc<Cell>>>> = LazyLock::new(Default::default);

static CLOCK: LazyLock<(Instant, u64)> = LazyLock::new(|| {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (Instant::now(), wall)
});

/// Milliseconds since the Unix epoch, but monotonic: taken from the wall
/// clock once, then advanced by a steady clock, so timeouts never jump.
pub fn now_ms() -> u64 {
    let (start, wall) = *CLOCK;
    wall + start.elapsed().as_millis() as u64
}

pub fn insert(swarm: Swarm) {
    let id = swarm.id.clone();
    SWARMS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, new_cell(swarm));
}

/// Inserts a swarm unless one with its id is already loaded.
pub fn insert_new(swarm: Swarm) -> Result<()> {
    let mut swarms = SWARMS.write().unwrap_or_else(|p| p.into_inner());
    if swarms.contains_key(&swarm.id) {
        return Err(Error::SwarmExists);
    }
    swarms.insert(swarm.id.clone(), new_cell(swarm));
    Ok(())
}

fn new_cell(swarm: Swarm) -> Arc<Cell> {
    let state = State {
        swarm,
        agent_pids: HashMap::new(),
        workers: HashMap::new(),
        subscribers: Vec::new(),
        discovery_subscribers: Vec::new(),
        waiters: BTreeMap::new(),
        owner: None,
        wake_at: u64::MAX,
    };
    Arc::new(Cell(Mutex::new(state)))
}

pub fn remove(id: &str) -> Option<Arc<Cell>> {
    SWARMS.write().unwrap_or_else(|p| p.into_inner()).remove(id)
}

pub fn get(id: &str) -> Result<Arc<Cell>> {
    SWARMS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .cloned()
        .ok_or(Error::SwarmNotFound)
}

/// The swarm named by a swarm id term.
pub fn swarm_of(id: Term) -> Result<Arc<Cell>> {
    codec::string(id, "swarm id").and_then(|id| get(&id))
}

/// The swarm an agent, task or discovery id belongs to.
pub fn owning(id: &str, kind: Kind) -> Result<Arc<Cell>> {
    let not_found = match kind {
        Kind::Agent => Error::AgentNotFound,
        Kind::Task => Error::TaskNotFound,
        Kind::Discovery => Error::KeyNotFound,
    };
    let (swarm, _) = ids::parse_child_id(id, kind).ok_or(not_found.clone())?;
    get(swarm).map_err(|_| not_found)
}

/// The swarm of a work id (`<task id>/<unit>/<attempt>`).
pub fn owning_work(work_id: &str) -> Result<Arc<Cell>> {
    let task_id = work_id.split('/').next().unwrap_or("");
    owning(task_id, Kind::Task).map_err(|_| Error::invalid(format!("unknown work id {work_id:?}")))
}

pub fn all() -> Vec<Arc<Cell>> {
    SWARMS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect()
}

/// Sends the effects of the commands just applied, then tells the owner if
/// a timer is now due earlier than its next tick.
pub fn deliver(env: Env, st: &mut State) {
    loop {
        let out = st.swarm.drain();
        if out.is_empty() {
            break;
        }
        let mut dead_agents = Vec::new();
        for d in &out.dispatches {
            let msg = (
                atoms::swarm_work(),
                codec::work(env, &st.swarm.id, &d.agent_id, &d.work),
                d.slot,
            )
                .encode(env);
            let to_worker = st.worker(d.agent_seq, d.slot).is_some_and(|pid| {
                env.send(&pid, msg).is_ok() || {
                    // It died since: its agent starts another.
                    st.set_worker(d.agent_seq, d.slot, None);
                    false
                }
            });
            let sent = to_worker
                || st
                    .agent_pids
                    .get(&d.agent_seq)
                    .is_some_and(|pid| env.send(pid, msg).is_ok());
            if !sent {
                dead_agents.push(d.agent_id.clone());
            }
        }
        for c in &out.cancels {
            // The agent stops (or replaces) that worker: until it names the
            // slot's worker again, work for the slot goes through the agent.
            st.set_worker(c.agent_seq, c.slot, None);
            if let Some(pid) = st.agent_pids.get(&c.agent_seq) {
                let msg = (
                    atoms::swarm_cancel(),
                    codec::bin(env, &c.work_id),
                    codec::bin(env, &c.reason),
                    c.slot,
                );
                let _ = env.send(pid, msg);
            }
        }
        for task_id in &out.finished {
            if let Some(pids) = st.waiters.remove(task_id) {
                let outcome = match st.swarm.task(task_id) {
                    Ok(t) => codec::outcome(env, t),
                    // Already out of a (tiny) history.
                    Err(e) => crate::error::reply(env, Err(e)),
                };
                let msg = (atoms::swarm_task_done(), codec::bin(env, task_id), outcome).encode(env);
                for pid in pids {
                    let _ = env.send(&pid, msg);
                }
            }
        }
        if !out.events.is_empty() {
            let swarm_id = codec::bin(env, &st.swarm.id);
            let mut alive = vec![true; st.subscribers.len()];
            for e in &out.events {
                let msg = (atoms::swarm_event(), swarm_id, codec::event(env, e)).encode(env);
                for (i, pid) in st.subscribers.iter().enumerate() {
                    if alive[i] && env.send(pid, msg).is_err() {
                        alive[i] = false;
                    }
                }
            }
            let mut i = 0;
            st.subscribers.retain(|_| {
                i += 1;
                alive[i - 1]
            });
        }
        // A push agent whose process is gone cannot run what it was given:
        // take it offline so the work is retried elsewhere.
        let now = now_ms();
        for agent_id in dead_agents {
            if let Ok(a) = st.swarm.agent(&agent_id) {
                st.forget_agent(a.seq);
                let _ = st
                    .swarm
                    .detach_agent(&agent_id, "agent process is not alive", now);
            }
        }
    }
    st.swarm.outbox.record_events = !st.subscribers.is_empty();
    if let (Some(next), Some(owner)) = (st.swarm.next_deadline(), st.owner) {
        if next < st.wake_at {
            st.wake_at = next;
            let msg = (atoms::swarm_wakeup(), codec::bin(env, &st.swarm.id));
            let _ = env.send(&owner, msg);
        }
    }
}

/// Longest wall time (ns) one swarm command took, lock wait included, since
/// last read: what the benchmark checks against the 1 ms rule.
static LONGEST_CALL_NS: AtomicU64 = AtomicU64::new(0);
/// Longest CPU time (ns) of one command: the wall time less any time the OS
/// ran something else on this core.
static LONGEST_CALL_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// (wall, cpu) maxima since the last call, then reset.
pub fn take_longest_call_ns() -> (u64, u64) {
    (
        LONGEST_CALL_NS.swap(0, Ordering::Relaxed),
        LONGEST_CALL_CPU_NS.swap(0, Ordering::Relaxed),
    )
}

/// Timing every command costs a syscall (CPU time has no vDSO) and a
/// shared atomic, so it happens only while a benchmark asks for it.
static MEASURE: AtomicBool = AtomicBool::new(false);

pub fn measure(on: bool) {
    MEASURE.store(on, Ordering::Relaxed);
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs a command on the swarm `id`, delivers its effects and replies.
pub fn with_swarm<'a>(
    env: Env<'a>,
    cell: Result<Arc<Cell>>,
    f: impl FnOnce(&mut State, u64) -> Result<Term<'a>>,
) -> Term<'a> {
    let timing = MEASURE
        .load(Ordering::Relaxed)
        .then(|| (Instant::now(), thread_cpu_ns()));
    let result = cell.and_then(|cell| {
        let mut st = cell.lock();
        let r = f(&mut st, now_ms());
        deliver(env, &mut st);
        r
    });
    let reply = crate::error::reply(env, result);
    if let Some((wall, cpu)) = timing {
        LONGEST_CALL_NS.fetch_max(wall.elapsed().as_nanos() as u64, Ordering::Relaxed);
        LONGEST_CALL_CPU_NS.fetch_max(thread_cpu_ns() - cpu, Ordering::Relaxed);
    }
    reply
}

/// `{:ok, term}`
pub fn ok<'a>(env: Env<'a>, t: impl Encoder) -> Result<Term<'a>> {
    Ok((atoms::ok(), t).encode(env))
}

pub fn ok_atom(env: Env) -> Result<Term> {
    Ok(atoms::ok().encode(env))
}
