//! Reproduces bench/native_latency.exs's scale scenario on the bare engine
//! and prints the slowest calls of each command (thread CPU time, release
//! build):
//!
//!     cargo run --release -p ruv_swarm_core --example worst_call [agents] [queued]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ruv_swarm_core::memory::StoreRequest;
use ruv_swarm_core::swarm::SwarmConfig;
use ruv_swarm_core::*;

/// Largest single allocation or reallocation since last reset.
static BIGGEST: AtomicUsize = AtomicUsize::new(0);
/// Bytes live (as requested of the allocator), like the NIF's counter.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Watch;

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BIGGEST.fetch_max(l.size(), Ordering::Relaxed);
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        BIGGEST.fetch_max(n, Ordering::Relaxed);
        LIVE.fetch_add(n, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Watch = Watch;

fn faults() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_minflt
}

/// CPU time of this thread: preemption by other processes is not counted.
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    sizes();
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let agents = args.next().unwrap_or(100_000);
    let queued = args.next().unwrap_or(1_000_000);
    let cfg = SwarmConfig {
        max_agents: agents as u32,
        ..Default::default()
    };
    let mut s = Swarm::new(ids::new_swarm_id(), cfg, 0).unwrap();
    let mut now = 1_000u64;
    let mut worst = Vec::new();
    let mut time = |name: &'static str, i: usize, f: &mut dyn FnMut()| {
        BIGGEST.store(0, Ordering::Relaxed);
        let f0 = faults();
        let t0 = cpu_ns();
        f();
        let ns = cpu_ns() - t0;
        let big = BIGGEST.load(Ordering::Relaxed);
        worst.push((ns, name, i, big, faults() - f0));
    };
    let mut first = None;
    for i in 0..agents {
        let mut id = None;
        time("add_agent(setup)", i, &mut || {
            id = Some(s.add_agent(AgentSpec::default(), now).unwrap())
        });
        first.get_or_insert(id.unwrap());
    }
    let first = first.unwrap();
    let before_tasks = LIVE.load(Ordering::Relaxed);
    for i in 0..queued {
        let spec = TaskSpec {
            description: "q".into(),
            input: format!("{i}").into_bytes(),
            capabilities: vec!["none-has-this".into()],
            ..Default::default()
        };
        time("submit(setup)", i, &mut || {
            s.submit(spec.clone(), now).unwrap();
        });
        if i % 1000 == 0 {
            now += 1;
            s.drain();
        }
    }
    println!(
        "{:.1} bytes per queued task",
        (LIVE.load(Ordering::Relaxed) - before_tasks) as f64 / queued as f64
    );
    for i in 0..3000 {
        time("submit", i, &mut || {
            s.submit(
                TaskSpec {
                    description: "more".into(),
                    input: b"more".to_vec(),
                    ..Default::default()
                },
                now,
            )
            .unwrap();
        });
        s.drain();
    }
    for i in 0..3000 {
        time("claim", i, &mut || {
            s.claim(&first, 60_000, now).unwrap();
        });
        s.drain();
    }
    for i in 0..3000 {
        time("memory_store", i, &mut || {
            let req = StoreRequest {
                namespace: "default",
                key: &format!("k{i}"),
                value: vec![1, 2, 3],
                text_at: None,
                tags: vec![],
                ttl_ms: None,
                if_version: None,
            };
            s.memory_store(req, now).unwrap();
        });
        s.drain();
    }
    for i in 0..3000 {
        time("tick", i, &mut || {
            s.tick(now, 1000);
        });
        now += 1;
    }
    let t0 = Instant::now();
    drop(s);
    println!("drop: {:?}", t0.elapsed());
    worst.sort_unstable_by(|a, b| b.cmp(a));
    for name in [
        "add_agent(setup)",
        "submit(setup)",
        "submit",
        "claim",
        "memory_store",
        "tick",
    ] {
        let top: Vec<_> = worst
            .iter()
            .filter(|w| w.1 == name)
            .take(5)
            .map(|w| format!("{}us@{}[{}B,{}pf]", w.0 / 1000, w.2, w.3, w.4))
            .collect();
        println!("{name:18} {}", top.join(" "));
    }
}

#[allow(dead_code)]
fn sizes() {
    println!(
        "Task {} Unit {} QueueEntry {}",
        std::mem::size_of::<ruv_swarm_core::task::Task>(),
        std::mem::size_of::<ruv_swarm_core::task::Unit>(),
        std::mem::size_of::<ruv_swarm_core::scheduler::QueueEntry>()
    );
}
