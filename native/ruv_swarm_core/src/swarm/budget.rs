//! What work cost, and the swarm's cost budget.
//!
//! Each attempt's completion or failure may carry a [`UnitUsage`]; it is
//! kept with the attempt (while its task is in the history) and added to
//! its agent's totals and the swarm's. A swarm with a budget
//! (`max cost`, micro-dollars) stops dispatching new units once its total
//! cost reaches it: running units finish, queued ones wait (their task
//! says why, see [`Swarm::waiting_reason`]), and raising the budget starts
//! dispatch again. Without a budget nothing waits.
//!
//! All of it is kept apart from the rest of the swarm ([`Accounts`]), so a
//! saved swarm of an engine from before usage existed still loads (see
//! [`super::state`]).

use super::*;
use crate::usage::{self, UnitUsage, Usage};

/// An agent's totals and the session id of its latest reporting unit.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentAccount {
    pub usage: Usage,
    pub session_id: Option<Box<str>>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Accounts {
    /// The budget in micro-dollars; `None`: no budget.
    pub(super) budget: Option<u64>,
    /// Every attempt's usage ever, whether or not its task is still kept.
    pub(super) total: Usage,
    /// By agent sequence number, while the agent exists.
    pub(super) agents: BTreeMap<u64, AgentAccount>,
    /// By (task, unit, attempt), while the task is in the swarm.
    pub(super) attempts: BTreeMap<(u64, u32, u32), UnitUsage>,
    /// The last fraction reported for a running unit: (task, unit) =>
    /// (attempt, fraction).
    pub(super) progress: BTreeMap<(u64, u32), (u32, f64)>,
}

/// What `swarm_status` reports about the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_cost_micros: Option<u64>,
    pub spent_micros: u64,
    pub exhausted: bool,
}

impl Swarm {
    /// Sets (or with `None` lifts) the cost budget, in micro-dollars. When
    /// that leaves room, free agents take queued work at once.
    pub fn set_budget(&mut self, max_cost_micros: Option<u64>, now: u64) -> Result<()> {
        if max_cost_micros.is_some_and(|b| b > limits::MAX_USAGE_VALUE) {
            return Err(Error::invalid(format!(
                "max_cost must be at most {} micro-dollars",
                limits::MAX_USAGE_VALUE
            )));
        }
        self.accounts.budget = max_cost_micros;
        if !self.budget_spent() {
            self.refill_free(now);
        }
        Ok(())
    }

    /// Every free push agent takes queued work (after the budget rose).
    fn refill_free(&mut self, now: u64) {
        let free = self.free.clone();
        self.steps += free.len() as u64;
        for seq in free {
            if self.queues.is_empty() {
                break;
            }
            self.fill_agent(seq, now);
        }
    }

    pub fn budget(&self) -> Budget {
        Budget {
            max_cost_micros: self.accounts.budget,
            spent_micros: self.accounts.total.cost_micros,
            exhausted: self.budget_spent(),
        }
    }

    /// Whether the budget forbids dispatching new units.
    pub(super) fn budget_spent(&self) -> bool {
        self.accounts
            .budget
            .is_some_and(|b| self.accounts.total.cost_micros >= b)
    }

    /// Why queued units are not dispatched, if the budget is the reason.
    pub fn waiting_reason(&self) -> Option<String> {
        let b = self.accounts.budget?;
        self.budget_spent().then(|| {
            format!(
                "the swarm's cost budget of ${} is spent (spent ${})",
                usage::dollars(b),
                usage::dollars(self.accounts.total.cost_micros)
            )
        })
    }

    /// Totals of every attempt the swarm ran.
    pub fn usage_total(&self) -> Usage {
        self.accounts.total
    }

    /// An agent's totals and latest session id (default while it has none).
    pub fn agent_account(&self, seq: u64) -> AgentAccount {
        self.accounts.agents.get(&seq).cloned().unwrap_or_default()
    }

    /// The session id of an agent's latest unit that reported one.
    pub(super) fn session_of(&self, seq: u64) -> Option<String> {
        self.accounts
            .agents
            .get(&seq)
            .and_then(|a| a.session_id.as_deref())
            .map(str::to_owned)
    }

    /// What one ended attempt reported (while its task is kept).
    pub fn attempt_usage(&self, task: u64, unit: u32, attempt: u32) -> Option<&UnitUsage> {
        self.accounts.attempts.get(&(task, unit, attempt))
    }

    /// Books an attempt's usage: with the attempt, its agent and the swarm.
    pub(super) fn charge(
        &mut self,
        (task, unit, attempt): (u64, u32, u32),
        agent: u64,
        u: UnitUsage,
    ) {
        let a = &mut self.accounts;
        a.total.add(&u.usage);
        let account = a.agents.entry(agent).or_default();
        account.usage.add(&u.usage);
        if u.session_id.is_some() {
            account.session_id = u.session_id.clone();
        }
        a.attempts.insert((task, unit, attempt), u);
    }

    /// The last fraction reported for a unit's running attempt.
    pub(super) fn note_progress(
        &mut self,
        (task, unit, attempt): (u64, u32, u32),
        fraction: Option<f64>,
    ) -> Option<f64> {
        let slot = &mut self.accounts.progress;
        match fraction {
            Some(f) => {
                slot.insert((task, unit), (attempt, f));
                Some(f)
            }
            None => slot
                .get(&(task, unit))
                .filter(|(a, _)| *a == attempt)
                .map(|(_, f)| *f),
        }
    }

    /// A unit's attempt ended: its progress is forgotten.
    pub(super) fn forget_progress(&mut self, task: u64, unit: u32) {
        self.accounts.progress.remove(&(task, unit));
    }

    /// A task left the swarm: its attempts' usage goes with it (the totals
    /// keep it).
    pub(super) fn forget_task_usage(&mut self, task: u64) {
        let keys: Vec<_> = self
            .accounts
            .attempts
            .range((task, 0, 0)..(task + 1, 0, 0))
            .map(|(k, _)| *k)
            .collect();
        self.steps += keys.len() as u64;
        for k in keys {
            self.accounts.attempts.remove(&k);
        }
    }

    /// An agent left: its account goes (the swarm's totals keep it).
    pub(super) fn forget_agent_usage(&mut self, seq: u64) {
        self.accounts.agents.remove(&seq);
    }

    /// Restores what a snapshot kept: the budget, the swarm's totals, and
    /// an agent's account.
    pub(super) fn restore_accounts(&mut self, budget: Option<u64>, total: Usage) {
        self.accounts.budget = budget;
        self.accounts.total = total;
    }

    pub(super) fn restore_agent_account(&mut self, seq: u64, account: AgentAccount) {
        if account != AgentAccount::default() {
            self.accounts.agents.insert(seq, account);
        }
    }
}
