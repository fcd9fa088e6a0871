//! What work cost: per attempt, per agent and per swarm; the cost budget
//! that stops dispatch; progress messages; usage through export/import.

use proptest::prelude::{proptest, ProptestConfig};
use ruv_swarm_core::events::Event;
use ruv_swarm_core::swarm::{SwarmConfig, WorkItem};
use ruv_swarm_core::usage::{UnitUsage, Usage};
use ruv_swarm_core::*;

fn swarm() -> Swarm {
    Swarm::new(ids::new_swarm_id(), SwarmConfig::default(), 0).unwrap()
}

fn push_agent(s: &mut Swarm) -> String {
    let spec = AgentSpec {
        dispatch: Dispatch::Push,
        ..Default::default()
    };
    let id = s.add_agent(spec, 0).unwrap();
    s.attach_agent(&id, 0).unwrap();
    id
}

fn task(desc: &str) -> TaskSpec {
    TaskSpec {
        description: desc.into(),
        input: desc.as_bytes().to_vec(),
        retry: RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        },
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

fn cost(micros: u64, session: Option<&str>) -> UnitUsage {
    UnitUsage {
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            cache_read_tokens: 3,
            cache_creation_tokens: 4,
            cost_micros: micros,
            turns: 2,
            duration_ms: 50,
        },
        session_id: session.map(Into::into),
    }
}

#[test]
fn usage_is_kept_per_attempt_and_summed_per_agent_and_swarm() {
    let mut s = swarm();
    let a = push_agent(&mut s);
    let t1 = s.submit(task("one"), 1).unwrap();
    let t2 = s.submit(task("two"), 1).unwrap();
    let (_, w) = dispatched(&mut s).pop().unwrap();
    assert_eq!(w.session_id, None);
    s.complete_work_with(&w.work_id, &a, vec![1], Some(cost(6_000, Some("s-1"))), 2)
        .unwrap();
    // The next unit is told the session the agent's last one reported.
    let (_, w) = dispatched(&mut s).pop().unwrap();
    assert_eq!(w.session_id.as_deref(), Some("s-1"));
    // A failure costs too.
    s.fail_work_with(&w.work_id, &a, "boom", false, Some(cost(1_000, None)), 3)
        .unwrap();
    assert_eq!(s.task(&t2).unwrap().status, TaskStatus::Failed);

    let seq = s.agent(&a).unwrap().seq;
    let acct = s.agent_account(seq);
    assert_eq!(acct.usage.cost_micros, 7_000);
    assert_eq!(acct.usage.input_tokens, 200);
    assert_eq!(acct.usage.turns, 4);
    assert_eq!(
        acct.session_id.as_deref(),
        Some("s-1"),
        "a report without one keeps it"
    );
    assert_eq!(s.usage_total(), acct.usage);
    let t = s.task(&t1).unwrap();
    assert_eq!(
        s.attempt_usage(t.seq, 0, 1).map(|u| u.usage.cost_micros),
        Some(6_000)
    );
    // A late report books nothing.
    assert_eq!(
        s.complete_work_with(&w.work_id, &a, vec![1], Some(cost(5, None)), 4),
        Ok(false)
    );
    assert_eq!(s.usage_total().cost_micros, 7_000);
    // An agent that leaves takes its account; the swarm keeps the total.
    s.remove_agent(&a, 5).unwrap();
    assert_eq!(s.usage_total().cost_micros, 7_000);
}

#[test]
fn a_spent_budget_stops_dispatch_until_it_is_raised() {
    let mut s = swarm();
    let a = push_agent(&mut s);
    s.set_budget(Some(10_000), 0).unwrap();
    let ids: Vec<String> = (0..4)
        .map(|i| s.submit(task(&format!("t{i}")), 1).unwrap())
        .collect();
    let mut ran = 0;
    while let Some((_, w)) = dispatched(&mut s).pop() {
        ran += 1;
        s.complete_work_with(&w.work_id, &a, vec![1], Some(cost(6_000, None)), 2)
            .unwrap();
    }
    // 6,000 left room for a second unit; 12,000 spent the budget.
    assert_eq!(ran, 2);
    let b = s.budget();
    assert!(b.exhausted);
    assert_eq!(b.spent_micros, 12_000);
    assert_eq!(s.task(&ids[2]).unwrap().status, TaskStatus::Pending);
    assert_eq!(
        s.waiting_reason().as_deref(),
        Some("the swarm's cost budget of $0.01 is spent (spent $0.012)")
    );
    // A pull agent gets nothing either.
    let p = s.add_agent(AgentSpec::default(), 3).unwrap();
    assert_eq!(s.claim(&p, 1_000, 3).unwrap(), None);
    s.remove_agent(&p, 3).unwrap();
    // Raising it resumes dispatch at once.
    s.set_budget(Some(1_000_000), 4).unwrap();
    assert!(s.waiting_reason().is_none());
    let (_, w) = dispatched(&mut s).pop().expect("dispatch resumed");
    s.complete_work(&w.work_id, &a, vec![1], 5).unwrap();
    let (_, w) = dispatched(&mut s).pop().expect("and goes on");
    s.complete_work(&w.work_id, &a, vec![1], 6).unwrap();
    assert!(ids
        .iter()
        .all(|id| s.task(id).unwrap().status == TaskStatus::Completed));
}

#[test]
fn a_swarm_without_budget_never_waits() {
    let mut s = swarm();
    let a = push_agent(&mut s);
    s.submit(task("x"), 0).unwrap();
    s.submit(task("y"), 0).unwrap();
    let (_, w) = dispatched(&mut s).pop().unwrap();
    s.complete_work_with(&w.work_id, &a, vec![1], Some(cost(u64::MAX >> 20, None)), 1)
        .unwrap();
    assert_eq!(dispatched(&mut s).len(), 1);
    assert!(!s.budget().exhausted && s.waiting_reason().is_none());
}

#[test]
fn progress_carries_a_bounded_message_and_keeps_the_last_fraction() {
    let mut s = swarm();
    s.outbox.record_events = true;
    let a = push_agent(&mut s);
    s.submit(task("x"), 0).unwrap();
    let (_, w) = dispatched(&mut s).pop().unwrap();
    assert_eq!(
        s.report_progress(&w.work_id, &a, None, Some("thinking"), 1),
        Ok(true)
    );
    s.report_progress(&w.work_id, &a, Some(0.5), None, 2)
        .unwrap();
    let long = "é".repeat(2_000);
    s.report_progress(&w.work_id, &a, None, Some(&long), 3)
        .unwrap();
    assert!(s
        .report_progress(&w.work_id, &a, Some(1.5), None, 4)
        .is_err());
    let progress: Vec<(Option<f64>, Option<String>)> = s
        .drain()
        .events
        .into_iter()
        .filter_map(|r| match r.event {
            Event::TaskProgress {
                progress, message, ..
            } => Some((progress, message)),
            _ => None,
        })
        .collect();
    assert_eq!(progress[0], (None, Some("thinking".into())));
    assert_eq!(progress[1], (Some(0.5), None));
    assert_eq!(progress[2].0, Some(0.5));
    let cut = progress[2].1.as_deref().unwrap();
    assert!(cut.len() <= limits::MAX_PROGRESS_MESSAGE_BYTES && cut.len() >= 998);
    assert_eq!(progress.len(), 3);
}

#[test]
fn export_and_import_keep_totals_budget_and_sessions() {
    let mut s = swarm();
    let a = push_agent(&mut s);
    s.set_budget(Some(10_000), 0).unwrap();
    for i in 0..3 {
        s.submit(task(&format!("t{i}")), 0).unwrap();
    }
    for _ in 0..2 {
        let (_, w) = dispatched(&mut s).pop().unwrap();
        s.complete_work_with(&w.work_id, &a, vec![1], Some(cost(6_000, Some("sess"))), 1)
            .unwrap();
    }
    let snap = s.export(2);
    assert_eq!(snap.usage.cost_micros, 12_000);
    assert_eq!(snap.max_cost_micros, Some(10_000));
    let mut copy = Swarm::import(snap.clone(), 2).unwrap();
    assert_eq!(copy.usage_total(), s.usage_total());
    assert!(copy.budget().exhausted);
    let seq = copy.agent(&a).unwrap().seq;
    assert_eq!(copy.agent_account(seq), s.agent_account(seq));
    assert_eq!(copy.export(2), snap);
    // The waiting task still waits in the copy, once its agent is back.
    copy.attach_agent(&a, 3).unwrap();
    assert!(dispatched(&mut copy).is_empty());
    copy.set_budget(None, 4).unwrap();
    assert_eq!(dispatched(&mut copy).len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever completes or fails with whatever cost, the swarm's total is
    /// the sum of its agents' totals (while none leaves), each agent's the
    /// sum of what it reported, and dispatch stops once the budget is spent.
    #[test]
    fn totals_are_sums_and_the_budget_holds(
        reports in proptest::collection::vec((0u64..5_000, proptest::bool::ANY), 1..40),
        budget in 1u64..60_000,
    ) {
        let mut s = swarm();
        let agents: Vec<String> = (0..3).map(|_| push_agent(&mut s)).collect();
        s.set_budget(Some(budget), 0).unwrap();
        for i in 0..reports.len() {
            s.submit(task(&format!("t{i}")), 0).unwrap();
        }
        let mut held: Vec<(String, WorkItem)> = dispatched(&mut s);
        let mut booked = 0u64;
        let mut per_agent = std::collections::HashMap::<String, u64>::new();
        for (i, (micros, ok)) in reports.iter().enumerate() {
            let Some((agent, w)) = held.pop() else { break };
            let u = Some(cost(*micros, None));
            let now = i as u64 + 1;
            if *ok {
                s.complete_work_with(&w.work_id, &agent, vec![1], u, now).unwrap();
            } else {
                s.fail_work_with(&w.work_id, &agent, "x", false, u, now).unwrap();
            }
            booked += micros;
            *per_agent.entry(agent).or_default() += micros;
            let newly = dispatched(&mut s);
            // Running units finish; nothing new starts once it is spent.
            if booked >= budget {
                proptest::prop_assert!(newly.is_empty());
            }
            held.extend(newly);
        }
        proptest::prop_assert_eq!(s.usage_total().cost_micros, booked);
        proptest::prop_assert_eq!(s.budget().exhausted, booked >= budget);
        let mut sum = 0;
        for a in &agents {
            let seq = s.agent(a).unwrap().seq;
            let c = s.agent_account(seq).usage.cost_micros;
            proptest::prop_assert_eq!(c, per_agent.get(a).copied().unwrap_or(0));
            sum += c;
        }
        proptest::prop_assert_eq!(sum, booked);
    }
}
