//! The process-wide registry of swarms and the delivery of each command's
//! effects (work, cancellations, completions, events) as messages.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, LazyLock, RwLock};

use parking_lot::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustler::{Encoder, Env, LocalPid, Term};
use ruv_swarm_core::delivery::Mailboxes;
use ruv_swarm_core::ids::{self, Kind};
use ruv_swarm_core::{limits, Error, Result, Swarm};

use crate::{atoms, codec, delivery};

/// One swarm and the pids that listen to it.
pub struct State {
    pub swarm: Swarm,
    /// Who listens: agent and worker processes, subscribers, waiters, the
    /// owner (the delivery policy is `ruv_swarm_core::delivery`).
    pub boxes: Mailboxes<LocalPid>,
    /// A replicated swarm's clock (ms): the time of the Raft command being
    /// applied, set by `swarm_set_clock`. None: the node's clock.
    pub clock: Option<u64>,
    /// Effects are planned but not sent: a replicated swarm's engine being
    /// rebuilt from its log, or on a member that is not the leader.
    pub muted: bool,
}

impl State {
    /// The time commands run at: a replicated swarm's own clock, so every
    /// member and every replay computes the same deadlines.
    pub fn now(&self) -> u64 {
        self.clock.unwrap_or_else(now_ms)
    }

    pub fn replicated(&self) -> bool {
        self.clock.is_some()
    }
}

/// A swarm's state, and the lock its messages are sent under: a command
/// takes the second before it lets go of the first, so messages leave in
/// the order the state changed while the next command already runs.
pub struct Cell {
    state: Mutex<State>,
    mail: Mutex<()>,
    /// The bytes of this swarm the node's count holds (see [`settle`]);
    /// changed only under the state lock.
    accounted: AtomicU64,
    /// Removed from the registry: its bytes no longer count for the node.
    removed: AtomicBool,
}

/// How many times a command retries a held swarm lock before yielding.
const SPINS: u32 = 2000;

impl Cell {
    /// Locks the swarm. Commands hold the lock for a microsecond or two,
    /// while parking a scheduler thread and waking it costs the OS far
    /// more (on two cores, a single busy swarm ran 40% slower), so a
    /// waiter spins, reading the lock and trying it only when it looks
    /// free, and after some tens of microseconds yields its core instead
    /// of sleeping (the holder may be the thread the OS preempted).
    /// parking_lot has no poisoning: a panicking command (caught by
    /// rustler) leaves the swarm usable rather than wedged.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        spin_lock(&self.state)
    }

    pub fn lock_mail(&self) -> MutexGuard<'_, ()> {
        spin_lock(&self.mail)
    }
}

fn spin_lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    let mut spins = 0;
    loop {
        if !m.is_locked() {
            if let Some(g) = m.try_lock() {
                return g;
            }
        }
        spins += 1;
        if spins < SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
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
    insert_cell(new_cell(swarm, None));
}

/// Inserts (or replaces) a replicated swarm whose clock starts at `now`.
pub fn insert_replicated(swarm: Swarm, now: u64) {
    insert_cell(new_cell(swarm, Some(now)));
}

fn insert_cell(cell: Arc<Cell>) {
    let id = cell.lock().swarm.id.clone();
    let old = SWARMS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, cell);
    if let Some(old) = old {
        release(&old);
        free_later(old);
    }
}

/// Inserts a swarm unless one with its id is already loaded.
pub fn insert_new(swarm: Swarm) -> Result<()> {
    let mut swarms = SWARMS.write().unwrap_or_else(|p| p.into_inner());
    if swarms.contains_key(&swarm.id) {
        return Err(Error::SwarmExists);
    }
    swarms.insert(swarm.id.clone(), new_cell(swarm, None));
    Ok(())
}

fn new_cell(swarm: Swarm, clock: Option<u64>) -> Arc<Cell> {
    let held = swarm.usage().total() as u64;
    NODE_HELD.fetch_add(held, Ordering::Relaxed);
    let state = State {
        swarm,
        boxes: Mailboxes {
            replicated: clock.is_some(),
            ..Mailboxes::default()
        },
        clock,
        muted: false,
    };
    Arc::new(Cell {
        state: Mutex::new(state),
        mail: Mutex::new(()),
        accounted: AtomicU64::new(held),
        removed: AtomicBool::new(false),
    })
}

pub fn remove(id: &str) -> Option<Arc<Cell>> {
    let cell = SWARMS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id)?;
    release(&cell);
    Some(cell)
}

// ---- node-wide byte accounting ----------------------------------------------
//
// Each swarm counts what it holds (`Swarm::usage`, in the pure engine); the
// node adds those counts up in `NODE_HELD`. Before a command the swarm
// learns how much room the node has left; after it, the node's count takes
// the swarm's change. Swarms run in parallel, so two commands may both see
// the same room: the node's quota can be overshot by what the commands
// running at that moment add (a payload or two each, on a handful of
// scheduler threads), never more.

/// Bytes all loaded swarms hold.
static NODE_HELD: AtomicU64 = AtomicU64::new(0);
/// The node's memory quota (bytes).
static NODE_QUOTA: AtomicU64 = AtomicU64::new(limits::DEFAULT_NODE_MEMORY_BYTES);
/// The memory quota of swarms created without one (bytes).
static SWARM_QUOTA: AtomicU64 = AtomicU64::new(limits::DEFAULT_SWARM_MEMORY_BYTES);

/// (bytes held by every swarm, node quota, default swarm quota).
pub fn node_usage() -> (u64, u64, u64) {
    (
        NODE_HELD.load(Ordering::Relaxed),
        NODE_QUOTA.load(Ordering::Relaxed),
        SWARM_QUOTA.load(Ordering::Relaxed),
    )
}

/// Sets the node's quota and the default quota of swarms created from now
/// on; swarms already loaded keep theirs.
pub fn set_quotas(swarm: u64, node: u64) {
    SWARM_QUOTA.store(swarm, Ordering::Relaxed);
    NODE_QUOTA.store(node, Ordering::Relaxed);
}

/// The quota a new swarm gets unless it names one.
pub fn default_swarm_quota() -> u64 {
    SWARM_QUOTA.load(Ordering::Relaxed)
}

/// Brings the node's count up to date with what the swarm (`st`, the
/// locked state of `cell`) holds now.
pub fn settle(cell: &Cell, st: &State) {
    if cell.removed.load(Ordering::Relaxed) {
        return;
    }
    let held = st.swarm.usage().total() as u64;
    let before = cell.accounted.swap(held, Ordering::Relaxed);
    if held >= before {
        NODE_HELD.fetch_add(held - before, Ordering::Relaxed);
    } else {
        NODE_HELD.fetch_sub(before - held, Ordering::Relaxed);
    }
}

/// A swarm leaves the registry: its bytes leave the node's count.
fn release(cell: &Cell) {
    let _st = cell.lock();
    if !cell.removed.swap(true, Ordering::Relaxed) {
        NODE_HELD.fetch_sub(cell.accounted.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Tells the swarm how much the node may still take. A replicated swarm
/// is not told: the node's other swarms differ between members and between
/// a run and its replay, so the node's quota is checked before a command
/// enters the log (`engine_node_room`), never while it is applied.
fn give_node_room(st: &mut State) {
    if st.replicated() {
        st.swarm.set_node_room(u64::MAX, u64::MAX);
        return;
    }
    let (held, quota, _) = node_usage();
    st.swarm.set_node_room(quota.saturating_sub(held), quota);
}

/// Frees a removed swarm off the scheduler: a swarm of 100,000 agents and a
/// million tasks takes about a second to free, so its last reference goes
/// to one long-lived thread that drops what it is sent (inline if that
/// thread could not be started), instead of a thread per destroy.
pub fn free_later(cell: Arc<Cell>) {
    static FREER: LazyLock<Option<Mutex<mpsc::Sender<Arc<Cell>>>>> = LazyLock::new(|| {
        let (tx, rx) = mpsc::channel::<Arc<Cell>>();
        let started = std::thread::Builder::new()
            .name("ruv_swarm_free".into())
            .spawn(move || rx.into_iter().for_each(drop));
        match started {
            Ok(_) => Some(Mutex::new(tx)),
            Err(e) => {
                tracing::warn!(error = %e, "destroyed swarms are freed inline");
                None
            }
        }
    });
    if let Some(tx) = FREER.as_ref() {
        // A send fails only if the thread is gone: the swarm is then
        // dropped here, with the error.
        let _ = tx.lock().send(cell);
    }
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

/// Longest wall time (ns) one swarm command took, lock wait included, since
/// last read: what the benchmark checks against the 1 ms rule.
static LONGEST_CALL_NS: AtomicU64 = AtomicU64::new(0);
/// Longest CPU time (ns) of one command: the wall time less any time the OS
/// ran something else on this core.
static LONGEST_CALL_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// Where the command that took the longest CPU time was called from.
static LONGEST_CALL_AT: Mutex<Option<&'static Location<'static>>> = Mutex::new(None);

/// (wall, cpu, `file:line` of the longest by cpu) since the last call,
/// then reset.
pub fn take_longest_call_ns() -> (u64, u64, String) {
    let at = LONGEST_CALL_AT.lock().take();
    (
        LONGEST_CALL_NS.swap(0, Ordering::Relaxed),
        LONGEST_CALL_CPU_NS.swap(0, Ordering::Relaxed),
        at.map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default(),
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
#[track_caller]
pub fn with_swarm<'a>(
    env: Env<'a>,
    cell: Result<Arc<Cell>>,
    f: impl FnOnce(&mut State, u64) -> Result<Term<'a>>,
) -> Term<'a> {
    let at = Location::caller();
    let timing = MEASURE
        .load(Ordering::Relaxed)
        .then(|| (Instant::now(), thread_cpu_ns()));
    let result = cell.and_then(|cell| {
        let mut st = cell.lock();
        // (Also takes in what changed since the last command, as when a
        // failed delivery made the swarm retry work.)
        settle(&cell, &st);
        give_node_room(&mut st);
        let now = st.now();
        let r = f(&mut st, now);
        settle(&cell, &st);
        delivery::post(env, &cell, st);
        r
    });
    let reply = crate::error::reply(env, result);
    if let Some((wall, cpu)) = timing {
        LONGEST_CALL_NS.fetch_max(wall.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let cpu = thread_cpu_ns() - cpu;
        if LONGEST_CALL_CPU_NS.fetch_max(cpu, Ordering::Relaxed) < cpu {
            *LONGEST_CALL_AT.lock() = Some(at);
        }
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
