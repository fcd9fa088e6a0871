use proptest::prelude::{any, prop_assert, prop_oneof, proptest, Just, ProptestConfig};
use proptest::strategy::Strategy as Gen;
use ruv_swarm_core::events::Event;
use ruv_swarm_core::swarm::{SwarmConfig, WorkItem};
use ruv_swarm_core::task::TaskResult;
use ruv_swarm_core::*;

fn swarm(topology: Topology, strategy: Strategy) -> Swarm {
    let cfg = SwarmConfig {
        topology,
        strategy,
        ..Default::default()
    };
    Swarm::new(ids::new_swarm_id(), cfg, 0).unwrap()
}

fn push_agent(s: &mut Swarm, caps: &[&str]) -> String {
    let spec = AgentSpec {
        dispatch: Dispatch::Push,
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let id = s.add_agent(spec, 0).unwrap();
    s.attach_agent(&id, 0).unwrap();
    id
}

fn pull_agent(s: &mut Swarm) -> String {
    s.add_agent(AgentSpec::default(), 0).unwrap()
}

fn task(desc: &str) -> TaskSpec {
    TaskSpec {
        description: desc.into(),
        input: desc.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn dispatched(s: &mut Swarm) -> Vec<(String, WorkItem)> {
    s.drain()
        .dispatches
        .into_iter()
        .map(|d| (d.agent_id, d.work))
        .collect()
}

fn status(s: &Swarm, id: &str) -> TaskStatus {
    s.task(id).unwrap().status
}

#[test]
fn max_agents_is_enforced() {
    let cfg = SwarmConfig {
        max_agents: 2,
        ..Default::default()
    };
    let mut s = Swarm::new(ids::new_swarm_id(), cfg, 0).unwrap();
    pull_agent(&mut s);
    pull_agent(&mut s);
    assert_eq!(
        s.add_agent(AgentSpec::default(), 0),
        Err(Error::SwarmFull { max: 2 })
    );
}

#[test]
fn work_waits_for_an_agent_then_completes_with_its_result() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let t = s.submit(task("hello"), 1).unwrap();
    assert_eq!(status(&s, &t), TaskStatus::Pending);
    let a = push_agent(&mut s, &[]);
    let work = dispatched(&mut s);
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].0, a);
    assert_eq!(work[0].1.input, b"hello");
    // A push agent's worker starts as the work reaches it.
    assert_eq!(status(&s, &t), TaskStatus::Running);
    assert!(s
        .complete_work(&work[0].1.work_id, &a, b"HELLO".to_vec(), 5)
        .unwrap());
    assert_eq!(status(&s, &t), TaskStatus::Completed);
    assert_eq!(
        s.task_result(&t).unwrap(),
        Some(&TaskResult::Single(b"HELLO".to_vec()))
    );
    // A late duplicate changes nothing.
    assert!(!s
        .complete_work(&work[0].1.work_id, &a, b"other".to_vec(), 6)
        .unwrap());
    assert_eq!(
        s.task_result(&t).unwrap(),
        Some(&TaskResult::Single(b"HELLO".to_vec()))
    );
    let m = s.agent(&a).unwrap().metrics;
    assert_eq!((m.completed, m.failed), (1, 0));
    assert_eq!(s.status().tasks[TaskStatus::Completed as usize], 1);
}

#[test]
fn higher_priority_runs_first_then_fifo() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let low = s
        .submit(
            TaskSpec {
                priority: Priority::Low,
                ..task("low")
            },
            0,
        )
        .unwrap();
    let m1 = s.submit(task("m1"), 0).unwrap();
    let crit = s
        .submit(
            TaskSpec {
                priority: Priority::Critical,
                ..task("crit")
            },
            0,
        )
        .unwrap();
    let m2 = s.submit(task("m2"), 0).unwrap();
    let a = push_agent(&mut s, &[]);
    let mut order = Vec::new();
    for now in 1..=4 {
        let work = dispatched(&mut s);
        assert_eq!(work.len(), 1, "one agent, one unit at a time");
        order.push(work[0].1.task_id.clone());
        s.complete_work(&work[0].1.work_id, &a, vec![], now)
            .unwrap();
    }
    assert_eq!(order, vec![crit, m1, m2, low]);
}

#[test]
fn capabilities_decide_who_gets_the_work() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let _plain = push_agent(&mut s, &[]);
    let gpu = push_agent(&mut s, &["gpu", "rust"]);
    s.drain();
    let spec = TaskSpec {
        capabilities: vec!["gpu".into()],
        ..task("train")
    };
    s.submit(spec, 0).unwrap();
    let work = dispatched(&mut s);
    assert_eq!(work[0].0, gpu);
    // Nobody has "tpu": the task waits instead of going to the wrong agent.
    let t = s
        .submit(
            TaskSpec {
                capabilities: vec!["tpu".into()],
                ..task("x")
            },
            0,
        )
        .unwrap();
    assert!(dispatched(&mut s).is_empty());
    assert_eq!(status(&s, &t), TaskStatus::Pending);
}

#[test]
fn specialized_prefers_the_tightest_fit_and_adaptive_the_best_record() {
    let mut s = swarm(Topology::Mesh, Strategy::Specialized);
    let _generalist = push_agent(&mut s, &["rust", "python", "go"]);
    let specialist = push_agent(&mut s, &["rust"]);
    s.drain();
    s.submit(
        TaskSpec {
            capabilities: vec!["rust".into()],
            ..task("x")
        },
        0,
    )
    .unwrap();
    assert_eq!(dispatched(&mut s)[0].0, specialist);

    let mut s = swarm(Topology::Mesh, Strategy::Adaptive);
    let flaky = push_agent(&mut s, &[]);
    let solid = push_agent(&mut s, &[]);
    s.drain();
    // Train the metrics: flaky fails, solid succeeds.
    for (agent, ok) in [
        (&flaky, false),
        (&solid, true),
        (&flaky, false),
        (&solid, true),
    ] {
        let t = s
            .submit(
                TaskSpec {
                    retry: RetryPolicy {
                        max_attempts: 1,
                        ..Default::default()
                    },
                    ..task("t")
                },
                0,
            )
            .unwrap();
        let work = dispatched(&mut s);
        let item = work
            .iter()
            .find(|(a, _)| a == agent)
            .map(|(_, w)| w.clone());
        // Route the unit to the agent under training if it got it; else to whoever did.
        let (who, w) = item
            .map(|w| (agent.clone(), w))
            .unwrap_or_else(|| work[0].clone());
        if ok || who != *agent {
            s.complete_work(&w.work_id, &who, vec![], 1).unwrap();
        } else {
            s.fail_work(&w.work_id, &who, "boom", false, 1).unwrap();
        }
        assert!(status(&s, &t).is_terminal());
    }
    assert!(s.agent(&flaky).unwrap().metrics.failed > 0);
    s.submit(task("pick"), 2).unwrap();
    assert_eq!(dispatched(&mut s)[0].0, solid);
}

#[test]
fn failure_retries_on_another_agent_then_fails_with_the_reason() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let a = push_agent(&mut s, &[]);
    let b = push_agent(&mut s, &[]);
    s.drain();
    let retry = RetryPolicy {
        max_attempts: 2,
        base_backoff_ms: 10,
        max_backoff_ms: 10,
    };
    let t = s.submit(TaskSpec { retry, ..task("x") }, 0).unwrap();
    let (first, w1) = dispatched(&mut s).remove(0);
    assert!(s
        .fail_work(&w1.work_id, &first, "exit status 1", false, 1)
        .unwrap());
    assert!(dispatched(&mut s).is_empty(), "backoff first");
    s.tick(5, 100);
    assert!(
        dispatched(&mut s).is_empty(),
        "backoff lasts at least half of 10 ms"
    );
    s.tick(11, 100);
    let (second, w2) = dispatched(&mut s).remove(0);
    assert_ne!(first, second, "retried elsewhere");
    assert!([&a, &b].contains(&&second));
    assert_eq!(w2.attempt, 2);
    s.fail_work(&w2.work_id, &second, "exit status 2", false, 12)
        .unwrap();
    assert_eq!(status(&s, &t), TaskStatus::Failed);
    let err = s.task(&t).unwrap().error().unwrap().to_owned();
    assert!(
        err.contains("2 attempt") && err.contains("exit status 2"),
        "{err}"
    );
}

#[test]
fn attempt_timeout_retries_then_reports_timed_out() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let a = push_agent(&mut s, &[]);
    s.drain();
    let retry = RetryPolicy {
        max_attempts: 2,
        base_backoff_ms: 0,
        max_backoff_ms: 0,
    };
    let t = s
        .submit(
            TaskSpec {
                retry,
                timeout_ms: Some(100),
                ..task("slow")
            },
            0,
        )
        .unwrap();
    let (_, w1) = dispatched(&mut s).remove(0);
    s.tick(99, 100);
    assert_eq!(status(&s, &t), TaskStatus::Running);
    s.tick(100, 100);
    let out = s.drain();
    assert_eq!(out.cancels.len(), 1, "the agent is told to stop");
    assert_eq!(out.cancels[0].work_id, w1.work_id);
    // Only agent available: the retry comes back to it.
    assert_eq!(out.dispatches.len(), 1);
    assert_eq!(out.dispatches[0].work.attempt, 2);
    // The late completion of attempt 1 is ignored.
    assert!(!s.complete_work(&w1.work_id, &a, vec![1], 150).unwrap());
    s.tick(200, 100);
    assert_eq!(status(&s, &t), TaskStatus::TimedOut);
    assert!(s.task(&t).unwrap().error().unwrap().contains("timed out"));
    assert_eq!(s.agent(&a).unwrap().status(), AgentStatus::Idle);
}

#[test]
fn a_lost_agent_never_loses_its_task() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let a = push_agent(&mut s, &[]);
    s.drain();
    let t = s.submit(task("x"), 0).unwrap();
    let (_, w) = dispatched(&mut s).remove(0);
    s.detach_agent(&a, "process crashed", 1).unwrap();
    assert_eq!(s.agent(&a).unwrap().status(), AgentStatus::Offline);
    let b = push_agent(&mut s, &[]);
    s.tick(10_000, 100);
    let (who, w2) = dispatched(&mut s).remove(0);
    assert_eq!(who, b);
    assert_eq!(w2.attempt, 2);
    assert!(!s.complete_work(&w.work_id, &a, vec![], 2).unwrap());
    s.complete_work(&w2.work_id, &b, b"ok".to_vec(), 3).unwrap();
    assert_eq!(status(&s, &t), TaskStatus::Completed);
    // Removal mid-task is the same story.
    let t2 = s.submit(task("y"), 4).unwrap();
    let (who, _) = dispatched(&mut s).remove(0);
    s.remove_agent(&who, 5).unwrap();
    // Its unit waits for a retry: unfinished, never lost.
    assert!(!status(&s, &t2).is_terminal());
}

#[test]
fn agents_that_become_workers_when_another_leaves_take_queued_work() {
    // A tree of 5: positions 0 and 1 coordinate, 2..4 are leaves.
    let mut s = swarm(Topology::Hierarchical, Strategy::Balanced);
    let agents: Vec<String> = (0..5).map(|_| push_agent(&mut s, &[])).collect();
    let ids: Vec<String> = (0..3)
        .map(|i| s.submit(task(&format!("t{i}")), 0).unwrap())
        .collect();
    let mut busy: Vec<String> = dispatched(&mut s).into_iter().map(|d| d.0).collect();
    busy.sort();
    assert_eq!(busy, agents[2..].to_vec());
    let waiting = s.submit(task("waits"), 0).unwrap();
    assert!(dispatched(&mut s).is_empty());
    // With 4 agents, position 1 is a leaf: that agent takes the queued task.
    s.remove_agent(&agents[4], 1).unwrap();
    let got = dispatched(&mut s);
    assert!(got
        .iter()
        .any(|(a, w)| *a == agents[1] && w.task_id == waiting));
    assert!(ids.iter().all(|t| !status(&s, t).is_terminal()));
    // A star left with one agent: the hub works.
    let mut s = swarm(Topology::Star, Strategy::Balanced);
    let hub = push_agent(&mut s, &[]);
    let spoke = push_agent(&mut s, &[]);
    s.submit(task("x"), 0).unwrap();
    assert_eq!(dispatched(&mut s)[0].0, spoke);
    let t = s.submit(task("y"), 0).unwrap();
    assert!(dispatched(&mut s).is_empty());
    s.remove_agent(&spoke, 1).unwrap();
    let (who, w) = dispatched(&mut s).remove(0);
    assert_eq!(
        (who.as_str(), w.task_id.as_str()),
        (hub.as_str(), t.as_str())
    );
}

#[test]
fn work_occupies_the_lowest_free_slot_and_a_lost_worker_frees_it() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let a = s
        .add_agent(
            AgentSpec {
                capacity: 3,
                dispatch: Dispatch::Push,
                ..AgentSpec::default()
            },
            0,
        )
        .unwrap();
    s.attach_agent(&a, 0).unwrap();
    s.drain();
    let ids: Vec<String> = (0..3)
        .map(|i| s.submit(task(&format!("t{i}")), 1).unwrap())
        .collect();
    let slots: Vec<(u32, String)> = s
        .drain()
        .dispatches
        .into_iter()
        .map(|d| (d.slot, d.work.work_id))
        .collect();
    assert_eq!(slots.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2]);
    // Slot 1 ends; the next work reuses it, not a fourth slot.
    s.complete_work(&slots[1].1, &a, vec![], 2).unwrap();
    let next = s.submit(task("t3"), 3).unwrap();
    let d = s.drain().dispatches.remove(0);
    assert_eq!((d.slot, d.work.task_id.as_str()), (1, next.as_str()));
    // The worker of slot 2 dies: its unit is retried (here on the same
    // agent, the only one), the others keep running.
    assert!(s.worker_lost(&a, 2, "worker crashed", 4).unwrap());
    s.tick(10_000, 100);
    let out = s.drain();
    assert_eq!(out.dispatches.len(), 1);
    assert_eq!(out.dispatches[0].work.task_id, ids[2]);
    assert_eq!(out.dispatches[0].work.attempt, 2);
    assert_eq!(out.dispatches[0].slot, 2);
    assert!(s.task(&ids[2]).unwrap().units[0]
        .error()
        .is_some_and(|e| e.contains("worker crashed")));
    // A slot holding nothing reports nothing.
    s.complete_work(&out.dispatches[0].work.work_id, &a, vec![], 10_001)
        .unwrap();
    assert!(!s.worker_lost(&a, 2, "idle worker died", 10_002).unwrap());
    assert_eq!(status(&s, &ids[0]), TaskStatus::Running);
}

#[test]
fn parallel_fans_out_and_aggregates_in_order() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let agents: Vec<_> = (0..4).map(|_| push_agent(&mut s, &[])).collect();
    s.drain();
    let t = s
        .submit(
            TaskSpec {
                max_agents: 3,
                ..task("scan")
            },
            0,
        )
        .unwrap();
    let work = dispatched(&mut s);
    assert_eq!(work.len(), 3);
    let distinct: std::collections::HashSet<_> = work.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(distinct.len(), 3, "three different agents");
    for (agent, w) in work.iter().rev() {
        assert!(agents.contains(agent));
        s.complete_work(&w.work_id, agent, w.unit.as_bytes().to_vec(), 1)
            .unwrap();
    }
    assert_eq!(
        s.task_result(&t).unwrap(),
        Some(&TaskResult::List(vec![
            b"part-1".to_vec(),
            b"part-2".to_vec(),
            b"part-3".to_vec()
        ]))
    );
}

#[test]
fn sequential_on_a_ring_follows_ring_order_and_pipes_output() {
    let mut s = swarm(Topology::Ring, Strategy::Balanced);
    let agents: Vec<_> = (0..4).map(|_| push_agent(&mut s, &[])).collect();
    s.drain();
    let t = s
        .submit(
            TaskSpec {
                max_agents: 4,
                mode: ExecMode::Sequential,
                input: b"a".to_vec(),
                ..task("pipe")
            },
            0,
        )
        .unwrap();
    let mut visited = Vec::new();
    for now in 1..=4 {
        let (agent, w) = dispatched(&mut s).remove(0);
        let mut out = w.input.clone();
        out.push(b'+');
        visited.push(agents.iter().position(|a| *a == agent).unwrap());
        s.complete_work(&w.work_id, &agent, out, now).unwrap();
    }
    let start = visited[0];
    assert_eq!(visited, (0..4).map(|i| (start + i) % 4).collect::<Vec<_>>());
    assert_eq!(
        s.task_result(&t).unwrap(),
        Some(&TaskResult::Single(b"a++++".to_vec()))
    );
}

#[test]
fn subtask_dag_runs_in_dependency_order_with_context() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    for _ in 0..3 {
        push_agent(&mut s, &[]);
    }
    s.drain();
    let sub = |name: &str, deps: &[&str]| SubtaskSpec {
        name: name.into(),
        input: name.as_bytes().to_vec(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        capabilities: vec![],
    };
    let spec = TaskSpec {
        subtasks: vec![
            sub("fetch", &[]),
            sub("parse", &["fetch"]),
            sub("lint", &["fetch"]),
            sub("report", &["parse", "lint"]),
        ],
        ..task("build")
    };
    let t = s.submit(spec, 0).unwrap();
    let mut ran = Vec::new();
    let mut now = 1;
    loop {
        let work = dispatched(&mut s);
        if work.is_empty() {
            break;
        }
        for (agent, w) in work {
            let ctx: Vec<_> = w.context.iter().map(|(n, _)| n.clone()).collect();
            ran.push((w.unit.clone(), ctx));
            s.complete_work(&w.work_id, &agent, format!("{}!", w.unit).into_bytes(), now)
                .unwrap();
            now += 1;
        }
    }
    assert_eq!(ran[0], ("fetch".into(), vec![]));
    assert_eq!(
        ran.last().unwrap(),
        &(
            "report".to_string(),
            vec!["parse".to_string(), "lint".to_string()]
        )
    );
    assert_eq!(ran.len(), 4);
    match s.task_result(&t).unwrap() {
        Some(TaskResult::Named(named)) => {
            assert_eq!(named.len(), 4);
            assert_eq!(named[3], ("report".into(), b"report!".to_vec()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cycles_are_rejected_before_anything_runs() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let sub = |name: &str, dep: &str| SubtaskSpec {
        name: name.into(),
        input: vec![],
        depends_on: vec![dep.into()],
        capabilities: vec![],
    };
    let spec = TaskSpec {
        subtasks: vec![sub("a", "b"), sub("b", "a")],
        ..task("loop")
    };
    assert!(matches!(s.submit(spec, 0), Err(Error::DependencyCycle(_))));
    assert_eq!(s.status().tasks.iter().sum::<u64>(), 0);
}

#[test]
fn star_hub_delegates_to_spokes() {
    let mut s = swarm(Topology::Star, Strategy::Balanced);
    let hub = push_agent(&mut s, &[]);
    let spokes: Vec<_> = (0..3).map(|_| push_agent(&mut s, &[])).collect();
    s.drain();
    for _ in 0..3 {
        s.submit(task("x"), 0).unwrap();
    }
    let work = dispatched(&mut s);
    assert_eq!(work.len(), 3);
    for (agent, w) in work {
        assert!(spokes.contains(&agent), "the hub only delegates");
        assert_eq!(w.route, vec![hub.clone(), agent]);
    }
    // Coordination goes through the hub.
    let hops = s.coordinate(Some(&spokes[0]), 0).unwrap();
    assert_eq!(hops[1], (Some(spokes[0].clone()), hub.clone()));
    assert!(hops[2..]
        .iter()
        .all(|(from, _)| from.as_deref() == Some(hub.as_str())));
}

#[test]
fn hierarchical_leaves_work_and_routes_come_down_the_tree() {
    let mut s = swarm(Topology::Hierarchical, Strategy::Balanced);
    let agents: Vec<_> = (0..5).map(|_| push_agent(&mut s, &[])).collect();
    s.drain();
    // Tree: 0 -> 1,2,3 ; 1 -> 4. Workers: 2,3,4.
    s.submit(
        TaskSpec {
            max_agents: 5,
            ..task("x")
        },
        0,
    )
    .unwrap();
    let work = dispatched(&mut s);
    let mut workers: Vec<_> = work
        .iter()
        .map(|(a, _)| agents.iter().position(|x| x == a).unwrap())
        .collect();
    workers.sort();
    assert_eq!(workers, vec![2, 3, 4]);
    let leaf = work.iter().find(|(a, _)| *a == agents[4]).unwrap();
    assert_eq!(
        leaf.1.route,
        vec![agents[0].clone(), agents[1].clone(), agents[4].clone()]
    );
}

#[test]
fn adaptive_hedges_when_the_swarm_fails_and_takes_the_first_result() {
    let mut s = swarm(Topology::Mesh, Strategy::Adaptive);
    let agents: Vec<_> = (0..3).map(|_| push_agent(&mut s, &[])).collect();
    s.drain();
    let once = RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    };
    // Healthy swarm: one try.
    let t = s
        .submit(
            TaskSpec {
                mode: ExecMode::Adaptive,
                max_agents: 3,
                retry: once,
                ..task("a")
            },
            0,
        )
        .unwrap();
    let work = dispatched(&mut s);
    assert_eq!(work.len(), 1);
    s.fail_work(&work[0].1.work_id, &work[0].0, "bad", false, 1)
        .unwrap();
    assert_eq!(status(&s, &t), TaskStatus::Failed);
    // After failures, adaptive starts several tries and keeps the first result.
    let t = s
        .submit(
            TaskSpec {
                mode: ExecMode::Adaptive,
                max_agents: 3,
                retry: once,
                ..task("b")
            },
            2,
        )
        .unwrap();
    let work = dispatched(&mut s);
    assert!(work.len() > 1, "hedged: {}", work.len());
    s.complete_work(&work[1].1.work_id, &work[1].0, b"win".to_vec(), 3)
        .unwrap();
    assert_eq!(status(&s, &t), TaskStatus::Completed);
    assert_eq!(
        s.task_result(&t).unwrap(),
        Some(&TaskResult::Single(b"win".to_vec()))
    );
    assert_eq!(
        s.drain().cancels.len(),
        work.len() - 1,
        "the other tries are cancelled"
    );
    assert!(agents
        .iter()
        .all(|a| s.agent(a).unwrap().status() == AgentStatus::Idle));
}

#[test]
fn cancel_stops_running_work_and_frees_agents() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let a = push_agent(&mut s, &[]);
    s.drain();
    let t = s.submit(task("x"), 0).unwrap();
    let queued = s.submit(task("y"), 0).unwrap();
    let (_, w) = dispatched(&mut s).remove(0);
    s.cancel(&t, 1).unwrap();
    let out = s.drain();
    assert_eq!(out.cancels[0].work_id, w.work_id);
    // The freed agent picks up the queued task.
    assert_eq!(out.dispatches[0].work.task_id, queued);
    assert_eq!(status(&s, &t), TaskStatus::Cancelled);
    assert!(matches!(
        s.cancel(&t, 2),
        Err(Error::TaskFinished("cancelled"))
    ));
    assert!(!s.complete_work(&w.work_id, &a, vec![], 3).unwrap());
}

#[test]
fn pull_agents_claim_with_a_lease_that_can_expire() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let p = pull_agent(&mut s);
    let q = pull_agent(&mut s);
    assert_eq!(s.claim(&p, 1000, 0).unwrap(), None);
    let t = s.submit(task("x"), 0).unwrap();
    assert!(
        dispatched(&mut s).is_empty(),
        "nobody pushes to pull agents"
    );
    let w = s.claim(&p, 1000, 1).unwrap().unwrap();
    assert_eq!(status(&s, &t), TaskStatus::Running);
    assert_eq!(s.claim(&p, 1000, 1).unwrap(), None, "capacity 1");
    s.tick(1001, 100);
    let w2 = s
        .claim(&q, 1000, 2000)
        .unwrap()
        .expect("back in the queue after lease expiry");
    assert_eq!(w2.attempt, 2);
    assert!(
        !s.complete_work(&w.work_id, &p, vec![], 2001).unwrap(),
        "expired claim is void"
    );
    assert!(s
        .complete_work(&w2.work_id, &q, b"done".to_vec(), 2002)
        .unwrap());
    assert_eq!(status(&s, &t), TaskStatus::Completed);
    let push = push_agent(&mut s, &[]);
    assert!(matches!(s.claim(&push, 10, 0), Err(Error::NotPullAgent(_))));
}

#[test]
fn finished_task_history_is_bounded() {
    let cfg = SwarmConfig {
        task_history: 3,
        ..Default::default()
    };
    let mut s = Swarm::new(ids::new_swarm_id(), cfg, 0).unwrap();
    let a = pull_agent(&mut s);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(s.submit(task("x"), i).unwrap());
        let w = s.claim(&a, 100, i).unwrap().unwrap();
        s.complete_work(&w.work_id, &a, vec![], i).unwrap();
    }
    assert_eq!(s.task(&ids[0]).err(), Some(Error::TaskNotFound));
    assert!(s.task(&ids[4]).is_ok());
    assert_eq!(s.status().tasks[TaskStatus::Completed as usize], 5);
}

#[test]
fn events_are_recorded_only_for_listeners() {
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    pull_agent(&mut s);
    assert!(s.drain().events.is_empty());
    s.outbox.record_events = true;
    s.submit(task("x"), 0).unwrap();
    let events = s.drain().events;
    assert_eq!(events.len(), 1);
    assert!(matches!(events[0].event, Event::TaskSubmitted { .. }));
    assert_eq!(events[0].event.name(), "task_submitted");
    assert!(s.outbox.record_events, "drain keeps the listening flag");
}

#[test]
fn ids_from_other_swarms_are_not_found() {
    let mut s1 = swarm(Topology::Mesh, Strategy::Balanced);
    let mut s2 = swarm(Topology::Mesh, Strategy::Balanced);
    let a = pull_agent(&mut s1);
    let t = s1.submit(task("x"), 0).unwrap();
    assert_eq!(s2.agent(&a).err(), Some(Error::AgentNotFound));
    assert_eq!(s2.task(&t).err(), Some(Error::TaskNotFound));
    assert!(s2.complete_work("garbage", &a, vec![], 0).is_err());
    pull_agent(&mut s2);
}

#[derive(Debug, Clone)]
enum Op {
    AddPush,
    AddPull,
    Submit(u8, u8, u8),
    Complete(u8),
    Fail(u8),
    Claim(u8),
    Detach(u8),
    Attach(u8),
    Remove(u8),
    Cancel(u8),
    Tick(u16),
}

fn op() -> impl Gen<Value = Op> {
    prop_oneof![
        Just(Op::AddPush),
        Just(Op::AddPull),
        (0u8..4, 0u8..3, 1u8..4).prop_map(|(p, m, k)| Op::Submit(p, m, k)),
        any::<u8>().prop_map(Op::Complete),
        any::<u8>().prop_map(Op::Fail),
        any::<u8>().prop_map(Op::Claim),
        any::<u8>().prop_map(Op::Detach),
        any::<u8>().prop_map(Op::Attach),
        any::<u8>().prop_map(Op::Remove),
        any::<u8>().prop_map(Op::Cancel),
        (0u16..500).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever happens, the books balance: status counts match the agents,
    /// every unit is accounted for, and once agents finish everything no task
    /// is left unfinished.
    #[test]
    fn random_operations_keep_the_books_and_lose_no_task(ops in proptest::collection::vec(op(), 1..120), t in 0usize..4) {
        let mut s = swarm(Topology::ALL[t], Strategy::Balanced);
        let mut agents: Vec<String> = Vec::new();
        let mut tasks: Vec<String> = Vec::new();
        let mut inflight: Vec<(String, WorkItem)> = Vec::new();
        let mut now = 0u64;
        for op in ops {
            now += 1;
            let pick = |v: &Vec<String>, i: u8| (!v.is_empty()).then(|| v[i as usize % v.len()].clone());
            match op {
                Op::AddPush => { if let Ok(id) = s.add_agent(AgentSpec { dispatch: Dispatch::Push, ..Default::default() }, now) { s.attach_agent(&id, now).unwrap(); agents.push(id); } }
                Op::AddPull => { if let Ok(id) = s.add_agent(AgentSpec::default(), now) { agents.push(id); } }
                Op::Submit(p, m, k) => {
                    let spec = TaskSpec { priority: Priority::ALL[p as usize], mode: ExecMode::ALL[m as usize], max_agents: k as u32,
                        timeout_ms: Some(50), retry: RetryPolicy { max_attempts: 2, base_backoff_ms: 1, max_backoff_ms: 4 }, ..task("x") };
                    tasks.push(s.submit(spec, now).unwrap());
                }
                Op::Complete(i) | Op::Fail(i) if !inflight.is_empty() => {
                    let (agent, w) = inflight.swap_remove(i as usize % inflight.len());
                    if matches!(op, Op::Complete(_)) { let _ = s.complete_work(&w.work_id, &agent, vec![1], now); }
                    else { let _ = s.fail_work(&w.work_id, &agent, "x", false, now); }
                }
                Op::Claim(i) => if let Some(a) = pick(&agents, i) {
                    if let Ok(Some(w)) = s.claim(&a, 30, now) { inflight.push((a, w)); }
                }
                Op::Detach(i) => if let Some(a) = pick(&agents, i) { let _ = s.detach_agent(&a, "crash", now); },
                Op::Attach(i) => if let Some(a) = pick(&agents, i) { let _ = s.attach_agent(&a, now); },
                Op::Remove(i) => if let Some(a) = pick(&agents, i) { s.remove_agent(&a, now).unwrap(); agents.retain(|x| *x != a); },
                Op::Cancel(i) => if let Some(t) = pick(&tasks, i) { let _ = s.cancel(&t, now); },
                Op::Tick(dt) => { now += dt as u64; s.tick(now, 10_000); }
                _ => {}
            }
            for d in s.drain().dispatches { inflight.push((d.agent_id, d.work)); }
            check_books(&s);
        }
        // Drain: a fresh push agent and pull-claims finish everything.
        let worker = s.add_agent(AgentSpec { dispatch: Dispatch::Push, capacity: 1024, ..Default::default() }, now);
        if let Ok(w) = &worker { s.attach_agent(w, now).unwrap(); }
        for _ in 0..10_000 {
            now += 100;
            for d in s.drain().dispatches { inflight.push((d.agent_id, d.work)); }
            for (agent, w) in std::mem::take(&mut inflight) { let _ = s.complete_work(&w.work_id, &agent, vec![], now); }
            for a in agents.clone() { let _ = s.attach_agent(&a, now); if let Ok(Some(w)) = s.claim(&a, 30, now) { inflight.push((a, w)); } }
            s.tick(now, 10_000);
            if tasks.iter().all(|t| s.task(t).map(|t| t.status.is_terminal()).unwrap_or(true)) { break; }
        }
        if worker.is_ok() || agents.iter().any(|a| s.agent(a).is_ok()) {
            for t in &tasks { prop_assert!(s.task(t).unwrap().status.is_terminal(), "task left {:?}", s.task(t).unwrap().status); }
        }
        check_books(&s);
    }
}

fn check_books(s: &Swarm) {
    let mut counts = [0u64; 3];
    for a in s.agents() {
        counts[a.status() as usize] += 1;
        assert!(a.running <= a.capacity);
    }
    assert_eq!(s.status().agents, counts);
    let st = s.status();
    // Unfinished tasks: pending and running (the statuses before the
    // terminal ones).
    let live: u64 = st.tasks[..TaskStatus::Completed as usize].iter().sum();
    assert!(live <= st.counters.tasks_submitted);
}

#[test]
fn every_ended_attempt_is_recorded_with_its_agent_and_reason() {
    use ruv_swarm_core::task::AttemptOutcome;
    let mut s = swarm(Topology::Mesh, Strategy::Balanced);
    let a = pull_agent(&mut s);
    let b = pull_agent(&mut s);
    let mut spec = task("x");
    spec.retry.base_backoff_ms = 0;
    spec.retry.max_backoff_ms = 0;
    let t = s.submit(spec, 0).unwrap();
    let w = s.claim(&a, 1_000, 10).unwrap().unwrap();
    let long = "e".repeat(10_000);
    assert!(s.fail_work(&w.work_id, &a, &long, false, 25).unwrap());
    let w = s.claim(&b, 1_000, 30).unwrap().unwrap();
    assert!(s.complete_work(&w.work_id, &b, b"ok".to_vec(), 32).unwrap());
    let h = &s.task(&t).unwrap().units[0].history();
    assert_eq!(h.len(), 2);
    let seq = |id: &str| s.agent(id).unwrap().seq;
    assert_eq!(
        (h[0].attempt, h[0].agent, h[0].duration_ms),
        (1, seq(&a), 15)
    );
    match &h[0].outcome {
        AttemptOutcome::Failed(e) => assert_eq!(e.len(), task::MAX_ATTEMPT_ERROR_BYTES),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(h[1].outcome, AttemptOutcome::Completed);
    assert_eq!(
        (h[1].attempt, h[1].agent, h[1].duration_ms),
        (2, seq(&b), 2)
    );
    let failed_agent = s.agent(&a).unwrap();
    assert_eq!(failed_agent.metrics.failed, 1);
    assert_eq!(
        failed_agent.last_error.as_deref().map(str::len),
        Some(task::MAX_ATTEMPT_ERROR_BYTES)
    );
    assert!(s.agent(&b).unwrap().last_error.is_none());
}

#[test]
fn agents_page_walks_join_order_and_survives_removals() {
    let cfg = SwarmConfig {
        max_agents: 1000,
        ..Default::default()
    };
    let mut s = Swarm::new(ids::new_swarm_id(), cfg, 0).unwrap();
    let ids: Vec<String> = (0..25).map(|_| pull_agent(&mut s)).collect();

    let first = s.agents_page(None, 10).unwrap();
    let got: Vec<&str> = first.items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        got,
        ids[..10].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let cursor = first.next.expect("more agents follow");

    // Agents that leave before the next page neither shift nor repeat it.
    s.remove_agent(&ids[3], 0).unwrap();
    s.remove_agent(&ids[10], 0).unwrap();
    let second = s.agents_page(Some(&cursor), 10).unwrap();
    let got: Vec<&str> = second.items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        got,
        ids[11..21].iter().map(String::as_str).collect::<Vec<_>>()
    );

    let third = s.agents_page(second.next.as_deref(), 10).unwrap();
    assert_eq!(third.items.len(), 4);
    assert_eq!(third.next, None);

    // Exactly a page left: no cursor to an empty page.
    let all = s.agents_page(None, 23).unwrap();
    assert_eq!((all.items.len(), all.next), (23, None));

    let err = s.agents_page(Some("not-a-cursor"), 10).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(s.agents_page(None, 0).is_err());
    assert!(s.agents_page(None, limits::MAX_PAGE_SIZE + 1).is_err());
}
