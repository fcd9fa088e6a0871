//! Task lifecycle: submit, progress, completion, failure and retry,
//! cancellation and the finished-task history.

use super::*;
use crate::usage::UnitUsage;

impl Swarm {
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
        let id = ids::child_id(&self.id, Kind::Task, seq);
        let task = Task::new(seq, spec, fan_out, now);
        let (inputs, results) = quotas::task_bytes(&task);
        self.room().admit(inputs + results)?;
        self.next_task += 1;
        let roots: Vec<u32> = task
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.pending_deps == 0)
            .map(|(i, _)| i as u32)
            .collect();
        self.tasks.insert(seq, Box::new(task));
        self.remeasure(seq);
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

    pub(super) fn parse_work_id(&self, work_id: &str) -> Result<(u64, u32, u32)> {
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
    pub(super) fn live_work(
        &self,
        work_id: &str,
        agent_id: &str,
    ) -> Result<Option<(u64, u32, u32, u64)>> {
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

    /// An agent's word on a running unit: how far it is (`None`: unknown,
    /// the attempt's last fraction stands) and what it is doing. Emits a
    /// `task_progress` event; `false` for a report about an attempt no
    /// longer running.
    pub fn report_progress(
        &mut self,
        work_id: &str,
        agent_id: &str,
        progress: Option<f64>,
        message: Option<&str>,
        now: u64,
    ) -> Result<bool> {
        if progress.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err(Error::invalid("progress must be between 0.0 and 1.0"));
        }
        let Some((task, unit, attempt, _)) = self.live_work(work_id, agent_id)? else {
            return Ok(false);
        };
        let progress = self.note_progress((task, unit, attempt), progress);
        let task_id = self.tasks[&task].id(&self.id);
        let unit = self.tasks[&task].unit_name(unit).into_owned();
        let agent_id = agent_id.to_owned();
        let message = message.map(|m| truncate(m, limits::MAX_PROGRESS_MESSAGE_BYTES).to_owned());
        self.emit(now, || Event::TaskProgress {
            task_id,
            unit,
            agent_id,
            progress,
            message,
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
        self.complete_work_with(work_id, agent_id, result, None, now)
    }

    /// [`Swarm::complete_work`] with what the attempt cost, booked before
    /// anything else (a result refused for want of room still cost it).
    pub fn complete_work_with(
        &mut self,
        work_id: &str,
        agent_id: &str,
        result: Payload,
        usage: Option<UnitUsage>,
        now: u64,
    ) -> Result<bool> {
        check_payload("result", &result)?;
        if let Some(u) = &usage {
            u.check()?;
        }
        let Some((task, unit, attempt, agent)) = self.live_work(work_id, agent_id)? else {
            return Ok(false);
        };
        if let Some(u) = usage {
            self.charge((task, unit, attempt), agent, u);
        }
        let growth = quotas::result_growth(&self.tasks[&task], unit, result.len());
        if let Err(e) = self.room().admit(growth) {
            // Refused, but not lost: the attempt fails with the reason.
            let why = format!("result rejected: {e}");
            self.fail_held(agent, (task, unit, attempt), &why, false, now);
            return Err(e);
        }
        let latency = now.saturating_sub(self.tasks[&task].units[unit as usize].dispatched_at);
        self.release_agent(agent, task, unit, attempt, Some((true, latency)), now);
        self.success_ewma = 0.9 * self.success_ewma + 0.1;
        self.counters.units_completed += 1;
        let t = self.tasks.get_mut(&task).expect("live task");
        let u = &mut t.units[unit as usize];
        u.record_attempt(agent, AttemptOutcome::Completed, now);
        u.state = UnitState::Done;
        let run = u.run_mut();
        run.result = Some(result);
        run.error = None;
        t.unfinished -= 1;
        if t.is_hedged() || t.unfinished == 0 {
            self.finish_task(task, TaskStatus::Completed, None, now);
        } else {
            self.remeasure(task);
            let t = &self.tasks[&task];
            let dependents = t.units[unit as usize].dependents().to_vec();
            let ring_pipeline = self.topology == Topology::Ring
                && t.mode == ExecMode::Sequential
                && !t.has_subtasks;
            let next_agent = ring_pipeline
                .then(|| self.agents.get(&agent))
                .flatten()
                .map(|a| {
                    let next = topology::ring_next(self.position(a), self.order.len());
                    self.agent_at(next).seq
                });
            for d in dependents {
                let t = self.tasks.get_mut(&task).expect("live task");
                let du = &mut t.units[d as usize];
                du.pending_deps -= 1;
                if du.pending_deps == 0 && du.state == UnitState::Blocked {
                    if next_agent.is_some() || du.preferred().is_some() {
                        du.run_mut().preferred = next_agent;
                    }
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
        self.fail_work_with(work_id, agent_id, reason, timed_out, None, now)
    }

    /// [`Swarm::fail_work`] with what the failed attempt cost.
    pub fn fail_work_with(
        &mut self,
        work_id: &str,
        agent_id: &str,
        reason: &str,
        timed_out: bool,
        usage: Option<UnitUsage>,
        now: u64,
    ) -> Result<bool> {
        if let Some(u) = &usage {
            u.check()?;
        }
        let reason = truncate(reason, limits::MAX_TEXT_BYTES);
        let Some((task, unit, attempt, agent)) = self.live_work(work_id, agent_id)? else {
            return Ok(false);
        };
        if let Some(u) = usage {
            self.charge((task, unit, attempt), agent, u);
        }
        self.fail_held(agent, (task, unit, attempt), reason, timed_out, now);
        Ok(true)
    }

    /// A unit the agent `seq` holds failed: the agent lets it go (and may
    /// take queued work), the unit is retried or fails its task.
    pub(super) fn fail_held(
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

    pub(super) fn fail_attempt(
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
        u.run_mut().error = Some(reason.to_owned());
        if let Some(a) = agent {
            let why = task::truncated(reason, task::MAX_ATTEMPT_ERROR_BYTES);
            let outcome = if timed_out {
                AttemptOutcome::TimedOut(why.clone())
            } else {
                AttemptOutcome::Failed(why.clone())
            };
            u.record_attempt(a, outcome, now);
            if !u.excluded().contains(&a) {
                u.run_mut().excluded.push(a);
            }
            if let Some(agent) = self.agents.get_mut(&a) {
                agent.last_error = Some(why);
            }
        }
        // The reason and the attempt's record are held with the task.
        self.remeasure(task);
        let t = self.tasks.get_mut(&task).expect("live task");
        let u = &mut t.units[unit as usize];
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
            let unit_name = t.unit_name(unit).into_owned();
            let task_id = t.id(&self.id);
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
        let attempts = u.attempts;
        let name = t.unit_name(unit).into_owned();
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

    pub(super) fn finish_task(
        &mut self,
        task: u64,
        status: TaskStatus,
        error: Option<String>,
        now: u64,
    ) {
        self.set_task_status(task, status);
        let t = self.tasks.get_mut(&task).expect("live task");
        let result = (status == TaskStatus::Completed).then(|| t.aggregate());
        let life = t.life_mut();
        life.finished_at = Some(now);
        life.error = error.clone();
        if result.is_some() {
            life.result = result;
        }
        let mut released = Vec::new();
        let task_id = t.id(&self.id);
        self.steps += t.units.len() as u64;
        for (i, u) in t.units.iter_mut().enumerate() {
            if u.state.is_finished() {
                continue;
            }
            if u.state == UnitState::Ready {
                // Out of the queue now, not met stale by a later pop.
                let caps = if t.has_subtasks {
                    u.capabilities()
                } else {
                    &t.capabilities
                };
                self.queues.remove(caps, t.priority, u.queue_order);
            }
            if u.state == UnitState::Running {
                if let Some(a) = u.agent {
                    u.record_attempt(a, AttemptOutcome::Cancelled, now);
                    released.push((
                        a,
                        i as u32,
                        u.attempts,
                        work_id(&task_id, i as u32, u.attempts),
                    ));
                }
            }
            u.state = UnitState::Cancelled;
        }
        t.unfinished = 0;
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
        self.remeasure(task);
        while self.finished.len() > self.task_history {
            if let Some(old) = self.finished.pop_front() {
                if let Some(t) = self.tasks.remove(&old) {
                    self.ledger.forget(&t);
                    self.forget_task_usage(old);
                }
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

    pub fn task_result(&self, task_id: &str) -> Result<Option<&TaskResult>> {
        Ok(self.task(task_id)?.result())
    }
}
