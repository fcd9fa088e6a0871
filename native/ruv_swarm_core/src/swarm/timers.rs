//! Timers: attempt deadlines, pull leases and retry backoffs, and memory
//! expiry, fired in bounded batches by `tick`.

use super::*;

impl Swarm {
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
            self.steps += 1;
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
                    let wid = work_id(&t.id(&self.id), timer.unit, timer.attempt);
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
        if self.queues.is_dirty() {
            self.queues.sweep(budget, |e| {
                self.tasks.get(&e.task).is_some_and(|t| {
                    let u = &t.units[e.unit as usize];
                    u.state == UnitState::Ready && u.attempts == e.attempt
                })
            });
        }
        for (namespace, key) in self.memory.expire(now, budget) {
            self.emit(now, || Event::MemoryExpired { namespace, key });
        }
        self.queues.is_dirty() || self.next_deadline().is_some_and(|at| at <= now)
    }

    /// When the next timer or memory expiry is due, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.timers.next_at(), self.memory.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
