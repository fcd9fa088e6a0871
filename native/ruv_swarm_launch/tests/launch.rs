//! The launcher binary end to end: the protocol, and that nothing it
//! started outlives the unit. Processes are found in /proc by a unique
//! environment tag; only tagged processes are ever looked at.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tagged(tag: &str) -> usize {
    let needle = format!("LAUNCH_TEST_TAG={tag}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let live = stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| !r.starts_with(" Z"));
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            live && env.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .count()
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut p = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    p.push(tag);
    p.extend_from_slice(body);
    p
}

/// Runs a shell script under the launcher with `input`; returns every
/// message it sent, up to and including the final one.
fn run(tag: &str, script: &str, input: &[u8]) -> Vec<Vec<u8>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ruv_swarm_launch"))
        .args([
            "--env",
            &format!("LAUNCH_TEST_TAG={tag}"),
            "--",
            "/bin/sh",
            "-c",
            script,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&packet(0, input)).unwrap();
    stdin.write_all(&packet(1, b"")).unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut msgs = Vec::new();
    loop {
        let mut len = [0u8; 4];
        out.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        out.read_exact(&mut body).unwrap();
        let last = body[0] == 2;
        msgs.push(body);
        if last {
            break;
        }
    }
    drop(stdin);
    child.wait().unwrap();
    msgs
}

fn unique(name: &str) -> String {
    format!("{name}-{}-{:?}", std::process::id(), Instant::now())
}

#[test]
fn stdout_relayed_and_exit_status_reported() {
    let tag = unique("status");
    let msgs = run(&tag, "tr a-z A-Z; echo oops >&2; exit 5", b"hello");
    assert_eq!(msgs[0][0], 3, "started first");
    assert_eq!(msgs[1], b"\0HELLO");
    let last = msgs.last().unwrap();
    assert_eq!(&last[..10], &[2, 0, 0, 0, 0, 5, 0, 0, 0, 0]);
    assert_eq!(&last[10..], b"oops\n");
}

#[test]
fn double_forked_descendants_end_with_the_command_and_are_counted() {
    let tag = unique("double");
    let msgs = run(&tag, "(sleep 6101 &) ; sleep 6101 & echo ok", b"");
    let last = msgs.last().unwrap();
    assert_eq!(&last[..6], &[2, 0, 0, 0, 0, 0], "exit 0");
    assert_eq!(u32::from_be_bytes(last[6..10].try_into().unwrap()), 2);
    until("no tagged process", || tagged(&tag) == 0);
}

#[test]
fn end_of_input_from_the_owner_ends_the_tree() {
    let tag = unique("eof");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ruv_swarm_launch"))
        .args([
            "--env",
            &format!("LAUNCH_TEST_TAG={tag}"),
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg("(setsid sleep 6102 &) ; sleep 6102")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    until("the tree to start", || tagged(&tag) >= 2);
    drop(child.stdin.take());
    until("no tagged process", || tagged(&tag) == 0);
    child.wait().unwrap();
}
