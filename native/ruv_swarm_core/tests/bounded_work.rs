//! Every command does work bounded by its own size, not by the swarm's.
//!
//! The same commands run against a small swarm and a large one (many more
//! agents, many more queued tasks); the engine's step counter (entries its
//! scans and loops visit: free agents compared, queue entries examined,
//! units walked, timers fired, agents refilled) must grow by the same
//! amount in both. A command that sweeps, shifts or rescans something
//! proportional to the swarm shows up here as a difference, without timing
//! anything.

use ruv_swarm_core::swarm::SwarmConfig;
use ruv_swarm_core::*;

struct World {
    s: Swarm,
    pull: Vec<String>,
    push: Vec<String>,
    queued: Vec<String>,
}

fn task(desc: &str, caps: &[&str]) -> TaskSpec {
    TaskSpec {
        description: desc.into(),
        input: desc.as_bytes().to_vec(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_backoff_ms: 0,
            max_backoff_ms: 0,
        },
        ..Default::default()
    }
}

/// A hierarchical swarm (roles depend on positions) of `agents` pull
/// agents then four push agents, busy; `queued` tasks no agent can take,
/// and a few that pull agents can claim.
fn world(agents: usize, queued: usize) -> World {
    let cfg = SwarmConfig {
        topology: Topology::Hierarchical,
        max_agents: limits::MAX_AGENTS_PER_SWARM,
        ..Default::default()
    };
    let mut s = Swarm::new(ids::new_swarm_id(), cfg, 0).unwrap();
    let pull: Vec<String> = (0..agents)
        .map(|_| s.add_agent(AgentSpec::default(), 0).unwrap())
        .collect();
    let push: Vec<String> = (0..4)
        .map(|_| {
            let spec = AgentSpec {
                dispatch: Dispatch::Push,
                ..Default::default()
            };
            let id = s.add_agent(spec, 0).unwrap();
            s.attach_agent(&id, 0).unwrap();
            id
        })
        .collect();
    for i in 0..4 {
        s.submit(task(&format!("busy {i}"), &[]), 0).unwrap();
    }
    let queued = (0..queued)
        .map(|i| {
            s.submit(task(&format!("q{i}"), &["none-has-this"]), 0)
                .unwrap()
        })
        .collect();
    for i in 0..8 {
        s.submit(task(&format!("claimable {i}"), &[]), 0).unwrap();
    }
    s.drain();
    World {
        s,
        pull,
        push,
        queued,
    }
}

/// Steps each command took, in order, on world `w`.
fn costs(w: &mut World) -> Vec<(&'static str, u64)> {
    let mut out = Vec::new();
    let mut step = |name: &'static str, s: &mut Swarm, f: &mut dyn FnMut(&mut Swarm)| {
        let before = s.steps();
        f(s);
        s.drain();
        out.push((name, s.steps() - before));
    };
    let (p0, p1) = (w.pull[0].clone(), w.pull[1].clone());
    let mut claimed = None;
    step("submit", &mut w.s, &mut |s| {
        s.submit(task("more", &[]), 1).unwrap();
    });
    step("claim", &mut w.s, &mut |s| {
        claimed = s.claim(&p0, 60_000, 1).unwrap();
    });
    let work = claimed.expect("claimable work").work_id;
    step("complete", &mut w.s, &mut |s| {
        assert!(s.complete_work(&work, &p0, b"ok".to_vec(), 2).unwrap());
    });
    let work = w.s.claim(&p1, 50, 2).unwrap().unwrap().work_id;
    step("fail (retried)", &mut w.s, &mut |s| {
        assert!(s.fail_work(&work, &p1, "boom", false, 3).unwrap());
    });
    w.s.claim(&p1, 50, 3).unwrap().unwrap();
    step("tick (a lease expires)", &mut w.s, &mut |s| {
        s.tick(100, 64);
    });
    let q = w.queued[w.queued.len() / 2].clone();
    step("cancel (queued)", &mut w.s, &mut |s| {
        s.cancel(&q, 101).unwrap()
    });
    step("claim after cancels", &mut w.s, &mut |s| {
        s.claim(&p0, 60_000, 102).unwrap();
    });
    step("add agent", &mut w.s, &mut |s| {
        s.add_agent(AgentSpec::default(), 103).unwrap();
    });
    step("remove agent (early position)", &mut w.s, &mut |s| {
        s.remove_agent(&p1, 104).unwrap();
    });
    let busy = w.push[0].clone();
    step("detach push agent", &mut w.s, &mut |s| {
        s.detach_agent(&busy, "gone", 105).unwrap()
    });
    step("attach push agent", &mut w.s, &mut |s| {
        s.attach_agent(&busy, 106).unwrap()
    });
    out
}

#[test]
fn command_cost_does_not_grow_with_agents_or_queue() {
    let mut small = world(10, 20);
    let mut large = world(5_000, 50_000);
    // Queued tasks cancelled, few or many, leave nothing stale for the
    // claims that follow to wade through.
    for (w, n) in [(&mut small, 2), (&mut large, 10_000)] {
        for i in 0..n {
            let mut t = task(&format!("dropped {i}"), &[]);
            t.priority = Priority::Critical;
            let id = w.s.submit(t, 0).unwrap();
            w.s.cancel(&id, 0).unwrap();
        }
        w.s.drain();
    }
    let a = costs(&mut small);
    let b = costs(&mut large);
    for ((name, small), (_, large)) in a.iter().zip(&b) {
        assert!(
            *large <= small + 2 && *large <= 64,
            "{name}: {large} steps with 5,000 agents and 50,000 queued, {small} with 10 and 20"
        );
    }
}
