//! Delivery policy: which process gets which message for the effects of a
//! command, and what a failed send means. Pure decisions over a swarm and
//! its mailboxes, generic over the process handle `P`; the host (the NIF)
//! only encodes the messages and sends them.
//!
//! - Cancels go before dispatches: work for a slot just freed by a cancel
//!   must not reach the worker the cancel stops. Until the agent names the
//!   slot's worker again, work for that slot goes to the agent process.
//! - Work goes to the slot's worker when known, else to the agent process;
//!   work for an agent with no process detaches that agent (its work is
//!   retried elsewhere).
//! - A finished task's outcome goes to its waiters (and its id to the
//!   owner when it asked for every outcome); events to subscribers;
//!   discoveries to the subscribers whose filter matches.
//! - The owner is woken when the next deadline moved earlier.
//! - A failed send to a worker resends to its agent; a failed send to an
//!   agent detaches it (unless a new process attached meanwhile); a failed
//!   send to a subscriber drops the subscription.
//! - A *replicated* swarm (one whose state Raft rebuilds by replaying its
//!   commands) never changes because of who is reachable: mailboxes are
//!   this node's, the swarm's state is every member's. There, work for an
//!   agent without a reachable process is not sent and the agent is not
//!   detached; the owner is told (`Message::Unreachable`) and the host
//!   decides, through the log, what to do about it.

use std::collections::{BTreeMap, HashMap};

use crate::discovery::{Discovery, Filter};
use crate::events::EventRecord;
use crate::swarm::{CancelOrder, DispatchOrder, Swarm};

/// The processes that listen to one swarm.
#[derive(Debug, Clone)]
pub struct Mailboxes<P> {
    /// Processes of push agents, by agent sequence number.
    pub agent_pids: HashMap<u64, P>,
    /// Their worker processes by slot, where known.
    pub workers: HashMap<u64, Vec<Option<P>>>,
    pub subscribers: Vec<P>,
    pub discovery_subscribers: Vec<(P, Filter)>,
    /// Discoveries shared by the command being applied.
    pub shared: Vec<Discovery>,
    /// Processes awaiting a task's end, by task id.
    pub waiters: BTreeMap<String, Vec<P>>,
    /// The swarm's server, which runs its timers.
    pub owner: Option<P>,
    /// Whether the owner hears of every task that finishes.
    pub report_outcomes: bool,
    /// When the owner will tick next (ms, engine clock).
    pub wake_at: u64,
    /// Replicated swarm: reachability never changes the swarm (see above).
    pub replicated: bool,
    /// Agents found unreachable, for the owner to hear of.
    pub unreachable: Vec<String>,
}

impl<P> Default for Mailboxes<P> {
    fn default() -> Self {
        Mailboxes {
            agent_pids: HashMap::new(),
            workers: HashMap::new(),
            subscribers: Vec::new(),
            discovery_subscribers: Vec::new(),
            shared: Vec::new(),
            waiters: BTreeMap::new(),
            owner: None,
            report_outcomes: false,
            wake_at: u64::MAX,
            replicated: false,
            unreachable: Vec::new(),
        }
    }
}

impl<P: Copy + Eq> Mailboxes<P> {
    pub fn worker(&self, agent_seq: u64, slot: u32) -> Option<P> {
        self.workers.get(&agent_seq)?.get(slot as usize).copied()?
    }

    /// Names (or forgets) the worker of a slot the engine handed out, so
    /// `slot` is below the agent's capacity.
    pub fn set_worker(&mut self, agent_seq: u64, slot: u32, pid: Option<P>) {
        let i = slot as usize;
        match (self.workers.get_mut(&agent_seq), pid) {
            (Some(slots), _) if i < slots.len() => slots[i] = pid,
            (_, None) => {}
            (_, Some(_)) => {
                let slots = self.workers.entry(agent_seq).or_default();
                slots.resize(i + 1, None);
                slots[i] = pid;
            }
        }
    }

    /// Forgets an agent's process and its workers.
    pub fn forget_agent(&mut self, agent_seq: u64) -> Option<P> {
        self.workers.remove(&agent_seq);
        self.agent_pids.remove(&agent_seq)
    }
}

/// What a message says; the host encodes each once.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Cancel(CancelOrder),
    Work(DispatchOrder),
    /// To the owner: this task finished.
    TaskFinished(String),
    /// To waiters: this task's outcome (read from the swarm).
    TaskDone(String),
    Event(EventRecord),
    Discovery(Discovery),
    /// To the owner: tick, the next deadline moved earlier.
    Wakeup,
    /// To the owner of a replicated swarm: work for this agent found no
    /// reachable process.
    Unreachable(String),
}

/// What a failed send means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounce<P> {
    Nothing,
    /// A slot's worker is gone: the work goes to its agent instead.
    Worker {
        agent_seq: u64,
        slot: u32,
        agent: Option<P>,
        agent_id: String,
    },
    /// An agent's process is gone: it cannot run what it was given.
    Agent {
        agent_id: String,
    },
    Subscriber,
}

/// One send: `message` (an index into [`Plan::messages`]) to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter<P> {
    pub to: P,
    pub message: usize,
    pub bounce: Bounce<P>,
}

/// The messages of a command's effects and who gets each, in send order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<P> {
    pub messages: Vec<Message>,
    pub letters: Vec<Letter<P>>,
}

impl<P> Default for Plan<P> {
    fn default() -> Self {
        Plan {
            messages: Vec::new(),
            letters: Vec::new(),
        }
    }
}

impl<P> Plan<P> {
    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    fn message(&mut self, m: Message) -> usize {
        self.messages.push(m);
        self.messages.len() - 1
    }
}

/// What the swarm must learn from failed sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix<P> {
    Worker { agent_seq: u64, slot: u32, pid: P },
    Agent { agent_id: String, pid: P },
    Subscriber(P),
}

/// Where to send a message instead, and what that send's failure means.
pub type Resend<P> = Option<(P, Bounce<P>)>;

/// What to do after a send of a letter to `to` failed: what to settle, and
/// where to send the same message instead.
pub fn bounced<P: Copy>(to: P, bounce: Bounce<P>) -> (Option<Fix<P>>, Resend<P>) {
    match bounce {
        Bounce::Nothing => (None, None),
        Bounce::Worker {
            agent_seq,
            slot,
            agent,
            agent_id,
        } => (
            Some(Fix::Worker {
                agent_seq,
                slot,
                pid: to,
            }),
            agent.map(|a| (a, Bounce::Agent { agent_id })),
        ),
        Bounce::Agent { agent_id } => (Some(Fix::Agent { agent_id, pid: to }), None),
        Bounce::Subscriber => (Some(Fix::Subscriber(to)), None),
    }
}

/// Why an agent is detached when its process cannot be reached.
pub const NOT_ALIVE: &str = "agent process is not alive";

/// Drains the swarm's effects into messages for the processes in `boxes`.
pub fn plan<P: Copy + Eq>(swarm: &mut Swarm, boxes: &mut Mailboxes<P>, now: u64) -> Plan<P> {
    let mut plan = Plan::default();
    plan_into(&mut plan, swarm, boxes, now);
    plan
}

fn plan_into<P: Copy + Eq>(
    plan: &mut Plan<P>,
    swarm: &mut Swarm,
    boxes: &mut Mailboxes<P>,
    now: u64,
) {
    let out = swarm.drain();
    for c in out.cancels {
        // The agent stops (or replaces) that worker: until it names the
        // slot's worker again, work for the slot goes through the agent.
        boxes.set_worker(c.agent_seq, c.slot, None);
        if let Some(&to) = boxes.agent_pids.get(&c.agent_seq) {
            let message = plan.message(Message::Cancel(c));
            plan.letters.push(Letter {
                to,
                message,
                bounce: Bounce::Nothing,
            });
        }
    }
    for d in out.dispatches {
        let agent = boxes.agent_pids.get(&d.agent_seq).copied();
        let (to, bounce) = match (boxes.worker(d.agent_seq, d.slot), agent) {
            (Some(to), _) => (
                to,
                Bounce::Worker {
                    agent_seq: d.agent_seq,
                    slot: d.slot,
                    agent,
                    agent_id: d.agent_id.clone(),
                },
            ),
            (None, Some(to)) => (
                to,
                Bounce::Agent {
                    agent_id: d.agent_id.clone(),
                },
            ),
            (None, None) if boxes.replicated => {
                boxes.unreachable.push(d.agent_id);
                continue;
            }
            (None, None) => {
                // Dispatched to an agent with no process: settled like a
                // failed send.
                let _ = swarm.detach_agent(&d.agent_id, NOT_ALIVE, now);
                continue;
            }
        };
        let message = plan.message(Message::Work(d));
        plan.letters.push(Letter {
            to,
            message,
            bounce,
        });
    }
    let reporter = boxes.owner.filter(|_| boxes.report_outcomes);
    for task_id in out.finished {
        if let Some(to) = reporter {
            let message = plan.message(Message::TaskFinished(task_id.clone()));
            plan.letters.push(Letter {
                to,
                message,
                bounce: Bounce::Nothing,
            });
        }
        if let Some(pids) = boxes.waiters.remove(&task_id) {
            let message = plan.message(Message::TaskDone(task_id));
            plan.letters.extend(pids.into_iter().map(|to| Letter {
                to,
                message,
                bounce: Bounce::Nothing,
            }));
        }
    }
    for e in out.events {
        if boxes.subscribers.is_empty() {
            break;
        }
        let message = plan.message(Message::Event(e));
        plan.letters
            .extend(boxes.subscribers.iter().map(|&to| Letter {
                to,
                message,
                bounce: Bounce::Subscriber,
            }));
    }
    for d in std::mem::take(&mut boxes.shared) {
        let mut message = None;
        for (to, f) in &boxes.discovery_subscribers {
            if f.matches(&d) {
                let message = *message.get_or_insert_with(|| {
                    plan.messages.push(Message::Discovery(d.clone()));
                    plan.messages.len() - 1
                });
                plan.letters.push(Letter {
                    to: *to,
                    message,
                    bounce: Bounce::Subscriber,
                });
            }
        }
    }
    for agent_id in std::mem::take(&mut boxes.unreachable) {
        if let Some(to) = boxes.owner {
            let message = plan.message(Message::Unreachable(agent_id));
            plan.letters.push(Letter {
                to,
                message,
                bounce: Bounce::Nothing,
            });
        }
    }
    swarm.outbox.record_events = !boxes.subscribers.is_empty();
    if let (Some(next), Some(owner)) = (swarm.next_deadline(), boxes.owner) {
        if next < boxes.wake_at {
            boxes.wake_at = next;
            let message = plan.message(Message::Wakeup);
            plan.letters.push(Letter {
                to: owner,
                message,
                bounce: Bounce::Nothing,
            });
        }
    }
    // Detaching an agent above may have produced more.
    if !swarm.outbox.is_empty() {
        plan_into(plan, swarm, boxes, now);
    }
}

/// Forgets what is gone; a push agent whose process is gone goes offline,
/// so the work it was given is retried elsewhere.
pub fn settle<P: Copy + Eq>(
    swarm: &mut Swarm,
    boxes: &mut Mailboxes<P>,
    fixes: Vec<Fix<P>>,
    now: u64,
) {
    for fix in fixes {
        match fix {
            Fix::Worker {
                agent_seq,
                slot,
                pid,
            } => {
                if boxes.worker(agent_seq, slot) == Some(pid) {
                    boxes.set_worker(agent_seq, slot, None);
                }
            }
            Fix::Agent { agent_id, pid } => {
                let Ok(seq) = swarm.agent(&agent_id).map(|a| a.seq) else {
                    continue;
                };
                // Unless a new process attached meanwhile.
                if boxes.agent_pids.get(&seq) == Some(&pid) {
                    boxes.forget_agent(seq);
                    if boxes.replicated {
                        boxes.unreachable.push(agent_id);
                    } else {
                        let _ = swarm.detach_agent(&agent_id, NOT_ALIVE, now);
                    }
                }
            }
            Fix::Subscriber(pid) => {
                boxes.subscribers.retain(|s| *s != pid);
                boxes.discovery_subscribers.retain(|(s, _)| *s != pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::swarm::SwarmConfig;

    type Boxes = Mailboxes<u32>;

    fn swarm_with_push_agent() -> (Swarm, String, u64) {
        let mut s = Swarm::new(crate::ids::new_swarm_id(), SwarmConfig::default(), 0).unwrap();
        let spec = AgentSpec {
            dispatch: Dispatch::Push,
            ..Default::default()
        };
        let id = s.add_agent(spec, 0).unwrap();
        s.attach_agent(&id, 0).unwrap();
        let seq = s.agent(&id).unwrap().seq;
        s.drain();
        (s, id, seq)
    }

    fn task(text: &str) -> TaskSpec {
        TaskSpec {
            description: text.into(),
            timeout_ms: Some(1_000),
            ..Default::default()
        }
    }

    #[test]
    fn work_goes_to_the_slot_worker_and_a_cancel_to_the_agent_first() {
        let (mut s, agent_id, seq) = swarm_with_push_agent();
        let mut b = Boxes::default();
        b.agent_pids.insert(seq, 1);
        b.set_worker(seq, 0, Some(10));
        let t = s.submit(task("x"), 0).unwrap();
        let p = plan(&mut s, &mut b, 0);
        assert_eq!(p.letters.len(), 1);
        assert_eq!(p.letters[0].to, 10);
        assert!(matches!(p.messages[0], Message::Work(_)));
        assert_eq!(
            p.letters[0].bounce,
            Bounce::Worker {
                agent_seq: seq,
                slot: 0,
                agent: Some(1),
                agent_id: agent_id.clone()
            }
        );
        // Cancelled, then new work for the same slot: the cancel goes to the
        // agent first, and the work too (the slot's worker is stopping).
        s.cancel(&t, 1).unwrap();
        s.submit(task("y"), 1).unwrap();
        let p = plan(&mut s, &mut b, 1);
        let kinds: Vec<(u32, bool)> = p
            .letters
            .iter()
            .map(|l| (l.to, matches!(p.messages[l.message], Message::Cancel(_))))
            .collect();
        assert_eq!(kinds, vec![(1, true), (1, false)]);
        assert_eq!(b.worker(seq, 0), None);
    }

    #[test]
    fn work_for_an_agent_without_a_process_detaches_it() {
        let (mut s, agent_id, _) = swarm_with_push_agent();
        let mut b = Boxes::default();
        let t = s.submit(task("x"), 0).unwrap();
        let p = plan(&mut s, &mut b, 0);
        assert!(p.letters.is_empty());
        assert_eq!(s.agent(&agent_id).unwrap().status(), AgentStatus::Offline);
        assert!(!s.task(&t).unwrap().status.is_terminal());
    }

    #[test]
    fn a_replicated_swarm_is_not_changed_by_who_is_reachable() {
        // The same commands on two replicas: on one the agent's process is
        // known and its sends fail, the other (a replay) knows no process.
        let (mut a, agent_id, seq) = swarm_with_push_agent();
        let mut b = Swarm::load(&a.save()).unwrap();
        let mut boxes_a = Boxes {
            replicated: true,
            owner: Some(7),
            ..Default::default()
        };
        boxes_a.agent_pids.insert(seq, 1);
        let mut boxes_b = Boxes {
            replicated: true,
            ..Default::default()
        };
        a.submit(task("x"), 0).unwrap();
        b.submit(task("x"), 0).unwrap();
        let pa = plan(&mut a, &mut boxes_a, 0);
        let pb = plan(&mut b, &mut boxes_b, 0);
        assert!(matches!(pa.messages[0], Message::Work(_)));
        assert!(pb.letters.is_empty());
        // The send to the agent fails on replica a.
        let (fix, _) = bounced(1, pa.letters[0].bounce.clone());
        settle(&mut a, &mut boxes_a, fix.into_iter().collect(), 1);
        let again = plan(&mut a, &mut boxes_a, 1);
        assert_eq!(
            again.messages,
            vec![Message::Unreachable(agent_id.clone())],
            "the owner hears of it"
        );
        assert_eq!(a.agent(&agent_id).unwrap().status(), AgentStatus::Busy);
        assert_eq!(a.save(), b.save());
    }

    #[test]
    fn waiters_get_outcomes_and_the_owner_ids_and_wake_ups() {
        let (mut s, agent_id, seq) = swarm_with_push_agent();
        let mut b = Boxes {
            owner: Some(7),
            report_outcomes: true,
            ..Default::default()
        };
        b.agent_pids.insert(seq, 1);
        let t = s.submit(task("x"), 0).unwrap();
        b.waiters.insert(t.clone(), vec![5, 6]);
        let p = plan(&mut s, &mut b, 0);
        // The work, and a wake-up for its deadline at 1,000 ms.
        assert_eq!(p.letters.len(), 2);
        assert_eq!((p.letters[1].to, &p.messages[1]), (7, &Message::Wakeup));
        assert_eq!(b.wake_at, 1_000);
        let work = match &p.messages[0] {
            Message::Work(d) => d.work.work_id.clone(),
            other => panic!("expected work, got {other:?}"),
        };
        s.complete_work(&work, &agent_id, b"ok".to_vec(), 5)
            .unwrap();
        let p = plan(&mut s, &mut b, 5);
        let to: Vec<(u32, &Message)> = p
            .letters
            .iter()
            .map(|l| (l.to, &p.messages[l.message]))
            .collect();
        let done = Message::TaskDone(t.clone());
        assert_eq!(
            to,
            vec![
                (7, &Message::TaskFinished(t.clone())),
                (5, &done),
                (6, &done)
            ]
        );
        assert!(b.waiters.is_empty());
    }

    #[test]
    fn failed_sends_resend_to_the_agent_then_detach_it() {
        let (mut s, agent_id, seq) = swarm_with_push_agent();
        let bounce = Bounce::Worker {
            agent_seq: seq,
            slot: 0,
            agent: Some(1),
            agent_id: agent_id.clone(),
        };
        let (fix, instead) = bounced(10, bounce);
        assert_eq!(
            fix,
            Some(Fix::Worker {
                agent_seq: seq,
                slot: 0,
                pid: 10
            })
        );
        let (to, bounce) = instead.unwrap();
        assert_eq!(to, 1);
        let (fix, instead) = bounced(to, bounce);
        assert!(instead.is_none());
        let mut b = Boxes::default();
        b.agent_pids.insert(seq, 2);
        b.subscribers = vec![3, 4];
        // A stale pid (a new process attached meanwhile) changes nothing.
        settle(&mut s, &mut b, vec![fix.clone().unwrap()], 1);
        assert_eq!(s.agent(&agent_id).unwrap().status(), AgentStatus::Idle);
        b.agent_pids.insert(seq, 1);
        settle(&mut s, &mut b, vec![fix.unwrap(), Fix::Subscriber(3)], 1);
        assert_eq!(s.agent(&agent_id).unwrap().status(), AgentStatus::Offline);
        assert!(b.agent_pids.is_empty());
        assert_eq!(b.subscribers, vec![4]);
        assert_eq!(bounced(3, Bounce::Subscriber).0, Some(Fix::Subscriber(3)));
        assert_eq!(bounced(3, Bounce::<u32>::Nothing), (None, None));
    }
}
