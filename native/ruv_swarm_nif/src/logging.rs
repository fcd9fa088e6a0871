//! Forwards `tracing` events to Elixir's Logger.
//!
//! Events are sent as `{:ruv_swarm_log, level, message}` to the process
//! registered as `SwarmService.Native.LogForwarder`. When nobody is
//! registered the event is dropped; logging never blocks the engine.

use std::fmt::Write;

use rustler::{Atom, Encoder, OwnedEnv};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::atoms;

struct Forward;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => atoms::error(),
            Level::WARN => atoms::warning(),
            Level::INFO => atoms::info(),
            _ => atoms::debug(),
        };
        let mut msg = Message(String::new());
        event.record(&mut msg);
        send(level, msg.0);
    }
}

fn send(level: Atom, message: String) {
    // A NIF thread may not use OwnedEnv::send; hand off to a plain thread.
    // Log volume is low (lifecycle events), so a thread per burst is fine.
    let _ = std::thread::Builder::new()
        .name("ruv_swarm_log".into())
        .spawn(move || {
            let mut env = OwnedEnv::new();
            let pid = env.run(|env| {
                let name =
                    rustler::Atom::from_str(env, "Elixir.SwarmService.Native.LogForwarder").ok()?;
                env.whereis_pid(name)
            });
            if let Some(pid) = pid {
                let _ = env.send_and_clear(&pid, |env| {
                    (atoms::ruv_swarm_log(), level, message.as_str()).encode(env)
                });
            }
        });
}

pub fn install() {
    let subscriber = tracing_subscriber::registry().with(Forward);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
