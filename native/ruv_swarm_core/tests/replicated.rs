//! A replicated swarm (a Raft log's engine) is a pure function of its
//! commands: two replicas given the same commands reach the same state
//! whatever their mailboxes hold. Replica A knows every agent's process and
//! some of its sends fail (it also has a subscriber); replica B knows no
//! process at all, as a node
//! replaying its log after a restart. Their saved states must be equal
//! after every command, and a replica loaded from a save continues equal.

use proptest::prelude::{any, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig};
use proptest::strategy::Strategy as Gen;
use ruv_swarm_core::delivery::{bounced, plan, settle, Mailboxes, Message};
use ruv_swarm_core::memory::StoreRequest;
use ruv_swarm_core::swarm::SwarmConfig;
use ruv_swarm_core::*;

#[derive(Debug, Clone)]
enum Op {
    AddAgent {
        push: bool,
        cap: Option<u8>,
    },
    Attach(usize),
    Detach(usize),
    Submit {
        cap: Option<u8>,
        timeout: bool,
        retries: u32,
    },
    Complete(usize),
    Fail {
        work: usize,
        timed_out: bool,
    },
    Claim(usize),
    Cancel(usize),
    Tick(u64),
    Store {
        key: u8,
        ttl: bool,
    },
    Delete(u8),
}

fn op() -> impl Gen<Value = Op> {
    let cap = proptest::option::of(0u8..2);
    prop_oneof![
        (any::<bool>(), cap.clone()).prop_map(|(push, cap)| Op::AddAgent { push, cap }),
        (0usize..8).prop_map(Op::Attach),
        (0usize..8).prop_map(Op::Detach),
        (cap, any::<bool>(), 1u32..4).prop_map(|(cap, timeout, retries)| Op::Submit {
            cap,
            timeout,
            retries
        }),
        (0usize..16).prop_map(Op::Complete),
        (0usize..16, any::<bool>()).prop_map(|(work, timed_out)| Op::Fail { work, timed_out }),
        (0usize..8).prop_map(Op::Claim),
        (0usize..8).prop_map(Op::Cancel),
        (1u64..3_000).prop_map(Op::Tick),
        (0u8..4, any::<bool>()).prop_map(|(key, ttl)| Op::Store { key, ttl }),
        (0u8..4).prop_map(Op::Delete),
        Just(Op::Tick(10)),
    ]
}

struct Replica {
    swarm: Swarm,
    boxes: Mailboxes<u64>,
    /// Whether this replica knows the agents' processes.
    live: bool,
}

impl Replica {
    fn new(swarm: Swarm, live: bool) -> Self {
        // The live replica also has a subscriber: events are recorded there
        // and not on the other replica.
        let boxes = Mailboxes {
            replicated: true,
            subscribers: if live { vec![u64::MAX] } else { Vec::new() },
            ..Default::default()
        };
        Replica { swarm, boxes, live }
    }

    /// Delivers the command's effects: on the live replica sends to agents
    /// fail when `fail` says so. Returns the work ids handed out.
    fn deliver(&mut self, now: u64, fail: bool) -> Vec<String> {
        let mut work = Vec::new();
        loop {
            let p = plan(&mut self.swarm, &mut self.boxes, now);
            let mut fixes = Vec::new();
            for l in &p.letters {
                if let Message::Work(d) = &p.messages[l.message] {
                    work.push(d.work.work_id.clone());
                }
                if fail {
                    let (fix, _) = bounced(l.to, l.bounce.clone());
                    fixes.extend(fix);
                }
            }
            if fixes.is_empty() {
                return work;
            }
            settle(&mut self.swarm, &mut self.boxes, fixes, now);
        }
    }
}

/// The agents, tasks and work ids the commands can name.
#[derive(Default)]
struct Names {
    agents: Vec<String>,
    tasks: Vec<String>,
    work: Vec<String>,
}

fn apply(r: &mut Replica, names: &Names, op: &Op, now: u64) -> Option<String> {
    let s = &mut r.swarm;
    let pick = |v: &Vec<String>, i: usize| (!v.is_empty()).then(|| v[i % v.len()].clone());
    match op {
        Op::AddAgent { push, cap } => {
            let spec = AgentSpec {
                dispatch: if *push {
                    Dispatch::Push
                } else {
                    Dispatch::Pull
                },
                capabilities: cap.iter().map(|c| format!("c{c}")).collect(),
                capacity: 2,
                ..Default::default()
            };
            return s.add_agent(spec, now).ok();
        }
        Op::Attach(i) => {
            if let Some(a) = pick(&names.agents, *i) {
                let seq = s.agent(&a).map(|a| a.seq);
                if s.attach_agent(&a, now).is_ok() && r.live {
                    if let Ok(seq) = seq {
                        r.boxes.agent_pids.insert(seq, seq);
                    }
                }
            }
        }
        Op::Detach(i) => {
            if let Some(a) = pick(&names.agents, *i) {
                if let Ok(seq) = s.agent(&a).map(|a| a.seq) {
                    r.boxes.forget_agent(seq);
                }
                let _ = s.detach_agent(&a, "gone", now);
            }
        }
        Op::Submit {
            cap,
            timeout,
            retries,
        } => {
            let spec = TaskSpec {
                description: "t".into(),
                capabilities: cap.iter().map(|c| format!("c{c}")).collect(),
                timeout_ms: timeout.then_some(500),
                retry: RetryPolicy {
                    max_attempts: *retries,
                    base_backoff_ms: 50,
                    max_backoff_ms: 400,
                },
                ..Default::default()
            };
            return s.submit(spec, now).ok();
        }
        Op::Complete(i) => {
            if let Some(w) = pick(&names.work, *i) {
                for a in &names.agents {
                    let _ = s.complete_work(&w, a, b"done".to_vec(), now);
                }
            }
        }
        Op::Fail { work, timed_out } => {
            if let Some(w) = pick(&names.work, *work) {
                for a in &names.agents {
                    let _ = s.fail_work(&w, a, "no", *timed_out, now);
                }
            }
        }
        Op::Claim(i) => {
            if let Some(a) = pick(&names.agents, *i) {
                if let Ok(Some(item)) = s.claim(&a, 1_000, now) {
                    return Some(item.work_id);
                }
            }
        }
        Op::Cancel(i) => {
            if let Some(t) = pick(&names.tasks, *i) {
                let _ = s.cancel(&t, now);
            }
        }
        Op::Tick(_) => {
            s.tick(now, 64);
        }
        Op::Store { key, ttl } => {
            let req = StoreRequest {
                namespace: "ns",
                key: &format!("k{key}"),
                value: b"v".to_vec(),
                text_at: None,
                tags: Vec::new(),
                ttl_ms: ttl.then_some(700),
                if_version: None,
            };
            let _ = s.memory_store(req, now);
        }
        Op::Delete(key) => {
            let _ = s.memory_delete("ns", &format!("k{key}"), now);
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replicas_agree_whatever_their_mailboxes(
        ops in proptest::collection::vec((op(), any::<bool>()), 1..80)
    ) {
        let mut first = Swarm::new("swarm-0000abcd-1".into(), SwarmConfig::default(), 0).unwrap();
        first.seed(99);
        let mut a = Replica::new(Swarm::load(&first.save()).unwrap(), true);
        let mut b = Replica::new(first, false);
        let mut names = Names::default();
        let mut now = 1;
        for (i, (op, fail)) in ops.iter().enumerate() {
            now += match op { Op::Tick(dt) => *dt, _ => 1 };
            let made_a = apply(&mut a, &names, op, now);
            let made_b = apply(&mut b, &names, op, now);
            prop_assert_eq!(&made_a, &made_b);
            match (op, made_a) {
                (Op::AddAgent { .. }, Some(id)) => names.agents.push(id),
                (Op::Submit { .. }, Some(id)) => names.tasks.push(id),
                (Op::Claim(_), Some(w)) => names.work.push(w),
                _ => {}
            }
            // The log names work by the ids the live replica handed out;
            // B, with no process to send to, hands out none.
            names.work.extend(a.deliver(now, *fail));
            b.deliver(now, false);
            prop_assert_eq!(a.swarm.save(), b.swarm.save(), "diverged at command {}: {:?}", i, op);
        }
        // A replica rebuilt from a save continues like the original.
        let mut c = Replica::new(Swarm::load(&a.swarm.save()).unwrap(), false);
        for dt in [100, 1_000, 10_000] {
            now += dt;
            a.swarm.tick(now, 64);
            c.swarm.tick(now, 64);
            a.deliver(now, false);
            c.deliver(now, false);
        }
        prop_assert_eq!(a.swarm.save(), c.swarm.save());
    }
}
