//! Scheduling: choosing an agent for a ready unit, queueing what no agent
//! can take yet, handing work to push agents and to pull agents that claim it.

use super::*;

impl Swarm {
    // ---- scheduling -----------------------------------------------------------

    /// Upper bound of agents able to run work needing `caps`.
    pub(super) fn capable_workers(&self, caps: &[String]) -> u32 {
        let workers = topology::worker_count(self.topology, self.order.len()) as u32;
        caps.iter()
            .map(|c| self.cap_holders.get(c).copied().unwrap_or(0))
            .fold(workers, u32::min)
    }

    /// Picks a free push agent for a unit: preferred agent first, else the
    /// best of up to [`CANDIDATES`] capable workers by the swarm strategy,
    /// avoiding agents that already failed it while others exist.
    pub(super) fn select_agent(
        &mut self,
        caps: &[String],
        excluded: &[u64],
        preferred: Option<u64>,
    ) -> Option<u64> {
        if self.free.is_empty() || caps.iter().any(|c| !self.cap_holders.contains_key(c)) {
            return None;
        }
        if let Some(p) = preferred {
            if let Some(a) = self.agents.get(&p) {
                if a.free_idx.is_some()
                    && self.is_worker(a)
                    && a.has_caps(caps)
                    && !excluded.contains(&p)
                {
                    return Some(p);
                }
            }
        }
        let len = self.free.len();
        self.free_cursor = (self.free_cursor + 1) % len;
        let mut fallback = None;
        let mut best: Option<(u64, f64)> = None;
        let mut seen = 0;
        let mut visited = 0;
        for i in 0..len {
            visited += 1;
            let seq = self.free[(self.free_cursor + i) % len];
            let a = &self.agents[&seq];
            if !self.is_worker(a) || !a.has_caps(caps) {
                continue;
            }
            if excluded.contains(&seq) {
                fallback.get_or_insert(seq);
                continue;
            }
            // Lower cost wins.
            let cost = match self.strategy {
                Strategy::Balanced => {
                    a.load() * 1e6 + (a.metrics.completed + a.metrics.failed) as f64
                }
                Strategy::Specialized => {
                    (a.capabilities.len() - caps.len()) as f64 * 1e3 + a.load()
                }
                Strategy::Adaptive => a.load() - a.metrics.score() * 1e3,
            };
            if best.is_none_or(|(_, c)| cost < c) {
                best = Some((seq, cost));
            }
            seen += 1;
            if seen >= CANDIDATES {
                break;
            }
        }
        self.steps += visited;
        best.map(|(s, _)| s).or(fallback)
    }

    pub(super) fn make_ready(&mut self, task: u64, unit: u32, now: u64) {
        let t = self.tasks.get_mut(&task).expect("live task");
        let u = &mut t.units[unit as usize];
        u.state = UnitState::Ready;
        let (excluded, preferred) = (u.excluded().to_vec(), u.preferred());
        let (priority, attempts) = (t.priority, u.attempts);
        let caps = t.caps_of(unit).to_vec();
        // A spent budget dispatches nothing: the unit waits in the queue.
        let agent = if self.budget_spent() {
            None
        } else {
            self.select_agent(&caps, &excluded, preferred)
        };
        match agent {
            Some(agent) => {
                self.start_unit(task, unit, agent, None, now);
            }
            None => {
                let order = self.queues.push(&caps, priority, task, unit, attempts);
                let t = self.tasks.get_mut(&task).expect("live task");
                t.units[unit as usize].queue_order = order;
            }
        }
    }

    pub(super) fn set_task_status(&mut self, task: u64, status: TaskStatus) {
        let t = self.tasks.get_mut(&task).expect("live task");
        if t.status != status {
            self.task_counts[t.status as usize] -= 1;
            self.task_counts[status as usize] += 1;
            t.status = status;
        }
    }

    /// Hands a ready unit to an agent. Push agents get it through the
    /// outbox; for pull agents it is returned.
    pub(super) fn start_unit(
        &mut self,
        task: u64,
        unit: u32,
        agent: u64,
        lease_ms: Option<u64>,
        now: u64,
    ) -> Option<WorkItem> {
        let a = &self.agents[&agent];
        let before = a.status();
        let dispatch = a.dispatch;
        let agent_id = a.id.clone();
        let t = self.tasks.get_mut(&task).expect("live task");
        let u = &mut t.units[unit as usize];
        u.attempts += 1;
        u.state = UnitState::Running;
        u.agent = Some(agent);
        u.dispatched_at = now;
        let attempt = u.attempts;
        let timeout = lease_ms.or(t.timeout_ms);
        if t.started_at().is_none() {
            t.life_mut().started_at = Some(now);
        }
        // A push agent's worker starts the moment the work reaches it and a
        // pull agent claimed it to run it: either way it is running now.
        if t.status == TaskStatus::Pending {
            self.set_task_status(task, TaskStatus::Running);
        }
        let work = self.work_item(task, unit, attempt, agent, timeout);
        let unit_name = work.unit.clone();
        let a = self.agents.get_mut(&agent).expect("agent");
        let slot = a.free_slot();
        a.running += 1;
        a.work.push(Held {
            task,
            unit,
            attempt,
            slot,
        });
        self.after_agent_change(agent, before, now);
        if let Some(ms) = timeout {
            self.timers.push(Timer {
                at: now + ms,
                kind: TimerKind::AttemptDeadline,
                task,
                unit,
                attempt,
            });
        }
        self.counters.units_dispatched += 1;
        // (Events are built only while someone listens.)
        self.emit(now, || Event::TaskAssigned {
            task_id: work.task_id.clone(),
            unit: unit_name.clone(),
            agent_id: agent_id.clone(),
            attempt,
        });
        self.emit(now, || Event::TaskStarted {
            task_id: work.task_id.clone(),
            unit: unit_name,
            agent_id: agent_id.clone(),
        });
        if dispatch == Dispatch::Pull {
            return Some(work);
        }
        self.outbox.dispatches.push(DispatchOrder {
            agent_seq: agent,
            agent_id,
            slot,
            work,
        });
        None
    }

    /// What an agent needs to run one attempt of a unit it holds.
    fn work_item(
        &self,
        task: u64,
        unit: u32,
        attempt: u32,
        agent: u64,
        timeout_ms: Option<u64>,
    ) -> WorkItem {
        let a = &self.agents[&agent];
        let route: Vec<String> =
            topology::work_path(self.topology, self.position(a), self.order.len())
                .into_iter()
                .map(|p| self.agent_at(p).id.clone())
                .collect();
        let t = &self.tasks[&task];
        let task_id = t.id(&self.id);
        WorkItem {
            work_id: work_id(&task_id, unit, attempt),
            task_id,
            unit: t.unit_name(unit).into_owned(),
            attempt,
            description: t.description.to_string(),
            input: t.input_of(unit),
            input_is_description: t.input_is_description(unit),
            context: t.context_of(unit),
            timeout_ms,
            priority: t.priority,
            route,
            session_id: self.session_of(agent),
        }
    }

    /// Sends every push agent the work it holds again: for a new leader of
    /// a replicated swarm, whose log gave its agents work that no message
    /// carried (the engine was being rebuilt, nothing was sent). An agent
    /// that already has a unit runs it once more at worst (at-least-once);
    /// its second completion is ignored. The state does not change.
    pub fn redeliver(&mut self) {
        let mut orders = Vec::new();
        for a in self.agents.values() {
            if a.dispatch != Dispatch::Push || !a.online {
                continue;
            }
            for h in &a.work {
                let lease = self.tasks[&h.task].timeout_ms;
                orders.push(DispatchOrder {
                    agent_seq: a.seq,
                    agent_id: a.id.clone(),
                    slot: h.slot,
                    work: self.work_item(h.task, h.unit, h.attempt, a.seq, lease),
                });
            }
        }
        self.outbox.dispatches.extend(orders);
    }

    /// Gives a free push agent queued work until it is full.
    pub(super) fn fill_agent(&mut self, seq: u64, now: u64) {
        loop {
            self.steps += 1;
            let Some(a) = self.agents.get(&seq) else {
                return;
            };
            if a.dispatch != Dispatch::Push
                || !self.can_take(a)
                || !self.is_worker(a)
                || self.queues.is_empty()
                || self.budget_spent()
            {
                return;
            }
            let Some(entry) = self.pop_for_agent(seq) else {
                return;
            };
            self.start_unit(entry.task, entry.unit, seq, None, now);
        }
    }

    pub(super) fn pop_for_agent(&mut self, seq: u64) -> Option<scheduler::QueueEntry> {
        let a = &self.agents[&seq];
        let agents = self.order.len();
        let tasks = &self.tasks;
        self.queues.pop_for(&a.capabilities, |e| {
            let Some(t) = tasks.get(&e.task) else {
                return Verdict::Stale;
            };
            let u = &t.units[e.unit as usize];
            if u.state != UnitState::Ready || u.attempts != e.attempt {
                Verdict::Stale
            } else if u.excluded().contains(&seq) && u.excluded().len() < agents {
                // Someone who has not failed this unit yet may take it.
                Verdict::Skip
            } else {
                Verdict::Take
            }
        })
    }

    /// A pull agent takes the next unit it may run, holding it for
    /// `lease_ms`; an expired lease puts the unit back in the queue.
    pub fn claim(&mut self, agent_id: &str, lease_ms: u64, now: u64) -> Result<Option<WorkItem>> {
        if lease_ms == 0 || lease_ms > limits::MAX_TIMEOUT_MS {
            return Err(Error::invalid(format!(
                "lease_ms must be between 1 and {}",
                limits::MAX_TIMEOUT_MS
            )));
        }
        let seq = self.agent_seq(agent_id)?;
        let a = &self.agents[&seq];
        if a.dispatch != Dispatch::Pull {
            return Err(Error::NotPullAgent(a.id.clone()));
        }
        if !self.can_take(a) {
            return Ok(None);
        }
        // Retries whose backoff just ended are claimable now, not at the
        // next periodic tick.
        self.tick(now, 64);
        if self.budget_spent() {
            return Ok(None);
        }
        let Some(entry) = self.pop_for_agent(seq) else {
            return Ok(None);
        };
        Ok(self.start_unit(entry.task, entry.unit, seq, Some(lease_ms), now))
    }
}
