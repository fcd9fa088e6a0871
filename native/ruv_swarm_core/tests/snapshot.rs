//! Export a swarm, import it into a fresh engine, and check nothing is lost:
//! the same ids, the same tasks and results, queued work that runs again,
//! and id counters that never hand out an id twice.

use proptest::prelude::ProptestConfig;
use proptest::prelude::{any, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
use proptest::strategy::Strategy as Gen;
use ruv_swarm_core::discovery::Discovery;
use ruv_swarm_core::memory::StoreRequest;
use ruv_swarm_core::snapshot::{Snapshot, TaskRecord};
use ruv_swarm_core::swarm::{SwarmConfig, WorkItem};
use ruv_swarm_core::task::TaskResult;
use ruv_swarm_core::*;

fn swarm(topology: Topology) -> Swarm {
    let cfg = SwarmConfig {
        topology,
        name: "origin".into(),
        ..Default::default()
    };
    Swarm::new(ids::new_swarm_id(), cfg, 0).unwrap()
}

fn agent(s: &mut Swarm, dispatch: Dispatch, caps: &[&str], now: u64) -> String {
    let spec = AgentSpec {
        dispatch,
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        meta: format!("executor of {}", s.agent_count()).into_bytes(),
        node: "a@host".into(),
        ..Default::default()
    };
    let id = s.add_agent(spec, now).unwrap();
    if dispatch == Dispatch::Push {
        s.attach_agent(&id, now).unwrap();
    }
    id
}

fn task(desc: &str) -> TaskSpec {
    TaskSpec {
        description: desc.into(),
        input: desc.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn sub(name: &str, deps: &[&str]) -> SubtaskSpec {
    SubtaskSpec {
        name: name.into(),
        input: name.as_bytes().to_vec(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        capabilities: vec![],
    }
}

fn store(s: &mut Swarm, key: &str, value: &str, tags: &[&str], ttl: Option<u64>, now: u64) -> u64 {
    let req = StoreRequest {
        namespace: "ns",
        key,
        value: value.as_bytes().to_vec(),
        text_at: Some(0),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ttl_ms: ttl,
        if_version: None,
    };
    s.memory_store(req, now).unwrap()
}

fn share(s: &mut Swarm, agent: Option<&str>, now: u64) -> Discovery {
    s.share_discovery(
        agent,
        "bug",
        b"off by one".to_vec(),
        0.75,
        vec!["x".into()],
        now,
    )
    .unwrap()
}

/// What a second export must equal: in-flight work is queued again, so
/// unfinished tasks read as pending.
fn requeued(mut snap: Snapshot) -> Snapshot {
    for t in &mut snap.tasks {
        if !t.status.is_terminal() {
            t.status = TaskStatus::Pending;
        }
    }
    snap
}

fn seq(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

fn record<'a>(snap: &'a Snapshot, id: &str) -> &'a TaskRecord {
    snap.tasks.iter().find(|t| t.id == id).unwrap()
}

/// Claims and completes everything `agent` may run until nothing is left.
fn run_all(s: &mut Swarm, agent: &str, now: &mut u64) -> Vec<WorkItem> {
    let mut done = Vec::new();
    loop {
        *now += 1;
        let Some(w) = s.claim(agent, 60_000, *now).unwrap() else {
            return done;
        };
        let result = format!("{} by {agent}", w.unit).into_bytes();
        assert!(s.complete_work(&w.work_id, agent, result, *now).unwrap());
        done.push(w);
    }
}

/// A swarm with something of everything: push and pull agents (one
/// removed), tasks completed, failed, cancelled, timed out, pending, a DAG
/// and a pipeline half done, memory with tags and TTLs, discoveries.
fn busy_swarm() -> (Swarm, u64) {
    let mut s = swarm(Topology::Ring);
    let mut now = 10;
    let push = agent(&mut s, Dispatch::Push, &["rust"], now);
    let gone = agent(&mut s, Dispatch::Pull, &[], now);
    let pull = agent(&mut s, Dispatch::Pull, &["rust", "gpu"], now);
    s.remove_agent(&gone, now).unwrap();
    s.drain();

    // Completed by the push agent: a parallel fan-out of one.
    let done = s.submit(task("done"), now).unwrap();
    let w = s.drain().dispatches.remove(0).work;
    s.complete_work(&w.work_id, &push, b"DONE".to_vec(), now)
        .unwrap();
    // Failed after its only attempt.
    let failed = s
        .submit(
            TaskSpec {
                retry: RetryPolicy {
                    max_attempts: 1,
                    ..Default::default()
                },
                ..task("fails")
            },
            now,
        )
        .unwrap();
    let w = s.drain().dispatches.remove(0).work;
    s.fail_work(&w.work_id, &push, "boom", false, now).unwrap();
    // Cancelled while pending (needs a capability nobody has).
    let cancelled = s
        .submit(
            TaskSpec {
                capabilities: vec!["quantum".into()],
                ..task("never")
            },
            now,
        )
        .unwrap();
    s.cancel(&cancelled, now).unwrap();
    // A DAG whose first step an external agent already did.
    let dag = s
        .submit(
            TaskSpec {
                description: "dag".into(),
                capabilities: vec!["gpu".into()],
                subtasks: vec![sub("a", &[]), sub("b", &["a"]), sub("c", &["a", "b"])],
                priority: Priority::High,
                ..Default::default()
            },
            now,
        )
        .unwrap();
    let w = s.claim(&pull, 1_000, now).unwrap().unwrap();
    assert_eq!(w.task_id, dag);
    s.complete_work(&w.work_id, &pull, b"A".to_vec(), now)
        .unwrap();
    // b is now claimed and in flight when the snapshot is taken.
    let w = s.claim(&pull, 1_000, now).unwrap().unwrap();
    assert_eq!(w.unit, "b");
    // Pending: nobody has these capabilities.
    let pending = s
        .submit(
            TaskSpec {
                capabilities: vec!["quantum".into()],
                priority: Priority::Low,
                timeout_ms: Some(5_000),
                retry: RetryPolicy {
                    max_attempts: 5,
                    base_backoff_ms: 7,
                    max_backoff_ms: 70,
                },
                ..task("later")
            },
            now,
        )
        .unwrap();
    let pipeline = s
        .submit(
            TaskSpec {
                mode: ExecMode::Sequential,
                max_agents: 3,
                ..task("pipe")
            },
            now,
        )
        .unwrap();
    // The ring has one push agent and one pull agent as workers.
    assert_eq!(s.task(&pipeline).unwrap().units.len(), 2);
    for d in s.drain().dispatches {
        s.complete_work(&d.work.work_id, &push, b"STEP1".to_vec(), now)
            .unwrap();
    }
    for (k, v) in [("done", &done), ("failed", &failed), ("pending", &pending)] {
        let tags: &[&str] = if k == "pending" { &["todo"] } else { &[] };
        store(&mut s, k, v, tags, None, now);
    }
    store(&mut s, "short", "gone soon", &[], Some(5), now);
    store(&mut s, "long", "stays", &["ttl"], Some(100_000), now);
    store(&mut s, "done", "rewritten", &["v2"], None, now);
    share(&mut s, Some(&push), now);
    share(&mut s, None, now);
    now += 10;
    (s, now)
}

#[test]
fn export_import_export_round_trips() {
    let (s, now) = busy_swarm();
    let first = s.export(now);
    assert_eq!(first.agents.len(), 2);
    assert_eq!(first.tasks.len(), 6);
    // The short-lived entry has expired: not exported.
    assert_eq!(first.memory.len(), 4);
    assert_eq!(first.discoveries.len(), 2);
    let statuses: Vec<_> = first.tasks.iter().map(|t| t.status).collect();
    use TaskStatus::*;
    assert_eq!(
        statuses,
        [Completed, Failed, Cancelled, Running, Pending, Running]
    );
    let imported = Swarm::import(first.clone(), now).unwrap();
    let second = imported.export(now);
    assert_eq!(second, requeued(first.clone()));
    // And once more.
    let again = Swarm::import(second.clone(), now).unwrap();
    assert_eq!(again.export(now), second);
}

#[test]
fn imported_swarm_answers_as_before() {
    let (s, now) = busy_swarm();
    let snap = s.export(now);
    let mut t = Swarm::import(snap.clone(), now).unwrap();
    assert_eq!(t.id, s.id);
    assert_eq!(t.name, "origin");
    assert_eq!(t.topology, Topology::Ring);
    let ids: Vec<_> = t.agents().map(|a| a.id.clone()).collect();
    let before: Vec<_> = s.agents().map(|a| a.id.clone()).collect();
    assert_eq!(ids, before);
    // Push agents wait for their process, pull agents are online.
    let statuses: Vec<_> = t.agents().map(|a| a.status()).collect();
    assert_eq!(statuses, [AgentStatus::Offline, AgentStatus::Idle]);
    assert_eq!(t.agents().next().unwrap().meta, b"executor of 0");
    // Finished tasks keep status, result and error.
    let done = &snap.tasks[0].id;
    assert_eq!(
        t.task_result(done).unwrap(),
        Some(&TaskResult::Single(b"DONE".to_vec()))
    );
    let failed = t.task(&snap.tasks[1].id).unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert!(failed.error().unwrap().contains("boom"));
    assert_eq!(
        failed.finished_at(),
        s.task(&snap.tasks[1].id).unwrap().finished_at()
    );
    // Memory: same versions, tags and expiry; the counter continues.
    let e = t.memory_get("ns", "long", now).unwrap().clone();
    let orig = s.memory_get("ns", "long", now).unwrap();
    assert_eq!(&e, orig);
    assert!(t.memory_get("ns", "short", now).is_err());
    assert_eq!(t.memory_get("ns", "done", now).unwrap().value, b"rewritten");
    let v = store(&mut t, "new", "x", &[], None, now);
    assert_eq!(v, snap.next_ids.memory_version);
    // Discoveries, oldest first.
    let d: Vec<_> = t
        .recent_discoveries(&Default::default(), 10)
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(d, snap.discoveries);
    let status = t.status();
    assert_eq!(status.tasks, [3, 0, 1, 1, 1, 0]);
    assert_eq!(status.counters.tasks_submitted, 6);
}

#[test]
fn queued_work_runs_again_with_completed_results_as_context() {
    let (s, now) = busy_swarm();
    let snap = s.export(now);
    let mut t = Swarm::import(snap.clone(), now).unwrap();
    let dag = snap.tasks[3].id.clone();
    assert_eq!(record(&snap, &dag).unit_results, [(0, b"A".to_vec())]);
    let pull = t.agents().nth(1).unwrap().id.clone();
    // The DAG is High priority, so b comes first, seeing a's result.
    let w = t.claim(&pull, 1_000, now).unwrap().unwrap();
    assert_eq!(
        (w.task_id.as_str(), w.unit.as_str(), w.attempt),
        (dag.as_str(), "b", 1)
    );
    assert_eq!(w.context, [("a".to_string(), b"A".to_vec())]);
    t.complete_work(&w.work_id, &pull, b"B".to_vec(), now)
        .unwrap();
    let w = t.claim(&pull, 1_000, now).unwrap().unwrap();
    assert_eq!(w.unit, "c");
    assert_eq!(
        w.context,
        [
            ("a".to_string(), b"A".to_vec()),
            ("b".to_string(), b"B".to_vec())
        ]
    );
    t.complete_work(&w.work_id, &pull, b"C".to_vec(), now)
        .unwrap();
    assert_eq!(
        t.task_result(&dag).unwrap(),
        Some(&TaskResult::Named(vec![
            ("a".into(), b"A".to_vec()),
            ("b".into(), b"B".to_vec()),
            ("c".into(), b"C".to_vec()),
        ]))
    );
    // The pipeline's second step is the pull agent's to claim (ring order
    // is not kept across import); it gets step one's result as input.
    let pipe = snap.tasks[5].id.clone();
    let w = t.claim(&pull, 1_000, now).unwrap().unwrap();
    assert_eq!(
        (w.task_id.as_str(), w.unit.as_str()),
        (pipe.as_str(), "step-2")
    );
    assert_eq!(w.input, b"STEP1");
    t.complete_work(&w.work_id, &pull, b"STEP2".to_vec(), now)
        .unwrap();
    assert_eq!(
        t.task_result(&pipe).unwrap(),
        Some(&TaskResult::Single(b"STEP2".to_vec()))
    );
    // The push agent gets queued work when its process attaches.
    let push = t.agents().next().unwrap().id.clone();
    let for_push = t
        .submit(
            TaskSpec {
                capabilities: vec!["rust".into()],
                ..task("for the push agent")
            },
            now,
        )
        .unwrap();
    assert!(t.drain().dispatches.is_empty());
    t.attach_agent(&push, now).unwrap();
    let d = t.drain().dispatches;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].work.task_id, for_push);
    // The pending task keeps its priority, timeout and retry policy.
    let pending = record(&snap, &snap.tasks[4].id);
    assert_eq!(pending.spec.priority, Priority::Low);
    assert_eq!(pending.spec.timeout_ms, Some(5_000));
    assert_eq!(pending.spec.retry.max_attempts, 5);
    assert_eq!(t.task(&pending.id).unwrap().status, TaskStatus::Pending);
}

#[test]
fn ids_continue_without_reuse() {
    let (s, now) = busy_swarm();
    let snap = s.export(now);
    // The removed agent's number was handed out: the next one is past it.
    assert_eq!(snap.next_ids.agent, 4);
    let mut t = Swarm::import(snap.clone(), now).unwrap();
    let a = t.add_agent(AgentSpec::default(), now).unwrap();
    assert_eq!(seq(&a), snap.next_ids.agent);
    let task_id = t.submit(task("new"), now).unwrap();
    assert_eq!(seq(&task_id), snap.next_ids.task);
    let d = share(&mut t, None, now);
    assert_eq!(seq(&d.id), snap.next_ids.discovery);

    // Counters behind the imported ids are moved past them.
    let mut behind = snap.clone();
    behind.next_ids = Default::default();
    let mut t = Swarm::import(behind, now).unwrap();
    let a = t.add_agent(AgentSpec::default(), now).unwrap();
    // The highest imported agent is the pull agent, number 3.
    assert_eq!(seq(&a), 4);
}

#[test]
fn unfinished_tasks_use_their_recorded_unit_count_and_results() {
    let mut s = swarm(Topology::Mesh);
    let now = 5;
    let adaptive = TaskSpec {
        mode: ExecMode::Adaptive,
        max_agents: 3,
        ..task("hedged")
    };
    let id = s.submit(adaptive.clone(), now).unwrap();
    let mut snap = s.export(now);
    // A healthy swarm does not hedge: one try. Pretend the home node had
    // hedged with three.
    assert_eq!(snap.tasks[0].units, 1);
    snap.tasks[0].units = 3;
    let t = Swarm::import(snap.clone(), now).unwrap();
    assert_eq!(t.task(&id).unwrap().units.len(), 3);
    assert_eq!(t.status().queued_units, 3);
    // Any one try's result completes a hedged task, whatever its index.
    snap.tasks[0].unit_results = vec![(2, b"third".to_vec())];
    let t = Swarm::import(snap.clone(), now).unwrap();
    let done = t.task(&id).unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.result(), Some(&TaskResult::Single(b"third".to_vec())));
    assert_eq!(t.status().queued_units, 0);

    // A parallel task with every unit done completes on import.
    let mut s = swarm(Topology::Mesh);
    let par = s
        .submit(
            TaskSpec {
                max_agents: 2,
                ..task("par")
            },
            now,
        )
        .unwrap();
    let mut snap = s.export(now);
    assert_eq!(snap.tasks[0].units, 1);
    snap.tasks[0].units = 2;
    snap.tasks[0].unit_results = vec![(1, b"two".to_vec()), (0, b"one".to_vec())];
    let t = Swarm::import(snap, now).unwrap();
    let done = t.task(&par).unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.finished_at(), Some(now));
    assert_eq!(
        done.result(),
        Some(&TaskResult::List(vec![b"one".to_vec(), b"two".to_vec()]))
    );
}

#[test]
fn history_keeps_finish_order_and_its_bound() {
    let mut s = swarm(Topology::Mesh);
    let a = agent(&mut s, Dispatch::Pull, &[], 0);
    let first = s.submit(task("1"), 1).unwrap();
    let second = s.submit(task("2"), 2).unwrap();
    // The second finishes first.
    let w1 = s.claim(&a, 100, 3).unwrap().unwrap();
    s.cancel(&second, 4).unwrap();
    s.complete_work(&w1.work_id, &a, b"one".to_vec(), 5)
        .unwrap();
    let snap = s.export(6);
    let t = Swarm::import(snap.clone(), 6).unwrap();
    assert_eq!(t.task(&first).unwrap().finished_at(), Some(5));
    assert_eq!(t.task(&second).unwrap().finished_at(), Some(4));
    assert_eq!(t.export(6), snap);
}

#[test]
fn exported_items_match_the_full_export() {
    let (s, now) = busy_swarm();
    let snap = s.export(now);
    let header = s.export_header();
    assert!(header.agents.is_empty() && header.tasks.is_empty());
    assert!(header.memory.is_empty() && header.discoveries.is_empty());
    assert_eq!(header.next_ids, snap.next_ids);
    for a in &snap.agents {
        assert_eq!(&s.export_agent(&a.id).unwrap(), a);
    }
    for t in &snap.tasks {
        assert_eq!(&s.export_task(&t.id).unwrap(), t);
    }
    for d in &snap.discoveries {
        assert_eq!(&s.export_discovery(&d.id).unwrap(), d);
    }
    for m in &snap.memory {
        assert_eq!(&s.export_memory(&m.namespace, &m.key, now).unwrap(), m);
    }
    assert_eq!(
        s.export_discovery(&format!("{}.disc-99", s.id)),
        Err(Error::KeyNotFound)
    );
    assert_eq!(s.export_memory("ns", "short", now), Err(Error::KeyNotFound));
    assert_eq!(s.export_task("nope"), Err(Error::TaskNotFound));
    // A snapshot put together from items imports like the full export.
    let mut assembled = header;
    assembled.agents = snap
        .agents
        .iter()
        .map(|a| s.export_agent(&a.id).unwrap())
        .collect();
    assembled.tasks = snap
        .tasks
        .iter()
        .rev()
        .map(|t| s.export_task(&t.id).unwrap())
        .collect();
    assembled.memory = snap.memory.clone();
    assembled.discoveries = snap.discoveries.iter().rev().cloned().collect();
    let t = Swarm::import(assembled, now).unwrap();
    assert_eq!(t.export(now), requeued(snap));
}

fn invalid(snap: Snapshot, now: u64) -> String {
    match Swarm::import(snap, now) {
        Err(Error::InvalidArgument(msg)) => msg,
        Err(other) => other.to_string(),
        Ok(_) => panic!("imported"),
    }
}

#[test]
fn malformed_snapshots_are_rejected_with_a_reason() {
    let (s, now) = busy_swarm();
    let snap = s.export(now);
    let with = |f: &dyn Fn(&mut Snapshot)| {
        let mut x = snap.clone();
        f(&mut x);
        invalid(x, now)
    };
    let msg = with(&|x| x.id = "swarm-a.b".into());
    assert!(msg.contains("swarm id"), "{msg}");
    let msg = with(&|x| x.id = "nope".into());
    assert!(msg.contains("swarm id"), "{msg}");
    let msg = with(&|x| x.agents.push(x.agents[0].clone()));
    assert!(msg.contains("appears twice"), "{msg}");
    let msg = with(&|x| x.agents[0].id = "swarm-other-1.agent-1".into());
    assert!(msg.contains("is not an agent id"), "{msg}");
    let msg = with(&|x| x.agents[0].capacity = 0);
    assert!(msg.contains("capacity"), "{msg}");
    let msg = with(&|x| x.max_agents = 1);
    assert!(msg.contains("max_agents"), "{msg}");
    let msg = with(&|x| x.tasks.push(x.tasks[0].clone()));
    assert!(msg.contains("appears twice"), "{msg}");
    let msg = with(&|x| x.tasks[0].result = None);
    assert!(msg.contains("needs its result"), "{msg}");
    let msg = with(&|x| x.tasks[0].result = Some(TaskResult::List(vec![])));
    assert!(msg.contains("does not fit"), "{msg}");
    let msg = with(&|x| x.tasks[1].result = Some(TaskResult::Single(vec![1])));
    assert!(msg.contains("only a completed task"), "{msg}");
    let msg = with(&|x| x.tasks[1].finished_at = None);
    assert!(msg.contains("finished_at"), "{msg}");
    let msg = with(&|x| x.tasks[3].unit_results.push((9, vec![])));
    assert!(msg.contains("unit 9"), "{msg}");
    let msg = with(&|x| x.tasks[3].unit_results.push((0, vec![])));
    assert!(msg.contains("twice"), "{msg}");
    let msg = with(&|x| x.tasks[3].units = 2);
    assert!(msg.contains("subtasks"), "{msg}");
    let msg = with(&|x| x.tasks[4].units = 2);
    assert!(msg.contains("max_agents"), "{msg}");
    let msg = with(&|x| x.tasks[3].spec.subtasks[0].depends_on = vec!["c".into()]);
    assert!(msg.contains("cycle"), "{msg}");
    let msg = with(&|x| x.memory.push(x.memory[0].clone()));
    assert!(msg.contains("appears twice"), "{msg}");
    let msg = with(&|x| x.memory[0].entry.version = 0);
    assert!(msg.contains("version"), "{msg}");
    let msg = with(&|x| x.discoveries.push(x.discoveries[0].clone()));
    assert!(msg.contains("appears twice"), "{msg}");
    let msg = with(&|x| x.discoveries[0].confidence = 2.0);
    assert!(msg.contains("confidence"), "{msg}");
    let msg = with(&|x| x.next_ids.task = 0);
    assert!(msg.contains("next_ids.task"), "{msg}");
    let msg = with(&|x| x.tasks[0].id = format!("{}.task-{}", x.id, 1u64 << 63));
    assert!(msg.contains("task id"), "{msg}");
}

// ---- property: random swarms survive export and import ----------------------

#[derive(Debug, Clone)]
enum Op {
    AddPush(u8),
    AddPull(u8),
    Submit(u8, u8, u8, u8),
    SubmitDag(u8),
    Complete(u8),
    Fail(u8),
    Claim(u8),
    Detach(u8),
    Attach(u8),
    Remove(u8),
    Cancel(u8),
    Store(u8, bool),
    Delete(u8),
    Share(u8),
    Tick(u16),
}

fn op() -> impl Gen<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::AddPush),
        any::<u8>().prop_map(Op::AddPull),
        (0u8..4, 0u8..3, 1u8..4, any::<u8>()).prop_map(|(p, m, k, c)| Op::Submit(p, m, k, c)),
        any::<u8>().prop_map(Op::SubmitDag),
        any::<u8>().prop_map(Op::Complete),
        any::<u8>().prop_map(Op::Fail),
        any::<u8>().prop_map(Op::Claim),
        any::<u8>().prop_map(Op::Detach),
        any::<u8>().prop_map(Op::Attach),
        any::<u8>().prop_map(Op::Remove),
        any::<u8>().prop_map(Op::Cancel),
        (any::<u8>(), any::<bool>()).prop_map(|(k, ttl)| Op::Store(k, ttl)),
        any::<u8>().prop_map(Op::Delete),
        any::<u8>().prop_map(Op::Share),
        (0u16..200).prop_map(Op::Tick),
        Just(Op::Tick(0)),
    ]
}

const CAPS: [&str; 3] = ["a", "b", "c"];

fn caps_of(bits: u8) -> Vec<String> {
    CAPS.iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Applies random operations; returns the time reached.
fn play(s: &mut Swarm, ops: Vec<Op>) -> u64 {
    let mut agents: Vec<String> = Vec::new();
    let mut tasks: Vec<String> = Vec::new();
    let mut inflight: Vec<(String, WorkItem)> = Vec::new();
    let mut now = 1u64;
    for op in ops {
        now += 1;
        let pick =
            |v: &Vec<String>, i: u8| (!v.is_empty()).then(|| v[i as usize % v.len()].clone());
        match op {
            Op::AddPush(c) | Op::AddPull(c) => {
                let dispatch = if matches!(op, Op::AddPush(_)) {
                    Dispatch::Push
                } else {
                    Dispatch::Pull
                };
                let spec = AgentSpec {
                    dispatch,
                    capabilities: caps_of(c),
                    capacity: 1 + (c as u32 >> 6),
                    meta: vec![c],
                    ..Default::default()
                };
                if let Ok(id) = s.add_agent(spec, now) {
                    if dispatch == Dispatch::Push && c & 8 == 0 {
                        s.attach_agent(&id, now).unwrap();
                    }
                    agents.push(id);
                }
            }
            Op::Submit(p, m, k, c) => {
                let spec = TaskSpec {
                    priority: Priority::ALL[p as usize],
                    mode: ExecMode::ALL[m as usize],
                    max_agents: k as u32,
                    capabilities: caps_of(c & 3),
                    timeout_ms: (c & 4 != 0).then_some(50),
                    retry: RetryPolicy {
                        max_attempts: 2,
                        base_backoff_ms: 1,
                        max_backoff_ms: 4,
                    },
                    ..task(&format!("t{c}"))
                };
                tasks.push(s.submit(spec, now).unwrap());
            }
            Op::SubmitDag(bits) => {
                let mut b = sub("b", &[]);
                if bits & 1 != 0 {
                    b.depends_on.push("a".into());
                }
                let mut c = sub("c", &["b"]);
                if bits & 2 != 0 {
                    c.depends_on.push("a".into());
                }
                c.capabilities = caps_of(bits >> 2);
                let spec = TaskSpec {
                    description: "dag".into(),
                    capabilities: caps_of(bits >> 5),
                    subtasks: vec![sub("a", &[]), b, c],
                    ..Default::default()
                };
                tasks.push(s.submit(spec, now).unwrap());
            }
            Op::Complete(i) | Op::Fail(i) if !inflight.is_empty() => {
                let (agent, w) = inflight.swap_remove(i as usize % inflight.len());
                if matches!(op, Op::Complete(_)) {
                    let _ = s.complete_work(&w.work_id, &agent, vec![i], now);
                } else {
                    let _ = s.fail_work(&w.work_id, &agent, "x", false, now);
                }
            }
            Op::Claim(i) => {
                if let Some(a) = pick(&agents, i) {
                    if let Ok(Some(w)) = s.claim(&a, 30, now) {
                        inflight.push((a, w));
                    }
                }
            }
            Op::Detach(i) => {
                if let Some(a) = pick(&agents, i) {
                    let _ = s.detach_agent(&a, "crash", now);
                }
            }
            Op::Attach(i) => {
                if let Some(a) = pick(&agents, i) {
                    let _ = s.attach_agent(&a, now);
                }
            }
            Op::Remove(i) => {
                if let Some(a) = pick(&agents, i) {
                    s.remove_agent(&a, now).unwrap();
                    agents.retain(|x| *x != a);
                }
            }
            Op::Cancel(i) => {
                if let Some(t) = pick(&tasks, i) {
                    let _ = s.cancel(&t, now);
                }
            }
            Op::Store(k, ttl) => {
                let tags: &[&str] = if k & 1 == 0 { &["even"] } else { &[] };
                store(
                    s,
                    &format!("k{}", k % 8),
                    &format!("v{k}"),
                    tags,
                    ttl.then_some(1 + k as u64),
                    now,
                );
            }
            Op::Delete(k) => {
                let _ = s.memory_delete("ns", &format!("k{}", k % 8), now);
            }
            Op::Share(i) => {
                let a = pick(&agents, i);
                share(s, a.as_deref(), now);
            }
            Op::Tick(dt) => {
                now += dt as u64;
                s.tick(now, 10_000);
            }
            _ => {}
        }
        for d in s.drain().dispatches {
            inflight.push((d.agent_id, d.work));
        }
    }
    now
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Export, import into a fresh engine, export again: the same swarm
    /// (in-flight work queued again). New ids continue past every imported
    /// one, and every unfinished task runs to completion on the imported
    /// swarm with its completed units' results intact.
    #[test]
    fn random_swarms_survive_export_and_import(ops in proptest::collection::vec(op(), 1..100), topo in 0usize..4) {
        let mut s = swarm(Topology::ALL[topo]);
        let now = play(&mut s, ops);
        let first = s.export(now);
        let mut t = Swarm::import(first.clone(), now).unwrap();
        prop_assert_eq!(t.export(now), requeued(first.clone()));
        prop_assert_eq!(Swarm::import(t.export(now), now).unwrap().export(now), requeued(first.clone()));

        // No id is handed out twice.
        let used_agents: Vec<u64> = first.agents.iter().map(|a| seq(&a.id)).collect();
        let used_tasks: Vec<u64> = first.tasks.iter().map(|t| seq(&t.id)).collect();
        let worker = t.add_agent(AgentSpec { capabilities: CAPS.iter().map(|c| c.to_string()).collect(), capacity: 1, ..Default::default() }, now).unwrap();
        prop_assert!(seq(&worker) >= first.next_ids.agent);
        prop_assert!(used_agents.iter().all(|&a| a < seq(&worker)));
        let extra = t.submit(task("after import"), now).unwrap();
        prop_assert!(seq(&extra) >= first.next_ids.task);
        prop_assert!(used_tasks.iter().all(|&x| x < seq(&extra)));
        let d = share(&mut t, None, now);
        prop_assert!(first.discoveries.iter().all(|x| seq(&x.id) < seq(&d.id)));
        let v = store(&mut t, "fresh", "v", &[], None, now);
        prop_assert!(v >= first.next_ids.memory_version);
        prop_assert!(first.memory.iter().all(|m| m.entry.version < v));

        // Unfinished tasks are dispatchable and keep their done units.
        let mut clock = now;
        let done = run_all(&mut t, &worker, &mut clock);
        for rec in first.tasks.iter().filter(|r| !r.status.is_terminal()) {
            let task = t.task(&rec.id).unwrap();
            prop_assert_eq!(task.status, TaskStatus::Completed, "task {} left behind", rec.id);
            for (i, r) in &rec.unit_results {
                prop_assert_eq!(task.units[*i as usize].result(), Some(r));
            }
        }
        for w in &done {
            let rec = match first.tasks.iter().find(|r| r.id == w.task_id) { Some(r) => r, None => continue };
            let unit: usize = w.work_id.split('/').nth(1).unwrap().parse().unwrap();
            let task = t.task(&w.task_id).unwrap();
            prop_assert!(!rec.unit_results.iter().any(|(i, _)| *i as usize == unit), "a completed unit ran again");
            for (i, r) in &rec.unit_results {
                if task.units[unit].deps().contains(i) {
                    let name = task.unit_name(*i).into_owned();
                    prop_assert!(w.context.contains(&(name.clone(), r.clone())));
                }
            }
        }
    }
}
