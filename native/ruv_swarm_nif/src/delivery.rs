//! Sending the messages a command's effects turn into. Who gets what, and
//! what a failed send means, is `ruv_swarm_core::delivery`; here the
//! messages are encoded and sent.
//!
//! They are encoded while the swarm is locked and sent after it is
//! released (under the swarm's mail lock, which keeps them in order): a
//! send may have to wake a sleeping scheduler, and the next command need
//! not wait for that. A send that fails (the process is gone) is settled
//! under the swarm lock again afterwards.

use parking_lot::MutexGuard;
use rustler::{Encoder, Env, LocalPid, Term};
use ruv_swarm_core::delivery::{self, Fix, Letter, Message};

use crate::registry::{Cell, State};
use crate::{atoms, codec};

/// Sends the effects of the command just applied to the locked swarm `st`
/// and releases it.
pub fn post<'c>(env: Env, cell: &'c Cell, mut st: MutexGuard<'c, State>) {
    loop {
        let now = st.now();
        let State { swarm, boxes, .. } = &mut *st;
        let plan = delivery::plan(swarm, boxes, now);
        if plan.is_empty() || st.muted {
            return;
        }
        let terms: Vec<Term> = plan.messages.iter().map(|m| encode(env, &st, m)).collect();
        let mail = cell.lock_mail();
        drop(st);
        let fixes = send(env, plan.letters, &terms);
        drop(mail);
        if fixes.is_empty() {
            return;
        }
        st = cell.lock();
        let now = st.now();
        let State { swarm, boxes, .. } = &mut *st;
        delivery::settle(swarm, boxes, fixes, now);
    }
}

fn encode<'a>(env: Env<'a>, st: &State, m: &Message) -> Term<'a> {
    let swarm = &st.swarm;
    match m {
        Message::Cancel(c) => (
            atoms::swarm_cancel(),
            codec::bin(env, &c.work_id),
            codec::bin(env, &c.reason),
            c.slot,
        )
            .encode(env),
        Message::Work(d) => (
            atoms::swarm_work(),
            codec::work(env, &swarm.id, &d.agent_id, &d.work),
            d.slot,
        )
            .encode(env),
        Message::TaskFinished(task_id) => (
            atoms::swarm_task_finished(),
            codec::bin(env, &swarm.id),
            codec::bin(env, task_id),
        )
            .encode(env),
        Message::TaskDone(task_id) => {
            let outcome = match swarm.task(task_id) {
                Ok(t) => codec::outcome(env, t),
                // Already out of a (tiny) history.
                Err(e) => crate::error::reply(env, Err(e)),
            };
            (atoms::swarm_task_done(), codec::bin(env, task_id), outcome).encode(env)
        }
        Message::Event(e) => (
            atoms::swarm_event(),
            codec::bin(env, &swarm.id),
            codec::event(env, e),
        )
            .encode(env),
        Message::Discovery(d) => (
            atoms::swarm_discovery(),
            codec::bin(env, &swarm.id),
            codec::discovery(env, d),
        )
            .encode(env),
        Message::Wakeup => (atoms::swarm_wakeup(), codec::bin(env, &swarm.id)).encode(env),
        Message::Unreachable(agent_id) => (
            atoms::swarm_agent_unreachable(),
            codec::bin(env, &swarm.id),
            codec::bin(env, agent_id),
        )
            .encode(env),
    }
}

fn send(env: Env, letters: Vec<Letter<LocalPid>>, terms: &[Term]) -> Vec<Fix<LocalPid>> {
    let mut fixes = Vec::new();
    for Letter {
        to,
        message,
        bounce,
    } in letters
    {
        let msg = terms[message];
        let mut next = Some((to, bounce));
        while let Some((to, bounce)) = next.take() {
            if env.send(&to, msg).is_ok() {
                break;
            }
            let (fix, instead) = delivery::bounced(to, bounce);
            if let Some(f) = fix {
                if !fixes.contains(&f) {
                    fixes.push(f);
                }
            }
            next = instead;
        }
    }
    fixes
}
