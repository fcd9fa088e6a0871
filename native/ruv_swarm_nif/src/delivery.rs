//! The messages a command's effects turn into: work and cancels for
//! agents, outcomes for waiters, events and discoveries for subscribers,
//! a wake-up (and, when asked, finished task ids) for the swarm's server.
//!
//! They are built while the swarm is locked and sent after it is released
//! (under the swarm's mail lock, which keeps them in order): a send may
//! have to wake a sleeping scheduler, and the next command need not wait
//! for that. A send that fails (the process is gone) is settled under the
//! swarm lock again afterwards.

use parking_lot::MutexGuard;
use rustler::{Encoder, Env, LocalPid, Term};

use crate::registry::{now_ms, Cell, State};
use crate::{atoms, codec};

struct Letter<'a> {
    to: LocalPid,
    msg: Term<'a>,
    bounce: Bounce,
}

/// What a failed send means.
enum Bounce {
    Nothing,
    /// A slot's worker is gone: the work goes to its agent instead.
    Worker {
        agent_seq: u64,
        slot: u32,
        agent: Option<LocalPid>,
        agent_id: String,
    },
    /// An agent's process is gone: it cannot run what it was given.
    Agent {
        agent_id: String,
    },
    Subscriber,
}

/// What the swarm must learn from failed sends.
enum Fix {
    Worker {
        agent_seq: u64,
        slot: u32,
        pid: LocalPid,
    },
    Agent {
        agent_id: String,
        pid: LocalPid,
    },
    Subscriber(LocalPid),
}

/// Sends the effects of the command just applied to the locked swarm `st`
/// and releases it.
pub fn post<'c>(env: Env, cell: &'c Cell, mut st: MutexGuard<'c, State>) {
    loop {
        let letters = collect(env, &mut st);
        if letters.is_empty() {
            return;
        }
        let mail = cell.lock_mail();
        drop(st);
        let fixes = send(env, letters);
        drop(mail);
        if fixes.is_empty() {
            return;
        }
        st = cell.lock();
        settle(&mut st, fixes);
    }
}

fn collect<'a>(env: Env<'a>, st: &mut State) -> Vec<Letter<'a>> {
    let out = st.swarm.drain();
    let mut letters = Vec::with_capacity(out.dispatches.len() + out.finished.len());
    // Cancels before dispatches: work for a slot just freed by a cancel
    // must not go to the worker the cancel stops. With the slot's worker
    // forgotten, it goes to the agent, after the cancel.
    for c in out.cancels {
        // The agent stops (or replaces) that worker: until it names the
        // slot's worker again, work for the slot goes through the agent.
        st.set_worker(c.agent_seq, c.slot, None);
        if let Some(&to) = st.agent_pids.get(&c.agent_seq) {
            let msg = (
                atoms::swarm_cancel(),
                codec::bin(env, &c.work_id),
                codec::bin(env, &c.reason),
                c.slot,
            )
                .encode(env);
            letters.push(Letter {
                to,
                msg,
                bounce: Bounce::Nothing,
            });
        }
    }
    for d in out.dispatches {
        let msg = (
            atoms::swarm_work(),
            codec::work(env, &st.swarm.id, &d.agent_id, &d.work),
            d.slot,
        )
            .encode(env);
        let agent = st.agent_pids.get(&d.agent_seq).copied();
        match (st.worker(d.agent_seq, d.slot), agent) {
            (Some(to), _) => letters.push(Letter {
                to,
                msg,
                bounce: Bounce::Worker {
                    agent_seq: d.agent_seq,
                    slot: d.slot,
                    agent,
                    agent_id: d.agent_id,
                },
            }),
            (None, Some(to)) => letters.push(Letter {
                to,
                msg,
                bounce: Bounce::Agent {
                    agent_id: d.agent_id,
                },
            }),
            (None, None) => {
                // Dispatched to an agent with no process: settled like a
                // failed send.
                let now = now_ms();
                let _ = st
                    .swarm
                    .detach_agent(&d.agent_id, "agent process is not alive", now);
            }
        }
    }
    let reporter = st.owner.filter(|_| st.report_outcomes);
    for task_id in &out.finished {
        if let Some(to) = reporter {
            let msg = (
                atoms::swarm_task_finished(),
                codec::bin(env, &st.swarm.id),
                codec::bin(env, task_id),
            )
                .encode(env);
            letters.push(Letter {
                to,
                msg,
                bounce: Bounce::Nothing,
            });
        }
        if let Some(pids) = st.waiters.remove(task_id) {
            let outcome = match st.swarm.task(task_id) {
                Ok(t) => codec::outcome(env, t),
                // Already out of a (tiny) history.
                Err(e) => crate::error::reply(env, Err(e)),
            };
            let msg = (atoms::swarm_task_done(), codec::bin(env, task_id), outcome).encode(env);
            letters.extend(pids.into_iter().map(|to| Letter {
                to,
                msg,
                bounce: Bounce::Nothing,
            }));
        }
    }
    if !out.events.is_empty() {
        let swarm_id = codec::bin(env, &st.swarm.id);
        for e in &out.events {
            let msg = (atoms::swarm_event(), swarm_id, codec::event(env, e)).encode(env);
            letters.extend(st.subscribers.iter().map(|&to| Letter {
                to,
                msg,
                bounce: Bounce::Subscriber,
            }));
        }
    }
    if !st.shared.is_empty() {
        let swarm_id = codec::bin(env, &st.swarm.id);
        for d in std::mem::take(&mut st.shared) {
            let mut msg = None;
            for (to, f) in &st.discovery_subscribers {
                if f.matches(&d) {
                    let msg = *msg.get_or_insert_with(|| {
                        (
                            atoms::swarm_discovery(),
                            swarm_id,
                            codec::discovery(env, &d),
                        )
                            .encode(env)
                    });
                    letters.push(Letter {
                        to: *to,
                        msg,
                        bounce: Bounce::Subscriber,
                    });
                }
            }
        }
    }
    st.swarm.outbox.record_events = !st.subscribers.is_empty();
    if let (Some(next), Some(owner)) = (st.swarm.next_deadline(), st.owner) {
        if next < st.wake_at {
            st.wake_at = next;
            let msg = (atoms::swarm_wakeup(), codec::bin(env, &st.swarm.id)).encode(env);
            letters.push(Letter {
                to: owner,
                msg,
                bounce: Bounce::Nothing,
            });
        }
    }
    // Detaching an agent above may have produced more.
    if !st.swarm.outbox.is_empty() {
        letters.extend(collect(env, st));
    }
    letters
}

fn send(env: Env, letters: Vec<Letter>) -> Vec<Fix> {
    let mut fixes = Vec::new();
    let mut dead_subscribers: Vec<LocalPid> = Vec::new();
    for Letter { to, msg, bounce } in letters {
        if env.send(&to, msg).is_ok() {
            continue;
        }
        match bounce {
            Bounce::Nothing => {}
            Bounce::Worker {
                agent_seq,
                slot,
                agent,
                agent_id,
            } => {
                fixes.push(Fix::Worker {
                    agent_seq,
                    slot,
                    pid: to,
                });
                // Its agent starts another worker.
                match agent {
                    Some(a) if env.send(&a, msg).is_ok() => {}
                    Some(pid) => fixes.push(Fix::Agent { agent_id, pid }),
                    None => {}
                }
            }
            Bounce::Agent { agent_id } => fixes.push(Fix::Agent { agent_id, pid: to }),
            Bounce::Subscriber => {
                if !dead_subscribers.contains(&to) {
                    dead_subscribers.push(to);
                    fixes.push(Fix::Subscriber(to));
                }
            }
        }
    }
    fixes
}

/// Forgets what is gone; a push agent whose process is gone goes offline,
/// so the work it was given is retried elsewhere.
fn settle(st: &mut State, fixes: Vec<Fix>) {
    let now = now_ms();
    for fix in fixes {
        match fix {
            Fix::Worker {
                agent_seq,
                slot,
                pid,
            } => {
                if st.worker(agent_seq, slot) == Some(pid) {
                    st.set_worker(agent_seq, slot, None);
                }
            }
            Fix::Agent { agent_id, pid } => {
                let Ok(seq) = st.swarm.agent(&agent_id).map(|a| a.seq) else {
                    continue;
                };
                // Unless a new process attached meanwhile.
                if st.agent_pids.get(&seq) == Some(&pid) {
                    st.forget_agent(seq);
                    let _ = st
                        .swarm
                        .detach_agent(&agent_id, "agent process is not alive", now);
                }
            }
            Fix::Subscriber(pid) => {
                st.subscribers.retain(|s| *s != pid);
                st.discovery_subscribers.retain(|(s, _)| *s != pid);
            }
        }
    }
}
