//! The agent pool: joining, attaching, detaching and leaving, the free
//! set of push agents, and topology lookups (neighbours, coordination).

use super::*;

impl Swarm {
    // ---- agents -----------------------------------------------------------

    pub fn add_agent(&mut self, spec: AgentSpec, now: u64) -> Result<String> {
        if self.order.len() as u32 >= self.max_agents {
            return Err(Error::SwarmFull {
                max: self.max_agents,
            });
        }
        check_agent(&spec)?;
        let seq = self.next_agent;
        self.next_agent += 1;
        let id = ids::child_id(&self.id, Kind::Agent, seq);
        let agent_type = spec.agent_type.clone();
        self.insert_agent(seq, id.clone(), spec, now);
        self.emit(now, || Event::AgentJoined {
            agent_id: id.clone(),
            agent_type,
        });
        Ok(id)
    }

    /// Puts a checked agent at the end of the join order. Push agents come
    /// online when their process attaches; pull agents need none.
    pub(super) fn insert_agent(&mut self, seq: u64, id: String, spec: AgentSpec, joined_at: u64) {
        let capabilities = normalize_caps(spec.capabilities);
        for c in &capabilities {
            *self.cap_holders.entry(c.clone()).or_default() += 1;
        }
        let agent = Agent {
            seq,
            name: spec
                .name
                .unwrap_or_else(|| format!("{}-{}", spec.agent_type, seq)),
            id,
            agent_type: spec.agent_type,
            capabilities,
            dispatch: spec.dispatch,
            capacity: spec.capacity,
            running: 0,
            online: spec.dispatch == Dispatch::Pull,
            node: spec.node,
            meta: spec.meta,
            metrics: AgentMetrics::default(),
            last_error: None,
            joined_at,
            join_slot: self.order.push(seq),
            free_idx: None,
            work: Vec::new(),
        };
        self.agent_counts[agent.status() as usize] += 1;
        self.agents.insert(seq, agent);
    }

    /// The agent's process is up: it may receive work. A new process holds
    /// none of the work its predecessor had, so that work is retried.
    pub fn attach_agent(&mut self, agent_id: &str, now: u64) -> Result<()> {
        let seq = self.agent_seq(agent_id)?;
        self.take_work_back(seq, "agent process restarted", now);
        let before = self.agents[&seq].status();
        self.agents.get_mut(&seq).expect("present").online = true;
        self.after_agent_change(seq, before, now);
        self.fill_agent(seq, now);
        Ok(())
    }

    /// The agent's process is gone (crash, node loss): its work is retried
    /// elsewhere and it gets no more until it attaches again.
    pub fn detach_agent(&mut self, agent_id: &str, reason: &str, now: u64) -> Result<()> {
        let seq = self.agent_seq(agent_id)?;
        self.take_work_back(seq, reason, now);
        let before = self.agents[&seq].status();
        self.agents.get_mut(&seq).expect("present").online = false;
        self.after_agent_change(seq, before, now);
        Ok(())
    }

    pub fn remove_agent(&mut self, agent_id: &str, now: u64) -> Result<()> {
        let seq = self.agent_seq(agent_id)?;
        self.take_work_back(seq, "agent was removed", now);
        self.set_free(seq, false);
        let agent = self.agents.remove(&seq).expect("present");
        self.forget_agent_usage(seq);
        self.agent_counts[agent.status() as usize] -= 1;
        for c in &agent.capabilities {
            if let Some(n) = self.cap_holders.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    self.cap_holders.remove(c);
                }
            }
        }
        let before = self.order.len();
        self.order.remove(agent.join_slot);
        self.emit(now, || Event::AgentLeft { agent_id: agent.id });
        // Roles may have shifted: agents that just became workers (a star
        // left with one agent, a tree with new leaves) may take queued
        // work. They are at most two, at the new first worker positions.
        let after = self.order.len();
        let first = topology::first_worker(self.topology, after);
        let last = topology::first_worker(self.topology, before).min(after);
        for p in first..last {
            self.steps += 1;
            let s = self.agent_at(p).seq;
            self.fill_agent(s, now);
        }
        Ok(())
    }

    /// Fails every attempt the agent holds, so each is retried elsewhere.
    pub(super) fn take_work_back(&mut self, seq: u64, reason: &str, now: u64) {
        let agent_id = self.agents[&seq].id.clone();
        let work = self.agents[&seq].work.clone();
        for Held {
            task,
            unit,
            attempt,
            ..
        } in work
        {
            self.steps += 1;
            let live = self.unit_is_live(task, unit, attempt, seq);
            self.release_agent(seq, task, unit, attempt, None, now);
            if live {
                let why = format!("agent {agent_id} lost its work: {reason}");
                self.fail_attempt(task, unit, Some(seq), &why, false, now);
            }
        }
    }

    pub(super) fn unit_is_live(&self, task: u64, unit: u32, attempt: u32, agent: u64) -> bool {
        self.tasks.get(&task).is_some_and(|t| {
            let u = &t.units[unit as usize];
            u.state == UnitState::Running && u.attempts == attempt && u.agent == Some(agent)
        })
    }

    pub(super) fn is_worker(&self, a: &Agent) -> bool {
        a.dispatch == Dispatch::Pull
            || topology::is_worker(self.topology, self.position(a), self.order.len())
    }

    pub(super) fn can_take(&self, a: &Agent) -> bool {
        a.online && a.running < a.capacity
    }

    pub(super) fn set_free(&mut self, seq: u64, want: bool) {
        let Some(a) = self.agents.get_mut(&seq) else {
            return;
        };
        match (a.free_idx, want) {
            (None, true) => {
                a.free_idx = Some(self.free.len() as u32);
                self.free.push(seq);
            }
            (Some(idx), false) => {
                a.free_idx = None;
                self.free.swap_remove(idx as usize);
                if let Some(&moved) = self.free.get(idx as usize) {
                    self.agents.get_mut(&moved).expect("present").free_idx = Some(idx);
                }
            }
            _ => {}
        }
    }

    /// Updates counts, the free set and emits a status change if any.
    pub(super) fn after_agent_change(&mut self, seq: u64, before: AgentStatus, now: u64) {
        let a = &self.agents[&seq];
        let after = a.status();
        let free = a.dispatch == Dispatch::Push && self.can_take(a);
        self.set_free(seq, free);
        if before != after {
            self.agent_counts[before as usize] -= 1;
            self.agent_counts[after as usize] += 1;
            self.emit_from(now, |s| Event::AgentStatusChanged {
                agent_id: s.agents[&seq].id.clone(),
                status: after,
            });
        }
    }

    pub(super) fn release_agent(
        &mut self,
        seq: u64,
        task: u64,
        unit: u32,
        attempt: u32,
        outcome: Option<(bool, u64)>,
        now: u64,
    ) -> Option<u32> {
        self.forget_progress(task, unit);
        let a = self.agents.get_mut(&seq)?;
        let before = a.status();
        let mut slot = None;
        if let Some(i) = a.work.iter().position(|h| h.is(task, unit, attempt)) {
            slot = Some(a.work.swap_remove(i).slot);
            a.running -= 1;
        }
        if let Some((ok, latency)) = outcome {
            a.metrics.record(ok, latency as f64);
        }
        self.after_agent_change(seq, before, now);
        slot
    }

    /// Agent ids directly connected to `agent_id` in this topology.
    pub fn neighbours(&self, agent_id: &str) -> Result<Vec<String>> {
        let seq = self.agent_seq(agent_id)?;
        let pos = self.position(&self.agents[&seq]);
        Ok(topology::neighbours(self.topology, pos, self.order.len())
            .into_iter()
            .map(|p| self.agent_at(p).id.clone())
            .collect())
    }

    /// Hops of a coordination message from `origin` (or the swarm's entry
    /// point) to every agent: (from, to) agent ids, in delivery order.
    pub fn coordinate(
        &mut self,
        origin: Option<&str>,
        now: u64,
    ) -> Result<Vec<(Option<String>, String)>> {
        let start = match origin {
            Some(id) => Some(self.position(&self.agents[&self.agent_seq(id)?])),
            None => None,
        };
        let id_at = |p: usize| self.agent_at(p).id.clone();
        let hops: Vec<_> = topology::coordination_route(self.topology, start, self.order.len())
            .into_iter()
            .map(|(from, to)| (from.map(id_at), id_at(to)))
            .collect();
        self.counters.coordination_hops += hops.len() as u64;
        let from = origin.map(str::to_owned);
        let deliveries = hops.len();
        self.emit(now, || Event::Coordinated { from, deliveries });
        Ok(hops)
    }
}
